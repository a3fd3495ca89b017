// Proves the harness itself without the sidecar: the e2e provider (discovery, keys, client credentials, scripted
// and browser-driven authorization code + PKCE, refresh rotation, end_session) and chromium via playwright-core.
//
//   node --test selftest.test.js

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';

import { launchBrowser, signInAtProvider } from './lib/browser.js';
import { freePort } from './lib/procs.js';
import {
  AUDIENCE, SPA_DIR, TENANT_ID, startProvider,
} from './lib/stack.js';
import {
  authCodeLogin, clientCredentials, decodeJwt, discover, refresh,
} from './lib/oidc-client.js';

const b64url = (b) => Buffer.from(b).toString('base64url');

describe('e2e provider and browser (no sidecar)', () => {
  let provider;
  let rp; // a stand-in relying party: records what arrives at its callback
  let rpPort;
  const hits = [];

  before(async () => {
    rpPort = await freePort();
    rp = http.createServer((req, res) => {
      hits.push(req.url);
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<h1 id="rp">relying party</h1><pre id="url">${req.url.replace(/</g, '&lt;')}</pre>`);
    });
    await new Promise((r) => { rp.listen(rpPort, '127.0.0.1', r); });
    provider = await startProvider({
      redirectUris: [`http://127.0.0.1:${rpPort}/oauth2/callback`],
      postLogoutRedirectUris: [`http://127.0.0.1:${rpPort}/signed-out`],
      env: { FRONTCHANNEL_LOGOUT_URIS: `http://127.0.0.1:${rpPort}/fc-logout` },
    });
  });

  after(async () => {
    await provider?.stop();
    await new Promise((r) => { rp?.close(r); });
  });

  const redirectUri = () => `http://127.0.0.1:${rpPort}/oauth2/callback`;

  test('discovery looks like Entra v2 (issuer path, endpoints, PKCE S256)', async () => {
    const meta = await discover(provider.issuer);
    assert.equal(meta.issuer, `http://127.0.0.1:${provider.port}/${TENANT_ID}/v2.0`);
    assert.equal(meta.authorization_endpoint, `${provider.origin}/${TENANT_ID}/oauth2/v2.0/authorize`);
    assert.equal(meta.token_endpoint, `${provider.origin}/${TENANT_ID}/oauth2/v2.0/token`);
    assert.equal(meta.end_session_endpoint, `${provider.origin}/${TENANT_ID}/oauth2/v2.0/logout`);
    assert.equal(meta.jwks_uri, `${provider.origin}/${TENANT_ID}/discovery/v2.0/keys`);
    assert.deepEqual(meta.code_challenge_methods_supported, ['S256']);
    const jwks = await (await fetch(meta.jwks_uri)).json();
    assert.equal(jwks.keys.length, 1);
    assert.equal(jwks.keys[0].kty, 'RSA');
    assert.ok(jwks.keys[0].kid);
    assert.equal(jwks.keys[0].d, undefined, 'no private parts in the JWKS');
  });

  test('client credentials: JWT access token with roles, no scp, Entra-style .default scope', async () => {
    const t = await clientCredentials(provider.issuer, { scope: `${AUDIENCE}/.default` });
    const { header, payload } = decodeJwt(t.access_token);
    assert.equal(header.alg, 'RS256');
    assert.equal(payload.aud, AUDIENCE);
    assert.equal(payload.iss, provider.issuer);
    assert.equal(payload.tid, TENANT_ID);
    assert.equal(payload.idtyp, 'app');
    assert.equal(payload.azp, 'postman');
    assert.deepEqual(payload.roles, ['Admin', 'Items.Read.All']);
    assert.equal(payload.scp, undefined);
    await assert.rejects(clientCredentials(provider.issuer, { clientSecret: 'wrong' }), /invalid_client/);
  });

  test('scripted authorization code + PKCE: ID token and access token claims, refresh rotation', async () => {
    const t = await authCodeLogin(provider.issuer, { redirectUri: redirectUri(), username: 'alice' });
    const id = decodeJwt(t.id_token).payload;
    assert.equal(id.aud, 'sidecar');
    assert.equal(id.nonce, t.nonce);
    assert.equal(id.tid, TENANT_ID);
    assert.equal(id.name, 'Alice Admin');
    assert.deepEqual(id.roles, ['Admin', 'Items.Read']);
    assert.equal(id.groups.length, 3);
    const at = decodeJwt(t.access_token).payload;
    assert.equal(at.aud, AUDIENCE);
    assert.equal(at.scp, 'user.read');
    assert.equal(at.oid, id.oid);
    assert.ok(t.refresh_token);
    const r = await refresh(provider.issuer, t.refresh_token);
    assert.notEqual(r.refresh_token, t.refresh_token, 'refresh tokens rotate');
    assert.equal(decodeJwt(r.access_token).payload.scp, 'user.read');
    await assert.rejects(refresh(provider.issuer, t.refresh_token), /invalid_grant/, 'a used refresh token is dead');
    // Entra-style refresh naming the scopes again (offline_access included) works too.
    const t2 = await authCodeLogin(provider.issuer, { redirectUri: redirectUri(), username: 'alice' });
    const r2 = await refresh(provider.issuer, t2.refresh_token, {
      scope: `openid profile email offline_access ${AUDIENCE}/user.read`,
    });
    assert.equal(decodeJwt(r2.access_token).payload.scp, 'user.read');
    assert.equal(decodeJwt(r2.access_token).payload.aud, AUDIENCE);
  });

  test('many-groups and overage users', async () => {
    const carol = await authCodeLogin(provider.issuer, { redirectUri: redirectUri(), username: 'carol' });
    assert.equal(decodeJwt(carol.id_token).payload.groups.length, 200);
    assert.equal(decodeJwt(carol.access_token).payload.groups.length, 200);
    const dave = await authCodeLogin(provider.issuer, { redirectUri: redirectUri(), username: 'dave' });
    const d = decodeJwt(dave.access_token).payload;
    assert.equal(d.groups, undefined);
    assert.deepEqual(d._claim_names, { groups: 'src1' });
    await assert.rejects(
      authCodeLogin(provider.issuer, { redirectUri: redirectUri(), password: 'wrong' }),
      /login refused/,
    );
  });

  test('PKCE is required', async () => {
    const meta = await discover(provider.issuer);
    const u = new URL(meta.authorization_endpoint);
    Object.entries({
      client_id: 'sidecar', response_type: 'code', redirect_uri: redirectUri(), scope: 'openid', state: 's1',
    }).forEach(([k, v]) => u.searchParams.set(k, v));
    const res = await fetch(u, { redirect: 'manual' });
    const loc = new URL(res.headers.get('location'));
    assert.equal(loc.searchParams.get('error'), 'invalid_request');
    assert.match(loc.searchParams.get('error_description'), /PKCE/);
  });

  test('browser: sign in at the provider, land on the callback with a code, then end_session', async () => {
    const meta = await discover(provider.issuer);
    const verifier = b64url(randomBytes(32));
    const state = b64url(randomBytes(12));
    const auth = new URL(meta.authorization_endpoint);
    Object.entries({
      client_id: 'sidecar',
      response_type: 'code',
      redirect_uri: redirectUri(),
      scope: `openid profile email offline_access ${AUDIENCE}/user.read`,
      state,
      nonce: b64url(randomBytes(12)),
      code_challenge: b64url(createHash('sha256').update(verifier).digest()),
      code_challenge_method: 'S256',
    }).forEach(([k, v]) => auth.searchParams.set(k, v));

    const b = await launchBrowser();
    try {
      await b.page.goto(auth.href);
      assert.ok(b.page.url().startsWith(`${provider.origin}/${TENANT_ID}/interaction/`), b.page.url());
      await signInAtProvider(b.page, { username: 'bob', providerOrigin: provider.origin });
      await b.page.waitForSelector('#rp');
      const landed = new URL(b.page.url());
      assert.equal(landed.pathname, '/oauth2/callback');
      assert.equal(landed.searchParams.get('state'), state);
      assert.equal(landed.searchParams.get('iss'), provider.issuer);
      const code = landed.searchParams.get('code');
      assert.ok(code);

      const res = await fetch(meta.token_endpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from('sidecar:sidecar-secret').toString('base64')}`,
        },
        body: new URLSearchParams({
          grant_type: 'authorization_code', code, redirect_uri: redirectUri(), code_verifier: verifier,
        }),
      });
      assert.equal(res.status, 200);
      const tokens = await res.json();
      assert.equal(decodeJwt(tokens.id_token).payload.name, 'Bob User');

      // The provider remembers the browser: a second authorize needs no form.
      await b.page.goto(auth.href.replace(state, 'second'));
      await b.page.waitForSelector('#rp');
      assert.equal(new URL(b.page.url()).searchParams.get('state'), 'second');

      // RP-initiated logout with id_token_hint goes back to the registered post-logout URI without a prompt.
      const logout = new URL(meta.end_session_endpoint);
      logout.searchParams.set('id_token_hint', tokens.id_token);
      logout.searchParams.set('post_logout_redirect_uri', `http://127.0.0.1:${rpPort}/signed-out`);
      logout.searchParams.set('state', 'bye');
      await b.page.goto(logout.href);
      await b.page.waitForURL(/\/signed-out/);
      assert.equal(new URL(b.page.url()).searchParams.get('state'), 'bye');
      assert.equal((await provider.stats()).end_session, 1);
      assert.ok(hits.includes('/fc-logout'), 'front-channel logout URL loaded during sign-out');

      // Signed out at the provider: the next authorize shows the login form again.
      await b.page.goto(auth.href);
      await b.page.waitForSelector('#login-form');
    } finally {
      await b.close();
    }
  });

  test('browser: cancelling at the provider returns error=access_denied to the client', async () => {
    const meta = await discover(provider.issuer);
    const auth = new URL(meta.authorization_endpoint);
    Object.entries({
      client_id: 'sidecar', response_type: 'code', redirect_uri: redirectUri(), scope: 'openid', state: 'cancelled',
      code_challenge: b64url(createHash('sha256').update('v'.repeat(43)).digest()), code_challenge_method: 'S256',
    }).forEach(([k, v]) => auth.searchParams.set(k, v));
    const b = await launchBrowser();
    try {
      await b.page.goto(auth.href);
      await b.page.click('#cancel');
      await b.page.waitForSelector('#rp');
      const landed = new URL(b.page.url());
      assert.equal(landed.searchParams.get('error'), 'access_denied');
      assert.equal(landed.searchParams.get('state'), 'cancelled');
    } finally {
      await b.close();
    }
  });
});

