// The example SPA served by the sidecar's static serving, calling the API through the session (issue 4), laid out
// like the ECS deployment: an "ALB" routes /api/* to the API service's sidecar (FastAPI behind it) and everything
// else to the UI service's sidecar (static_root = examples/spa). Both sidecars share session keys and cookie name.
//
//   node --test spa.test.js

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import { launchBrowser } from './lib/browser.js';
import { callApiFromSpa, describeWithSidecar, loginVia, pageFetch, recordRequests } from './lib/flows.js';
import { freePort, tmpDir } from './lib/procs.js';
import {
  API_ROUTES, SPA_DIR, SPA_ROUTES, newSessionKey, sessionCookies, startAlb, startProvider, startSidecar, startUpstream,
  stopStack, writeAssertionKey,
} from './lib/stack.js';

function rawGet(url, headers = {}) {
  return new Promise((resolve, reject) => {
    http.get(url, { headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    }).on('error', reject);
  });
}

describeWithSidecar('example SPA through the sidecar (UI service + API service behind one ALB)', () => {
  const stack = { sidecars: [] };
  let albUrl;
  const jsAsset = fs.readdirSync(path.join(SPA_DIR, 'assets')).find((f) => /^app\.[0-9a-f]+\.js$/.test(f));

  before(async () => {
    stack.logDir = tmpDir('oidc-e2e-logs-');
    const albPort = await freePort();
    albUrl = `http://127.0.0.1:${albPort}`;
    const apiPorts = { port: await freePort(), adminPort: await freePort() };
    const sessionKeys = [newSessionKey()];
    const signingKeyFile = writeAssertionKey(tmpDir('oidc-e2e-keys-'));
    stack.provider = await startProvider({ redirectUris: [`${albUrl}/oauth2/callback`], logDir: stack.logDir });
    stack.upstream = await startUpstream({
      jwksUrl: `http://127.0.0.1:${apiPorts.adminPort}/.well-known/jwks.json`, logDir: stack.logDir,
    });
    const common = {
      issuer: stack.provider.issuer, sessionKeys, signingKeyFile, trustedProxies: ['127.0.0.1/32'], logDir: stack.logDir,
    };
    const api = await startSidecar({
      ...common,
      ...apiPorts,
      hosts: [{
        name: '127.0.0.1', upstream: stack.upstream.url, external_url: albUrl, login: 'deny', routes: API_ROUTES,
      }],
    });
    const ui = await startSidecar({
      ...common,
      hosts: [{ name: '127.0.0.1', static_root: SPA_DIR, external_url: albUrl, routes: SPA_ROUTES }],
    });
    stack.sidecars.push(ui, api);
    stack.alb = await startAlb({ port: albPort, rules: [{ prefix: '/api/', port: api.port }], defaultPort: ui.port });
  });

  after(async () => { await stopStack(stack); });

  test('assets and favicon are public; the app shell needs a login', async () => {
    const js = await rawGet(`${albUrl}/assets/${jsAsset}`);
    assert.equal(js.status, 200);
    assert.match(js.headers['content-type'], /javascript/);
    assert.match(js.headers['cache-control'] || '', /immutable/);
    assert.deepEqual(js.body, fs.readFileSync(path.join(SPA_DIR, 'assets', jsAsset)));
    const gz = await rawGet(`${albUrl}/assets/${jsAsset}`, { 'accept-encoding': 'gzip' });
    assert.equal(gz.headers['content-encoding'], 'gzip', 'precompressed sibling served');
    assert.deepEqual(gz.body, fs.readFileSync(path.join(SPA_DIR, 'assets', `${jsAsset}.gz`)));
    assert.equal((await rawGet(`${albUrl}/favicon.ico`)).status, 200);
    const shell = await fetch(`${albUrl}/`, { headers: { Accept: 'application/json' }, redirect: 'manual' });
    assert.equal(shell.status, 401);
  });

  test('sign in, see the user, call the API with the session, sign out', async () => {
    const b = await launchBrowser();
    try {
      const landed = await loginVia(b.page, `${albUrl}/`, { provider: stack.provider, username: 'alice' });
      assert.equal(landed, `${albUrl}/`);
      await b.page.waitForSelector('body[data-state="signed-in"]');
      assert.equal(await b.page.textContent('#user-name'), 'Alice Admin');
      // email = preferred_username first (the sidecar's identity rule), like Entra's UPN.
      assert.equal(await b.page.textContent('#user-email'), 'alice@contoso.example');
      assert.match(await b.page.textContent('#user-roles'), /Admin/);
      assert.equal(await b.page.textContent('#user-groups-count'), '3');
      assert.notEqual(await b.page.textContent('#session-expiry'), 'unknown');

      await callApiFromSpa(b.page, `${albUrl}/api/me`);

      // SPA fallback: a client-side route with no file and no extension serves the shell.
      await b.page.goto(`${albUrl}/settings/profile`);
      await b.page.waitForSelector('body[data-state="signed-in"]');
      // A missing asset is a 404, not the shell.
      const missing = await pageFetch(b.page, '/assets/app.0000000000.js');
      assert.equal(missing.status, 404);

      const nav = recordRequests(b.page);
      const backAtApp = b.page.waitForRequest((r) => new URL(r.url()).origin === albUrl
        && !new URL(r.url()).pathname.startsWith('/oauth2/logout'), { timeout: 30_000 });
      await b.page.click('#logout');
      await backAtApp; // after the provider's sign-out, the post-logout redirect returns to the app
      nav.stop();
      assert.ok(nav.urls.some((u) => new URL(u).pathname.endsWith('/oauth2/v2.0/logout')), 'went to end_session');
      assert.equal((await sessionCookies(b.context, albUrl)).length, 0);
      const after = await fetch(`${albUrl}/api/me`, { headers: { Accept: 'application/json' } });
      assert.equal(after.status, 401);
    } finally {
      await b.close();
    }
  });

  test('without a session the SPA API call is a 401, not a redirect', async () => {
    const b = await launchBrowser();
    try {
      await b.page.goto(`${albUrl}/favicon.ico`);
      const res = await pageFetch(b.page, '/api/me', { headers: { Accept: 'application/json' } });
      assert.equal(res.status, 401);
      assert.equal(res.redirected, false);
    } finally {
      await b.close();
    }
  });
});
