"""Fault tests: the published Python SDK (durabletask 1.12.0) as worker and client against
taskhubd while the server crashes, worker streams are cut, and stale or bogus completion
tokens arrive.

  test_sigkill_mid_batch_loses_nothing          SIGKILL with 200 orchestrations in flight, restart on
                                                the same data dir, every one completes correctly
  test_stream_cut_mid_activity_is_redelivered   a worker's stream is cut while it runs an activity:
                                                the activity is redelivered to a new worker, the old
                                                worker's late completion is refused
  test_stream_cut_mid_orchestrator_is_redelivered   the same for an orchestrator work item
  test_unknown_and_stale_tokens_change_nothing  raw-stub completions with bogus tokens, and with a
                                                real token that went stale, are NOT_FOUND and inert
  test_repeated_completion_is_idempotent        the same applied token sent twice: OK, applied once
"""

import json
import queue
import threading
import time
from datetime import timedelta

import grpc
import pytest
from google.protobuf import wrappers_pb2

from durabletask import history
from durabletask import worker as dt_worker
from durabletask.client import OrchestrationQuery, OrchestrationStatus
from durabletask.internal import orchestrator_service_pb2 as pb

from conftest import CallRecorder, make_client, make_worker, raw_stub, wait_until

TERMINAL = {OrchestrationStatus.COMPLETED, OrchestrationStatus.FAILED,
            OrchestrationStatus.TERMINATED}
GRACE = "1"          # --orphan-grace for the stream-cut tests
WAIT_S = 30.0        # deadline for any single expected event


class Counter:
    def __init__(self):
        self._lock = threading.Lock()
        self.n = {}

    def incr(self, key) -> int:
        with self._lock:
            self.n[key] = self.n.get(key, 0) + 1
            return self.n[key]

    def get(self, key) -> int:
        with self._lock:
            return self.n.get(key, 0)

    def total(self) -> int:
        with self._lock:
            return sum(self.n.values())


def history_of(client, iid):
    return client.get_orchestration_history(iid)


def count_events(events, cls) -> int:
    return sum(1 for e in events if isinstance(e, cls))


def describe(client, iid) -> str:
    st = client.get_orchestration_state(iid)
    if st is None:
        return f"{iid}: does not exist"
    fd = st.failure_details
    return (f"{iid}: status={st.runtime_status.name} output={st.serialized_output!r} "
            f"failure={fd.message if fd else None!r}")


def diag(server_factory, client=None, iid=None) -> str:
    parts = []
    if client is not None and iid is not None:
        try:
            parts.append("state: " + describe(client, iid))
            parts.append("history: " + ", ".join(type(e).__name__ for e in history_of(client, iid)))
        except Exception as e:  # diagnostics only
            parts.append(f"(could not read state/history: {e})")
    parts.append(server_factory.logs())
    return "\n".join(parts)


# =========================================================================== (a) SIGKILL mid-batch

N_CRASH = 200
CRASH_PREFIX = "crash-"


def crash_expected(i: int) -> str:
    return f"{i}:{(2 * i + 7) * 3}"


def crash_timer_ms(i: int) -> int:
    return 300 + (i * 37) % 501          # 300..800 ms, spread over the batch


def build_crash_code(calls: Counter):
    def fa_double(ctx, x):
        calls.incr("double")
        return 2 * x

    def fa_add7(ctx, x):
        calls.incr("add7")
        return x + 7

    def fa_triple(ctx, x):
        calls.incr("triple")
        return 3 * x

    def fa_orch(ctx, i):
        a = yield ctx.call_activity("fa_double", input=i)
        b = yield ctx.call_activity("fa_add7", input=a)
        yield ctx.create_timer(timedelta(milliseconds=crash_timer_ms(i)))
        c = yield ctx.call_activity("fa_triple", input=b)
        return f"{i}:{c}"

    return ({"fa_orch": fa_orch},
            {"fa_double": fa_double, "fa_add7": fa_add7, "fa_triple": fa_triple})


