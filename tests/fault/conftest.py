"""Fixtures for the fault tests (crash, stream loss, stale completions).

Every test gets its own taskhubd processes, started from $TASKHUBD_BIN with
--listen 127.0.0.1:0 on a fresh --data-dir; the bound port is learned through
--ready-fd (a pipe read with select: no polling, no sleeping). A server can be
SIGKILLed (crash simulation) and started again on the same data dir; it then
listens on a new port. At teardown every server that was not killed is stopped
with SIGTERM and must exit 0; no server's stderr may contain a sanitizer report.

The servers log at --log-level debug (override with TASKHUBD_FAULT_LOG_LEVEL);
their stderr goes to <tmp_path>/taskhubd<N>.stderr and its tail is attached to
every failure report.

If TASKHUBD_BIN is unset every test is skipped with a message saying so; if it
is set but the server does not come up, the test fails.
"""

import os
import select
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from durabletask import worker as dt_worker
from durabletask.client import TaskHubGrpcClient
from durabletask.grpc_options import GrpcChannelOptions
from durabletask.internal import orchestrator_service_pb2_grpc as pb_grpc

READY_TIMEOUT_S = 60.0   # generous: ASan builds start slowly on loaded CI machines
STOP_TIMEOUT_S = 30.0
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                     "ThreadSanitizer", "MemorySanitizer", "runtime error:")
LOG_LEVEL = os.environ.get("TASKHUBD_FAULT_LOG_LEVEL", "debug")

SKIP_REASON = ("TASKHUBD_BIN is not set: the fault tests need the taskhubd binary "
               "(run them through ctest -L fault, or set TASKHUBD_BIN=<build>/sidecar/taskhubd)")

# never route 127.0.0.1 through an http proxy configured in the environment
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]


def pytest_collection_modifyitems(config, items):
    if os.environ.get("TASKHUBD_BIN"):
        return
    marker = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        item.add_marker(marker)


# --------------------------------------------------------------------------- servers

@dataclass
class Server:
    port: int
    data_dir: Path
    proc: subprocess.Popen
    stderr_path: Path
    args: tuple
    killed: bool = False
    stopped: bool = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_lines(self, *needles: str) -> list:
        """Lines of this server's stderr that contain every one of the needles."""
        return [ln for ln in self.stderr_text().splitlines() if all(n in ln for n in needles)]

    def log_tail(self, n: int = 80) -> str:
        lines = self.stderr_text().splitlines()
        return f"--- {self.stderr_path.name} (last {min(n, len(lines))} of {len(lines)} lines) ---\n" + \
            "\n".join(lines[-n:])

    def kill(self) -> None:
        """SIGKILL (crash simulation); the teardown then skips the exit-status check."""
        assert self.proc.poll() is None, \
            f"taskhubd on port {self.port} had already exited (status {self.proc.returncode})"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT_S)
        self.killed = True


def _read_port(fd: int, proc: subprocess.Popen, stderr_path: Path) -> int:
    deadline = time.monotonic() + READY_TIMEOUT_S
    buf = b""
    while b"\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            proc.kill()
            proc.wait()
            pytest.fail(f"taskhubd did not report its port within {READY_TIMEOUT_S}s; stderr:\n"
                        + stderr_path.read_text(errors="replace"))
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 64)
        if not chunk:  # EOF: the write end was closed without a port line (exit or crash)
            try:
                rc = proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
            pytest.fail(f"taskhubd closed --ready-fd without a port line (exit status {rc}); "
                        f"read so far {buf!r}; stderr:\n" + stderr_path.read_text(errors="replace"))
        buf += chunk
    line = buf.split(b"\n", 1)[0].strip()
    try:
        port = int(line)
    except ValueError:
        proc.kill()
        proc.wait()
        pytest.fail(f"taskhubd wrote a bad ready line {buf!r}")
    if not 0 < port < 65536:
        proc.kill()
        proc.wait()
        pytest.fail(f"taskhubd reported an impossible port {port}")
    return port


