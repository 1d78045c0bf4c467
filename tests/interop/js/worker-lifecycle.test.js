'use strict';
// Interop: the published durabletask-js TaskHubGrpcWorker + TaskHubGrpcClient against taskhubd, lifecycle
// scenarios: sub-orchestrations (success, failure caught, failure propagated), continue-as-new (plain,
// with saveEvents carry-over, without it), suspend/resume with an event held during suspension, recursive
// terminate of a parent with a running child, activity retry policies. One server + one worker for the file.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const grpc = require('@grpc/grpc-js');
const {
  whenAny, RetryPolicy, terminateOptions, HistoryEventType, OrchestrationStatus,
} = require('@microsoft/durabletask-js');
const { SKIP, within, rejectionOf, rawStub } = require('./taskhubd');
const { Hub } = require('./worker-harness');

const attempts = new Map();   // Flaky activity: key -> attempts so far

function register(w) {
  w.addNamedActivity('Double', (ctx, n) => n * 2);

  // 5. sub-orchestrations
  w.addNamedOrchestrator('Child', async function* Child(ctx, n) {
    const doubled = yield ctx.callActivity('Double', n);
    return { doubled, parent: ctx.parent?.instanceId ?? null, parentName: ctx.parent?.name ?? null };
  });
  w.addNamedOrchestrator('Parent', async function* Parent(ctx, n) {
    const child = yield ctx.callSubOrchestrator('Child', n, { instanceId: `${ctx.instanceId}-child` });
    return { child };
  });
  w.addNamedOrchestrator('ParentDefaultId', async function* ParentDefaultId(ctx, n) {
    return yield ctx.callSubOrchestrator('Child', n);   // the SDK derives the child's id
  });
  w.addNamedOrchestrator('FailingChild', async function* FailingChild(ctx, n) {
    yield ctx.callActivity('Double', n);
    const e = new RangeError(`child exploded: ${n}`);
    throw e;
  });
  w.addNamedOrchestrator('ParentCatches', async function* ParentCatches(ctx, n) {
    try {
      yield ctx.callSubOrchestrator('FailingChild', n, { instanceId: `${ctx.instanceId}-child` });
      return { caught: false };
    } catch (e) {
      return {
        caught: true, name: e.name, message: e.message,
        errorType: e.details?.errorType, detailsMessage: e.details?.message,
      };
    }
  });
  w.addNamedOrchestrator('ParentPropagates', async function* ParentPropagates(ctx, n) {
    return yield ctx.callSubOrchestrator('FailingChild', n, { instanceId: `${ctx.instanceId}-child` });
  });

  // 6. continue-as-new
  w.addNamedOrchestrator('Counter', async function* Counter(ctx, n) {
    if (n < 10) {
      ctx.continueAsNew(n + 1, false);
      return undefined;
    }
    const d = yield ctx.callActivity('Double', n);
    return { n, d };
  });
  // Round 0 waits for "Go" first, so every "Tick" raised before "Go" is buffered by the SDK in round 0;
  // rounds 1 and 2 only see the ticks if continueAsNew(..., saveEvents=true) carried them over.
  w.addNamedOrchestrator('Accumulate', async function* Accumulate(ctx, { round, seen }) {
    if (round === 0) yield ctx.waitForExternalEvent('Go');
    const v = yield ctx.waitForExternalEvent('Tick');
    const now = [...seen, v];
    if (round < 2) {
      ctx.continueAsNew({ round: round + 1, seen: now }, true);
      return undefined;
    }
    return now;
  });
  w.addNamedOrchestrator('Forget', async function* Forget(ctx, { round, first }) {
    if (round === 0) {
      yield ctx.waitForExternalEvent('Go');
      const v = yield ctx.waitForExternalEvent('Tick');
      ctx.continueAsNew({ round: 1, first: v }, false);
      return undefined;
    }
    const ev = ctx.waitForExternalEvent('Tick');
    const timer = ctx.createTimer(new Date(ctx.currentUtcDateTime.getTime() + 1000));
    const winner = yield whenAny([ev, timer]);
    return { first, second: winner === ev ? ev.getResult() : 'timeout' };
  });

  // 7. suspend / resume
  w.addNamedOrchestrator('Suspendable', async function* Suspendable(ctx) {
    const v = yield ctx.waitForExternalEvent('Data');
    return { got: v };
  });

  // 8. recursive terminate
  w.addNamedOrchestrator('WaitsForever', async function* WaitsForever(ctx) {
    yield ctx.waitForExternalEvent('Never');
    return 'unreachable';
  });
  w.addNamedOrchestrator('TermParent', async function* TermParent(ctx) {
    return yield ctx.callSubOrchestrator('WaitsForever', null, { instanceId: `${ctx.instanceId}-child` });
  });

  // 9. retries
  w.addNamedActivity('Flaky', (ctx, { key, failTimes }) => {
    const n = (attempts.get(key) ?? 0) + 1;
    attempts.set(key, n);
    if (n <= failTimes) throw new Error(`attempt ${n} failed`);
    return { attempt: n };
  });
  w.addNamedOrchestrator('Retrying', async function* Retrying(ctx, { failTimes, maxAttempts }) {
    const retry = new RetryPolicy({
      maxNumberOfAttempts: maxAttempts, firstRetryIntervalInMilliseconds: 250, backoffCoefficient: 1,
    });
    return yield ctx.callActivity('Flaky', { key: ctx.instanceId, failTimes }, { retry });
  });
}

