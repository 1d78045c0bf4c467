#!/usr/bin/env bash
# samples.address_env: a sample given no address finds taskhubd through TASKHUBD_ADDRESS, the variable taskhubctl
# reads too; before, the samples always went to 127.0.0.1:4001, whatever held it.
# usage: test_address_env.sh SAMPLE_BIN (the chaining sample)
. "$(dirname "$0")/lib.sh"
sample=$1

start_server
TASKHUBD_ADDRESS="$TARGET" run_sample chaining "$sample"
expect_line chaining 'status: COMPLETED'
stop_server
echo "PASS"
