"""Fixtures for the storage fault tests.

Every test gets its own taskhubd processes, started from $TASKHUBD_BIN with --listen 127.0.0.1:0;
the bound port is learned through --ready-fd. A server can be started expecting it to refuse
(start_refused: it must exit, and its status and stderr are returned; try_start: either). At teardown every live server
is stopped with SIGTERM and must exit 0; no server's stderr may mention a sanitizer.

small_disk: a tmpfs of a few MB that the test can fill, mounted in a user and mount namespace
(`unshare --user --map-root-user --mount`, no root needed) held by a `sleep` process; taskhubd and
the test reach it through /proc/<holder>/root, so taskhubd itself runs unchanged and can be
restarted on the same data. Where user namespaces are not allowed the test is skipped, saying so.
"""

import os
import select
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared harness
from taskhubd_harness import (  # noqa: E402
    ServerLog,
    read_port,
    sanitizer_problems,
    raw_stub,
    Workers,
    sigterm_problems,
    skip_all_without_binary,
    wait_until,
    STOP_TIMEOUT_S,
    READY_TIMEOUT_S,
    CHANNEL_OPTIONS,
)

LOG_LEVEL = os.environ.get("TASKHUBD_STORAGE_LOG_LEVEL", "info")
SKIP_REASON = ("TASKHUBD_BIN is not set: the storage tests need the taskhubd binary "
               "(run them through ctest -R storage, or set TASKHUBD_BIN=<build>/sidecar/taskhubd)")

__all__ = ["raw_stub", "wait_until", "CHANNEL_OPTIONS", "Workers"]


def pytest_collection_modifyitems(config, items):
    skip_all_without_binary(items, SKIP_REASON)


