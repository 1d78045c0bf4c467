"""Interop tests: the published `durabletask` Python SDK as BOTH worker (TaskHubGrpcWorker) and
client (TaskHubGrpcClient) against taskhubd.

One taskhubd and one worker are shared by the whole module (fixtures `module_server` and
`worker`); every test uses its own instance ids, and every orchestrator/activity is registered
once on that worker, so tests stay independent. Waiting is done with the SDK's blocking waits
(gRPC deadlines) or by polling a condition against a deadline, never by sleeping.

Activities record what happened (attempt counts, task ids) in process-wide dictionaries guarded
by a lock, keyed by orchestration instance id; the worker runs activities in this process.
"""

import json
import threading
import time
import uuid
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import grpc
import pytest

import durabletask.internal.orchestrator_service_pb2 as pb
from durabletask import history, task
from durabletask.client import OrchestrationStatus

from conftest import CallRecorder, make_client, make_worker

WAIT_S = 30  # ceiling for one orchestration to finish; healthy runs take milliseconds to seconds


# ---------------------------------------------------------------------------------------------
# helpers

def uid(prefix: str) -> str:
    return f"pyw-{prefix}-{uuid.uuid4().hex}"


def utcnow() -> datetime:
    """Naive UTC, comparable with the SDK's naive-UTC datetimes."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def naive_utc(s: str) -> datetime:
    d = datetime.fromisoformat(s)
    if d.tzinfo is not None:
        d = d.astimezone(timezone.utc).replace(tzinfo=None)
    return d


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.02, what: str = "condition"):
    """Polls predicate() until it returns a truthy value (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value {value!r}")
        time.sleep(interval)


def wait_done(client, iid: str, timeout: float = WAIT_S):
    st = client.wait_for_orchestration_completion(iid, timeout=timeout)
    assert st is not None, f"instance {iid} does not exist"
    return st


def raw_get(server, iid: str) -> pb.OrchestrationState:
    """GetInstance as the SDK sends it, returning the raw OrchestrationState it received
    (for fields the SDK's OrchestrationState does not surface, e.g. parentInstanceId)."""
    rec = CallRecorder()
    with make_client(server, rec) as c:
        assert c.get_orchestration_state(iid) is not None, f"{iid} does not exist"
    return rec.responses("GetInstance")[-1].orchestrationState


_lock = threading.Lock()
_attempts = defaultdict(int)     # (what, instance id) -> number of activity executions
_task_ids = defaultdict(list)    # (what, instance id) -> taskIds the activity saw, in call order


def _count(what: str, ctx: task.ActivityContext) -> int:
    with _lock:
        key = (what, ctx.orchestration_id)
        _attempts[key] += 1
        _task_ids[key].append(ctx.task_id)
        return _attempts[key]


def attempts(what: str, iid: str) -> int:
    with _lock:
        return _attempts[(what, iid)]


def task_ids(what: str, iid: str) -> list:
    with _lock:
        return list(_task_ids[(what, iid)])


class InteropOrchestratorError(Exception):
    pass


class ChildOrchestrationError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# activities

def chain_step(ctx: task.ActivityContext, arg):
    _count("chain", ctx)
    i, value = arg
    return value * 3 + i


def square(ctx: task.ActivityContext, n: int) -> int:
    return n * n


def flaky_twice(ctx: task.ActivityContext, tag: str) -> str:
    n = _count("flaky", ctx)
    if n <= 2:
        raise ConnectionError(f"transient failure {n}")
    return f"{tag} ok after {n} attempts"


def always_fails(ctx: task.ActivityContext, _):
    n = _count("always", ctx)
    raise PermissionError(f"permanent failure, attempt {n}")


def plain_activity(ctx: task.ActivityContext, x):
    _count("plain", ctx)
    return f"plain:{x}"


def fails_first_time(ctx: task.ActivityContext, x):
    n = _count("fails_first", ctx)
    if n == 1:
        raise RuntimeError("first call fails")
    return f"second:{x}"


def counting_activity(ctx: task.ActivityContext, x):
    _count("restart", ctx)
    return x + 1


def hist_activity(ctx: task.ActivityContext, x):
    return f"act({x})"


# ---------------------------------------------------------------------------------------------
# orchestrators

def chain_orch(ctx: task.OrchestrationContext, start: int):
    value, results = start, []
    for i in range(5):
        value = yield ctx.call_activity(chain_step, input=[i, value])
        results.append(value)
    return results


def fan_orch(ctx: task.OrchestrationContext, n: int):
    results = yield task.when_all([ctx.call_activity(square, input=i) for i in range(n)])
    return {"count": len(results), "sum": sum(results),
            "in_order": results == [i * i for i in range(n)]}


def timer_orch(ctx: task.OrchestrationContext, spec):
    start = ctx.current_utc_datetime
    if spec["kind"] == "delta":
        fire_at = start + timedelta(milliseconds=spec["ms"])
        yield ctx.create_timer(timedelta(milliseconds=spec["ms"]))
    else:  # an absolute fireAt already in the past
        fire_at = start - timedelta(seconds=5)
        yield ctx.create_timer(fire_at)
    return {"start": start.isoformat(), "fire_at": fire_at.isoformat(),
            "after": ctx.current_utc_datetime.isoformat()}


def approval_orch(ctx: task.OrchestrationContext, timeout_s: float):
    timer = ctx.create_timer(timedelta(seconds=timeout_s))
    approval = ctx.wait_for_external_event("approval")
    winner = yield task.when_any([approval, timer])
    if winner == approval:
        return {"result": "approved", "data": approval.get_result()}
    return {"result": "timed out"}


def buffered_events_orch(ctx: task.OrchestrationContext, _):
    yield ctx.wait_for_external_event("go")
    got = []
    for _ in range(3):
        got.append((yield ctx.wait_for_external_event("data")))
    return got


def child_ok(ctx: task.OrchestrationContext, x):
    return {"doubled": x * 2, "me": ctx.instance_id, "parent": ctx.parent_instance_id}


def parent_ok(ctx: task.OrchestrationContext, x):
    r = yield ctx.call_sub_orchestrator(child_ok, input=x, instance_id=f"{ctx.instance_id}-child")
    return {"child": r}


def child_fail(ctx: task.OrchestrationContext, msg: str):
    raise ChildOrchestrationError(msg)


def parent_catches(ctx: task.OrchestrationContext, msg: str):
    try:
        yield ctx.call_sub_orchestrator(child_fail, input=msg, instance_id=f"{ctx.instance_id}-child")
    except task.TaskFailedError as e:
        return {"caught": e.details.message, "error_type": e.details.error_type}
    return "child did not fail"


def parent_does_not_catch(ctx: task.OrchestrationContext, msg: str):
    yield ctx.call_sub_orchestrator(child_fail, input=msg, instance_id=f"{ctx.instance_id}-child")
    return "child did not fail"


def can_collect_orch(ctx: task.OrchestrationContext, state):
    ev = yield ctx.wait_for_external_event("item")
    state = dict(state)
    state["n"] += 1
    state["events"] = state["events"] + [ev]
    state["executions"] = state["executions"] + [ctx.instance_id]
    if state["n"] < state["target"]:
        ctx.continue_as_new(state, save_events=True)
        return None
    return state


def wait_event_orch(ctx: task.OrchestrationContext, _):
    data = yield ctx.wait_for_external_event("proceed")
    return {"got": data}


def long_child(ctx: task.OrchestrationContext, _):
    yield ctx.wait_for_external_event("never")
    return "child finished"


def parent_of_long_child(ctx: task.OrchestrationContext, _):
    r = yield ctx.call_sub_orchestrator(long_child, instance_id=f"{ctx.instance_id}-child")
    return r


def parent_catches_long_child(ctx: task.OrchestrationContext, _):
    try:
        r = yield ctx.call_sub_orchestrator(long_child, instance_id=f"{ctx.instance_id}-child")
    except task.TaskFailedError as e:
        return {"caught": e.details.message}
    return {"child returned": r}


RETRY_200MS_X3 = task.RetryPolicy(first_retry_interval=timedelta(milliseconds=200),
                                  max_number_of_attempts=3)


def retry_flaky_orch(ctx: task.OrchestrationContext, tag: str):
    r = yield ctx.call_activity(flaky_twice, input=tag, retry_policy=RETRY_200MS_X3)
    return r


def retry_always_orch(ctx: task.OrchestrationContext, _):
    yield ctx.call_activity(always_fails, retry_policy=RETRY_200MS_X3)
    return "unreachable"


def raising_orch(ctx: task.OrchestrationContext, msg: str):
    raise InteropOrchestratorError(msg)


def raising_builtin_orch(ctx: task.OrchestrationContext, msg: str):
    raise ValueError(msg)


def activity_failure_orch(ctx: task.OrchestrationContext, _):
    yield ctx.call_activity(always_fails)
    return "unreachable"


def custom_status_orch(ctx: task.OrchestrationContext, _):
    ctx.set_custom_status({"stage": "waiting", "step": 1})
    data = yield ctx.wait_for_external_event("go")
    ctx.set_custom_status("done")
    return {"finished": data}


def rewind_orch(ctx: task.OrchestrationContext, x):
    a = yield ctx.call_activity(plain_activity, input=x)
    b = yield ctx.call_activity(fails_first_time, input=x)
    return [a, b]


def restart_orch(ctx: task.OrchestrationContext, x):
    r = yield ctx.call_activity(counting_activity, input=x)
    return {"input": x, "result": r}


def hist_child(ctx: task.OrchestrationContext, x):
    return f"child({x})"


def hist_orch(ctx: task.OrchestrationContext, x):
    a = yield ctx.call_activity(hist_activity, input=x)
    yield ctx.create_timer(timedelta(milliseconds=50))
    c = yield ctx.call_sub_orchestrator(hist_child, input=x, instance_id=f"{ctx.instance_id}-child")
    return [a, c]


ORCHESTRATORS = [chain_orch, fan_orch, timer_orch, approval_orch, buffered_events_orch,
                 child_ok, parent_ok, child_fail, parent_catches, parent_does_not_catch,
                 can_collect_orch, wait_event_orch, long_child, parent_of_long_child,
                 parent_catches_long_child,
                 retry_flaky_orch, retry_always_orch, raising_orch, raising_builtin_orch,
                 activity_failure_orch, custom_status_orch, rewind_orch, restart_orch,
                 hist_child, hist_orch]
ACTIVITIES = [chain_step, square, flaky_twice, always_fails, plain_activity, fails_first_time,
              counting_activity, hist_activity]


# ---------------------------------------------------------------------------------------------
# fixtures

@pytest.fixture(scope="module")
def worker(module_server):
    w = make_worker(module_server)
    for fn in ORCHESTRATORS:
        w.add_orchestrator(fn)
    for fn in ACTIVITIES:
        w.add_activity(fn)
    w.start()
    yield w
    w.stop()


@pytest.fixture
def server(module_server, worker):
    """The module's shared server, with the shared worker connected."""
    return module_server


@pytest.fixture
def client(server):
    c = make_client(server)
    yield c
    c.close()


# ---------------------------------------------------------------------------------------------
# 1. function chaining

def test_worker_function_chaining(client):
    iid = client.schedule_new_orchestration(chain_orch, input=2, instance_id=uid("chain"))
    st = wait_done(client, iid)
    assert st.runtime_status == OrchestrationStatus.COMPLETED, st.failure_details
    expected, v = [], 2
    for i in range(5):
        v = v * 3 + i
        expected.append(v)
    assert st.get_output() == expected
    assert st.get_input() == 2
    assert st.failure_details is None
    # each activity ran exactly once, with the action id the SDK assigned (1..5) as its taskId
    assert attempts("chain", iid) == 5
    assert task_ids("chain", iid) == [1, 2, 3, 4, 5]


# ---------------------------------------------------------------------------------------------
# 2. fan-out / fan-in

def test_worker_fan_out_fan_in_1000(client):
    n = 1000
    iid = client.schedule_new_orchestration(fan_orch, input=n, instance_id=uid("fan"))
    st = wait_done(client, iid, timeout=90)
    assert st.runtime_status == OrchestrationStatus.COMPLETED, st.failure_details
    assert st.get_output() == {"count": n, "sum": sum(i * i for i in range(n)), "in_order": True}


# ---------------------------------------------------------------------------------------------
# 3. durable timers

def test_worker_timer_never_fires_early(server, client):
    t0 = time.monotonic()  # before scheduling: the worker may start it before the call returns
    iid = client.schedule_new_orchestration(timer_orch, input={"kind": "delta", "ms": 1500},
                                            instance_id=uid("timer"))
    st = wait_done(client, iid)
    elapsed = time.monotonic() - t0
    done_wall = utcnow()
    assert st.runtime_status == OrchestrationStatus.COMPLETED, st.failure_details
    out = st.get_output()
    start, fire_at, after = (naive_utc(out[k]) for k in ("start", "fire_at", "after"))
    assert fire_at - start == timedelta(milliseconds=1500)
    # the episode that resumed after the timer was dispatched no earlier than fireAt ...
    assert after >= fire_at, out
    # ... and the orchestration completed no earlier than fireAt (server and wall clock)
    assert st.last_updated_at >= fire_at, (st.last_updated_at, fire_at)
    assert done_wall >= fire_at
    assert 1.5 <= elapsed < 15, elapsed

    # TimerFired carries the requested fireAt, pointing back at TimerCreated's id
    events = client.get_orchestration_history(iid)
    created = [e for e in events if isinstance(e, history.TimerCreatedEvent)]
    fired = [e for e in events if isinstance(e, history.TimerFiredEvent)]
    assert len(created) == 1 and len(fired) == 1
    assert fired[0].timer_id == created[0].event_id
    assert fired[0].fire_at == created[0].fire_at
    assert created[0].fire_at.replace(tzinfo=None) == fire_at


@pytest.mark.parametrize("spec", [{"kind": "delta", "ms": 1}, {"kind": "past"}], ids=["1ms", "past"])
def test_worker_tiny_and_past_timers(client, spec):
    iid = client.schedule_new_orchestration(timer_orch, input=spec, instance_id=uid("tiny-timer"))
    t0 = time.monotonic()
    st = wait_done(client, iid)
    assert st.runtime_status == OrchestrationStatus.COMPLETED, st.failure_details
    out = st.get_output()
    assert naive_utc(out["after"]) >= naive_utc(out["fire_at"])
    assert time.monotonic() - t0 < 10


# ---------------------------------------------------------------------------------------------
# 4. external events

def test_worker_event_beats_timer(client):
    iid = client.schedule_new_orchestration(approval_orch, input=60, instance_id=uid("approve"))
    assert client.wait_for_orchestration_start(iid, timeout=WAIT_S).runtime_status == \
        OrchestrationStatus.RUNNING
    t0 = time.monotonic()
    client.raise_orchestration_event(iid, "approval", data={"by": "alice"})
    st = wait_done(client, iid)
    assert st.runtime_status == OrchestrationStatus.COMPLETED, st.failure_details
    assert st.get_output() == {"result": "approved", "data": {"by": "alice"}}
    assert time.monotonic() - t0 < 10, "the event must complete it promptly, not the 60 s timer"


def test_worker_timer_beats_missing_event(client):
    t0 = time.monotonic()
    iid = client.schedule_new_orchestration(approval_orch, input=1, instance_id=uid("no-approve"))
    st = wait_done(client, iid)
    assert st.runtime_status == OrchestrationStatus.COMPLETED, st.failure_details
    assert st.get_output() == {"result": "timed out"}
    assert 1.0 <= time.monotonic() - t0 < 15


def test_worker_events_buffered_in_order(client):
    iid = client.schedule_new_orchestration(buffered_events_orch, instance_id=uid("buffer"))
    # RUNNING = the first episode committed: it now waits for "go", not yet for "data"
    assert client.wait_for_orchestration_start(iid, timeout=WAIT_S).runtime_status == \
        OrchestrationStatus.RUNNING
    client.raise_orchestration_event(iid, "data", data="first")
    client.raise_orchestration_event(iid, "data", data={"second": 2})
    client.raise_orchestration_event(iid, "DATA", data=3)  # names match case-insensitively
    client.raise_orchestration_event(iid, "go")
    st = wait_done(client, iid)
    assert st.runtime_status == OrchestrationStatus.COMPLETED, st.failure_details
    assert st.get_output() == ["first", {"second": 2}, 3]


# ---------------------------------------------------------------------------------------------
# 5. sub-orchestrations

def test_worker_sub_orchestration_success(server, client):
    iid = uid("parent-ok")
    client.schedule_new_orchestration(parent_ok, input=21, instance_id=iid)
    st = wait_done(client, iid)
    assert st.runtime_status == OrchestrationStatus.COMPLETED, st.failure_details
    child_id = f"{iid}-child"
    assert st.get_output() == {"child": {"doubled": 42, "me": child_id, "parent": iid}}

    child = client.get_orchestration_state(child_id)
    assert child is not None
    assert child.name == "child_ok"
    assert child.runtime_status == OrchestrationStatus.COMPLETED
    assert child.get_input() == 21
    assert child.get_output() == {"doubled": 42, "me": child_id, "parent": iid}
    raw = raw_get(server, child_id)
    assert raw.HasField("parentInstanceId") and raw.parentInstanceId.value == iid
    assert not raw_get(server, iid).parentInstanceId.value, "a top-level instance has no parent"


def test_worker_sub_orchestration_failure_caught(server, client):
    iid = uid("parent-catch")
    client.schedule_new_orchestration(parent_catches, input="child exploded", instance_id=iid)
    st = wait_done(client, iid)
    assert st.runtime_status == OrchestrationStatus.COMPLETED, st.failure_details
    out = st.get_output()
    assert "child exploded" in out["caught"], out

    child_id = f"{iid}-child"
    child = client.get_orchestration_state(child_id)
    assert child.runtime_status == OrchestrationStatus.FAILED
    assert child.failure_details is not None
    assert child.failure_details.message == "child exploded"
    assert child.failure_details.error_type.endswith("ChildOrchestrationError")
    assert raw_get(server, child_id).parentInstanceId.value == iid


def test_worker_sub_orchestration_failure_uncaught(client):
    iid = uid("parent-fail")
    client.schedule_new_orchestration(parent_does_not_catch, input="child broke", instance_id=iid)
    st = wait_done(client, iid)
    assert st.runtime_status == OrchestrationStatus.FAILED
    assert st.serialized_output is None
    fd = st.failure_details
    assert fd is not None
    assert "child broke" in fd.message, fd
    assert fd.error_type.endswith("TaskFailedError"), fd
    child = client.get_orchestration_state(f"{iid}-child")
    assert child.runtime_status == OrchestrationStatus.FAILED
    assert child.failure_details.message == "child broke"


# ---------------------------------------------------------------------------------------------
# 6. continue-as-new with carried-over events

def test_worker_continue_as_new_keeps_events(server, client):
    target = 12
    iid = uid("can")
    client.schedule_new_orchestration(
        can_collect_orch, instance_id=iid,
        input={"n": 0, "target": target, "events": [], "executions": []})
    # raised back to back: most arrive while an execution is in flight and must be carried over
    for i in range(target):
        client.raise_orchestration_event(iid, "item", data=i)
    st = wait_done(client, iid)
    assert st.runtime_status == OrchestrationStatus.COMPLETED, st.failure_details
    out = st.get_output()
    assert out["n"] == target
    assert out["events"] == list(range(target)), "an event was lost, duplicated or reordered"
    assert out["executions"] == [iid] * target
    # the final execution's input is what the previous one passed to continue_as_new
    assert st.get_input()["n"] == target - 1
    raw = raw_get(server, iid)
    assert raw.orchestrationStatus == pb.ORCHESTRATION_STATUS_COMPLETED
    assert len(raw.executionId.value) == 32


# ---------------------------------------------------------------------------------------------
# 7. suspend / resume

def test_worker_suspend_resume(client):
    iid = client.schedule_new_orchestration(wait_event_orch, instance_id=uid("suspend"))
    assert client.wait_for_orchestration_start(iid, timeout=WAIT_S).runtime_status == \
        OrchestrationStatus.RUNNING
    client.suspend_orchestration(iid, reason="hold on")
    wait_until(lambda: client.get_orchestration_state(iid).runtime_status
               == OrchestrationStatus.SUSPENDED, what="status SUSPENDED")

    client.raise_orchestration_event(iid, "proceed", data="payload")
    # the event must not complete a suspended orchestration
    with pytest.raises(TimeoutError):
        client.wait_for_orchestration_completion(iid, timeout=1.5)
    st = client.get_orchestration_state(iid)
    assert st.runtime_status == OrchestrationStatus.SUSPENDED
    assert st.serialized_output is None

    client.resume_orchestration(iid, reason="go on")
    st = wait_done(client, iid)
    assert st.runtime_status == OrchestrationStatus.COMPLETED, st.failure_details
    assert st.get_output() == {"got": "payload"}

    # history: suspended, then resumed; the event is committed after the suspension
    events = client.get_orchestration_history(iid)
    kinds = [type(e).__name__ for e in events]
    assert kinds.count("ExecutionSuspendedEvent") == 1 and kinds.count("ExecutionResumedEvent") == 1, kinds
    i_susp = kinds.index("ExecutionSuspendedEvent")
    i_res = kinds.index("ExecutionResumedEvent")
    raised = [i for i, e in enumerate(events) if isinstance(e, history.EventRaisedEvent)]
    assert len(raised) == 1 and events[raised[0]].name == "proceed", kinds
    assert i_susp < i_res and i_susp < raised[0], kinds
    assert events[i_susp].input == "hold on" and events[i_res].input == "go on"
    assert kinds[-1] == "ExecutionCompletedEvent"


def test_worker_terminate_suspended(client):
    iid = client.schedule_new_orchestration(wait_event_orch, instance_id=uid("suspend-term"))
    assert client.wait_for_orchestration_start(iid, timeout=WAIT_S).runtime_status == \
        OrchestrationStatus.RUNNING
    client.suspend_orchestration(iid)
    wait_until(lambda: client.get_orchestration_state(iid).runtime_status
               == OrchestrationStatus.SUSPENDED, what="status SUSPENDED")
    client.terminate_orchestration(iid, output={"why": "suspended too long"})
    st = wait_done(client, iid)
    assert st.runtime_status == OrchestrationStatus.TERMINATED
    assert st.get_output() == {"why": "suspended too long"}


# ---------------------------------------------------------------------------------------------
# 8. recursive terminate

def test_worker_recursive_terminate(server, client):
    iid = uid("term-parent")
    child_id = f"{iid}-child"
    client.schedule_new_orchestration(parent_of_long_child, instance_id=iid)
    wait_until(lambda: (s := client.get_orchestration_state(child_id)) is not None
               and s.runtime_status == OrchestrationStatus.RUNNING, what="child RUNNING")
    assert client.get_orchestration_state(iid).runtime_status == OrchestrationStatus.RUNNING

    client.terminate_orchestration(iid, output="stopped by test", recursive=True)
    parent = wait_done(client, iid)
    child = wait_done(client, child_id)
    assert parent.runtime_status == OrchestrationStatus.TERMINATED
    assert parent.get_output() == "stopped by test"
    assert child.runtime_status == OrchestrationStatus.TERMINATED
    assert child.get_output() == "stopped by test"
    assert parent.failure_details is None and child.failure_details is None
    assert raw_get(server, child_id).parentInstanceId.value == iid


def test_worker_terminated_child_fails_parent_task(server, client):
    iid = uid("term-child")
    child_id = f"{iid}-child"
    client.schedule_new_orchestration(parent_catches_long_child, instance_id=iid)
    wait_until(lambda: (s := client.get_orchestration_state(child_id)) is not None
               and s.runtime_status == OrchestrationStatus.RUNNING, what="child RUNNING")
    client.terminate_orchestration(child_id, output="child killed", recursive=False)
    child = wait_done(client, child_id)
    assert child.runtime_status == OrchestrationStatus.TERMINATED
    assert child.get_output() == "child killed"
    # the parent's sub-orchestration task fails (it must not wait forever)
    parent = wait_done(client, iid)
    assert parent.runtime_status == OrchestrationStatus.COMPLETED, parent.failure_details
    assert "child killed" in parent.get_output()["caught"], parent.get_output()


# ---------------------------------------------------------------------------------------------
# 9. activity retries

def test_worker_activity_retry_succeeds(client):
    iid = uid("retry-ok")
    t0 = time.monotonic()
    client.schedule_new_orchestration(retry_flaky_orch, input="job", instance_id=iid)
    st = wait_done(client, iid)
    elapsed = time.monotonic() - t0
    assert st.runtime_status == OrchestrationStatus.COMPLETED, st.failure_details
    assert st.get_output() == "job ok after 3 attempts"
    assert attempts("flaky", iid) == 3
    # the SDK re-schedules the activity with its original action id
    assert len(set(task_ids("flaky", iid))) == 1
    assert elapsed >= 0.4, "two 200 ms retry timers must have elapsed"
    assert elapsed < 5, "retry timers are dispatched promptly"


def test_worker_activity_retry_exhausted(client):
    iid = uid("retry-fail")
    client.schedule_new_orchestration(retry_always_orch, instance_id=iid)
    st = wait_done(client, iid)
    assert st.runtime_status == OrchestrationStatus.FAILED
    assert attempts("always", iid) == 3
    fd = st.failure_details
    assert fd is not None
    assert "permanent failure, attempt 3" in fd.message, fd
    assert st.serialized_output is None


# ---------------------------------------------------------------------------------------------
# 10. failure details

@pytest.mark.parametrize("orch,error_type", [
    (raising_orch, f"{__name__}.InteropOrchestratorError"),
    (raising_builtin_orch, "builtins.ValueError"),
], ids=["custom", "builtin"])
def test_worker_orchestrator_failure_details(client, orch, error_type):
    iid = client.schedule_new_orchestration(orch, input="orchestrator exploded",
                                            instance_id=uid("fail"))
    st = wait_done(client, iid)
    assert st.runtime_status == OrchestrationStatus.FAILED
    fd = st.failure_details
    assert fd is not None
    assert fd.message == "orchestrator exploded"
    assert fd.error_type == error_type
    assert fd.stack_trace, "the SDK reports a stack trace"
    assert st.serialized_output is None
    assert st.get_input() == "orchestrator exploded"
    with pytest.raises(Exception, match="orchestrator exploded"):
        st.raise_if_failed()


def test_worker_activity_failure_fails_orchestration(client):
    iid = client.schedule_new_orchestration(activity_failure_orch, instance_id=uid("act-fail"))
    st = wait_done(client, iid)
    assert st.runtime_status == OrchestrationStatus.FAILED
    fd = st.failure_details
    assert "permanent failure, attempt 1" in fd.message, fd
    assert fd.error_type.endswith("TaskFailedError"), fd
    assert attempts("always", iid) == 1


# ---------------------------------------------------------------------------------------------
# 11. custom status

def test_worker_custom_status(client):
    iid = client.schedule_new_orchestration(custom_status_orch, instance_id=uid("status"))
    st = wait_until(lambda: (s := client.get_orchestration_state(iid)) is not None
                    and s.serialized_custom_status is not None and s,
                    what="custom status while running")
    assert st.get_custom_status() == {"stage": "waiting", "step": 1}
    assert st.runtime_status == OrchestrationStatus.RUNNING
    assert st.serialized_output is None
    running_updated = st.last_updated_at
    client.raise_orchestration_event(iid, "go", data=7)
    done = wait_done(client, iid)
    assert done.runtime_status == OrchestrationStatus.COMPLETED, done.failure_details
    assert done.get_output() == {"finished": 7}
    assert done.get_custom_status() == "done"
    assert done.last_updated_at > running_updated
    assert client.get_orchestration_state(iid, fetch_payloads=False).serialized_custom_status is None


# ---------------------------------------------------------------------------------------------
# 12. rewind, restart

def test_worker_rewind_failed_orchestration(client):
    iid = uid("rewind")
    client.schedule_new_orchestration(rewind_orch, input="x", instance_id=iid)
    st = wait_done(client, iid)
    assert st.runtime_status == OrchestrationStatus.FAILED
    assert "first call fails" in st.failure_details.message
    assert attempts("plain", iid) == 1 and attempts("fails_first", iid) == 1

    client.rewind_orchestration(iid, reason="try again")
    # RewindInstance makes the instance non-FAILED before it returns
    assert client.get_orchestration_state(iid).runtime_status != OrchestrationStatus.FAILED
    st = wait_done(client, iid)
    assert st.runtime_status == OrchestrationStatus.COMPLETED, st.failure_details
    assert st.get_output() == ["plain:x", "second:x"]
    assert st.failure_details is None
    assert attempts("fails_first", iid) == 2, "only the failed activity runs again"
    assert attempts("plain", iid) == 1, "an activity that succeeded is not re-executed"


def test_worker_restart(server, client):
    iid = uid("restart")
    client.schedule_new_orchestration(restart_orch, input=41, instance_id=iid)
    first = wait_done(client, iid)
    assert first.runtime_status == OrchestrationStatus.COMPLETED, first.failure_details
    assert first.get_output() == {"input": 41, "result": 42}
    first_exec = raw_get(server, iid).executionId.value

    # in place: same id, a new execution, original input
    assert client.restart_orchestration(iid) == iid
    again = wait_done(client, iid)
    assert again.runtime_status == OrchestrationStatus.COMPLETED, again.failure_details
    assert again.get_output() == first.get_output()
    assert attempts("restart", iid) == 2, "the restarted instance ran again"
    assert raw_get(server, iid).executionId.value != first_exec

    # with a new instance id
    new_id = client.restart_orchestration(iid, restart_with_new_instance_id=True)
    assert new_id and new_id != iid
    other = wait_done(client, new_id)
    assert other.runtime_status == OrchestrationStatus.COMPLETED, other.failure_details
    assert other.name == "restart_orch"
    assert other.get_input() == 41
    assert other.get_output() == first.get_output()
    assert attempts("restart", new_id) == 1
    assert client.get_orchestration_state(iid).runtime_status == OrchestrationStatus.COMPLETED


def test_worker_rewind_restart_preconditions(client):
    iid = client.schedule_new_orchestration(wait_event_orch, instance_id=uid("precond"))
    assert client.wait_for_orchestration_start(iid, timeout=WAIT_S).runtime_status == \
        OrchestrationStatus.RUNNING
    # a running instance can be neither rewound nor restarted in place ...
    with pytest.raises(grpc.RpcError) as ei:
        client.rewind_orchestration(iid)
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as ei:
        client.restart_orchestration(iid)
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # ... but it can be restarted under a new id
    new_id = client.restart_orchestration(iid, restart_with_new_instance_id=True)
    assert new_id and new_id != iid
    for x in (iid, new_id):
        client.raise_orchestration_event(x, "proceed", data=x)
        st = wait_done(client, x)
        assert st.runtime_status == OrchestrationStatus.COMPLETED, st.failure_details
        assert st.get_output() == {"got": x}
    # a completed (not failed) instance cannot be rewound
    with pytest.raises(grpc.RpcError) as ei:
        client.rewind_orchestration(iid)
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert client.get_orchestration_state(iid).runtime_status == OrchestrationStatus.COMPLETED


# ---------------------------------------------------------------------------------------------
# 13. history (StreamInstanceHistory)

def test_worker_history_layout(client):
    iid = uid("history")
    child_id = f"{iid}-child"
    client.schedule_new_orchestration(hist_orch, input="h", instance_id=iid)
    st = wait_done(client, iid)
    assert st.runtime_status == OrchestrationStatus.COMPLETED, st.failure_details
    assert st.get_output() == ["act(h)", "child(h)"]

    events = client.get_orchestration_history(iid)
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "OrchestratorStartedEvent", "ExecutionStartedEvent", "TaskScheduledEvent",
        "OrchestratorStartedEvent", "TaskCompletedEvent", "TimerCreatedEvent",
        "OrchestratorStartedEvent", "TimerFiredEvent", "SubOrchestrationInstanceCreatedEvent",
        "OrchestratorStartedEvent", "SubOrchestrationInstanceCompletedEvent",
        "ExecutionCompletedEvent",
    ], kinds
    started, scheduled, completed, timer_created, timer_fired, sub_created, sub_done, done = (
        events[1], events[2], events[4], events[5], events[7], events[8], events[10], events[11])
    assert started.name == "hist_orch" and json.loads(started.input) == "h"
    assert started.orchestration_instance.instance_id == iid
    assert scheduled.name == "hist_activity" and scheduled.event_id == 1
    assert completed.task_scheduled_id == 1 and json.loads(completed.result) == "act(h)"
    assert timer_created.event_id == 2 and timer_fired.timer_id == 2
    assert timer_fired.fire_at == timer_created.fire_at
    assert sub_created.event_id == 3 and sub_created.name == "hist_child"
    assert sub_created.instance_id == child_id
    assert sub_done.task_scheduled_id == 3 and json.loads(sub_done.result) == "child(h)"
    assert done.orchestration_status == pb.ORCHESTRATION_STATUS_COMPLETED
    assert json.loads(done.result) == ["act(h)", "child(h)"]
    # OrchestratorStarted carries the dispatch time (the orchestration clock): it never goes
    # backwards, and nothing precedes the creation time carried by ExecutionStarted
    clock = [e.timestamp for e in events if isinstance(e, history.OrchestratorStartedEvent)]
    assert clock == sorted(clock), clock
    assert all(e.timestamp >= started.timestamp for e in events), [e.timestamp for e in events]

    # the child's history names its parent
    child_events = client.get_orchestration_history(child_id)
    child_started = [e for e in child_events if isinstance(e, history.ExecutionStartedEvent)]
    assert len(child_started) == 1
    parent = child_started[0].parent_instance
    assert parent is not None and parent.task_scheduled_id == 3
    assert parent.name == "hist_orch"
    assert parent.orchestration_instance.instance_id == iid
