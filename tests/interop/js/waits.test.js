'use strict';
// Interop: durabletask-js sends WaitForInstanceStart/Completion with NO gRPC deadline and abandons the call on
// its own timer. This file runs a taskhubd of its own with a short --wait-cap, to check that the server ends
// such waits itself (DEADLINE_EXCEEDED at the cap) and handles client cancellation, instead of holding them.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const grpc = require('@grpc/grpc-js');
const { TaskHubGrpcClient, OrchestrationStatus, NoOpLogger } = require('@microsoft/durabletask-js');
const {
  SKIP, Taskhubd, within, rejectionOf, uniquePrefix, assertCleanShutdown, rawStub,
} = require('./taskhubd');

const CAP_S = 2;
const CALL_MS = 15000;

describe('durabletask-js waits without a deadline against taskhubd --wait-cap', { skip: SKIP }, () => {
  let server;
  let client;
  let raw;
  const P = uniquePrefix('waits');

  const call = (what, p) => within(CALL_MS, p, what);

  before(async () => {
    server = await Taskhubd.start(['--wait-cap', String(CAP_S)]);
    client = new TaskHubGrpcClient({ hostAddress: server.address, logger: new NoOpLogger() });
    raw = rawStub(server.address);
  });

  after(async () => {
    if (raw) raw.close();
    if (client) await client.stop();
    if (server) await server.cleanup();
  });

  it('SDK waits longer than the cap end with DEADLINE_EXCEEDED at the cap', async () => {
    const id = `${P}cap`;
    await call('schedule', client.scheduleNewOrchestration('CapFlow', null, { instanceId: id }));
    for (const fn of ['waitForOrchestrationStart', 'waitForOrchestrationCompletion']) {
      const t0 = Date.now();
      // SDK timeout 60 s; the server's cap (2 s) must end the call first.
      const err = await rejectionOf(within(30000, client[fn](id, false, 60), fn), fn);
      const elapsed = Date.now() - t0;
      assert.notEqual(err.name, 'TimeoutError', `${fn}: the SDK timer fired first; the server did not end the wait`);
      assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED,
        `${fn}: expected DEADLINE_EXCEEDED at --wait-cap, got ${err.stack || err}`);
      assert.ok(elapsed >= CAP_S * 1000 - 250, `${fn}: ended after ${elapsed} ms, before the ${CAP_S} s cap`);
      assert.ok(elapsed < CAP_S * 1000 + 8000, `${fn}: ended after ${elapsed} ms, long after the ${CAP_S} s cap`);
    }
    const s = await call('get', client.getOrchestrationState(id));
    assert.equal(s.runtimeStatus, OrchestrationStatus.PENDING);
  });

  it('a wait the SDK abandons is released by the server at the cap (raw call, no deadline)', async () => {
    const id = `${P}abandon`;
    await call('schedule', client.scheduleNewOrchestration('AbandonFlow', null, { instanceId: id }));

    // What the SDK user sees: its own TimeoutError, while the call stays open underneath.
    const e = await rejectionOf(client.waitForOrchestrationStart(id, false, 0.3), 'SDK wait');
    assert.equal(e.name, 'TimeoutError');

    // The same request through the SDK's generated stub, observed to its end: no deadline, so only the
    // server's cap can finish it.
    const req = new raw.pb.GetInstanceRequest();
    req.setInstanceid(id);
    const t0 = Date.now();
    const err = await rejectionOf(within(30000, raw.unary('waitForInstanceStart', req), 'raw wait'), 'raw wait');
    const elapsed = Date.now() - t0;
    assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED, `raw wait: got ${err.stack || err}`);
    assert.ok(elapsed >= CAP_S * 1000 - 250 && elapsed < CAP_S * 1000 + 8000, `raw wait ended after ${elapsed} ms`);
  });

  it('a cancelled wait is released and the server keeps serving', async () => {
    const id = `${P}cancel`;
    await call('schedule', client.scheduleNewOrchestration('CancelFlow', null, { instanceId: id }));
    const req = new raw.pb.GetInstanceRequest();
    req.setInstanceid(id);
    const calls = [];
    const results = [];
    for (let i = 0; i < 16; i++) {
      results.push(new Promise((resolve) => {
        calls.push(raw.client.waitForInstanceCompletion(req, new grpc.Metadata(), (err, res) => resolve({ err, res })));
      }));
    }
    for (const c of calls) c.cancel();
    for (const r of await within(10000, Promise.all(results), 'cancelled waits')) {
      assert.equal(r.err?.code, grpc.status.CANCELLED);
    }
    // A wait that the client keeps, woken by terminate before the cap.
    const waiting = client.waitForOrchestrationCompletion(id, true, 60);
    await call('terminate', client.terminateOrchestration(id, 7));
    const done = await within(CAP_S * 1000 + 5000, waiting, 'completion wait after terminate');
    assert.equal(done.runtimeStatus, OrchestrationStatus.TERMINATED);
    assert.equal(done.serializedOutput, '7');
  });

  it('SIGTERM: taskhubd exits 0 and reports no sanitizer errors', async () => {
    await assertCleanShutdown(assert, server);
  });
});
