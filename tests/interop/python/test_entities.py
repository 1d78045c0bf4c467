"""Durable entities with the published `durabletask` Python SDK as worker and client (issue 16, first step:
signals, entity batches and the client RPCs; orchestrations calling entities come next).

  test_counter_function_entity       a function entity signalled several times, read with and without state
  test_counter_class_entity          the same with a DurableEntity class, and delete() removing it
  test_failing_operation             an operation that raises: its state change is rolled back, the next
                                     operations still apply
  test_delayed_signal                a signal with a signal_time is applied only once it is due
  test_entity_actions                an entity signalling another entity and starting an orchestration
  test_query_paging_and_clean        QueryEntities pages with tokens that never repeat, prefix filter,
                                     includeTransient, and CleanEntityStorage
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
from durabletask import entities, task
from durabletask.client import EntityQuery, OrchestrationStatus

from conftest import make_client, make_worker

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


@pytest.fixture(scope="module")
def hub(module_server):
    w = make_worker(module_server)
    w.add_entity(counter)
    w.add_entity(Account)
    w.add_orchestrator(echo_orch)
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
        stub = __import__("durabletask.internal.orchestrator_service_pb2_grpc", fromlist=["x"]).TaskHubSidecarServiceStub(
            channel)
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


def test_bad_entity_requests(module_server):
    channel = grpc.insecure_channel(module_server.address, options=[("grpc.enable_http_proxy", 0)])
    try:
        stub = __import__("durabletask.internal.orchestrator_service_pb2_grpc", fromlist=["x"]).TaskHubSidecarServiceStub(
            channel)
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