def crash_snapshot(client) -> dict:
    states = client.get_all_orchestration_states(
        OrchestrationQuery(instance_id_prefix=CRASH_PREFIX, fetch_inputs_and_outputs=True))
    return {s.instance_id: s for s in states}


def test_sigkill_mid_batch_loses_nothing(server_factory, workers):
    s1 = server_factory.start()
    calls1 = Counter()
    orchs, acts = build_crash_code(calls1)
    w1 = workers.start(make_worker(s1, orchestrators=orchs, activities=acts))
    ids = [f"{CRASH_PREFIX}{i:03d}" for i in range(N_CRASH)]

    with make_client(s1) as c1:
        for i, iid in enumerate(ids):
            assert c1.schedule_new_orchestration("fa_orch", input=i, instance_id=iid) == iid

        observed = {}

        def mid_batch():
            snap = crash_snapshot(c1)
            failed = [describe(c1, k) for k, st in snap.items()
                      if st.runtime_status == OrchestrationStatus.FAILED]
            assert not failed, "orchestrations FAILED before the crash:\n" + "\n".join(failed) + \
                "\n" + server_factory.logs()
            done = {k: st for k, st in snap.items() if st.runtime_status == OrchestrationStatus.COMPLETED}
            running = [k for k, st in snap.items() if st.runtime_status not in TERMINAL]
            observed.clear()
            observed.update(done=done, running=len(running), total=len(snap))
            return len(done) >= 20 and len(running) >= 20

        wait_until(mid_batch, 60.0, ">= 20 orchestrations COMPLETED and >= 20 still running",
                   on_timeout=lambda: f"last observation: {len(observed.get('done', {}))} completed, "
                                      f"{observed.get('running')} running of {observed.get('total')}\n"
                                      + server_factory.logs())
        s1.kill()

    seen_done = {k: st.serialized_output for k, st in observed["done"].items()}
    assert observed["total"] == N_CRASH
    for k, out in seen_done.items():
        i = int(k[len(CRASH_PREFIX):])
        assert out == json.dumps(crash_expected(i)), f"{k} completed before the crash with {out!r}"

    # the old worker has lost its server; stop it before anything listens again
    workers.stop(w1)

    s2 = server_factory.restart(s1)
    with make_client(s2) as c2:
        # Before any worker connects: everything acknowledged before the crash is still there.
        snap = crash_snapshot(c2)
        missing = sorted(set(ids) - set(snap))
        assert not missing, f"{len(missing)} orchestrations lost by the crash, e.g. {missing[:5]}\n" + \
            server_factory.logs()
        durable_done = {k for k, st in snap.items() if st.runtime_status == OrchestrationStatus.COMPLETED}
        lost = sorted(k for k in seen_done
                      if k not in durable_done or snap[k].serialized_output != seen_done[k])
        assert not lost, ("orchestrations seen COMPLETED before the SIGKILL are not COMPLETED with the "
                          "same output after the restart:\n"
                          + "\n".join(describe(c2, k) for k in lost[:10]) + "\n" + server_factory.logs())
        failed = [describe(c2, k) for k, st in snap.items() if st.runtime_status == OrchestrationStatus.FAILED]
        assert not failed, "FAILED after restart:\n" + "\n".join(failed)
        n_done_at_kill = len(durable_done)
        assert 1 <= n_done_at_kill <= N_CRASH - 1, \
            f"{n_done_at_kill} of {N_CRASH} were complete at the kill: the crash was not mid-batch"

        calls2 = Counter()
        orchs, acts = build_crash_code(calls2)
        workers.start(make_worker(s2, orchestrators=orchs, activities=acts))

        deadline = time.monotonic() + 90.0
        results = {}
        for iid in ids:
            remaining = deadline - time.monotonic()
            try:
                st = c2.wait_for_orchestration_completion(iid, timeout=max(remaining, 1.0))
            except TimeoutError:
                st = None
            results[iid] = st
        bad = []
        for i, iid in enumerate(ids):
            st = results[iid]
            if st is None:
                bad.append(f"{iid}: not complete within the deadline ({describe(c2, iid)})")
            elif st.runtime_status != OrchestrationStatus.COMPLETED:
                bad.append(f"{iid}: {st.runtime_status.name} "
                           f"{st.failure_details.message if st.failure_details else ''}")
            elif st.serialized_output != json.dumps(crash_expected(i)):
                bad.append(f"{iid}: output {st.serialized_output!r}, expected {json.dumps(crash_expected(i))!r}")
        assert not bad, (f"{len(bad)} of {N_CRASH} orchestrations did not complete correctly after "
                         f"SIGKILL + restart ({n_done_at_kill} were complete at the kill):\n"
                         + "\n".join(bad[:20]) + "\n" + server_factory.logs())
        # Only work left over at the kill was redone: each unfinished orchestration needs at
        # most its 3 activities on a server that does not crash again.
        assert calls2.total() <= 3 * (N_CRASH - n_done_at_kill), (calls2.n, n_done_at_kill)
        print(f"completed at kill: {n_done_at_kill}/{N_CRASH}; activities before kill "
              f"{calls1.n}, after restart {calls2.n}")


