'use strict';
// Interop: the published @microsoft/durabletask-js TaskHubGrpcWorker runs the orchestrations and activities
// below against taskhubd, and the SDK's TaskHubGrpcClient drives and observes them. One server + one worker for
// the whole file; every test uses its own instance ids. Scenarios: function chaining, fan-out/fan-in over 1,000
// activities, durable timers, external events (vs timers, ordering, before the start), orchestrator and
// activity failures with failure details, custom status.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { whenAll, whenAny, HistoryEventType } = require('@microsoft/durabletask-js');
const { SKIP, within } = require('./taskhubd');
const { Hub } = require('./worker-harness');

// Activity bookkeeping, keyed by orchestration instance id (tests are independent by id).
const chainCalls = new Map();      // id -> [step, ...] in call order
const squareCalls = new Map();     // id -> Map(taskId -> count)

class InvalidOrderError extends Error {
  constructor(message) { super(message); this.name = 'InvalidOrderError'; }
}

function register(w) {
  // 1. chaining
  w.addNamedActivity('Append', (ctx, { acc, step }) => {
    const calls = chainCalls.get(ctx.orchestrationId) ?? [];
    calls.push(step);
    chainCalls.set(ctx.orchestrationId, calls);
    return `${acc}>${step}`;
  });
  w.addNamedOrchestrator('Chain', async function* Chain(ctx, start) {
    let acc = start;
    for (let step = 1; step <= 5; step += 1) acc = yield ctx.callActivity('Append', { acc, step });
    return acc;
  });

  // 2. fan-out / fan-in
  w.addNamedActivity('Square', async (ctx, n) => {
    let m = squareCalls.get(ctx.orchestrationId);
    if (!m) { m = new Map(); squareCalls.set(ctx.orchestrationId, m); }
    m.set(ctx.taskId, (m.get(ctx.taskId) ?? 0) + 1);
    return n * n;
  });
  w.addNamedOrchestrator('FanOut', async function* FanOut(ctx, n) {
    const tasks = [];
    for (let i = 0; i < n; i += 1) tasks.push(ctx.callActivity('Square', i));
    return yield whenAll(tasks);
  });

  // 3. timers
  w.addNamedOrchestrator('Sleeper', async function* Sleeper(ctx, ms) {
    const fireAt = new Date(ctx.currentUtcDateTime.getTime() + ms);
    yield ctx.createTimer(fireAt);
    return { fireAt: fireAt.toISOString(), after: ctx.currentUtcDateTime.toISOString() };
  });
  w.addNamedOrchestrator('TwoTimers', async function* TwoTimers(ctx, [ms1, ms2]) {
    const t0 = ctx.currentUtcDateTime.getTime();
    const a = new Date(t0 + ms1);
    const b = new Date(t0 + ms2);
    yield whenAll([ctx.createTimer(a), ctx.createTimer(b)]);
    return { a: a.toISOString(), b: b.toISOString(), after: ctx.currentUtcDateTime.toISOString() };
  });

  // 4. external events
  w.addNamedOrchestrator('Approval', async function* Approval(ctx, timeoutMs) {
    const ev = ctx.waitForExternalEvent('Approved');
    const timer = ctx.createTimer(new Date(ctx.currentUtcDateTime.getTime() + timeoutMs));
    const winner = yield whenAny([ev, timer]);
    if (winner === ev) return { outcome: 'approved', data: ev.getResult() };
    return { outcome: 'timeout' };
  });
  w.addNamedOrchestrator('Collect', async function* Collect(ctx) {
    const go = yield ctx.waitForExternalEvent('Go');
    const a = yield ctx.waitForExternalEvent('Item');
    const b = yield ctx.waitForExternalEvent('Item');
    return { go, items: [a, b] };
  });

  // 10. failures
  w.addNamedActivity('Echo', (ctx, x) => x);
  w.addNamedActivity('DiskFull', () => { throw new Error('disk full on /var/data'); });
  w.addNamedOrchestrator('Validate', async function* Validate(ctx, order) {
    const echoed = yield ctx.callActivity('Echo', order);
    throw new InvalidOrderError(`order ${echoed.id} is invalid: ${echoed.reason}`);
  });
  w.addNamedOrchestrator('UsesBrokenActivity', async function* UsesBrokenActivity(ctx) {
    yield ctx.callActivity('DiskFull');
    return 'unreachable';
  });

  // 11. custom status
  w.addNamedOrchestrator('Progress', async function* Progress(ctx, n) {
    ctx.setCustomStatus({ stage: 'waiting', n });
    const v = yield ctx.waitForExternalEvent('Continue');
    const echoed = yield ctx.callActivity('Echo', v);
    ctx.setCustomStatus({ stage: 'done', got: echoed });
    return 'finished';
  });
}

