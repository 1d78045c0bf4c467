"""Entities across a crash: SIGKILL taskhubd while entity batches and critical sections are in flight, restart it
on the same data directory, and check that nothing was lost or applied twice.

  test_sigkill_with_entity_batches_and_locks   400 signals to 10 counters and 30 orchestrations that each lock
                                               two counters and move 1 between them by calls; killed mid-run.
                                               After the restart: every orchestration completes (every caller
                                               got its reply), every counter holds exactly its known sum (each
                                               operation applied once), and no lock is left held.
"""

import time

from durabletask import entities, task
from durabletask.client import OrchestrationStatus
from durabletask.internal import orchestrator_service_pb2 as pb

from conftest import make_client, make_worker, raw_stub, wait_until

N_COUNTERS = 10
N_SIGNALS = 400
N_ORCH = 30
WAIT_S = 90.0


def tally(ctx: entities.EntityContext, input):
    value = ctx.get_state(int, 0)
    if ctx.operation == "add":
        ctx.set_state(value + int(input))
    return value


def mover(ctx: task.OrchestrationContext, j):
    a = entities.EntityInstanceId("tally", f"k{j % N_COUNTERS}")
    b = entities.EntityInstanceId("tally", f"k{(j + 1) % N_COUNTERS}")
    with (yield ctx.lock_entities([a, b])):
        before = yield ctx.call_entity(a, "add", 1)
        yield ctx.call_entity(b, "add", -1)
    return before


def start_worker(server, workers):
    w = make_worker(server, orchestrators={"mover": mover})
    w.add_entity(tally)
    return workers.start(w)


def states(stub):
    """Every counter's (state, lockedBy, backlog), read with the raw stub (lockedBy as sent)."""
    out = {}
    for k in range(N_COUNTERS):
        r = stub.GetEntity(pb.GetEntityRequest(instanceId=f"@tally@k{k}", includeState=True), timeout=10)
        e = r.entity
        out[k] = (int(e.serializedState.value) if r.exists else None, e.lockedBy.value, e.backlogQueueSize)
    return out


def test_sigkill_with_entity_batches_and_locks(server_factory, workers):
    s1 = server_factory.start()
    w1 = start_worker(s1, workers)
    ids = [f"ent-crash-{j:02d}" for j in range(N_ORCH)]
    with make_client(s1) as c1:
        for i in range(N_SIGNALS):
            c1.signal_entity(entities.EntityInstanceId("tally", f"k{i % N_COUNTERS}"), "add", 1)
        for j, iid in enumerate(ids):
            c1.schedule_new_orchestration(mover, input=j, instance_id=iid)

        def mid_run():
            done = sum(1 for iid in ids
                       if c1.get_orchestration_state(iid).runtime_status == OrchestrationStatus.COMPLETED)
            return 3 <= done <= N_ORCH - 3 and done

        at_kill = wait_until(mid_run, 60.0, "some orchestrations completed and some still running",
                             interval=0.005, on_timeout=server_factory.logs)
        s1.kill()
    workers.stop(w1)

    s2 = server_factory.restart(s1)
    start_worker(s2, workers)
    channel, stub = raw_stub(s2)
    try:
        with make_client(s2) as c2:
            for iid in ids:
                st = c2.wait_for_orchestration_completion(iid, timeout=WAIT_S)
                assert st is not None and st.runtime_status == OrchestrationStatus.COMPLETED, \
                    (iid, st and st.runtime_status, st and st.failure_details, server_factory.logs())
        # Each counter: N_SIGNALS / N_COUNTERS signals of +1, and the movers' +1 and -1 cancel out per counter.
        expected = {k: N_SIGNALS // N_COUNTERS for k in range(N_COUNTERS)}

        def settled():
            got = states(stub)
            return all(got[k][0] == expected[k] and got[k][2] == 0 for k in got) and got

        got = wait_until(settled, WAIT_S, "every counter at its known sum with an empty queue",
                         on_timeout=lambda: f"{states(stub)}\n{server_factory.logs()}")
        leaked = {k: v[1] for k, v in got.items() if v[1]}
        assert not leaked, f"locks left held after every owner completed: {leaked}"
        print(f"completed before the kill: {at_kill}/{N_ORCH}")
    finally:
        channel.close()
