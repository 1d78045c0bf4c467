"""The dashboard's JSON API on a real taskhubd: every endpoint, its bad parameters (400 naming the parameter), the
token, the CSRF rules, read-only and off, and the event stream.

  test_page_assets            / and /assets/* with ETag and 304, CSP on the page, 404 and 405
  test_instances              list filters (status, name, prefix, created and completed ranges, sort), newest first
                              or oldest first, paging with `next` visits every instance once in that order across
                              pages, bad parameters answer 400
  test_instance_history       one instance (payloads, failure with stack trace), history slices, children, 404s
  test_waiting                what waits for an instance: raised events not yet delivered, a requested suspend;
                              why it has not started (explain), its 404 and 400s
  test_actions                raise, suspend, resume, terminate (recursive), restart, rewind, purge and their
                              refusals; CSRF rules
  test_read_only_and_off      --dashboard read-only refuses actions; --dashboard off serves no dashboard
  test_token                  with --auth-token-file the API (reads, actions, events) needs the token
  test_entities               entities by id prefix, paged
  test_events                 the stream says hello, then names the instances the engine changed; a stream left
                              open does not hold up shutdown
"""

import http.client
import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from conftest import ACTION_HEADERS, action, api, make_client, request, wait_until
from workload import start_worker

WAIT_S = 60


def done(c, iid):
    st = c.wait_for_orchestration_completion(iid, timeout=WAIT_S)
    assert st is not None, iid
    return st


def status_of(server, iid):
    code, body, _ = api(server, "instance", id=iid)
    return body.get("status") if code == 200 else code


def bad(server, path, params, needle):
    code, body, _ = api(server, path, **params)
    assert code == 400, (path, params, code, body)
    assert body["code"] == "INVALID_ARGUMENT"
    assert needle in body["error"], (needle, body)


