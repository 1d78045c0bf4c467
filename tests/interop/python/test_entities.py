"""Durable entities with the published `durabletask` Python SDK as worker and client: signals, entity batches,
the client RPCs, and orchestrations calling, signalling and locking entities.

  test_counter_function_entity       a function entity signalled several times, read with and without state
  test_counter_class_entity          the same with a DurableEntity class, and delete() removing it
  test_failing_operation             an operation that raises: its state change is rolled back, the next
                                     operations still apply
  test_delayed_signal                a signal with a signal_time is applied only once it is due
  test_entity_actions                an entity signalling another entity and starting an orchestration
  test_query_paging_and_clean        QueryEntities pages with tokens that never repeat, prefix filter,
                                     includeTransient, and CleanEntityStorage
  test_orchestration_calls_entity    call_entity returns the operation's result, a failing operation raises in
                                     the orchestration, signal_entity from an orchestration
  test_critical_section_excludes_others  lock_entities over two counters: while held, a competing section and a
                                     plain signal wait; both sections complete, amounts add up
  test_lock_released_when_owner_fails  a section's owner fails inside it: the lock is released
  test_bad_entity_requests           malformed ids and missing names answer INVALID_ARGUMENT; StartInstance
                                     refuses '@' ids

Waiting for an entity's state polls GetEntity against a deadline (signals are one-way: nothing to await).
"""

import time
import uuid
from datetime import datetime, timedelta, timezone

import grpc
import pytest

import durabletask.internal.orchestrator_service_pb2 as pb
import durabletask.internal.orchestrator_service_pb2_grpc as pb_grpc
from durabletask import entities, task
from durabletask.client import EntityQuery, OrchestrationStatus

from conftest import make_client, make_worker
from taskhubd_harness import wait_until

WAIT_S = 30


def key() -> str:
    return uuid.uuid4().hex[:12]


def wait_state(client, eid, want, timeout=WAIT_S):
    """GetEntity until its state equals `want` (None: until it does not exist)."""
    deadline = time.monotonic() + timeout
    last = "never read"
    while time.monotonic() < deadline:
        md = client.get_entity(eid, include_state=True)
        last = None if md is None else md.get_state(int) if isinstance(want, int) else md.get_state()
        if (md is None and want is None) or (md is not None and last == want):
            return md
        time.sleep(0.02)
    raise AssertionError(f"entity {eid}: state {last!r}, expected {want!r} within {timeout}s")


# ---------------------------------------------------------------------------------------------
# the worker's entities and orchestrations

def counter(ctx: entities.EntityContext, input):
    value = ctx.get_state(int, 0)
    if ctx.operation == "add":
        ctx.set_state(value + int(input))
    elif ctx.operation == "reset":
        ctx.set_state(0)
    elif ctx.operation == "get":
        return value
    elif ctx.operation == "boom":
        ctx.set_state(value + 1000)  # rolled back: the operation fails
        raise ValueError("boom")
    elif ctx.operation == "forward":  # signal another counter, start an orchestration
        ctx.signal_entity(entities.EntityInstanceId("counter", input["to"]), "add", input["amount"])
        ctx.schedule_new_orchestration("echo_orch", input=input["amount"], instance_id=input["orch"])
    return None


class Account(entities.DurableEntity):
    def deposit(self, amount: int):
        self.set_state(self.get_state(int, 0) + amount)

    def balance(self):
        return self.get_state(int, 0)


def echo_orch(ctx: task.OrchestrationContext, x):
    return x


def call_orch(ctx: task.OrchestrationContext, k):
    """Calls a counter: add, then get; a failing call's error is caught and returned."""
    eid = entities.EntityInstanceId("counter", k)
    yield ctx.call_entity(eid, "add", 5)
    value = yield ctx.call_entity(eid, "get")
    try:
        yield ctx.call_entity(eid, "boom")
        failed = None
    except task.TaskFailedError as e:
        failed = e.details.message
    ctx.signal_entity(eid, "add", 100)
    return {"value": value, "failed": failed}