# =========================================================================== (b) stream cut mid-work-item

def test_stream_cut_mid_activity_is_redelivered(server_factory, workers):
    """Worker 1 runs the orchestrator and starts the activity, which blocks. Its stream is cut
    (worker.stop(): the work-item stream is cancelled, the held activity keeps running). After
    --orphan-grace the activity goes to worker 2. Worker 1's late completion with its old token
    must be refused and must not complete the orchestration; worker 2's result must win."""
    s = server_factory.start("--orphan-grace", GRACE)
    calls = Counter()
    gate1, gate2 = workers.gate(), workers.gate()
    entered1, entered2 = threading.Event(), threading.Event()

    def fb_orch(ctx, x):
        r = yield ctx.call_activity("fb_act", input=x)
        return f"done:{r}"

    def fb_act_v1(ctx, x):
        calls.incr("v1")
        entered1.set()
        gate1.wait(120)
        return f"stale-v1:{x}"

    def fb_act_v2(ctx, x):
        calls.incr("v2")
        entered2.set()
        gate2.wait(120)
        return f"v2:{x}"

    rec1 = CallRecorder()
    w1 = workers.start(make_worker(s, orchestrators={"fb_orch": fb_orch},
                                   activities={"fb_act": fb_act_v1}, recorder=rec1))
    with make_client(s) as c:
        iid = c.schedule_new_orchestration("fb_orch", input="x", instance_id="cut-activity")
        assert entered1.wait(WAIT_S), "worker 1 never ran the activity\n" + diag(server_factory, c, iid)

        stop1 = workers.stop_async(w1)          # cuts worker 1's stream; the activity stays held
        workers.start(make_worker(s, orchestrators={"fb_orch": fb_orch},
                                  activities={"fb_act": fb_act_v2}))
        assert entered2.wait(WAIT_S), ("the activity held by the cut stream was not redelivered to "
                                       "the new worker\n" + diag(server_factory, c, iid))
        assert calls.get("v1") == 1

        # worker 1 finishes now and completes with its old token: refused, nothing changes
        gate1.set()
        codes = rec1.wait_for("CompleteActivityTask", WAIT_S)
        assert codes == [grpc.StatusCode.NOT_FOUND], (
            f"late CompleteActivityTask with the token of a redelivered item answered {codes}, "
            f"expected [NOT_FOUND]\n" + diag(server_factory, c, iid))
        stop1.join(WAIT_S)
        assert not stop1.is_alive(), "worker 1 did not stop"
        st = c.get_orchestration_state(iid)
        assert st.runtime_status == OrchestrationStatus.RUNNING, \
            "the stale activity result changed the orchestration: " + describe(c, iid)
        assert count_events(history_of(c, iid), history.TaskCompletedEvent) == 0

        gate2.set()
        st = c.wait_for_orchestration_completion(iid, timeout=WAIT_S)
        assert st.runtime_status == OrchestrationStatus.COMPLETED, describe(c, iid)
        assert st.serialized_output == json.dumps("done:v2:x")
        assert calls.get("v1") == 1 and calls.get("v2") == 1, calls.n
        h = history_of(c, iid)
        assert count_events(h, history.TaskScheduledEvent) == 1
        assert count_events(h, history.TaskCompletedEvent) == 1