def _spawn(binary: str, data_dir: Path, stderr_path: Path, extra_args: tuple) -> Server:
    r, w = os.pipe()
    try:
        with open(stderr_path, "ab") as err:
            proc = subprocess.Popen(
                [binary, "--listen", "127.0.0.1:0", "--data-dir", str(data_dir),
                 "--ready-fd", str(w), "--log-level", LOG_LEVEL, *extra_args],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                pass_fds=(w,), close_fds=True)
    except OSError as e:
        os.close(r)
        os.close(w)
        pytest.fail(f"TASKHUBD_BIN={binary!r} could not be started: {e}")
    os.close(w)
    try:
        port = _read_port(r, proc, stderr_path)
    finally:
        os.close(r)
    return Server(port=port, data_dir=data_dir, proc=proc, stderr_path=stderr_path,
                  args=tuple(extra_args))


def _sigterm(server: Server) -> list:
    """Stops a live server with SIGTERM; returns a list of problems (empty when clean)."""
    problems = []
    if server.killed or server.stopped:
        return problems
    server.stopped = True
    if server.proc.poll() is not None:
        problems.append(f"taskhubd on port {server.port} died during the test "
                        f"(exit status {server.proc.returncode})")
        return problems
    server.proc.send_signal(signal.SIGTERM)
    try:
        rc = server.proc.wait(timeout=STOP_TIMEOUT_S)
        if rc != 0:
            problems.append(f"taskhubd on port {server.port} exited with status {rc} "
                            f"after SIGTERM (expected 0)")
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
        problems.append(f"taskhubd on port {server.port} did not exit within "
                        f"{STOP_TIMEOUT_S}s of SIGTERM")
    return problems


def _sanitizer_problems(server: Server) -> list:
    text = server.stderr_text()
    hits = [m for m in SANITIZER_MARKERS if m in text]
    if hits:
        return [f"taskhubd ({server.stderr_path.name}) stderr mentions {hits}"]
    return []


@dataclass
class ServerFactory:
    binary: str
    root: Path
    servers: list = field(default_factory=list)
    _n: int = 0

    def start(self, *extra_args: str, data_dir: Path | None = None) -> Server:
        self._n += 1
        if data_dir is None:
            data_dir = self.root / f"data{self._n}"
        stderr_path = self.root / f"taskhubd{self._n}.stderr"
        server = _spawn(self.binary, data_dir, stderr_path, tuple(extra_args))
        self.servers.append(server)
        return server

    def restart(self, old: Server) -> Server:
        """Starts a new taskhubd on the data dir of `old` (which must be dead by now)
        with the same extra arguments; it gets a new port."""
        assert old.proc.poll() is not None, "restart() of a server that is still running"
        return self.start(*old.args, data_dir=old.data_dir)

    def logs(self) -> str:
        return "\n".join(s.log_tail() for s in self.servers)

    def stop_all(self) -> list:
        problems = []
        for server in self.servers:
            problems += _sigterm(server)
        for server in self.servers:
            problems += _sanitizer_problems(server)
        return problems


@pytest.fixture
def server_factory(tmp_path):
    binary = os.environ.get("TASKHUBD_BIN")
    if not binary:
        pytest.skip(SKIP_REASON)
    factory = ServerFactory(binary=binary, root=tmp_path)
    yield factory
    problems = factory.stop_all()
    if problems:
        pytest.fail("\n".join(problems) + "\n" + factory.logs(), pytrace=False)


# --------------------------------------------------------------------------- SDK objects

