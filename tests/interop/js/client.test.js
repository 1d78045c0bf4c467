'use strict';
// Interop: the published @microsoft/durabletask-js TaskHubGrpcClient against taskhubd.
// No worker exists in this issue, so nothing ever runs: instances stay PENDING until terminated.
// Every assertion is on what the SDK's client methods return (plus, where the SDK hides a field, on the raw
// response of the generated stub that ships inside the SDK package).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const grpc = require('@grpc/grpc-js');
const {
  TaskHubGrpcClient, OrchestrationStatus, NoOpLogger, terminateOptions,
} = require('@microsoft/durabletask-js');
const {
  SKIP, Taskhubd, within, rejectionOf, uniquePrefix, assertCleanShutdown, rawStub,
} = require('./taskhubd');

const CALL_MS = 15000;          // bound for any single SDK call that should answer at once
const HEX32 = /^[0-9a-f]{32}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function assertGrpcError(err, code, what, detailsIncludes) {
  assert.ok(err && typeof err.code === 'number',
    `${what}: expected a gRPC error with code ${grpc.status[code]}, got ${err && err.stack ? err.stack : err}`);
  assert.equal(err.code, code, `${what}: expected ${grpc.status[code]}, got ${grpc.status[err.code]} (${err.details})`);
  if (detailsIncludes) {
    assert.ok(String(err.details).includes(detailsIncludes),
      `${what}: message ${JSON.stringify(err.details)} should contain ${JSON.stringify(detailsIncludes)}`);
  }
}

async function collectPages(pageable, pageSizeHint) {
  const pages = [];
  for await (const page of pageable.asPages(undefined, pageSizeHint)) {
    pages.push(page);
    if (pages.length > 1000) throw new Error('paging does not terminate');
  }
  return pages;
}

