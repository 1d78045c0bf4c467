"""Pieces the Python suites (interop/python, fault, ops) share for driving a taskhubd process.

Each suite's conftest.py puts tests/ on sys.path and imports from here; the tests keep importing
from their conftest."""

import os
import select
import signal
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest

from durabletask.internal import orchestrator_service_pb2_grpc as pb_grpc

READY_TIMEOUT_S = 60.0   # generous: ASan builds start slowly on loaded CI machines
STOP_TIMEOUT_S = 30.0
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                     "ThreadSanitizer", "MemorySanitizer", "runtime error:")
# never route 127.0.0.1 through an http proxy configured in the environment
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]


def read_port(fd: int, proc: subprocess.Popen, stderr_path: Path, what: str = "port (--ready-fd)",
              timeout: float = READY_TIMEOUT_S) -> int:
    """Reads one "<port>\\n" line from fd (select with a deadline). Fails the test (and kills the
    process) when the line does not come, the pipe hits EOF first, or the line is not a port."""
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            proc.kill()
            proc.wait()
            pytest.fail(f"taskhubd did not write its {what} within {timeout}s; stderr:\n"
                        + stderr_path.read_text(errors="replace"), pytrace=False)
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
            pytest.fail(f"taskhubd closed its {what} pipe without a port line (exit status {rc}); "
                        f"read so far {buf!r}; stderr:\n" + stderr_path.read_text(errors="replace"),
                        pytrace=False)
        buf += chunk
    line = buf.split(b"\n", 1)[0].strip()
    try:
        port = int(line)
    except ValueError:
        proc.kill()
        proc.wait()
        pytest.fail(f"taskhubd wrote a bad {what} line {buf!r}", pytrace=False)
    if not 0 < port < 65536:
        proc.kill()
        proc.wait()
        pytest.fail(f"taskhubd reported an impossible {what} {port}", pytrace=False)
    return port


def skip_all_without_binary(items, reason: str):
    """Marks every collected test skipped when TASKHUBD_BIN is unset (a suite run outside ctest)."""
    if os.environ.get("TASKHUBD_BIN"):
        return
    marker = pytest.mark.skip(reason=reason)
    for item in items:
        item.add_marker(marker)


def sigterm_problems(proc: subprocess.Popen, label: str) -> list:
    """Stops a live taskhubd with SIGTERM; the problems found (it had died, exited non-zero, or hung)."""
    if proc.poll() is not None:
        return [f"taskhubd {label} died during the test (exit status {proc.returncode})"]
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return [f"taskhubd {label} did not exit within {STOP_TIMEOUT_S}s of SIGTERM"]
    if rc != 0:
        return [f"taskhubd {label} exited with status {rc} after SIGTERM (expected 0)"]
    return []


class ServerLog:
    """What every suite's Server reads of its own stderr, the file at its `stderr_path`: whole, by line, its tail."""

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


def sanitizer_problems(server) -> list:
    """What a sanitizer said on the server's stderr, as teardown problems."""
    text = server.stderr_text()
    hits = [m for m in SANITIZER_MARKERS if m in text]
    if hits:
        return [f"taskhubd ({server.stderr_path.name}) stderr mentions {hits}"]
    return []


def raw_stub(server):
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
