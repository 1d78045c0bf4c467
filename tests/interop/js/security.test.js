'use strict';
// Interop: the published @microsoft/durabletask-js worker and client against a taskhubd secured with TLS,
// mutual TLS and a bearer token (docs/security.md): the right credentials run an orchestration; a wrong or
// missing token is refused with UNAUTHENTICATED, and a missing or foreign client certificate in the TLS
// handshake. Certificates come from tests/support/make-pki.sh (openssl, a throwaway CA) at run time.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {
  TaskHubGrpcWorker, TaskHubGrpcClient, NoOpLogger, OrchestrationStatus,
} = require('@microsoft/durabletask-js');
const {
  SKIP, Taskhubd, within, rejectionOf, assertCleanShutdown,
} = require('./taskhubd');

const MAKE_PKI = path.resolve(__dirname, '..', '..', 'support', 'make-pki.sh');
const UNAUTHENTICATED = 16;
const UNAVAILABLE = 14;

// docs/security.md's JavaScript block (securedOptions), taken from the page at test time so that the page shows
// what is tested. It loads @grpc/grpc-js through NODE_PATH, as this file does.
function docSnippet(dir) {
  const root = path.resolve(__dirname, '..', '..', '..');
  execFileSync('python3', [path.join(root, 'tests', 'docs', 'extract.py'), path.join(root, 'docs', 'security.md'),
    dir, 'secured-options.js'], { stdio: 'inherit' });
  return require(path.join(dir, 'secured-options.js')).securedOptions;
}

const quiet = (o) => ({ ...o, logger: new NoOpLogger() });

function greeting(ctx, name) { return `Hello, ${name}!`; }
async function* greet(ctx, name) { return yield ctx.callActivity(greeting, name); }

describe('durabletask-js against a secured taskhubd', { skip: SKIP }, () => {
  let dir; let pki; let server; let worker; let securedOptions; const token = `js-${crypto.randomBytes(16).toString('hex')}`;
  // The certificate names localhost (and 127.0.0.1, which TLS cannot carry as a server name).
  const host = () => `localhost:${server.port}`;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'taskhubd-js-sec-'));
    execFileSync('bash', [MAKE_PKI, path.join(dir, 'pki')], { stdio: 'inherit' });
    const f = (n) => path.join(dir, 'pki', n);
    pki = Object.fromEntries(['ca.pem', 'client.pem', 'client.key', 'other-client.pem', 'other-client.key',
      'other-ca.pem'].map((n) => [n, f(n)]));
    const fromPage = docSnippet(dir);
    securedOptions = (address, { ca, cert, key, token: t }) => fromPage(address,
      { caFile: ca, certFile: cert, keyFile: key, token: t });
    fs.writeFileSync(path.join(dir, 'tokens'), `# tokens\n${token}\n`);
    server = await Taskhubd.start(['--tls-cert', f('server.pem'), '--tls-key', f('server.key'),
      '--tls-client-ca', f('ca.pem'), '--auth-token-file', path.join(dir, 'tokens')]);
    worker = new TaskHubGrpcWorker({
      ...securedOptions(host(),
        { ca: pki['ca.pem'], cert: pki['client.pem'], key: pki['client.key'], token }),
      logger: new NoOpLogger(),
      shutdownTimeoutMs: 5000,
    });
    worker.addActivity(greeting);
    worker.addOrchestrator(greet);
    await within(15000, worker.start(), 'worker.start()');
  });

  after(async () => {
    if (worker) await within(20000, worker.stop(), 'worker.stop()').catch(() => {});
    if (server) {
      await assertCleanShutdown(assert, server);
      await server.cleanup();
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('runs an orchestration with TLS, a client certificate and the token', async () => {
    const client = new TaskHubGrpcClient(quiet(securedOptions(host(),
      { ca: pki['ca.pem'], cert: pki['client.pem'], key: pki['client.key'], token })));
    try {
      const id = await within(15000, client.scheduleNewOrchestration(greet, 'JS'), 'schedule');
      const st = await within(30000, client.waitForOrchestrationCompletion(id, true, 30), 'wait');
      assert.equal(st.runtimeStatus, OrchestrationStatus.COMPLETED, JSON.stringify(st));
      assert.equal(st.serializedOutput, '"Hello, JS!"');
    } finally {
      await client.stop();
    }
  });

  it('refuses a wrong or missing token with UNAUTHENTICATED, saying the same for both', async () => {
    for (const bad of [`${token}x`, 'Bearer', undefined]) {
      const client = new TaskHubGrpcClient(quiet(securedOptions(host(),
        { ca: pki['ca.pem'], cert: pki['client.pem'], key: pki['client.key'], token: bad })));
      try {
        const e = await within(15000, rejectionOf(client.getOrchestrationState('x'), 'getOrchestrationState'),
          'refused call');
        assert.equal(e.code, UNAUTHENTICATED, `${bad}: ${e}`);
        assert.match(e.details, /missing or invalid bearer token/);
      } finally {
        await client.stop();
      }
    }
  });

  it('refuses clients without a certificate of the trusted CA in the TLS handshake', async () => {
    const cases = {
      'no client certificate': { ca: pki['ca.pem'], token },
      'certificate of another CA': {
        ca: pki['ca.pem'], cert: pki['other-client.pem'], key: pki['other-client.key'], token,
      },
      'server CA not trusted': { ca: pki['other-ca.pem'], cert: pki['client.pem'], key: pki['client.key'], token },
    };
    for (const [what, creds] of Object.entries(cases)) {
      const client = new TaskHubGrpcClient(quiet(securedOptions(host(), creds)));
      try {
        const e = await within(20000, rejectionOf(client.getOrchestrationState('x'), 'getOrchestrationState'),
          what);
        assert.equal(e.code, UNAVAILABLE, `${what}: ${e}`);
      } finally {
        await client.stop();
      }
    }
  });
});
