"""Crash consistency at scale: orchestrations of every shape while taskhubd and its workers are SIGKILLed at random.

usage: chaos.py --taskhubd BIN --worker BIN [--work-dir DIR] [--seed N] [--orchestrations N] [--kills K]
                [--worker-kills W] [--workers N] [--window N] [--settle S] [--server-arg ARG]...
       (CHAOS_SEED, CHAOS_ORCHESTRATIONS, CHAOS_KILLS, CHAOS_WORKER_KILLS give the defaults of those flags)

One taskhubd on a unix socket (a fixed address that survives restarts) with a RocksDB data directory, and --workers
th-chaos-worker processes (tests/fault/chaos_worker.c, the C SDK) serving the shapes: chain, fanout, timer, event
(the "go" event is raised by this client once the instance says it waits for it), parent (two sub-orchestrations),
can (continue-as-new twice), retry (an activity that fails its first two attempts). Instances are started through
the raw gRPC API with a never-replace reuse policy, so a start retried after a kill either creates the instance or
finds it (ALREADY_EXISTS): every start counts only once it is acknowledged one way or the other. At most --window
orchestrations run at once.

taskhubd is SIGKILLed --kills times and a random worker --worker-kills times, from a thread of their own (so kills
also land in the middle of this client's starts and raises), in one shuffled timeline, each kill a random 0.1..1.5 s
after the previous one and while orchestrations run; taskhubd is restarted on the same data directory after
0..0.3 s, and a random fifth of the restarts (at least one) are themselves killed 0..0.4 s in (while they open
the store and recover; counted as startup_kills); a worker is restarted after 0..0.5 s. The starts are released in tranches, one per kill, so the
kills are spread over the whole load. The seed fixes the plan (the order of the shapes, the kinds and delays of
the kills); the exact interleaving with the servers' work is up to the machine.

Afterwards, with the last taskhubd still up, every instance and every history is read back:
  lost       an acknowledged start whose instance does not exist
  stuck      an instance not finished --settle seconds after the last kill and the last start
  wrong      finished with another status or output than the shape's formula gives (chaos_worker.c's header)
  duplicated_transitions  histories (parents and children) with a duplicated or missing state transition: not
             exactly one ExecutionStarted and one ExecutionCompleted (last), a TaskScheduled, TimerCreated or
             SubOrchestrationInstanceCreated not answered exactly once, an answer to nothing, or a count of
             scheduled tasks, timers, children or raised events other than the shape's
  activity_reexecutions   lines of the workers' execution logs (append + fdatasync per execution) beyond the first
             for one (instance, activity, task id, input); a history's completed or failed task with no execution
             line at all counts as a duplicated transition (a result nobody produced)
It prints `SUMMARY kills=… orchestrations=… completed_correctly=… wrong=… lost=… duplicated_transitions=… stuck=…
activity_reexecutions=… worker_kills=… startup_kills=… seconds=…` and exits 1 unless wrong, lost, duplicated_transitions and stuck
are all 0, every kill was made, no process died unasked, the workers and the last taskhubd stop cleanly on SIGTERM
and no sanitizer report is in their stderr (a process that cannot be started ends the run with status 1 too;
bad arguments give 2).
"""

import argparse
import bisect
import collections
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
from google.protobuf import wrappers_pb2

from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.internal import orchestrator_service_pb2_grpc as pb_grpc

SHAPES = ("chain", "fanout", "timer", "event", "parent", "can", "retry")
TERMINAL = {pb.ORCHESTRATION_STATUS_COMPLETED, pb.ORCHESTRATION_STATUS_FAILED,
            pb.ORCHESTRATION_STATUS_TERMINATED, pb.ORCHESTRATION_STATUS_CANCELED}
LIVE = [pb.ORCHESTRATION_STATUS_RUNNING, pb.ORCHESTRATION_STATUS_PENDING,
        pb.ORCHESTRATION_STATUS_SUSPENDED, pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW]
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                     "ThreadSanitizer", "runtime error:")
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED,
             grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0
CALL_TIMEOUT_S = 15.0
QUERY_EVERY_S = 0.3
RETRY_FOR_S = 120.0


# ------------------------------------------------------------------------------------------------ expectations

def sq(x: int) -> int:
    return (x * x) % 1000003


def fanout_n(i: int) -> int:
    return 3 + i % 6


