'use strict';
// Shared by the worker*.test.js files: one taskhubd (see taskhubd.js) plus the published durabletask-js
// TaskHubGrpcWorker and TaskHubGrpcClient connected to it. Every helper that waits does so on a condition
// with a deadline (the SDK's own wait RPCs, or a bounded poll of GetInstance), never on a fixed sleep.
// On failure, messages carry the server's log lines for the instance and the tail of the worker's log.

const assert = require('node:assert/strict');
const {
  TaskHubGrpcWorker, TaskHubGrpcClient, NoOpLogger, OrchestrationStatus,
} = require('@microsoft/durabletask-js');
const { Taskhubd, within, uniquePrefix, assertCleanShutdown } = require('./taskhubd');

const SERVER_LOG_KEEP = 16 * 1024 * 1024;   // full server log kept here for per-instance excerpts
const WORKER_LOG_KEEP = 400;                // worker log lines kept

const STATUS_NAME = Object.fromEntries(
  Object.entries(OrchestrationStatus).filter(([, v]) => typeof v === 'number').map(([k, v]) => [v, k]),
);
const statusName = (s) => (s === undefined ? 'undefined' : `${STATUS_NAME[s] ?? '?'}(${s})`);

// The SDK logger interface (error/warn/info/debug); keeps the last lines for failure messages.
class CapturingLogger {
  constructor() { this.lines = []; }
  _push(level, message, args) {
    const extra = args.length ? ` ${args.map((a) => (a instanceof Error ? a.stack : String(a))).join(' ')}` : '';
    this.lines.push(`${new Date().toISOString()} ${level} ${message}${extra}`);
    if (this.lines.length > WORKER_LOG_KEEP * 2) this.lines = this.lines.slice(-WORKER_LOG_KEEP);
  }
  error(m, ...a) { this._push('error', m, a); }
  warn(m, ...a) { this._push('warn', m, a); }
  info(m, ...a) { this._push('info', m, a); }
  debug(m, ...a) { this._push('debug', m, a); }
  tail(n = 40) { return this.lines.slice(-n).join('\n'); }
}

class Hub {
  constructor(tag) {
    this.prefix = uniquePrefix(tag);
    this.server = null;
    this.worker = null;
    this.client = null;
    this.workerLog = new CapturingLogger();
    this.serverLog = '';
    this.seq = 0;
  }

  // register(worker) adds the orchestrators, activities and entities before the worker starts; workerOptions
  // go to the TaskHubGrpcWorker constructor as well (e.g. workItemFilters).
  static async start(tag, register, serverArgs = [], workerOptions = {}) {
    const hub = new Hub(tag);
    // Debug by default so that a failure message carries the server's per-instance dispatch lines.
    const level = process.env.TASKHUBD_LOG_LEVEL || 'debug';
    hub.server = await Taskhubd.start(['--log-level', level, ...serverArgs]);
    hub.server.child.stderr.on('data', (c) => {
      hub.serverLog += c.toString('utf8');
      if (hub.serverLog.length > SERVER_LOG_KEEP * 2) hub.serverLog = hub.serverLog.slice(-SERVER_LOG_KEEP);
    });
    try {
      const worker = new TaskHubGrpcWorker({
        hostAddress: hub.server.address, logger: hub.workerLog, shutdownTimeoutMs: 5000, ...workerOptions,
      });
      register(worker);
      await within(15000, worker.start(), 'worker.start()');
      hub.worker = worker;
      hub.client = new TaskHubGrpcClient({ hostAddress: hub.server.address, logger: new NoOpLogger() });
    } catch (e) {
      await hub.cleanup();
      throw e;
    }
    return hub;
  }

  id(name) { this.seq += 1; return `${this.prefix}${name}-${this.seq}`; }

  // Server log lines that mention any of the given ids (or the last lines when none do), plus the worker tail.
  diag(...ids) {
    const lines = this.serverLog.split('\n');
    const hits = ids.length ? lines.filter((l) => ids.some((id) => l.includes(id))) : [];
    const shown = hits.length ? hits.slice(-80) : lines.slice(-60);
    return `\n--- taskhubd log (${hits.length ? `lines naming ${ids.join(', ')}` : 'tail'}) ---\n${shown.join('\n')}`
      + `\n--- worker log tail ---\n${this.workerLog.tail()}`;
  }

