#!/usr/bin/env bash
# samples.order: three orders (shipped, payment declined with the reservation released, out of stock), with
# the payment retried only on the gateway's transient failure; run twice against the same server, so the
# second run reuses the finished instances' ids (the reuse policy).
# usage: test_order.sh SAMPLE_BIN
. "$(dirname "$0")/lib.sh"
sample=$1

start_server
for run in order order-again; do
  run_sample $run "$sample" "$TARGET"
  expect_line $run 'order-A-1001 COMPLETED: {"order":"A-1001","status":"shipped","charge":"ch_A-1001","tracking":"TRK-A-1001"}'
  expect_line $run 'order-A-1002 COMPLETED: {"order":"A-1002","status":"cancelled","reason":"payment declined: insufficient funds","inventory":"released"}'
  expect_line $run 'order-A-1003 COMPLETED: {"order":"A-1003","status":"rejected","reason":"out of stock: 5 grinder wanted, 2 left"}'
  expect_line $run 'stock: espresso-machine 2, grinder 2'
  # Two attempts per charge: the timeout is retried, the decline is not.
  expect_count $run '^charge_payment A-1001: ' 2
  expect_count $run '^charge_payment A-1002: ' 2
  expect_count $run '^charge_payment A-1003: ' 0
  expect_order $run 'charge_payment A-1002: gateway timeout' 'charge_payment A-1002: declined' 'release_inventory A-1002'
  expect_order $run 'charge_payment A-1001: 249.00 EUR' 'pack A-1001: 1 espresso-machine' 'dispatch A-1001'
  expect_count $run '^release_inventory A-100[13]' 0
done
stop_server
echo "PASS"
