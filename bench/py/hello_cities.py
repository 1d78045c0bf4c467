"""Load driven by the published Python SDK (durabletask==1.12.0) as worker AND client, against any sidecar.

    python hello_cities.py --addr HOST:PORT [--scenario hello_cities5|fanout|all] [--count 200] [--fanout 500]
                           [--schedulers 8] [--waiters 8] [--sidecar-pid PID] [--json FILE] [--timeout 600]

The legacy positional form `python hello_cities.py HOST:PORT [COUNT] [SIDECAR_PID]` still works (hello_cities5 only).

Scenarios (the same as bench/go):
  hello_cities5  COUNT orchestrations, each calling 5 activities in sequence (a short greeting each), scheduled
                 from --schedulers threads; the run waits for all of them. throughput = orchestrations/s over the
                 window from the first schedule to the last completion (the sidecar's lastUpdatedTimestamp of the
                 completed instance); p50/p95/p99 = per-instance completed - created, as recorded by the sidecar.
  fanout         one orchestration fanning out FANOUT activities and summing the greetings' lengths.
                 throughput = activities/s; p50 = p95 = p99 = the orchestration's completed - created (ms).

Each scenario prints one line:
  RESULT scenario=<name> throughput=<per second> p50_ms=<x> p95_ms=<x> p99_ms=<x> sidecar_cpu_s=<x> sidecar_rss_mb=<x>
sidecar_cpu_s is the sidecar's user+system CPU over the scenario, sidecar_rss_mb its VmRSS at the end, read from
/proc/<pid> of --sidecar-pid (0 when not given). --json FILE writes the same fields (and a few more) as a JSON array.
"""
import argparse
import json
import logging
import os
import sys
import threading
import time
from datetime import timezone

from durabletask import client, task, worker
from durabletask.grpc_options import GrpcChannelOptions

# Large fan-outs send whole histories to the worker: raise gRPC's 4 MB default on every channel.
CHANNEL = GrpcChannelOptions(max_receive_message_length=256 << 20, max_send_message_length=256 << 20)

CITIES = ["Tokyo", "Seattle", "London", "Cairo", "Lima"]


def say_hello(ctx: task.ActivityContext, city: str) -> str:
    return f"Hello {city}!"


def hello_cities5(ctx: task.OrchestrationContext, _):
    out = []
    for c in CITIES:
        out.append((yield ctx.call_activity(say_hello, input=c)))
    return out


def fanout(ctx: task.OrchestrationContext, n: int):
    tasks = [ctx.call_activity(say_hello, input=CITIES[i % len(CITIES)]) for i in range(n)]
    results = yield task.when_all(tasks)
    return sum(len(s) for s in results)


def proc_stats(pid):
    """CPU seconds (user+system) and VmRSS in MB of pid; zeros without a pid."""
    if not pid:
        return 0.0, 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tick
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
    return cpu, rss


def percentile(sorted_vals, p):
    if not sorted_vals:
        return 0.0
    return sorted_vals[min(int(len(sorted_vals) * p), len(sorted_vals) - 1)]


