'use strict';
// Helper shared by the JS interop tests: starts one taskhubd on a fresh data dir and an OS-picked port,
// learns the port from --ready-fd 3 (a pipe, read with a timeout: no sleeping, no polling), and stops it
// with SIGTERM, checking exit status 0 and that no sanitizer report reached its stderr.
//
// TASKHUBD_BIN: path of the taskhubd binary. Unset -> the tests skip (see SKIP). Set but the server does
// not come up -> the calling before() hook throws, so the tests FAIL.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const BIN = process.env.TASKHUBD_BIN || '';
const SKIP = BIN ? false : 'TASKHUBD_BIN is not set; skipping the durabletask-js interop tests '
  + '(run through CTest, or set TASKHUBD_BIN=<build>/sidecar/taskhubd)';

const READY_TIMEOUT_MS = 30000;   // sanitizer builds start slowly
const STOP_TIMEOUT_MS = 30000;
const STDERR_KEEP = 256 * 1024;   // keep the tail of the server log for failure messages

class Taskhubd {
  constructor(extraArgs = []) {
    this.extraArgs = extraArgs;
    this.child = null;
    this.port = 0;
    this.address = '';
    this.stderr = '';
    this.sanitizerHit = false;
    this.exited = null;          // Promise<{code, signal}>
    this.exitInfo = null;
    this.tmp = '';
  }

  static async start(extraArgs = []) {
    const s = new Taskhubd(extraArgs);
    try {
      await s._start();
    } catch (e) {
      await s.cleanup();
      throw e;
    }
    return s;
  }

  _onStderr(chunk) {
    const text = chunk.toString('utf8');
    if (/AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error/.test(this.stderr.slice(-200) + text)) {
      this.sanitizerHit = true;
    }
    this.stderr += text;
    if (this.stderr.length > STDERR_KEEP * 2) this.stderr = this.stderr.slice(-STDERR_KEEP);
  }

  logTail(n = 60) {
    const lines = this.stderr.split('\n');
    return lines.slice(-n).join('\n');
  }

  async _start() {
    if (!BIN) throw new Error('TASKHUBD_BIN is not set');
    if (!fs.existsSync(BIN)) throw new Error(`TASKHUBD_BIN=${BIN} does not exist`);
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'taskhubd-js-'));
    const args = ['--listen', '127.0.0.1:0', '--ready-fd', '3',
      '--data-dir', path.join(this.tmp, 'data'), ...this.extraArgs];
    const child = spawn(BIN, args, { stdio: ['ignore', 'inherit', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => { this.exitInfo = { code, signal }; resolve(this.exitInfo); });
    });
    child.stderr.on('data', (c) => this._onStderr(c));

    const readyPipe = child.stdio[3];
    const port = await new Promise((resolve, reject) => {
      let buf = '';
      let done = false;
      const finish = (err, val) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        readyPipe.removeAllListeners('data');
        if (err) reject(err); else resolve(val);
      };
      const timer = setTimeout(() => finish(new Error(
        `taskhubd did not report its port on --ready-fd within ${READY_TIMEOUT_MS} ms; args: ${args.join(' ')}\n`
        + `--- server stderr ---\n${this.logTail()}`)), READY_TIMEOUT_MS);
      child.once('error', (e) => finish(new Error(`cannot spawn ${BIN}: ${e.message}`)));
      this.exited.then((info) => finish(new Error(
        `taskhubd exited before reporting its port (code ${info.code}, signal ${info.signal}); `
        + `args: ${args.join(' ')}\n--- server stderr ---\n${this.logTail()}`)));
      readyPipe.setEncoding('utf8');
      readyPipe.on('data', (d) => {
        buf += d;
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        if (!/^[0-9]+$/.test(line) || Number(line) <= 0 || Number(line) > 65535) {
          finish(new Error(`bad ready line from taskhubd: ${JSON.stringify(line)}`));
        } else {
          finish(null, Number(line));
        }
      });
      readyPipe.on('end', async () => {
        // Usually the child has just exited: give its exit status a moment to arrive for the message.
        let t;
        const info = await Promise.race([this.exited,
          new Promise((r) => { t = setTimeout(() => r(null), 2000); })]);
        clearTimeout(t);
        finish(new Error(`ready fd closed without a port line (got ${JSON.stringify(buf)}); `
          + `taskhubd ${info ? `exited with code ${info.code}, signal ${info.signal}` : 'is still running'}; `
          + `args: ${args.join(' ')}\n--- server stderr ---\n${this.logTail()}`));
      });
      readyPipe.on('error', () => {});
    });
    readyPipe.destroy();
    this.port = port;
    this.address = `127.0.0.1:${port}`;
  }

  // SIGTERM, wait for the exit (bounded), return {code, signal}. Throws on a hang (after SIGKILL).
  async stop() {
    if (!this.child) return null;
    if (!this.exitInfo) this.child.kill('SIGTERM');
    let timer;
    const info = await Promise.race([
      this.exited,
      new Promise((resolve) => { timer = setTimeout(() => resolve(null), STOP_TIMEOUT_MS); }),
    ]);
    clearTimeout(timer);
    if (!info) {
      this.child.kill('SIGKILL');
      await this.exited;
      throw new Error(`taskhubd did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM (killed)\n`
        + `--- server stderr ---\n${this.logTail()}`);
    }
    return info;
  }

  // Safety net for after(): kill if still running, remove the temp dir. Never throws.
  async cleanup() {
    try {
      if (this.child && !this.exitInfo) {
        this.child.kill('SIGKILL');
        await this.exited;
      }
    } catch { /* ignore */ }
    if (this.tmp) fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}

