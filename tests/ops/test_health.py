"""/healthz, /readyz and grpc.health.v1 across recovery (--hold-recovery-fd).

  test_ops_requests_with_a_body    GET /healthz, /readyz, /metrics with a (small, ignored) request body
                                   are answered like without one
  test_readyz_waits_for_recovery   the ops port is announced before recovery: /healthz 200,
                                   /readyz 503 "recovering", taskhubd_up 0, no gRPC port announced;
                                   after the hold pipe gets a byte: --ready-fd announces the gRPC port,
                                   /readyz 200 "ready", taskhubd_up 1, Health/Check SERVING, and the
                                   instance stored before the restart is there
"""

import grpc
from durabletask.client import OrchestrationStatus
from durabletask.internal import orchestrator_service_pb2 as pb

from conftest import CHANNEL_OPTIONS, http, make_client, raw_stub, scrape

WAIT_S = 30.0
# no --ready-fd line may appear within this window while recovery is held (a negative check)
NOT_ANNOUNCED_WINDOW_S = 0.5


def _varint(buf: bytes, i: int):
    shift = v = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def health_check(address: str) -> int:
    """grpc.health.v1.Health/Check with an empty HealthCheckRequest (service=""), sent as raw bytes;
    returns HealthCheckResponse.status (field 1, varint; absent = 0 UNKNOWN)."""
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as ch:
        check = ch.unary_unary("/grpc.health.v1.Health/Check",
                               request_serializer=lambda b: b, response_deserializer=lambda b: b)
        resp = check(b"", timeout=WAIT_S)
    status, i = 0, 0
    while i < len(resp):
        key, i = _varint(resp, i)
        field_no, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(resp, i)
            if field_no == 1:
                status = v
        elif wire == 2:
            n, i = _varint(resp, i)
            i += n
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise AssertionError(f"bad wire type in HealthCheckResponse {resp!r}")
    return status


SERVING = 1


def test_readyz_waits_for_recovery(server_factory):
    # something to recover: a pending instance stored by a first server
    first = server_factory.start()
    assert http(first, "GET", "/healthz")[:2] == (200, "ok\n")
    assert http(first, "GET", "/readyz")[:2] == (200, "ready\n")
    assert health_check(first.address) == SERVING
    with make_client(first) as c:
        c.schedule_new_orchestration("h_orch", input=1, instance_id="h-pending")
    first.stop()

    s = server_factory.restart(first, hold_recovery=True)
    # only the ops port is up
    status, body, _ = http(s, "GET", "/healthz")
    assert (status, body) == (200, "ok\n"), (status, body)
    status, body, _ = http(s, "GET", "/readyz")
    assert (status, body) == (503, "recovering\n"), (status, body, s.log_tail())
    m = scrape(s)
    assert m.value("taskhubd_up") == 0, m.text
    assert not s.ready_announced(NOT_ANNOUNCED_WINDOW_S), \
        "--ready-fd became readable (gRPC port announced or pipe closed) while recovery was held\n" \
        + s.log_tail()
    assert s.proc.poll() is None
    assert s.log_lines("event=serving") == [], s.log_tail()
    # still healthy, still not ready
    assert http(s, "GET", "/healthz")[:2] == (200, "ok\n")
    assert http(s, "GET", "/readyz")[:2] == (503, "recovering\n")

    s.release_recovery()
    port = s.wait_ready()
    assert port > 0
    status, body, _ = http(s, "GET", "/readyz")
    assert (status, body) == (200, "ready\n"), (status, body)
    assert http(s, "GET", "/healthz")[:2] == (200, "ok\n")
    assert scrape(s).value("taskhubd_up") == 1
    assert health_check(s.address) == SERVING

    # recovery found what the first server stored
    channel, stub = raw_stub(s)
    with channel:
        r = stub.GetInstance(pb.GetInstanceRequest(instanceId="h-pending"), timeout=WAIT_S)
        assert r.exists and r.orchestrationState.name == "h_orch", r
    with make_client(s) as c:
        st = c.get_orchestration_state("h-pending")
        assert st is not None and st.runtime_status == OrchestrationStatus.PENDING, st


def test_ops_requests_with_a_body(server_factory):
    s = server_factory.start()
    for path, want in (("/healthz", "ok\n"), ("/readyz", "ready\n")):
        status, body, _ = http(s, "GET", path, body=b'{"probe": true}')
        assert (status, body) == (200, want), f"GET {path} with a request body -> {status} {body!r}"
    status, body, _ = http(s, "GET", "/metrics", body=b"x")
    assert status == 200 and "taskhubd_up 1" in body, (status, body[:200])