def transfer_orch(ctx: task.OrchestrationContext, arg):
    """Moves `amount` from one counter to another inside a critical section over both."""
    a = entities.EntityInstanceId("counter", arg["from"])
    b = entities.EntityInstanceId("counter", arg["to"])
    with (yield ctx.lock_entities([a, b])):
        x = yield ctx.call_entity(a, "get")
        if arg.get("hold"):
            yield ctx.wait_for_external_event("go")  # keeps the lock until the test raises "go"
        yield ctx.call_entity(a, "add", -arg["amount"])
        yield ctx.call_entity(b, "add", arg["amount"])
    return x


def lock_and_fail_orch(ctx: task.OrchestrationContext, k):
    """Takes a lock and fails inside the critical section: taskhubd releases the lock when it ends."""
    eid = entities.EntityInstanceId("counter", k)
    with (yield ctx.lock_entities([eid])):
        yield ctx.call_entity(eid, "add", 1)
        raise ValueError("failed while holding the lock")


@pytest.fixture(scope="module")
def hub(module_server):
    w = make_worker(module_server)
    w.add_entity(counter)
    w.add_entity(Account)
    w.add_orchestrator(echo_orch)
    w.add_orchestrator(call_orch)
    w.add_orchestrator(transfer_orch)
    w.add_orchestrator(lock_and_fail_orch)
    # Filters name what it runs: an entity nobody registered ('nobody') stays queued, a transient entity.
    w.use_work_item_filters()
    w.start()
    c = make_client(module_server)
    yield c
    c.close()
    w.stop()


# ---------------------------------------------------------------------------------------------

def test_counter_function_entity(hub):
    eid = entities.EntityInstanceId("counter", key())
    assert hub.get_entity(eid) is None  # never signalled: does not exist
    for n in (1, 2, 3):
        hub.signal_entity(eid, "add", n)
    md = wait_state(hub, eid, 6)
    assert md.id == eid if hasattr(md, "id") else True
    assert md.last_modified is not None
    assert md.backlog_queue_size == 0
    without = hub.get_entity(eid, include_state=False)
    assert without is not None  # still exists: has state


def test_counter_class_entity(hub):
    eid = entities.EntityInstanceId("account", key())
    hub.signal_entity(eid, "deposit", 40)
    hub.signal_entity(eid, "deposit", 2)
    wait_state(hub, eid, 42)
    hub.signal_entity(eid, "delete")  # DurableEntity.delete: the state goes, and the entity with it
    wait_state(hub, eid, None)
    q = hub.get_all_entities(EntityQuery(instance_id_starts_with=str(eid), include_transient=True))
    assert q == [], q  # nothing left of it: no state, nothing queued


def test_failing_operation(hub):
    eid = entities.EntityInstanceId("counter", key())
    hub.signal_entity(eid, "add", 5)
    hub.signal_entity(eid, "boom")
    hub.signal_entity(eid, "add", 1)
    wait_state(hub, eid, 6)  # boom's +1000 was rolled back, the operation after it applied


def test_delayed_signal(hub):
    eid = entities.EntityInstanceId("counter", key())
    hub.signal_entity(eid, "add", 1)
    wait_state(hub, eid, 1)
    due = datetime.now(timezone.utc) + timedelta(seconds=1.5)
    hub.signal_entity(eid, "add", 10, signal_time=due)
    hub.signal_entity(eid, "add", 100)
    wait_state(hub, eid, 101)  # the immediate one applies first
    md = wait_state(hub, eid, 111)
    assert datetime.now(timezone.utc) >= due, "a delayed signal applied before its time"
    assert md.get_state(int) == 111


def test_entity_actions(hub):
    src, dst = entities.EntityInstanceId("counter", key()), entities.EntityInstanceId("counter", key())
    orch = f"ent-orch-{key()}"
    hub.signal_entity(src, "forward", {"to": dst.key, "amount": 7, "orch": orch})
    wait_state(hub, dst, 7)
    st = hub.wait_for_orchestration_completion(orch, timeout=WAIT_S)
    assert st is not None and st.runtime_status == OrchestrationStatus.COMPLETED, st
    assert st.serialized_output == "7"


