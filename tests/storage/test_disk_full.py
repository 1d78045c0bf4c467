"""A full disk, for real: taskhubd's data directory on a 64 MB tmpfs (conftest.small_disk) that the test
fills while the published Python SDK runs orchestrations (a chain of two activities) against it.

  test_disk_full_fails_calls_keeps_serving_and_resumes
      with the disk full, StartInstance fails with RESOURCE_EXHAUSTED naming the full disk, taskhubd stays
      up and serves every acknowledged instance (input included); no refused instance exists; once the
      filler is deleted writes resume without a restart, every acknowledged orchestration completes with
      its correct output, and after a restart on the same data every one is still there.
"""

import json
import time

import grpc
from google.protobuf import wrappers_pb2

from durabletask import worker as dt_worker
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.grpc_options import GrpcChannelOptions
from durabletask.internal import orchestrator_service_pb2 as pb

from conftest import CHANNEL_OPTIONS, raw_stub, wait_until

WAIT_S = 60.0


PAD = "x" * 100_000  # inputs large enough to use up the WAL's preallocated room quickly


def chain(ctx, inp):
    a = yield ctx.call_activity("echo", input=inp[0])
    b = yield ctx.call_activity("echo", input=a)
    return b


def echo(ctx, n):
    return n + 1


def start(stub, iid, n):
    stub.StartInstance(pb.CreateInstanceRequest(instanceId=iid, name="chain",
                                                input=wrappers_pb2.StringValue(value=json.dumps([n, PAD]))),
                       timeout=30)


def get(stub, iid):
    return stub.GetInstance(pb.GetInstanceRequest(instanceId=iid, getInputsAndOutputs=True), timeout=30)


def check_instance(stub, iid, n, completed):
    r = get(stub, iid)
    assert r.exists, f"acknowledged instance {iid} is gone"
    s = r.orchestrationState
    assert json.loads(s.input.value) == [n, PAD], f"{iid}: input {s.input.value[:40]!r}..."
    if completed:
        assert s.orchestrationStatus == pb.ORCHESTRATION_STATUS_COMPLETED, f"{iid}: {s.orchestrationStatus}"
        assert json.loads(s.output.value) == n + 2, f"{iid}: output {s.output.value!r}"