def test_stream_cut_mid_orchestrator_is_redelivered(server_factory, workers):
    """Worker 1's orchestrator blocks inside its first episode; its stream is cut. After
    --orphan-grace the orchestrator work item goes to worker 2, which schedules the activity.
    Worker 1's late CompleteOrchestratorTask (it would complete the orchestration with
    "stale-v1") must be refused and change nothing."""
    s = server_factory.start("--orphan-grace", GRACE)
    calls = Counter()
    gate1, gate2 = workers.gate(), workers.gate()
    entered1, act_entered = threading.Event(), threading.Event()

    def fo_orch_v1(ctx, x):          # not a generator: its return value completes the orchestration
        calls.incr("orch_v1")
        entered1.set()
        gate1.wait(120)
        return "stale-v1"

    def fo_orch_v2(ctx, x):
        calls.incr("orch_v2")
        r = yield ctx.call_activity("fo_act", input=x)
        return f"orch:{r}"

    def fo_act(ctx, x):
        calls.incr("act")
        act_entered.set()
        gate2.wait(120)
        return f"act:{x}"

    rec1 = CallRecorder()
    w1 = workers.start(make_worker(s, orchestrators={"fo_orch": fo_orch_v1},
                                   activities={"fo_act": fo_act}, recorder=rec1))
    with make_client(s) as c:
        iid = c.schedule_new_orchestration("fo_orch", input="y", instance_id="cut-orchestrator")
        assert entered1.wait(WAIT_S), "worker 1 never ran the orchestrator\n" + diag(server_factory, c, iid)

        stop1 = workers.stop_async(w1)
        workers.start(make_worker(s, orchestrators={"fo_orch": fo_orch_v2},
                                  activities={"fo_act": fo_act}))
        assert act_entered.wait(WAIT_S), ("the orchestrator work item held by the cut stream was not "
                                          "redelivered to the new worker\n" + diag(server_factory, c, iid))
        assert calls.get("orch_v1") == 1 and calls.get("orch_v2") >= 1

        gate1.set()
        codes = rec1.wait_for("CompleteOrchestratorTask", WAIT_S)
        assert codes == [grpc.StatusCode.NOT_FOUND], (
            f"late CompleteOrchestratorTask with the token of a redelivered item answered {codes}, "
            f"expected [NOT_FOUND]\n" + diag(server_factory, c, iid))
        stop1.join(WAIT_S)
        assert not stop1.is_alive(), "worker 1 did not stop"
        st = c.get_orchestration_state(iid)
        assert st.runtime_status == OrchestrationStatus.RUNNING, \
            "the stale orchestrator result changed the orchestration: " + describe(c, iid)

        gate2.set()
        st = c.wait_for_orchestration_completion(iid, timeout=WAIT_S)
        assert st.runtime_status == OrchestrationStatus.COMPLETED, describe(c, iid)
        assert st.serialized_output == json.dumps("orch:act:y")
        assert calls.get("orch_v1") == 1 and calls.get("act") == 1, calls.n
        h = history_of(c, iid)
        assert count_events(h, history.TaskScheduledEvent) == 1
        assert count_events(h, history.TaskCompletedEvent) == 1
        assert count_events(h, history.ExecutionCompletedEvent) == 1


# =========================================================================== (c) stale / bogus tokens