def test_query_paging_and_clean(hub, module_server):
    prefix = f"q{key()}"
    ids = [entities.EntityInstanceId("counter", f"{prefix}-{i:02d}") for i in range(23)]
    for eid in ids:
        hub.signal_entity(eid, "add", 1)
    for eid in ids:
        wait_state(hub, eid, 1)
    # pages of 10 through the raw stub: 10 + 10 + 3, each token strictly after the last, never repeated
    channel = grpc.insecure_channel(module_server.address, options=[("grpc.enable_http_proxy", 0)])
    try:
        stub = pb_grpc.TaskHubSidecarServiceStub(channel)
        seen, tokens, token = [], [], None
        while True:
            q = pb.EntityQuery(includeState=True)
            q.instanceIdStartsWith.value = f"@counter@{prefix}"
            q.pageSize.value = 10
            if token is not None:
                q.continuationToken.value = token
            resp = stub.QueryEntities(pb.QueryEntitiesRequest(query=q), timeout=WAIT_S)
            seen += [e.instanceId for e in resp.entities]
            assert all(e.serializedState.value == "1" for e in resp.entities)
            if not resp.HasField("continuationToken"):
                break
            token = resp.continuationToken.value
            assert token not in tokens, f"continuation token {token!r} repeated"
            tokens.append(token)
        assert seen == sorted(str(i) for i in ids), seen
        assert len(tokens) == 2

        # transient entities: signalled, with no state yet (nobody runs 'nobody'): only with includeTransient
        ghost = entities.EntityInstanceId("nobody", f"{prefix}-ghost")
        hub.signal_entity(ghost, "op")
        with_t = hub.get_all_entities(EntityQuery(instance_id_starts_with="@nobody@" + prefix, include_transient=True))
        assert [str(e.id) for e in with_t] == [str(ghost)], with_t
        assert with_t[0].backlog_queue_size == 1
        assert hub.get_all_entities(EntityQuery(instance_id_starts_with="@nobody@" + prefix)) == []
        assert hub.get_entity(ghost) is None  # no state: does not exist

        # clean-up keeps an entity with queued work, removes nothing that has state
        result = hub.clean_entity_storage()
        assert result.empty_entities_removed == 0, result
        assert len(hub.get_all_entities(EntityQuery(instance_id_starts_with=f"@counter@{prefix}"))) == 23
    finally:
        channel.close()


def test_orchestration_calls_entity(hub):
    k = key()
    iid = hub.schedule_new_orchestration(call_orch, input=k)
    st = hub.wait_for_orchestration_completion(iid, timeout=WAIT_S)
    assert st.runtime_status == OrchestrationStatus.COMPLETED, st.failure_details
    out = st.get_output()
    assert out["value"] == 5, out  # the result of 'get' came back to the orchestration
    assert "boom" in out["failed"], out  # the failed call raised in the orchestration
    wait_state(hub, entities.EntityInstanceId("counter", k), 105)  # and the signal after it applied