def test_disk_full_fails_calls_keeps_serving_and_resumes(servers, workers, small_disk):
    data = small_disk.path / "data"
    server = servers.start(data)
    channel, stub = raw_stub(server)
    worker = dt_worker.TaskHubGrpcWorker(host_address=server.address,
                                         channel_options=GrpcChannelOptions(raw_options=CHANNEL_OPTIONS))
    worker.add_orchestrator(chain)
    worker.add_activity(echo)
    workers.start(worker)

    acked = {}  # instance id -> input
    for i in range(40):
        iid = f"before-{i}"
        start(stub, iid, i)
        acked[iid] = i

    filler = small_disk.fill()
    refused, codes = [], set()
    # RocksDB preallocates the WAL file: writes go on into that room until it is used up.
    for i in range(300):
        if len(refused) >= 5:
            break
        iid = f"full-{i}"
        try:
            start(stub, iid, 1000 + i)
            acked[iid] = 1000 + i
        except grpc.RpcError as e:
            refused.append(iid)
            codes.add(e.code())
            if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                assert "No space left on device" in e.details() or "(disk full)" in e.details(), e.details()
    assert refused, "no StartInstance failed with the disk full\n" + servers.logs()
    assert codes <= {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE}, codes
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes, codes

    # Still up, and serving what it acknowledged.
    assert server.proc.poll() is None, "taskhubd exited on a full disk\n" + server.log_tail()
    for iid, n in acked.items():
        check_instance(stub, iid, n, completed=False)
    for iid in refused:
        assert not get(stub, iid).exists, f"{iid} was refused but exists"
    assert server.log_lines("event=commit_failed"), server.log_tail()

    # Room again: writes resume by themselves.
    filler.unlink()
    t0 = time.monotonic()
    n_resumed = [0]

    def a_start_succeeds():
        iid = f"after-{n_resumed[0]}"
        n_resumed[0] += 1
        try:
            start(stub, iid, 2000 + n_resumed[0])
        except grpc.RpcError as e:
            assert e.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE), e
            refused.append(iid)
            return False
        acked[iid] = 2000 + n_resumed[0]
        return True

    wait_until(a_start_succeeds, 30, "a StartInstance to succeed once the disk has room", interval=0.2,
               on_timeout=server.log_tail)
    print(f"writes resumed {time.monotonic() - t0:.1f} s after the disk had room")
    assert server.log_lines("event=store_reopened"), server.log_tail()
    assert server.proc.poll() is None

    client = TaskHubGrpcClient(host_address=server.address,
                               channel_options=GrpcChannelOptions(raw_options=CHANNEL_OPTIONS))
    for iid in acked:
        st = client.wait_for_orchestration_completion(iid, timeout=WAIT_S)
        assert st is not None and st.runtime_status == OrchestrationStatus.COMPLETED, (iid, st, server.log_tail())
    for iid, n in acked.items():
        check_instance(stub, iid, n, completed=True)
    for iid in refused:
        assert not get(stub, iid).exists, f"{iid} was refused but exists"
    print(f"acknowledged {len(acked)}, refused {len(refused)}, every acknowledged one completed correctly")

    # And all of it is durable: a restart on the same data finds every one.
    workers.stop(worker)
    channel.close()
    server.stop()
    server = servers.start(data)
    channel, stub = raw_stub(server)
    for iid, n in acked.items():
        check_instance(stub, iid, n, completed=True)
    for iid in refused:
        assert not get(stub, iid).exists, f"{iid} was refused but exists after the restart"
    channel.close()


def test_stop_and_start_on_a_full_disk(servers, small_disk):
    """SIGTERM with the disk full ends taskhubd cleanly (exit 0). Started again while the filler is still
    there, it either comes up serving reads (writes succeed or are refused with RESOURCE_EXHAUSTED) or, when
    opening the store must write more than fits, refuses to start with a message naming the full disk; either
    way without an abort. Once there is room it writes, with every acknowledged instance there."""
    data = small_disk.path / "data"
    server = servers.start(data)
    channel, stub = raw_stub(server)
    acked = {}
    for i in range(20):
        start(stub, f"i{i}", i)
        acked[f"i{i}"] = i
    filler = small_disk.fill()
    for i in range(300):  # until a commit fails: the WAL's preallocated room is used up
        try:
            start(stub, f"x{i}", i)
            acked[f"x{i}"] = i
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
            break
    else:
        raise AssertionError("no commit failed on the full disk")
    channel.close()
    server.stop()  # exits 0

    server, refusal = servers.try_start(data)
    if server is None:
        rc, err = refusal
        assert rc == 1, (rc, err[-2000:])
        assert "No space left on device" in err, err[-2000:]
        print("started on the full disk: refused, naming the full disk")
    else:
        channel, stub = raw_stub(server)
        for iid, n in acked.items():
            check_instance(stub, iid, n, completed=False)
        # Stopping flushed the WAL into (compressed) tables, which may have freed room: a write either
        # succeeds or is refused as above.
        if try_start(stub, "while-full"):
            acked["while-full"] = 0
        channel.close()
        print("started on the full disk: serving reads")

    filler.unlink()
    if server is None:
        server = servers.start(data)
    channel, stub = raw_stub(server)
    wait_until(lambda: try_start(stub, "after"), 30, "a write to succeed once the disk has room", interval=0.2)
    for iid, n in acked.items():
        if iid != "while-full":
            check_instance(stub, iid, n, completed=False)
    channel.close()
    for s in servers.servers:
        assert "Assertion" not in s.stderr_text(), s.log_tail()


def try_start(stub, iid):
    try:
        start(stub, iid, 0)
        return True
    except grpc.RpcError as e:
        assert e.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE), e
        return False
