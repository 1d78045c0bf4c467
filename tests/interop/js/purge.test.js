'use strict';
// Interop: durabletask-js purgeOrchestration(PurgeInstanceCriteria) against a taskhubd of its own, so the
// deleted counts are exact (no other test's instances exist on this server).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  TaskHubGrpcClient, OrchestrationStatus, NoOpLogger, PurgeInstanceCriteria,
} = require('@microsoft/durabletask-js');
const {
  SKIP, Taskhubd, within, uniquePrefix, assertCleanShutdown,
} = require('./taskhubd');

const CALL_MS = 15000;

describe('durabletask-js purge by filter against taskhubd', { skip: SKIP }, () => {
  let server;
  let client;
  const P = uniquePrefix('purge');

  const call = (what, p) => within(CALL_MS, p, what);
  const state = (id) => call(`getOrchestrationState(${id})`, client.getOrchestrationState(id, false));
  const schedule = (id) => call(`schedule ${id}`, client.scheduleNewOrchestration('PurgeFilterFlow', { id }, { instanceId: id }));
  const terminate = (id) => call(`terminate ${id}`, client.terminateOrchestration(id, 'done'));
  const criteria = (from, to, statuses) => {
    const c = new PurgeInstanceCriteria();
    c.setCreatedTimeFrom(from);
    c.setCreatedTimeTo(to);
    c.setRuntimeStatusList(statuses);
    c.setTimeout(CALL_MS);
    return c;
  };

  before(async () => {
    server = await Taskhubd.start();
    client = new TaskHubGrpcClient({ hostAddress: server.address, logger: new NoOpLogger() });
  });

  after(async () => {
    if (client) await client.stop();
    if (server) await server.cleanup();
  });

  it('created range [from, to) + TERMINATED purges exactly the terminated instances in range', async () => {
    // Batch A: in range. 4 get terminated, 2 stay PENDING.
    const aTerm = [0, 1, 2, 3].map((i) => `${P}a-term-${i}`);
    const aPend = [0, 1].map((i) => `${P}a-pend-${i}`);
    for (const id of [...aTerm, ...aPend]) await schedule(id);
    const aStates = [];
    for (const id of [...aTerm, ...aPend]) aStates.push(await state(id));
    const aCreated = aStates.map((s) => s.createdAt.getTime());
    const from = new Date(Math.min(...aCreated));       // ms-truncated, so <= the real created time
    const aLast = Math.max(...aCreated);

    // Boundary instance B: the first one whose created millisecond is after every A instance's, so
    // to = B.createdAt (ms-truncated) is > every A created time and <= B's real created time.
    // (Each StartInstance is a round trip; this loop practically never runs twice.)
    const boundary = [];
    let to;
    for (let i = 0; !to; i++) {
      assert.ok(i < 1000, 'could not create an instance in a later millisecond');
      const id = `${P}b-${i}`;
      await schedule(id);
      boundary.push(id);
      const t = (await state(id)).createdAt.getTime();
      if (t > aLast) to = new Date(t);
    }
    // Batch C: created after B, so outside [from, to).
    const cTerm = [0, 1, 2].map((i) => `${P}c-term-${i}`);
    for (const id of cTerm) await schedule(id);
    for (const id of [...aTerm, ...boundary, ...cTerm]) await terminate(id);

    // Statuses that match nothing terminal: nothing is purged, even though the range covers instances.
    const none = await call('purge PENDING filter', client.purgeOrchestration(criteria(from, to, [OrchestrationStatus.PENDING])));
    assert.ok(none);
    assert.equal(none.deletedInstanceCount, 0, 'PENDING instances are never purged');
    for (const id of aPend) assert.equal((await state(id)).runtimeStatus, OrchestrationStatus.PENDING);
    const completedOnly = await call('purge COMPLETED filter',
      client.purgeOrchestration(criteria(from, to, [OrchestrationStatus.COMPLETED])));
    assert.equal(completedOnly.deletedInstanceCount, 0, 'no COMPLETED instances exist');

    const res = await call('purge TERMINATED in range',
      client.purgeOrchestration(criteria(from, to, [OrchestrationStatus.TERMINATED])));
    assert.ok(res, 'purgeOrchestration(criteria) returns a PurgeResult');
    assert.equal(res.deletedInstanceCount, aTerm.length,
      `deletedInstanceCount for [${from.toISOString()}, ${to.toISOString()}) + TERMINATED`);
    for (const id of aTerm) assert.equal(await state(id), undefined, `${id} was purged`);
    for (const id of aPend) assert.equal((await state(id)).runtimeStatus, OrchestrationStatus.PENDING, `${id} kept`);
    for (const id of [...boundary, ...cTerm]) {
      assert.equal((await state(id))?.runtimeStatus, OrchestrationStatus.TERMINATED, `${id} (created >= to) kept`);
    }

    // Same filter again: nothing left to purge.
    const again = await call('purge again', client.purgeOrchestration(criteria(from, to, [OrchestrationStatus.TERMINATED])));
    assert.equal(again.deletedInstanceCount, 0);

    // No time range and no statuses: every terminal instance (B and C), none of the PENDING ones.
    const rest = await call('purge all terminal', client.purgeOrchestration(criteria(undefined, undefined, [])));
    assert.equal(rest.deletedInstanceCount, boundary.length + cTerm.length);
    for (const id of [...boundary, ...cTerm]) assert.equal(await state(id), undefined, `${id} was purged`);
    for (const id of aPend) assert.equal((await state(id)).runtimeStatus, OrchestrationStatus.PENDING, `${id} kept`);

    const q = [];
    for await (const s of client.getAllInstances({ instanceIdPrefix: P })) q.push(s.instanceId);
    assert.deepEqual(q.sort(), [...aPend].sort(), 'only the PENDING instances remain');
  });

  it('SIGTERM: taskhubd exits 0 and reports no sanitizer errors', async () => {
    await assertCleanShutdown(assert, server);
  });
});