class CallRecorder(grpc.UnaryUnaryClientInterceptor):
    """Client interceptor (the SDK's public `interceptors=` option) that records the
    status code of every unary call by method name, e.g. to see what the server
    answered to a late CompleteActivityTask sent by a worker whose stream was cut."""

    def __init__(self):
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.calls = []   # (method, request, status code)

    def intercept_unary_unary(self, continuation, client_call_details, request):
        outcome = continuation(client_call_details, request)
        method = client_call_details.method
        if isinstance(method, bytes):
            method = method.decode()
        err = outcome.exception()
        code = grpc.StatusCode.OK if err is None else err.code()
        with self._cond:
            self.calls.append((method.rsplit("/", 1)[-1], request, code))
            self._cond.notify_all()
        return outcome

    def codes(self, rpc: str) -> list:
        with self._lock:
            return [code for (m, _req, code) in self.calls if m == rpc]

    def wait_for(self, rpc: str, timeout: float) -> list:
        """Waits (condition variable, with a deadline) until `rpc` was called at least once."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                codes = [code for (m, _req, code) in self.calls if m == rpc]
                remaining = deadline - time.monotonic()
                if codes or remaining <= 0:
                    return codes
                self._cond.wait(remaining)


def make_client(server: Server) -> TaskHubGrpcClient:
    return TaskHubGrpcClient(host_address=server.address,
                             channel_options=GrpcChannelOptions(raw_options=CHANNEL_OPTIONS))


def make_worker(server: Server, *, orchestrators: dict | None = None, activities: dict | None = None,
                filters=None, recorder: CallRecorder | None = None) -> dt_worker.TaskHubGrpcWorker:
    """A TaskHubGrpcWorker for `server`. orchestrators/activities map registered name -> function
    (closures are fine), so two workers can run different code under the same name."""
    w = dt_worker.TaskHubGrpcWorker(
        host_address=server.address,
        channel_options=GrpcChannelOptions(raw_options=CHANNEL_OPTIONS),
        interceptors=[recorder] if recorder is not None else None)
    # The SDK registers a function under its __name__ (add_named_* is not public in 1.12).
    for name, fn in (orchestrators or {}).items():
        fn.__name__ = name
        assert w.add_orchestrator(fn) == name
    for name, fn in (activities or {}).items():
        fn.__name__ = name
        assert w.add_activity(fn) == name
    if filters is not None:
        w.use_work_item_filters(filters)
    return w


def raw_stub(server: Server):
    """A raw TaskHubSidecarService stub built from the SDK package's generated code."""
    channel = grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS)
    return channel, pb_grpc.TaskHubSidecarServiceStub(channel)


class Workers:
    """Tracks the workers a test starts and stops whatever is still running at teardown.
    stop_async() stops a worker on a thread: TaskHubGrpcWorker.stop() cancels the work-item
    stream at once but then waits for the work items it is still executing.
    gate() hands out threading.Events that test activities/orchestrators block on; all of
    them are set at teardown first, so a failing test never leaves a worker hanging."""

    def __init__(self):
        self.running = []
        self.threads = []
        self.gates = []

    def gate(self) -> threading.Event:
        g = threading.Event()
        self.gates.append(g)
        return g

    def start(self, w):
        w.start()
        self.running.append(w)
        return w

    def stop(self, w):
        if w in self.running:
            self.running.remove(w)
            w.stop()

    def stop_async(self, w) -> threading.Thread:
        if w in self.running:
            self.running.remove(w)
        t = threading.Thread(target=w.stop, name="worker-stop", daemon=True)
        t.start()
        self.threads.append(t)
        return t

    def close(self):
        for g in self.gates:
            g.set()
        for w in list(self.running):
            self.stop(w)
        for t in self.threads:
            t.join(timeout=STOP_TIMEOUT_S)


@pytest.fixture
def workers(server_factory):
    # depends on server_factory so that workers are stopped before the servers are
    ws = Workers()
    yield ws
    ws.close()


def wait_until(pred, timeout: float, what: str, interval: float = 0.02, on_timeout=None):
    """Re-evaluates pred() until it returns a truthy value or the deadline passes
    (a condition wait with a deadline; `interval` only paces the re-checks)."""
    deadline = time.monotonic() + timeout
    pacer = threading.Event()
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            extra = on_timeout() if on_timeout is not None else ""
            pytest.fail(f"timed out after {timeout}s waiting for {what}\n{extra}", pytrace=False)
        pacer.wait(interval)
