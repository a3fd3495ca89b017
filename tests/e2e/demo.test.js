// Smoke test of the README's demo (`scripts/demo.sh` ends in `node tests/e2e/demo.js`): start demo.js as a user
// would, on free ports (its DEMO_PORT, PROVIDER_PORT, ... variables), read the URL and a test user from what it
// prints, sign in with that user in chromium, see the SPA show the user and "Call API" answer 200 through the API
// sidecar; then stop it like Ctrl-C does (a signal to its process group) and check nothing is left listening.
//
//   node --test demo.test.js

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
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

  test('a signal to its process group stops the demo and every process it started', async () => {
    for (const [k, p] of Object.entries(ports)) assert.ok(await listening(p), `${k} ${p} is listening while it runs`);
    process.kill(-demo.child.pid, 'SIGTERM');
    await demo.exited;
    // The provider, FastAPI and the sidecars run in process groups of their own: demo.js must take them down.
    await waitFor(async () => {
      for (const p of Object.values(ports)) if (await listening(p)) return false;
      return true;
    }, { what: 'every demo port to close', timeoutMs: 30_000, intervalMs: 250 });
  });
});
