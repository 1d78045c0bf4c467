#!/usr/bin/env bash
# samples.fanout: eight resizes fan out and fan in; the one that fails transiently is retried once.
# usage: test_fanout.sh SAMPLE_BIN
. "$(dirname "$0")/lib.sh"
sample=$1

start_server
run_sample fanout "$sample" "$TARGET"
expect_line fanout 'status: COMPLETED'
expect_line fanout 'result: {"album":"lisbon-2024","count":8,"total_bytes":661920,"thumbnails":["thumbs/beach.jpg:640x480","thumbs/harbor.jpg:640x427","thumbs/lighthouse.jpg:640x853","thumbs/market.png:640x360","thumbs/sunset.jpg:640x427","thumbs/tram.png:600x800","thumbs/castle.jpg:640x480","thumbs/fado.png:640x360"]}'
expect_line fanout 'harbor.jpg written in 2 attempts'
expect_count fanout '^resize harbor\.jpg: storage timed out \(will be retried\)$' 1
expect_count fanout '^resize [a-z]+\.(jpg|png) [0-9]+x[0-9]+ -> [0-9]+x[0-9]+$' 8
expect_order fanout 'resize harbor.jpg: storage timed out (will be retried)' 'resize harbor.jpg 6000x4000 -> 640x427'
stop_server
echo "PASS"
