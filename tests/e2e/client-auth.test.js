// How the sidecar authenticates itself at the token endpoint, against the real provider: a browser sign-in with
// `client_auth = "private_key_jwt"` (client `sidecar-pkjwt`, the provider holding the sidecar's public key as JWKS)
// and with `client_auth = "client_secret_post"` (client `sidecar-post`), each ending with a 200 from the app with
// identity headers. The provider records how every token request authenticated (`/_test/stats` `token_requests`) and,
// with STRICT_CLIENT_AUTH=1, refuses any other method than the registered one (oidc-provider alone, like Entra, takes
// client_secret_basic and client_secret_post interchangeably). Two controls (a key the provider does not know; the
// right secret sent as Basic to the post client) prove the sign-ins depend on the method and the key.
//
//   node --test client-auth.test.js

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { launchBrowser } from './lib/browser.js';
import {
  authHeaders, describeWithSidecar, loginVia, pageFetch, pageJson, recordRequests,
} from './lib/flows.js';
import { freePort, tmpDir } from './lib/procs.js';
import {
  TENANT_ID, newSessionKey, sessionCookies, stackLogs, startProvider, startSidecar, startUpstream, stopStack,
  writeAssertionKey, writeClientAuthKey,
} from './lib/stack.js';

describeWithSidecar('client authentication at the token endpoint (real provider)', () => {
  const stack = { sidecars: [] };
  let pkjwt; // sidecar using client sidecar-pkjwt
  let post; // sidecar using client sidecar-post
  let clientKey; // the key registered at the provider for sidecar-pkjwt
  let strangerKey; // a key the provider has never seen

  before(async () => {
    stack.logDir = tmpDir('oidc-e2e-logs-');
    const keyDir = tmpDir('oidc-e2e-keys-');
    clientKey = writeClientAuthKey(keyDir, { kid: 'sidecar-pkjwt' });
    strangerKey = writeClientAuthKey(keyDir, { kid: 'stranger' });
    const ports = {
      pkjwt: { port: await freePort(), adminPort: await freePort() },
      post: { port: await freePort(), adminPort: await freePort() },
    };
    const redirectUris = Object.values(ports).map(({ port }) => `http://127.0.0.1:${port}/oauth2/callback`);
    // The provider reads the sidecar's public key from this file and registers client sidecar-pkjwt with it.
    stack.provider = await startProvider({
      redirectUris, env: { SIDECAR_JWKS_FILE: clientKey.jwksFile, STRICT_CLIENT_AUTH: '1' }, logDir: stack.logDir,
    });
    // Both sidecars sign assertions with one key, so the app trusts either through the first one's JWKS.
    const signingKeyFile = writeAssertionKey(keyDir);
    stack.upstream = await startUpstream({
      jwksUrl: `http://127.0.0.1:${ports.pkjwt.adminPort}/.well-known/jwks.json`, logDir: stack.logDir,
    });
    const sidecar = (p, options) => startSidecar({
      ...p,
      ...options,
      issuer: stack.provider.issuer,
      signingKeyFile,
      sessionKeys: [newSessionKey()],
      logDir: stack.logDir,
      hosts: [{ name: '127.0.0.1', upstream: stack.upstream.url, external_url: `http://127.0.0.1:${p.port}` }],
    });
    pkjwt = await sidecar(ports.pkjwt, {
      clientId: 'sidecar-pkjwt', clientAuth: 'private_key_jwt', clientSecret: null, privateKeyFile: clientKey.keyFile,
      privateKeyId: 'sidecar-pkjwt', // the kid the key is registered under (private_key_id)
    });
    stack.sidecars.push(pkjwt);
    post = await sidecar(ports.post, { clientId: 'sidecar-post', clientAuth: 'client_secret_post' });
    stack.sidecars.push(post);
  });

  after(async () => {
    if (process.env.E2E_LOGS) console.log(stackLogs(stack));
    await stopStack(stack);
  });

  /** Signs alice in through `sc` from a deep link; returns the echo the app answered and the authorize request. */
  async function signIn(sc, path) {
    const b = await launchBrowser();
    try {
      const nav = recordRequests(b.page);
      const landed = await loginVia(b.page, `${sc.url}${path}`, { provider: stack.provider, username: 'alice' });
      nav.stop();
      assert.equal(landed, `${sc.url}${path}`, 'back on the deep link after the sign-in');
      const echo = await pageJson(b.page);
      const me = await pageFetch(b.page, '/api/me', { headers: { Accept: 'application/json' } });
      const authorize = nav.urls.map((u) => new URL(u)).find((u) => u.pathname.endsWith('/oauth2/v2.0/authorize'));
      return { echo, me, authorize };
    } finally {
      await b.close();
    }
  }

  function assertSignedInAsAlice({ echo, me }) {
    const h = authHeaders(echo);
    assert.equal(h['x-auth-method'], 'session');
    assert.equal(h['x-auth-name'], 'Alice Admin');
    assert.equal(h['x-auth-tenant'], TENANT_ID);
    assert.ok(h['x-auth-assertion'], 'signed assertion forwarded');
    assert.equal(echo.auth_error, null, 'the app verified the assertion');
    assert.equal(echo.user.name, 'Alice Admin');
    assert.deepEqual(echo.user.roles, ['Admin', 'Items.Read']);
    assert.equal(me.status, 200, me.text);
    assert.equal(me.json.user.name, 'Alice Admin');
  }

  /** How many token requests the provider saw per "<client> <method>" since `before`. */
  function delta(beforeStats, afterStats, key) {
    return (afterStats.token_requests[key] || 0) - (beforeStats.token_requests[key] || 0);
  }

  test('private_key_jwt: sign-in with a client assertion signed by the registered key, 200 from the app', async () => {
    const before = await stack.provider.stats();
    const r = await signIn(pkjwt, '/echo/pkjwt?via=assertion');
    assert.equal(r.authorize?.searchParams.get('client_id'), 'sidecar-pkjwt');
    assertSignedInAsAlice(r);
    assert.equal(r.echo.path, '/echo/pkjwt');
    const after = await stack.provider.stats();
    assert.equal(delta(before, after, 'sidecar-pkjwt private_key_jwt'), 1, JSON.stringify(after.token_requests));
    for (const k of Object.keys(after.token_requests)) {
      if (k.startsWith('sidecar-pkjwt ') && k !== 'sidecar-pkjwt private_key_jwt') {
        assert.equal(delta(before, after, k), 0, `no token request from sidecar-pkjwt authenticated as ${k}`);
      }
    }
    const codes = (c) => c.grants_by_client['sidecar-pkjwt']?.authorization_code || 0;
    assert.equal(codes(after) - codes(before), 1, 'the provider issued the tokens to sidecar-pkjwt');
    const kids = (c) => c.assertion_kids['sidecar-pkjwt'] || 0;
    assert.equal(kids(after) - kids(before), 1, `the assertion named its key: ${JSON.stringify(after.assertion_kids)}`);
  });

  test('client_secret_post: sign-in with the secret in the form body, 200 from the app', async () => {
    const before = await stack.provider.stats();
    const r = await signIn(post, '/echo/post?via=form');
    assert.equal(r.authorize?.searchParams.get('client_id'), 'sidecar-post');
    assertSignedInAsAlice(r);
    assert.equal(r.echo.path, '/echo/post');
    const after = await stack.provider.stats();
    assert.equal(delta(before, after, 'sidecar-post client_secret_post'), 1, JSON.stringify(after.token_requests));
    assert.equal(delta(before, after, 'sidecar-post client_secret_basic'), 0, 'the secret never went in a Basic header');
    const codes = (c) => c.grants_by_client['sidecar-post']?.authorization_code || 0;
    assert.equal(codes(after) - codes(before), 1, 'the provider issued the tokens to sidecar-post');
  });

  /** A sign-in whose code exchange the provider refuses: the callback page, and no session afterwards. */
  async function refusedSignIn(sc, path) {
    const b = await launchBrowser();
    try {
      await b.page.goto(`${sc.url}${path}`);
      assert.ok(b.page.url().startsWith(stack.provider.origin), `sent to the provider, got ${b.page.url()}`);
      await b.page.waitForSelector('#login-form');
      await b.page.fill('#username', 'alice');
      await b.page.fill('#password', 'password');
      const [res] = await Promise.all([
        b.page.waitForResponse((x) => x.url().startsWith(`${sc.url}/oauth2/callback`), { timeout: 30_000 }),
        b.page.click('#submit'),
      ]);
      await b.page.waitForLoadState('load');
      const page = {
        status: res.status(),
        type: res.headers()['content-type'] || '',
        text: await b.page.evaluate(() => document.body.innerText),
        links: await b.page.$$eval('a[href]', (as) => as.map((a) => a.href)),
        url: b.page.url(),
      };
      const cookies = await sessionCookies(b.context, sc.url);
      const me = await pageFetch(b.page, '/api/me', { headers: { Accept: 'application/json' } });
      return { page, cookies, me };
    } finally {
      await b.close();
    }
  }

  function assertRefusedPage(r, sc, path, error) {
    assert.equal(r.page.status, 400, `callback answered ${r.page.status}: ${r.page.text}`);
    assert.match(r.page.type, /text\/html/);
    assert.ok(new URL(r.page.url).pathname === '/oauth2/callback', `stays on the callback page (${r.page.url})`);
    assert.ok(r.page.text.includes(error), `the page names the provider's error ${error}: ${r.page.text}`);
    const retry = `${sc.url}/oauth2/login?rd=${encodeURIComponent(path)}`;
    assert.ok(r.page.links.includes(retry), `a retry link ${retry} (links: ${r.page.links.join(', ')})`);
    assert.equal(r.cookies.length, 0, 'no session cookie');
    assert.equal(r.me.status, 401, 'no session');
  }

  test('control: private_key_jwt with a key the provider does not know is refused (invalid_client)', async () => {
    await pkjwt.restart({ privateKeyFile: strangerKey.keyFile });
    const before = await stack.provider.stats();
    const r = await refusedSignIn(pkjwt, '/echo/stranger');
    assertRefusedPage(r, pkjwt, '/echo/stranger', 'invalid_client');
    const after = await stack.provider.stats();
    assert.equal(delta(before, after, 'sidecar-pkjwt private_key_jwt'), 1, 'the assertion was sent, and refused');
    const codes = (c) => c.grants_by_client['sidecar-pkjwt']?.authorization_code || 0;
    assert.equal(codes(after), codes(before), 'no tokens issued');
  });

  test('control: the right secret sent as client_secret_basic to a client_secret_post client is refused', async () => {
    await post.restart({ clientAuth: 'client_secret_basic' });
    const before = await stack.provider.stats();
    const r = await refusedSignIn(post, '/echo/basic');
    assertRefusedPage(r, post, '/echo/basic', 'invalid_client');
    const after = await stack.provider.stats();
    assert.equal(delta(before, after, 'sidecar-post client_secret_basic'), 1, 'the secret went in a Basic header');
    const codes = (c) => c.grants_by_client['sidecar-post']?.authorization_code || 0;
    assert.equal(codes(after), codes(before), 'no tokens issued');
  });
});