describe('durabletask-js worker + client against taskhubd: lifecycle scenarios', { skip: SKIP }, () => {
  let hub;
  let raw;

  before(async () => {
    hub = await Hub.start('life', register);
    raw = rawStub(hub.server.address);
  });
  after(async () => {
    if (raw) raw.close();
    if (hub) await hub.cleanup();
  });

  const raise = (id, name, data) => within(15000, hub.client.raiseOrchestrationEvent(id, name, data),
    `raise ${name} to ${id}`);

  it('sub-orchestration succeeds: parent gets the child\'s output; child knows its parent', async () => {
    const id = await hub.schedule('Parent', 21);
    const childId = `${id}-child`;
    const st = await hub.done(id, 30, [childId]);
    hub.expect(st, 'COMPLETED', { child: { doubled: 42, parent: id, parentName: 'Parent' } });
    const child = await hub.state(childId);
    hub.expect(child, 'COMPLETED', { doubled: 42, parent: id, parentName: 'Parent' });
    assert.equal(child.name, 'Child');
    assert.equal(child.serializedInput, '21');
    const r = await raw.getInstance(childId);
    assert.equal(r.getOrchestrationstate().getParentinstanceid()?.getValue(), id, 'child parentInstanceId');

    const hist = await within(15000, hub.client.getOrchestrationHistory(id), 'history');
    const created = hist.filter((e) => e.type === HistoryEventType.SubOrchestrationInstanceCreated);
    const done = hist.filter((e) => e.type === HistoryEventType.SubOrchestrationInstanceCompleted);
    assert.equal(created.length, 1);
    assert.equal(created[0].instanceId, childId);
    assert.equal(created[0].name, 'Child');
    assert.equal(done.length, 1);
    assert.equal(done[0].taskScheduledId, created[0].eventId, 'completion points at the Created event');
  });

  it('sub-orchestration with an SDK-generated instance id completes and reports to its parent', async () => {
    const id = await hub.schedule('ParentDefaultId', 5);
    const st = await hub.done(id);
    hub.expect(st, 'COMPLETED', { doubled: 10, parent: id, parentName: 'ParentDefaultId' });
    const hist = await within(15000, hub.client.getOrchestrationHistory(id), 'history');
    const created = hist.find((e) => e.type === HistoryEventType.SubOrchestrationInstanceCreated);
    assert.ok(created?.instanceId, 'SubOrchestrationInstanceCreated names the child');
    hub.expect(await hub.state(created.instanceId), 'COMPLETED', { doubled: 10, parent: id, parentName: 'ParentDefaultId' });
  });

  it('sub-orchestration fails: the parent catches it and sees the child\'s failure details', async () => {
    const id = await hub.schedule('ParentCatches', 7);
    const childId = `${id}-child`;
    const st = await hub.done(id, 30, [childId]);
    hub.expect(st, 'COMPLETED');
    const out = JSON.parse(st.serializedOutput);
    assert.equal(out.caught, true, `parent output: ${st.serializedOutput}`);
    assert.equal(out.name, 'TaskFailedError');
    assert.match(out.message, /child exploded: 7/);
    assert.equal(out.errorType, 'RangeError', 'TaskFailedError.details.errorType is the child\'s error type');
    assert.equal(out.detailsMessage, 'child exploded: 7');

    const child = await hub.state(childId);
    hub.expect(child, 'FAILED');
    assert.equal(child.failureDetails?.errorType, 'RangeError');
    assert.equal(child.failureDetails?.message, 'child exploded: 7');
  });

  it('sub-orchestration fails and the parent does not catch: both FAILED, parent names the child\'s error', async () => {
    const id = await hub.schedule('ParentPropagates', 8);
    const childId = `${id}-child`;
    const st = await hub.done(id, 30, [childId]);
    hub.expect(st, 'FAILED');
    assert.equal(st.failureDetails?.errorType, 'TaskFailedError');
    assert.match(st.failureDetails?.message ?? '', /child exploded: 8/);
    const child = await hub.state(childId);
    hub.expect(child, 'FAILED');
    assert.equal(child.failureDetails?.message, 'child exploded: 8');
  });

  it('continue-as-new counting 0..10: output of the last execution; history holds only that execution', async () => {
    const id = await hub.schedule('Counter', 0);
    const st = await hub.done(id);
    hub.expect(st, 'COMPLETED', { n: 10, d: 20 });
    assert.equal(st.serializedInput, '10', 'the instance input is the last execution\'s input');
    const hist = await within(15000, hub.client.getOrchestrationHistory(id), 'history');
    const starts = hist.filter((e) => e.type === HistoryEventType.ExecutionStarted);
    assert.equal(starts.length, 1, 'one ExecutionStarted (the current execution only)');
    assert.equal(starts[0].input, '10');
  });

  it('continue-as-new with saveEvents: events buffered in one execution are carried into the next, in order', async () => {
    const id = await hub.schedule('Accumulate', { round: 0, seen: [] });
    await hub.started(id);   // round 0 waits for "Go": the ticks below are buffered by the SDK
    const exec0 = (await raw.getInstance(id)).getOrchestrationstate()?.getExecutionid()?.getValue();
    await raise(id, 'Tick', 'a');
    await raise(id, 'Tick', 'b');
    await raise(id, 'Tick', 'c');
    await raise(id, 'Go', null);
    const st = await hub.done(id);
    hub.expect(st, 'COMPLETED', ['a', 'b', 'c']);
    const exec2 = (await raw.getInstance(id)).getOrchestrationstate()?.getExecutionid()?.getValue();
    assert.match(exec2 ?? '', /^[0-9a-f]{32}$/);
    assert.notEqual(exec2, exec0, 'continue-as-new starts a new execution (new executionId)');
  });

  it('continue-as-new without saveEvents: an unprocessed event is not carried over', async () => {
    const id = await hub.schedule('Forget', { round: 0 });
    await hub.started(id);
    await raise(id, 'Tick', 'a');
    await raise(id, 'Tick', 'b');
    await raise(id, 'Go', null);
    const st = await hub.done(id);
    hub.expect(st, 'COMPLETED', { first: 'a', second: 'timeout' });
  });

  it('suspend/resume: SUSPENDED while an event raised during suspension is held; resume completes with it', async () => {
    const id = await hub.schedule('Suspendable');
    hub.expect(await hub.started(id), 'RUNNING');
    await within(15000, hub.client.suspendOrchestration(id), 'suspend');
    await hub.until(id, 'SUSPENDED', (s) => s.runtimeStatus === OrchestrationStatus.SUSPENDED);
    await raise(id, 'Data', { payload: 42 });

    // The event must not complete the orchestration while it is suspended: a completion wait with a
    // 1.5 s deadline must end with DEADLINE_EXCEEDED, and the status must still be SUSPENDED.
    const req = new raw.pb.GetInstanceRequest();
    req.setInstanceid(id);
    req.setGetinputsandoutputs(true);
    const err = await rejectionOf(raw.unary('waitForInstanceCompletion', req, { deadline: Date.now() + 1500 }),
      'completion wait while suspended');
    assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED,
      `a suspended orchestration completed (or the wait failed): ${err.stack || err}${hub.diag(id)}`);
    const held = await hub.state(id);
    hub.expect(held, 'SUSPENDED');
    assert.equal(held.serializedOutput, undefined);

    await within(15000, hub.client.resumeOrchestration(id), 'resume');
    const st = await hub.done(id);
    hub.expect(st, 'COMPLETED', { got: { payload: 42 } });
  });

  it('recursive terminate of a parent with a running child: both TERMINATED with the reason as output', async () => {
    const id = await hub.schedule('TermParent');
    const childId = `${id}-child`;
    await hub.started(id);
    await hub.until(childId, 'child RUNNING', (s) => s.runtimeStatus === OrchestrationStatus.RUNNING);
    await within(15000, hub.client.terminateOrchestration(id,
      terminateOptions({ output: { reason: 'shutting down' }, recursive: true })), 'terminate');
    const st = await hub.done(id, 30, [childId]);
    hub.expect(st, 'TERMINATED', { reason: 'shutting down' });
    const child = await hub.done(childId, 30, [id]);
    hub.expect(child, 'TERMINATED', { reason: 'shutting down' });
  });

  it('activity retry policy: fails twice then succeeds on the third attempt', async () => {
    const t0 = Date.now();
    const id = await hub.schedule('Retrying', { failTimes: 2, maxAttempts: 3 });
    const st = await hub.done(id);
    hub.expect(st, 'COMPLETED', { attempt: 3 });
    assert.equal(attempts.get(id), 3, 'the activity ran exactly 3 times');
    assert.ok(Date.now() - t0 >= 500, 'two 250 ms retry delays were honoured');
    const hist = await within(15000, hub.client.getOrchestrationHistory(id), 'history');
    const count = (t) => hist.filter((e) => e.type === t).length;
    assert.equal(count(HistoryEventType.TaskFailed), 2);
    assert.equal(count(HistoryEventType.TimerFired), 2, 'one retry timer per failure');
    assert.equal(count(HistoryEventType.TaskCompleted), 1);
  });

  it('activity retry policy: always fails -> FAILED after maxNumberOfAttempts, with the last error', async () => {
    const id = await hub.schedule('Retrying', { failTimes: 1000, maxAttempts: 3 });
    const st = await hub.done(id);
    hub.expect(st, 'FAILED');
    assert.equal(attempts.get(id), 3, 'the activity ran exactly maxNumberOfAttempts times');
    assert.equal(st.failureDetails?.errorType, 'TaskFailedError');
    assert.match(st.failureDetails?.message ?? '', /attempt 3 failed/);
  });

  it('SIGTERM after the worker stops: taskhubd exits 0, no sanitizer reports', async () => {
    const h = hub;
    hub = null;
    if (raw) { raw.close(); raw = null; }
    try { await h.stop(); } finally { await h.cleanup(); }
  });
});
