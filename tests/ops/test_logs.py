"""--log-format json: every line taskhubd writes to stderr is one JSON object with ts, level and event.

  test_json_logs_short_run          a whole short life (start, SDK workload incl. a failure, a terminate,
                                    a bad request, ops scrapes, SIGTERM): every stderr line is a JSON
                                    object with ts, level, event and no repeated key
  test_json_logs_hostile_values     instance ids with spaces, '=', quotes, backslashes, non-ASCII: still
                                    one object per line, no repeated key (no field injection), and the
                                    instance field holds the id exactly
  test_json_logs_bad_http_peer      malformed HTTP requests on the ops port do not put non-JSON lines on
                                    stderr
"""

import json
import re
import socket

import grpc
from durabletask.client import OrchestrationStatus
from durabletask.internal import orchestrator_service_pb2 as pb

from conftest import http, make_client, make_worker, raw_stub, scrape

WAIT_S = 30.0
LEVELS = {"debug", "info", "warn", "error"}
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$")


class DuplicateKey(ValueError):
    pass


def _no_dups(pairs):
    keys = [k for k, _ in pairs]
    dups = sorted({k for k in keys if keys.count(k) > 1})
    if dups:
        raise DuplicateKey(f"repeated keys {dups}")
    return dict(pairs)


def json_lines(server) -> list:
    """Every stderr line parsed; fails naming the first line that is not a proper JSON log object."""
    text = server.stderr_text()
    assert text.endswith("\n"), f"stderr does not end with a newline: {text[-200:]!r}"
    out = []
    for n, line in enumerate(text.split("\n")[:-1], 1):
        try:
            obj = json.loads(line, object_pairs_hook=_no_dups)
        except DuplicateKey as e:
            raise AssertionError(f"stderr line {n} has {e}: {line!r}") from None
        except ValueError as e:
            raise AssertionError(f"stderr line {n} is not JSON ({e}): {line!r}") from None
        assert isinstance(obj, dict), f"stderr line {n} is not a JSON object: {line!r}"
        for key in ("ts", "level", "event"):
            assert key in obj, f"stderr line {n} has no {key!r} key: {line!r}"
        assert isinstance(obj["ts"], str) and TS_RE.match(obj["ts"]), f"line {n}: bad ts {obj['ts']!r}"
        assert obj["level"] in LEVELS, f"line {n}: bad level {obj['level']!r}: {line!r}"
        assert isinstance(obj["event"], str) and re.match(r"^[a-z_]+$", obj["event"]), \
            f"line {n}: bad event {obj['event']!r}: {line!r}"
        out.append(obj)
    return out


def j_chain(ctx, x):
    a = yield ctx.call_activity("j_step", input=x)
    b = yield ctx.call_activity("j_step", input=a)
    return b


def j_step(ctx, x):
    return x + "!"


def j_failing(ctx, x):
    yield ctx.call_activity("j_boom", input=x)


def j_boom(ctx, x):
    raise ValueError('a "quoted" message with\nnewlines, \\backslashes\\ and key=value pairs')


def test_json_logs_short_run(server_factory, workers):
    s = server_factory.start("--log-format", "json")
    assert http(s, "GET", "/readyz")[0] == 200
    channel, stub = raw_stub(s)
    try:
        try:
            stub.StartInstance(pb.CreateInstanceRequest(instanceId="j-bad", name=""), timeout=WAIT_S)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
        with make_client(s) as c:
            c.schedule_new_orchestration("j_chain", input="t", instance_id="j-term")
            c.terminate_orchestration("j-term", output="stop")
            workers.start(make_worker(s, orchestrators={"j_chain": j_chain, "j_failing": j_failing},
                                      activities={"j_step": j_step, "j_boom": j_boom}))
            c.schedule_new_orchestration("j_chain", input="x", instance_id="j-chain")
            c.schedule_new_orchestration("j_failing", input="y", instance_id="j-fail")
            st = c.wait_for_orchestration_completion("j-chain", timeout=WAIT_S)
            assert st.runtime_status == OrchestrationStatus.COMPLETED and st.serialized_output == '"x!!"', st
            st = c.wait_for_orchestration_completion("j-fail", timeout=WAIT_S)
            assert st.runtime_status == OrchestrationStatus.FAILED, st
            c.raise_orchestration_event("j-chain", "late", data=1)   # terminal: dropped
        scrape(s)
    finally:
        channel.close()
    workers.close()
    s.stop()

    objs = json_lines(s)
    events = {o["event"] for o in objs}
    for ev in ("ops_listening", "serving", "shutdown_begin", "drained", "shutdown_done"):
        assert ev in events, f"no {ev!r} event in the JSON log; events: {sorted(events)}"
    assert len(objs) >= 10, objs
    # typed fields: numbers are JSON numbers, built from the call's arguments, not strings re-parsed from logfmt
    serving = next(o for o in objs if o["event"] == "serving")
    assert isinstance(serving["port"], int) and serving["port"] == s.port, serving
    assert isinstance(serving["max_batch"], int) and isinstance(serving["listen"], str), serving
    recovered = next(o for o in objs if o["event"] == "recovered")
    assert isinstance(recovered["ms"], (int, float)) and isinstance(recovered["partition"], int), recovered
    done = next(o for o in objs if o["event"] == "shutdown_done")
    assert isinstance(done["commits"], int) and done["commits"] > 0, done


LONG_ID = "j-long-" + "x" * 1000

HOSTILE_IDS = [
    "j space event=injected level=error",
    'j "quoted" id',
    "j back\\slash\\",
    'j trailing\\"',
    "j ünïcödé €",
    "j=equals=",
    LONG_ID,  # whole in the JSON line (logfmt values are cut at 600 bytes)
]


def test_json_logs_hostile_values(server_factory):
    s = server_factory.start("--log-format", "json", "--log-level", "debug", "--max-id-length", "1024")
    channel, stub = raw_stub(s)
    try:
        for iid in HOSTILE_IDS:
            stub.StartInstance(pb.CreateInstanceRequest(instanceId=iid, name="j_orch"), timeout=WAIT_S)
            stub.TerminateInstance(pb.TerminateRequest(instanceId=iid), timeout=WAIT_S)
    finally:
        channel.close()
    s.stop()

    objs = json_lines(s)
    created = [o for o in objs if o["event"] == "instance_created"]
    got = [o.get("instance") for o in created]
    for iid in HOSTILE_IDS:
        assert iid in got, \
            f"no instance_created object with instance == {iid!r}; instance_created objects: {created}"


def test_json_logs_bad_http_peer(server_factory):
    s = server_factory.start("--log-format", "json")
    bad_requests = [
        # a syntactically broken chunked body
        b"POST /admin/nothing HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
        # not HTTP at all
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64 + b"\r\n\r\n",
    ]
    for raw in bad_requests:
        with socket.create_connection(("127.0.0.1", s.ops_port), timeout=WAIT_S) as sock:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(4096):
                pass
    assert http(s, "GET", "/healthz")[:2] == (200, "ok\n")
    s.stop()
    json_lines(s)
