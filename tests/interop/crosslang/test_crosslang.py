"""Cross-language interop: a worker of the C SDK and a worker of the published Python SDK (durabletask)
share one taskhubd.

* a C orchestrator (c_orch) calls a Python activity (py_act) and then a C activity (c_act);
* a Python orchestrator (py_orch) calls a C activity (c_act);
* failures cross the language boundary both ways with their details (c_orch_catch / py_orch_catch);
* sub-orchestrations cross it both ways (c_parent -> py_child, py_parent -> c_child);
* dt_new_uuid() of the C SDK gives what the Python SDK's new_uuid() gives for the same instance, orchestration
  time and call count (its documented promise).

One taskhubd, one Python worker (this process) and one C worker (th_crosslang_worker, a subprocess given the
port) serve the whole module; every test uses its own instance ids. The Python worker advertises work-item
filters for the names it registered, so the server never hands it C work. At teardown the Python worker stops,
the C worker is stopped by closing its stdin and must exit 0 with no sanitizer report (it frees everything, so
LeakSanitizer runs), and taskhubd must exit 0 after SIGTERM with no sanitizer report.

Needs TASKHUBD_BIN and CROSSLANG_C_WORKER (ctest sets both); without them the module is skipped.
"""

import importlib.util
import json
import os
import select
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from durabletask import history, task
from durabletask import worker as dt_worker
from durabletask.client import OrchestrationStatus

# The server helpers of the Python interop tests (start with --ready-fd, stop with SIGTERM + checks).
_HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("python_interop_conftest", _HERE.parent / "python" / "conftest.py")
pyc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pyc)

TASKHUBD_BIN = os.environ.get("TASKHUBD_BIN")
C_WORKER_BIN = os.environ.get("CROSSLANG_C_WORKER")
pytestmark = pytest.mark.skipif(
    not TASKHUBD_BIN or not C_WORKER_BIN,
    reason="TASKHUBD_BIN and CROSSLANG_C_WORKER must be set (run through ctest -R interop.crosslang)")

WAIT_S = 30
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


def uid(prefix: str) -> str:
    return f"xl-{prefix}-{uuid.uuid4().hex}"


# ---------------------------------------------------------------------------------------------
# the Python half

class PythonActivityError(ValueError):
    pass


def py_act(ctx: task.ActivityContext, x: str) -> str:
    return f"py({x})"


def py_act_fail(ctx: task.ActivityContext, x: str):
    raise PythonActivityError(f"python activity failed: {x}")


def py_orch(ctx: task.OrchestrationContext, x: str):
    r = yield ctx.call_activity("c_act", input=x)       # a C activity
    return {"c": r}


def py_orch_catch(ctx: task.OrchestrationContext, x: str):
    try:
        yield ctx.call_activity("c_act_fail", input=x)  # a C activity that fails
    except task.TaskFailedError as e:
        return {"error_type": e.details.error_type, "message": e.details.message}
    return {"no_failure": True}


def py_child(ctx: task.OrchestrationContext, x: str):
    r = yield ctx.call_activity(py_act, input=x)
    return {"py": r, "parent": ctx.parent_instance_id}


def py_parent(ctx: task.OrchestrationContext, x: str):
    r = yield ctx.call_sub_orchestrator("c_child", input=x, instance_id=f"{ctx.instance_id}-child")
    return {"child": r}


def py_uuid_orch(ctx: task.OrchestrationContext, _):
    return [ctx.new_uuid(), ctx.new_uuid()]


ORCHESTRATORS = [py_orch, py_orch_catch, py_child, py_parent, py_uuid_orch]
ACTIVITIES = [py_act, py_act_fail]


# ---------------------------------------------------------------------------------------------
# the C half (a subprocess)

@dataclass
class CWorker:
    proc: subprocess.Popen
    stderr_path: Path

    @classmethod
    def start(cls, port: int, root: Path) -> "CWorker":
        stderr_path = root / "c-worker.stderr"
        with open(stderr_path, "ab") as err:
            proc = subprocess.Popen([C_WORKER_BIN, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=err, close_fds=True)
        w = cls(proc, stderr_path)
        deadline = time.monotonic() + READY_TIMEOUT_S
        buf = b""
        fd = proc.stdout.fileno()
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                w.kill()
                pytest.fail(f"the C worker did not report ready within {READY_TIMEOUT_S}s; stderr:\n{w.stderr()}")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 64)
            if not chunk:
                rc = proc.wait(timeout=STOP_TIMEOUT_S)
                pytest.fail(f"the C worker exited ({rc}) before it was ready; stderr:\n{w.stderr()}")
            buf += chunk
        assert buf.split(b"\n", 1)[0] == b"ready", buf
        return w

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> list:
        """Closes stdin (the stop request); returns a list of problems (empty when it stopped cleanly)."""
        problems = []
        if self.proc.poll() is not None:
            problems.append(f"the C worker died during the tests (exit status {self.proc.returncode})")
        else:
            self.proc.stdin.close()
            try:
                rc = self.proc.wait(timeout=STOP_TIMEOUT_S)
                if rc != 0:
                    problems.append(f"the C worker exited with status {rc} (expected 0)")
            except subprocess.TimeoutExpired:
                self.kill()
                problems.append(f"the C worker did not stop within {STOP_TIMEOUT_S}s of its stdin closing")
        self.proc.stdout.close()
        text = self.stderr()
        hits = [m for m in pyc.SANITIZER_MARKERS if m in text]
        if hits:
            problems.append(f"the C worker's stderr mentions {hits}")
        if not problems and "crosslang_worker: stopped" not in text:
            problems.append("the C worker did not report a clean stop")
        if problems:
            problems.append("C worker stderr:\n" + text[-20000:])
        return problems


