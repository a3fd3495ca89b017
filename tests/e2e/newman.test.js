// The Postman collection in examples/postman, run with newman (its Node API) against the e2e stack: the Entra-like
// provider, the example FastAPI app and one sidecar in front of it with the API routes (lib/stack.js API_ROUTES).
//
// The collection is what a developer imports into Postman; running it here keeps it true. Every request of the
// client-credentials folder must run and every pm.test pass. The user folder (authorization code + PKCE, meant for
// Postman's OAuth 2.0 helper and a browser) is run with a token obtained the way that helper would, from the folder's
// own OAuth 2.0 settings. A control run straight against the app, without the sidecar, shows that the collection's
// checks do fail when what they check is missing.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import newman from 'newman';

import { describeWithSidecar } from './lib/flows.js';
import { decodeJwt, discover } from './lib/oidc-client.js';
import { ROOT, USER_PASSWORD, stackLogs, startStack } from './lib/stack.js';

const POSTMAN_DIR = path.join(ROOT, 'examples/postman');
const readJson = (file) => JSON.parse(fs.readFileSync(path.join(POSTMAN_DIR, file), 'utf8'));
const COLLECTION = readJson('oidc-sidecar.postman_collection.json');
const ENVIRONMENT = readJson('oidc-sidecar-local.postman_environment.json');

const folderNamed = (re) => {
  const folder = COLLECTION.item.find((f) => Array.isArray(f.item) && re.test(f.name));
  assert.ok(folder, `examples/postman collection has a folder matching ${re}`);
  return folder;
};
const APP_FOLDER = folderNamed(/client credentials/i);
const USER_FOLDER = folderNamed(/PKCE/);

/** The local environment's values with `overrides` applied: what newman resolves `{{name}}` against. */
function variables(overrides) {
  const out = {};
  for (const v of COLLECTION.variable || []) out[v.key] = v.value;
  for (const v of ENVIRONMENT.values) if (v.enabled !== false) out[v.key] = v.value;
  return { ...out, ...overrides };
}

