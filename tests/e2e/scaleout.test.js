// Several sidecar processes (two ECS tasks) with the same session keys accept one session, with the cookie store
// and with Redis; session keys rotate without logging anyone out (first key seals, all open).
//
//   node --test scaleout.test.js

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { launchBrowser } from './lib/browser.js';
import {
  cookieHeader, describeWithSidecar, loginVia, pageJson, recordRequests,
} from './lib/flows.js';
import { newSessionKey, startStack } from './lib/stack.js';

for (const store of ['cookie', 'redis']) {
  describeWithSidecar(`two sidecar processes share sessions (${store} store)`, () => {
    let stack;

    before(async () => { stack = await startStack({ store, sidecars: 2 }); });
    after(async () => { await stack?.stop(); });

    test('a session made by task A is accepted by task B', async () => {
      const [a, bSide] = stack.sidecars;
      const b = await launchBrowser();
      try {
        await loginVia(b.page, `${a.url}/echo/on-a`, { provider: stack.provider, username: 'alice' });
        // Cookies are per host, not per port: the browser sends A's cookie to B, as an ALB spreads requests.
        const nav = recordRequests(b.page);
        await b.page.goto(`${bSide.url}/echo/on-b`);
        nav.stop();
        assert.ok(!nav.urls.some((u) => u.startsWith(stack.provider.origin)), 'B did not send the browser to log in');
        const echo = await pageJson(b.page);
        assert.equal(echo.user.name, 'Alice Admin');
        assert.equal(echo.headers['x-auth-method'], 'session');

        const cookie = await cookieHeader(b.context, a.url);
        for (const s of stack.sidecars) {
          const res = await fetch(`${s.url}/api/me`, { headers: { cookie, Accept: 'application/json' } });
          assert.equal(res.status, 200, `${s.url} accepts the session`);
        }
      } finally {
        await b.close();
      }
    });

    if (store === 'redis') {
      test('logout on one task kills the session on the other; an old cookie copy is dead', async () => {
        const [a, bSide] = stack.sidecars;
        const b = await launchBrowser();
        try {
          await loginVia(b.page, `${a.url}/echo/x`, { provider: stack.provider, username: 'bob' });
          const copied = await cookieHeader(b.context, a.url);
          assert.equal((await fetch(`${bSide.url}/api/me`, { headers: { cookie: copied } })).status, 200);
          await b.page.goto(`${bSide.url}/oauth2/logout`);
          for (const s of stack.sidecars) {
            const res = await fetch(`${s.url}/api/me`, { headers: { cookie: copied, Accept: 'application/json' } });
            assert.equal(res.status, 401, `${s.url}: cookie copied before logout is dead`);
          }
        } finally {
          await b.close();
        }
      });
    }
  });
}

describeWithSidecar('session key rotation (cookie store)', () => {
  const k1 = newSessionKey();
  const k2 = newSessionKey();
  const k3 = newSessionKey();
  let stack;

  before(async () => { stack = await startStack({ store: 'cookie', sessionKeys: [k1] }); });
  after(async () => { await stack?.stop(); });

  const apiStatus = async (cookie) => (await fetch(`${stack.sidecar.url}/api/me`, {
    headers: { cookie, Accept: 'application/json' },
  })).status;

  test('old sessions open under [new, old]; new sessions seal with the first key; unknown keys are no session', async () => {
    const sc = stack.sidecar;
    const b = await launchBrowser();
    try {
      await loginVia(b.page, `${sc.url}/echo/k1`, { provider: stack.provider });
      const sealedWithK1 = await cookieHeader(b.context, sc.url);
      assert.equal(await apiStatus(sealedWithK1), 200);

      // Rolling deploy step 1: the new key is added in front.
      await sc.restart({ sessionKeys: [k2, k1] });
      assert.equal(await apiStatus(sealedWithK1), 200, 'a K1 session still opens');

      // A login now seals with K2 (all cookies cleared, the provider's too, so it is a full login).
      await b.context.clearCookies();
      await loginVia(b.page, `${sc.url}/echo/k2`, { provider: stack.provider });
      const sealedWithK2 = await cookieHeader(b.context, sc.url);
      assert.ok(sealedWithK2 && sealedWithK2 !== sealedWithK1);

      // ...so dropping K1 keeps it, while K1-only cookies stop opening.
      await sc.restart({ sessionKeys: [k2] });
      assert.equal(await apiStatus(sealedWithK2), 200, 'K2 session opens with [K2]');
      assert.equal(await apiStatus(sealedWithK1), 401, 'K1 session no longer opens');

      await sc.restart({ sessionKeys: [k3] });
      assert.equal(await apiStatus(sealedWithK2), 401, 'a key the sidecar never had opens nothing');
    } finally {
      await b.close();
    }
  });
});
