"""HelloCities5 driven by the published Python SDK (worker and client) against a running taskhubd.

    python hello_cities.py HOST:PORT [COUNT] [SIDECAR_PID]

Schedules COUNT orchestrations that each call five activities in sequence, waits for all of them, and prints
one RESULT line; with SIDECAR_PID it also reports the sidecar's CPU seconds and RSS over the run.
"""
import os
import sys
import threading
import time

from durabletask import client, task, worker

CITIES = ["Tokyo", "Seattle", "London", "Cairo", "Lima"]


def say_hello(ctx: task.ActivityContext, city: str) -> str:
    return f"Hello {city}!"


def hello_cities(ctx: task.OrchestrationContext, _):
    out = []
    for c in CITIES:
        out.append((yield ctx.call_activity(say_hello, input=c)))
    return out


def proc_cpu_rss(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tick
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
    return cpu, rss


def main():
    target = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    pid = int(sys.argv[3]) if len(sys.argv) > 3 else None
    w = worker.TaskHubGrpcWorker(host_address=target)
    w.add_orchestrator(hello_cities)
    w.add_activity(say_hello)
    w.start()
    c = client.TaskHubGrpcClient(host_address=target)
    # Warm up: one orchestration end to end.
    iid = c.schedule_new_orchestration(hello_cities)
    c.wait_for_orchestration_completion(iid, timeout=60)
    cpu0 = proc_cpu_rss(pid)[0] if pid else 0.0
    t0 = time.monotonic()
    ids = [c.schedule_new_orchestration(hello_cities) for _ in range(count)]
    lat = []
    lock = threading.Lock()

    def waiter(chunk):
        cl = client.TaskHubGrpcClient(host_address=target)
        for i in chunk:
            st = cl.wait_for_orchestration_completion(i, timeout=600)
            assert st.runtime_status == client.OrchestrationStatus.COMPLETED, st
            with lock:
                lat.append(st.last_updated_at.timestamp() - st.created_at.timestamp())

    threads = [threading.Thread(target=waiter, args=(ids[k::8],)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    el = time.monotonic() - t0
    lat.sort()
    cpu, rss = proc_cpu_rss(pid) if pid else (0.0, 0.0)
    print(f"RESULT scenario=hello_cities5_python throughput={count / el:.1f} "
          f"p50_ms={lat[len(lat) // 2] * 1e3:.1f} p95_ms={lat[int(len(lat) * 0.95)] * 1e3:.1f} "
          f"p99_ms={lat[int(len(lat) * 0.99)] * 1e3:.1f} sidecar_cpu_s={cpu - cpu0:.2f} sidecar_rss_mb={rss:.1f}")
    w.stop()


if __name__ == "__main__":
    main()
