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
import signal
import subprocess
import sys
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared harness
from taskhubd_harness import (  # noqa: E402
    ServerLog,
    read_port as _read_port,
    sanitizer_problems as _sanitizer_problems,
    raw_stub,
    Workers,
    sigterm_problems,
    skip_all_without_binary,
    wait_until,
    READY_TIMEOUT_S,
    STOP_TIMEOUT_S,
    SANITIZER_MARKERS,
    CHANNEL_OPTIONS,
)

LOG_LEVEL = os.environ.get("TASKHUBD_FAULT_LOG_LEVEL", "debug")

SKIP_REASON = ("TASKHUBD_BIN is not set: the fault tests need the taskhubd binary "
               "(run them through ctest -L fault, or set TASKHUBD_BIN=<build>/sidecar/taskhubd)")


def pytest_collection_modifyitems(config, items):
    skip_all_without_binary(items, SKIP_REASON)


# --------------------------------------------------------------------------- servers

@dataclass
class Server(ServerLog):
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

    def kill(self) -> None:
        """SIGKILL (crash simulation); the teardown then skips the exit-status check."""
        assert self.proc.poll() is None, \
            f"taskhubd on port {self.port} had already exited (status {self.proc.returncode})"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT_S)
        self.killed = True


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
    if server.killed or server.stopped:
        return []
    server.stopped = True
    return sigterm_problems(server.proc, f"on port {server.port}")


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


@pytest.fixture
def workers(server_factory):
    # depends on server_factory so that workers are stopped before the servers are
    ws = Workers()
    yield ws
    ws.close()


