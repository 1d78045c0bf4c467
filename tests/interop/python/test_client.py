"""Interop tests: the published `durabletask` Python SDK (TaskHubGrpcClient) against taskhubd.

No worker is connected in these tests, so instances never run: they stay PENDING until a
client call changes them (terminate, purge). Assertions are on what the SDK calls return;
where the SDK's OrchestrationState does not surface a field (version, tags, scheduled start,
execution id) the raw GetInstanceResponse the SDK received is read through a client
interceptor passed with the SDK's public `interceptors=` option.
"""

import json
import re
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import grpc
import pytest

import durabletask.internal.orchestrator_service_pb2 as pb
from durabletask.client import OrchestrationQuery, OrchestrationStatus, PurgeInstancesResult

from conftest import make_client

HEX32 = re.compile(r"^[0-9a-f]{32}$")
CLOCK_SLACK = timedelta(seconds=5)
ORCH = "interop_orchestrator"


def utcnow() -> datetime:
    """Naive UTC, comparable with the SDK's Timestamp.ToDatetime() values."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def uid(prefix: str = "py") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def rpc_code(excinfo) -> grpc.StatusCode:
    err = excinfo.value
    assert isinstance(err, grpc.RpcError), f"expected a grpc.RpcError, got {type(err)!r}: {err!r}"
    return err.code()


def rpc_details(excinfo) -> str:
    return excinfo.value.details() or ""


def raw_state(recorder, rpc: str = "GetInstance") -> pb.OrchestrationState:
    resp = recorder.responses(rpc)[-1]
    assert resp.exists
    return resp.orchestrationState


# ---------------------------------------------------------------------------------------------
# schedule_new_orchestration / get_orchestration_state

def test_schedule_with_instance_id_and_get_state(client):
    iid = uid()
    payload = {"n": 42, "s": "h\u00e9llo \u2603", "l": [1, 2, None]}
    before = utcnow()
    got = client.schedule_new_orchestration(ORCH, input=payload, instance_id=iid)
    after = utcnow()
    assert got == iid

    st = client.get_orchestration_state(iid)  # fetch_payloads defaults to True
    assert st is not None
    assert st.instance_id == iid
    assert st.name == ORCH
    assert st.runtime_status == OrchestrationStatus.PENDING
    assert before - CLOCK_SLACK <= st.created_at <= after + CLOCK_SLACK
    assert st.last_updated_at >= st.created_at
    assert st.get_input() == payload
    assert json.loads(st.serialized_input) == payload
    assert st.serialized_output is None
    assert st.serialized_custom_status is None
    assert st.failure_details is None


def test_schedule_without_instance_id(client, recorder):
    iid = client.schedule_new_orchestration(ORCH)
    assert HEX32.match(iid), iid
    # the id the SDK sent is the id the server acknowledged
    assert recorder.requests("StartInstance")[-1].instanceId == iid
    st = client.get_orchestration_state(iid)
    assert st is not None
    assert st.instance_id == iid
    assert st.name == ORCH
    assert st.runtime_status == OrchestrationStatus.PENDING
    assert st.serialized_input is None  # no input given -> none stored


def test_get_state_without_payloads(client):
    iid = client.schedule_new_orchestration(ORCH, input="abc", instance_id=uid())
    st = client.get_orchestration_state(iid, fetch_payloads=False)
    assert st is not None and st.runtime_status == OrchestrationStatus.PENDING
    assert st.serialized_input is None
    st = client.get_orchestration_state(iid, fetch_payloads=True)
    assert st.get_input() == "abc"


def test_get_state_unknown_is_none(client):
    assert client.get_orchestration_state(uid("unknown")) is None


def test_execution_id_is_returned(client, recorder):
    iid = client.schedule_new_orchestration(ORCH, instance_id=uid())
    client.get_orchestration_state(iid)
    raw = raw_state(recorder)
    assert raw.HasField("executionId")
    assert HEX32.match(raw.executionId.value), raw.executionId.value


def test_schedule_with_version_and_tags(client, recorder):
    iid = uid()
    tags = {"team": "interop", "env": "test", "unicode": "\u00e4\u00f6"}
    assert client.schedule_new_orchestration(ORCH, instance_id=iid, version="1.2.3", tags=tags) == iid
    st = client.get_orchestration_state(iid)
    assert st is not None and st.runtime_status == OrchestrationStatus.PENDING
    # OrchestrationState (SDK 1.12) has no version/tags accessors: check the response it received
    raw = raw_state(recorder)
    assert raw.version.value == "1.2.3"
    assert dict(raw.tags) == tags


def test_schedule_in_the_future(client, recorder):
    iid = uid()
    start_at = (datetime.now(timezone.utc) + timedelta(hours=1)).replace(microsecond=250000)
    assert client.schedule_new_orchestration(ORCH, instance_id=iid, start_at=start_at) == iid
    st = client.get_orchestration_state(iid)
    assert st is not None
    assert st.runtime_status == OrchestrationStatus.PENDING
    assert st.created_at <= utcnow() + CLOCK_SLACK
    # the SDK does not expose the scheduled start: read it from the response it got
    raw = raw_state(recorder)
    assert raw.HasField("scheduledStartTimestamp")
    got = raw.scheduledStartTimestamp.ToDatetime()
    assert abs(got - start_at.replace(tzinfo=None)) <= timedelta(milliseconds=1), got
    # it has not started, and will not within a short wait
    with pytest.raises(TimeoutError):
        client.wait_for_orchestration_start(iid, timeout=0.5)


def test_schedule_in_the_past_means_now(client, recorder):
    iid = uid()
    start_at = datetime.now(timezone.utc) - timedelta(hours=1)
    assert client.schedule_new_orchestration(ORCH, instance_id=iid, start_at=start_at) == iid
    st = client.get_orchestration_state(iid)
    assert st is not None and st.runtime_status == OrchestrationStatus.PENDING
    raw = raw_state(recorder)
    assert not raw.HasField("scheduledStartTimestamp"), \
        "scheduledStartTimestamp is only returned for a start time in the future"


def test_duplicate_instance_id_already_exists(client):
    iid = uid()
    client.schedule_new_orchestration(ORCH, instance_id=iid, input=1)
    with pytest.raises(grpc.RpcError) as ei:
        client.schedule_new_orchestration(ORCH, instance_id=iid, input=2)
    assert rpc_code(ei) == grpc.StatusCode.ALREADY_EXISTS
    assert "orchestration instance already exists" in rpc_details(ei)
    st = client.get_orchestration_state(iid)
    assert st.get_input() == 1, "a rejected duplicate must not change the stored instance"


def test_reuse_policy(client):
    terminal_only = pb.OrchestrationIdReusePolicy(replaceableStatus=[
        pb.ORCHESTRATION_STATUS_COMPLETED, pb.ORCHESTRATION_STATUS_FAILED,
        pb.ORCHESTRATION_STATUS_TERMINATED])
    iid = uid()
    client.schedule_new_orchestration(ORCH, instance_id=iid, input="first")

    # PENDING is not replaceable under this policy
    with pytest.raises(grpc.RpcError) as ei:
        client.schedule_new_orchestration(ORCH, instance_id=iid, input="second",
                                          reuse_id_policy=terminal_only)
    assert rpc_code(ei) == grpc.StatusCode.ALREADY_EXISTS
    assert client.get_orchestration_state(iid).get_input() == "first"

    # once TERMINATED it is replaced by a fresh PENDING instance
    client.terminate_orchestration(iid, output="done")
    assert client.get_orchestration_state(iid).runtime_status == OrchestrationStatus.TERMINATED
    assert client.schedule_new_orchestration(ORCH, instance_id=iid, input="second",
                                             reuse_id_policy=terminal_only) == iid
    st = client.get_orchestration_state(iid)
    assert st.runtime_status == OrchestrationStatus.PENDING
    assert st.get_input() == "second"
    assert st.serialized_output is None

    # a policy listing PENDING (and TERMINATED) replaces the pending instance
    replace_pending = pb.OrchestrationIdReusePolicy(replaceableStatus=[
        pb.ORCHESTRATION_STATUS_PENDING, pb.ORCHESTRATION_STATUS_TERMINATED])
    assert client.schedule_new_orchestration(ORCH, instance_id=iid, input="third",
                                             reuse_id_policy=replace_pending) == iid
    st = client.get_orchestration_state(iid)
    assert st.runtime_status == OrchestrationStatus.PENDING
    assert st.get_input() == "third"


def test_schedule_empty_name_invalid_argument(client):
    iid = uid()
    with pytest.raises(grpc.RpcError) as ei:
        client.schedule_new_orchestration("", instance_id=iid)
    assert rpc_code(ei) == grpc.StatusCode.INVALID_ARGUMENT
    assert client.get_orchestration_state(iid) is None


@pytest.mark.parametrize("bad_id", ["ctl\x01char", "nul\x00byte", "del\x7f", "x" * 257],
                         ids=["ctl", "nul", "del", "too-long"])
def test_schedule_bad_instance_id_invalid_argument(client, bad_id):
    with pytest.raises(grpc.RpcError) as ei:
        client.schedule_new_orchestration(ORCH, instance_id=bad_id)
    assert rpc_code(ei) == grpc.StatusCode.INVALID_ARGUMENT
    assert "instanceId" in rpc_details(ei)


def test_payload_over_max_payload_resource_exhausted(server_factory):
    server = server_factory.start("--max-payload", "1000")
    with make_client(server) as client:
        iid = uid()
        with pytest.raises(grpc.RpcError) as ei:
            client.schedule_new_orchestration(ORCH, instance_id=iid, input="x" * 2000)
        assert rpc_code(ei) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "input" in rpc_details(ei)
        assert client.get_orchestration_state(iid) is None, "nothing is stored on error"
        # just under the limit is fine
        assert client.schedule_new_orchestration(ORCH, instance_id=iid, input="x" * 900) == iid


def test_acknowledged_instance_survives_sigkill(server_factory):
    first = server_factory.start()
    iid = uid()
    with make_client(first) as client:
        client.schedule_new_orchestration(ORCH, instance_id=iid, input={"k": "v"}, tags={"a": "b"})
    first.kill()
    second = server_factory.start(data_dir=first.data_dir)
    with make_client(second) as client:
        st = client.get_orchestration_state(iid)
        assert st is not None
        assert st.name == ORCH
        assert st.runtime_status == OrchestrationStatus.PENDING
        assert st.get_input() == {"k": "v"}


# ---------------------------------------------------------------------------------------------
# query

def _query_pages(recorder):
    return recorder.responses("QueryInstances")


@pytest.mark.parametrize("count,page_size,pages", [(25, 4, 7), (24, 6, 4)])
def test_query_paging(client, recorder, count, page_size, pages):
    prefix = uid("q") + "-"
    ids = {client.schedule_new_orchestration(ORCH, instance_id=f"{prefix}{i:03d}", input=i)
           for i in range(count)}
    # noise that must not match the prefix
    client.schedule_new_orchestration(ORCH, instance_id=uid("other"))
    client.schedule_new_orchestration(ORCH, instance_id=prefix[:-1])

    recorder.clear()
    states = client.get_all_orchestration_states(
        OrchestrationQuery(instance_id_prefix=prefix, max_instance_count=page_size))
    seen = [s.instance_id for s in states]
    assert len(seen) == len(set(seen)), "an instance was returned twice"
    assert set(seen) == ids
    assert seen == sorted(seen), "prefix-only queries are ordered by instance id"
    assert all(s.name == ORCH and s.runtime_status == OrchestrationStatus.PENDING for s in states)
    assert all(s.serialized_input is None for s in states), "fetch_inputs_and_outputs defaults to False"

    responses = _query_pages(recorder)
    assert len(responses) == pages
    tokens = []
    for i, resp in enumerate(responses):
        assert 0 < len(resp.orchestrationState) <= page_size
        if i < pages - 1:
            assert resp.HasField("continuationToken") and resp.continuationToken.value not in ("", "0")
            tokens.append(resp.continuationToken.value)
        else:
            assert not resp.HasField("continuationToken") or resp.continuationToken.value == "", \
                "no continuation token on the last page"
    assert len(tokens) == len(set(tokens)), "a continuation token repeated"


def test_query_fetch_inputs_and_status_and_created_range(client):
    prefix = uid("f") + "-"
    ids = [client.schedule_new_orchestration(ORCH, instance_id=f"{prefix}{i}", input={"i": i})
           for i in range(6)]
    for iid in ids[:2]:
        client.terminate_orchestration(iid, output=f"out-{iid}")

    states = client.get_all_orchestration_states(
        OrchestrationQuery(instance_id_prefix=prefix, fetch_inputs_and_outputs=True))
    by_id = {s.instance_id: s for s in states}
    assert set(by_id) == set(ids)
    for i, iid in enumerate(ids):
        assert by_id[iid].get_input() == {"i": i}
    for iid in ids[:2]:
        assert by_id[iid].runtime_status == OrchestrationStatus.TERMINATED
        assert by_id[iid].get_output() == f"out-{iid}"

    terminated = client.get_all_orchestration_states(OrchestrationQuery(
        instance_id_prefix=prefix, runtime_status=[OrchestrationStatus.TERMINATED]))
    assert {s.instance_id for s in terminated} == set(ids[:2])
    either = client.get_all_orchestration_states(OrchestrationQuery(
        instance_id_prefix=prefix,
        runtime_status=[OrchestrationStatus.TERMINATED, OrchestrationStatus.PENDING]))
    assert {s.instance_id for s in either} == set(ids)
    none = client.get_all_orchestration_states(OrchestrationQuery(
        instance_id_prefix=prefix, runtime_status=[OrchestrationStatus.COMPLETED]))
    assert none == []

    # created range [from, to), built from the server's own timestamps
    created = {iid: by_id[iid].created_at for iid in ids}
    t_from, t_to = created[ids[1]], created[ids[4]]
    expected = {iid for iid, c in created.items() if t_from <= c < t_to}
    assert ids[1] in expected
    in_range = client.get_all_orchestration_states(OrchestrationQuery(
        instance_id_prefix=prefix, created_time_from=t_from, created_time_to=t_to))
    assert {s.instance_id for s in in_range} == expected
    # and without the prefix filter (fresh server: these are the only instances)
    in_range = client.get_all_orchestration_states(OrchestrationQuery(
        created_time_from=t_from, created_time_to=t_to, max_instance_count=2))
    assert {s.instance_id for s in in_range} == expected


# ---------------------------------------------------------------------------------------------
# events, suspend/resume

def test_raise_event(client):
    iid = client.schedule_new_orchestration(ORCH, instance_id=uid())
    client.raise_orchestration_event(iid, "approval", data={"ok": True})
    client.raise_orchestration_event(iid, "no-data")
    assert client.get_orchestration_state(iid).runtime_status == OrchestrationStatus.PENDING

    with pytest.raises(grpc.RpcError) as ei:
        client.raise_orchestration_event(uid("unknown"), "approval")
    assert rpc_code(ei) == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.RpcError) as ei:
        client.raise_orchestration_event(iid, "")
    assert rpc_code(ei) == grpc.StatusCode.INVALID_ARGUMENT

    # terminal instance: OK, event dropped
    client.terminate_orchestration(iid)
    client.raise_orchestration_event(iid, "late")
    assert client.get_orchestration_state(iid).runtime_status == OrchestrationStatus.TERMINATED


def test_suspend_resume(client):
    iid = client.schedule_new_orchestration(ORCH, instance_id=uid())
    client.suspend_orchestration(iid, reason="maintenance")
    client.suspend_orchestration(iid)  # de-duplicated, still OK
    # no worker: the status only flips when a worker processes the event
    assert client.get_orchestration_state(iid).runtime_status == OrchestrationStatus.PENDING
    client.resume_orchestration(iid, reason="done")
    client.resume_orchestration(iid)
    assert client.get_orchestration_state(iid).runtime_status == OrchestrationStatus.PENDING

    for call in (client.suspend_orchestration, client.resume_orchestration):
        with pytest.raises(grpc.RpcError) as ei:
            call(uid("unknown"))
        assert rpc_code(ei) == grpc.StatusCode.NOT_FOUND, call.__name__

    client.terminate_orchestration(iid)
    client.suspend_orchestration(iid)  # terminal: OK no-op
    client.resume_orchestration(iid)
    assert client.get_orchestration_state(iid).runtime_status == OrchestrationStatus.TERMINATED


# ---------------------------------------------------------------------------------------------
# terminate, waits

def test_terminate_pending(client):
    iid = client.schedule_new_orchestration(ORCH, instance_id=uid(), input="in")
    created = client.get_orchestration_state(iid)
    client.terminate_orchestration(iid, output={"reason": "test", "code": 7})
    st = client.get_orchestration_state(iid)
    assert st.runtime_status == OrchestrationStatus.TERMINATED
    assert st.get_output() == {"reason": "test", "code": 7}
    assert st.get_input() == "in"
    assert st.failure_details is None
    assert st.created_at == created.created_at
    assert st.last_updated_at >= created.last_updated_at

    t0 = time.monotonic()
    done = client.wait_for_orchestration_completion(iid, timeout=30)
    assert time.monotonic() - t0 < 5
    assert done is not None
    assert done.runtime_status == OrchestrationStatus.TERMINATED
    assert done.get_output() == {"reason": "test", "code": 7}
    # start predicate is "status != PENDING"
    started = client.wait_for_orchestration_start(iid, timeout=30)
    assert started.runtime_status == OrchestrationStatus.TERMINATED
    assert started.serialized_output is None  # wait_for_orchestration_start: fetch_payloads=False

    # terminating again is an OK no-op that keeps the first output
    client.terminate_orchestration(iid, output="second")
    assert client.get_orchestration_state(iid).get_output() == {"reason": "test", "code": 7}


def test_terminate_without_output(client):
    iid = client.schedule_new_orchestration(ORCH, instance_id=uid())
    client.terminate_orchestration(iid)
    st = client.get_orchestration_state(iid)
    assert st.runtime_status == OrchestrationStatus.TERMINATED
    assert st.serialized_output is None


def test_terminate_scheduled_future_instance(client):
    iid = client.schedule_new_orchestration(
        ORCH, instance_id=uid(), start_at=datetime.now(timezone.utc) + timedelta(hours=1))
    client.terminate_orchestration(iid, output="cancelled")
    st = client.wait_for_orchestration_completion(iid, timeout=10)
    assert st.runtime_status == OrchestrationStatus.TERMINATED
    assert st.get_output() == "cancelled"


def test_terminate_unknown_not_found(client):
    with pytest.raises(grpc.RpcError) as ei:
        client.terminate_orchestration(uid("unknown"), output="x")
    assert rpc_code(ei) == grpc.StatusCode.NOT_FOUND


def test_wait_for_completion_wakes_on_terminate(server, client):
    iid = client.schedule_new_orchestration(ORCH, instance_id=uid())
    result = {}

    def waiter():
        with make_client(server) as c2:
            t0 = time.monotonic()
            try:
                result["state"] = c2.wait_for_orchestration_completion(iid, timeout=60)
            except BaseException as e:  # reported by the main thread
                result["error"] = e
            result["elapsed"] = time.monotonic() - t0

    th = threading.Thread(target=waiter, daemon=True)
    th.start()
    client.terminate_orchestration(iid, output="bye")
    th.join(timeout=30)
    assert not th.is_alive(), "WaitForInstanceCompletion was not woken by the termination"
    assert "error" not in result, result.get("error")
    assert result["state"].runtime_status == OrchestrationStatus.TERMINATED
    assert result["state"].get_output() == "bye"
    assert result["elapsed"] < 30


@pytest.mark.parametrize("which", ["start", "completion"])
def test_wait_on_pending_times_out(client, which):
    iid = client.schedule_new_orchestration(ORCH, instance_id=uid())
    wait = getattr(client, f"wait_for_orchestration_{which}")
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        wait(iid, timeout=1)
    elapsed = time.monotonic() - t0
    assert 0.8 <= elapsed < 10, elapsed
    assert client.get_orchestration_state(iid).runtime_status == OrchestrationStatus.PENDING


@pytest.mark.parametrize("which", ["start", "completion"])
def test_wait_on_unknown_returns_none(client, which):
    wait = getattr(client, f"wait_for_orchestration_{which}")
    t0 = time.monotonic()
    assert wait(uid("unknown"), timeout=30) is None
    assert time.monotonic() - t0 < 5, "an unknown instance answers exists=false at once"


# ---------------------------------------------------------------------------------------------
# purge, list

def test_purge_single(client):
    iid = client.schedule_new_orchestration(ORCH, instance_id=uid(), input="x")
    # not terminal: nothing deleted
    res = client.purge_orchestration(iid)
    assert isinstance(res, PurgeInstancesResult)
    assert res.deleted_instance_count == 0
    assert client.get_orchestration_state(iid) is not None

    client.terminate_orchestration(iid, output="t")
    res = client.purge_orchestration(iid)
    assert res.deleted_instance_count == 1
    assert res.is_complete is True
    assert client.get_orchestration_state(iid) is None
    assert client.wait_for_orchestration_completion(iid, timeout=5) is None

    # purged / unknown ids: OK with count 0
    assert client.purge_orchestration(iid).deleted_instance_count == 0
    assert client.purge_orchestration(uid("unknown")).deleted_instance_count == 0

    # the id is free again
    assert client.schedule_new_orchestration(ORCH, instance_id=iid) == iid
    assert client.get_orchestration_state(iid).runtime_status == OrchestrationStatus.PENDING


def test_purge_by_filter(client):
    ids = [client.schedule_new_orchestration(ORCH, instance_id=f"{uid('p')}-{i}") for i in range(8)]
    terminated = ids[:6]
    for iid in terminated:
        client.terminate_orchestration(iid, output=iid)
    created = {iid: client.get_orchestration_state(iid).created_at for iid in ids}

    # a PENDING status filter purges nothing: only terminal instances are ever purged
    res = client.purge_orchestrations_by(runtime_status=[OrchestrationStatus.PENDING])
    assert res.deleted_instance_count == 0
    assert all(client.get_orchestration_state(i) is not None for i in ids)

    # [from, to) range from the server's own timestamps, TERMINATED only
    t_from, t_to = created[ids[1]], created[ids[4]]
    expected = {i for i in terminated if t_from <= created[i] < t_to}
    assert ids[1] in expected
    res = client.purge_orchestrations_by(created_time_from=t_from, created_time_to=t_to,
                                         runtime_status=[OrchestrationStatus.TERMINATED])
    assert res.deleted_instance_count == len(expected)
    assert res.is_complete is True
    for iid in ids:
        st = client.get_orchestration_state(iid)
        if iid in expected:
            assert st is None, f"{iid} should have been purged"
        else:
            assert st is not None, f"{iid} must not have been purged"

    # no status filter: every remaining terminal instance in range goes; pending ones stay
    res = client.purge_orchestrations_by(created_time_from=created[ids[0]] - timedelta(seconds=1),
                                         created_time_to=utcnow() + timedelta(minutes=1))
    assert res.deleted_instance_count == len(terminated) - len(expected)
    for iid in terminated:
        assert client.get_orchestration_state(iid) is None
    for iid in ids[6:]:
        assert client.get_orchestration_state(iid).runtime_status == OrchestrationStatus.PENDING


def test_list_instance_ids_paging(client):
    ids = [client.schedule_new_orchestration(ORCH, instance_id=f"{uid('l')}-{i}") for i in range(5)]
    pending = client.schedule_new_orchestration(ORCH, instance_id=uid("pending"))
    for iid in ids:
        client.terminate_orchestration(iid)

    seen, pages, token = [], 0, None
    while True:
        page = client.list_instance_ids(page_size=2, continuation_token=token)
        pages += 1
        assert len(page.items) <= 2
        seen += page.items
        token = page.continuation_token
        if token is None:
            break
        assert pages < 10, "paging does not terminate"
    assert pages == 3
    assert len(seen) == len(set(seen))
    assert set(seen) == set(ids), "terminal instances only"
    assert pending not in seen

    only = client.list_instance_ids(runtime_status=[OrchestrationStatus.COMPLETED])
    assert only.items == [] and only.continuation_token is None


# ---------------------------------------------------------------------------------------------
# methods not implemented yet must answer, not hang

def test_rewind_restart_unknown_answer(client):
    for call in (client.rewind_orchestration, client.restart_orchestration):
        with pytest.raises(grpc.RpcError) as ei:
            call(uid("unknown"))
        assert rpc_code(ei) in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND), call.__name__
