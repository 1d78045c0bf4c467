"""Who may change state through the ops port, and slow clients (issue 15, item 2).

  test_drain_refused_without_the_header   a plain POST /admin/drain (what curl -X POST and a form send) is 403
                          naming X-Taskhubd-Admin, and taskhubd keeps running and ready.
  test_browser_cross_site_drain_is_refused  what a browser's cross-site form POST carries (Origin of another
                          site, Sec-Fetch-Site: cross-site, a form Content-Type) is 403 each time, even with the
                          header; a DNS-rebound Host name is 403 too; taskhubd keeps running.
  test_drain_with_the_header  POST with X-Taskhubd-Admin (and a JSON body, and a same-origin Origin) -> 202, exit 0.
  test_drain_needs_the_token  with --auth-token-file: /healthz, /readyz and /metrics answer without a token;
                          POST /admin/drain without a token, or a wrong one, is 401 with WWW-Authenticate: Bearer;
                          the right token drains, whatever the Host name.
  test_slow_clients_do_not_stop_healthz  64 connections each sending one header byte every 3 s while /healthz
                          is asked 20 times: every answer is 200 (before issue 15: 20 of 20 failed, as the 64
                          took every connection libmicrohttpd allowed).
"""

import socket
import threading
import time

from conftest import http, scrape

WAIT_S = 30.0
ADMIN = {"X-Taskhubd-Admin": "1"}


def post(server, headers=None, body=b"", path="/admin/drain", host=None):
    """A raw POST (urllib would add a form Content-Type of its own); returns (status, headers, body)."""
    hdrs = {"Host": host or f"127.0.0.1:{server.ops_port}", "Content-Length": str(len(body)),
            "Connection": "close"}
    hdrs.update(headers or {})
    req = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", server.ops_port), timeout=10) as s:
        s.sendall(req.encode() + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    h = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        h[k.strip().lower()] = v.strip()
    return status, h, rest.decode("utf-8", errors="replace")


def still_serving(s):
    assert s.proc.poll() is None, "taskhubd exited\n" + s.log_tail()
    assert http(s, "GET", "/readyz")[:2] == (200, "ready\n"), s.log_tail()


def test_drain_refused_without_the_header(server_factory):
    s = server_factory.start()
    status, _, body = post(s)
    assert status == 403 and "X-Taskhubd-Admin" in body, (status, body)
    still_serving(s)
    assert s.log_lines("event=drain_refused"), s.log_tail()


def test_browser_cross_site_drain_is_refused(server_factory):
    s = server_factory.start()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    cases = [
        # what a cross-site <form method=post> sends (a CORS simple request), with and without the header
        ({"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site", **form}, b"a=1", "X-Taskhubd-Admin"),
        ({**ADMIN, "Origin": "http://evil.example"}, b"", "Origin"),
        ({**ADMIN, "Origin": "null"}, b"", "Origin"),
        ({**ADMIN, "Sec-Fetch-Site": "cross-site"}, b"", "Sec-Fetch-Site"),
        ({**ADMIN, "Sec-Fetch-Site": "same-site"}, b"", "Sec-Fetch-Site"),
        ({**ADMIN, **form}, b"a=1", "form-encoded"),
        ({**ADMIN, "Content-Type": "multipart/form-data; boundary=x"}, b"--x--\r\n", "form-encoded"),
        ({**ADMIN, "Content-Type": "text/plain;charset=UTF-8"}, b"x", "form-encoded"),
    ]
    for headers, body, named in cases:
        status, _, text = post(s, headers, body)
        assert status == 403 and named in text, (headers, status, text)
    # DNS rebinding: a page whose name now resolves to 127.0.0.1 is same-origin with itself
    status, _, text = post(s, {**ADMIN, "Origin": f"http://rebind.example:{s.ops_port}"},
                           host=f"rebind.example:{s.ops_port}")
    assert status == 403 and "Host" in text, (status, text)
    still_serving(s)


def test_drain_with_the_header(server_factory):
    s = server_factory.start()
    status, _, body = post(s, {**ADMIN, "Content-Type": "application/json",
                               "Origin": f"http://127.0.0.1:{s.ops_port}", "Sec-Fetch-Site": "same-origin"}, b"{}")
    assert status == 202, (status, body)
    assert s.wait_exit(WAIT_S) == 0, s.log_tail()


def test_drain_needs_the_token(server_factory, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("# ops and gRPC\nops-secret-1\n")
    s = server_factory.start("--auth-token-file", str(tokens))
    assert http(s, "GET", "/healthz")[:2] == (200, "ok\n")
    assert http(s, "GET", "/readyz")[:2] == (200, "ready\n")
    assert scrape(s).value("taskhubd_draining") == 0
    for auth in (None, "Bearer wrong", "Basic b3BzLXNlY3JldC0x", "Bearer ops-secret-1x"):
        headers = dict(ADMIN)
        if auth:
            headers["Authorization"] = auth
        status, h, body = post(s, headers)
        assert status == 401, (auth, status, body)
        assert h.get("www-authenticate", "").startswith("Bearer"), h
        assert "token" in body, body
    # the token is not enough without the header: a browser may hold no token, but never mind
    status, _, body = post(s, {"Authorization": "Bearer ops-secret-1"})
    assert status == 403, (status, body)
    still_serving(s)
    # with the token, a DNS name is fine (the Service's name, say)
    status, _, body = post(s, {**ADMIN, "Authorization": "Bearer ops-secret-1"}, host="taskhubd.ns.svc:9464")
    assert status == 202, (status, body)
    assert s.wait_exit(WAIT_S) == 0, s.log_tail()


SLOW = 64
TRICKLE_S = 3.0
PROBES = 20


def test_slow_clients_do_not_stop_healthz(server_factory):
    s = server_factory.start()
    socks = []
    for _ in range(SLOW):
        c = socket.create_connection(("127.0.0.1", s.ops_port), timeout=5)
        c.sendall(b"G")
        socks.append(c)
    stop = threading.Event()
    request = b"ET /healthz HTTP/1.1\r\nHost: x\r\n"

    def trickle():
        i = 0
        while not stop.wait(TRICKLE_S):
            i += 1
            for c in socks:
                try:
                    c.sendall(request[i % len(request):i % len(request) + 1])
                except OSError:
                    pass   # the server may close a slow connection: that is allowed

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    failures = []
    try:
        for i in range(PROBES):
            t0 = time.monotonic()
            try:
                status, body, _ = http(s, "GET", "/healthz", timeout=2.0)
                if status != 200:
                    failures.append(f"probe {i}: {status} {body!r}")
            except OSError as e:
                failures.append(f"probe {i}: {e!r}")
            time.sleep(max(0.0, 0.5 - (time.monotonic() - t0)))  # probe pacing, not synchronisation
    finally:
        stop.set()
        t.join()
        for c in socks:
            c.close()
    print(f"/healthz with {SLOW} slow clients: {PROBES - len(failures)} of {PROBES} answered 200")
    assert not failures, f"{len(failures)} of {PROBES} health checks failed: {failures[:3]}"
    still_serving(s)
