"""/metrics after a known workload (Python SDK 1.12 worker and client).

  test_metrics_after_known_workload   5 orchestrations of a 3-activity chain, 1 failing orchestration,
                                      1 pending instance terminated before any worker runs, 1 bad
                                      StartInstance: exact counters, workers_connected 1 -> 0,
                                      histogram counts == per-method call counters, every line parses,
                                      every family has # HELP and # TYPE
"""

import json
import time

import grpc
from durabletask import entities
from durabletask.client import OrchestrationStatus
from durabletask.internal import orchestrator_service_pb2 as pb

from conftest import http, make_client, make_worker, raw_stub, scrape, wait_until

WAIT_S = 30.0
N_CHAIN = 5

# every family the contract names, with its type
EXPECTED_FAMILIES = {
    "taskhubd_up": "gauge",
    "taskhubd_grpc_requests_total": "counter",
    "taskhubd_grpc_request_duration_seconds": "histogram",
    "taskhubd_work_items_dispatched_total": "counter",
    "taskhubd_work_items_completed_total": "counter",
    "taskhubd_work_items_abandoned_total": "counter",
    "taskhubd_orchestrations_started_total": "counter",
    "taskhubd_orchestrations_completed_total": "counter",
    "taskhubd_commit_batch_size": "histogram",
    "taskhubd_commit_duration_seconds": "histogram",
    "taskhubd_commits_total": "counter",
    "taskhubd_cache_lookups_total": "counter",
    "taskhubd_cache_bytes": "gauge",
    "taskhubd_workers_connected": "gauge",
    "taskhubd_work_items_in_flight": "gauge",
    "taskhubd_ready_queue_depth": "gauge",
    "taskhubd_timer_queue_depth": "gauge",
    "taskhubd_waiting_clients": "gauge",
    "taskhubd_draining": "gauge",
    "taskhubd_store_size_bytes": "gauge",
    "taskhubd_store_compaction_pending": "gauge",
    "taskhubd_store_keys_estimate": "gauge",
    "taskhubd_instances": "gauge",
    "taskhubd_instances_count_age_seconds": "gauge",
    "taskhubd_instances_count_duration_seconds": "gauge",
    "taskhubd_build_info": "gauge",
    "taskhubd_entities": "gauge",
    "taskhubd_entity_operations_queued": "gauge",
    "process_cpu_seconds_total": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_start_time_seconds": "gauge",
}


def m_chain(ctx, x):
    a = yield ctx.call_activity("m_step", input=f"{x}a")
    b = yield ctx.call_activity("m_step", input=f"{a}b")
    c = yield ctx.call_activity("m_step", input=f"{b}c")
    return c


def m_step(ctx, s):
    return s + "!"


def m_failing(ctx, x):
    yield ctx.call_activity("m_boom", input=x)
    return "unreachable"


def m_boom(ctx, x):
    raise ValueError(f"boom {x}")


