'use strict';
// Interop: rewind and restart through the published durabletask-js client (rewindInstance,
// restartOrchestration), with its TaskHubGrpcWorker running the orchestrations against taskhubd.
// Rewind is SDK-driven: the worker answers the [OrchestratorStarted, ExecutionRewound] work item with a
// rewindOrchestration action carrying the cleaned history; the server must replace the history, rewind failed
// children, and re-run only the failed work.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const grpc = require('@grpc/grpc-js');
const { OrchestrationStatus, HistoryEventType } = require('@microsoft/durabletask-js');
const { SKIP, within, rejectionOf, rawStub } = require('./taskhubd');
const { Hub, statusName } = require('./worker-harness');

const runs = new Map();   // key -> number of executions (activities below)
const bump = (key) => { const n = (runs.get(key) ?? 0) + 1; runs.set(key, n); return n; };

function register(w) {
  w.addNamedActivity('Stable', (ctx, x) => { bump(`${ctx.orchestrationId}/stable`); return `stable(${x})`; });
  // Fails on its first execution for a given key, succeeds afterwards.
  w.addNamedActivity('FailFirst', (ctx, key) => {
    const n = bump(key);
    if (n === 1) throw new Error(`transient failure of ${key}`);
    return `ok#${n}`;
  });
  w.addNamedOrchestrator('Rewindable', async function* Rewindable(ctx, x) {
    const pre = yield ctx.callActivity('Stable', x);
    const r = yield ctx.callActivity('FailFirst', `${ctx.instanceId}/flaky`);
    return { pre, r };
  });
  w.addNamedOrchestrator('RewChild', async function* RewChild(ctx, x) {
    const r = yield ctx.callActivity('FailFirst', `${ctx.instanceId}/flaky`);
    return { x, r };
  });
  w.addNamedOrchestrator('RewParent', async function* RewParent(ctx, x) {
    const pre = yield ctx.callActivity('Stable', x);
    const child = yield ctx.callSubOrchestrator('RewChild', x, { instanceId: `${ctx.instanceId}-child` });
    return { pre, child };
  });
  w.addNamedActivity('CountRun', (ctx, x) => { bump(`${ctx.orchestrationId}/run`); return x * 3; });
  w.addNamedOrchestrator('Restartable', async function* Restartable(ctx, x) {
    const v = yield ctx.callActivity('CountRun', x);
    return { v, instanceId: ctx.instanceId };
  });
  w.addNamedOrchestrator('Blocks', async function* Blocks(ctx) {
    return yield ctx.waitForExternalEvent('Release');
  });
}

const causeCode = (e) => e?.cause?.code ?? e?.code;