def event_data(i: int) -> int:
    return 3 * i + 1


def expected_output(shape: str, i: int) -> str:
    """The shapes' outputs; the formulas are chaos_worker.c's (its header lists them)."""
    if shape == "chain":
        return str(4 * i + 6)
    if shape == "fanout":
        return str(sum(sq(i + k) for k in range(fanout_n(i))))
    if shape == "timer":
        return str(2 * i + 2)
    if shape == "event":
        return str(i + 1 + event_data(i))
    if shape == "parent":
        return str((2 * i + 2) + (2 * i + 4))
    if shape == "can":
        return str(3 * i + 6)
    if shape == "retry":
        return str(5 * i + 1)
    raise ValueError(shape)


# (TaskScheduled, TaskCompleted, TaskFailed, timers, sub-orchestrations) in the last execution's history
def expected_counts(shape: str, i: int) -> tuple:
    return {
        "chain": (4, 4, 0, 0, 0),
        "fanout": (fanout_n(i), fanout_n(i), 0, 0, 0),
        "timer": (2, 2, 0, 1, 0),
        "event": (1, 1, 0, 0, 0),
        "parent": (0, 0, 0, 0, 2),
        "child": (2, 2, 0, 0, 0),
        "can": (1, 1, 0, 0, 0),
        "retry": (3, 1, 2, 2, 0),
    }[shape]


# ------------------------------------------------------------------------------------------------ processes

class Proc:
    """A child process with its stderr appended to a file."""

    def __init__(self, argv, stderr_path: Path, pass_fds=()):
        self.stderr_path = stderr_path
        self.ready_fd = None
        with open(stderr_path, "ab") as err:
            err.write(f"--- {time.strftime('%H:%M:%S')} start: {' '.join(map(str, argv))}\n".encode())
            err.flush()
            self.proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err, pass_fds=pass_fds,
                                         close_fds=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT_S)
        if self.ready_fd is not None:
            os.close(self.ready_fd)
            self.ready_fd = None

    def wait_ready(self) -> None:
        """Waits (with a deadline) for the line a worker writes to its --ready-fd once SIGTERM stops it cleanly."""
        if self.ready_fd is None:
            return
        ready, _, _ = select.select([self.ready_fd], [], [], READY_TIMEOUT_S)
        if ready:
            os.read(self.ready_fd, 64)
        os.close(self.ready_fd)
        self.ready_fd = None

    def sigterm(self) -> str | None:
        """Stops the process with SIGTERM; a problem description, or None when it exits 0."""
        self.wait_ready()
        if not self.alive():
            return f"{self.stderr_path.name}: had exited by itself with status {self.proc.returncode}"
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return f"{self.stderr_path.name}: did not exit within {STOP_TIMEOUT_S}s of SIGTERM"
        return None if rc == 0 else f"{self.stderr_path.name}: exited with status {rc} after SIGTERM"