def epoch(dt):
    """Seconds since the epoch of a datetime from the SDK (naive ones are UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


class Runner:
    def __init__(self, addr, pid, timeout, log):
        self.addr, self.pid, self.timeout, self.log = addr, pid, timeout, log
        self.c = client.TaskHubGrpcClient(host_address=addr, logger=log, channel_options=CHANNEL)

    def wait_completed(self, c, iid):
        st = c.wait_for_orchestration_completion(iid, timeout=self.timeout)
        if st is None:
            raise RuntimeError(f"instance {iid}: not found")
        if st.runtime_status != client.OrchestrationStatus.COMPLETED:
            raise RuntimeError(f"instance {iid} ended {st.runtime_status}: {st.failure_details}")
        return st

    def run_threads(self, n, fn):
        errors = []

        def body():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=body) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def hello_cities5(self, count, schedulers, waiters):
        cpu0, _ = proc_stats(self.pid)
        ids = [None] * count
        lat = [0.0] * count
        done = [0.0] * count
        lock = threading.Lock()
        nxt = [0]

        def take():
            with lock:
                i = nxt[0]
                nxt[0] += 1
            return i if i < count else None

        def scheduler():
            while (i := take()) is not None:
                ids[i] = self.c.schedule_new_orchestration(hello_cities5)

        def waiter():
            cl = client.TaskHubGrpcClient(host_address=self.addr, logger=self.log, channel_options=CHANNEL)
            try:
                while (i := take()) is not None:
                    st = self.wait_completed(cl, ids[i])
                    out = json.loads(st.serialized_output)
                    if len(out) != 5 or out[4] != "Hello Lima!":
                        raise RuntimeError(f"instance {ids[i]}: unexpected output {st.serialized_output!r}")
                    lat[i] = (epoch(st.last_updated_at) - epoch(st.created_at)) * 1e3
                    done[i] = epoch(st.last_updated_at)
            finally:
                cl.close()

        t0 = time.time()
        m0 = time.monotonic()
        self.run_threads(schedulers, scheduler)
        nxt[0] = 0
        self.run_threads(waiters, waiter)
        client_el = time.monotonic() - m0
        el = max(done) - t0
        if el <= 0:  # sidecar timestamps unusable: fall back to the client's clock
            el = client_el
        cpu1, rss = proc_stats(self.pid)
        lat.sort()
        return dict(scenario="hello_cities5", throughput=count / el, p50_ms=percentile(lat, 0.50),
                    p95_ms=percentile(lat, 0.95), p99_ms=percentile(lat, 0.99), sidecar_cpu_s=cpu1 - cpu0,
                    sidecar_rss_mb=rss, count=count, seconds=el, client_seconds=client_el)

    def fanout(self, n):
        cpu0, _ = proc_stats(self.pid)
        m0 = time.monotonic()
        iid = self.c.schedule_new_orchestration(fanout, input=n)
        st = self.wait_completed(self.c, iid)
        client_el = time.monotonic() - m0
        want = sum(len(f"Hello {CITIES[i % len(CITIES)]}!") for i in range(n))
        if st.serialized_output != str(want):
            raise RuntimeError(f"fanout: output {st.serialized_output!r}, want {want}")
        el = epoch(st.last_updated_at) - epoch(st.created_at)
        if el <= 0:
            el = client_el
        cpu1, rss = proc_stats(self.pid)
        ms = el * 1e3
        return dict(scenario="fanout", throughput=n / el, p50_ms=ms, p95_ms=ms, p99_ms=ms,
                    sidecar_cpu_s=cpu1 - cpu0, sidecar_rss_mb=rss, count=n, seconds=el, client_seconds=client_el)


def result_line(r):
    return (f"RESULT scenario={r['scenario']} throughput={r['throughput']:.1f} p50_ms={r['p50_ms']:.1f} "
            f"p95_ms={r['p95_ms']:.1f} p99_ms={r['p99_ms']:.1f} sidecar_cpu_s={r['sidecar_cpu_s']:.2f} "
            f"sidecar_rss_mb={r['sidecar_rss_mb']:.1f}")


def parse_args(argv):
    if argv and not argv[0].startswith("-"):  # legacy: HOST:PORT [COUNT] [SIDECAR_PID]
        legacy = ["--addr", argv[0], "--scenario", "hello_cities5"]
        if len(argv) > 1:
            legacy += ["--count", argv[1]]
        if len(argv) > 2:
            legacy += ["--sidecar-pid", argv[2]]
        argv = legacy
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--addr", default="127.0.0.1:4001", help="sidecar address HOST:PORT")
    p.add_argument("--scenario", default="all", choices=["hello_cities5", "fanout", "all"])
    p.add_argument("--count", type=int, default=200, help="hello_cities5: number of orchestrations")
    p.add_argument("--fanout", type=int, default=500, help="fanout: number of activities")
    p.add_argument("--schedulers", type=int, default=8, help="hello_cities5: threads scheduling instances")
    p.add_argument("--waiters", type=int, default=8, help="hello_cities5: threads waiting for completions")
    p.add_argument("--sidecar-pid", type=int, default=0, help="pid of the sidecar, for cpu and rss")
    p.add_argument("--json", default="", help="also write the results as a JSON array to this file")
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait for any one instance")
    p.add_argument("-v", action="store_true", help="log the SDK's info messages")
    return p.parse_args(argv)


def main(argv):
    a = parse_args(argv)
    log = logging.getLogger("bench")
    log.setLevel(logging.INFO if a.v else logging.WARNING)
    if not log.handlers:
        log.addHandler(logging.StreamHandler(sys.stderr))
    w = worker.TaskHubGrpcWorker(host_address=a.addr, logger=log, channel_options=CHANNEL)
    w.add_orchestrator(hello_cities5)
    w.add_orchestrator(fanout)
    w.add_activity(say_hello)
    w.start()
    results = []
    try:
        r = Runner(a.addr, a.sidecar_pid, a.timeout, log)
        # Warm up: one of each orchestration end to end, outside the measurement.
        r.wait_completed(r.c, r.c.schedule_new_orchestration(hello_cities5))
        r.wait_completed(r.c, r.c.schedule_new_orchestration(fanout, input=5))
        if a.scenario in ("all", "hello_cities5"):
            results.append(r.hello_cities5(a.count, a.schedulers, a.waiters))
            print(result_line(results[-1]), flush=True)
        if a.scenario in ("all", "fanout"):
            results.append(r.fanout(a.fanout))
            print(result_line(results[-1]), flush=True)
    finally:
        w.stop()
    if a.json:
        for res in results:
            res.update(client="python", address=a.addr)
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Exception as e:  # noqa: BLE001 - one line, non-zero exit
        print(f"hello_cities.py: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
