"""Fixtures for the Python SDK interop tests.

Every test gets its own taskhubd process, started from $TASKHUBD_BIN on a fresh
--data-dir with --listen 127.0.0.1:0; the bound port is learned through
--ready-fd (a pipe read with select, no polling). At teardown the process is
stopped with SIGTERM and must exit 0 with no sanitizer report on stderr.

If TASKHUBD_BIN is unset every test is skipped with a message saying so; if it
is set but the server does not come up, the test fails.
"""

import os
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from durabletask.client import TaskHubGrpcClient
from durabletask.grpc_options import GrpcChannelOptions
from durabletask.worker import TaskHubGrpcWorker

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: the shared harness
from taskhubd_harness import (  # noqa: E402
    ServerLog,
    read_port as _read_port,
    sigterm_problems,
    skip_all_without_binary,
    SANITIZER_MARKERS,
    STOP_TIMEOUT_S,
)

SKIP_REASON = ("TASKHUBD_BIN is not set: the Python interop tests need the taskhubd binary "
               "(run them through ctest -L interop, or set TASKHUBD_BIN=<build>/sidecar/taskhubd)")


def pytest_collection_modifyitems(config, items):
    skip_all_without_binary(items, SKIP_REASON)


@dataclass
class Server(ServerLog):
    port: int
    data_dir: Path
    proc: subprocess.Popen
    stderr_path: Path
    killed: bool = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL (crash simulation); the teardown then skips the exit-status check."""
        self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT_S)
        self.killed = True


def _store_args(data_dir: Path) -> list:
    """--data-dir, or with $TASKHUBD_TEST_PG a PostgreSQL database of the server's own (tests/support/pg.sh)."""
    pg = os.environ.get("TASKHUBD_TEST_PG")
    if not pg:
        return ["--data-dir", str(data_dir)]
    name = "th_py_%08x_%d" % (zlib.crc32(str(data_dir).encode()), os.getpid())
    pg_sh = Path(__file__).resolve().parents[2] / "support" / "pg.sh"
    conninfo = subprocess.run(["bash", str(pg_sh), "createdb", pg, name], check=True,
                              capture_output=True, text=True).stdout.strip()
    return ["--store", conninfo]


def _start(binary: str, data_dir: Path, stderr_path: Path, extra_args) -> Server:
    store = _store_args(data_dir)
    r, w = os.pipe()
    try:
        with open(stderr_path, "ab") as err:
            proc = subprocess.Popen(
                [binary, "--listen", "127.0.0.1:0", *store,
                 "--ready-fd", str(w), "--log-level", "info", *extra_args],
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
    return Server(port=port, data_dir=data_dir, proc=proc, stderr_path=stderr_path)


def _stop(server: Server) -> list:
    """Returns a list of problems (empty when the server stopped cleanly)."""
    problems = [] if server.killed else sigterm_problems(server.proc, f"on port {server.port}")
    text = server.stderr_text()
    hits = [m for m in SANITIZER_MARKERS if m in text]
    if hits:
        problems.append(f"taskhubd stderr mentions {hits}")
    if problems:
        problems.append("taskhubd stderr:\n" + text[-20000:])
    return problems


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
        server = _start(self.binary, data_dir, stderr_path, extra_args)
        self.servers.append(server)
        return server


class CallRecorder(grpc.UnaryUnaryClientInterceptor):
    """Client interceptor (passed through the SDK's public `interceptors=` option) that
    records every unary call: method, request, response (None on error), error.
    Used to count QueryInstances pages and to look at response fields the SDK's
    OrchestrationState does not surface (version, tags, scheduledStartTimestamp)."""

    def __init__(self):
        self.calls = []

    def intercept_unary_unary(self, continuation, client_call_details, request):
        outcome = continuation(client_call_details, request)
        method = client_call_details.method
        if isinstance(method, bytes):
            method = method.decode()
        err = outcome.exception()
        resp = None if err is not None else outcome.result()
        self.calls.append((method, request, resp, err))
        return outcome

    def responses(self, rpc: str):
        return [resp for (m, _req, resp, err) in self.calls
                if m.endswith("/" + rpc) and err is None]

    def requests(self, rpc: str):
        return [req for (m, req, _resp, _err) in self.calls if m.endswith("/" + rpc)]

    def clear(self):
        self.calls.clear()


def make_client(server: Server, recorder: CallRecorder | None = None) -> TaskHubGrpcClient:
    return TaskHubGrpcClient(
        host_address=server.address,
        # never route 127.0.0.1 through an http proxy configured in the environment
        channel_options=GrpcChannelOptions(raw_options=[("grpc.enable_http_proxy", 0)]),
        interceptors=[recorder] if recorder is not None else None,
    )


@pytest.fixture
def server_factory(tmp_path):
    binary = os.environ.get("TASKHUBD_BIN")
    if not binary:
        pytest.skip(SKIP_REASON)
    factory = ServerFactory(binary=binary, root=tmp_path)
    yield factory
    problems = []
    for server in factory.servers:
        problems += _stop(server)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def server(server_factory) -> Server:
    return server_factory.start()


@pytest.fixture
def recorder() -> CallRecorder:
    return CallRecorder()


@pytest.fixture
def client(server, recorder):
    c = make_client(server, recorder)
    yield c
    c.close()


# ---------------------------------------------------------------------------------------------
# Shared server + worker helpers (test_worker.py): one taskhubd per test module, so that a
# module's many short orchestration tests do not each pay a server start. Tests that share it
# use unique instance ids and orchestrator names. The server is stopped and checked (SIGTERM,
# exit 0, no sanitizer report) when the module is done.

def _server_log_level() -> str:
    # debug logs help when reporting a server bug; TASKHUBD_TEST_LOG_LEVEL overrides
    return os.environ.get("TASKHUBD_TEST_LOG_LEVEL", "debug")


@pytest.fixture(scope="module")
def module_server(tmp_path_factory) -> Server:
    binary = os.environ.get("TASKHUBD_BIN")
    if not binary:
        pytest.skip(SKIP_REASON)
    factory = ServerFactory(binary=binary, root=tmp_path_factory.mktemp("module-server"))
    server = factory.start("--log-level", _server_log_level())
    yield server
    problems = _stop(server)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def make_worker(server: Server, **kwargs) -> TaskHubGrpcWorker:
    """A TaskHubGrpcWorker for `server` (not started); kwargs go to its constructor."""
    return TaskHubGrpcWorker(
        host_address=server.address,
        channel_options=GrpcChannelOptions(raw_options=[("grpc.enable_http_proxy", 0)]),
        **kwargs,
    )
