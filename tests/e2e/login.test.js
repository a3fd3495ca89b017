// Browser sign-in through the sidecar (issue 3): deep links, cookie flags, SPA fetches with the session, 401 for
// unauthenticated API calls, logout via end_session, open-redirect refusal, tampered cookies, provider errors,
// CSRF, and "same identity for session and Bearer".
//
//   node --test login.test.js

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { launchBrowser } from './lib/browser.js';
import {
  authHeaders, cookieHeader, describeWithSidecar, loginVia, pageFetch, pageJson, recordRequests,
} from './lib/flows.js';
import { authCodeLogin } from './lib/oidc-client.js';
import { freePort } from './lib/procs.js';
import {
  DEFAULT_COOKIE_NAME, TENANT_ID, sessionCookieNames, sessionCookies, stackLogs, startStack,
} from './lib/stack.js';

describeWithSidecar('browser sign-in through the sidecar (cookie store)', () => {
  let stack;
  let sc; // the sidecar
  let b; // a browser signed in as alice by the first test

  before(async () => {
    stack = await startStack({ store: 'cookie' });
    sc = stack.sidecar;
    b = await launchBrowser();
  });

  after(async (t) => {
    await b?.close();
    if (process.env.E2E_LOGS) console.log(stackLogs(stack));
    await stack?.stop();
  });

  test('login from a deep link lands back on it, with identity headers at the upstream', async () => {
    const deep = `${sc.url}/echo/deep/link?x=1&y=two`;
    const landed = await loginVia(b.page, deep, { provider: stack.provider, username: 'alice' });
    assert.equal(landed, deep);
    const echo = await pageJson(b.page);
    assert.equal(echo.path, '/echo/deep/link');
    assert.equal(echo.query, 'x=1&y=two');
    const h = authHeaders(echo);
    assert.equal(h['x-auth-method'], 'session');
    assert.ok(h['x-auth-assertion'], 'signed assertion forwarded');
    // The upstream verified the assertion against the sidecar's JWKS (ES256, iss, aud = this host, exp).
    assert.equal(echo.auth_error, null);
    assert.equal(echo.user.name, 'Alice Admin');
    assert.equal(echo.user.tid, TENANT_ID);
    assert.equal(echo.user.auth_method, 'session');
    assert.deepEqual(echo.user.roles, ['Admin', 'Items.Read']);
    assert.equal(echo.user.groups.length, 3);
    assert.ok(echo.user.scopes.includes('user.read'), 'scp of the session access token reaches the app');
  });

  test('session cookie flags: HttpOnly, SameSite=Lax, Path=/, host-only; not Secure on plain http', async () => {
    const cookies = await sessionCookies(b.context, sc.url);
    assert.ok(cookies.length >= 1, `a session cookie named ${sessionCookieNames().join(' or ')}`);
    for (const c of cookies) {
      assert.equal(c.httpOnly, true, `${c.name} HttpOnly`);
      assert.equal(c.sameSite, 'Lax', `${c.name} SameSite`);
      assert.equal(c.path, '/', `${c.name} Path`);
      assert.equal(c.domain, '127.0.0.1', `${c.name} host-only (no Domain attribute)`);
      assert.equal(c.secure, false, `${c.name}: Secure is only set for https external URLs`);
      assert.ok(c.name.length + c.value.length <= 4096, `${c.name} fits one cookie`);
    }
    // No token is readable from JavaScript.
    const visible = await b.page.evaluate(() => document.cookie);
    for (const name of sessionCookieNames(DEFAULT_COOKIE_NAME)) assert.ok(!visible.includes(`${name}=`));
  });

  test('SPA fetch with the session: 200 and the same identity at the upstream', async () => {
    const me = await pageFetch(b.page, '/api/me', { headers: { Accept: 'application/json' } });
    assert.equal(me.status, 200, me.text);
    assert.equal(me.json.user.name, 'Alice Admin');
    assert.equal(me.json.user.auth_method, 'session');
    const echo = await pageFetch(b.page, '/echo/xhr', { headers: { 'X-Requested-With': 'XMLHttpRequest' } });
    assert.equal(echo.status, 200);
    assert.equal(authHeaders(echo.json)['x-auth-method'], 'session');
    const items = await pageFetch(b.page, '/api/items');
    assert.equal(items.status, 200, 'scope user.read from the session access token satisfies the route');
    const admin = await pageFetch(b.page, '/admin/panel');
    assert.equal(admin.status, 200, 'alice has app role Admin');
  });

  test('userinfo returns the user for the SPA, and no tokens', async () => {
    const info = await pageFetch(b.page, '/oauth2/userinfo', { headers: { Accept: 'application/json' } });
    assert.equal(info.status, 200, info.text);
    assert.equal(info.json.name, 'Alice Admin');
    // The sidecar's documented rule (proxy/src/identity/mod.rs): email = preferred_username, else email, else upn.
    assert.equal(info.json.email, 'alice@contoso.example');
    assert.deepEqual(info.json.roles, ['Admin', 'Items.Read']);
    assert.ok(!/eyJ[\w-]+\.eyJ/.test(info.text), 'no JWT in userinfo');
    assert.ok(!/refresh_token/i.test(info.text));
  });

  test('a Bearer token for the same user reaches the app as the same identity', async () => {
    const tokens = await authCodeLogin(stack.provider.issuer, {
      redirectUri: `${sc.url}/oauth2/callback`, username: 'alice',
    });
    const res = await fetch(`${sc.url}/echo/bearer`, {
      headers: { Authorization: `Bearer ${tokens.access_token}`, Accept: 'application/json' },
    });
    assert.equal(res.status, 200);
    const echo = await res.json();
    const session = await pageFetch(b.page, '/echo/session');
    assert.equal(authHeaders(echo)['x-auth-method'], 'bearer');
    assert.equal(echo.user.oid, session.json.user.oid);
    assert.equal(echo.user.sub, session.json.user.sub);
    assert.deepEqual(echo.user.roles, session.json.user.roles);
    assert.deepEqual(echo.user.scopes, session.json.user.scopes);
  });

  test('unauthenticated: API calls get 401 JSON with WWW-Authenticate, navigations go to the provider', async () => {
    const anon = await launchBrowser();
    try {
      await anon.page.goto(`${sc.url}/health`);
      const api = await pageFetch(anon.page, '/api/me', { headers: { Accept: 'application/json' } });
      assert.equal(api.status, 401);
      assert.equal(api.redirected, false, 'never a redirect to the provider for fetch()');
      assert.ok(api.headers['www-authenticate'], 'WWW-Authenticate present');
      assert.match(api.headers['content-type'] || '', /json/);
      const plain = await pageFetch(anon.page, '/echo/anything'); // fetch() default Accept */*
      assert.equal(plain.status, 401);
      const post = await pageFetch(anon.page, '/api/items', { method: 'POST', body: '{}' });
      assert.equal(post.status, 401);

      const nav = recordRequests(anon.page);
      await anon.page.goto(`${sc.url}/echo/page`);
      nav.stop();
      assert.ok(anon.page.url().startsWith(stack.provider.origin), anon.page.url());
      const authorize = nav.urls.map((u) => new URL(u)).find((u) => u.pathname.endsWith('/oauth2/v2.0/authorize'));
      assert.ok(authorize, 'went through the authorize endpoint');
      assert.equal(authorize.searchParams.get('client_id'), 'sidecar');
      assert.equal(authorize.searchParams.get('response_type'), 'code');
      assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
      assert.ok(authorize.searchParams.get('state'));
      assert.ok(authorize.searchParams.get('nonce'));
      assert.equal(authorize.searchParams.get('redirect_uri'), `${sc.url}/oauth2/callback`);
    } finally {
      await anon.close();
    }
    const res = await fetch(`${sc.url}/api/me`, { headers: { Accept: 'application/json' }, redirect: 'manual' });
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('location'), null);
  });

  test('open-redirect attempts are refused: the login always lands on the sidecar origin', async () => {
    const evil = [
      '//evil.example/x', 'https://evil.example/', '/\\evil.example', '\\\\evil.example', '%2F%2Fevil.example',
      '/%2F/evil.example', '/%5Cevil.example', 'javascript:alert(1)', 'http:evil.example', '/\t/evil.example',
    ];
    const seen = recordRequests(b.page);
    try {
      for (const rd of evil) {
        const res = await b.page.goto(`${sc.url}/oauth2/login?rd=${encodeURIComponent(rd)}`);
        const final = new URL(b.page.url());
        assert.ok(
          final.origin === sc.url || final.origin === stack.provider.origin,
          `rd=${rd} ended at ${final.href}`,
        );
        assert.ok(!res || res.status() < 500, `rd=${rd}: no 5xx`);
      }
    } finally {
      seen.stop();
    }
    assert.ok(!seen.urls.some((u) => /evil\.example/.test(new URL(u).host)), 'no request to evil.example');
    // A proper relative target is honoured.
    await b.page.goto(`${sc.url}/oauth2/login?rd=${encodeURIComponent('/echo/ok?z=1')}`);
    assert.equal(b.page.url(), `${sc.url}/echo/ok?z=1`);
  });

  test('CSRF: a cross-origin POST carrying the session is refused; same-origin is allowed', async () => {
    const before = (await pageFetch(b.page, '/api/items')).json.items.length;
    const ok = await pageFetch(b.page, '/api/items', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'same-origin' }),
    });
    assert.equal(ok.status, 201, ok.text);

    // Same site (127.0.0.1), other origin (port): SameSite=Lax still sends the cookie, so the Origin check matters.
    const port = await freePort();
    const attacker = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<form id="f" method="post" action="${sc.url}/api/items" enctype="text/plain">
        <input name='{"name":"csrf","x":"' value='"}'></form><script>document.getElementById('f').submit()</script>`);
    });
    await new Promise((r) => { attacker.listen(port, '127.0.0.1', r); });
    try {
      const [res] = await Promise.all([
        b.page.waitForResponse((r) => r.url().startsWith(`${sc.url}/api/items`)),
        b.page.goto(`http://127.0.0.1:${port}/`),
      ]);
      assert.equal(res.status(), 403, 'cross-origin form POST refused');
    } finally {
      attacker.closeAllConnections(); // the browser keeps its connection alive; do not wait for it
      await new Promise((r) => { attacker.close(r); });
    }

    const cookie = await cookieHeader(b.context, sc.url);
    const forged = await fetch(`${sc.url}/api/items`, {
      method: 'POST',
      headers: { cookie, origin: 'http://evil.example', 'content-type': 'application/json' },
      body: '{"name":"forged"}',
    });
    assert.equal(forged.status, 403);
    const noOrigin = await fetch(`${sc.url}/api/items`, {
      method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: '{"name":"no-origin"}',
    });
    assert.ok(noOrigin.status >= 400 && noOrigin.status < 500, `no Origin/Sec-Fetch-Site: refused (${noOrigin.status})`);

    const after = (await pageFetch(b.page, '/api/items')).json.items;
    assert.equal(after.length, before + 1, 'only the same-origin POST reached the app');
    assert.ok(!after.some((i) => ['csrf', 'forged', 'no-origin'].includes(i.name)));
  });

  test('a tampered session cookie counts as no session: cleared, 401 for the API, login again', async () => {
    const tb = await launchBrowser();
    try {
      await loginVia(tb.page, `${sc.url}/echo/t`, { provider: stack.provider, username: 'bob' });
      const cookies = await sessionCookies(tb.context, sc.url);
      assert.ok(cookies.length >= 1);
      const [c] = cookies;
      const mid = Math.floor(c.value.length / 2);
      const flipped = c.value.slice(0, mid) + (c.value[mid] === 'A' ? 'B' : 'A') + c.value.slice(mid + 1);
      // Replace the jar's cookie by the tampered one. Re-adding `{ ...c, value }` was occasionally dropped by
      // Chromium (the jar came back empty, so nothing was sent): clear, then add by URL, and send it explicitly.
      await tb.context.clearCookies({ name: c.name });
      await tb.context.addCookies([{ name: c.name, value: flipped, url: sc.url }]);
      const cookie = `${c.name}=${flipped}`;
      const res = await fetch(`${sc.url}/api/me`, { headers: { cookie, Accept: 'application/json' }, redirect: 'manual' });
      assert.equal(res.status, 401);
      const cleared = res.headers.getSetCookie().filter((s) => sessionCookieNames().some((n) => s.startsWith(n)));
      assert.ok(
        cleared.some((s) => /max-age=0|expires=thu, 01 jan 1970/i.test(s)),
        `the bad cookie is cleared (Set-Cookie: ${cleared.join(' | ')})`,
      );

      const api = await pageFetch(tb.page, '/api/me');
      assert.equal(api.status, 401);
      const nav = recordRequests(tb.page);
      await tb.page.goto(`${sc.url}/echo/again`);
      nav.stop();
      assert.ok(nav.urls.some((u) => u.startsWith(stack.provider.origin)), 'navigation went to the provider again');
      // The provider still knows bob, so the browser comes straight back with a fresh session.
      await tb.page.waitForURL(`${sc.url}/echo/again`);
      assert.equal((await pageJson(tb.page)).user.name, 'Bob User');
    } finally {
      await tb.close();
    }
  });

  test('provider errors give an HTML page with a retry link, never a 500', async () => {
    const eb = await launchBrowser();
    try {
      await eb.page.goto(`${sc.url}/echo/denied`);
      assert.ok(eb.page.url().startsWith(stack.provider.origin));
      const [res] = await Promise.all([
        eb.page.waitForResponse((r) => r.url().startsWith(`${sc.url}/oauth2/callback`)),
        eb.page.click('#cancel'),
      ]);
      assert.ok(res.status() >= 400 && res.status() < 500, `access_denied answered ${res.status()}`);
      assert.match(res.headers()['content-type'] || '', /text\/html/);
      const links = await eb.page.$$eval('a[href]', (as) => as.map((a) => a.href));
      assert.ok(links.some((h) => h.startsWith(sc.url)), `a retry link back to the app (links: ${links.join(', ')})`);

      for (const q of ['code=bogus&state=bogus', 'error=consent_required&state=x', '']) {
        const r = await eb.page.goto(`${sc.url}/oauth2/callback?${q}`);
        assert.ok(r.status() >= 400 && r.status() < 500, `callback?${q} answered ${r.status()}`);
      }
    } finally {
      await eb.close();
    }
  });

  test('front-channel logout: signing out at the provider ends the sidecar session', async () => {
    const fb = await launchBrowser();
    try {
      await loginVia(fb.page, `${sc.url}/echo/fc`, { provider: stack.provider, username: 'bob' });
      assert.equal((await pageFetch(fb.page, '/api/me')).status, 200);
      // Another app (or the user at the provider) signs out: the provider's logout page loads our
      // front-channel logout URL in an iframe.
      const [fc] = await Promise.all([
        fb.page.waitForResponse((r) => r.url().startsWith(`${sc.url}/oauth2/frontchannel-logout`)),
        fb.page.goto(`${stack.provider.origin}/${TENANT_ID}/oauth2/v2.0/logout`),
      ]);
      assert.equal(fc.status(), 200);
      await fb.page.waitForSelector('#signed-out');
      await fb.page.goto(`${sc.url}/health`);
      assert.equal((await pageFetch(fb.page, '/api/me')).status, 401);
    } finally {
      await fb.close();
    }
  });

  test('logout: session cleared, provider end_session with id_token_hint, then 401', async () => {
    const before = (await stack.provider.stats()).end_session;
    const nav = recordRequests(b.page);
    // The provider's sign-out page submits itself, then sends the browser back to the app.
    const backAtApp = b.page.waitForRequest((r) => new URL(r.url()).origin === sc.url
      && !new URL(r.url()).pathname.startsWith('/oauth2/logout'), { timeout: 30_000 });
    await b.page.goto(`${sc.url}/oauth2/logout`);
    await backAtApp;
    nav.stop();
    const endSession = nav.urls.map((u) => new URL(u)).find((u) => u.pathname.endsWith('/oauth2/v2.0/logout'));
    assert.ok(endSession, `went to end_session (requests: ${nav.urls.join(' ')})`);
    assert.ok(endSession.searchParams.get('id_token_hint') || endSession.searchParams.get('client_id'));
    const back = endSession.searchParams.get('post_logout_redirect_uri');
    assert.ok(back && new URL(back).origin === sc.url, `post_logout_redirect_uri on the app: ${back}`);
    // The provider accepted the logout (registered post_logout_redirect_uri, valid hint).
    const stats = await stack.provider.stats();
    assert.equal(stats.end_session, before + 1);

    assert.equal((await sessionCookies(b.context, sc.url)).length, 0, 'session cookie gone');
    await b.page.goto(`${sc.url}/health`);
    const api = await pageFetch(b.page, '/api/me');
    assert.equal(api.status, 401);
  });
});
