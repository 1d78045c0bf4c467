#!/usr/bin/env bash
# samples.monitor: the monitor polls four times across continue-as-new executions and ends when the job has
# succeeded; only the last execution's history remains.
# usage: test_monitor.sh SAMPLE_BIN
. "$(dirname "$0")/lib.sh"
sample=$1

start_server
run_sample monitor "$sample" "$TARGET"
expect_line monitor 'status: COMPLETED'
expect_line monitor 'result: {"job":"export-42","state":"succeeded","polls":4}'
expect_line monitor 'custom status: {"state":"succeeded","progress":100,"polls":4}'
expect_order monitor 'check_job "export-42": running, 25%' 'check_job "export-42": running, 50%' \
  'check_job "export-42": running, 75%' 'check_job "export-42": succeeded, 100%'
expect_count monitor '^check_job ' 4
expect_count monitor '^last execution: [0-9]+ history events, 0 timers$' 1
stop_server
echo "PASS"