class RawStream:
    """A GetWorkItems stream opened with the SDK package's generated stub (no SDK worker)."""

    def __init__(self, stub, request):
        self.call = stub.GetWorkItems(request)
        self.q = queue.Queue()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        try:
            for item in self.call:
                self.q.put(item)
            self.q.put(None)
        except grpc.RpcError as e:
            self.q.put(e)

    def next_item(self, timeout: float):
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self.q.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                pytest.fail(f"no work item on the raw stream within {timeout}s", pytrace=False)
            if item is None or isinstance(item, Exception):
                pytest.fail(f"raw work-item stream ended: {item!r}", pytrace=False)
            if item.HasField("healthPing"):
                continue
            return item

    def cancel(self):
        self.call.cancel()
        self.t.join(WAIT_S)


def build_fc(calls: Counter, gate=None, entered=None):
    def fc_orch(ctx, x):
        r = yield ctx.call_activity("fc_act", input=x)
        return f"{x}|{r}"

    def fc_act(ctx, x):
        calls.incr("act")
        if entered is not None:
            entered.set()
        if gate is not None:
            gate.wait(120)
        return f"sdk:{x}"

    return fc_orch, fc_act


def raw_activity_stream(stub, name: str) -> RawStream:
    # Filters: only activity `name`; an empty orchestration list matches no orchestration.
    return RawStream(stub, pb.GetWorkItemsRequest(
        maxConcurrentOrchestrationWorkItems=10, maxConcurrentActivityWorkItems=10,
        workItemFilters=pb.WorkItemFilters(activities=[pb.ActivityFilter(name=name)])))


def orchestrations_only(name: str):
    return dt_worker.WorkItemFilters(orchestrations=[dt_worker.OrchestrationWorkItemFilter(name=name)])


def activity_response(iid, task_id, token, value):
    return pb.ActivityResponse(instanceId=iid, taskId=task_id, completionToken=token,
                               result=wrappers_pb2.StringValue(value=json.dumps(value)))


def call_code(fn, req) -> grpc.StatusCode:
    try:
        fn(req, timeout=WAIT_S)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