function resolve(value, vars) {
  return String(value).replace(/\{\{([^}]+)\}\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

/** Runs one folder with newman; resolves with the run summary (failures are data, not exceptions). */
function runFolder(folder, envVars) {
  return new Promise((resolvePromise, reject) => {
    newman.run({
      collection: structuredClone(COLLECTION),
      environment: structuredClone(ENVIRONMENT),
      envVar: Object.entries(envVars).map(([key, value]) => ({ key, value: String(value) })),
      folder: folder.name,
      reporters: process.env.E2E_LOGS ? ['cli'] : [],
      timeoutRequest: 30_000,
      color: 'off',
    }, (err, summary) => (err ? reject(err) : resolvePromise(summary)));
  });
}

/** Request name -> the names of its failed tests (and request errors), for readable assertion messages. */
function failuresByRequest(summary) {
  const out = {};
  for (const f of summary.run.failures) {
    const name = f.source?.name || f.parent?.name || '(collection)';
    (out[name] ||= []).push(f.error?.test || f.error?.message || String(f.error));
  }
  return out;
}

/** Every request of `folder` ran, in order, got a response, and had at least one test, all of which passed. */
function assertFolderPassed(summary, folder) {
  assert.deepEqual(failuresByRequest(summary), {}, 'newman reported failures');
  const ran = summary.run.executions.map((e) => e.item.name);
  assert.deepEqual(ran, folder.item.map((i) => i.name), 'every request of the folder ran, in order');
  for (const e of summary.run.executions) {
    assert.equal(e.requestError, undefined, `${e.item.name}: request error`);
    assert.ok(e.response?.code, `${e.item.name}: got a response`);
    assert.ok((e.assertions || []).length > 0, `${e.item.name}: has tests`);
    for (const a of e.assertions) {
      assert.ok(!a.skipped, `${e.item.name}: test "${a.assertion}" was skipped`);
      assert.equal(a.error, undefined, `${e.item.name}: test "${a.assertion}" failed`);
    }
  }
  assert.equal(summary.run.stats.requests.total, folder.item.length);
  assert.equal(summary.run.stats.requests.failed, 0);
  assert.equal(summary.run.stats.assertions.failed, 0);
  assert.ok(summary.run.stats.assertions.total >= folder.item.length);
}

/**
 * What Postman's "Authorization Code (With PKCE)" helper does with the folder's settings, minus the browser: the
 * authorize request with an S256 challenge, the provider's login form (user and password instead of a person),
 * then the code exchange with the client id and secret in the body ("Send client credentials in body").
 */
async function pkceLikePostman(settings, { username, password }) {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const state = randomBytes(12).toString('base64url');
  const authorize = new URL(settings.authUrl);
  for (const [k, v] of Object.entries({
    response_type: 'code', client_id: settings.clientId, redirect_uri: settings.redirect_uri, scope: settings.scope,
    state, code_challenge: challenge, code_challenge_method: 'S256',
  })) authorize.searchParams.set(k, v);

  const cookies = new Map();
  const keepCookies = (res) => {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const i = pair.indexOf('=');
      cookies.set(pair.slice(0, i).trim(), pair.slice(i + 1).trim());
    }
  };
  const cookieHeader = () => [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');

  let url = authorize.href;
  let init = { method: 'GET' };
  for (let hop = 0; hop < 20; hop += 1) {
    const res = await fetch(url, { ...init, redirect: 'manual', headers: { ...init.headers, cookie: cookieHeader() } });
    keepCookies(res);
    init = { method: 'GET' };
    if (res.status >= 300 && res.status < 400) {
      const next = new URL(res.headers.get('location'), url);
      if (next.href.startsWith(settings.redirect_uri)) {
        assert.equal(next.searchParams.get('error'), null, `authorize error: ${next.searchParams.get('error_description')}`);
        assert.equal(next.searchParams.get('state'), state);
        const tokenRes = await fetch(settings.accessTokenUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({
            grant_type: 'authorization_code', code: next.searchParams.get('code'), redirect_uri: settings.redirect_uri,
            code_verifier: verifier, client_id: settings.clientId, client_secret: settings.clientSecret,
          }),
        });
        const body = await tokenRes.json();
        assert.equal(tokenRes.status, 200, `token endpoint: ${JSON.stringify(body)}`);
        return body;
      }
      url = next.href;
      continue;
    }
    const html = await res.text();
    const form = /<form method="post" action="([^"]+\/login)"/.exec(html);
    assert.ok(res.status === 200 && form, `unexpected ${res.status} at ${url}: ${html.slice(0, 200)}`);
    assert.ok(!/id="login-error"/.test(html), 'the provider refused the login');
    url = new URL(form[1], url).href;
    init = {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username, password }).toString(),
    };
  }
  throw new Error('too many redirects in the authorization code flow');
}

