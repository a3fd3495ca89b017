// Browser sign-in through the sidecar (issue 3): deep links, cookie flags, SPA fetches with the session, 401 for
// unauthenticated API calls, logout via end_session, open-redirect refusal, tampered cookies, provider errors,
// CSRF, and "same identity for session and Bearer".
//
//   node --test login.test.js

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { launchBrowser, signInAtProvider } from './lib/browser.js';
import {
  authHeaders, cookieHeader, describeWithSidecar, loginVia, pageFetch, pageJson, recordRequests,
} from './lib/flows.js';
import { authCodeLogin, decodeJwt } from './lib/oidc-client.js';
import { freePort } from './lib/procs.js';
import {
  DEFAULT_COOKIE_NAME, TENANT_ID, sessionCookieNames, sessionCookies, stackLogs, startStack,
} from './lib/stack.js';

/** What the browser shows for an error answer: status, content type, heading, text and the absolute link targets. */
async function errorPage(page, res) {
  assert.ok(res, 'a response');
  return {
    status: res.status(),
    type: res.headers()['content-type'] || '',
    title: (await page.$eval('h1', (h) => h.textContent.trim()).catch(() => '')),
    text: await page.evaluate(() => document.body.innerText),
    links: await page.$$eval('a[href]', (as) => as.map((a) => a.href)),
  };
}

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
    // forward_access_token is off by default: the session's token never reaches the app (forward-token.test.js).
    assert.equal(echo.headers.authorization, undefined, 'no Authorization header upstream');
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

  test('open-redirect attempts are refused: the login always lands on the sidecar origin at /', async () => {
    const evil = [
      '//evil.example/x', 'https://evil.example/', '/\\evil.example', '\\\\evil.example', '%2F%2Fevil.example',
      '/%2F/evil.example', '/%5Cevil.example', 'javascript:alert(1)', 'http:evil.example', '/\t/evil.example',
    ];
    const seen = recordRequests(b.page);
    try {
      for (const rd of evil) {
        const res = await b.page.goto(`${sc.url}/oauth2/login?rd=${encodeURIComponent(rd)}`);
        // alice is signed in at the provider, so the login completes at once and lands on the sanitized target:
        // the app's root on the sidecar's own origin, whatever the rd was.
        const final = new URL(b.page.url());
        assert.equal(final.origin, sc.url, `rd=${rd} ended at ${final.href}`);
        assert.equal(final.pathname, '/', `rd=${rd} ended at ${final.href}`);
        assert.equal(final.search, '', `rd=${rd} ended at ${final.href}`);
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
      await eb.page.goto(`${sc.url}/echo/denied?from=cancel`);
      assert.ok(eb.page.url().startsWith(stack.provider.origin));
      const [res] = await Promise.all([
        eb.page.waitForResponse((r) => r.url().startsWith(`${sc.url}/oauth2/callback`)),
        eb.page.click('#cancel'),
      ]);
      await eb.page.waitForLoadState('load');
      const denied = await errorPage(eb.page, res);
      assert.ok(denied.status >= 400 && denied.status < 500, `access_denied answered ${denied.status}`);
      assert.match(denied.type, /text\/html/);
      assert.ok(denied.title, 'the page has a heading');
      assert.ok(denied.text.includes('access_denied'), `the page names the provider's error: ${denied.text}`);
      // The retry link starts a fresh sign-in that returns to where the user was going.
      const retry = `${sc.url}/oauth2/login?rd=${encodeURIComponent('/echo/denied?from=cancel')}`;
      assert.ok(denied.links.includes(retry), `retry link ${retry} (links: ${denied.links.join(', ')})`);
      assert.equal((await sessionCookies(eb.context, sc.url)).length, 0, 'no session after a refused sign-in');

      // Following it really signs in this time, and lands on the original target.
      await Promise.all([
        eb.page.waitForURL((u) => String(u).startsWith(stack.provider.origin)),
        eb.page.click('a[href*="/oauth2/login"]'),
      ]);
      await signInAtProvider(eb.page, { username: 'bob', providerOrigin: stack.provider.origin });
      assert.equal(eb.page.url(), `${sc.url}/echo/denied?from=cancel`);
      assert.equal((await pageJson(eb.page)).user.name, 'Bob User');

      // Callbacks the sidecar cannot match or complete: an HTML page with a fresh sign-in link, never a 500.
      for (const [q, mentions] of [
        ['code=bogus&state=bogus', /sign-in/i],
        ['error=consent_required&state=x', /consent_required/],
        ['', /sign-in/i],
      ]) {
        const r = await eb.page.goto(`${sc.url}/oauth2/callback?${q}`);
        const pg = await errorPage(eb.page, r);
        assert.ok(pg.status >= 400 && pg.status < 500, `callback?${q} answered ${pg.status}`);
        assert.match(pg.type, /text\/html/, `callback?${q}`);
        assert.ok(pg.title, `callback?${q}: a heading`);
        assert.match(pg.text, mentions, `callback?${q}: ${pg.text}`);
        assert.ok(pg.links.includes(`${sc.url}/oauth2/login?rd=%2F`), `callback?${q}: retry link (${pg.links.join(', ')})`);
      }
    } finally {
      await eb.close();
    }
  });

  test('a replayed callback (same code and state) is a clear error page with a retry link, not a 500', async () => {
    const rb = await launchBrowser();
    try {
      const target = `${sc.url}/echo/replay?n=1`;
      // The pending-login cookie the sidecar sets on the way to the provider (state, nonce, PKCE verifier).
      const setBySidecar = [];
      const onResponse = (r) => {
        if (new URL(r.url()).origin === sc.url) setBySidecar.push(r.headerValues('set-cookie'));
      };
      rb.page.on('response', onResponse);
      await rb.page.goto(target);
      rb.page.off('response', onResponse);
      assert.ok(rb.page.url().startsWith(stack.provider.origin));
      const names = (await Promise.all(setBySidecar)).flat().map((h) => h.split('=')[0].trim());
      const pending = (await rb.context.cookies(sc.url)).filter((c) => names.includes(c.name));
      assert.ok(pending.length >= 1, `a pending-login cookie before the callback (set: ${names.join(', ')})`);
      const callbackReq = rb.page.waitForRequest((r) => r.url().startsWith(`${sc.url}/oauth2/callback?`), { timeout: 30_000 });
      await signInAtProvider(rb.page, { username: 'bob', providerOrigin: stack.provider.origin });
      const callbackUrl = (await callbackReq).url();
      await rb.page.waitForURL(target);
      assert.equal((await pageJson(rb.page)).user.name, 'Bob User');
      const cb = new URL(callbackUrl);
      assert.ok(cb.searchParams.get('code') && cb.searchParams.get('state'), `a real callback: ${callbackUrl}`);
      const jar = (await rb.context.cookies(sc.url)).map((c) => c.name);
      assert.ok(!pending.some((c) => jar.includes(c.name)), 'the pending login is spent by the callback');

      // 1. The same URL again (back button, a copied link): nothing pending matches it any more.
      const before = await stack.provider.stats();
      const r1 = await rb.page.goto(callbackUrl);
      const replay = await errorPage(rb.page, r1);
      assert.equal(replay.status, 400, `replay answered ${replay.status}: ${replay.text}`);
      assert.match(replay.type, /text\/html/);
      assert.ok(replay.title, 'a heading');
      assert.match(replay.text, /sign-in/i, replay.text);
      assert.ok(replay.links.includes(`${sc.url}/oauth2/login?rd=%2F`), `retry link (${replay.links.join(', ')})`);
      assert.equal((await stack.provider.stats()).grants.authorization_code, before.grants.authorization_code,
        'the code was not redeemed again');
      // The replay does not touch the session that the real callback created.
      const me = await pageFetch(rb.page, '/api/me', { headers: { Accept: 'application/json' } });
      assert.equal(me.status, 200, me.text);
      assert.equal(me.json.user.name, 'Bob User');

      // 2. The same URL with the pending-login cookie put back (a stale tab's jar): the sidecar redeems the code
      //    a second time and the provider refuses it; the page says so and offers a fresh sign-in.
      await rb.context.addCookies(pending);
      assert.ok((await rb.context.cookies(sc.url)).some((c) => c.name === pending[0].name), 'pending cookie restored');
      const r2 = await rb.page.goto(callbackUrl);
      const reused = await errorPage(rb.page, r2);
      assert.equal(reused.status, 400, `code reuse answered ${reused.status}: ${reused.text}`);
      assert.match(reused.type, /text\/html/);
      assert.ok(reused.title, 'a heading');
      assert.ok(reused.text.includes('invalid_grant'), `the provider's refusal is named: ${reused.text}`);
      const retry = `${sc.url}/oauth2/login?rd=${encodeURIComponent('/echo/replay?n=1')}`;
      assert.ok(reused.links.includes(retry), `retry link ${retry} (links: ${reused.links.join(', ')})`);
      const after = await stack.provider.stats();
      assert.equal(after.grants.authorization_code, before.grants.authorization_code, 'no tokens for a reused code');
      assert.equal(
        (after.grant_errors.authorization_code || 0) - (before.grant_errors.authorization_code || 0),
        1,
        'the provider refused the reused code',
      );
    } finally {
      await rb.close();
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
    await b.page.goto(`${sc.url}/echo/who`);
    const aliceOid = (await pageJson(b.page)).user.oid;
    assert.ok(aliceOid);
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
    // The hint is the ID token the provider issued to this client for alice at sign-in.
    const hint = endSession.searchParams.get('id_token_hint');
    assert.ok(hint, `end_session carries id_token_hint (${endSession.search})`);
    const { payload: idt } = decodeJwt(hint);
    assert.equal(idt.iss, stack.provider.issuer);
    assert.equal(idt.aud, 'sidecar', 'an ID token (aud = client id)');
    assert.equal(idt.name, 'Alice Admin');
    assert.equal(idt.sub, aliceOid, 'the signed-in user');
    assert.equal(endSession.searchParams.get('post_logout_redirect_uri'), `${sc.url}/`, 'back to the app\'s root');
    // The provider accepted the logout (registered post_logout_redirect_uri, valid hint).
    const stats = await stack.provider.stats();
    assert.equal(stats.end_session, before + 1);

    assert.equal((await sessionCookies(b.context, sc.url)).length, 0, 'session cookie gone');
    await b.page.goto(`${sc.url}/health`);
    const api = await pageFetch(b.page, '/api/me');
    assert.equal(api.status, 401);
  });
});