// The example SPA's own logic, against a stand-in for the sidecar's endpoints (the real thing is spa.test.js).
describe('example SPA page logic (stand-in backend, no sidecar)', () => {
  let server;
  let url;
  let signedIn = true;
  const calls = [];

  before(async () => {
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    server = http.createServer((req, res) => {
      calls.push(`${req.method} ${req.url} cookie=${req.headers.cookie || ''}`);
      const json = (status, body) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (req.url === '/oauth2/userinfo') {
        return signedIn
          ? json(200, {
            sub: 'abc', name: 'Alice Admin', email: 'alice@example.com', roles: ['Admin', 'Items.Read'],
            groups: ['g1', 'g2', 'g3'], scopes: ['user.read'], session_expires_at: 1900000000,
          })
          : json(401, { error: 'unauthenticated' });
      }
      if (req.url === '/api/me') return signedIn ? json(200, { user: { name: 'Alice Admin' } }) : json(401, {});
      const file = path.join(SPA_DIR, req.url === '/' ? 'index.html' : path.normalize(req.url));
      if (!file.startsWith(SPA_DIR) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
        res.writeHead(404);
        return res.end();
      }
      const type = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.ico': 'image/x-icon' }[path.extname(file)];
      res.writeHead(200, { 'content-type': type, 'set-cookie': 'oidc_session=s1; Path=/; HttpOnly' });
      return res.end(fs.readFileSync(file));
    });
    await new Promise((r) => { server.listen(port, '127.0.0.1', r); });
  });
  after(async () => { await new Promise((r) => { server?.close(r); }); });

  test('shows the user, calls the API with the cookie, offers logout', async () => {
    signedIn = true;
    const b = await launchBrowser();
    try {
      await b.page.goto(`${url}/`);
      await b.page.waitForSelector('body[data-state="signed-in"]');
      assert.equal(await b.page.textContent('#user-name'), 'Alice Admin');
      assert.equal(await b.page.textContent('#user-email'), 'alice@example.com');
      assert.equal(await b.page.textContent('#user-roles'), 'Admin, Items.Read');
      assert.equal(await b.page.textContent('#user-groups-count'), '3');
      assert.equal(await b.page.textContent('#session-expiry'), new Date(1900000000 * 1000).toISOString());
      await b.page.click('#call-api');
      await b.page.waitForSelector('#api-result[data-status="200"]');
      assert.equal(JSON.parse(await b.page.textContent('#api-result')).user.name, 'Alice Admin');
      assert.ok(calls.some((c) => c.startsWith('GET /api/me cookie=oidc_session=s1')), 'API call carried the cookie');
      assert.equal(await b.page.getAttribute('#logout', 'href'), '/oauth2/logout');
      if (process.env.SPA_SCREENSHOT) await b.page.screenshot({ path: process.env.SPA_SCREENSHOT, fullPage: true });
    } finally {
      await b.close();
    }
  });

  test('signed out: a sign-in link back to the current path; API 401 shown', async () => {
    signedIn = false;
    const b = await launchBrowser();
    try {
      await b.page.goto(`${url}/`);
      await b.page.waitForSelector('body[data-state="signed-out"]');
      assert.equal(await b.page.getAttribute('#login-link', 'href'), '/oauth2/login?rd=%2F');
      await b.page.click('#call-api');
      await b.page.waitForSelector('#api-result[data-status="401"]');
      assert.equal(await b.page.textContent('#api-status'), '401');
    } finally {
      await b.close();
    }
  });
});
