// Smoke test of the README's demo (`scripts/demo.sh` ends in `node tests/e2e/demo.js`): start demo.js as a user
// would, on free ports (its DEMO_PORT, PROVIDER_PORT, ... variables), read the URL and a test user from what it
// prints, sign in with that user in chromium, see the SPA show the user and "Call API" answer 200 through the API
// sidecar; then send SIGTERM to demo.js alone (as Ctrl-C's SIGINT, handled the same way) and check that its own
// shutdown stopped every process gracefully (SIGTERM, not SIGKILL) and nothing is left listening.
//
//   node --test demo.test.js

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { launchBrowser, signInAtProvider } from './lib/browser.js';
import { callApiFromSpa, describeWithSidecar } from './lib/flows.js';
import { freePort, waitFor } from './lib/procs.js';
import { E2E_DIR } from './lib/stack.js';

const PORT_VARS = [
  'DEMO_PORT', 'PROVIDER_PORT', 'FASTAPI_PORT', 'API_SIDECAR_PORT', 'UI_SIDECAR_PORT', 'API_ADMIN_PORT', 'UI_ADMIN_PORT',
];

const listening = (port) => new Promise((resolve) => {
  const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
  s.on('error', () => resolve(false));
});

describeWithSidecar('the README demo (demo.js) comes up, signs a user in, and stops cleanly', () => {
  const ports = {};
  let demo; // { child, output(), exited }
  let url;
  let user;
  let password;

  before(async () => {
    for (const v of PORT_VARS) ports[v] = await freePort();
    const env = { ...process.env, SESSION_STORE: '' };
    for (const [k, v] of Object.entries(ports)) env[k] = String(v);
    let out = '';
    const child = spawn(process.execPath, [path.join(E2E_DIR, 'demo.js')], {
      cwd: E2E_DIR, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
    });
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const exited = new Promise((resolve) => { child.on('exit', (code, signal) => resolve(code ?? signal)); });
    demo = { child, output: () => out, exited, exitCode: undefined };
    exited.then((c) => { demo.exitCode = c; });

    try {
      await waitFor(() => {
        if (demo.exitCode !== undefined) throw new Error(`demo.js exited with ${demo.exitCode}`);
        return /Ctrl-C stops everything/.test(out);
      }, { what: 'demo.js to print its banner', timeoutMs: 180_000, intervalMs: 250 });
    } catch (err) {
      err.message += `\n--- demo.js output ---\n${out.slice(-4000)}`;
      throw err;
    }
    const open = /^\s*Open:\s+(\S+)/m.exec(out);
    const signIn = /^\s*Sign in:\s+(\S+) \/ (\S+)/m.exec(out);
    assert.ok(open && signIn, `banner with Open: and Sign in: lines:\n${out}`);
    [, url] = open;
    [, user, password] = signIn;
  });

  after(async () => {
    if (demo && demo.exitCode === undefined) {
      try { process.kill(-demo.child.pid, 'SIGTERM'); } catch { /* gone */ }
      const t = setTimeout(() => { try { process.kill(-demo.child.pid, 'SIGKILL'); } catch { /* gone */ } }, 15_000);
      await demo.exited;
      clearTimeout(t);
    }
  });

  test('it prints the URL on the port it was given, and a test user', () => {
    assert.equal(url, `http://127.0.0.1:${ports.DEMO_PORT}/`);
    assert.equal(user, 'alice');
    assert.ok(password);
    assert.ok(demo.output().includes(`http://127.0.0.1:${ports.PROVIDER_PORT}/`), 'the provider on its given port');
  });

  test('the printed user signs in at the printed URL; the SPA shows them and calls the API', async () => {
    const b = await launchBrowser();
    try {
      await b.page.goto(url);
      const providerOrigin = `http://127.0.0.1:${ports.PROVIDER_PORT}`;
      assert.ok(b.page.url().startsWith(providerOrigin), `sent to the demo's provider, got ${b.page.url()}`);
      await signInAtProvider(b.page, { username: user, password, providerOrigin });
      assert.equal(b.page.url(), url, 'back at the demo URL');
      await b.page.waitForSelector('body[data-state="signed-in"]');
      assert.equal(await b.page.textContent('#user-name'), 'Alice Admin');
      assert.match(await b.page.textContent('#user-roles'), /Admin/);

      // FastAPI verified the API sidecar's assertion for the session the UI sidecar created.
      await callApiFromSpa(b.page, `${url}api/me`);
    } finally {
      await b.close();
    }
  });

  test('SIGTERM to demo.js runs its own graceful shutdown: every process stops on SIGTERM, demo.js exits 0', async () => {
    for (const [k, p] of Object.entries(ports)) assert.ok(await listening(p), `${k} ${p} is listening while it runs`);
    const logDir = /^\s*Logs:\s+(\S+)/m.exec(demo.output())?.[1];
    assert.ok(logDir && fs.existsSync(logDir), `banner names the log directory:\n${demo.output()}`);

    // To demo.js only, not its group: the provider, FastAPI and the sidecars run in process groups of their own,
    // so only demo.js can take them down.
    process.kill(demo.child.pid, 'SIGTERM');
    let timer;
    const code = await Promise.race([
      demo.exited, new Promise((r) => { timer = setTimeout(() => r('still running after 30 s'), 30_000); }),
    ]);
    clearTimeout(timer);
    const out = demo.output();
    // Without its own shutdown, demo.js would die by lib/procs.js's handler, printing nothing: exit 130 after
    // SIGKILLing everything (the old handler), or 143 (today's safety net, for scripts without a handler).
    assert.equal(code, 0, `demo.js exits 0 by itself after its shutdown:\n${out.slice(-3000)}`);
    assert.match(out, /^SIGTERM: stopping the demo/m, 'demo.js ran its shutdown');
    const stopped = /^Demo stopped \((.*)\)\.$/m.exec(out);
    assert.ok(stopped, `demo.js reports how each process exited:\n${out.slice(-3000)}`);
    const exits = Object.fromEntries(stopped[1].split(', ').map((e) => e.split(' exit ')));
    const sidecars = [`sidecar-${ports.API_SIDECAR_PORT}`, `sidecar-${ports.UI_SIDECAR_PORT}`];
    assert.deepEqual(Object.keys(exits).sort(), ['provider', `fastapi-${ports.FASTAPI_PORT}`, ...sidecars].sort());
    for (const [name, how] of Object.entries(exits)) {
      assert.ok(['0', 'SIGTERM'].includes(how), `${name} exited on SIGTERM (0 or SIGTERM), not ${how}: ${stopped[0]}`);
    }
    // The sidecar itself saw SIGTERM, drained and stopped (a SIGKILLed one logs neither line), and exited 0.
    for (const name of sidecars) {
      assert.equal(exits[name], '0', `${name} exit status`);
      const log = fs.readFileSync(path.join(logDir, `${name}.log`), 'utf8');
      assert.match(log, /SIGTERM: draining/, `${name} logged SIGTERM:\n${log.slice(-2000)}`);
      assert.match(log, /oidc-sidecar stopped/, `${name} logged its clean stop:\n${log.slice(-2000)}`);
    }

    await waitFor(async () => {
      for (const p of Object.values(ports)) if (await listening(p)) return false;
      return true;
    }, { what: 'every demo port to close', timeoutMs: 30_000, intervalMs: 250 });
  });
});
