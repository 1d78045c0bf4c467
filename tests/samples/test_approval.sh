#!/usr/bin/env bash
# samples.approval: the loan approval in its three modes, against one server:
#   approve   the event wins the race against the escalation timer: approved by the loan officer, no escalation;
#   escalate  the timer wins once: the branch manager is notified and approves;
#   expire    the timer wins every round: two escalations, then declined as undecided.
# usage: test_approval.sh SAMPLE_BIN
. "$(dirname "$0")/lib.sh"
sample=$1

start_server
run_sample approve "$sample" "$TARGET" approve
expect_line approve 'status: COMPLETED'
expect_line approve 'result: {"application":"L-7","approved":true,"decided_by":"loan-officer","escalations":0}'
expect_count approve '^escalation ' 0

run_sample escalate "$sample" "$TARGET" escalate
expect_line escalate 'status: COMPLETED'
expect_line escalate 'result: {"application":"L-7","approved":true,"decided_by":"branch-manager","escalations":1}'
expect_order escalate 'notify loan-officer: application L-7 needs a decision' 'loan-officer does not answer' \
  'escalation 1: notify branch-manager: application L-7 needs a decision' 'branch-manager approves'
expect_count escalate '^escalation ' 1

run_sample expire "$sample" "$TARGET" expire
expect_line expire 'status: COMPLETED'
expect_line expire 'result: {"application":"L-7","approved":false,"decided_by":null,"escalations":2,"reason":"no decision"}'
expect_order expire 'escalation 1: notify branch-manager: application L-7 needs a decision' \
  'escalation 2: notify regional-director: application L-7 needs a decision'
expect_count expire '^escalation ' 2
expect_count expire ' approves$' 0
stop_server
echo "PASS"
