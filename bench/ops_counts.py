#!/usr/bin/env python3
"""/healthz latency while /metrics is scraped without pause on a loaded taskhubd (bench/ops_counts.sh sets it up).

One thread probes /healthz without pause (a new connection each time, as kubelet's probes do); another scrapes
/metrics without pause, so every scrape that finds the last count of the task hub stale asks for (or, before the
count moved off the ops thread, waited for) a new one. Prints:

  RESULT scenario=ops_healthz_during_scrapes label=<L> instances=<N> seconds=<S> healthz_n p50_ms p99_ms max_ms
         over_100ms over_1s metrics_n metrics_p50_ms metrics_max_ms counts_finished count_ms pending

count_ms: the last count's own duration (taskhubd_instances_count_duration_seconds, where the server has it);
counts_finished: counts that finished during the run (the age gauge went down); pending: the PENDING gauge at the end.
usage: ops_counts.py OPS_HOST:PORT INSTANCES SECONDS LABEL
"""

import http.client
import re
import sys
import threading
import time

ops, n, seconds, label = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
host, port = ops.rsplit(":", 1)


def get(path):
    t = time.perf_counter()
    c = http.client.HTTPConnection(host, int(port), timeout=600)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    if r.status != 200:
        raise SystemExit(f"GET {path}: {r.status} {body[:200]!r}")
    return (time.perf_counter() - t) * 1e3, body


def sample(page, series):
    m = re.search(r"^" + re.escape(series) + r" ([0-9.eE+-]+)$", page, re.M)
    return float(m.group(1)) if m else None


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


stop = threading.Event()
healthz = []


def probe():
    while not stop.is_set():
        ms, body = get("/healthz")
        assert body == "ok\n", body
        healthz.append(ms)


# Before measuring: the store's first count after start, so every run scrapes a warm counter alike.
t0 = time.monotonic()
while sample(get("/metrics")[1], 'taskhubd_instances{status="PENDING"}') is None and time.monotonic() - t0 < 120:
    get("/healthz")
th = threading.Thread(target=probe)
th.start()
metrics, finished, last_age, page = [], 0, None, ""
end = time.monotonic() + seconds
while time.monotonic() < end:
    ms, page = get("/metrics")
    metrics.append(ms)
    age = sample(page, "taskhubd_instances_count_age_seconds")
    if age is not None and last_age is not None and age < last_age:
        finished += 1
    last_age = age
stop.set()
th.join()
took = sample(page, "taskhubd_instances_count_duration_seconds")
pending = sample(page, 'taskhubd_instances{status="PENDING"}')
count_ms = f"{took * 1000:.0f}" if took is not None else "n/a"
pending = f"{pending:.0f}" if pending is not None else "n/a"
print(f"RESULT scenario=ops_healthz_during_scrapes label={label} instances={n} seconds={seconds:g} "
      f"healthz_n={len(healthz)} p50_ms={pct(healthz, 50):.2f} p99_ms={pct(healthz, 99):.2f} "
      f"max_ms={max(healthz):.1f} over_100ms={sum(1 for x in healthz if x > 100)} "
      f"over_1s={sum(1 for x in healthz if x > 1000)} metrics_n={len(metrics)} "
      f"metrics_p50_ms={pct(metrics, 50):.2f} metrics_max_ms={max(metrics):.1f} "
      f"counts_finished={finished if last_age is not None else 'n/a'} count_ms={count_ms} "
      f"pending={pending}")
