// The session outlives its access token (issue 3): the provider issues 15-second access tokens; the sidecar
// refreshes with the (rotating) refresh token, once for concurrent requests; a failed refresh ends the session.
//
//   node --test refresh.test.js

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { launchBrowser } from './lib/browser.js';
import {
  describeWithSidecar, loginVia, pageFetch, recordRequests, sleep,
} from './lib/flows.js';
import { startStack } from './lib/stack.js';

const TTL = 15; // seconds, provider access-token lifetime
const MARGIN = '5s'; // sidecar refresh_margin

for (const store of ['cookie', 'redis']) {
  describeWithSidecar(`refresh with short-lived access tokens (${store} store)`, () => {
    let stack;
    let sc;
    let b;

    before(async () => {
      stack = await startStack({ store, accessTokenTtl: TTL, sidecarOptions: { refreshMargin: MARGIN } });
      sc = stack.sidecar;
      b = await launchBrowser();
      await loginVia(b.page, `${sc.url}/echo/start`, { provider: stack.provider, username: 'alice' });
    });
    after(async () => {
      await b?.close();
      await stack?.stop();
    });

    const refreshes = async () => (await stack.provider.stats()).grants.refresh_token || 0;

    test('after the access token expired, requests still pass: the sidecar refreshed', async () => {
      assert.equal(await refreshes(), 0);
      await sleep((TTL + 2) * 1000);
      const me = await pageFetch(b.page, '/api/me');
      assert.equal(me.status, 200, me.text);
      assert.equal(me.json.user.name, 'Alice Admin');
      const items = await pageFetch(b.page, '/api/items');
      assert.equal(items.status, 200, 'scope still there after refresh');
      assert.ok(await refreshes() >= 1, 'a refresh_token grant happened at the provider');
      assert.equal((await stack.provider.stats()).grant_errors.refresh_token || 0, 0, 'no failed refresh');
    });

    test('concurrent requests of one session refresh once (rotation would break a second refresh)', async () => {
      await sleep((TTL + 2) * 1000);
      const before = await refreshes();
      const results = await b.page.evaluate(async () => Promise.all(
        Array.from({ length: 8 }, (_, i) => fetch(`/echo/parallel/${i}`, { credentials: 'same-origin' }).then((r) => r.status)),
      ));
      assert.deepEqual(results, Array(8).fill(200));
      assert.equal(await refreshes(), before + 1, 'exactly one refresh for the burst');
      assert.equal((await stack.provider.stats()).grant_errors.refresh_token || 0, 0, 'no reused refresh token');
    });

    test('a failed refresh ends the session: API 401, navigation goes to login', async () => {
      await stack.provider.setSwitches({ refresh: false });
      try {
        await sleep((TTL + 2) * 1000);
        const api = await pageFetch(b.page, '/api/me');
        assert.equal(api.status, 401);
        const nav = recordRequests(b.page);
        await b.page.goto(`${sc.url}/echo/after-failure`);
        nav.stop();
        assert.ok(nav.urls.some((u) => u.startsWith(stack.provider.origin)), 'sent to the provider to sign in again');
      } finally {
        await stack.provider.setSwitches({ refresh: true });
      }
    });
  });
}