def test_page_assets(server_factory):
    s = server_factory.start()
    code, page, h = request(s, "GET", "/")
    assert code == 200 and "<title>taskhubd dashboard</title>" in page
    assert h["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in h["Content-Security-Policy"]
    etag = h["ETag"]
    assert etag.startswith('"') and len(etag) > 10
    code, _, _ = request(s, "GET", "/", headers={"If-None-Match": etag})
    assert code == 304
    for path, ctype in (("/assets/app.js", "text/javascript"), ("/assets/style.css", "text/css"),
                        ("/index.html", "text/html")):
        code, text, h = request(s, "GET", path)
        assert code == 200 and h["Content-Type"].startswith(ctype) and len(text) > 100, path
        assert h["Cache-Control"] == "no-cache" and h["ETag"]
    assert request(s, "GET", "/assets/nope.js")[0] == 404
    assert request(s, "POST", "/", body=b"")[0] == 405
    code, body, _ = request(s, "GET", "/api/v2/instances")
    assert code == 404 and "/api/v1/" in body["error"]
    code, body, _ = api(s, "nothing")
    assert code == 404 and "no such endpoint" in body["error"]
    # the ops endpoints are still the ops server's
    assert request(s, "GET", "/healthz")[:2] == (200, "ok\n")
    code, cfg, _ = api(s, "config")
    assert code == 200 and cfg["actions"] is True and cfg["ready"] is True
    # without a token file, data only for requests naming the host by address (DNS rebinding)
    code, r, _ = request(s, "GET", "/api/v1/instances", headers={"Host": "rebound.example:80"})
    assert code == 403 and "host" in r["error"], r
    assert request(s, "GET", "/api/v1/instances", headers={"Host": f"localhost:{s.ops_port}"})[0] == 200


def test_instances(server_factory, workers):
    s = server_factory.start()
    start_worker(s, workers)
    t_before = datetime.now(timezone.utc) - timedelta(seconds=1)
    with make_client(s) as c:
        for i in range(7):
            c.schedule_new_orchestration("d_chain", input=str(i), instance_id=f"list-a-{i}")
        for i in range(3):
            c.schedule_new_orchestration("d_chain", input=str(i), instance_id=f"list-b-{i}")
        c.schedule_new_orchestration("d_wait", instance_id="list-w")
        c.schedule_new_orchestration("d_fail", input=1, instance_id="list-f")
        for i in range(7):
            done(c, f"list-a-{i}")
        for i in range(3):
            done(c, f"list-b-{i}")
        done(c, "list-f")
        wait_until(lambda: status_of(s, "list-w") == "RUNNING", WAIT_S, "list-w running")
    t_after = datetime.now(timezone.utc) + timedelta(seconds=1)

    code, r, _ = api(s, "instances")
    assert code == 200, r
    ids = [x["id"] for x in r["instances"]]
    assert sorted(ids) == sorted([f"list-a-{i}" for i in range(7)] + [f"list-b-{i}" for i in range(3)] +
                                 ["list-w", "list-f"])
    assert r["next"] is None and r["order"] == "created" and r["direction"] == "desc"
    created = [x["createdAt"] for x in r["instances"]]
    assert created == sorted(created, reverse=True), "newest first by default"
    code, r_asc, _ = api(s, "instances", direction="asc")
    assert code == 200 and r_asc["direction"] == "asc"
    assert [x["id"] for x in r_asc["instances"]] == ids[::-1]
    completed = [x["completedAt"] for x in api(s, "instances", sort="completed")[1]["instances"]]
    assert len(completed) == 11 and completed == sorted(completed, reverse=True)
    row = next(x for x in r["instances"] if x["id"] == "list-a-0")
    assert row["name"] == "d_chain" and row["status"] == "COMPLETED" and row["completedAt"]

    by = lambda **p: sorted(x["id"] for x in api(s, "instances", **p)[1]["instances"])  # noqa: E731
    assert by(status="RUNNING") == ["list-w"]
    assert by(status="FAILED,running") == ["list-f", "list-w"]
    assert by(status="ORCHESTRATION_STATUS_FAILED") == ["list-f"]
    assert by(prefix="list-b-") == ["list-b-0", "list-b-1", "list-b-2"]
    assert by(prefix="list-b-", status="COMPLETED") == ["list-b-0", "list-b-1", "list-b-2"]
    assert by(name="d_wait") == ["list-w"]
    assert by(name="d_chain", prefix="list-b") == ["list-b-0", "list-b-1", "list-b-2"]
    assert len(by(createdFrom=t_before.isoformat().replace("+00:00", "Z"))) == 12
    assert by(createdTo=t_before.isoformat().replace("+00:00", "Z")) == []
    assert by(createdFrom=str(int(t_after.timestamp() * 1000))) == []
    done_ids = by(sort="completed")
    assert "list-w" not in done_ids and len(done_ids) == 11
    assert len(by(completedFrom=t_before.isoformat().replace("+00:00", "Z"), status="COMPLETED")) == 10
    assert by(completedTo=t_before.isoformat().replace("+00:00", "Z")) == []

    def pages_of(size, **p):
        """Every id of the list, page by page (and how many pages)."""
        seen, token, pages = [], None, 0
        while True:
            code, r, _ = api(s, "instances", pageSize=size, **p, **({"next": token} if token else {}))
            assert code == 200 and len(r["instances"]) <= size, r
            seen += [x["id"] for x in r["instances"]]
            pages += 1
            token = r["next"]
            if not token:
                return seen, pages

    # paging: every instance exactly once, in the list's order across pages (newest first, or oldest first)
    seen, pages = pages_of(5)
    assert seen == ids and pages >= 3
    seen, _ = pages_of(5, direction="asc")
    assert seen == ids[::-1]
    # under a prefix, in id order or its reverse
    assert pages_of(3, prefix="list-a-", direction="asc")[0] == [f"list-a-{i}" for i in range(7)]
    assert pages_of(3, prefix="list-a-")[0] == [f"list-a-{i}" for i in range(6, -1, -1)]
    # by completion time, newest first across pages
    done_order = [x["id"] for x in api(s, "instances", sort="completed")[1]["instances"]]
    assert pages_of(2, sort="completed")[0] == done_order
    assert pages_of(4, sort="completed", direction="asc")[0] == done_order[::-1]
    # a filter the index cannot apply (the name) pages by the rows taken: every match once, none skipped, in order
    chains = [i for i in ids if i.startswith("list-a-") or i.startswith("list-b-")]
    assert pages_of(3, name="d_chain")[0] == chains
    assert pages_of(3, name="d_chain", direction="asc")[0] == chains[::-1]

    bad(s, "instances", {"status": "FOO"}, 'status: "FOO" is not a status')
    bad(s, "instances", {"pageSize": "0"}, "pageSize")
    bad(s, "instances", {"pageSize": "x"}, "pageSize")
    bad(s, "instances", {"pageSize": "501"}, "pageSize")
    bad(s, "instances", {"createdFrom": "yesterday"}, "createdFrom")
    bad(s, "instances", {"completedTo": "2026-13-01T00:00:00Z"}, "completedTo")
    bad(s, "instances", {"next": "garbage"}, "next: not a token")
    bad(s, "instances", {"prefix": "list", "next": api(s, "instances", pageSize=1)[1]["next"]}, "next")
    bad(s, "instances", {"sort": "name"}, "sort")
    bad(s, "instances", {"direction": "newest"}, 'direction: "newest" is not one of desc')
    bad(s, "instances", {"sort": "completed", "prefix": "x"}, "sort=completed")
    bad(s, "instances", {"statuses": "RUNNING"}, 'unknown parameter "statuses"')
    bad(s, "instances", {"prefix": "a\x01b"}, "prefix")

    # counted off the request thread: the first answers may say it is counting, or give an older count
    r = wait_until(lambda: (lambda b: b if b.get("total") == 12 else None)(api(s, "counts")[1]), WAIT_S, "the counts")
    assert r["byStatus"]["COMPLETED"] == 10 and r["byStatus"]["FAILED"] == 1 and r["byStatus"]["RUNNING"] == 1
    # by name, from the same pass over the records: most frequent first, each by status
    names = r["byName"]
    assert names["distinct"] == 3 and sum(x["total"] for x in names["names"]) == 12, names
    assert names["names"][0] == {"name": "d_chain", "total": 10, "byStatus": {"COMPLETED": 10}}, names
    assert {"name": "d_fail", "total": 1, "byStatus": {"FAILED": 1}} in names["names"]
    assert {"name": "d_wait", "total": 1, "byStatus": {"RUNNING": 1}} in names["names"]
    bad(s, "counts", {"x": "1"}, "unknown parameter")
    code, o, _ = api(s, "overview")
    assert code == 200 and o["started"] >= 12 and o["completed"] >= 10 and o["failed"] >= 1 and o["commits"] > 0
    assert o["workers"] >= 1 and o["counts"]["total"] == 12
    fresh = server_factory.start()
    code, first, _ = api(fresh, "counts")
    assert code == 200 and (first.get("counting") is True or first.get("total") == 0), first
    bad(s, "overview", {"x": "1"}, "unknown parameter")


def test_instance_history(server_factory, workers):
    s = server_factory.start()
    start_worker(s, workers)
    with make_client(s) as c:
        c.schedule_new_orchestration("d_chain", input="world", instance_id="h-chain")
        c.schedule_new_orchestration("d_fail", input=7, instance_id="h-fail")
        c.schedule_new_orchestration("d_parent", input=3, instance_id="h-parent")
        for iid in ("h-chain", "h-fail", "h-parent"):
            done(c, iid)

    code, r, _ = api(s, "instance", id="h-chain")
    assert code == 200, r
    assert r["status"] == "COMPLETED" and r["name"] == "d_chain"
    assert json.loads(r["input"]) == "world" and json.loads(r["output"]) == "Hello Hello world"
    assert r["historyLength"] > 6 and r["executionId"] and not r["hasChildren"]
    assert r["waiting"] == {"suspendRequested": False, "resumeRequested": False, "messages": [], "messageCount": 0,
                            "terminateRequested": False}

    code, h, _ = api(s, "history", id="h-chain")
    assert code == 200 and h["total"] == r["historyLength"] == len(h["events"]) and h["from"] == 0
    types = [next(k for k in e if k not in ("eventId", "timestamp")) for e in h["events"]]
    assert types[0] == "orchestratorStarted" and "executionStarted" in types
    assert types.count("taskScheduled") == 2 and types.count("taskCompleted") == 2
    sched = [e for e in h["events"] if "taskScheduled" in e]
    assert sched[0]["taskScheduled"]["name"] == "d_hello" and json.loads(sched[0]["taskScheduled"]["input"]) == "world"
    comp = [e for e in h["events"] if "taskCompleted" in e]
    assert comp[0]["taskCompleted"]["taskScheduledId"] == sched[0]["eventId"]
    assert all(e["timestamp"].endswith("Z") for e in h["events"])
    # slices put together are the history
    parts = []
    for start in range(0, h["total"], 3):
        code, part, _ = api(s, "history", id="h-chain", **{"from": start, "limit": 3})
        assert code == 200 and len(part["events"]) <= 3
        parts += part["events"]
    assert parts == h["events"]
    code, tail, _ = api(s, "history", id="h-chain", **{"from": h["total"]})
    assert code == 200 and tail["events"] == []

    code, f, _ = api(s, "instance", id="h-fail")
    assert f["status"] == "FAILED"
    fd = f["failureDetails"]
    assert fd["errorType"] and "boom 7" in fd["errorMessage"], fd
    assert "stackTrace" in fd and fd["stackTrace"], fd

    code, p, _ = api(s, "instance", id="h-parent")
    assert p["hasChildren"] is True
    code, k, _ = api(s, "children", id="h-parent")
    assert code == 200 and k["count"] == 3 and k["truncated"] is False
    assert sorted(x["id"] for x in k["children"]) == ["h-parent-c0", "h-parent-c1", "h-parent-c2"]
    assert all(x["parentId"] == "h-parent" and x["status"] == "COMPLETED" for x in k["children"])
    code, kid, _ = api(s, "instance", id="h-parent-c1")
    assert kid["parentId"] == "h-parent"
    code, k, _ = api(s, "children", id="h-chain")
    assert code == 200 and k["children"] == [] and k["count"] == 0

    for path in ("instance", "history", "children"):
        code, body, _ = api(s, path, id="nope")
        assert code == 404 and body["error"] == "instance not found: nope", (path, body)
        bad(s, path, {}, "id: required")
        bad(s, path, {"id": "x", "bogus": "1"}, 'unknown parameter "bogus"')
        bad(s, path, {"id": "a\x02"}, "id")
    bad(s, "history", {"id": "h-chain", "limit": "0"}, "limit")
    bad(s, "history", {"id": "h-chain", "limit": "5001"}, "limit")
    bad(s, "history", {"id": "h-chain", "from": "-1"}, "from")


def test_waiting(server_factory):
    # No worker: what is raised or requested stays in the instance's inbox.
    s = server_factory.start()
    with make_client(s) as c:
        c.schedule_new_orchestration("d_wait", instance_id="w-1")
        c.raise_orchestration_event("w-1", "first", data={"n": 1})
        c.raise_orchestration_event("w-1", "second", data=2)
        c.suspend_orchestration("w-1")
    code, r, _ = api(s, "instance", id="w-1")
    assert code == 200 and r["status"] == "PENDING"
    w = r["waiting"]
    raised = [m["eventRaised"] for m in w["messages"] if "eventRaised" in m]
    assert [e["name"] for e in raised] == ["first", "second"], w
    assert json.loads(raised[0]["input"]) == {"n": 1}
    assert w["suspendRequested"] is True or any("executionSuspended" in m for m in w["messages"]), w
    assert w["messageCount"] >= 3
    # why it has not started, asked of the engine
    code, r, _ = api(s, "explain", id="w-1")
    assert code == 200 and r == {"id": "w-1", "reason": "it is PENDING and no connected worker accepts orchestration "
                                 "'d_wait' (0 workers connected)"}, r
    code, r, _ = api(s, "explain", id="w-nobody")
    assert code == 404 and "w-nobody" in r["error"], r
    bad(s, "explain", {}, "id: required")
    bad(s, "explain", {"id": "w-1", "x": "1"}, 'unknown parameter "x"')


def test_actions(server_factory, workers):
    s = server_factory.start()
    start_worker(s, workers)
    with make_client(s) as c:
        for iid in ("a-raise", "a-susp", "a-term", "a-purge-live"):
            c.schedule_new_orchestration("d_wait", instance_id=iid)
        c.schedule_new_orchestration("d_fail", input=1, instance_id="a-fail")
        c.schedule_new_orchestration("d_chain", input="x", instance_id="a-done")
        for iid in ("a-raise", "a-susp", "a-term", "a-purge-live"):
            wait_until(lambda iid=iid: status_of(s, iid) == "RUNNING", WAIT_S, f"{iid} running")
        done(c, "a-fail")
        done(c, "a-done")

        code, r, _ = action(s, "raise", {"id": "a-raise", "name": "go", "input": json.dumps({"ok": 1})})
        assert code == 200 and r == {"ok": True, "action": "raise", "id": "a-raise"}, r
        st = done(c, "a-raise")
        assert st.runtime_status.name == "COMPLETED" and json.loads(st.serialized_output) == {"ok": 1}

        assert action(s, "suspend", {"id": "a-susp", "reason": "look"})[0] == 200
        wait_until(lambda: status_of(s, "a-susp") == "SUSPENDED", WAIT_S, "a-susp suspended")
        assert action(s, "resume", {"id": "a-susp"})[0] == 200
        wait_until(lambda: status_of(s, "a-susp") == "RUNNING", WAIT_S, "a-susp resumed")

        assert action(s, "terminate", {"id": "a-term", "output": '"stop"', "recursive": True})[0] == 200
        st = done(c, "a-term")
        assert st.runtime_status.name == "TERMINATED"

        code, r, _ = action(s, "restart", {"id": "a-done", "newInstanceId": True})
        assert code == 200 and r["instanceId"] and r["instanceId"] != "a-done", r
        assert done(c, r["instanceId"]).runtime_status.name == "COMPLETED"
        code, r, _ = action(s, "restart", {"id": "a-done"})
        assert code == 200 and r["instanceId"] == "a-done"
        done(c, "a-done")

        code, r, _ = action(s, "rewind", {"id": "a-fail", "reason": "try again"})
        assert code in (200, 409), r  # rewinding a failed instance is accepted; the activity fails again
        code, r, _ = action(s, "rewind", {"id": "a-done"})
        assert code == 409 and r["code"] == "FAILED_PRECONDITION", r

        # as PurgeInstances: a live instance is not purged (nothing deleted), a finished one is
        code, r, _ = action(s, "purge", {"id": "a-purge-live"})
        assert code == 200 and r["deleted"] == 0, r
        assert status_of(s, "a-purge-live") == "RUNNING"
        code, r, _ = action(s, "purge", {"id": "a-term"})
        assert code == 200 and r["deleted"] == 1
        assert api(s, "instance", id="a-term")[0] == 404

    code, r, _ = action(s, "raise", {"id": "nope", "name": "go"})
    assert code == 404 and "nope" in r["error"]
    for name, body, needle in (
            ("raise", {"id": "a-susp"}, "name"),
            ("raise", {"id": "a-susp", "name": ""}, "name"),
            ("raise", {"id": "a-susp", "name": "go", "input": 5}, "input: must be a string"),
            ("raise", {"name": "go"}, "id: required"),
            ("terminate", {"id": "a-susp", "recursive": "yes"}, "recursive: must be true or false"),
            ("suspend", {"id": "a-susp", "name": "x"}, 'unknown field "name"'),
            ("purge", {"id": "a\x03"}, "id")):
        code, r, _ = action(s, name, body)
        assert code == 400 and needle in r["error"], (name, body, r)
    for raw, needle in ((b"", "JSON object"), (b"[1]", "JSON object"), (b"{", "JSON object")):
        code, r, _ = request(s, "POST", "/api/v1/actions/raise", body=raw, headers=ACTION_HEADERS)
        assert code == 400 and needle in r["error"], (raw, r)
    code, r, _ = action(s, "explode", {"id": "a-susp"})
    assert code == 404 and "no such action" in r["error"]
    code, r, _ = request(s, "PUT", "/api/v1/actions/raise", body=b"{}", headers=ACTION_HEADERS)
    assert code == 405

    # CSRF: the ops port's rules for state changes (the admin header, same-origin, no form), and a JSON body
    body = {"id": "a-susp", "reason": "csrf"}
    for headers, needle in (({"Content-Type": "application/json"}, "X-Taskhubd-Admin"),
                            ({"X-Taskhubd-Admin": "1", "Content-Type": "text/plain"}, "form-encoded"),
                            ({"X-Taskhubd-Admin": "1", "Content-Type": "application/xml"}, "application/json"),
                            (dict(ACTION_HEADERS, Origin="http://evil.example"), "cross-origin"),
                            (dict(ACTION_HEADERS, **{"Sec-Fetch-Site": "cross-site"}), "cross-site"),
                            (dict(ACTION_HEADERS, Host="evil.example"), "host")):
        code, r, _ = action(s, "suspend", body, headers=headers)
        assert code == 403 and needle in r["error"], (headers, r)
    assert status_of(s, "a-susp") == "RUNNING"
    same = dict(ACTION_HEADERS, Origin=f"http://127.0.0.1:{s.ops_port}", **{"Sec-Fetch-Site": "same-origin"})
    assert action(s, "suspend", body, headers=same)[0] == 200


def test_read_only_and_off(server_factory):
    s = server_factory.start("--dashboard", "read-only")
    with make_client(s) as c:
        c.schedule_new_orchestration("d_wait", instance_id="ro-1")
    code, r, _ = action(s, "terminate", {"id": "ro-1"})
    assert code == 403 and "read-only" in r["error"]
    assert api(s, "instance", id="ro-1")[0] == 200
    assert api(s, "explain", id="ro-1")[0] == 200  # a read
    assert api(s, "config")[1]["actions"] is False
    assert request(s, "GET", "/")[0] == 200

    off = server_factory.start("--dashboard", "off")
    assert request(off, "GET", "/")[0] == 404
    assert api(off, "instances")[0] == 404
    assert request(off, "GET", "/healthz")[0] == 200
    assert request(off, "GET", "/metrics")[0] == 200


def test_token(server_factory, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("# dashboard test\ns3cret-one\n")
    s = server_factory.start("--auth-token-file", str(tokens))
    for path, params in (("instances", {}), ("instance", {"id": "x"}), ("history", {"id": "x"}),
                         ("children", {"id": "x"}), ("counts", {}), ("overview", {}), ("config", {}),
                         ("events", {}), ("explain", {"id": "x"})):
        code, r, h = api(s, path, **params)
        assert code == 401 and r["code"] == "UNAUTHENTICATED", (path, r)
        assert h["WWW-Authenticate"].startswith("Bearer")
        assert api(s, path, token="wrong", **params)[0] == 401
    code, r, _ = action(s, "raise", {"id": "x", "name": "go"})
    assert code == 401
    assert api(s, "instances", token="s3cret-one")[0] == 200
    assert api(s, "instance", id="x", token="s3cret-one")[0] == 404
    code, r, _ = action(s, "raise", {"id": "x", "name": "go"}, token="s3cret-one")
    assert code == 404, r
    # the page itself holds no data: it loads, then asks for the token
    assert request(s, "GET", "/")[0] == 200


def _read_event(resp, deadline):
    """The next SSE block (event name, data) from a streaming response, skipping comments."""
    event, data = None, ""
    while time.monotonic() < deadline:
        line = resp.fp.readline().decode()
        if line == "":
            raise AssertionError("the event stream ended")
        line = line.rstrip("\n")
        if line == "":
            if event:
                return event, data
            continue
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data += line[6:]
    raise AssertionError("no event before the deadline")


def test_events(server_factory, workers):
    s = server_factory.start()
    conn = http.client.HTTPConnection("127.0.0.1", s.ops_port, timeout=WAIT_S)
    conn.request("GET", "/api/v1/events")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type") == "text/event-stream"
    deadline = time.monotonic() + WAIT_S
    assert _read_event(resp, deadline)[0] == "hello"
    start_worker(s, workers)
    with make_client(s) as c:
        c.schedule_new_orchestration("d_chain", input="e", instance_id="ev-1")
        done(c, "ev-1")
    seen = {}
    while seen.get("ev-1") != "COMPLETED":
        event, data = _read_event(resp, deadline)
        assert event == "changes", (event, data)
        for ch in json.loads(data):
            seen[ch["id"]] = ch["status"]
            assert ch["exists"] is True
    # a second stream, left open: the server must still stop cleanly (teardown checks exit status 0)
    conn2 = http.client.HTTPConnection("127.0.0.1", s.ops_port, timeout=WAIT_S)
    conn2.request("GET", "/api/v1/events")
    r2 = conn2.getresponse()
    assert _read_event(r2, time.monotonic() + WAIT_S)[0] == "hello"
    s.stop()
    conn.close()
    conn2.close()


def test_entities(server_factory):
    # No entity worker: signalled entities stay transient, their operations queued.
    from durabletask.entities import EntityInstanceId
    s = server_factory.start()
    with make_client(s) as c:
        for key in ("k1", "k2", "k3"):
            c.signal_entity(EntityInstanceId("counter", key), "add", input=1)
        c.signal_entity(EntityInstanceId("other", "x"), "add", input=1)
    code, r, _ = api(s, "entities")
    assert code == 200, r
    ids = [e["id"] for e in r["entities"]]
    assert ids == ["@counter@k1", "@counter@k2", "@counter@k3", "@other@x"], r
    assert all(e["queued"] >= 1 and "state" not in e for e in r["entities"])
    assert [e["id"] for e in api(s, "entities", prefix="counter@k")[1]["entities"]] == ids[:3]
    assert [e["id"] for e in api(s, "entities", prefix="@other")[1]["entities"]] == ids[3:]
    seen, token = [], None
    while True:
        code, r, _ = api(s, "entities", pageSize=2, **({"next": token} if token else {}))
        seen += [e["id"] for e in r["entities"]]
        token = r["next"]
        if not token:
            break
    assert seen == ids
    bad(s, "entities", {"next": "nope"}, "next")
    bad(s, "entities", {"pageSize": "0"}, "pageSize")
    bad(s, "entities", {"key": "x"}, "unknown parameter")
