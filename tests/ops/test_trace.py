"""W3C trace context: a traceparent given at StartInstance reaches the activity work items and child
orchestrations whose actions carry none. Everything through the raw generated stub of the SDK package:
one raw GetWorkItems stream acts as the worker.

  test_traceparent_field_reaches_activity      CreateInstanceRequest.parentTraceContext.traceParent:
                                               stored in ExecutionStarted, carried to the activity of
                                               a ScheduleTask action without parentTraceContext
  test_traceparent_metadata_reaches_activity   the same with the traceparent only as gRPC metadata
  test_traceparent_field_wins_over_metadata    field and (different) metadata: the field is used
  test_action_trace_context_is_kept            a ScheduleTask action with its own parentTraceContext:
                                               the activity gets the action's, not the start's
  test_traceparent_reaches_child_orchestration a CreateSubOrchestration action without one: the child's
                                               ExecutionStarted carries the parent's traceparent
  test_traceparent_survives_restart            given as metadata to a server that is then stopped: after
                                               a restart on the same data dir the activity still gets it
"""

import json
import os
import queue
import threading
import time

import grpc
import pytest
from google.protobuf import wrappers_pb2

from durabletask.internal import orchestrator_service_pb2 as pb

from conftest import raw_stub

WAIT_S = 30.0


def traceparent() -> str:
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"


class RawStream:
    """A GetWorkItems stream opened with the SDK package's generated stub (no SDK worker)."""

    def __init__(self, stub):
        self.call = stub.GetWorkItems(pb.GetWorkItemsRequest(
            maxConcurrentOrchestrationWorkItems=10, maxConcurrentActivityWorkItems=10))
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

    def next_item(self, timeout: float = WAIT_S):
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

    def close(self):
        self.call.cancel()
        self.t.join(WAIT_S)


@pytest.fixture
def raw(server_factory):
    s = server_factory.start()
    channel, stub = raw_stub(s)
    stream = RawStream(stub)
    yield s, stub, stream
    stream.close()
    channel.close()


def sv(value) -> wrappers_pb2.StringValue:
    return wrappers_pb2.StringValue(value=json.dumps(value))


def orchestrator_item(stream: RawStream, iid: str):
    item = stream.next_item()
    assert item.HasField("orchestratorRequest"), item
    assert item.orchestratorRequest.instanceId == iid, item
    return item


def execution_started(item):
    req = item.orchestratorRequest
    for ev in list(req.pastEvents) + list(req.newEvents):
        if ev.HasField("executionStarted"):
            return ev.executionStarted
    raise AssertionError(f"no ExecutionStarted in the orchestrator work item: {item}")


def schedule(stub, item, name: str, trace: pb.TraceContext | None = None):
    act = pb.ScheduleTaskAction(name=name, input=sv("in"))
    if trace is not None:
        act.parentTraceContext.CopyFrom(trace)
    stub.CompleteOrchestratorTask(pb.OrchestratorResponse(
        instanceId=item.orchestratorRequest.instanceId, completionToken=item.completionToken,
        actions=[pb.OrchestratorAction(id=1, scheduleTask=act)]), timeout=WAIT_S)


def finish(stub, item, result):
    stub.CompleteOrchestratorTask(pb.OrchestratorResponse(
        instanceId=item.orchestratorRequest.instanceId, completionToken=item.completionToken,
        actions=[pb.OrchestratorAction(id=-1, completeOrchestration=pb.CompleteOrchestrationAction(
            orchestrationStatus=pb.ORCHESTRATION_STATUS_COMPLETED, result=sv(result)))]), timeout=WAIT_S)


def wait_completed(stub, iid, result):
    r = stub.WaitForInstanceCompletion(pb.GetInstanceRequest(instanceId=iid, getInputsAndOutputs=True),
                                       timeout=WAIT_S)
    assert r.exists, iid
    assert r.orchestrationState.orchestrationStatus == pb.ORCHESTRATION_STATUS_COMPLETED, r
    assert r.orchestrationState.output.value == json.dumps(result), r


def start(stub, iid, *, field_tp=None, metadata_tp=None):
    req = pb.CreateInstanceRequest(instanceId=iid, name="tr_orch", input=sv(1))
    if field_tp is not None:
        req.parentTraceContext.traceParent = field_tp
    md = (("traceparent", metadata_tp),) if metadata_tp is not None else None
    stub.StartInstance(req, metadata=md, timeout=WAIT_S)


