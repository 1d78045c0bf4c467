"""Orchestrations the dashboard tests look at, run by the published Python SDK's worker.

  d_chain     two activities one after the other
  d_wait      waits for the external event "go" and returns its data
  d_fail      an activity that raises: the orchestration fails with the activity's error and stack trace
  d_retry     an activity that fails once and succeeds on its retry (RetryPolicy)
  d_parent    n sub-orchestrations (d_chain) with ids <parent>-c<i>
"""

from datetime import timedelta

from durabletask import task

from conftest import make_worker

_tries = {}


def d_hello(ctx, name):
    return f"Hello {name}"


def d_boom(ctx, x):
    raise ValueError(f"boom {x}")


def d_flaky(ctx, key):
    _tries[key] = _tries.get(key, 0) + 1
    if _tries[key] == 1:
        raise RuntimeError("first try fails")
    return "second try"


def d_chain(ctx, x):
    a = yield ctx.call_activity("d_hello", input=x)
    b = yield ctx.call_activity("d_hello", input=a)
    return b


def d_wait(ctx, _):
    v = yield ctx.wait_for_external_event("go")
    return v


def d_fail(ctx, x):
    yield ctx.call_activity("d_boom", input=x)


def d_retry(ctx, key):
    policy = task.RetryPolicy(first_retry_interval=timedelta(milliseconds=100), max_number_of_attempts=3)
    r = yield ctx.call_activity("d_flaky", input=key, retry_policy=policy)
    return r


def d_parent(ctx, n):
    kids = [ctx.call_sub_orchestrator("d_chain", input=str(i), instance_id=f"{ctx.instance_id}-c{i}")
            for i in range(n)]
    results = yield task.when_all(kids)
    return results


ORCHESTRATORS = {"d_chain": d_chain, "d_wait": d_wait, "d_fail": d_fail, "d_retry": d_retry, "d_parent": d_parent}
ACTIVITIES = {"d_hello": d_hello, "d_boom": d_boom, "d_flaky": d_flaky}


def start_worker(server, workers):
    return workers.start(make_worker(server, orchestrators=dict(ORCHESTRATORS), activities=dict(ACTIVITIES)))
