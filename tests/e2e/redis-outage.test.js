// Redis down (issue 3): session routes answer 503 with the reason while Bearer routes keep working; when Redis is
// back the sidecar recovers by itself and the session (saved by Redis on shutdown) works again.
//
//   node --test redis-outage.test.js

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { launchBrowser } from './lib/browser.js';
import { describeWithSidecar, loginVia, pageFetch } from './lib/flows.js';
import { clientCredentials } from './lib/oidc-client.js';
import { waitFor } from './lib/procs.js';
import { AUDIENCE, startStack } from './lib/stack.js';

describeWithSidecar('Redis outage and recovery', () => {
  let stack;
  let b;

  before(async () => {
    stack = await startStack({ store: 'redis' });
    b = await launchBrowser();
    await loginVia(b.page, `${stack.sidecar.url}/echo/in`, { provider: stack.provider, username: 'alice' });
  });
  after(async () => {
    await b?.close();
    await stack?.stop();
  });

  test('Redis stopped: 503 on session routes, Bearer still 200; Redis back: recovered', async () => {
    const sc = stack.sidecar;
    const { access_token: bearer } = await clientCredentials(stack.provider.issuer, { scope: `${AUDIENCE}/.default` });
    const bearerStatus = async () => (await fetch(`${sc.url}/admin/report`, {
      headers: { Authorization: `Bearer ${bearer}`, Accept: 'application/json' },
    })).status;

    assert.equal((await pageFetch(b.page, '/api/me')).status, 200);
    assert.equal(await bearerStatus(), 200);

    await stack.redis.stop();
    const down = await pageFetch(b.page, '/api/me', { headers: { Accept: 'application/json' } });
    assert.equal(down.status, 503, down.text);
    assert.match(down.text, /redis|session store/i, 'the 503 says why');
    assert.equal(await bearerStatus(), 200, 'Bearer routes do not need Redis');
    const health = await fetch(`${sc.url}/health`);
    assert.equal(health.status, 200, 'public routes do not need Redis');

    await stack.redis.start();
    await waitFor(async () => (await pageFetch(b.page, '/api/me')).status === 200, {
      what: 'session routes to recover after Redis is back', timeoutMs: 30_000, intervalMs: 250,
    });
    const me = await pageFetch(b.page, '/api/me');
    assert.equal(me.json.user.name, 'Alice Admin');
    assert.equal(await bearerStatus(), 200);
  });
});
