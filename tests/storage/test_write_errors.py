"""Write errors that are not a full disk, without root or a special filesystem: taskhubd runs with a file-size
limit (RLIMIT_FSIZE, SIGXFSZ ignored), so once its write-ahead log reaches the limit every write to it fails
with EFBIG, as a failing disk would fail them with EIO; the test then lifts the limit (prlimit on the running
process), as a repaired disk would.

  test_write_errors_fail_calls_keep_serving_and_resume
      while writes fail, StartInstance fails with UNAVAILABLE naming the store error, taskhubd stays up and
      serves every acknowledged instance, refused ones do not exist, taskhubd_commit_failures_total counts
      the failed commits; once writes can succeed again they do,
      without a restart, and a restart finds every acknowledged instance
"""

import json
import resource
import signal
import time

import grpc
from google.protobuf import wrappers_pb2

from durabletask.internal import orchestrator_service_pb2 as pb

from conftest import raw_stub, wait_until

LIMIT = 4 << 20  # bytes: the WAL reaches it after a few dozen 100 KB inputs
PAD = "y" * 100_000


def limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, resource.RLIM_INFINITY))


def start(stub, iid, n):
    stub.StartInstance(pb.CreateInstanceRequest(instanceId=iid, name="o",
                                                input=wrappers_pb2.StringValue(value=json.dumps([n, PAD]))),
                       timeout=30)


def check(stub, iid, n):
    r = stub.GetInstance(pb.GetInstanceRequest(instanceId=iid, getInputsAndOutputs=True), timeout=30)
    assert r.exists, f"acknowledged instance {iid} is gone"
    assert json.loads(r.orchestrationState.input.value) == [n, PAD], iid


def test_write_errors_fail_calls_keep_serving_and_resume(servers, tmp_path):
    data = tmp_path / "data"
    server = servers.start(data, preexec=limit_file_size, ops=True)
    channel, stub = raw_stub(server)
    acked, refused = {}, []
    for i in range(200):
        try:
            start(stub, f"w{i}", i)
            acked[f"w{i}"] = i
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNAVAILABLE, (e.code(), e.details())
            assert "File too large" in e.details() or "takes no writes" in e.details(), e.details()
            refused.append(f"w{i}")
            if len(refused) >= 3:
                break
    assert refused, "no write failed under the file-size limit\n" + server.log_tail()
    assert server.metric("taskhubd_commit_failures_total") >= len(refused)
    assert server.proc.poll() is None, "taskhubd exited on a write error\n" + server.log_tail()
    for iid, n in acked.items():
        check(stub, iid, n)
    for iid in refused:
        assert not stub.GetInstance(pb.GetInstanceRequest(instanceId=iid), timeout=30).exists, iid

    resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    t0 = time.monotonic()
    n = [0]

    def a_start_succeeds():
        n[0] += 1
        try:
            start(stub, f"after{n[0]}", n[0])
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNAVAILABLE, e
            refused.append(f"after{n[0]}")
            return False
        acked[f"after{n[0]}"] = n[0]
        return True

    wait_until(a_start_succeeds, 30, "a write to succeed once the limit is lifted", interval=0.2,
               on_timeout=server.log_tail)
    print(f"writes resumed {time.monotonic() - t0:.1f} s after the limit was lifted; "
          f"acknowledged {len(acked)}, refused {len(refused)}")
    assert server.log_lines("event=store_reopened"), server.log_tail()
    channel.close()
    server.stop()

    server = servers.start(data)
    channel, stub = raw_stub(server)
    for iid, n in acked.items():
        check(stub, iid, n)
    for iid in refused:
        assert not stub.GetInstance(pb.GetInstanceRequest(instanceId=iid), timeout=30).exists, iid
    channel.close()