def test_metrics_after_known_workload(server_factory, workers):
    s = server_factory.start()
    logs = server_factory.logs

    # a fresh server: the page parses, nothing counted yet
    m0 = scrape(s)
    assert m0.value("taskhubd_up") == 1
    assert m0.value("taskhubd_orchestrations_started_total") == 0
    assert m0.value("taskhubd_workers_connected") == 0

    channel, stub = raw_stub(s)
    try:
        with make_client(s) as c:
            # 1 pending instance, terminated before any worker exists
            c.schedule_new_orchestration("m_chain", input="t", instance_id="m-term")
            c.terminate_orchestration("m-term", output="stopped")
            st = c.wait_for_orchestration_completion("m-term", timeout=WAIT_S)
            assert st.runtime_status == OrchestrationStatus.TERMINATED, st

            # a bad request: StartInstance with an empty name
            try:
                stub.StartInstance(pb.CreateInstanceRequest(instanceId="m-bad", name=""), timeout=WAIT_S)
                raise AssertionError("StartInstance with an empty name succeeded")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (e.code(), e.details())

            w = workers.start(make_worker(s, orchestrators={"m_chain": m_chain, "m_failing": m_failing},
                                          activities={"m_step": m_step, "m_boom": m_boom}))
            wait_until(lambda: scrape(s).value("taskhubd_workers_connected") == 1, WAIT_S,
                       "taskhubd_workers_connected == 1 after the worker started", on_timeout=logs)

            ids = [c.schedule_new_orchestration("m_chain", input=f"x{i}", instance_id=f"m-chain-{i}")
                   for i in range(N_CHAIN)]
            fail_id = c.schedule_new_orchestration("m_failing", input="f", instance_id="m-fail")
            for i, iid in enumerate(ids):
                st = c.wait_for_orchestration_completion(iid, timeout=WAIT_S)
                assert st is not None and st.runtime_status == OrchestrationStatus.COMPLETED, (iid, st)
                assert st.serialized_output == json.dumps(f"x{i}a!b!c!"), st.serialized_output
            st = c.wait_for_orchestration_completion(fail_id, timeout=WAIT_S)
            assert st.runtime_status == OrchestrationStatus.FAILED, st
            assert "boom f" in st.failure_details.message, st.failure_details

            # still exactly one worker stream while the worker runs
            during = scrape(s)
            assert during.value("taskhubd_workers_connected") == 1

            workers.stop(w)
            wait_until(lambda: scrape(s).value("taskhubd_workers_connected") == 0, WAIT_S,
                       "taskhubd_workers_connected == 0 after the worker stopped", on_timeout=logs)
    finally:
        channel.close()

    # everything is quiet now (no client, no worker): the counters must be exact. The ended
    # GetWorkItems stream is counted when its status goes out, which may trail the gauge.
    def stream_counted():
        m = scrape(s)
        return any(lab["method"] == "GetWorkItems" for lab, _ in m.samples("taskhubd_grpc_requests_total")) and m
    m = wait_until(stream_counted, WAIT_S, "the ended GetWorkItems stream in taskhubd_grpc_requests_total",
                   on_timeout=lambda: scrape(s).text)
    m.check_histograms()

    # every family the contract names is there, with HELP, TYPE and the right type
    for name, typ in EXPECTED_FAMILIES.items():
        assert name in m.families, f"family {name} missing from /metrics:\n{m.text}"
        assert m.families[name].type == typ, f"{name}: TYPE {m.families[name].type}, expected {typ}"
        assert m.families[name].help, f"{name}: empty HELP"
        assert m.families[name].samples, f"{name}: no samples"

    assert m.value("taskhubd_up") == 1
    assert m.value("taskhubd_orchestrations_started_total") == 7, m.text
    assert m.value("taskhubd_orchestrations_completed_total", status="COMPLETED") == 5, m.text
    assert m.value("taskhubd_orchestrations_completed_total", status="FAILED") == 1, m.text
    assert m.value("taskhubd_orchestrations_completed_total", status="TERMINATED") == 1, m.text
    assert m.value("taskhubd_orchestrations_completed_total", status="CANCELED") == 0, m.text

    act_done = m.value("taskhubd_work_items_completed_total", kind="activity")
    orch_done = m.value("taskhubd_work_items_completed_total", kind="orchestration")
    assert act_done >= 3 * N_CHAIN, m.text
    # 5 chains x 4 orchestrator turns + 2 turns of the failing one
    assert orch_done >= 4 * N_CHAIN + 2, m.text
    for kind in ("orchestration", "activity"):
        disp = m.value("taskhubd_work_items_dispatched_total", kind=kind)
        done = m.value("taskhubd_work_items_completed_total", kind=kind)
        assert disp >= done, f"{kind}: dispatched {disp} < completed {done}"
        assert m.value("taskhubd_work_items_abandoned_total", kind=kind) == 0, m.text
        assert m.value("taskhubd_work_items_in_flight", kind=kind) == 0, m.text
        assert m.value("taskhubd_ready_queue_depth", kind=kind) == 0, m.text
    assert m.value("taskhubd_timer_queue_depth") == 0
    assert m.value("taskhubd_waiting_clients") == 0
    assert m.value("taskhubd_draining") == 0
    assert m.value("taskhubd_workers_connected") == 0

    # gRPC calls by method and code
    calls = {}
    for labels, v in m.samples("taskhubd_grpc_requests_total"):
        assert set(labels) == {"method", "code"}, labels
        calls.setdefault(labels["method"], {})[labels["code"]] = v
    assert calls.get("StartInstance", {}).get("OK") == 7, calls.get("StartInstance")
    assert calls["StartInstance"].get("INVALID_ARGUMENT") == 1, calls["StartInstance"]
    assert calls.get("TerminateInstance", {}).get("OK") == 1, calls.get("TerminateInstance")
    # the worker left by closing its stream, as workers do: not an error
    assert calls.get("GetWorkItems") == {"OK": 1}, f"GetWorkItems calls counted: {calls.get('GetWorkItems')}"
    assert sum(calls.get("CompleteActivityTask", {}).values()) >= 3 * N_CHAIN, calls
    # the histogram's _count equals the sum of the method's counters, method by method
    hist = {labels["method"]: v for labels, v in m.samples("taskhubd_grpc_request_duration_seconds_count")}
    assert set(hist) == set(calls), f"histogram methods {sorted(hist)} != counter methods {sorted(calls)}"
    for method, codes in calls.items():
        assert hist[method] == sum(codes.values()), \
            f"{method}: duration _count {hist[method]} != sum of requests_total {codes}"

    # instances by status, counted from the store on a thread of its own: a scrape shows the last finished count
    # and asks for a new one, so the figures are exact once a count begun after the workload has finished
    want = {"COMPLETED": N_CHAIN, "FAILED": 1, "TERMINATED": 1, "RUNNING": 0, "PENDING": 0, "SUSPENDED": 0,
            "CANCELED": 0, "CONTINUED_AS_NEW": 0}
    mc = wait_until(lambda: (lambda p: instance_counts(p) == want and p)(scrape(s)), WAIT_S,
                    f"taskhubd_instances {want}", on_timeout=lambda: scrape(s).text)
    assert mc.value("taskhubd_entities", kind="transient") == 0, mc.text
    assert 0 <= mc.value("taskhubd_instances_count_age_seconds") < WAIT_S, mc.text
    assert 0 <= mc.value("taskhubd_instances_count_duration_seconds") < WAIT_S, mc.text
    (build_labels, build_value), = m.samples("taskhubd_build_info")
    assert build_value == 1 and build_labels["version"] and build_labels["grpc"], build_labels

    assert m.value("taskhubd_commit_duration_seconds_count") > 0
    assert m.value("taskhubd_commit_batch_size_count") > 0
    assert m.value("taskhubd_commits_total") > 0
    # every chain's later turns and activity results find their instance in the hot-instance cache
    assert m.value("taskhubd_cache_lookups_total", result="hit") >= 3 * N_CHAIN, m.text
    assert m.value("taskhubd_cache_lookups_total", result="miss") >= 1
    assert m.value("taskhubd_cache_bytes") > 0
    assert m.value("taskhubd_store_keys_estimate") >= 0
    assert m.value("process_resident_memory_bytes") > 0
    assert m.value("process_cpu_seconds_total") > 0
    assert abs(m.value("process_start_time_seconds") - time.time()) < 600, m.text

    # an entity signalled while no worker runs: one transient entity, one operation queued
    with make_client(s) as c:
        c.signal_entity(entities.EntityInstanceId("nobody", "m-1"), "op")
    me = wait_until(lambda: (lambda p: p.value("taskhubd_entities", kind="transient") == 1 and p)(scrape(s)), WAIT_S,
                    "taskhubd_entities{kind=transient} == 1", on_timeout=lambda: scrape(s).text)
    assert me.value("taskhubd_entities", kind="with_state") == 0, me.text
    assert me.value("taskhubd_entity_operations_queued") == 1, me.text

    # the other endpoints, and an unknown one
    assert http(s, "GET", "/healthz")[:2] == (200, "ok\n")
    assert http(s, "GET", "/readyz")[:2] == (200, "ready\n")
    assert http(s, "GET", "/no-such-page")[0] == 404