class Cluster:
    """taskhubd on a unix socket in the work dir, and the worker processes."""

    def __init__(self, args, work: Path):
        self.args = args
        self.work = work
        self.sock = work / "taskhubd.sock"
        self.data = work / "data"
        self.server = None
        self.workers = [None] * args.workers
        self.worker_starts = 0
        self.problems = []

    def note(self, what: str) -> None:
        """events.log in the work dir: each kill and start with its wall-clock time (epoch ms), to set the
        execution logs' lines against when a failed run is examined."""
        with open(self.work / "events.log", "a", encoding="utf-8") as f:
            f.write(f"{int(time.time() * 1000)}\t{what}\n")

    @property
    def target(self) -> str:
        return f"unix:{self.sock}"

    def spawn_server(self) -> int:
        """Starts taskhubd; returns the read end of its --ready-fd pipe."""
        r, w = os.pipe()
        try:
            self.server = Proc([self.args.taskhubd, "--listen", self.target, "--data-dir", self.data,
                                "--ops-listen", "off", "--ready-fd", w, "--log-level", "info",
                                *self.args.server_arg],
                               self.work / "taskhubd.stderr", pass_fds=(w,))
        finally:
            os.close(w)
        return r

    def start_server(self) -> None:
        """Starts taskhubd and waits until it serves (recovery done)."""
        r = self.spawn_server()
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            buf = b""
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SystemExit(f"chaos: taskhubd did not get ready within {READY_TIMEOUT_S}s")
                ready, _, _ = select.select([r], [], [], left)
                if ready:
                    chunk = os.read(r, 64)
                    if not chunk:
                        raise SystemExit(f"chaos: taskhubd exited before it was ready (status "
                                         f"{self.server.proc.wait()}); see {self.server.stderr_path}")
                    buf += chunk
        finally:
            os.close(r)
        self.note(f"taskhubd ready pid={self.server.proc.pid}")

    def kill_during_startup(self, delay: float) -> None:
        """Starts taskhubd and SIGKILLs it `delay` seconds later, ready or not (opening the store, recovering)."""
        r = self.spawn_server()
        try:
            time.sleep(delay)
            self.kill_server()
        finally:
            os.close(r)

    def kill_server(self) -> None:
        if not self.server.alive():
            self.problems.append(f"taskhubd died by itself (status {self.server.proc.returncode}) "
                                 f"before a planned kill; see {self.server.stderr_path}")
            return
        self.note(f"taskhubd kill pid={self.server.proc.pid}")
        self.server.kill()

    def start_worker(self, slot: int) -> None:
        self.worker_starts += 1
        log = self.work / f"exec-{slot}-{self.worker_starts}.log"
        r, w = os.pipe()
        try:
            self.workers[slot] = Proc([self.args.worker, "--target", self.target, "--exec-log", log,
                                       "--ready-fd", w], self.work / f"worker-{slot}.stderr", pass_fds=(w,))
        finally:
            os.close(w)
        self.workers[slot].ready_fd = r
        self.note(f"worker start slot={slot} pid={self.workers[slot].proc.pid}")

    def kill_worker(self, slot: int) -> None:
        w = self.workers[slot]
        if not w.alive():
            self.problems.append(f"worker {slot} died by itself (status {w.proc.returncode}); "
                                 f"see {w.stderr_path}")
            return
        self.note(f"worker kill slot={slot} pid={w.proc.pid}")
        w.kill()

    def stop_all(self) -> None:
        for w in self.workers:
            if w is not None:
                p = w.sigterm()
                if p:
                    self.problems.append(p)
        if self.server is not None:
            p = self.server.sigterm()
            if p:
                self.problems.append(p)
        for path in sorted(self.work.glob("*.stderr")):
            text = path.read_text(errors="replace")
            hits = [m for m in SANITIZER_MARKERS if m in text]
            if hits:
                self.problems.append(f"{path}: sanitizer report ({', '.join(hits)})")


# ------------------------------------------------------------------------------------------------ client calls

class Client:
    def __init__(self, target: str):
        # reconnect quickly after a restart (gRPC's default backoff grows to two minutes), so the load keeps up
        self.channel = grpc.insecure_channel(target, options=[("grpc.initial_reconnect_backoff_ms", 100),
                                                              ("grpc.min_reconnect_backoff_ms", 100),
                                                              ("grpc.max_reconnect_backoff_ms", 1000)])
        self.stub = pb_grpc.TaskHubSidecarServiceStub(self.channel)
        self.retried = collections.Counter()   # status code name -> calls retried after it

    def _retry_or_raise(self, e: grpc.RpcError, since: float) -> None:
        """Counts a retryable failure (a restart under way) and paces the retry; re-raises anything else, and
        a call that has failed for RETRY_FOR_S (a server that keeps failing is a finding, not a restart)."""
        if e.code() not in RETRYABLE or time.monotonic() - since > RETRY_FOR_S:
            raise e
        self.retried[e.code().name] += 1
        time.sleep(0.05)

    def call(self, method: str, req, *, accept=()):
        """Retries through restarts; returns the response, or the grpc.StatusCode when it is in `accept`."""
        fn = getattr(self.stub, method)
        since = time.monotonic()
        while True:
            try:
                return fn(req, timeout=CALL_TIMEOUT_S, wait_for_ready=True)
            except grpc.RpcError as e:
                if e.code() in accept:
                    return e.code()
                self._retry_or_raise(e, since)

    def history(self, iid: str) -> list:
        since = time.monotonic()
        while True:
            try:
                events = []
                for chunk in self.stub.StreamInstanceHistory(pb.StreamInstanceHistoryRequest(instanceId=iid),
                                                             timeout=CALL_TIMEOUT_S, wait_for_ready=True):
                    events.extend(chunk.events)
                return events
            except grpc.RpcError as e:
                self._retry_or_raise(e, since)

    def start(self, shape: str, iid: str, i: int) -> bool:
        """True when created now, False when a retried start found it created (ALREADY_EXISTS)."""
        req = pb.CreateInstanceRequest(instanceId=iid, name=shape, input=wrappers_pb2.StringValue(value=str(i)))
        req.orchestrationIdReusePolicy.SetInParent()   # an empty policy: never replace
        out = self.call("StartInstance", req, accept=(grpc.StatusCode.ALREADY_EXISTS,))
        return out is not grpc.StatusCode.ALREADY_EXISTS

    def get(self, iid: str):
        out = self.call("GetInstance", pb.GetInstanceRequest(instanceId=iid, getInputsAndOutputs=True),
                        accept=(grpc.StatusCode.NOT_FOUND,))
        if out is grpc.StatusCode.NOT_FOUND or not out.exists:
            return None
        return out.orchestrationState

    def live_ids(self, prefix: str) -> set:
        ids, token = set(), None
        while True:
            q = pb.InstanceQuery(runtimeStatus=LIVE, maxInstanceCount=1000,
                                 instanceIdPrefix=wrappers_pb2.StringValue(value=prefix))
            if token:
                q.continuationToken.value = token
            resp = self.call("QueryInstances", pb.QueryInstancesRequest(query=q))
            ids.update(s.instanceId for s in resp.orchestrationState)
            token = resp.continuationToken.value if resp.HasField("continuationToken") else None
            if not token:
                return ids