@dataclass
class Server(ServerLog):
    port: int
    data_dir: Path
    proc: subprocess.Popen
    stderr_path: Path
    stopped: bool = False
    ops_port: int = 0  # with start(ops=True)

    def metric(self, name: str) -> float:
        """One unlabelled sample from /metrics (the ops port)."""
        assert self.ops_port, "started without ops=True"
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ops_port}/metrics", timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        raise AssertionError(f"{name} is not in /metrics")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """SIGTERM; it must exit 0."""
        self.stopped = True
        problems = sigterm_problems(self.proc, f"on port {self.port}")
        assert not problems, "\n".join(problems) + "\n" + self.log_tail()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT_S)
        self.stopped = True


@dataclass
class ServerFactory:
    binary: str
    root: Path
    servers: list = field(default_factory=list)
    n: int = 0

    def _popen(self, data_dir: Path, extra: tuple, preexec=None, ops_w=None):
        self.n += 1
        stderr_path = self.root / f"taskhubd{self.n}.stderr"
        r, w = os.pipe()
        ops = ["--ops-listen", "127.0.0.1:0", "--ops-ready-fd", str(ops_w)] if ops_w is not None else \
            ["--ops-listen", "off"]
        with open(stderr_path, "ab") as err:
            proc = subprocess.Popen(
                [self.binary, "--listen", "127.0.0.1:0", *ops, "--data-dir", str(data_dir),
                 "--ready-fd", str(w), "--log-level", LOG_LEVEL, *extra],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                pass_fds=(w,) if ops_w is None else (w, ops_w), close_fds=True, preexec_fn=preexec)
        os.close(w)
        return proc, r, stderr_path

    def start(self, data_dir: Path, *extra: str, preexec=None, ops: bool = False) -> Server:
        """preexec: run in the child before taskhubd (e.g. to set a resource limit it inherits); ops: with the
        HTTP ops port (Server.metric)."""
        ops_r, ops_w = os.pipe() if ops else (None, None)
        proc, r, stderr_path = self._popen(data_dir, extra, preexec, ops_w)
        ops_port = 0
        try:
            if ops:
                os.close(ops_w)
                ops_port = read_port(ops_r, proc, stderr_path, "ops port (--ops-ready-fd)")
            port = read_port(r, proc, stderr_path)
        finally:
            os.close(r)
            if ops:
                os.close(ops_r)
        s = Server(port=port, data_dir=data_dir, proc=proc, stderr_path=stderr_path, ops_port=ops_port)
        self.servers.append(s)
        return s

    def try_start(self, data_dir: Path, *extra: str):
        """Starts taskhubd that may refuse: (Server, None) when it came up, else (None, (exit status, stderr))."""
        proc, r, stderr_path = self._popen(data_dir, extra)
        line = b""
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while b"\n" not in line:
                remaining = deadline - time.monotonic()
                assert remaining > 0, "taskhubd neither came up nor exited\n" + stderr_path.read_text(errors="replace")
                ready, _, _ = select.select([r], [], [], remaining)
                if ready:
                    chunk = os.read(r, 64)
                    if not chunk:
                        break
                    line += chunk
        finally:
            os.close(r)
        if line:
            s = Server(port=int(line.split(b"\n")[0]), data_dir=data_dir, proc=proc, stderr_path=stderr_path)
            self.servers.append(s)
            return s, None
        rc = proc.wait(timeout=STOP_TIMEOUT_S)
        return None, (rc, stderr_path.read_text(errors="replace"))

    def start_refused(self, data_dir: Path, *extra: str) -> tuple:
        """Starts taskhubd expecting it to refuse: (exit status, stderr). Fails if it comes up."""
        server, refusal = self.try_start(data_dir, *extra)
        if server is not None:
            server.stop()
            raise AssertionError("taskhubd started on data it should have refused\n" + server.log_tail())
        return refusal

    def logs(self) -> str:
        return "\n".join(s.log_tail() for s in self.servers)


@pytest.fixture
def servers(tmp_path):
    binary = os.environ.get("TASKHUBD_BIN")
    if not binary:
        pytest.skip(SKIP_REASON)
    f = ServerFactory(binary=binary, root=tmp_path)
    yield f
    problems = []
    for s in f.servers:
        if not s.stopped:
            s.stopped = True
            problems += sigterm_problems(s.proc, f"on port {s.port}")
        problems += sanitizer_problems(s)
    if problems:
        pytest.fail("\n".join(problems) + "\n" + f.logs(), pytrace=False)


@pytest.fixture
def workers(servers):
    ws = Workers()
    yield ws
    ws.close()


@dataclass
class SmallDisk:
    path: Path         # where this process (and taskhubd) reach the small filesystem
    size: int

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, name: str = "filler") -> Path:
        """Writes a file until the filesystem has no room left (ENOSPC); returns its path."""
        p = self.path / name
        chunk = b"\0" * 65536
        with open(p, "wb", buffering=0) as f:
            while True:
                try:
                    f.write(chunk)
                except OSError:
                    break
            while True:  # the last partial block
                try:
                    f.write(b"\0" * 512)
                except OSError:
                    break
        assert self.free_bytes() < 65536, f"{self.path} still has {self.free_bytes()} bytes free"
        return p


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MB tmpfs only this test fills (see the module docstring)."""
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) is not installed: no small filesystem for the disk-full test")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    size = 64 << 20
    holder = subprocess.Popen(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
         'mount -t tmpfs -o size="$1" tmpfs "$2" && echo mounted && exec sleep 3600', "sh", str(size), str(mnt)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = holder.stdout.readline()
    if line.strip() != b"mounted":
        holder.kill()
        _, err = holder.communicate()
        pytest.skip("this machine does not let an unprivileged user mount a tmpfs in a user namespace "
                    f"(unshare --user --map-root-user --mount): {err.decode(errors='replace').strip()}")
    disk = SmallDisk(path=Path(f"/proc/{holder.pid}/root") / str(mnt).lstrip("/"), size=size)
    try:
        assert disk.free_bytes() <= size, "the small filesystem is not the one mounted"
        yield disk
    finally:
        holder.kill()
        holder.wait()
