#!/usr/bin/env bash
# samples.chaining: three activities in sequence; the post's title, slug and URL come out in one result.
# usage: test_chaining.sh SAMPLE_BIN
. "$(dirname "$0")/lib.sh"
sample=$1

start_server
run_sample chaining "$sample" "$TARGET"
expect_line chaining 'status: COMPLETED'
expect_line chaining 'result: {"title":"durable task, in c","slug":"durable-task-in-c","url":"https://blog.example.com/posts/durable-task-in-c"}'
stop_server
echo "PASS"
