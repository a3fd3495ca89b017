// A user in 200 Entra groups (issue 3): the session fits in chunked cookies under the ALB's 16 KB header limit, or
// in Redis behind one small cookie; group rules see all 200 groups; the overage user (no `groups` claim) fails
// closed on group rules.
//
//   node --test groups.test.js

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { guid } from './provider/accounts.js';
import { launchBrowser } from './lib/browser.js';
import { describeWithSidecar, loginVia, pageFetch, pageJson } from './lib/flows.js';
import { API_ROUTES, sessionCookies, startStack } from './lib/stack.js';

const CAROL_GROUP_150 = guid('carol-group-150');
const ROUTES = [{ path: '/echo/group/', groups: [CAROL_GROUP_150] }, ...API_ROUTES];
const ALB_HEADER_LIMIT = 16 * 1024;

for (const store of ['cookie', 'redis']) {
  describeWithSidecar(`200 groups with the ${store} store`, () => {
    let stack;
    let sc;

    before(async () => {
      stack = await startStack({ store, routes: ROUTES });
      sc = stack.sidecar;
    });
    after(async () => { await stack?.stop(); });

    test('carol (200 groups) signs in; the app and group rules see all 200 groups', async () => {
      const b = await launchBrowser();
      try {
        await loginVia(b.page, `${sc.url}/echo/group/member`, { provider: stack.provider, username: 'carol' });
        assert.equal(b.page.url(), `${sc.url}/echo/group/member`);
        const echo = await pageJson(b.page);
        assert.equal(echo.user.name, 'Carol Manygroups');
        assert.equal(echo.user.groups.length, 200);
        assert.ok(echo.user.groups.includes(CAROL_GROUP_150));

        const cookies = await sessionCookies(b.context, sc.url);
        const cookieHeaderBytes = cookies.reduce((n, c) => n + c.name.length + c.value.length + 3, 0);
        for (const c of cookies) {
          assert.ok(c.name.length + c.value.length <= 4096, `${c.name} within one browser cookie`);
          assert.equal(c.httpOnly, true);
        }
        if (store === 'cookie') {
          assert.ok(cookies.length >= 2, `a 200-group session is split over chunks (got ${cookies.length})`);
          assert.ok(cookieHeaderBytes < ALB_HEADER_LIMIT, `Cookie header ${cookieHeaderBytes} B under the ALB limit`);
        } else {
          assert.equal(cookies.length, 1, 'redis store: one cookie holding only the session id');
          assert.ok(cookies[0].value.length < 200, `id cookie is small (${cookies[0].value.length} chars)`);
        }

        // The session keeps working for API calls made by the page.
        const me = await pageFetch(b.page, '/api/me');
        assert.equal(me.status, 200);
        assert.equal(me.json.user.groups.length, 200);
      } finally {
        await b.close();
      }
    });

    test('group rules: a non-member is refused, the overage user fails closed', async () => {
      for (const username of ['bob', 'dave']) {
        const b = await launchBrowser();
        try {
          await loginVia(b.page, `${sc.url}/echo/landing`, { provider: stack.provider, username });
          const res = await pageFetch(b.page, '/echo/group/member');
          assert.equal(res.status, 403, `${username} refused on a group route`);
        } finally {
          await b.close();
        }
      }
    });
  });
}