describe('durabletask-js worker + client against taskhubd: core scenarios', { skip: SKIP }, () => {
  let hub;

  before(async () => { hub = await Hub.start('worker', register); });
  after(async () => { if (hub) await hub.cleanup(); });

  it('function chaining: 5 activities in sequence, each once and in order; history layout', async () => {
    const id = await hub.schedule('Chain', 'start');
    const st = await hub.done(id);
    hub.expect(st, 'COMPLETED', 'start>1>2>3>4>5');
    assert.equal(st.name, 'Chain');
    assert.equal(st.serializedInput, '"start"');
    assert.deepEqual(chainCalls.get(id), [1, 2, 3, 4, 5], 'each activity ran exactly once, in order');

    const hist = await within(15000, hub.client.getOrchestrationHistory(id), 'getOrchestrationHistory');
    const types = hist.map((e) => e.type).filter((t) => t !== HistoryEventType.OrchestratorStarted);
    assert.deepEqual(types, [HistoryEventType.ExecutionStarted,
      ...Array(5).fill([HistoryEventType.TaskScheduled, HistoryEventType.TaskCompleted]).flat(),
      HistoryEventType.ExecutionCompleted], `history types: ${JSON.stringify(hist.map((e) => e.type))}`);
    assert.equal(hist[0].type, HistoryEventType.OrchestratorStarted, 'history starts with OrchestratorStarted');
    const scheduled = hist.filter((e) => e.type === HistoryEventType.TaskScheduled);
    const completed = hist.filter((e) => e.type === HistoryEventType.TaskCompleted);
    assert.deepEqual(scheduled.map((e) => [e.eventId, e.name]), [1, 2, 3, 4, 5].map((i) => [i, 'Append']));
    assert.deepEqual(completed.map((e) => e.taskScheduledId), [1, 2, 3, 4, 5]);
    assert.equal(completed[4].result, '"start>1>2>3>4>5"');
  });

  it('fan-out/fan-in over 1,000 activities with whenAll: results in order, each activity once', async () => {
    const N = 1000;
    const t0 = Date.now();
    const id = await hub.schedule('FanOut', N);
    const st = await hub.done(id, 90);
    hub.expect(st, 'COMPLETED', Array.from({ length: N }, (_, i) => i * i));
    const calls = squareCalls.get(id);
    assert.equal(calls?.size, N, 'every activity (task id) executed');
    const dup = [...calls.entries()].filter(([, c]) => c !== 1);
    assert.deepEqual(dup, [], 'no activity was delivered more than once on a healthy stream');
    assert.deepEqual([...calls.keys()].sort((a, b) => a - b), Array.from({ length: N }, (_, i) => i + 1),
      'JS task ids are 1..N');
    process.stderr.write(`# fan-out ${N}: ${Date.now() - t0} ms\n`);
  });

  it('durable timer (1.5 s): completes no earlier than fireAt; TimerCreated/TimerFired carry fireAt', async () => {
    const id = await hub.schedule('Sleeper', 1500);
    const st = await hub.done(id);
    const doneAt = Date.now();
    hub.expect(st, 'COMPLETED');
    const out = JSON.parse(st.serializedOutput);
    const fireAt = Date.parse(out.fireAt);
    assert.ok(doneAt >= fireAt, `completed at ${new Date(doneAt).toISOString()}, before fireAt ${out.fireAt}`);
    assert.ok(Date.parse(out.after) >= fireAt,
      `orchestration clock after the timer (${out.after}) is before fireAt ${out.fireAt}: the timer fired early`);
    assert.ok(st.lastUpdatedAt.getTime() >= fireAt, 'lastUpdatedAt is at/after fireAt');

    const hist = await within(15000, hub.client.getOrchestrationHistory(id), 'getOrchestrationHistory');
    const created = hist.filter((e) => e.type === HistoryEventType.TimerCreated);
    const fired = hist.filter((e) => e.type === HistoryEventType.TimerFired);
    assert.equal(created.length, 1);
    assert.equal(fired.length, 1);
    assert.equal(created[0].fireAt.getTime(), fireAt, 'TimerCreated.fireAt = requested fireAt');
    assert.equal(fired[0].fireAt.getTime(), fireAt, 'TimerFired.fireAt = requested fireAt (not the firing time)');
    assert.equal(fired[0].timerId, created[0].eventId, 'TimerFired.timerId points at TimerCreated');
    // (TimerFired.timestamp is not checked: REF and DTFx stamp it when the timer is created, not when it fires.)
    const episode = hist[hist.indexOf(fired[0]) - 1];
    assert.equal(episode?.type, HistoryEventType.OrchestratorStarted, 'TimerFired arrives in a new episode');
    assert.ok(episode.timestamp.getTime() >= fireAt,
      `the episode that delivered TimerFired started at ${episode.timestamp.toISOString()}, before fireAt ${out.fireAt}`);
  });

  it('two parallel timers (1 s, 2 s) under whenAll: completes no earlier than the later fireAt', async () => {
    const id = await hub.schedule('TwoTimers', [1000, 2000]);
    const st = await hub.done(id);
    const doneAt = Date.now();
    hub.expect(st, 'COMPLETED');
    const out = JSON.parse(st.serializedOutput);
    assert.ok(doneAt >= Date.parse(out.b), `completed at ${new Date(doneAt).toISOString()}, before ${out.b}`);
    assert.ok(Date.parse(out.after) >= Date.parse(out.b), `clock ${out.after} is before the later fireAt ${out.b}`);
  });

  it('external event raced against a 60 s timer (whenAny): the event wins', async () => {
    const id = await hub.schedule('Approval', 60000);
    await hub.started(id);
    const t0 = Date.now();
    await within(15000, hub.client.raiseOrchestrationEvent(id, 'Approved', { by: 'alice', n: 7 }), 'raise');
    const st = await hub.done(id);
    hub.expect(st, 'COMPLETED', { outcome: 'approved', data: { by: 'alice', n: 7 } });
    assert.ok(Date.now() - t0 < 30000, 'completed by the event, not the timer');
  });

  it('external event raced against a 1 s timer (whenAny): the timer wins; a late event is dropped', async () => {
    const t0 = Date.now();
    const id = await hub.schedule('Approval', 1000);
    const st = await hub.done(id);
    hub.expect(st, 'COMPLETED', { outcome: 'timeout' });
    assert.ok(Date.now() - t0 >= 1000, `completed after ${Date.now() - t0} ms, before the 1 s timer`);

    // Raising to a completed instance is accepted and changes nothing.
    await within(15000, hub.client.raiseOrchestrationEvent(id, 'Approved', 'late'), 'raise late');
    const again = await hub.state(id);
    hub.expect(again, 'COMPLETED', { outcome: 'timeout' });
  });

  it('two events raised before the orchestration waits for them are delivered in order', async () => {
    const id = await hub.schedule('Collect');
    await hub.started(id);   // the orchestration is now waiting for "Go", not for "Item"
    await within(15000, hub.client.raiseOrchestrationEvent(id, 'Item', 'first'), 'raise Item 1');
    await within(15000, hub.client.raiseOrchestrationEvent(id, 'item', 'second'), 'raise Item 2 (lower case)');
    await within(15000, hub.client.raiseOrchestrationEvent(id, 'Go', 1), 'raise Go');
    const st = await hub.done(id);
    hub.expect(st, 'COMPLETED', { go: 1, items: ['first', 'second'] });
  });

  it('events raised while the instance is still PENDING (future start) are kept, in order, until it runs', async () => {
    const startAt = new Date(Date.now() + 2000);
    const id = await hub.schedule('Collect', undefined, { startAt });
    const pending = await hub.state(id);
    hub.expect(pending, 'PENDING');
    await within(15000, hub.client.raiseOrchestrationEvent(id, 'Item', 'first'), 'raise Item 1');
    await within(15000, hub.client.raiseOrchestrationEvent(id, 'Item', 'second'), 'raise Item 2');
    await within(15000, hub.client.raiseOrchestrationEvent(id, 'Go', 'now'), 'raise Go');
    const st = await hub.done(id);
    assert.ok(Date.now() >= startAt.getTime(), 'completed before its scheduled start');
    hub.expect(st, 'COMPLETED', { go: 'now', items: ['first', 'second'] });
  });

  it('orchestrator throws: FAILED with the error type, message and stack trace; no output', async () => {
    const id = await hub.schedule('Validate', { id: 7, reason: 'no items' });
    const st = await hub.done(id);
    hub.expect(st, 'FAILED');
    assert.equal(st.serializedOutput, undefined, 'a failed orchestration has no output');
    assert.ok(st.failureDetails, 'failureDetails present');
    assert.equal(st.failureDetails.errorType, 'InvalidOrderError');
    assert.equal(st.failureDetails.message, 'order 7 is invalid: no items');
    assert.match(st.failureDetails.stackTrace ?? '', /InvalidOrderError: order 7 is invalid/);
    assert.match(st.failureDetails.stackTrace ?? '', /Validate/, 'stack names the orchestrator function');
    assert.throws(() => st.raiseIfFailed(), /order 7 is invalid/);
  });

  it('an uncaught activity failure fails the orchestration with the activity\'s message', async () => {
    const id = await hub.schedule('UsesBrokenActivity');
    const st = await hub.done(id);
    hub.expect(st, 'FAILED');
    assert.ok(st.failureDetails, 'failureDetails present');
    assert.equal(st.failureDetails.errorType, 'TaskFailedError');
    assert.match(st.failureDetails.message, /disk full on \/var\/data/);

    const hist = await within(15000, hub.client.getOrchestrationHistory(id), 'getOrchestrationHistory');
    const failed = hist.filter((e) => e.type === HistoryEventType.TaskFailed);
    assert.equal(failed.length, 1, 'one TaskFailed in history');
    assert.equal(failed[0].taskScheduledId, 1);
    assert.equal(failed[0].failureDetails?.errorType, 'Error');
    assert.equal(failed[0].failureDetails?.message, 'disk full on /var/data');
  });

  it('custom status is visible while running and after completion', async () => {
    const id = await hub.schedule('Progress', 3);
    const running = await hub.until(id, 'custom status "waiting" while RUNNING',
      (s) => s.serializedCustomStatus !== undefined);
    hub.expect(running, 'RUNNING');
    assert.deepEqual(JSON.parse(running.serializedCustomStatus), { stage: 'waiting', n: 3 });

    await within(15000, hub.client.raiseOrchestrationEvent(id, 'Continue', 'go on'), 'raise');
    const st = await hub.done(id);
    hub.expect(st, 'COMPLETED', 'finished');
    assert.deepEqual(JSON.parse(st.serializedCustomStatus ?? 'null'), { stage: 'done', got: 'go on' });
    const later = await hub.state(id);
    assert.deepEqual(JSON.parse(later.serializedCustomStatus ?? 'null'), { stage: 'done', got: 'go on' });
    const bare = await hub.state(id, false);
    assert.equal(bare.runtimeStatus, st.runtimeStatus);
  });

  it('SIGTERM after the worker stops: taskhubd exits 0, no sanitizer reports', async () => {
    const h = hub;
    hub = null;
    try { await h.stop(); } finally { await h.cleanup(); }
  });
});
