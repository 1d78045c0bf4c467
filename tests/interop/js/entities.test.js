'use strict';
// Interop: durable entities with the published @microsoft/durabletask-js TaskHubGrpcWorker (entities and
// orchestrations) and TaskHubGrpcClient against taskhubd. One server + worker for the first group (a worker
// with no work-item filters, the SDK's default), a second server + worker for the one with "auto" filters.
//
//   counter (an ITaskEntity object)      signalled, read with and without state; names are case-insensitive
//   Account (a TaskEntity subclass)      method dispatch without case, the implicit 'delete' removing it
//   failing operation                    its state change is rolled back, the operations after it still apply
//   orchestration calls                  callEntity's result; a failing operation raises
//                                        EntityOperationFailedException; a call to an entity nobody registered
//                                        is answered by the JS worker with EntityTaskNotFound; signalEntity
//   entity actions                       an entity signals another and starts an orchestration
//   delayed signals                      from the client and from an orchestration: applied once due
//   critical section                     lockEntities over two counters: lockedBy names the owner, a competing
//                                        section and a plain signal wait in the first entity's backlog, in order
//   locks and their owner's end          failing inside the section, or completing without release()
//   query and clean                      QueryEntities pages (tokens grow, never repeat), prefix normalisation,
//                                        lastModified range, includeTransient; CleanEntityStorage removes the
//                                        empty record a delete inside a critical section leaves
//   work-item filters "auto"             an entity nobody registered stays queued (transient), registered ones run
//
// Waiting for an entity polls GetEntity (or QueryEntities) against a deadline: signals are one-way.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { EntityInstanceId, TaskEntity } = require('@microsoft/durabletask-js');
const { EntityOperationFailedException } = require('@microsoft/durabletask-js/dist/entities');
const { SKIP, within } = require('./taskhubd');
const { Hub, statusName } = require('./worker-harness');

const WAIT_MS = 30000;
let keySeq = 0;
const key = (tag) => { keySeq += 1; return `${tag}-${process.pid}-${Date.now().toString(36)}-${keySeq}`; };
const counterId = (k) => new EntityInstanceId('counter', k);

// ------------------------------------------------------------------------------------------------ the worker's

// The JS SDK's lowest-level entity: an object with run(operation), dispatching on the operation's name itself.
function counterEntity() {
  return {
    run(op) {
      const value = op.state.getState(0);
      switch (op.name) {
        case 'add': op.state.setState(value + Number(op.getInput())); return undefined;
        case 'get': return value;
        case 'boom':
          op.state.setState(value + 1000); // rolled back: the operation fails
          throw new RangeError('boom: the counter refused');
        case 'delete': op.state.setState(null); return undefined;
        case 'forward': { // signal another counter and start an orchestration, both at once or at `at`
          const { to, amount, orch, at } = op.getInput();
          const when = at ? new Date(at) : undefined;
          op.context.signalEntity(counterId(to), 'add', amount, when ? { signalTime: when } : undefined);
          op.context.scheduleNewOrchestration('Echo', amount, { instanceId: orch, startAt: when });
          return undefined;
        }
        default: throw new Error(`counter has no operation '${op.name}'`);
      }
    },
  };
}

// The class-based form: public methods are the operations (matched without case), 'delete' is implicit.
class AccountEntity extends TaskEntity {
  initializeState() { return 0; }
  deposit(amount) { this.state += amount; }
  balance() { return this.state; }
}

// What an orchestration reports about an entity call that failed.
function describeFailure(e) {
  return {
    isEntityFailure: e instanceof EntityOperationFailedException,
    name: e.name,
    message: e.message,
    entity: e.entityId ? e.entityId.toString() : null,
    operation: e.operationName ?? null,
    errorType: e.failureDetails?.errorType ?? null,
    errorMessage: e.failureDetails?.errorMessage ?? null,
  };
}