  async schedule(name, input, opts = {}) {
    const instanceId = opts.instanceId ?? this.id(name);
    const got = await within(15000,
      this.client.scheduleNewOrchestration(name, input, { ...opts, instanceId }), `schedule ${name}`);
    assert.equal(got, instanceId);
    return instanceId;
  }

  async state(id, fetch = true) {
    return within(15000, this.client.getOrchestrationState(id, fetch), `getOrchestrationState(${id})`);
  }

  // The SDK's WaitForInstanceCompletion (its own timer, no gRPC deadline); diagnostics on timeout.
  async done(id, timeoutS = 30, alsoLog = []) {
    let st;
    try {
      st = await within(timeoutS * 1000 + 5000,
        this.client.waitForOrchestrationCompletion(id, true, timeoutS), `waitForOrchestrationCompletion(${id})`);
    } catch (e) {
      let cur = '';
      try { const s = await this.state(id); cur = s ? statusName(s.runtimeStatus) : 'not found'; } catch { /* */ }
      throw new Error(`${id} did not complete within ${timeoutS} s (status now ${cur}): ${e.message}`
        + `${this.diag(id, ...alsoLog)}`);
    }
    assert.ok(st, `waitForOrchestrationCompletion(${id}) found no instance${this.diag(id)}`);
    return st;
  }

  async started(id, timeoutS = 15) {
    const st = await within(timeoutS * 1000 + 5000,
      this.client.waitForOrchestrationStart(id, true, timeoutS), `waitForOrchestrationStart(${id})`)
      .catch((e) => { throw new Error(`${e.message}${this.diag(id)}`); });
    assert.ok(st, `waitForOrchestrationStart(${id}) found no instance`);
    return st;
  }

  // Bounded poll of GetInstance until pred(state) holds (for states no wait RPC reports, e.g. SUSPENDED).
  async until(id, what, pred, timeoutMs = 15000) {
    const deadline = Date.now() + timeoutMs;
    let last;
    for (;;) {
      last = await this.state(id);
      if (last && pred(last)) return last;
      if (Date.now() > deadline) {
        throw new Error(`${id}: ${what} not observed within ${timeoutMs} ms; last state: `
          + `${last ? `${statusName(last.runtimeStatus)} customStatus=${last.serializedCustomStatus}` : 'none'}`
          + `${this.diag(id)}`);
      }
      await new Promise((r) => { setTimeout(r, 20); });
    }
  }

  // Asserts runtime status (by name, message shows failure details and logs) and, if given, the output.
  expect(st, status, output, what = st?.instanceId) {
    const fd = st?.failureDetails;
    assert.equal(statusName(st?.runtimeStatus), statusName(OrchestrationStatus[status]),
      `${what}: runtime status; output=${st?.serializedOutput} failure=${fd ? `${fd.errorType}: ${fd.message}` : 'none'}`
      + `${this.diag(st?.instanceId ?? '')}`);
    if (output !== undefined) {
      assert.deepEqual(st.serializedOutput === undefined ? undefined : JSON.parse(st.serializedOutput), output,
        `${what}: output`);
    }
  }

  async stop() {
    if (this.worker) { const w = this.worker; this.worker = null; await within(20000, w.stop(), 'worker.stop()'); }
    if (this.client) { const c = this.client; this.client = null; await c.stop(); }
    if (this.server) await assertCleanShutdown(assert, this.server);
  }

  // Safety net for after(): never throws.
  async cleanup() {
    try { if (this.worker) await within(20000, this.worker.stop(), 'worker.stop()'); } catch { /* */ }
    try { if (this.client) await this.client.stop(); } catch { /* */ }
    if (this.server) await this.server.cleanup();
  }
}

module.exports = { Hub, statusName, CapturingLogger };