# ---------------------------------------------------------------------------------------------
# fixtures

@dataclass
class Hub:
    server: object
    client: object
    c_worker: CWorker


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    root = tmp_path_factory.mktemp("crosslang")
    factory = pyc.ServerFactory(binary=TASKHUBD_BIN, root=root)
    server = factory.start("--log-level", os.environ.get("TASKHUBD_TEST_LOG_LEVEL", "debug"))
    problems = []
    py_worker = c_worker = client = None
    try:
        py_worker = pyc.make_worker(server)
        for fn in ORCHESTRATORS:
            py_worker.add_orchestrator(fn)
        for fn in ACTIVITIES:
            py_worker.add_activity(fn)
        py_worker.use_work_item_filters()  # only the names registered above are sent to this worker
        py_worker.start()
        c_worker = CWorker.start(server.port, root)
        client = pyc.make_client(server)
        yield Hub(server, client, c_worker)
    finally:
        if client is not None:
            client.close()
        if py_worker is not None:
            py_worker.stop()
        if c_worker is not None:
            problems += c_worker.stop()
        problems += pyc._stop(server)
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


def wait_done(client, iid: str, timeout: float = WAIT_S):
    st = client.wait_for_orchestration_completion(iid, timeout=timeout)
    assert st is not None, f"instance {iid} does not exist"
    return st


def expect_completed(st):
    assert st.runtime_status == OrchestrationStatus.COMPLETED, (st.runtime_status, st.failure_details)


def naive(d: datetime) -> datetime:
    if d.tzinfo is not None:
        d = d.astimezone(timezone.utc).replace(tzinfo=None)
    return d


# ---------------------------------------------------------------------------------------------
# tests

def test_c_orchestrator_calls_python_activity(hub):
    iid = hub.client.schedule_new_orchestration("c_orch", input="world", instance_id=uid("c-orch"))
    st = wait_done(hub.client, iid)
    expect_completed(st)
    # c_orch returns the Python activity's result, and the C activity's result on top of it
    assert st.get_output() == {"py": "py(world)", "c": "c(py(world))"}
    assert st.name == "c_orch"
    events = hub.client.get_orchestration_history(iid)
    scheduled = [e.name for e in events if isinstance(e, history.TaskScheduledEvent)]
    assert scheduled == ["py_act", "c_act"]
    completed = [json.loads(e.result) for e in events if isinstance(e, history.TaskCompletedEvent)]
    assert completed == ["py(world)", "c(py(world))"]


def test_python_orchestrator_calls_c_activity(hub):
    iid = hub.client.schedule_new_orchestration(py_orch, input="x", instance_id=uid("py-orch"))
    st = wait_done(hub.client, iid)
    expect_completed(st)
    assert st.get_output() == {"c": "c(x)"}  # py_orch returns the C activity's result


def test_python_activity_failure_seen_by_c_orchestrator(hub):
    iid = hub.client.schedule_new_orchestration("c_orch_catch", input="boom", instance_id=uid("c-catch"))
    st = wait_done(hub.client, iid)
    expect_completed(st)
    out = st.get_output()
    assert out["message"] == "python activity failed: boom", out
    assert out["error_type"].endswith("PythonActivityError"), out


def test_c_activity_failure_seen_by_python_orchestrator(hub):
    iid = hub.client.schedule_new_orchestration(py_orch_catch, input="bang", instance_id=uid("py-catch"))
    st = wait_done(hub.client, iid)
    expect_completed(st)
    assert st.get_output() == {"error_type": "CActivityError", "message": "c activity failed: bang"}


def test_sub_orchestrations_across_languages(hub):
    c_iid = hub.client.schedule_new_orchestration("c_parent", input="p", instance_id=uid("c-parent"))
    py_iid = hub.client.schedule_new_orchestration(py_parent, input="q", instance_id=uid("py-parent"))
    st = wait_done(hub.client, c_iid)
    expect_completed(st)
    assert st.get_output() == {"child": {"py": "py(p)", "parent": c_iid}}
    child = hub.client.get_orchestration_state(f"{c_iid}-child")
    assert child.name == "py_child" and child.runtime_status == OrchestrationStatus.COMPLETED

    st = wait_done(hub.client, py_iid)
    expect_completed(st)
    assert st.get_output() == {"child": {"c": "c(q)", "parent": py_iid}}
    child = hub.client.get_orchestration_state(f"{py_iid}-child")
    assert child.name == "c_child" and child.runtime_status == OrchestrationStatus.COMPLETED