def run_activity_case(stub, stream, iid, *, field_tp=None, metadata_tp=None, action_trace=None,
                      started_already=False):
    """Starts iid (unless started_already), answers its first turn with a ScheduleTask, returns
    (ExecutionStarted, ActivityRequest), then completes the activity and the orchestration."""
    if not started_already:
        start(stub, iid, field_tp=field_tp, metadata_tp=metadata_tp)

    item = orchestrator_item(stream, iid)
    started = execution_started(item)
    schedule(stub, item, "tr_act", action_trace)

    act_item = stream.next_item()
    assert act_item.HasField("activityRequest"), act_item
    act = act_item.activityRequest
    assert act.name == "tr_act" and act.orchestrationInstance.instanceId == iid, act
    stub.CompleteActivityTask(pb.ActivityResponse(instanceId=iid, taskId=act.taskId,
                                                  completionToken=act_item.completionToken, result=sv("done")),
                              timeout=WAIT_S)
    item = orchestrator_item(stream, iid)
    assert any(ev.HasField("taskCompleted") for ev in item.orchestratorRequest.newEvents), item
    finish(stub, item, "ok")
    wait_completed(stub, iid, "ok")
    return started, act


def test_traceparent_field_reaches_activity(raw):
    _, stub, stream = raw
    tp = traceparent()
    started, act = run_activity_case(stub, stream, "tr-field", field_tp=tp)
    assert started.parentTraceContext.traceParent == tp, started
    assert act.parentTraceContext.traceParent == tp, \
        f"ActivityRequest.parentTraceContext {act.parentTraceContext!r}, expected traceParent {tp}"


def test_traceparent_metadata_reaches_activity(raw):
    _, stub, stream = raw
    tp = traceparent()
    started, act = run_activity_case(stub, stream, "tr-metadata", metadata_tp=tp)
    assert started.parentTraceContext.traceParent == tp, started
    assert act.parentTraceContext.traceParent == tp, \
        f"ActivityRequest.parentTraceContext {act.parentTraceContext!r}, expected traceParent {tp}"


def test_traceparent_field_wins_over_metadata(raw):
    _, stub, stream = raw
    tp_field, tp_md = traceparent(), traceparent()
    started, act = run_activity_case(stub, stream, "tr-both", field_tp=tp_field, metadata_tp=tp_md)
    assert started.parentTraceContext.traceParent == tp_field, started
    assert act.parentTraceContext.traceParent == tp_field, act


def test_action_trace_context_is_kept(raw):
    _, stub, stream = raw
    tp_start, tp_action = traceparent(), traceparent()
    started, act = run_activity_case(stub, stream, "tr-action", field_tp=tp_start,
                                     action_trace=pb.TraceContext(traceParent=tp_action))
    assert started.parentTraceContext.traceParent == tp_start, started
    assert act.parentTraceContext.traceParent == tp_action, \
        f"the action's own trace context was replaced: {act.parentTraceContext!r}, expected {tp_action}"


def test_traceparent_reaches_child_orchestration(raw):
    _, stub, stream = raw
    tp = traceparent()
    req = pb.CreateInstanceRequest(instanceId="tr-parent", name="tr_parent", input=sv(1))
    req.parentTraceContext.traceParent = tp
    stub.StartInstance(req, timeout=WAIT_S)

    item = orchestrator_item(stream, "tr-parent")
    stub.CompleteOrchestratorTask(pb.OrchestratorResponse(
        instanceId="tr-parent", completionToken=item.completionToken,
        actions=[pb.OrchestratorAction(id=1, createSubOrchestration=pb.CreateSubOrchestrationAction(
            instanceId="tr-child", name="tr_child", input=sv(2)))]), timeout=WAIT_S)

    child = orchestrator_item(stream, "tr-child")
    started = execution_started(child)
    assert started.parentTraceContext.traceParent == tp, \
        f"child ExecutionStarted.parentTraceContext {started.parentTraceContext!r}, expected {tp}"
    finish(stub, child, "child-ok")

    item = orchestrator_item(stream, "tr-parent")
    assert any(ev.HasField("subOrchestrationInstanceCompleted")
               for ev in item.orchestratorRequest.newEvents), item
    finish(stub, item, "parent-ok")
    wait_completed(stub, "tr-child", "child-ok")
    wait_completed(stub, "tr-parent", "parent-ok")


def test_traceparent_survives_restart(server_factory):
    first = server_factory.start()
    tp = traceparent()
    channel, stub = raw_stub(first)
    with channel:
        start(stub, "tr-restart", metadata_tp=tp)
    first.stop()

    s = server_factory.restart(first)
    channel, stub = raw_stub(s)
    stream = RawStream(stub)
    try:
        started, act = run_activity_case(stub, stream, "tr-restart", started_already=True)
    finally:
        stream.close()
        channel.close()
    assert started.parentTraceContext.traceParent == tp, started
    assert act.parentTraceContext.traceParent == tp, act
