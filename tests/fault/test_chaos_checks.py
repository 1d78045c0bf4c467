"""The crash-consistency harness's history check (chaos.check_history) finds what it is meant to find.

chaos.py's long and short runs pass only when no history has a duplicated or missing state transition; these
tests feed the check histories with exactly one such fault each (and the intact one they are made from), so a
check that silently accepts everything cannot pass them.
"""

import collections

from google.protobuf import wrappers_pb2

from durabletask.internal import orchestrator_service_pb2 as pb

import chaos

IID = "chaos1-timer-000007"
I = 7


def ev(event_id: int, **kind) -> pb.HistoryEvent:
    return pb.HistoryEvent(eventId=event_id, **kind)


def scheduled(event_id: int, name: str, inp: int) -> pb.HistoryEvent:
    return ev(event_id, taskScheduled=pb.TaskScheduledEvent(name=name, input=wrappers_pb2.StringValue(value=str(inp))))


def completed(task_id: int, result: int) -> pb.HistoryEvent:
    return ev(-1, taskCompleted=pb.TaskCompletedEvent(taskScheduledId=task_id,
                                                      result=wrappers_pb2.StringValue(value=str(result))))


def timer_shape_history() -> list:
    """What the "timer" shape's history looks like for instance number 7: inc, a timer, dbl."""
    return [
        ev(-1, orchestratorStarted=pb.OrchestratorStartedEvent()),
        ev(-1, executionStarted=pb.ExecutionStartedEvent(name="timer", input=wrappers_pb2.StringValue(value="7"))),
        scheduled(1, "inc", I),
        ev(-1, orchestratorCompleted=pb.OrchestratorCompletedEvent()),
        ev(-1, orchestratorStarted=pb.OrchestratorStartedEvent()),
        completed(1, I + 1),
        ev(2, timerCreated=pb.TimerCreatedEvent()),
        ev(-1, orchestratorCompleted=pb.OrchestratorCompletedEvent()),
        ev(-1, orchestratorStarted=pb.OrchestratorStartedEvent()),
        ev(-1, timerFired=pb.TimerFiredEvent(timerId=2)),
        scheduled(3, "dbl", I + 1),
        ev(-1, orchestratorCompleted=pb.OrchestratorCompletedEvent()),
        ev(-1, orchestratorStarted=pb.OrchestratorStartedEvent()),
        completed(3, 2 * (I + 1)),
        ev(-1, executionCompleted=pb.ExecutionCompletedEvent(
            orchestrationStatus=pb.ORCHESTRATION_STATUS_COMPLETED,
            result=wrappers_pb2.StringValue(value=chaos.expected_output("timer", I)))),
        ev(-1, orchestratorCompleted=pb.OrchestratorCompletedEvent()),
    ]


def executions() -> collections.Counter:
    return collections.Counter({(IID, "inc", 1, str(I)): 1, (IID, "dbl", 3, str(I + 1)): 2})


def problems(events, execs=None) -> list:
    return chaos.check_history(events, "timer", I, IID, executions() if execs is None else execs, raised=False)


def test_intact_history_has_no_problems():
    assert problems(timer_shape_history()) == []


def test_duplicated_task_completion_is_found():
    h = timer_shape_history()
    h.insert(6, completed(1, I + 1))
    assert any("task 1 answered 2 times" in p for p in problems(h))


def test_missing_timer_fired_is_found():
    h = [e for e in timer_shape_history() if e.WhichOneof("eventType") != "timerFired"]
    assert any("timer 2 answered 0 times" in p for p in problems(h))


def test_second_execution_started_is_found():
    h = timer_shape_history()
    h.insert(3, ev(-1, executionStarted=pb.ExecutionStartedEvent(name="timer")))
    assert any("2 ExecutionStarted" in p for p in problems(h))


def test_missing_and_doubled_terminal_events_are_found():
    h = timer_shape_history()
    no_end = [e for e in h if e.WhichOneof("eventType") != "executionCompleted"]
    assert any("0 terminal events" in p for p in problems(no_end))
    assert any("2 terminal events" in p for p in problems(h + [h[-2]]))


def test_events_after_the_terminal_event_are_found():
    h = timer_shape_history()
    h.append(ev(-1, eventRaised=pb.EventRaisedEvent(name="late")))
    found = problems(h)
    assert any("after the terminal event" in p for p in found)


def test_action_scheduled_twice_and_answer_to_nothing_are_found():
    h = timer_shape_history()
    h.insert(3, scheduled(1, "inc", I))
    assert any("action id 1 scheduled twice" in p for p in problems(h))
    h = timer_shape_history()
    h.insert(6, completed(9, 0))
    assert any("task 9, which was not scheduled" in p for p in problems(h))


def test_completion_nobody_executed_is_found():
    execs = executions()
    del execs[(IID, "dbl", 3, str(I + 1))]
    assert any("no worker recorded executing" in p for p in problems(timer_shape_history(), execs))


def test_shape_counts_are_checked():
    # consistent in itself, but the timer shape has a timer
    h = [e for e in timer_shape_history() if e.WhichOneof("eventType") not in ("timerCreated", "timerFired")]
    assert any("= (2, 2, 0, 0, 0), expected (2, 2, 0, 1, 0)" in p for p in problems(h))


def test_expected_outputs_follow_the_worker_formulas():
    # the formulas in chaos_worker.c's header, worked by hand for i = 7
    assert chaos.expected_output("chain", 7) == str(((7 + 1) * 2 + 1) * 2)
    assert chaos.expected_output("fanout", 7) == str(sum((x * x) % 1000003 for x in range(7, 7 + 3 + 7 % 6)))
    assert chaos.expected_output("event", 7) == str(8 + 22)
    assert chaos.expected_output("parent", 7) == str(16 + 18)
    assert chaos.expected_output("can", 7) == str(8 + 9 + 10)
    assert chaos.expected_output("retry", 7) == "36"
