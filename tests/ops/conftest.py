"""Fixtures and helpers for the operations tests (ops HTTP port, metrics, drain, trace context, logs).

Every test gets its own taskhubd processes, started from $TASKHUBD_BIN with
--listen 127.0.0.1:0 --ops-listen 127.0.0.1:0 on a fresh --data-dir. Both ports are learned
through pipes (--ops-ready-fd: the ops port, written as soon as it listens, before recovery;
--ready-fd: the gRPC port, written once serving), read with select and a deadline: no polling,
no sleeping. A server can be started with its recovery held (--hold-recovery-fd, a pipe the test
holds) to observe /readyz before recovery. At teardown every server still running is stopped
with SIGTERM and must exit 0; no server's stderr may contain a sanitizer report.

The servers log at --log-level debug (override with TASKHUBD_OPS_LOG_LEVEL); their stderr goes
to <tmp_path>/taskhubd<N>.stderr and its tail is attached to failure reports.

If TASKHUBD_BIN is unset every test is skipped with a message saying so; if it is set but the
server does not come up, the test fails.
"""

import math
import os
import re
import select
import signal
import subprocess
import zlib
import sys
import threading
import time
import urllib.error
import urllib.request
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
    sigterm_problems,
    skip_all_without_binary,
    Workers,
    wait_until,
    READY_TIMEOUT_S,
    STOP_TIMEOUT_S,
    SANITIZER_MARKERS,
    CHANNEL_OPTIONS,
)

HTTP_TIMEOUT_S = 10.0
# Every server gets this --drain-grace unless the test passes its own, so that a teardown SIGTERM
# with work items still held by a (stopped) worker does not wait the default 30 s.
DEFAULT_DRAIN_GRACE = "3"
LOG_LEVEL = os.environ.get("TASKHUBD_OPS_LOG_LEVEL", "debug")

SKIP_REASON = ("TASKHUBD_BIN is not set: the ops tests need the taskhubd binary "
               "(run them through ctest -R ops.python, or set TASKHUBD_BIN=<build>/sidecar/taskhubd)")

_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def pytest_collection_modifyitems(config, items):
    skip_all_without_binary(items, SKIP_REASON)


# --------------------------------------------------------------------------- servers

def _close(fd):
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


@dataclass
class Server(ServerLog):
    ops_port: int
    data_dir: Path
    proc: subprocess.Popen
    stderr_path: Path
    args: tuple
    port: int | None = None          # gRPC port, None until --ready-fd announced it
    ready_r: int | None = None       # read end of --ready-fd while recovery is held
    hold_w: int | None = None        # write end of --hold-recovery-fd while recovery is held
    stopped: bool = False

    @property
    def address(self) -> str:
        assert self.port is not None, "the gRPC port was not announced yet"
        return f"127.0.0.1:{self.port}"

    # ---- recovery hold

    def ready_announced(self, within: float) -> bool:
        """True when --ready-fd became readable (port line or EOF) within `within` seconds."""
        assert self.ready_r is not None
        r, _, _ = select.select([self.ready_r], [], [], within)
        return bool(r)

    def release_recovery(self) -> None:
        assert self.hold_w is not None, "recovery is not held"
        os.write(self.hold_w, b"g")
        _close(self.hold_w)
        self.hold_w = None

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> int:
        assert self.ready_r is not None
        try:
            self.port = _read_port(self.ready_r, self.proc, self.stderr_path, "gRPC port (--ready-fd)",
                                   timeout)
        finally:
            _close(self.ready_r)
            self.ready_r = None
        return self.port

    def close_fds(self) -> None:
        _close(self.hold_w)   # EOF on the hold pipe lets a held server go on
        self.hold_w = None
        _close(self.ready_r)
        self.ready_r = None

    # ---- logs

    # ---- stopping

    def sigterm(self) -> float:
        """Sends SIGTERM; returns the monotonic time it was sent."""
        assert self.proc.poll() is None, \
            f"taskhubd had already exited (status {self.proc.returncode})\n{self.log_tail()}"
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        return t0

    def wait_exit(self, timeout: float) -> int:
        """Waits for the process to exit; fails the test (after a SIGKILL) if it does not."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.stopped = True
            pytest.fail(f"taskhubd did not exit within {timeout}s\n{self.log_tail()}", pytrace=False)
        self.stopped = True
        self.close_fds()
        return rc

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, and the process must exit 0 within timeout."""
        self.close_fds()
        self.sigterm()
        rc = self.wait_exit(timeout)
        assert rc == 0, f"taskhubd exited with status {rc} after SIGTERM (expected 0)\n{self.log_tail()}"