describe('durabletask-js worker + client against taskhubd: rewind and restart', { skip: SKIP }, () => {
  let hub;
  let raw;

  before(async () => {
    hub = await Hub.start('rewind', register);
    raw = rawStub(hub.server.address);
  });
  after(async () => {
    if (raw) raw.close();
    if (hub) await hub.cleanup();
  });

  const executionId = async (id) => (await raw.getInstance(id)).getOrchestrationstate()?.getExecutionid()?.getValue();

  it('rewind a FAILED orchestration: only the failed activity re-runs, then COMPLETED', async () => {
    const id = await hub.schedule('Rewindable', 5);
    const failed = await hub.done(id);
    hub.expect(failed, 'FAILED');
    assert.match(failed.failureDetails?.message ?? '', /transient failure/);

    await within(15000, hub.client.rewindInstance(id, 'the outage is over'), 'rewindInstance');
    const after1 = await hub.state(id);
    assert.notEqual(statusName(after1.runtimeStatus), statusName(OrchestrationStatus.FAILED),
      `right after RewindInstance returns the instance must no longer read FAILED${hub.diag(id)}`);

    const st = await hub.done(id);
    hub.expect(st, 'COMPLETED', { pre: 'stable(5)', r: 'ok#2' });
    assert.equal(st.failureDetails, undefined, 'failure details cleared');
    assert.equal(runs.get(`${id}/stable`), 1, 'the activity that had succeeded was not re-run');
    assert.equal(runs.get(`${id}/flaky`), 2, 'the failed activity ran again once');

    const hist = await within(15000, hub.client.getOrchestrationHistory(id), 'history');
    const types = hist.map((e) => e.type);
    assert.ok(!types.includes(HistoryEventType.TaskFailed), `rewound history keeps no TaskFailed: ${types}`);
    assert.ok(types.includes(HistoryEventType.ExecutionRewound), `rewound history records ExecutionRewound: ${types}`);
    assert.equal(types.filter((t) => t === HistoryEventType.ExecutionCompleted).length, 1,
      `exactly one ExecutionCompleted: ${types}`);
  });

  it('rewind a parent whose sub-orchestration FAILED: the child is rewound too; both COMPLETED', async () => {
    const id = await hub.schedule('RewParent', 'p');
    const childId = `${id}-child`;
    const failed = await hub.done(id, 30, [childId]);
    hub.expect(failed, 'FAILED');
    hub.expect(await hub.state(childId), 'FAILED');

    const exec1 = await executionId(id);
    await within(15000, hub.client.rewindInstance(id, 'retry the child'), 'rewindInstance');
    const st = await hub.done(id, 15, [childId]);
    hub.expect(st, 'COMPLETED', { pre: 'stable(p)', child: { x: 'p', r: 'ok#2' } });
    const child = await hub.done(childId, 15, [id]);
    hub.expect(child, 'COMPLETED', { x: 'p', r: 'ok#2' });
    const exec2 = await executionId(id);
    assert.notEqual(exec2, exec1, 'the SDK\'s rewound history gives the parent a new executionId');
    assert.equal(runs.get(`${id}/stable`), 1, 'the parent\'s succeeded activity was not re-run');
    assert.equal(runs.get(`${childId}/flaky`), 2, 'the child\'s failed activity ran again once');
  });

  it('rewind a parent whose FAILED child was purged: the child is re-created; both COMPLETED', async () => {
    const id = await hub.schedule('RewParent', 'q');
    const childId = `${id}-child`;
    hub.expect(await hub.done(id, 30, [childId]), 'FAILED');
    hub.expect(await hub.state(childId), 'FAILED');
    const purged = await within(15000, hub.client.purgeOrchestration(childId), 'purge child');
    assert.equal(purged?.deletedInstanceCount, 1);

    await within(15000, hub.client.rewindInstance(id, 'child was purged'), 'rewindInstance');
    const st = await hub.done(id, 15, [childId]);
    hub.expect(st, 'COMPLETED', { pre: 'stable(q)', child: { x: 'q', r: 'ok#2' } });
    const child = await hub.state(childId);
    assert.ok(child, `the purged child was re-created${hub.diag(id, childId)}`);
    hub.expect(child, 'COMPLETED', { x: 'q', r: 'ok#2' });
  });

  it('rewind of an instance that is not FAILED is refused (FAILED_PRECONDITION); unknown -> NOT_FOUND', async () => {
    const id = await hub.schedule('Restartable', 1);
    hub.expect(await hub.done(id), 'COMPLETED');
    const e = await rejectionOf(hub.client.rewindInstance(id, 'why'), 'rewind COMPLETED');
    assert.equal(causeCode(e), grpc.status.FAILED_PRECONDITION, `${e.stack}`);
    hub.expect(await hub.state(id), 'COMPLETED', { v: 3, instanceId: id });

    const u = await rejectionOf(hub.client.rewindInstance(`${id}-nope`, 'why'), 'rewind unknown');
    assert.equal(causeCode(u), grpc.status.NOT_FOUND, `${u.stack}`);
  });

  it('restart a COMPLETED orchestration in place: same id, new execution, runs again with the same input', async () => {
    const id = await hub.schedule('Restartable', 4);
    hub.expect(await hub.done(id), 'COMPLETED', { v: 12, instanceId: id });
    const exec1 = await executionId(id);

    const got = await within(15000, hub.client.restartOrchestration(id, false), 'restartOrchestration');
    assert.equal(got, id);
    const st = await hub.done(id);
    hub.expect(st, 'COMPLETED', { v: 12, instanceId: id });
    assert.equal(st.name, 'Restartable');
    assert.equal(st.serializedInput, '4');
    assert.equal(runs.get(`${id}/run`), 2, 'the orchestration ran a second time');
    const exec2 = await executionId(id);
    assert.match(exec2 ?? '', /^[0-9a-f]{32}$/);
    assert.notEqual(exec2, exec1, 'a restart is a new execution');
  });

  it('restart with a new instance id: a new instance runs with the same name and input', async () => {
    const id = await hub.schedule('Restartable', 5);
    hub.expect(await hub.done(id), 'COMPLETED', { v: 15, instanceId: id });
    const newId = await within(15000, hub.client.restartOrchestration(id, true), 'restartOrchestration(new id)');
    assert.ok(newId && newId !== id, `expected a new instance id, got ${newId}`);
    const st = await hub.done(newId, 30, [id]);
    hub.expect(st, 'COMPLETED', { v: 15, instanceId: newId });
    assert.equal(st.name, 'Restartable');
    assert.equal(st.serializedInput, '5');
    hub.expect(await hub.state(id), 'COMPLETED', { v: 15, instanceId: id });
  });

  it('restart in place of a RUNNING orchestration is refused; with a new id it is allowed', async () => {
    const id = await hub.schedule('Blocks');
    await hub.started(id);
    const e = await rejectionOf(hub.client.restartOrchestration(id, false), 'restart running in place');
    assert.equal(causeCode(e), grpc.status.FAILED_PRECONDITION, `${e.stack}`);
    hub.expect(await hub.state(id), 'RUNNING');

    const newId = await within(15000, hub.client.restartOrchestration(id, true), 'restart running, new id');
    assert.ok(newId && newId !== id);
    await hub.started(newId);
    await within(15000, hub.client.raiseOrchestrationEvent(newId, 'Release', 'n'), 'release new');
    await within(15000, hub.client.raiseOrchestrationEvent(id, 'Release', 'o'), 'release old');
    hub.expect(await hub.done(newId), 'COMPLETED', 'n');
    hub.expect(await hub.done(id), 'COMPLETED', 'o');

    const u = await rejectionOf(hub.client.restartOrchestration(`${id}-nope`, false), 'restart unknown');
    assert.equal(causeCode(u), grpc.status.NOT_FOUND, `${u.stack}`);
  });

  it('SIGTERM after the worker stops: taskhubd exits 0, no sanitizer reports', async () => {
    const h = hub;
    hub = null;
    if (raw) { raw.close(); raw = null; }
    try { await h.stop(); } finally { await h.cleanup(); }
  });
});
