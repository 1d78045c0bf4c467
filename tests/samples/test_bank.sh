#!/usr/bin/env bash
# samples.bank: account entities and a transfer inside a critical section (lock both, read, refuse or move,
# unlock): a transfer that goes through, an overdraft refused, a failed entity call; run twice against the same
# server (the accounts are closed and opened again), with the balances checked after each run.
# usage: test_bank.sh SAMPLE_BIN
. "$(dirname "$0")/lib.sh"
sample=$1

start_server
for run in bank bank-again; do
  run_sample $run "$sample" "$TARGET"
  expect_line $run 'transfer alice->bob 30: {"status":"done","alice":70,"bob":50}'
  expect_line $run 'transfer bob->alice 80: {"status":"refused","reason":"insufficient funds: bob has 50, 80 wanted"}'
  expect_line $run 'withdraw bob 500: {"status":"failed","error":"InsufficientFunds: bob has 50, 500 wanted"}'
  expect_line $run 'balances: alice 70, bob 50'
  expect_count $run ' failed: ' 0
done
stop_server
echo "PASS"