# ------------------------------------------------------------------------------------------------ the run

def raise_due_events(client: Client, raises: list, stats: dict) -> list:
    """Raises "go" for the event instances whose time has come and that say they wait for it (so the event
    arrives while they run); returns the ones still to do. A raise whose outcome a kill hid is retried only
    while the instance still says it waits."""
    now = time.monotonic()
    pending = []
    for item in raises:
        due, iid, i = item
        if now < due:
            pending.append(item)
            continue
        st = client.get(iid)
        if st is None or st.orchestrationStatus in TERMINAL:
            continue      # the check afterwards reports it (lost or wrong)
        if st.customStatus.value != '"waiting"':
            item[0] = time.monotonic() + 0.2
            pending.append(item)
            continue
        try:
            client.stub.RaiseEvent(pb.RaiseEventRequest(instanceId=iid, name="go",
                                                        input=wrappers_pb2.StringValue(value=str(event_data(i)))),
                                   timeout=CALL_TIMEOUT_S, wait_for_ready=True)
            stats["events_raised"] += 1
        except grpc.RpcError as e:
            if e.code() not in RETRYABLE:
                raise
            client.retried[e.code().name] += 1
            stats["raise_retries"] += 1
            item[0] = time.monotonic() + 0.2
            pending.append(item)
    return pending