def test_unknown_and_stale_tokens_change_nothing(server_factory, workers):
    s = server_factory.start("--orphan-grace", GRACE)
    calls = Counter()
    gate, entered = workers.gate(), threading.Event()
    fc_orch, fc_act = build_fc(calls, gate, entered)
    # worker 1 runs orchestrators only; the activity goes to the raw stream
    workers.start(make_worker(s, orchestrators={"fc_orch": fc_orch},
                              filters=orchestrations_only("fc_orch")))
    channel, stub = raw_stub(s)
    try:
        raw = raw_activity_stream(stub, "fc_act")
        with make_client(s) as c:
            iid = c.schedule_new_orchestration("fc_orch", input="c", instance_id="stale-token")
            item = raw.next_item(WAIT_S)
            assert item.HasField("activityRequest"), item
            req = item.activityRequest
            assert req.name == "fc_act" and req.orchestrationInstance.instanceId == iid
            token = item.completionToken
            assert token, "work item without a completionToken"

            # 1. unknown tokens while the real item is in flight
            for bogus in ("no-such-token", token + "x"):
                code = call_code(stub.CompleteActivityTask,
                                 activity_response(iid, req.taskId, bogus, "bogus"))
                assert code == grpc.StatusCode.NOT_FOUND, \
                    f"CompleteActivityTask with token {bogus!r}: {code}, expected NOT_FOUND"
            hijack = pb.OrchestratorResponse(
                instanceId=iid, completionToken="no-such-token",
                actions=[pb.OrchestratorAction(id=-1, completeOrchestration=pb.CompleteOrchestrationAction(
                    orchestrationStatus=pb.ORCHESTRATION_STATUS_COMPLETED,
                    result=wrappers_pb2.StringValue(value=json.dumps("hijacked"))))])
            code = call_code(stub.CompleteOrchestratorTask, hijack)
            assert code == grpc.StatusCode.NOT_FOUND, \
                f"CompleteOrchestratorTask with an unknown token: {code}, expected NOT_FOUND"
            st = c.get_orchestration_state(iid)
            assert st.runtime_status == OrchestrationStatus.RUNNING, describe(c, iid)
            h = history_of(c, iid)
            assert count_events(h, history.TaskCompletedEvent) == 0
            assert count_events(h, history.ExecutionCompletedEvent) == 0

            # 2. the real token goes stale: cut the raw stream, let the item be redelivered
            raw.cancel()
            workers.start(make_worker(s, orchestrators={"fc_orch": fc_orch},
                                      activities={"fc_act": fc_act}))
            assert entered.wait(WAIT_S), ("activity of the cut raw stream was not redelivered\n"
                                          + diag(server_factory, c, iid))
            code = call_code(stub.CompleteActivityTask,
                             activity_response(iid, req.taskId, token, "stale"))
            assert code == grpc.StatusCode.NOT_FOUND, \
                f"CompleteActivityTask with the token of a redelivered item: {code}, expected NOT_FOUND"
            st = c.get_orchestration_state(iid)
            assert st.runtime_status == OrchestrationStatus.RUNNING, \
                "the stale completion changed the orchestration: " + describe(c, iid)
            assert count_events(history_of(c, iid), history.TaskCompletedEvent) == 0

            gate.set()
            st = c.wait_for_orchestration_completion(iid, timeout=WAIT_S)
            assert st.runtime_status == OrchestrationStatus.COMPLETED, describe(c, iid)
            assert st.serialized_output == json.dumps("c|sdk:c")
            h = history_of(c, iid)
            assert count_events(h, history.TaskCompletedEvent) == 1

            # 3. after completion, the stale token still changes nothing
            code = call_code(stub.CompleteActivityTask,
                             activity_response(iid, req.taskId, token, "late"))
            assert code == grpc.StatusCode.NOT_FOUND, code
            st2 = c.get_orchestration_state(iid)
            assert st2.runtime_status == OrchestrationStatus.COMPLETED
            assert st2.serialized_output == st.serialized_output
            assert len(history_of(c, iid)) == len(h)
            assert calls.get("act") == 1
    finally:
        channel.close()


def test_repeated_completion_is_idempotent(server_factory, workers):
    s = server_factory.start("--orphan-grace", GRACE)
    fc_orch, _ = build_fc(Counter())
    workers.start(make_worker(s, orchestrators={"fc_orch": fc_orch},
                              filters=orchestrations_only("fc_orch")))
    channel, stub = raw_stub(s)
    try:
        raw = raw_activity_stream(stub, "fc_act")
        with make_client(s) as c:
            iid = c.schedule_new_orchestration("fc_orch", input="r", instance_id="repeat-token")
            item = raw.next_item(WAIT_S)
            req = item.activityRequest
            token = item.completionToken
            code = call_code(stub.CompleteActivityTask, activity_response(iid, req.taskId, token, "first"))
            assert code == grpc.StatusCode.OK, code
            st = c.wait_for_orchestration_completion(iid, timeout=WAIT_S)
            assert st.runtime_status == OrchestrationStatus.COMPLETED, describe(c, iid)
            assert st.serialized_output == json.dumps("r|first")
            h = history_of(c, iid)

            code = call_code(stub.CompleteActivityTask, activity_response(iid, req.taskId, token, "second"))
            assert code == grpc.StatusCode.OK, \
                f"repeating an applied completion token answered {code}, expected OK (idempotent ack)"
            st2 = c.get_orchestration_state(iid)
            assert st2.runtime_status == OrchestrationStatus.COMPLETED
            assert st2.serialized_output == json.dumps("r|first")
            h2 = history_of(c, iid)
            assert len(h2) == len(h)
            assert count_events(h2, history.TaskCompletedEvent) == 1
            raw.cancel()
    finally:
        channel.close()