def test_critical_section_excludes_others(hub):
    a, b = key(), key()
    ea, eb = entities.EntityInstanceId("counter", a), entities.EntityInstanceId("counter", b)
    hub.signal_entity(ea, "add", 50)
    hub.signal_entity(eb, "add", 1)
    wait_state(hub, ea, 50)
    wait_state(hub, eb, 1)
    holder = hub.schedule_new_orchestration(transfer_orch, input={"from": a, "to": b, "amount": 10, "hold": True})
    hub.wait_for_orchestration_start(holder, timeout=WAIT_S)
    # the holder owns both locks once its first call inside the section returned: wait for its event wait
    def locked():
        md = hub.get_entity(ea, include_state=False)
        return md is not None and md._locked_by not in (None, "")

    wait_until(locked, WAIT_S, "the critical section to lock the entity")
    assert str(hub.get_entity(eb, include_state=False)._locked_by) == holder
    # a competing section and a plain signal wait while the lock is held
    rival = hub.schedule_new_orchestration(transfer_orch, input={"from": a, "to": b, "amount": 1})
    hub.signal_entity(ea, "add", 1000)
    # both wait in the entities' queues (the rival's lock request at the first entity of its set, the signal at a)
    wait_until(lambda: sum(hub.get_entity(x, include_state=False).backlog_queue_size for x in (ea, eb)) >= 2,
               WAIT_S, "the competing requests to reach the entities' queues")
    assert hub.get_entity(ea).get_state(int) == 50, "an operation ran inside another's critical section"
    assert hub.get_orchestration_state(rival).runtime_status in (OrchestrationStatus.PENDING,
                                                                 OrchestrationStatus.RUNNING)
    hub.raise_orchestration_event(holder, "go")
    st = hub.wait_for_orchestration_completion(holder, timeout=WAIT_S)
    assert st.runtime_status == OrchestrationStatus.COMPLETED and st.get_output() == 50, st
    st = hub.wait_for_orchestration_completion(rival, timeout=WAIT_S)
    assert st.runtime_status == OrchestrationStatus.COMPLETED, st.failure_details
    wait_state(hub, ea, 50 - 10 - 1 + 1000)
    wait_state(hub, eb, 12)
    assert hub.get_entity(ea, include_state=False)._locked_by in (None, "")


def test_lock_released_when_owner_fails(hub):
    k = key()
    eid = entities.EntityInstanceId("counter", k)
    iid = hub.schedule_new_orchestration(lock_and_fail_orch, input=k)
    st = hub.wait_for_orchestration_completion(iid, timeout=WAIT_S)
    assert st.runtime_status == OrchestrationStatus.FAILED, st
    hub.signal_entity(eid, "add", 10)  # runs only once the failed owner's lock is gone
    md = wait_state(hub, eid, 11)
    assert md._locked_by in (None, "")


def test_bad_entity_requests(module_server):
    channel = grpc.insecure_channel(module_server.address, options=[("grpc.enable_http_proxy", 0)])
    try:
        stub = pb_grpc.TaskHubSidecarServiceStub(channel)
        for bad in ("counter@x", "@@x", "", "@noat"):
            with pytest.raises(grpc.RpcError) as ei:
                stub.SignalEntity(pb.SignalEntityRequest(instanceId=bad, name="add"), timeout=WAIT_S)
            assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (bad, ei.value.details())
            assert "instanceId" in ei.value.details()
        with pytest.raises(grpc.RpcError) as ei:
            stub.SignalEntity(pb.SignalEntityRequest(instanceId="@counter@x", name=""), timeout=WAIT_S)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "name" in ei.value.details()
        with pytest.raises(grpc.RpcError) as ei:
            stub.StartInstance(pb.CreateInstanceRequest(instanceId="@counter@x", name="o"), timeout=WAIT_S)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "entity" in ei.value.details()
        with pytest.raises(grpc.RpcError) as ei:
            stub.CompleteEntityTask(pb.EntityBatchResult(), timeout=WAIT_S)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "completionToken" in ei.value.details()
        with pytest.raises(grpc.RpcError) as ei:
            stub.CompleteEntityTask(pb.EntityBatchResult(completionToken="e" + "0" * 32), timeout=WAIT_S)
        assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        channel.close()


def blob(ctx: entities.EntityContext, input):
    ctx.set_state(input)


def test_query_pages_fit_the_send_limit(server_factory):
    """States of up to --max-payload each: a page of them is cut to fit one reply (--max-send-message), and the
    next page starts after the last entity returned, so every entity comes exactly once."""
    s = server_factory.start("--max-send-message", "256K", "--max-payload", "32K")
    w = make_worker(s)
    w.add_entity(blob)
    w.start()
    c = make_client(s)
    try:
        ids = [entities.EntityInstanceId("blob", f"b{i:02d}") for i in range(20)]
        for eid in ids:
            c.signal_entity(eid, "set", "x" * 30000)
        for eid in ids:
            wait_until(lambda: c.get_entity(eid) is not None, WAIT_S, f"{eid} to get its state")
        got = c.get_all_entities(EntityQuery(instance_id_starts_with="@blob@", include_state=True, page_size=100))
        assert sorted(str(e.id) for e in got) == sorted(str(i) for i in ids)
        assert all("x" * 30000 in str(e.get_state()) for e in got)
    finally:
        c.close()
        w.stop()


