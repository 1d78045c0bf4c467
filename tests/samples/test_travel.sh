#!/usr/bin/env bash
# samples.travel: the car fails, so the hotel and then the flight are cancelled (in that order) and the result
# says so; with "ok" everything is booked and nothing is cancelled.
# usage: test_travel.sh SAMPLE_BIN
. "$(dirname "$0")/lib.sh"
sample=$1

start_server
run_sample travel "$sample" "$TARGET"
expect_line travel 'status: COMPLETED'
expect_line travel 'result: {"trip":"T-42","booked":false,"failed":"car","error":"no cars available at LIS","compensated":["hotel","flight"]}'
expect_order travel 'reserve_flight T-42: to LIS' 'reserve_hotel T-42: to LIS' \
  'reserve_car T-42: no cars available at LIS' 'cancel_hotel "HT-T-42"' 'cancel_flight "FL-T-42"'
expect_count travel '^cancel_' 2
expect_line travel 'live bookings: flight 0, hotel 0, car 0'

run_sample travel-ok "$sample" "$TARGET" ok
expect_line travel-ok 'result: {"trip":"T-43","booked":true,"flight":"FL-T-43","hotel":"HT-T-43","car":"CR-T-43"}'
expect_count travel-ok '^cancel_' 0
expect_line travel-ok 'live bookings: flight 1, hotel 1, car 1'
stop_server
echo "PASS"