function register(w) {
  w.addNamedEntity('counter', counterEntity);
  // the name comes from the factory's name, lowercased: 'account'
  assert.equal(w.addEntity(function Account() { return new AccountEntity(); }), 'account');

  w.addNamedOrchestrator('Echo', async function* Echo(ctx, x) { return x; }); // eslint-disable-line require-yield

  w.addNamedOrchestrator('CallCounter', async function* CallCounter(ctx, k) {
    const id = counterId(k);
    yield ctx.entities.callEntity(id, 'add', 5);
    const value = yield ctx.entities.callEntity(id, 'get');
    let failed = null;
    try {
      yield ctx.entities.callEntity(id, 'boom');
    } catch (e) {
      failed = describeFailure(e);
    }
    let missing = null;
    try {
      yield ctx.entities.callEntity(new EntityInstanceId('nobody', k), 'op', 1);
    } catch (e) {
      missing = describeFailure(e);
    }
    const balance = yield ctx.entities.callEntity(new EntityInstanceId('Account', k), 'Balance');
    ctx.entities.signalEntity(id, 'add', 100);
    return { value, failed, missing, balance };
  });

  w.addNamedOrchestrator('DelayedSignal', async function* DelayedSignal(ctx, { k, ms }) { // eslint-disable-line require-yield
    const due = new Date(ctx.currentUtcDateTime.getTime() + ms);
    ctx.entities.signalEntity(counterId(k), 'add', 10, { signalTime: due });
    return due.toISOString();
  });

  // Moves `amount` from one counter to another inside a critical section over both. The lock set is given in
  // reverse: the SDK sorts it.
  w.addNamedOrchestrator('Transfer', async function* Transfer(ctx, arg) {
    const a = counterId(arg.from);
    const b = counterId(arg.to);
    const lock = yield ctx.entities.lockEntities(b, a);
    const inSection = ctx.entities.isInCriticalSection();
    const x = yield ctx.entities.callEntity(a, 'get');
    if (arg.hold) yield ctx.waitForExternalEvent('go'); // keeps the locks until the test raises "go"
    yield ctx.entities.callEntity(a, 'add', -arg.amount);
    yield ctx.entities.callEntity(b, 'add', arg.amount);
    lock.release();
    return { x, locked: inSection.lockedEntities.map(String) };
  });

  // Takes a lock and fails inside the critical section: taskhubd releases the lock when the orchestration ends.
  w.addNamedOrchestrator('LockAndFail', async function* LockAndFail(ctx, k) {
    yield ctx.entities.lockEntities(counterId(k));
    yield ctx.entities.callEntity(counterId(k), 'add', 1);
    throw new Error('failed while holding the lock');
  });

  // Completes without calling release() (the JS SDK has no scope that would): taskhubd releases the lock.
  w.addNamedOrchestrator('LockAndForget', async function* LockAndForget(ctx, k) {
    yield ctx.entities.lockEntities(counterId(k));
    yield ctx.entities.callEntity(counterId(k), 'add', 1);
    return 'forgot to release';
  });

  // Deletes an entity while holding its lock: the record outlives the state until the unlock, then is empty.
  w.addNamedOrchestrator('LockAndDelete', async function* LockAndDelete(ctx, k) {
    const lock = yield ctx.entities.lockEntities(counterId(k));
    const before = yield ctx.entities.callEntity(counterId(k), 'get');
    yield ctx.entities.callEntity(counterId(k), 'delete');
    lock.release();
    return before;
  });
}

// ------------------------------------------------------------------------------------------------ helpers

// GetEntity until pred(metadata or undefined) holds; returns that metadata.
async function entityUntil(hub, id, what, pred, { includeState = true, timeoutMs = WAIT_MS } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await within(15000, hub.client.getEntity(id, includeState), `getEntity(${id})`);
    if (pred(last)) return last;
    if (Date.now() > deadline) {
      throw new Error(`${id}: ${what} not observed within ${timeoutMs} ms; last: ${JSON.stringify(last)}`
        + `${hub.diag(id.toString())}`);
    }
    await new Promise((r) => { setTimeout(r, 20); });
  }
}
const stateIs = (hub, id, want, opts) => entityUntil(hub, id, `state ${JSON.stringify(want)}`,
  (md) => (want === undefined ? md === undefined : md !== undefined && md.includesState
    && JSON.stringify(md.state) === JSON.stringify(want)), opts);

async function queryAll(hub, query) {
  const out = [];
  await within(30000, (async () => { for await (const e of hub.client.getEntities(query)) out.push(e); })(),
    `getEntities(${JSON.stringify(query)})`);
  return out;
}

// Polls a query until pred(results) holds.
async function queryUntil(hub, query, what, pred, timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await queryAll(hub, query);
    if (pred(got)) return got;
    if (Date.now() > deadline) {
      throw new Error(`query ${JSON.stringify(query)}: ${what} not observed within ${timeoutMs} ms; last: `
        + `${JSON.stringify(got.map((e) => [e.id.toString(), e.backlogQueueSize, e.lockedBy,
          e.includesState ? e.state : '(no state)']))}${hub.diag()}`);
    }
    await new Promise((r) => { setTimeout(r, 20); });
  }
}