def _store_args(data_dir: Path) -> list:
    """--data-dir, or with $TASKHUBD_TEST_PG a PostgreSQL database of the server's own (tests/support/pg.sh), the
    same one again when a server starts on the same data_dir."""
    pg = os.environ.get("TASKHUBD_TEST_PG")
    if not pg:
        return ["--data-dir", str(data_dir)]
    name = "th_ops_%08x_%d" % (zlib.crc32(str(data_dir).encode()), os.getpid())
    pg_sh = Path(__file__).resolve().parents[1] / "support" / "pg.sh"
    conninfo = subprocess.run(["bash", str(pg_sh), "createdb", pg, name], check=True,
                              capture_output=True, text=True).stdout.strip()
    return ["--store", conninfo]


def _spawn(binary: str, data_dir: Path, stderr_path: Path, extra_args: tuple, hold: bool) -> Server:
    ops_r, ops_w = os.pipe()
    rdy_r, rdy_w = os.pipe()
    hold_r = hold_w = None
    if hold:
        hold_r, hold_w = os.pipe()
    argv = [binary, "--listen", "127.0.0.1:0", "--ops-listen", "127.0.0.1:0",
            *_store_args(data_dir), "--ops-ready-fd", str(ops_w), "--ready-fd", str(rdy_w),
            "--log-level", LOG_LEVEL]
    if "--drain-grace" not in extra_args:
        argv += ["--drain-grace", DEFAULT_DRAIN_GRACE]
    if hold:
        argv += ["--hold-recovery-fd", str(hold_r)]
    argv += list(extra_args)
    pass_fds = (ops_w, rdy_w) + ((hold_r,) if hold else ())
    try:
        with open(stderr_path, "ab") as err:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=err, pass_fds=pass_fds, close_fds=True)
    except OSError as e:
        for fd in (ops_r, ops_w, rdy_r, rdy_w, hold_r, hold_w):
            _close(fd)
        pytest.fail(f"TASKHUBD_BIN={binary!r} could not be started: {e}")
    for fd in pass_fds:
        _close(fd)
    server = Server(ops_port=0, data_dir=data_dir, proc=proc, stderr_path=stderr_path,
                    args=tuple(extra_args), ready_r=rdy_r, hold_w=hold_w)
    try:
        server.ops_port = _read_port(ops_r, proc, stderr_path, "ops port (--ops-ready-fd)")
    except BaseException:
        server.close_fds()
        raise
    finally:
        _close(ops_r)
    if not hold:
        server.wait_ready()
    return server


def _stop_problems(server: Server) -> list:
    """Stops a live server with SIGTERM; returns a list of problems (empty when clean)."""
    server.close_fds()
    if server.stopped:
        return []
    server.stopped = True
    return sigterm_problems(server.proc, f"({server.stderr_path.name})")


@dataclass
class ServerFactory:
    binary: str
    root: Path
    servers: list = field(default_factory=list)
    _n: int = 0

    def start(self, *extra_args: str, data_dir: Path | None = None, hold_recovery: bool = False) -> Server:
        """Starts taskhubd. With hold_recovery the call returns once the ops port is announced,
        with recovery held (server.release_recovery(), then server.wait_ready())."""
        self._n += 1
        if data_dir is None:
            data_dir = self.root / f"data{self._n}"
        stderr_path = self.root / f"taskhubd{self._n}.stderr"
        server = _spawn(self.binary, data_dir, stderr_path, tuple(extra_args), hold_recovery)
        self.servers.append(server)
        return server

    def restart(self, old: Server, *extra_args: str, hold_recovery: bool = False) -> Server:
        """A new taskhubd on the data dir of `old` (which must have exited), with the same extra
        arguments unless others are given; it gets new ports."""
        assert old.proc.poll() is not None, "restart() of a server that is still running"
        return self.start(*(extra_args or old.args), data_dir=old.data_dir, hold_recovery=hold_recovery)

    def logs(self) -> str:
        return "\n".join(s.log_tail() for s in self.servers)

    def stop_all(self) -> list:
        problems = []
        for server in self.servers:
            problems += _stop_problems(server)
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


