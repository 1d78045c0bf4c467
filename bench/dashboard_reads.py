#!/usr/bin/env python3
"""Times the dashboard's API on a loaded taskhubd (bench/dashboard.sh sets it up) and prints one RESULT line per
request kind:

  RESULT scenario=dashboard_<what> instances=<N> p50_ms p95_ms p99_ms server_p50_ms server_p99_ms [events=<n>]

p*_ms: the whole request as this client sees it (HTTP on loopback, JSON parsed); server_*: the server's own time
for the store reads and the JSON (the reply's serverMicros), where the endpoint reports it.
usage: dashboard_reads.py OPS_HOST:PORT INSTANCES [RUNS]
"""

import json
import statistics
import sys
import time
import urllib.parse
import urllib.request

ops, n = sys.argv[1], int(sys.argv[2])
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 30
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(path, **params):
    url = f"http://{ops}/api/v1/{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
    t = time.perf_counter()
    with opener.open(url, timeout=600) as r:
        body = json.loads(r.read())
    return (time.perf_counter() - t) * 1e3, body


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def measure(label, path, check, extra="", **params):
    client, server = [], []
    body = None
    for _ in range(runs):
        ms, body = get(path, **params)
        client.append(ms)
        if "serverMicros" in body:
            server.append(body["serverMicros"] / 1e3)
    problem = check(body)
    if problem:
        sys.exit(f"dashboard_reads: {label}: {problem}")
    s50 = f"{statistics.median(server):.2f}" if server else "na"
    s99 = f"{pct(server, 99):.2f}" if server else "na"
    print(f"RESULT scenario=dashboard_{label} instances={n} p50_ms={statistics.median(client):.2f} "
          f"p95_ms={pct(client, 95):.2f} p99_ms={pct(client, 99):.2f} server_p50_ms={s50} server_p99_ms={s99}{extra}",
          flush=True)
    return body


# the counts first: the counting thread (shared with /metrics) answers with its last count at once and counts again
# in the background once that count is stale; the time until a count covers every instance loaded is that scan
t0, polls = time.perf_counter(), []
deadline = t0 + 600
while True:
    ms, counts = get("counts")
    polls.append(ms)
    if counts.get("total", 0) >= n:
        break
    if time.perf_counter() > deadline:
        sys.exit(f"dashboard_reads: counts say {counts.get('total')} instances after 600 s, expected at least {n}")
    time.sleep(0.05)
count_ms = (time.perf_counter() - t0) * 1e3
total = counts["total"]
print(f"RESULT scenario=dashboard_counts_first instances={n} p50_ms={count_ms:.2f} p95_ms={count_ms:.2f} "
      f"p99_ms={count_ms:.2f} server_p50_ms=na server_p99_ms=na answer_max_ms={max(polls):.2f}", flush=True)
measure("counts_cached", "counts", lambda b: None if b["total"] == total else "total changed")

# newest first (the default), and oldest first: the same index walked backwards or forwards
first = measure("list_first_page", "instances", lambda b: None if len(b["instances"]) == 50 else "short page")
oldest = measure("list_first_page_oldest", "instances", lambda b: None if len(b["instances"]) == 50 else "short page",
                 direction="asc")
if first["instances"][0]["createdAt"] <= oldest["instances"][0]["createdAt"]:
    sys.exit("dashboard_reads: the newest-first page does not start after the oldest-first one")
measure("list_first_page_500", "instances", lambda b: None if len(b["instances"]) == 500 else "short page",
        pageSize=500)
measure("list_status_pending", "instances", lambda b: None if len(b["instances"]) == 50 else "short page",
        status="PENDING")
measure("list_status_completed", "instances", lambda b: None if b["instances"] else "no completed instance",
        status="COMPLETED")
mid = first["instances"][-1]["id"][:-3]
measure("list_prefix", "instances", lambda b: None if b["instances"] else "prefix found nothing", prefix=mid)
# a name matching nothing: the worst case, bounded by the scan budget (an empty page with `next`)
measure("list_name_nomatch", "instances", lambda b: None if not b["instances"] else "a match", name="nothing-by-this-name")
_, page2 = get("instances", next=first["next"])
measure("list_second_page", "instances", lambda b: None if len(b["instances"]) == 50 else "short page",
        next=first["next"])
measure("list_second_page_oldest", "instances", lambda b: None if len(b["instances"]) == 50 else "short page",
        next=oldest["next"], direction="asc")
measure("overview", "overview", lambda b: None if b["counts"].get("total") == total else "overview counts")

# the instance with the long history: the only finished fanout orchestration
_, done = get("instances", status="COMPLETED", pageSize=500)
big = max(done["instances"], key=lambda r: get("instance", id=r["id"])[1]["historyLength"])
_, rec = get("instance", id=big["id"])
events = rec["historyLength"]
print(f"BIG id={big['id']} events={events}", flush=True)
measure("instance", "instance", lambda b: None if b["historyLength"] == events else "record changed",
        f" events={events}", id=big["id"])
measure("history_slice_5000", "history", lambda b: None if len(b["events"]) == min(5000, events) else "short slice",
        f" events={events}", id=big["id"], limit=5000)
# the whole history as the page loads it: slices of 5000 until the end
client, server = [], []
for _ in range(max(5, runs // 3)):
    t, got, srv = time.perf_counter(), 0, 0.0
    while got < events:
        _, h = get("history", id=big["id"], limit=5000, **{"from": got})
        got += len(h["events"])
        srv += h["serverMicros"] / 1e3
    client.append((time.perf_counter() - t) * 1e3)
    server.append(srv)
print(f"RESULT scenario=dashboard_history_whole instances={n} p50_ms={statistics.median(client):.2f} "
      f"p95_ms={pct(client, 95):.2f} p99_ms={pct(client, 99):.2f} server_p50_ms={statistics.median(server):.2f} "
      f"server_p99_ms={pct(server, 99):.2f} events={events}", flush=True)