class Killer(threading.Thread):
    """Makes the kills, concurrently with the load (so they also land in the middle of the harness's own calls):
    one shuffled timeline of taskhubd and worker kills, each a random 0.1..1.5 s after the previous one, made once
    its tranche of starts is made and while orchestrations run (unless none can start before it: load.can_start). After a taskhubd kill it is restarted
    after 0..0.3 s; a random fifth of the restarts (at least one) are themselves killed 0..0.4 s after they begin
    (while taskhubd opens the store and recovers), then it is started again. A worker is restarted 0..0.5 s after
    its kill."""

    def __init__(self, args, cluster: Cluster, rng: random.Random, load, stats: collections.Counter):
        super().__init__(name="chaos-killer", daemon=True)
        self.cluster, self.rng, self.load, self.stats, self.args = cluster, rng, load, stats, args
        self.timeline = ["taskhubd"] * args.kills + ["worker"] * args.worker_kills
        rng.shuffle(self.timeline)
        self.n_events = len(self.timeline)
        # which taskhubd restarts (counted from 0) are themselves killed while they recover: a fifth, at least one
        self.startup_kill_at = set(rng.sample(range(args.kills), max(1, args.kills // 5) if args.kills else 0))
        self.done = 0
        self.error = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while self.timeline and not self.stop.is_set():
                self.stop.wait(self.rng.uniform(0.1, 1.5))
                # each kill waits for its tranche of starts (so the kills cannot run ahead of a slow load) and
                # for running work to land on
                tranche_end = self.load.n * (self.done + 1) // (self.n_events + 1)
                while not self.stop.is_set() and not (self.load.next_job >= tranche_end and
                                                      (self.load.live or not self.load.can_start())):
                    self.stop.wait(0.01)
                if self.stop.is_set():
                    return
                what = self.timeline.pop()
                if what == "taskhubd":
                    self.cluster.kill_server()
                    self.stats["kills"] += 1
                    time.sleep(self.rng.uniform(0.0, 0.3))
                    if self.stats["kills"] - 1 in self.startup_kill_at:
                        self.cluster.kill_during_startup(self.rng.uniform(0.0, 0.4))
                        self.stats["startup_kills"] += 1
                    self.cluster.start_server()
                else:
                    slot = self.rng.randrange(self.args.workers)
                    self.cluster.kill_worker(slot)
                    self.stats["worker_kills"] += 1
                    time.sleep(self.rng.uniform(0.0, 0.5))
                    self.cluster.start_worker(slot)
                self.done += 1
                print(f"chaos: {what} kill ({self.stats['kills']}/{self.args.kills} taskhubd, "
                      f"{self.stats['worker_kills']}/{self.args.worker_kills} worker) after {self.load.next_job} "
                      f"starts, {len(self.load.live)} running", flush=True)
        except BaseException as e:   # SystemExit from a start that failed, too: the load loop re-raises it
            self.error = e


class Load:
    """The starts and the external events. The starts are released in tranches, one per kill and one more
    (N / (kills + 1) each, plus up to the next tranche ten at a time whenever fewer than 10 run), so kills land on
    running work however fast or slow the machine is, and the load lasts as long as the kills do."""

    def __init__(self, n: int, rng: random.Random):
        self.n = n
        self.jobs = [(SHAPES[k % len(SHAPES)], k) for k in range(n)]
        rng.shuffle(self.jobs)
        self.next_job = 0
        self.allowed = 0
        self.live = set()

    def can_start(self) -> bool:
        return self.next_job < self.allowed


def run_load(args, cluster: Cluster, client: Client, rng: random.Random, prefix: str, stats: dict) -> list:
    """Runs the load while the Killer makes its kills; returns the started (shape, i, instance id) once every kill
    is made and every instance has finished, or --settle seconds after the last kill and start."""
    load = Load(args.orchestrations, rng)
    killer = Killer(args, cluster, random.Random(rng.random()), load, stats)
    raises = []                         # [due, iid, i] of event instances not yet sent their event
    submitted = []
    last_query = 0.0
    extra, extra_for = 0, 0             # starts released beyond the tranches, and for which kill
    last_change = time.monotonic()
    n = load.n
    killer.start()
    try:
        while True:
            if killer.error is not None:
                raise killer.error
            if time.monotonic() - last_query >= QUERY_EVERY_S:
                load.live = client.live_ids(prefix)
                last_query = time.monotonic()

            done = killer.done
            if done != extra_for:
                extra, extra_for = 0, done
            tranche_end = n * (done + 1) // (killer.n_events + 1)
            reserve_end = n * (done + 2) // (killer.n_events + 1)   # extras come from the next tranche only
            load.allowed = min(reserve_end, tranche_end + extra)
            if killer.timeline and len(load.live) < 10 and not load.can_start() and load.allowed < reserve_end:
                extra += 10
                load.allowed = min(reserve_end, tranche_end + extra)
            while load.can_start() and len(load.live) < args.window:
                shape, i = load.jobs[load.next_job]
                iid = f"{prefix}{shape}-{i:06d}"
                if not client.start(shape, iid, i):
                    stats["start_retries_found"] += 1
                submitted.append((shape, i, iid))
                load.live = load.live | {iid}
                load.next_job += 1
                if shape == "event":
                    raises.append([time.monotonic() + rng.uniform(0.05, 1.0), iid, i])

            raises = raise_due_events(client, raises, stats)

            if killer.is_alive() or load.next_job < n:
                last_change = time.monotonic()
            elif not raises and not load.live and time.monotonic() - last_query < QUERY_EVERY_S:
                return submitted
            elif time.monotonic() - last_change > args.settle:
                stats["settle_timeout"] = 1
                return submitted
            time.sleep(0.01)
    finally:
        killer.stop.set()
        killer.join()


# ------------------------------------------------------------------------------------------------ checks

def which(ev) -> str:
    return ev.WhichOneof("eventType")


def check_history(events: list, shape: str, i: int, iid: str, executions: collections.Counter,
                  raised: bool) -> list:
    """The problems of one instance's (last execution's) history."""
    problems = []
    kinds = [which(e) for e in events]
    if kinds.count("executionStarted") != 1:
        problems.append(f"{kinds.count('executionStarted')} ExecutionStarted")
    ends = [k for k in kinds if k in ("executionCompleted", "executionTerminated")]
    if len(ends) != 1:
        problems.append(f"{len(ends)} terminal events")
    elif any(k != "orchestratorCompleted" for k in kinds[kinds.index(ends[0]) + 1:]):
        problems.append("events after the terminal event")

    sched = {}          # task id -> TaskScheduled
    timers, subs = set(), set()
    answered = collections.Counter()
    n_completed = n_failed = 0
    for e, k in zip(events, kinds):
        if k == "taskScheduled":
            if e.eventId in sched or e.eventId in timers or e.eventId in subs:
                problems.append(f"action id {e.eventId} scheduled twice")
            sched[e.eventId] = e.taskScheduled
        elif k == "timerCreated":
            if e.eventId in sched or e.eventId in timers or e.eventId in subs:
                problems.append(f"action id {e.eventId} scheduled twice")
            timers.add(e.eventId)
        elif k == "subOrchestrationInstanceCreated":
            if e.eventId in sched or e.eventId in timers or e.eventId in subs:
                problems.append(f"action id {e.eventId} scheduled twice")
            subs.add(e.eventId)
        elif k in ("taskCompleted", "taskFailed"):
            tid = getattr(e, k).taskScheduledId
            if tid not in sched:
                problems.append(f"{k} for task {tid}, which was not scheduled")
            else:
                ts = sched[tid]
                key = (iid, ts.name, tid, ts.input.value)
                if executions[key] == 0:
                    problems.append(f"{k} for task {tid} ({ts.name}) that no worker recorded executing")
            answered[("task", tid)] += 1
            n_completed += k == "taskCompleted"
            n_failed += k == "taskFailed"
        elif k == "timerFired":
            tid = e.timerFired.timerId
            if tid not in timers:
                problems.append(f"TimerFired for timer {tid}, which was not created")
            answered[("timer", tid)] += 1
        elif k in ("subOrchestrationInstanceCompleted", "subOrchestrationInstanceFailed"):
            tid = getattr(e, k).taskScheduledId
            if tid not in subs:
                problems.append(f"{k} for {tid}, which was not created")
            answered[("sub", tid)] += 1
    for kind, ids in (("task", sched), ("timer", timers), ("sub", subs)):
        for tid in ids:
            if answered[(kind, tid)] != 1:
                problems.append(f"{kind} {tid} answered {answered[(kind, tid)]} times")
    for (kind, tid), c in answered.items():
        if c > 1 and not any(f"{kind} {tid} answered" in p for p in problems):
            problems.append(f"{kind} {tid} answered {c} times")

    want = expected_counts(shape, i)
    got = (len(sched), n_completed, n_failed, len(timers), len(subs))
    if got != want:
        problems.append(f"(scheduled, completed, failed, timers, children) = {got}, expected {want}")
    n_events = kinds.count("eventRaised")
    if shape == "event" and n_events < 1:
        problems.append("no EventRaised")
    if shape != "event" and n_events:
        problems.append(f"{n_events} EventRaised in a shape that gets none")
    if shape == "event" and n_events > 1 and not raised:
        problems.append(f"{n_events} EventRaised although the event was raised once without a retry")
    return problems


def read_executions(work: Path) -> tuple:
    """The workers' execution logs: a Counter of (instance, activity, task id, input), and for each such key
    the wall-clock times (epoch ms) of its executions."""
    execs = collections.Counter()
    times = collections.defaultdict(list)
    for path in sorted(work.glob("exec-*.log")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    continue
                iid, name, tid, inp, _pid, ms = line[:-1].split("\t")
                key = (iid, name, int(tid), inp)
                execs[key] += 1
                times[key].append(int(ms))
    return execs, times


def reexecutions_while_down(work: Path, times: dict) -> int:
    """How many re-executions repeat an execution that began while taskhubd was down (between a kill and the
    next restart's ready): a work item the worker had received from the killed server and ran after it died,
    whose result could reach no one. The rest repeat executions whose results a kill (of taskhubd or of the
    worker) lost on the way or before they were committed."""
    down = []          # [kill ms, ready ms) intervals
    kill_at = None
    path = work / "events.log"
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        ms, what = line.split("\t", 1)
        if what.startswith("taskhubd kill") and kill_at is None:
            kill_at = int(ms)
        elif what.startswith("taskhubd ready") and kill_at is not None:
            down.append((kill_at, int(ms)))
            kill_at = None
    starts = [a for a, _ in down]
    n = 0
    for ts in times.values():
        if len(ts) < 2:
            continue
        for t in sorted(ts)[:-1]:
            j = bisect.bisect_right(starts, t) - 1
            n += j >= 0 and t < down[j][1]
    return n


def verify(client: Client, submitted: list, work: Path, stats: dict, raise_retried: bool) -> dict:
    executions, exec_times = read_executions(work)
    out = dict(completed_correctly=0, wrong=0, lost=0, duplicated_transitions=0, stuck=0, histories=0)
    details = []

    def check_one(iid, shape, i, want):
        st = client.get(iid)
        if st is None:
            out["lost"] += 1
            details.append(f"lost: {iid}")
            return False
        if st.orchestrationStatus not in TERMINAL:
            out["stuck"] += 1
            details.append(f"stuck: {iid} is {pb.OrchestrationStatus.Name(st.orchestrationStatus)}")
            return False
        ok = st.orchestrationStatus == pb.ORCHESTRATION_STATUS_COMPLETED and st.output.value == want
        events = client.history(iid)
        out["histories"] += 1
        problems = check_history(events, shape, i, iid, executions, raise_retried)
        if problems:
            out["duplicated_transitions"] += 1
            details.append(f"history of {iid}: " + "; ".join(problems) + "\n    events: " +
                           " ".join(f"{e.eventId}:{which(e)}" for e in events))
        if not ok:
            fd = st.failureDetails.errorMessage if st.HasField("failureDetails") else ""
            details.append(f"wrong: {iid} {pb.OrchestrationStatus.Name(st.orchestrationStatus)} "
                           f"output={st.output.value!r} want {want!r} {fd}")
        return ok and not problems

    for shape, i, iid in submitted:
        ok = check_one(iid, shape, i, expected_output(shape, i))
        if shape == "parent":
            for k in (0, 1):
                ok &= check_one(f"{iid}:c{k}", "child", i + k, str(2 * (i + k) + 2))
        st = client.get(iid)
        if st is not None and st.orchestrationStatus in TERMINAL:
            if ok:
                out["completed_correctly"] += 1
            elif st.orchestrationStatus != pb.ORCHESTRATION_STATUS_COMPLETED or \
                    st.output.value != expected_output(shape, i):
                out["wrong"] += 1
    out["activity_reexecutions"] = sum(c - 1 for c in executions.values() if c > 1)
    out["activity_executions"] = sum(executions.values())
    out["reexecutions_while_down"] = reexecutions_while_down(work, exec_times)
    out["details"] = details
    return out


# ------------------------------------------------------------------------------------------------ main

def env_int(name: str, default: int) -> int:
    v = os.environ.get(name)
    return int(v) if v not in (None, "") else default


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--taskhubd", default=os.environ.get("TASKHUBD_BIN"), help="taskhubd binary ($TASKHUBD_BIN)")
    ap.add_argument("--worker", default=os.environ.get("CHAOS_WORKER_BIN"),
                    help="th-chaos-worker binary ($CHAOS_WORKER_BIN)")
    ap.add_argument("--work-dir", help="data, sockets, logs (default: a new temporary directory, removed when "
                    "the run passes)")
    ap.add_argument("--seed", type=int, default=env_int("CHAOS_SEED", 1))
    ap.add_argument("--orchestrations", type=int, default=env_int("CHAOS_ORCHESTRATIONS", 500))
    ap.add_argument("--kills", type=int, default=env_int("CHAOS_KILLS", 8), help="taskhubd SIGKILLs")
    ap.add_argument("--worker-kills", type=int, default=env_int("CHAOS_WORKER_KILLS", -1),
                    help="worker SIGKILLs (default: half of --kills, at least 1)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--window", type=int, default=200, help="orchestrations running at once, at most")
    ap.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                    help="one more taskhubd argument, e.g. --server-arg=--cache-size=0 (repeatable)")
    ap.add_argument("--settle", type=float, default=180.0,
                    help="seconds the load may take to finish once the last kill and start are done")
    args = ap.parse_args(argv)
    if args.worker_kills < 0:
        args.worker_kills = max(1, args.kills // 2)
    if not args.taskhubd or not args.worker:
        ap.error("--taskhubd and --worker (or TASKHUBD_BIN and CHAOS_WORKER_BIN) are required")
    if args.orchestrations < 1 or args.kills < 0 or args.workers < 1 or args.window < 1:
        ap.error("--orchestrations, --workers and --window must be positive, --kills not negative")

    own_dir = args.work_dir is None
    work = Path(tempfile.mkdtemp(prefix="th-chaos-", dir="/tmp")) if own_dir else Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    if len(str(work / "taskhubd.sock")) > 100:
        ap.error(f"--work-dir {work} is too long for a unix socket path")
    print(f"chaos: seed={args.seed} orchestrations={args.orchestrations} kills={args.kills} "
          f"worker_kills={args.worker_kills} workers={args.workers} window={args.window} work_dir={work}",
          flush=True)

    rng = random.Random(args.seed)
    prefix = f"chaos{args.seed}-"
    stats = collections.Counter()
    t0 = time.monotonic()
    cluster = Cluster(args, work)
    client = None
    try:
        cluster.start_server()
        for slot in range(args.workers):
            cluster.start_worker(slot)
        client = Client(cluster.target)
        submitted = run_load(args, cluster, client, rng, prefix, stats)
        load_s = time.monotonic() - t0
        for slot in range(args.workers):      # no worker may add an execution while the logs are read
            p = cluster.workers[slot].sigterm()
            if p:
                cluster.problems.append(p)
            cluster.workers[slot] = None
        result = verify(client, submitted, work, stats, stats["raise_retries"] > 0)
    finally:
        retried = client.retried if client is not None else {}
        if client is not None:
            client.channel.close()
        cluster.stop_all()
    elapsed = time.monotonic() - t0

    for line in result["details"][:30]:
        print("chaos: " + line, flush=True)
    if len(result["details"]) > 30:
        print(f"chaos: ... and {len(result['details']) - 30} more", flush=True)
    for p in cluster.problems:
        print("chaos: PROBLEM " + p, flush=True)
    if stats["settle_timeout"]:
        print(f"chaos: the load did not finish within --settle {args.settle}s of the last kill", flush=True)
    if stats["kills"] != args.kills or stats["worker_kills"] != args.worker_kills:
        cluster.problems.append(f"made {stats['kills']} of {args.kills} taskhubd kills and "
                                f"{stats['worker_kills']} of {args.worker_kills} worker kills")
    print(f"chaos: load {load_s:.1f}s, {result['histories']} histories checked, "
          f"{result['activity_executions']} activity executions, {stats['events_raised']} events raised "
          f"({stats['raise_retries']} raise retries), {stats['start_retries_found']} retried starts found created; "
          f"of the {result['activity_reexecutions']} re-executions {result['reexecutions_while_down']} repeat one "
          f"that ran while taskhubd was down", flush=True)
    print("chaos: calls retried through restarts, by status: " +
          (", ".join(f"{k}={v}" for k, v in sorted(retried.items())) or "none"), flush=True)
    print(f"SUMMARY kills={stats['kills']} orchestrations={len(submitted)} "
          f"completed_correctly={result['completed_correctly']} wrong={result['wrong']} lost={result['lost']} "
          f"duplicated_transitions={result['duplicated_transitions']} stuck={result['stuck']} "
          f"activity_reexecutions={result['activity_reexecutions']} worker_kills={stats['worker_kills']} "
          f"startup_kills={stats['startup_kills']} "
          f"seconds={elapsed:.0f}", flush=True)
    bad = result["wrong"] or result["lost"] or result["duplicated_transitions"] or result["stuck"] or \
        cluster.problems or len(submitted) != args.orchestrations
    if bad:
        print(f"chaos: FAILED (seed {args.seed}); work dir kept: {work}", flush=True)
        return 1
    if own_dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