describeWithSidecar('Postman collection (examples/postman) with newman', () => {
  let stack;
  let vars;

  before(async () => {
    // The user folder's redirect URI: the demo's callback, which the demo's provider registers for its web clients
    // (Postman's sign-in window catches the redirect; the sidecar never sees that code).
    const redirectUri = variables({}).redirect_uri;
    stack = await startStack({ providerEnv: { REDIRECT_URIS: redirectUri } });
    const { provider } = stack;
    vars = {
      base_url: stack.sidecar.url,
      token_url: `${provider.origin}/${provider.tenantId}/oauth2/v2.0/token`,
      auth_url: `${provider.origin}/${provider.tenantId}/oauth2/v2.0/authorize`,
    };
  });

  after(async () => {
    if (stack && process.env.E2E_LOGS) console.log(stackLogs(stack));
    await stack?.stop();
  });

  test('the local environment matches the demo provider\'s endpoints and tenant', async () => {
    const meta = await discover(stack.provider.issuer);
    assert.equal(meta.token_endpoint, vars.token_url);
    assert.equal(meta.authorization_endpoint, vars.auth_url);
    // The file's URLs are the demo's (provider on port 9400): same paths as the real provider's.
    const file = variables({});
    const onDemoPort = (u) => u.replace(`127.0.0.1:${stack.provider.port}`, '127.0.0.1:9400');
    assert.equal(file.token_url, onDemoPort(meta.token_endpoint));
    assert.equal(file.auth_url, onDemoPort(meta.authorization_endpoint));
    assert.equal(file.tenant_id, stack.provider.tenantId);
    assert.equal(file.base_url, 'http://127.0.0.1:8081', 'the demo\'s API sidecar (tests/e2e/demo.js API_SIDECAR_PORT)');
    assert.equal(file.redirect_uri, 'http://127.0.0.1:8080/oauth2/callback', 'registered by tests/e2e/demo.js');
    assert.equal(COLLECTION.info.schema, 'https://schema.getpostman.com/json/collection/v2.1.0/collection.json');
  });

  test('client-credentials folder: every request runs and every test passes', async () => {
    const before = (await stack.provider.stats()).grants.client_credentials || 0;
    const summary = await runFolder(APP_FOLDER, vars);
    assertFolderPassed(summary, APP_FOLDER);
    // Both token requests really went to the provider (the postman and the daemon client).
    const afterRun = (await stack.provider.stats()).grants.client_credentials || 0;
    assert.equal(afterRun - before, 2);
    // The token the folder used was the provider's, for the postman client.
    const tokenExec = summary.run.executions[0];
    const issued = JSON.parse(tokenExec.response.stream.toString('utf8'));
    const claims = decodeJwt(issued.access_token).payload;
    assert.equal(claims.azp, variables({}).client_id);
    assert.deepEqual(claims.roles, ['Admin', 'Items.Read.All']);
  });

  test('control: without the sidecar in front of the app, the checks fail', async () => {
    // Same folder, straight at uvicorn: tokens are not checked there and spoofed headers arrive.
    const summary = await runFolder(APP_FOLDER, { ...vars, base_url: stack.upstream.url });
    const failed = failuresByRequest(summary);
    for (const name of [
      'Spoofed X-Auth-* headers never reach the app',
      'No token → 401 with WWW-Authenticate: Bearer realm=',
      'Tampered token → 401 invalid_token',
      'Missing delegated scope → 403 insufficient_scope',
      'Bearer token → 200, identity headers reach the app',
    ]) {
      assert.ok(failed[name], `"${name}" must fail without the sidecar; failures: ${JSON.stringify(failed, null, 1)}`);
    }
    assert.ok(failed['Spoofed X-Auth-* headers never reach the app'].includes('no spoofed value reached the app, in any header'));
    // The token requests do not involve the sidecar and still pass.
    assert.equal(failed['Get a token (client credentials)'], undefined);
  });

  test('PKCE folder: a user signed in with the folder\'s OAuth 2.0 settings passes every test', async () => {
    const all = variables(vars);
    const settings = Object.fromEntries(USER_FOLDER.auth.oauth2.map((p) => [p.key, typeof p.value === 'string' ? resolve(p.value, all) : p.value]));
    assert.equal(USER_FOLDER.auth.type, 'oauth2');
    assert.equal(settings.grant_type, 'authorization_code_with_pkce');
    assert.equal(settings.challengeAlgorithm, 'S256');
    assert.equal(settings.client_authentication, 'body');
    assert.equal(settings.authUrl, vars.auth_url);
    assert.equal(settings.accessTokenUrl, vars.token_url);

    const tokens = await pkceLikePostman(settings, { username: 'alice', password: USER_PASSWORD });
    const claims = decodeJwt(tokens.access_token).payload;
    assert.equal(claims.scp, 'user.read');
    assert.equal(claims.idtyp, 'user');

    const summary = await runFolder(USER_FOLDER, { ...vars, user_access_token: tokens.access_token });
    assertFolderPassed(summary, USER_FOLDER);

    // Without a user token the same requests are refused, so the passing run above did depend on it.
    const refused = await runFolder(USER_FOLDER, { ...vars, user_access_token: '' });
    assert.equal(refused.run.executions.length, USER_FOLDER.item.length);
    for (const e of refused.run.executions) assert.equal(e.response.code, 401, e.item.name);
  });
});