def test_many_mixed_instances(hub):
    """Both languages' orchestrations and activities in flight at once, so that work of each kind is
    dispatched while both workers are connected and idle."""
    n = 10
    ids = []
    for i in range(n):
        ids.append(("c", i, hub.client.schedule_new_orchestration("c_orch", input=f"m{i}",
                                                                   instance_id=uid("mix-c"))))
        ids.append(("py", i, hub.client.schedule_new_orchestration(py_orch, input=f"m{i}",
                                                                    instance_id=uid("mix-py"))))
    with ThreadPoolExecutor(max_workers=4) as pool:
        states = list(pool.map(lambda t: (t, wait_done(hub.client, t[2], timeout=60)), ids))
    bad = [(t, s.runtime_status, s.failure_details) for t, s in states
           if s.runtime_status != OrchestrationStatus.COMPLETED]
    assert not bad, bad
    for (kind, i, _), s in states:
        want = {"py": f"py(m{i})", "c": f"c(py(m{i}))"} if kind == "c" else {"c": f"c(m{i})"}
        assert s.get_output() == want


def free_orch(ctx: task.OrchestrationContext, x: str):
    return f"free({x})"


def test_unfiltered_worker_gets_only_what_no_filter_names(hub):
    """A second app's worker without work-item filters (the Python SDK's default) joins the task hub. The C worker's
    filters name c_child and c_act, so every one of them goes to the C worker, even while it is busy; the unfiltered
    worker gets only what no connected filter names. Before, streams took turns: about half of the C orchestrations
    failed on the Python worker ("orchestrator 'c_child' was not registered")."""
    other = pyc.make_worker(hub.server)
    other.add_orchestrator(free_orch)
    other.start()
    try:
        c_ids = [hub.client.schedule_new_orchestration("c_child", input=f"r{i}", instance_id=uid("route-c"))
                 for i in range(24)]
        free_ids = [hub.client.schedule_new_orchestration(free_orch, input=f"f{i}", instance_id=uid("route-free"))
                    for i in range(3)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            states = list(pool.map(lambda iid: (iid, wait_done(hub.client, iid, timeout=60)), c_ids + free_ids))
        bad = [(iid, s.runtime_status, s.failure_details) for iid, s in states
               if s.runtime_status != OrchestrationStatus.COMPLETED]
        assert not bad, bad
        outputs = dict((iid, s.get_output()) for iid, s in states)
        for i, iid in enumerate(c_ids):
            assert outputs[iid]["c"] == f"c(r{i})", outputs[iid]
        for i, iid in enumerate(free_ids):
            assert outputs[iid] == f"free(f{i})"
    finally:
        other.stop()


def sdk_uuid(instance_id: str, when: datetime, counter: int) -> str:
    """What the Python SDK's OrchestrationContext.new_uuid() computes (durabletask/worker.py)."""
    name = f"{instance_id}_{when.strftime(dt_worker.DATETIME_STRING_FORMAT)}_{counter}"
    namespace = uuid.uuid5(uuid.NAMESPACE_OID, "9e952958-5e33-4daf-827f-2fa12937b875")
    return str(uuid.uuid5(namespace, name))


def first_turn_time(client, iid: str) -> datetime:
    events = client.get_orchestration_history(iid)
    starts = [e for e in events if isinstance(e, history.OrchestratorStartedEvent)]
    assert starts, [type(e).__name__ for e in events]
    return naive(starts[0].timestamp)


def test_new_uuid_matches_python_sdk(hub):
    # the reference: the Python SDK's own ids, reproduced from the instance id and the first turn's time
    py_iid = hub.client.schedule_new_orchestration(py_uuid_orch, instance_id=uid("py-uuid"))
    st = wait_done(hub.client, py_iid)
    expect_completed(st)
    t = first_turn_time(hub.client, py_iid)
    assert st.get_output() == [sdk_uuid(py_iid, t, 0), sdk_uuid(py_iid, t, 1)], "sdk_uuid() is off"

    # the C SDK, same instance-id/time/counter inputs
    c_iid = hub.client.schedule_new_orchestration("c_uuid_orch", instance_id=uid("c-uuid"))
    st = wait_done(hub.client, c_iid)
    expect_completed(st)
    out = st.get_output()
    t = first_turn_time(hub.client, c_iid)
    d = t - datetime(1970, 1, 1)
    epoch_ms = d.days * 86_400_000 + d.seconds * 1000 + d.microseconds // 1000
    assert abs(out["now_ms"] - epoch_ms) <= 1, (out, t)   # dt_now_ms() is the first turn's time
    want = [sdk_uuid(c_iid, t, 0), sdk_uuid(c_iid, t, 1)]
    assert out["uuids"] == want, (
        f"dt_new_uuid() differs from the Python SDK's new_uuid() for instance {c_iid} at {t.isoformat()} "
        f"(C gave {out['uuids']}, Python gives {want}; with the time truncated to milliseconds Python would give "
        f"{[sdk_uuid(c_iid, t.replace(microsecond=t.microsecond // 1000 * 1000), k) for k in (0, 1)]})")