# --------------------------------------------------------------------------- ops HTTP

# What a state-changing request must carry (not form-encoded; test_ops_guard.py covers the refusals).
ADMIN_HEADERS = {"X-Taskhubd-Admin": "1", "Content-Type": "application/json"}


def http(server: Server, method: str, path: str, timeout: float = HTTP_TIMEOUT_S, body: bytes | None = None,
         headers: dict | None = None):
    """One HTTP request to the ops port; returns (status, body text, content type).
    POST sends an empty body (Content-Length: 0) unless `body` is given, and ADMIN_HEADERS unless `headers`."""
    data = body if body is not None else (b"" if method == "POST" else None)
    if headers is None:
        headers = ADMIN_HEADERS if method == "POST" else {}
    req = urllib.request.Request(f"http://127.0.0.1:{server.ops_port}{path}", data=data, method=method,
                                 headers=headers)
    try:
        with _HTTP.open(req, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8"), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        body = e.read().decode("utf-8", errors="replace")
        return e.code, body, e.headers.get("Content-Type", "") if e.headers else ""


# --------------------------------------------------------------------------- Prometheus text parser

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_NAME_RE = re.compile(rf"^{_NAME}$")
_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_VALUE_RE = re.compile(r"^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|Inf|NaN)$")
_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class MetricsParseError(AssertionError):
    pass


@dataclass
class Family:
    name: str
    help: str | None = None
    type: str | None = None
    samples: list = field(default_factory=list)   # (sample name, labels dict, value)


def _parse_labels(s: str, lineno: int, line: str) -> dict:
    """Parses the inside of {...}: name="value" pairs, comma separated, escapes \\\\ \\" \\n."""
    labels = {}
    i, n = 0, len(s)
    while i < n:
        m = _LABEL_NAME_RE.match(s, i)
        if not m:
            raise MetricsParseError(f"line {lineno}: bad label name at {s[i:]!r}: {line!r}")
        lname = m.group(0)
        i = m.end()
        if s[i:i + 2] != '="':
            raise MetricsParseError(f"line {lineno}: expected =\" after label {lname!r}: {line!r}")
        i += 2
        val = []
        while True:
            if i >= n:
                raise MetricsParseError(f"line {lineno}: unterminated label value: {line!r}")
            c = s[i]
            if c == "\\":
                if i + 1 >= n or s[i + 1] not in '\\"n':
                    raise MetricsParseError(f"line {lineno}: bad escape in label value: {line!r}")
                val.append({"\\": "\\", '"': '"', "n": "\n"}[s[i + 1]])
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise MetricsParseError(f"line {lineno}: newline in label value: {line!r}")
            else:
                val.append(c)
                i += 1
        if lname in labels:
            raise MetricsParseError(f"line {lineno}: label {lname!r} given twice: {line!r}")
        labels[lname] = "".join(val)
        if i < n:
            if s[i] != ",":
                raise MetricsParseError(f"line {lineno}: expected , between labels: {line!r}")
            i += 1
    return labels


def _split_sample(line: str, lineno: int):
    m = re.match(rf"^({_NAME})", line)
    if not m:
        raise MetricsParseError(f"line {lineno}: no metric name: {line!r}")
    name = m.group(1)
    rest = line[m.end():]
    labels = {}
    if rest.startswith("{"):
        # find the closing brace outside quoted values
        i, inq = 1, False
        while i < len(rest):
            c = rest[i]
            if inq and c == "\\":
                i += 2
                continue
            if c == '"':
                inq = not inq
            elif c == "}" and not inq:
                break
            i += 1
        else:
            raise MetricsParseError(f"line {lineno}: unterminated label set: {line!r}")
        labels = _parse_labels(rest[1:i], lineno, line)
        rest = rest[i + 1:]
    if not rest.startswith(" "):
        raise MetricsParseError(f"line {lineno}: expected a space before the value: {line!r}")
    parts = rest.split()
    if len(parts) not in (1, 2):
        raise MetricsParseError(f"line {lineno}: expected 'value [timestamp]': {line!r}")
    if not _VALUE_RE.match(parts[0]):
        raise MetricsParseError(f"line {lineno}: bad sample value {parts[0]!r}: {line!r}")
    if len(parts) == 2 and not re.match(r"^-?\d+$", parts[1]):
        raise MetricsParseError(f"line {lineno}: bad timestamp {parts[1]!r}: {line!r}")
    return name, labels, float(parts[0])


class Metrics:
    """A parsed /metrics page (Prometheus text format 0.0.4), validated while parsing:
    every line is a HELP, TYPE or other comment, or a sample; every family has exactly one HELP
    and one TYPE line, before its samples; a family's lines are contiguous; no series repeats;
    counters are >= 0. check_histograms() adds: cumulative buckets ending in le="+Inf" equal to
    _count, plus _sum."""

    def __init__(self, text: str):
        self.text = text
        self.families: dict[str, Family] = {}
        if text and not text.endswith("\n"):
            raise MetricsParseError("the page does not end with a newline")
        current = None
        closed = set()
        seen_series = set()

        def family_for(name: str, lineno: int) -> Family:
            nonlocal current
            if current is not None and current.name != name:
                closed.add(current.name)
            if name in closed:
                raise MetricsParseError(f"line {lineno}: lines of family {name!r} are not contiguous")
            fam = self.families.setdefault(name, Family(name))
            current = fam
            return fam

        for lineno, line in enumerate(text.split("\n")[:-1], 1):
            if line.strip() == "":
                continue
            if line.startswith("#"):
                m = re.match(rf"^#[ \t]+(HELP|TYPE)[ \t]+({_NAME})(?:[ \t]+(.*))?$", line)
                if not m:
                    continue  # any other comment is allowed by the format
                kind, name, rest = m.group(1), m.group(2), (m.group(3) or "")
                fam = family_for(name, lineno)
                if kind == "HELP":
                    if fam.help is not None:
                        raise MetricsParseError(f"line {lineno}: second HELP for {name!r}")
                    if fam.samples:
                        raise MetricsParseError(f"line {lineno}: HELP for {name!r} after its samples")
                    fam.help = rest
                else:
                    if fam.type is not None:
                        raise MetricsParseError(f"line {lineno}: second TYPE for {name!r}")
                    if fam.samples:
                        raise MetricsParseError(f"line {lineno}: TYPE for {name!r} after its samples")
                    if rest.strip() not in _TYPES:
                        raise MetricsParseError(f"line {lineno}: unknown TYPE {rest!r} for {name!r}")
                    fam.type = rest.strip()
                continue
            sname, labels, value = _split_sample(line, lineno)
            fam_name = sname
            if sname not in self.families:
                for suffix in ("_bucket", "_sum", "_count"):
                    base = sname[:-len(suffix)]
                    if sname.endswith(suffix) and base in self.families and \
                            self.families[base].type in ("histogram", "summary"):
                        fam_name = base
                        break
            if fam_name not in self.families or self.families[fam_name].type is None:
                raise MetricsParseError(f"line {lineno}: sample {sname!r} has no preceding # TYPE line")
            fam = family_for(fam_name, lineno)
            if fam.type == "histogram" and sname == fam_name:
                raise MetricsParseError(f"line {lineno}: histogram sample without a suffix: {line!r}")
            key = (sname, tuple(sorted(labels.items())))
            if key in seen_series:
                raise MetricsParseError(f"line {lineno}: series repeated: {line!r}")
            seen_series.add(key)
            if fam.type == "counter" and not (value >= 0):
                raise MetricsParseError(f"line {lineno}: negative or NaN counter: {line!r}")
            fam.samples.append((sname, labels, value))

        for fam in self.families.values():
            if fam.help is None:
                raise MetricsParseError(f"family {fam.name!r} has no # HELP line")
            if fam.type is None:
                raise MetricsParseError(f"family {fam.name!r} has no # TYPE line")

    def check_histograms(self) -> None:
        """Histogram consistency. Only meaningful on a page scraped while nothing is observed
        concurrently (a scrape racing an observation may see the bucket and the count apart)."""
        for fam in self.families.values():
            if fam.type == "histogram":
                self._check_histogram(fam)

    @staticmethod
    def _check_histogram(fam: Family) -> None:
        groups = {}
        for sname, labels, value in fam.samples:
            base = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
            g = groups.setdefault(base, {"buckets": [], "sum": None, "count": None})
            if sname.endswith("_bucket"):
                if "le" not in labels:
                    raise MetricsParseError(f"{fam.name}: bucket without le: {labels}")
                g["buckets"].append((float(labels["le"]), value))
            elif sname.endswith("_sum"):
                g["sum"] = value
            else:
                g["count"] = value
        for base, g in groups.items():
            b = g["buckets"]
            if g["sum"] is None or g["count"] is None or not b:
                raise MetricsParseError(f"{fam.name}{dict(base)}: missing _bucket, _sum or _count")
            if b != sorted(b, key=lambda t: t[0]):
                raise MetricsParseError(f"{fam.name}{dict(base)}: buckets not in le order: {b}")
            if not math.isinf(b[-1][0]):
                raise MetricsParseError(f"{fam.name}{dict(base)}: no le=\"+Inf\" bucket")
            counts = [v for _, v in b]
            if counts != sorted(counts):
                raise MetricsParseError(f"{fam.name}{dict(base)}: buckets not cumulative: {b}")
            if counts[-1] != g["count"]:
                raise MetricsParseError(f"{fam.name}{dict(base)}: +Inf bucket {counts[-1]} != "
                                        f"_count {g['count']}")

    # ---- lookups

    def samples(self, name: str) -> list:
        """(labels, value) of every sample named exactly `name` (a family or a suffixed series)."""
        out = []
        for fam in self.families.values():
            for sname, labels, value in fam.samples:
                if sname == name:
                    out.append((labels, value))
        return out

    def get(self, name: str, default=None, **labels):
        """The value of the one series `name` whose labels are exactly `labels`."""
        for lab, value in self.samples(name):
            if lab == labels:
                return value
        return default

    def value(self, name: str, **labels) -> float:
        v = self.get(name, None, **labels)
        if v is None:
            have = [lab for lab, _ in self.samples(name)]
            raise AssertionError(f"no series {name}{labels} on /metrics (series of that name: {have})")
        return v


def scrape(server: Server) -> Metrics:
    status, body, ctype = http(server, "GET", "/metrics")
    assert status == 200, f"GET /metrics -> {status} {body!r}"
    assert ctype.startswith("text/plain"), f"GET /metrics Content-Type {ctype!r}"
    return Metrics(body)


# --------------------------------------------------------------------------- SDK objects

class CallRecorder(grpc.UnaryUnaryClientInterceptor):
    """Client interceptor (the SDK's public `interceptors=` option) that records the status code
    of every unary call by method name."""

    def __init__(self):
        self._cond = threading.Condition()
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
        with self._cond:
            return [code for (m, _req, code) in self.calls if m == rpc]

    def requests(self, rpc: str) -> list:
        with self._cond:
            return [(req, code) for (m, req, code) in self.calls if m == rpc]

    def wait_count(self, rpc: str, n: int, timeout: float) -> list:
        """Waits (condition variable, with a deadline) until `rpc` was called at least n times."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                codes = [code for (m, _req, code) in self.calls if m == rpc]
                remaining = deadline - time.monotonic()
                if len(codes) >= n or remaining <= 0:
                    return codes
                self._cond.wait(remaining)


def make_client(server: Server) -> TaskHubGrpcClient:
    return TaskHubGrpcClient(host_address=server.address,
                             channel_options=GrpcChannelOptions(raw_options=CHANNEL_OPTIONS))


def make_worker(server: Server, *, orchestrators: dict | None = None, activities: dict | None = None,
                recorder: CallRecorder | None = None, max_activities: int | None = None,
                threads: int | None = None) -> dt_worker.TaskHubGrpcWorker:
    """A TaskHubGrpcWorker for `server`; orchestrators/activities map registered name -> function."""
    conc = None
    if max_activities is not None or threads is not None:
        conc = dt_worker.ConcurrencyOptions(maximum_concurrent_activity_work_items=max_activities,
                                            maximum_thread_pool_workers=threads)
    w = dt_worker.TaskHubGrpcWorker(
        host_address=server.address,
        channel_options=GrpcChannelOptions(raw_options=CHANNEL_OPTIONS),
        interceptors=[recorder] if recorder is not None else None,
        concurrency_options=conc)
    # The SDK registers a function under its __name__.
    for name, fn in (orchestrators or {}).items():
        fn.__name__ = name
        assert w.add_orchestrator(fn) == name
    for name, fn in (activities or {}).items():
        fn.__name__ = name
        assert w.add_activity(fn) == name
    return w


@pytest.fixture
def workers(server_factory):
    # depends on server_factory so that workers are stopped before the servers are
    ws = Workers()
    yield ws
    ws.close()


