"""Damaged data is detected and reported, never served as if it were good.

  test_corrupt_wal_record_refuses_to_start
      a byte flipped in the middle of the write-ahead log (400 acknowledged instances, SIGKILL before any
      flush): taskhubd refuses to start, naming the corruption and the WAL file, rather than starting without
      the instances after the damaged record (RocksDB's default recovery did that silently)
  test_torn_wal_tail_still_starts
      the WAL's last record cut short (a write that never completed, as a crash leaves it): taskhubd starts
      and has everything before it
  test_corrupt_table_block_is_data_loss
      a byte flipped in an instance's input inside a table file: GetInstance and QueryInstances with
      payloads answer DATA_LOSS naming the instance (they answered OK without the input); without payloads
      the instance is still served; the same damage in the inbox's table, which taskhubd reads when it starts,
      makes it refuse to start, naming the file
"""

import os
import secrets
from pathlib import Path

import grpc
from google.protobuf import wrappers_pb2

from durabletask.internal import orchestrator_service_pb2 as pb

from conftest import raw_stub


def start_many(server, prefix, n, payload=lambda i: f'"{i}"'):
    channel, stub = raw_stub(server)
    for i in range(n):
        stub.StartInstance(pb.CreateInstanceRequest(instanceId=f"{prefix}{i:05d}", name="o",
                                                    input=wrappers_pb2.StringValue(value=payload(i))), timeout=30)
    return channel, stub


def newest_wal(data: Path) -> Path:
    logs = sorted(data.glob("*.log"), key=lambda p: int(p.stem))
    assert logs, f"no WAL file in {data}: {os.listdir(data)}"
    return logs[-1]


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x5A]))


def table_with(data: Path, needle: bytes, cf: bytes) -> Path:
    """The table file of column family |cf| that holds |needle| (a table's properties block names its column
    family: the property key's last part, prefix-compressed, then the name)."""
    for p in sorted(data.glob("*.sst")):
        b = p.read_bytes()
        if needle in b and b"name" + cf in b:
            return p
    raise AssertionError(f"no table of column family {cf!r} holds the input: {sorted(os.listdir(data))}")


def test_corrupt_wal_record_refuses_to_start(servers, tmp_path):
    data = tmp_path / "data"
    server = servers.start(data)
    channel, _ = start_many(server, "w", 400)
    channel.close()
    server.kill()  # no flush on the way out: the 400 live in the WAL only
    wal = newest_wal(data)
    size = wal.stat().st_size
    assert size > 20000, f"{wal} holds only {size} bytes"
    flip(wal, size // 2)
    rc, err = servers.start_refused(data)
    assert rc != 0
    assert "Corruption" in err and wal.name in err, err[-2000:]
    assert "refusing to start" in err, err[-2000:]


def test_torn_wal_tail_still_starts(servers, tmp_path):
    data = tmp_path / "data"
    server = servers.start(data)
    channel, _ = start_many(server, "t", 100)
    channel.close()
    server.kill()
    wal = newest_wal(data)
    os.truncate(wal, wal.stat().st_size - 7)  # the last record, torn
    server = servers.start(data)
    channel, stub = raw_stub(server)
    present = sum(stub.GetInstance(pb.GetInstanceRequest(instanceId=f"t{i:05d}"), timeout=30).exists
                  for i in range(100))
    assert present == 99, f"{present} of 100 instances after the torn last record"
    channel.close()


def test_corrupt_table_block_is_data_loss(servers, tmp_path):
    data = tmp_path / "data"
    server = servers.start(data)
    # Random from a large alphabet, so that the tables' compression finds nothing to shorten in it.
    markers = {i: f"INPUT-{i:05d}-{secrets.token_urlsafe(200)}" for i in range(50)}
    channel, _ = start_many(server, "s", 50, payload=lambda i: f'"{markers[i]}"')
    channel.close()
    server.stop()  # flushes the memtables: the inputs are in table files now
    target = 25
    needle = markers[target][100:140].encode()
    # The input is in two tables: the payload column family's and the inbox's (the instance never ran).
    payload_sst, inbox_sst = table_with(data, needle, b"payload"), table_with(data, needle, b"inbox")
    flip(payload_sst, payload_sst.read_bytes().find(needle) + len(needle) // 2)

    server = servers.start(data)
    channel, stub = raw_stub(server)
    iid = f"s{target:05d}"
    try:
        stub.GetInstance(pb.GetInstanceRequest(instanceId=iid, getInputsAndOutputs=True), timeout=30)
        raise AssertionError("GetInstance served a damaged input as OK")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.DATA_LOSS, (e.code(), e.details())
        assert iid in e.details() and "input" in e.details(), e.details()
    r = stub.GetInstance(pb.GetInstanceRequest(instanceId=iid), timeout=30)
    assert r.exists and r.orchestrationState.instanceId == iid
    try:
        stub.QueryInstances(pb.QueryInstancesRequest(query=pb.InstanceQuery(
            maxInstanceCount=100, fetchInputsAndOutputs=True)), timeout=30)
        raise AssertionError("QueryInstances served a damaged input as OK")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.DATA_LOSS, (e.code(), e.details())
    assert server.log_lines("Corruption", payload_sst.name), server.log_tail()
    channel.close()
    server.stop()

    # Damage where taskhubd looks when it starts (the inbox it recovers work from): it refuses, naming the file.
    flip(inbox_sst, inbox_sst.read_bytes().find(needle) + len(needle) // 2)
    rc, err = servers.start_refused(data)
    assert rc != 0 and "Corruption" in err and inbox_sst.name in err, err[-2000:]