def instance_counts(m):
    return {labels["status"]: v for labels, v in m.samples("taskhubd_instances")}


def test_metrics_count_without_dashboard(server_factory):
    """--dashboard off: /metrics still counts instances (the counter is the ops port's, the dashboard only shares
    it), and the count after a change shows it."""
    s = server_factory.start("--dashboard", "off")
    with make_client(s) as c:
        c.schedule_new_orchestration("m_chain", input="p", instance_id="m-nodash")
        want = {"RUNNING": 0, "COMPLETED": 0, "CONTINUED_AS_NEW": 0, "FAILED": 0, "CANCELED": 0, "TERMINATED": 0,
                "PENDING": 1, "SUSPENDED": 0}
        wait_until(lambda: instance_counts(scrape(s)) == want, WAIT_S, f"taskhubd_instances {want}",
                   on_timeout=lambda: scrape(s).text)
        c.terminate_orchestration("m-nodash", output="stopped")
        c.wait_for_orchestration_completion("m-nodash", timeout=WAIT_S)
        want.update(PENDING=0, TERMINATED=1)
        wait_until(lambda: instance_counts(scrape(s)) == want, WAIT_S, f"taskhubd_instances {want}",
                   on_timeout=lambda: scrape(s).text)
    assert http(s, "GET", "/api/v1/counts")[0] == 404  # no dashboard


def test_cache_size_zero_keeps_nothing_between_commits(server_factory, workers):
    """--cache-size 0: every chain still completes with the right output, reads go to RocksDB, nothing stays."""
    s = server_factory.start("--cache-size", "0")
    with make_client(s) as c:
        workers.start(make_worker(s, orchestrators={"m_chain": m_chain}, activities={"m_step": m_step}))
        ids = [c.schedule_new_orchestration("m_chain", input=f"z{i}", instance_id=f"m-zero-{i}")
               for i in range(N_CHAIN)]
        for i, iid in enumerate(ids):
            st = c.wait_for_orchestration_completion(iid, timeout=WAIT_S)
            assert st is not None and st.runtime_status == OrchestrationStatus.COMPLETED, (iid, st)
            assert st.serialized_output == json.dumps(f"z{i}a!b!c!"), st.serialized_output
    m = scrape(s)
    assert m.value("taskhubd_cache_bytes") == 0, m.text
    # each of a chain's four turns reads its instance from the store again
    assert m.value("taskhubd_cache_lookups_total", result="miss") >= 4 * N_CHAIN, m.text