// ------------------------------------------------------------------------------------------------ tests

describe('durabletask-js entities against taskhubd (worker without filters)', { skip: SKIP }, () => {
  let hub;

  before(async () => { hub = await Hub.start('ent', register); });
  after(async () => { if (hub) await hub.cleanup(); });

  it('signals a counter (ITaskEntity object) and reads it with and without state', async () => {
    const k = key('cnt');
    const id = counterId(k);
    assert.equal(await hub.client.getEntity(id), undefined, 'never signalled: does not exist');
    for (const n of [1, 2, 3]) await within(15000, hub.client.signalEntity(id, 'add', n), 'signalEntity');
    const t0 = Date.now();
    const md = await stateIs(hub, id, 6);
    assert.equal(md.id.toString(), `@counter@${k}`);
    assert.ok(md.id.equals(id));
    assert.equal(md.backlogQueueSize, 0);
    assert.equal(md.lockedBy, undefined);
    assert.ok(md.lastModifiedTime instanceof Date && md.lastModifiedTime.getTime() > t0 - 60000
      && md.lastModifiedTime.getTime() <= Date.now() + 1000, `lastModifiedTime ${md.lastModifiedTime}`);
    const without = await hub.client.getEntity(id, false);
    assert.ok(without, 'still exists without its state');
    assert.equal(without.includesState, false);
    assert.throws(() => without.state, /includesState is false/, 'the SDK refuses to read state it did not fetch');
    // The SDK lowercases entity names: 'Counter' is the same entity.
    await hub.client.signalEntity(new EntityInstanceId('Counter', k), 'add', 4);
    await stateIs(hub, id, 10);
  });

  it('runs a class-based entity (TaskEntity) and its implicit delete removes it', async () => {
    const k = key('acct');
    const id = new EntityInstanceId('Account', k);
    assert.equal(id.toString(), `@account@${k}`);
    await hub.client.signalEntity(id, 'deposit', 40);
    await hub.client.signalEntity(id, 'Deposit', 2); // methods match without case
    await stateIs(hub, id, 42);
    await hub.client.signalEntity(id, 'delete');
    await stateIs(hub, id, undefined);
    const left = await queryAll(hub, { instanceIdStartsWith: id.toString(), includeTransient: true });
    assert.deepEqual(left.map((e) => e.id.toString()), [], 'nothing left of it: no state, nothing queued');
  });

  it('rolls back a failing operation; the operations after it still apply', async () => {
    const id = counterId(key('boom'));
    await hub.client.signalEntity(id, 'add', 5);
    await hub.client.signalEntity(id, 'boom');
    await hub.client.signalEntity(id, 'add', 1);
    await stateIs(hub, id, 6); // boom's +1000 was rolled back
  });

  it('answers an orchestration\'s calls: result, failed operation, unregistered entity', async () => {
    const k = key('call');
    await hub.client.signalEntity(new EntityInstanceId('account', k), 'deposit', 7);
    await stateIs(hub, new EntityInstanceId('account', k), 7);
    const iid = await hub.schedule('CallCounter', k);
    const st = await hub.done(iid, 30, [`@counter@${k}`, `@nobody@${k}`]);
    hub.expect(st, 'COMPLETED');
    const out = JSON.parse(st.serializedOutput);
    assert.equal(out.value, 5, 'the result of get came back');
    assert.equal(out.balance, 7, 'a class entity\'s method result came back');
    assert.deepEqual(out.failed, {
      isEntityFailure: true,
      name: 'EntityOperationFailedException',
      message: `Operation 'boom' of entity '@counter@${k}' failed: boom: the counter refused`,
      entity: `@counter@${k}`,
      operation: 'boom',
      errorType: 'RangeError',
      errorMessage: 'boom: the counter refused',
    });
    // No filters: the JS worker gets the unregistered entity's batch and fails each operation itself.
    assert.equal(out.missing?.isEntityFailure, true, JSON.stringify(out.missing));
    assert.equal(out.missing.errorType, 'EntityTaskNotFound', JSON.stringify(out.missing));
    assert.match(out.missing.errorMessage, /No entity task named 'nobody' was found/);
    await stateIs(hub, counterId(k), 105); // and the signal after the calls applied
    // the answered operation left nothing behind: no state, nothing queued, no record
    await queryUntil(hub, { instanceIdStartsWith: `@nobody@${k}`, includeTransient: true }, 'no record',
      (got) => got.length === 0);
  });

  it('lets an entity signal another entity and start an orchestration', async () => {
    const src = counterId(key('src'));
    const dst = counterId(key('dst'));
    const orch = hub.id('from-entity');
    await hub.client.signalEntity(src, 'forward', { to: dst.key, amount: 7, orch });
    await stateIs(hub, dst, 7);
    const st = await hub.done(orch, 30, [src.toString(), dst.toString()]);
    hub.expect(st, 'COMPLETED', 7);
    assert.equal(st.name, 'Echo');
  });

  it('applies delayed signals once due (from the client and from an orchestration)', async () => {
    const id = counterId(key('later'));
    await hub.client.signalEntity(id, 'add', 1);
    await stateIs(hub, id, 1);
    const due = new Date(Date.now() + 1500);
    await hub.client.signalEntity(id, 'add', 10, { signalTime: due });
    await hub.client.signalEntity(id, 'add', 100);
    await stateIs(hub, id, 101); // the immediate one applies first
    const md = await stateIs(hub, id, 111);
    assert.ok(md.lastModifiedTime.getTime() >= due.getTime() - 5,
      `the delayed signal applied at ${md.lastModifiedTime.toISOString()}, before it was due at ${due.toISOString()}`);

    const k2 = key('orch-later');
    const iid = await hub.schedule('DelayedSignal', { k: k2, ms: 1500 });
    const st = await hub.done(iid, 30);
    hub.expect(st, 'COMPLETED');
    const orchDue = new Date(JSON.parse(st.serializedOutput));
    const md2 = await stateIs(hub, counterId(k2), 10);
    assert.ok(md2.lastModifiedTime.getTime() >= orchDue.getTime() - 5,
      `the orchestration's delayed signal applied at ${md2.lastModifiedTime.toISOString()}, due ${orchDue.toISOString()}`);

    // from an entity: a delayed signal and an orchestration started later (startAt)
    const src = counterId(key('ent-later-src'));
    const dst = counterId(key('ent-later-dst'));
    const orch = hub.id('later-from-entity');
    const at = new Date(Date.now() + 1500);
    await hub.client.signalEntity(src, 'forward', { to: dst.key, amount: 3, orch, at: at.toISOString() });
    const md3 = await stateIs(hub, dst, 3);
    assert.ok(md3.lastModifiedTime.getTime() >= at.getTime() - 5,
      `the entity's delayed signal applied at ${md3.lastModifiedTime.toISOString()}, due ${at.toISOString()}`);
    const st3 = await hub.done(orch, 30, [src.toString()]);
    hub.expect(st3, 'COMPLETED', 3);
    assert.ok(st3.lastUpdatedAt.getTime() >= at.getTime() - 5,
      `the orchestration the entity started for ${at.toISOString()} ran at ${st3.lastUpdatedAt.toISOString()}`);
  });

  it('keeps a critical section over two entities exclusive while a competing one and a signal wait', async () => {
    const k = key('cs');
    const a = `${k}-a`; // '@counter@<k>-a' sorts before '@counter@<k>-b': the first entity of every lock set
    const b = `${k}-b`;
    const ea = counterId(a);
    const eb = counterId(b);
    await hub.client.signalEntity(ea, 'add', 50);
    await hub.client.signalEntity(eb, 'add', 1);
    await stateIs(hub, ea, 50);
    await stateIs(hub, eb, 1);

    const holder = await hub.schedule('Transfer', { from: a, to: b, amount: 10, hold: true });
    // lockedBy is the owning orchestration's id (a plain string in the JS SDK)
    await entityUntil(hub, ea, `locked by ${holder}`, (md) => md?.lockedBy === holder, { includeState: false });
    await entityUntil(hub, eb, `locked by ${holder}`, (md) => md?.lockedBy === holder, { includeState: false });

    const rival = await hub.schedule('Transfer', { from: a, to: b, amount: 1 });
    // the rival's lock request waits at the first entity of its (sorted) lock set
    await entityUntil(hub, ea, 'the rival\'s lock request queued', (md) => md?.backlogQueueSize === 1);
    await hub.client.signalEntity(ea, 'add', 1000); // queued behind the rival's lock request
    const mdA = await entityUntil(hub, ea, 'the signal queued', (md) => md?.backlogQueueSize === 2);
    assert.equal(mdA.state, 50, 'an operation ran inside another\'s critical section');
    assert.equal(mdA.lockedBy, holder);
    const mdB = await hub.client.getEntity(eb);
    assert.equal(mdB.backlogQueueSize, 0, 'nothing reached the second entity while the first is held');
    assert.equal(mdB.lockedBy, holder);
    const rs = await hub.state(rival);
    assert.match(statusName(rs.runtimeStatus), /^RUNNING\(/, 'the rival waits for its lock');

    await within(15000, hub.client.raiseOrchestrationEvent(holder, 'go'), 'raiseOrchestrationEvent');
    const hs = await hub.done(holder, 30, [ea.toString(), eb.toString()]);
    hub.expect(hs, 'COMPLETED', { x: 50, locked: [ea.toString(), eb.toString()] });
    const rs2 = await hub.done(rival, 30, [ea.toString(), eb.toString()]);
    // the rival's section came before the signal queued behind it: it read a after the holder's transfer only
    hub.expect(rs2, 'COMPLETED', { x: 40, locked: [ea.toString(), eb.toString()] });
    const endA = await stateIs(hub, ea, 50 - 10 - 1 + 1000);
    await stateIs(hub, eb, 1 + 10 + 1);
    assert.equal(endA.lockedBy, undefined);
    assert.equal((await hub.client.getEntity(eb)).lockedBy, undefined);
  });

  it('releases the locks of an orchestration that fails inside its critical section', async () => {
    const k = key('lockfail');
    const id = counterId(k);
    const iid = await hub.schedule('LockAndFail', k);
    const st = await hub.done(iid, 30, [id.toString()]);
    hub.expect(st, 'FAILED');
    assert.match(st.failureDetails?.message ?? '', /failed while holding the lock/);
    await hub.client.signalEntity(id, 'add', 10); // runs only once the failed owner's lock is gone
    const md = await stateIs(hub, id, 11);
    assert.equal(md.lockedBy, undefined);
  });

  it('releases the locks of an orchestration that completes without release()', async () => {
    const k = key('lockforget');
    const id = counterId(k);
    const iid = await hub.schedule('LockAndForget', k);
    const st = await hub.done(iid, 30, [id.toString()]);
    hub.expect(st, 'COMPLETED', 'forgot to release');
    await hub.client.signalEntity(id, 'add', 10);
    const md = await stateIs(hub, id, 11);
    assert.equal(md.lockedBy, undefined);
  });

  it('pages QueryEntities with growing tokens and cleans entity storage', async () => {
    const prefix = key('q');
    const ids = Array.from({ length: 23 }, (_, i) => counterId(`${prefix}-${String(i).padStart(2, '0')}`));
    const before = new Date(Date.now() - 1000);
    for (const id of ids) await hub.client.signalEntity(id, 'add', 1);
    await queryUntil(hub, { instanceIdStartsWith: `@counter@${prefix}`, includeState: true }, 'all 23 at 1',
      (got) => got.length === 23 && got.every((e) => e.state === 1));

    // pages of 10 through the SDK's own paging: 10 + 10 + 3; the prefix without its '@' is normalised by the SDK
    const query = { instanceIdStartsWith: `counter@${prefix}`, pageSize: 10, includeState: true };
    const sizes = [];
    const tokens = [];
    const seen = [];
    await within(30000, (async () => {
      for await (const page of hub.client.getEntities(query).asPages()) {
        sizes.push(page.values.length);
        seen.push(...page.values.map((e) => e.id.toString()));
        assert.ok(page.values.every((e) => e.includesState && e.state === 1 && e.backlogQueueSize === 0));
        if (page.continuationToken) {
          assert.ok(!tokens.includes(page.continuationToken), `token ${page.continuationToken} repeated`);
          if (tokens.length) assert.ok(page.continuationToken > tokens[tokens.length - 1], 'tokens grow');
          tokens.push(page.continuationToken);
        }
      }
    })(), 'paging');
    assert.deepEqual(sizes, [10, 10, 3]);
    assert.equal(tokens.length, 2);
    assert.deepEqual(seen, ids.map(String).sort());
    // resuming from the first page's token gives the rest
    const rest = [];
    for await (const page of hub.client.getEntities(query).asPages(tokens[0])) rest.push(...page.values);
    assert.deepEqual(rest.map((e) => e.id.toString()), seen.slice(10));
    // without state, and by last-modified range
    const noState = await queryAll(hub, { instanceIdStartsWith: `@counter@${prefix}`, includeState: false });
    assert.equal(noState.length, 23);
    assert.ok(noState.every((e) => !e.includesState));
    assert.equal((await queryAll(hub, { instanceIdStartsWith: `@counter@${prefix}`, lastModifiedTo: before })).length, 0);
    assert.equal((await queryAll(hub, { instanceIdStartsWith: `@counter@${prefix}`, lastModifiedFrom: before })).length, 23);
    assert.equal((await queryAll(hub, {
      instanceIdStartsWith: `@counter@${prefix}`, lastModifiedFrom: new Date(Date.now() + 3600e3),
    })).length, 0);

    // An entity deleted inside a critical section: its record lasts (no state) until the lock goes, then is
    // empty: not an entity for GetEntity, seen with includeTransient, removed by CleanEntityStorage.
    const k = key('empty');
    const empty = counterId(k);
    await hub.client.signalEntity(empty, 'add', 3);
    await stateIs(hub, empty, 3);
    const iid = await hub.schedule('LockAndDelete', k);
    const st = await hub.done(iid, 30, [empty.toString()]);
    hub.expect(st, 'COMPLETED', 3);
    const transientQ = { instanceIdStartsWith: empty.toString(), includeTransient: true };
    const rec = await queryUntil(hub, transientQ, 'an empty, unlocked record',
      (got) => got.length === 1 && got[0].lockedBy === undefined && got[0].backlogQueueSize === 0);
    assert.equal(rec[0].includesState, false);
    assert.equal(await hub.client.getEntity(empty), undefined, 'no state: does not exist');
    assert.deepEqual(await queryAll(hub, { instanceIdStartsWith: empty.toString() }), [],
      'without includeTransient a stateless record is not listed');

    const cleaned = await within(30000, hub.client.cleanEntityStorage(), 'cleanEntityStorage');
    assert.ok(cleaned.emptyEntitiesRemoved >= 1, JSON.stringify(cleaned));
    assert.equal(cleaned.orphanedLocksReleased, 0, JSON.stringify(cleaned));
    assert.equal(cleaned.continuationToken, undefined);
    assert.deepEqual(await queryAll(hub, transientQ), [], 'the empty record was removed');
    assert.equal((await queryAll(hub, { instanceIdStartsWith: `@counter@${prefix}` })).length, 23,
      'entities with state are kept');
  });

  it('stops cleanly', async () => {
    const h = hub;
    hub = null;
    await h.stop();
  });
});

describe('durabletask-js entities with workItemFilters "auto"', { skip: SKIP }, () => {
  let hub;

  before(async () => {
    hub = await Hub.start('entf', (w) => {
      w.addNamedEntity('counter', counterEntity);
      w.addNamedOrchestrator('Echo', async function* Echo(ctx, x) { return x; }); // eslint-disable-line require-yield
    }, [], { workItemFilters: 'auto' });
  });
  after(async () => { if (hub) await hub.cleanup(); });

  it('leaves an entity nobody registered queued and runs the registered ones', async () => {
    const k = key('ghost');
    const ghost = new EntityInstanceId('nobody', k);
    await hub.client.signalEntity(ghost, 'op', 1);
    const id = counterId(k);
    await hub.client.signalEntity(id, 'add', 2);
    await stateIs(hub, id, 2); // the filtered worker gets counter's batches
    const q = { instanceIdStartsWith: `@nobody@${k}`, includeTransient: true };
    const got = await queryAll(hub, q);
    assert.deepEqual(got.map((e) => [e.id.toString(), e.backlogQueueSize, e.includesState]),
      [[ghost.toString(), 1, false]], 'the signal waits, unanswered, in a transient record');
    assert.equal(await hub.client.getEntity(ghost), undefined, 'no state: does not exist');
    assert.deepEqual(await queryAll(hub, { instanceIdStartsWith: `@nobody@${k}` }), []);
    const cleaned = await hub.client.cleanEntityStorage();
    assert.equal(cleaned.emptyEntitiesRemoved, 0, 'an entity with queued work is not empty');
    assert.equal((await queryAll(hub, q)).length, 1);
  });

  it('stops cleanly', async () => {
    const h = hub;
    hub = null;
    await h.stop();
  });
});