// Fails the test with a clear message instead of hanging when an SDK call never settles
// (the JS SDK puts no gRPC deadline on its calls).
async function within(ms, promise, what) {
  let timer;
  try {
    return await Promise.race([
      promise,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

// Resolves to the rejection reason of promise (fails if it resolves).
async function rejectionOf(promise, what) {
  try {
    const v = await promise;
    throw Object.assign(new Error(`${what}: expected an error, got success: ${JSON.stringify(v)}`),
      { notRejected: true });
  } catch (e) {
    if (e && e.notRejected) throw e;
    return e;
  }
}

// SIGTERM the server and check: exit status 0 (not a signal) and no sanitizer report on its stderr.
async function assertCleanShutdown(assert, server) {
  const info = await server.stop();
  assert.ok(!server.sanitizerHit,
    `taskhubd stderr contains a sanitizer report:\n${server.logTail(200)}`);
  assert.deepStrictEqual(info, { code: 0, signal: null },
    `taskhubd must exit with status 0 on SIGTERM; got ${JSON.stringify(info)}\n--- server stderr ---\n${server.logTail()}`);
}

// The generated gRPC stub and messages that ship inside the SDK package, for the few fields the SDK's
// OrchestrationState does not expose (version, executionId, scheduledStartTimestamp) and for calls the
// SDK would make without a deadline that the test needs to observe to the end.
function rawStub(address) {
  const grpc = require('@grpc/grpc-js');
  const stubs = require('@microsoft/durabletask-js/dist/proto/orchestrator_service_grpc_pb');
  const pb = require('@microsoft/durabletask-js/dist/proto/orchestrator_service_pb');
  const client = new stubs.TaskHubSidecarServiceClient(address, grpc.credentials.createInsecure());
  const unary = (method, req, options = {}) => new Promise((resolve, reject) => {
    client[method](req, new grpc.Metadata(), options, (err, res) => (err ? reject(err) : resolve(res)));
  });
  const getInstance = async (instanceId, getInputsAndOutputs = false) => {
    const req = new pb.GetInstanceRequest();
    req.setInstanceid(instanceId);
    req.setGetinputsandoutputs(getInputsAndOutputs);
    return unary('getInstance', req);
  };
  return { grpc, pb, client, unary, getInstance, close: () => client.close() };
}

function uniquePrefix(tag) {
  return `js-${tag}-${process.pid}-${Date.now().toString(36)}-`;
}

module.exports = { BIN, SKIP, Taskhubd, within, rejectionOf, uniquePrefix, assertCleanShutdown, rawStub };