def test_v2_work_items(server_factory):
    """--entity-work-items v2: batches as EntityRequest (the queued history events); the SDK converts them and the
    same signals, calls and failures work."""
    s = server_factory.start("--entity-work-items", "v2", "--log-level", "debug")
    w = make_worker(s)
    w.add_entity(counter)
    w.add_orchestrator(call_orch)
    w.start()
    c = make_client(s)
    try:
        k = key()
        eid = entities.EntityInstanceId("counter", k)
        c.signal_entity(eid, "add", 2)
        iid = c.schedule_new_orchestration(call_orch, input=k)
        st = c.wait_for_orchestration_completion(iid, timeout=WAIT_S)
        assert st.runtime_status == OrchestrationStatus.COMPLETED, st.failure_details
        assert st.get_output()["value"] == 7 and "boom" in st.get_output()["failed"], st.get_output()
        wait_state(c, eid, 107)
    finally:
        c.close()
        w.stop()
    assert "encoding=v2" in s.stderr_text() and "encoding=v1" not in s.stderr_text()


def scheduled_job(ctx: task.OrchestrationContext, x):
    return x


def test_scheduled_tasks(server_factory):
    """Python's scheduled tasks, built on entities and orchestrations: create, describe, pause, resume, update, list,
    delete, and a schedule that really starts its orchestration."""
    from durabletask.scheduled import (ScheduledTaskClient, ScheduleCreationOptions, ScheduleQuery, ScheduleStatus,
                                       ScheduleUpdateOptions)
    s = server_factory.start()
    w = make_worker(s)
    w.configure_scheduled_tasks()
    w.add_orchestrator(scheduled_job)
    w.start()
    c = make_client(s)
    try:
        sc = ScheduledTaskClient(c, operation_timeout=WAIT_S)
        sid = f"sched-{key()}"
        target = f"job-{key()}"
        sched = sc.create_schedule(ScheduleCreationOptions(
            schedule_id=sid, orchestration_name="scheduled_job", interval=timedelta(seconds=1),
            orchestration_input="tick", orchestration_instance_id=target))
        d = sched.describe()
        assert d.schedule_id == sid and d.status == ScheduleStatus.ACTIVE, d
        # it really runs: the orchestration it starts completes with the schedule's input
        def ran():
            st = c.get_orchestration_state(target)
            return st if st is not None and st.runtime_status == OrchestrationStatus.COMPLETED else None

        st = wait_until(ran, WAIT_S, "the schedule to run its orchestration")
        assert st.serialized_output == '"tick"', st.serialized_output
        sched.pause()
        assert sched.describe().status == ScheduleStatus.PAUSED
        sched.resume()
        assert sched.describe().status == ScheduleStatus.ACTIVE
        sched.update(ScheduleUpdateOptions(interval=timedelta(seconds=5)))
        assert sched.describe().interval == timedelta(seconds=5)
        assert sid in [x.schedule_id for x in sc.list_schedules(ScheduleQuery())]
        sched.delete()
        assert sc.get_schedule(sid) is None
    finally:
        c.close()
        w.stop()


def test_delete_task_hub_removes_entities(server_factory):
    """DeleteTaskHub wipes entities too (their records and queues), in both stores."""
    s = server_factory.start("--allow-delete-taskhub")
    c = make_client(s)
    channel = grpc.insecure_channel(s.address, options=[("grpc.enable_http_proxy", 0)])
    try:
        stub = pb_grpc.TaskHubSidecarServiceStub(channel)
        c.signal_entity(entities.EntityInstanceId("nobody", "wipe-me"), "op")
        assert len(c.get_all_entities(EntityQuery(include_transient=True))) == 1
        stub.DeleteTaskHub(pb.DeleteTaskHubRequest(), timeout=WAIT_S)
        assert c.get_all_entities(EntityQuery(include_transient=True)) == []
    finally:
        channel.close()
        c.close()