describe('durabletask-js client against taskhubd', { skip: SKIP }, () => {
  let server;
  let client;
  let raw;
  const P = uniquePrefix('client');

  const call = (what, p) => within(CALL_MS, p, what);
  const state = (id, fetch = true) => call(`getOrchestrationState(${id})`, client.getOrchestrationState(id, fetch));
  const schedule = (name, input, opts) => call(`scheduleNewOrchestration(${name})`,
    client.scheduleNewOrchestration(name, input, opts));

  before(async () => {
    server = await Taskhubd.start(['--log-level', 'info']);
    client = new TaskHubGrpcClient({ hostAddress: server.address, logger: new NoOpLogger() });
    raw = rawStub(server.address);
  });

  after(async () => {
    if (raw) raw.close();
    if (client) await client.stop();
    if (server) await server.cleanup();
  });

  it('schedule with an instance id: returns the id; state is PENDING with name, input and timestamps', async () => {
    const id = `${P}explicit`;
    const input = { n: 42, s: 'h\u00e9llo', list: [1, 2, 3] };
    const t0 = Date.now();
    const got = await schedule('OrderFlow', input, { instanceId: id });
    const t1 = Date.now();
    assert.equal(got, id);

    const s = await state(id);
    assert.ok(s, 'getOrchestrationState must find the new instance');
    assert.equal(s.instanceId, id);
    assert.equal(s.name, 'OrderFlow');
    assert.equal(s.runtimeStatus, OrchestrationStatus.PENDING);
    assert.equal(s.serializedInput, JSON.stringify(input));
    assert.equal(s.serializedOutput, undefined);
    assert.equal(s.serializedCustomStatus, undefined);
    assert.equal(s.failureDetails, undefined);
    assert.equal(s.tags, undefined, 'no tags were given');
    assert.ok(s.createdAt.getTime() >= t0 - 5000 && s.createdAt.getTime() <= t1 + 5000,
      `createdAt ${s.createdAt.toISOString()} should be about now (${new Date(t0).toISOString()})`);
    assert.ok(s.lastUpdatedAt.getTime() >= s.createdAt.getTime(), 'lastUpdatedAt >= createdAt');

    const noPayload = await state(id, false);
    assert.equal(noPayload.runtimeStatus, OrchestrationStatus.PENDING);
    assert.equal(noPayload.serializedInput, undefined, 'fetchPayloads=false must not return the input');

    // JS sent scheduledStartTimestamp = epoch 0: that means "now", not a scheduled start.
    const r = await raw.getInstance(id, true);
    assert.equal(r.getExists(), true);
    const os = r.getOrchestrationstate();
    assert.equal(os.getScheduledstarttimestamp(), undefined,
      'epoch-0 scheduledStartTimestamp (JS default) must not be reported as a scheduled start');
    assert.match(os.getExecutionid()?.getValue() ?? '', HEX32, 'executionId is 32 lowercase hex chars');
    assert.equal(os.getVersion(), undefined, 'no version was given');
  });

  it('schedule without an instance id: the SDK generates a UUID and the server keeps it', async () => {
    const id = await schedule('NoIdFlow', 'x');
    assert.match(id, UUID, 'durabletask-js generates randomUUID() client-side');
    const s = await state(id);
    assert.ok(s);
    assert.equal(s.instanceId, id);
    assert.equal(s.name, 'NoIdFlow');
    assert.equal(s.runtimeStatus, OrchestrationStatus.PENDING);
    assert.equal(s.serializedInput, '"x"');

    // Orchestrator given as a named function: the SDK sends the function's name.
    async function* NamedOrchestrator() { /* never runs here */ }
    const id2 = await call('schedule(fn)', client.scheduleNewOrchestration(NamedOrchestrator, undefined, `${P}fn`));
    assert.equal(id2, `${P}fn`);
    assert.equal((await state(id2)).name, 'NamedOrchestrator');
  });

  it('an instance scheduled without a start time is PENDING and can be terminated normally', async () => {
    const id = `${P}nostart`;
    await schedule('PlainFlow', null, { instanceId: id });
    assert.equal((await state(id)).runtimeStatus, OrchestrationStatus.PENDING);
    await call('terminate', client.terminateOrchestration(id, 'bye'));
    const s = await state(id);
    assert.equal(s.runtimeStatus, OrchestrationStatus.TERMINATED);
    assert.equal(s.serializedOutput, '"bye"');
  });

  it('startAt in the future: PENDING, the start time is stored, and it can be terminated', async () => {
    const id = `${P}future`;
    const startAt = new Date(Date.now() + 3600 * 1000);
    assert.equal(await schedule('LaterFlow', { a: 1 }, { instanceId: id, startAt }), id);
    const s = await state(id);
    assert.equal(s.runtimeStatus, OrchestrationStatus.PENDING);
    assert.equal(s.name, 'LaterFlow');

    const os = (await raw.getInstance(id)).getOrchestrationstate();
    const sst = os.getScheduledstarttimestamp();
    assert.ok(sst, 'scheduledStartTimestamp must be returned for a future start');
    assert.equal(sst.toDate().getTime(), startAt.getTime(), 'scheduledStartTimestamp round-trips (ms precision)');

    await call('terminate', client.terminateOrchestration(id, { why: 'not needed' }));
    const t = await state(id);
    assert.equal(t.runtimeStatus, OrchestrationStatus.TERMINATED);
    assert.equal(t.serializedOutput, JSON.stringify({ why: 'not needed' }));

    // A start time in the past means "now": a normal PENDING instance.
    const past = `${P}past`;
    await schedule('PastFlow', 1, { instanceId: past, startAt: new Date(Date.now() - 3600 * 1000) });
    assert.equal((await state(past)).runtimeStatus, OrchestrationStatus.PENDING);
  });

  it('tags and version given at start come back', async () => {
    const id = `${P}tagged`;
    const tags = { team: 'payments', 'key with space': 'v=1;x', empty: '' };
    await schedule('TaggedFlow', 5, { instanceId: id, tags, version: '1.2.3' });
    const s = await state(id);
    assert.deepEqual(s.tags, tags, 'OrchestrationState.tags');
    const os = (await raw.getInstance(id)).getOrchestrationstate();
    assert.equal(os.getVersion()?.getValue(), '1.2.3', 'OrchestrationState.version');

    // Tags are also carried in query results.
    const found = [];
    for await (const q of client.getAllInstances({ instanceIdPrefix: id })) found.push(q);
    assert.equal(found.length, 1);
    assert.deepEqual(found[0].tags, tags, 'query result tags');

    // The client's defaultVersion option is sent when no version is given.
    const c2 = new TaskHubGrpcClient({ hostAddress: server.address, logger: new NoOpLogger(), defaultVersion: '9.0' });
    try {
      const id2 = await call('schedule(defaultVersion)', c2.scheduleNewOrchestration('V', null, { instanceId: `${P}defver` }));
      const os2 = (await raw.getInstance(id2)).getOrchestrationstate();
      assert.equal(os2.getVersion()?.getValue(), '9.0');
    } finally {
      await c2.stop();
    }
  });

  it('getOrchestrationState of an unknown id returns undefined', async () => {
    assert.equal(await state(`${P}no-such-instance`), undefined);
    assert.equal(await state(`${P}no-such-instance`, false), undefined);
  });

  it('duplicate instance id -> ALREADY_EXISTS while live, replaced once finished', async () => {
    const id = `${P}dup`;
    await schedule('First', 'one', { instanceId: id });
    const err = await rejectionOf(schedule('Second', 'two', { instanceId: id }), 'duplicate schedule');
    assertGrpcError(err, grpc.status.ALREADY_EXISTS, 'duplicate schedule', 'orchestration instance already exists');
    const s = await state(id);
    assert.equal(s.name, 'First');
    assert.equal(s.serializedInput, '"one"');
    assert.equal(s.runtimeStatus, OrchestrationStatus.PENDING);

    // A finished instance is replaced: the JS client sends no reuse policy, and with none taskhubd (like Azure's
    // managed scheduler) replaces what has finished.
    await call('terminate', client.terminateOrchestration(id));
    await schedule('Third', 'three', { instanceId: id });
    const s3 = await state(id);
    assert.equal(s3.name, 'Third');
    assert.equal(s3.runtimeStatus, OrchestrationStatus.PENDING);
  });

  it('query with paging: every instance exactly once, right page count, filters', async () => {
    const Q = `${P}q-`;
    const ids = [];
    for (let i = 0; i < 25; i++) ids.push(`${Q}${String(i).padStart(2, '0')}`);
    for (const id of ids) await schedule('QueryFlow', { id }, { instanceId: id, tags: { q: '1' } });

    for (const [pageSize, expectedSizes] of [[7, [7, 7, 7, 4]], [5, [5, 5, 5, 5, 5]], [25, [25]], [100, [25]]]) {
      const pages = await call(`query pageSize=${pageSize}`,
        collectPages(client.getAllInstances({ instanceIdPrefix: Q, pageSize })));
      const seen = pages.flatMap((p) => p.values.map((v) => v.instanceId));
      assert.deepEqual(pages.map((p) => p.values.length), expectedSizes,
        `pageSize ${pageSize}: page sizes (tokens: ${JSON.stringify(pages.map((p) => p.continuationToken))})`);
      assert.deepEqual(seen, ids, `pageSize ${pageSize}: every instance once, in instance id order`);
      const tokens = pages.slice(0, -1).map((p) => p.continuationToken);
      for (const t of tokens) {
        assert.ok(t && t !== '0', `pageSize ${pageSize}: continuation token ${JSON.stringify(t)} must be non-empty and not "0"`);
      }
      assert.equal(new Set(tokens).size, tokens.length, 'continuation tokens never repeat');
      assert.equal(pages[pages.length - 1].continuationToken, undefined, 'no continuation token on the last page');
      assert.equal(pages[pages.length - 1].hasMoreResults, false);
    }

    // Item iteration (the SDK pages internally with its default page size).
    const all = [];
    for await (const s of client.getAllInstances({ instanceIdPrefix: Q })) all.push(s);
    assert.equal(all.length, 25);
    for (const s of all) {
      assert.equal(s.name, 'QueryFlow');
      assert.equal(s.runtimeStatus, OrchestrationStatus.PENDING);
      assert.equal(s.serializedInput, undefined, 'no inputs unless fetchInputsAndOutputs');
      assert.ok(s.createdAt.getTime() > 0 && s.lastUpdatedAt.getTime() >= s.createdAt.getTime());
    }
    const withIo = [];
    for await (const s of client.getAllInstances({ instanceIdPrefix: Q, fetchInputsAndOutputs: true })) withIo.push(s);
    assert.deepEqual(withIo.map((s) => s.serializedInput), ids.map((id) => JSON.stringify({ id })));

    // Status filters.
    const terminated = ids.slice(0, 5);
    for (const id of terminated) await call('terminate', client.terminateOrchestration(id, 'q'));
    const byStatus = async (statuses, pageSize) => {
      const out = [];
      const pages = await call('query by status',
        collectPages(client.getAllInstances({ instanceIdPrefix: Q, statuses, pageSize })));
      for (const p of pages) out.push(...p.values.map((v) => v.instanceId));
      return out.sort();
    };
    assert.deepEqual(await byStatus([OrchestrationStatus.TERMINATED], 2), terminated);
    assert.deepEqual(await byStatus([OrchestrationStatus.PENDING], 6), ids.slice(5));
    assert.deepEqual(await byStatus([OrchestrationStatus.PENDING, OrchestrationStatus.TERMINATED], 4), ids);
    assert.deepEqual(await byStatus([OrchestrationStatus.COMPLETED], 4), []);
    assert.deepEqual(await byStatus([OrchestrationStatus.RUNNING, OrchestrationStatus.FAILED], undefined), []);

    // Created-time range [from, to).
    const created = all.map((s) => s.createdAt.getTime());
    const from = new Date(Math.min(...created));
    const to = new Date(Math.max(...created) + 1);
    const inRange = [];
    for await (const s of client.getAllInstances({ instanceIdPrefix: Q, createdFrom: from, createdTo: to, pageSize: 10 })) {
      inRange.push(s.instanceId);
    }
    assert.deepEqual(inRange.sort(), ids);
    const empty = [];
    for await (const s of client.getAllInstances({ instanceIdPrefix: Q, createdFrom: from, createdTo: from })) empty.push(s);
    assert.deepEqual(empty, [], 'an empty [from, from) range matches nothing');
  });

  it('raiseOrchestrationEvent: OK for pending and terminal instances, error for an unknown id', async () => {
    const id = `${P}raise`;
    await schedule('EventFlow', null, { instanceId: id });
    await call('raise', client.raiseOrchestrationEvent(id, 'Approval', { ok: true }));
    await call('raise (no data)', client.raiseOrchestrationEvent(id, 'Other'));
    assert.equal((await state(id)).runtimeStatus, OrchestrationStatus.PENDING);

    const err = await rejectionOf(client.raiseOrchestrationEvent(`${P}raise-unknown`, 'Approval', 1), 'raise unknown');
    assertGrpcError(err, grpc.status.NOT_FOUND, 'raise event on unknown instance');

    await call('terminate', client.terminateOrchestration(id));
    await call('raise (terminal)', client.raiseOrchestrationEvent(id, 'Late', 1));
    assert.equal((await state(id)).runtimeStatus, OrchestrationStatus.TERMINATED);
  });

  it('suspend/resume: OK on a pending instance (stays PENDING), error for an unknown id', async () => {
    const id = `${P}suspend`;
    await schedule('SuspendFlow', null, { instanceId: id });
    await call('suspend', client.suspendOrchestration(id));
    await call('suspend again', client.suspendOrchestration(id));
    assert.equal((await state(id)).runtimeStatus, OrchestrationStatus.PENDING,
      'no worker processed the suspend, so the status does not flip');
    await call('resume', client.resumeOrchestration(id));
    await call('resume again', client.resumeOrchestration(id));
    assert.equal((await state(id)).runtimeStatus, OrchestrationStatus.PENDING);

    const e1 = await rejectionOf(client.suspendOrchestration(`${P}suspend-unknown`), 'suspend unknown');
    assertGrpcError(e1, grpc.status.NOT_FOUND, 'suspend unknown');
    const e2 = await rejectionOf(client.resumeOrchestration(`${P}suspend-unknown`), 'resume unknown');
    assertGrpcError(e2, grpc.status.NOT_FOUND, 'resume unknown');

    await call('terminate', client.terminateOrchestration(id));
    await call('suspend (terminal)', client.suspendOrchestration(id));
    await call('resume (terminal)', client.resumeOrchestration(id));
    assert.equal((await state(id)).runtimeStatus, OrchestrationStatus.TERMINATED);
  });

  it('terminate a PENDING instance: TERMINATED with output; a parked waitForOrchestrationCompletion returns it promptly', async () => {
    const id = `${P}term`;
    await schedule('TermFlow', 'in', { instanceId: id });
    const before = await state(id);

    const t0 = Date.now();
    const waiting = client.waitForOrchestrationCompletion(id, true, 60);
    await call('terminate', client.terminateOrchestration(id, { reason: 'cancelled', n: 1 }));
    const done = await within(10000, waiting, 'waitForOrchestrationCompletion after terminate');
    const elapsed = Date.now() - t0;
    assert.ok(done);
    assert.equal(done.instanceId, id);
    assert.equal(done.runtimeStatus, OrchestrationStatus.TERMINATED);
    assert.equal(done.serializedOutput, JSON.stringify({ reason: 'cancelled', n: 1 }));
    assert.equal(done.serializedInput, '"in"');
    assert.equal(done.failureDetails, undefined);
    assert.ok(elapsed < 10000, `completion wait should end right after terminate (took ${elapsed} ms)`);

    const s = await state(id);
    assert.equal(s.runtimeStatus, OrchestrationStatus.TERMINATED);
    assert.equal(s.serializedOutput, JSON.stringify({ reason: 'cancelled', n: 1 }));
    assert.ok(s.lastUpdatedAt.getTime() >= before.lastUpdatedAt.getTime(), 'lastUpdatedAt moves on termination');
    assert.equal(s.createdAt.getTime(), before.createdAt.getTime());
    const os = (await raw.getInstance(id)).getOrchestrationstate();
    assert.ok(os.getCompletedtimestamp(), 'completedTimestamp set on termination');

    // Waiting on a terminal instance answers at once, for start and completion alike.
    const again = await call('wait completion (terminal)', client.waitForOrchestrationCompletion(id, false, 30));
    assert.equal(again.runtimeStatus, OrchestrationStatus.TERMINATED);
    assert.equal(again.serializedOutput, undefined, 'fetchPayloads=false');
    const started = await call('wait start (terminal)', client.waitForOrchestrationStart(id, false, 30));
    assert.equal(started.runtimeStatus, OrchestrationStatus.TERMINATED);

    // Terminating again is a no-op: the first output stays.
    await call('terminate again', client.terminateOrchestration(id, 'second'));
    assert.equal((await state(id)).serializedOutput, JSON.stringify({ reason: 'cancelled', n: 1 }));

    // No output: the SDK sends JSON null.
    const id2 = `${P}term-null`;
    await schedule('TermFlow', null, { instanceId: id2 });
    await call('terminate (no output)', client.terminateOrchestration(id2));
    const s2 = await state(id2);
    assert.equal(s2.runtimeStatus, OrchestrationStatus.TERMINATED);
    assert.equal(s2.serializedOutput, 'null');

    // terminateOptions({ output, recursive }).
    const id3 = `${P}term-rec`;
    await schedule('TermFlow', null, { instanceId: id3 });
    await call('terminate (recursive)', client.terminateOrchestration(id3, terminateOptions({ output: 'r', recursive: true })));
    const s3 = await state(id3);
    assert.equal(s3.runtimeStatus, OrchestrationStatus.TERMINATED);
    assert.equal(s3.serializedOutput, '"r"');

    const err = await rejectionOf(client.terminateOrchestration(`${P}term-unknown`, 'x'), 'terminate unknown');
    assertGrpcError(err, grpc.status.NOT_FOUND, 'terminate unknown');
  });

  it('waitForOrchestrationStart/Completion on a pending instance time out on the client; unknown ids -> undefined', async () => {
    const id = `${P}wait`;
    await schedule('WaitFlow', null, { instanceId: id });

    for (const [what, fn] of [['start', 'waitForOrchestrationStart'], ['completion', 'waitForOrchestrationCompletion']]) {
      const t0 = Date.now();
      const err = await rejectionOf(within(20000, client[fn](id, false, 1), `wait ${what}`), `wait ${what}`);
      const elapsed = Date.now() - t0;
      assert.equal(err.name, 'TimeoutError', `wait ${what}: expected the SDK's TimeoutError, got ${err.stack || err}`);
      assert.ok(elapsed >= 900, `wait ${what} ended after ${elapsed} ms: the server must keep the call open while PENDING`);
    }
    assert.equal((await state(id)).runtimeStatus, OrchestrationStatus.PENDING);

    const t0 = Date.now();
    assert.equal(await call('wait start unknown', client.waitForOrchestrationStart(`${P}wait-unknown`, false, 30)), undefined);
    assert.equal(await call('wait completion unknown', client.waitForOrchestrationCompletion(`${P}wait-unknown`, true, 30)), undefined);
    assert.ok(Date.now() - t0 < 10000, 'unknown ids answer at once');
  });

  it('many parked waits (no gRPC deadline) do not block other calls; terminate wakes them all', async () => {
    const id = `${P}many`;
    await schedule('ManyFlow', null, { instanceId: id });
    const N = 64;
    // Abandoned by the client (SDK timer), still parked on the server.
    const abandoned = [];
    for (let i = 0; i < N; i++) abandoned.push(rejectionOf(client.waitForOrchestrationStart(id, false, 0.2), 'abandoned'));
    // Parked and still awaited.
    const waits = [];
    for (let i = 0; i < N; i++) waits.push(client.waitForOrchestrationCompletion(id, false, 60));
    for (const e of await within(20000, Promise.all(abandoned), 'abandoned waits')) {
      assert.equal(e.name, 'TimeoutError');
    }

    // With 2N waits parked, the server still answers other calls at once.
    const other = `${P}many-other`;
    await call('schedule while waits are parked', client.scheduleNewOrchestration('Other', null, { instanceId: other }));
    assert.equal((await state(other)).runtimeStatus, OrchestrationStatus.PENDING);
    const page = await call('query while waits are parked',
      collectPages(client.getAllInstances({ instanceIdPrefix: `${P}many` })));
    assert.equal(page.flatMap((p) => p.values).length, 2);

    await call('terminate', client.terminateOrchestration(id, 'all done'));
    const results = await within(15000, Promise.all(waits), `${N} parked completion waits after terminate`);
    for (const r of results) {
      assert.equal(r.runtimeStatus, OrchestrationStatus.TERMINATED);
    }
  });

  it('purge single instance: terminal -> 1 then not found; unknown and non-terminal -> 0', async () => {
    const id = `${P}purge`;
    await schedule('PurgeFlow', null, { instanceId: id });

    const pending = await call('purge pending', client.purgeOrchestration(id));
    assert.ok(pending);
    assert.equal(pending.deletedInstanceCount, 0, 'a non-terminal instance is not purged');
    assert.equal((await state(id)).runtimeStatus, OrchestrationStatus.PENDING, 'still there after the refused purge');

    await call('terminate', client.terminateOrchestration(id, 'x'));
    const r = await call('purge terminated', client.purgeOrchestration(id));
    assert.equal(r.deletedInstanceCount, 1);
    assert.equal(await state(id), undefined, 'a purged instance is not found');
    assert.equal(await call('wait after purge', client.waitForOrchestrationCompletion(id, false, 30)), undefined);

    const again = await call('purge again', client.purgeOrchestration(id));
    assert.equal(again.deletedInstanceCount, 0);
    const unknown = await call('purge unknown', client.purgeOrchestration(`${P}purge-unknown`));
    assert.equal(unknown.deletedInstanceCount, 0);

    // The id can be used again after the purge.
    await schedule('PurgeFlow2', 2, { instanceId: id });
    const s = await state(id);
    assert.equal(s.name, 'PurgeFlow2');
    assert.equal(s.runtimeStatus, OrchestrationStatus.PENDING);
  });

  it('SIGTERM: taskhubd exits 0 (with a wait still parked) and reports no sanitizer errors', async () => {
    // One more abandoned wait, so the shutdown happens with a call parked on the server.
    const id = `${P}shutdown`;
    await schedule('ShutdownFlow', null, { instanceId: id });
    const e = await rejectionOf(client.waitForOrchestrationStart(id, false, 0.2), 'abandoned wait');
    assert.equal(e.name, 'TimeoutError');
    await assertCleanShutdown(assert, server);
  });
});
