// `forward_access_token = true` end to end: after a browser sign-in, the upstream (examples/fastapi's echo) receives
// `Authorization: Bearer <access token>`, and that token is the JWT the provider issued for this user and this client
// (signature checked against the provider's JWKS; `sub`, `oid`, `aud`, `scp`, `azp`, `iss`, `tid`, `exp` checked).
//
// examples/fastapi has no Bearer check of its own (it trusts only the sidecar's `X-Auth-Assertion`, see
// sidecar_auth.py), so "accepted downstream" is shown two ways: the app still verifies the assertion next to the
// forwarded token, and the token itself is accepted as a Bearer token by the sidecar in front of that same API.
//
//   node --test forward-token.test.js

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';

import { launchBrowser } from './lib/browser.js';
import {
  authHeaders, describeWithSidecar, loginVia, pageFetch, pageJson,
} from './lib/flows.js';
import { decodeJwt, discover } from './lib/oidc-client.js';
import { AUDIENCE, TENANT_ID, stackLogs, startStack } from './lib/stack.js';

/** Verifies an RS256 JWT against the provider's published JWKS (by `kid`); throws when it does not verify. */
async function verifyWithProviderJwks(issuer, token) {
  const meta = await discover(issuer);
  const { keys } = await (await fetch(meta.jwks_uri)).json();
  const { header } = decodeJwt(token);
  assert.equal(header.alg, 'RS256');
  const jwk = keys.find((k) => k.kid === header.kid);
  assert.ok(jwk, `the provider publishes the token's kid ${header.kid}`);
  const [h, p, s] = token.split('.');
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  const ok = verify('RSA-SHA256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url'));
  assert.ok(ok, 'the forwarded token carries a valid signature of the provider');
}

/** The token in an `Authorization: Bearer` header, or fails. */
function bearerOf(echo) {
  const auth = echo.headers.authorization;
  assert.ok(auth, `the upstream received an Authorization header (headers: ${Object.keys(echo.headers).join(', ')})`);
  const m = /^Bearer ([\w-]+\.[\w-]+\.[\w-]+)$/.exec(auth);
  assert.ok(m, `Authorization is "Bearer <JWT>": ${auth.slice(0, 40)}...`);
  return m[1];
}

describeWithSidecar('forward_access_token = true: the session access token goes upstream', () => {
  let stack;
  let sc;
  let b;

  before(async () => {
    stack = await startStack({ store: 'cookie', hostOptions: { forward_access_token: true } });
    sc = stack.sidecar;
    b = await launchBrowser();
  });

  after(async () => {
    await b?.close();
    if (process.env.E2E_LOGS) console.log(stackLogs(stack));
    await stack?.stop();
  });

  test('after sign-in the upstream gets Authorization: Bearer <the provider\'s access token for alice>', async () => {
    const landed = await loginVia(b.page, `${sc.url}/echo/with-token`, { provider: stack.provider, username: 'alice' });
    assert.equal(landed, `${sc.url}/echo/with-token`);
    const echo = await pageJson(b.page);
    assert.equal(authHeaders(echo)['x-auth-method'], 'session');
    // The app's own check (the signed assertion) still passes with the token next to it.
    assert.equal(echo.auth_error, null);
    assert.equal(echo.user.name, 'Alice Admin');

    const token = bearerOf(echo);
    await verifyWithProviderJwks(stack.provider.issuer, token);
    const { header, payload } = decodeJwt(token);
    assert.equal(header.typ, 'JWT');
    assert.equal(payload.iss, stack.provider.issuer);
    assert.equal(payload.aud, AUDIENCE, 'an access token for the API, not the ID token (aud = client id)');
    assert.equal(payload.tid, TENANT_ID);
    assert.equal(payload.azp, 'sidecar', 'issued to the sidecar\'s client');
    assert.equal(payload.idtyp, 'user');
    assert.equal(payload.name, 'Alice Admin');
    assert.equal(payload.preferred_username, 'alice@contoso.example');
    // The same user the sidecar asserted to the app (sub = oid in the provider's Entra-shaped tokens).
    assert.equal(payload.oid, echo.user.oid);
    assert.equal(payload.sub, echo.user.sub);
    assert.equal(payload.sub, payload.oid);
    assert.equal(payload.scp, 'user.read', 'delegated scope the sidecar asked for');
    assert.deepEqual(payload.roles, ['Admin', 'Items.Read']);
    assert.ok(payload.exp > Date.now() / 1000, 'not expired');
    assert.equal(payload.nonce, undefined, 'not an ID token');
  });

  test('every session request carries the same token; SPA fetches too; no token in the browser', async () => {
    const first = bearerOf(await pageJson(b.page));
    const xhr = await pageFetch(b.page, '/echo/xhr', { headers: { Accept: 'application/json' } });
    assert.equal(xhr.status, 200);
    assert.equal(bearerOf(xhr.json), first, 'the session keeps one access token until it is refreshed');
    // The token travels sidecar -> upstream only: never in a response header or a readable cookie.
    assert.ok(!Object.values(xhr.headers).some((v) => v.includes(first)), 'not in response headers');
    const visible = await b.page.evaluate(() => document.cookie);
    assert.ok(!visible.includes(first.split('.')[1]), 'not readable from JavaScript');
  });

  test('the forwarded token is a working API token: the sidecar accepts it as Bearer for the same user', async () => {
    const token = bearerOf(await pageJson(b.page));
    const res = await fetch(`${sc.url}/api/items`, { headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' } });
    assert.equal(res.status, 200, 'scope user.read of the forwarded token satisfies the route');
    const body = await res.json();
    assert.equal(body.user, decodeJwt(token).payload.sub);
    const bearerEcho = await (await fetch(`${sc.url}/echo/as-bearer`, { headers: { Authorization: `Bearer ${token}` } })).json();
    assert.equal(authHeaders(bearerEcho)['x-auth-method'], 'bearer');
    assert.equal(bearerEcho.user.oid, decodeJwt(token).payload.oid);
    assert.equal(bearerEcho.auth_error, null);
    assert.equal(bearerEcho.headers.authorization, `Bearer ${token}`, 'a Bearer caller\'s own header is passed on');
  });
});
