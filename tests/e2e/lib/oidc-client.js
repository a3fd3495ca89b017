// A tiny OpenID Connect client for the tests: discovery, a scripted authorization-code + PKCE login against the
// e2e provider's login form (no browser), refresh, client credentials, and JWT decoding (no verification: the
// tests look at claims; signature checks are the sidecar's job and tested there).

import { createHash, randomBytes } from 'node:crypto';

export const b64url = (buf) => Buffer.from(buf).toString('base64url');

export function decodeJwt(token) {
  const [h, p] = String(token).split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
  };
}

export async function discover(issuer) {
  const res = await fetch(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
  if (!res.ok) throw new Error(`discovery failed: ${res.status}`);
  return res.json();
}

function basic(clientId, clientSecret) {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}`;
}

async function tokenRequest(meta, params, { clientId, clientSecret }) {
  const res = await fetch(meta.token_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(clientId, clientSecret) },
    body: new URLSearchParams(params),
  });
  const body = await res.json();
  if (!res.ok) {
    const err = new Error(`token endpoint: ${res.status} ${body.error}: ${body.error_description}`);
    err.status = res.status;
    err.body = body;
    throw err;
  }
  return body;
}

export async function clientCredentials(issuer, { clientId = 'postman', clientSecret = 'postman-secret', scope } = {}) {
  const meta = await discover(issuer);
  const params = { grant_type: 'client_credentials' };
  if (scope) params.scope = scope;
  return tokenRequest(meta, params, { clientId, clientSecret });
}

export async function refresh(issuer, refreshToken, { clientId = 'sidecar', clientSecret = 'sidecar-secret', scope } = {}) {
  const meta = await discover(issuer);
  const params = { grant_type: 'refresh_token', refresh_token: refreshToken };
  if (scope) params.scope = scope;
  return tokenRequest(meta, params, { clientId, clientSecret });
}

/** Minimal cookie jar: name -> value per origin; good enough for one provider. */
class Jar {
  #cookies = new Map();

  store(res) {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      if (/expires=Thu, 01 Jan 1970/i.test(line) || value === '') this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }

  header() {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

/**
 * Authorization code + PKCE (S256) login driven over plain HTTP: authorize -> login form -> (consent, auto) ->
 * redirect to `redirectUri` with the code -> token endpoint. Returns the token response plus the state/nonce used.
 */
export async function authCodeLogin(issuer, {
  clientId = 'sidecar', clientSecret = 'sidecar-secret', redirectUri, username = 'alice', password = 'password',
  scope = 'openid profile email offline_access api://oidc-sidecar-demo/user.read', extra = {},
} = {}) {
  const meta = await discover(issuer);
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  const state = b64url(randomBytes(16));
  const nonce = b64url(randomBytes(16));
  const auth = new URL(meta.authorization_endpoint);
  const q = {
    client_id: clientId, response_type: 'code', redirect_uri: redirectUri, scope, state, nonce,
    code_challenge: challenge, code_challenge_method: 'S256', ...extra,
  };
  for (const [k, v] of Object.entries(q)) auth.searchParams.set(k, v);

  const jar = new Jar();
  let url = auth.href;
  let method = 'GET';
  let body;
  for (let hop = 0; hop < 20; hop += 1) {
    const res = await fetch(url, {
      method,
      redirect: 'manual',
      headers: { cookie: jar.header(), ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
      body,
    });
    jar.store(res);
    method = 'GET';
    body = undefined;
    if (res.status >= 300 && res.status < 400) {
      const next = new URL(res.headers.get('location'), url).href;
      if (next.startsWith(redirectUri)) {
        const cb = new URL(next);
        if (cb.searchParams.get('error')) {
          throw new Error(`authorization error: ${cb.searchParams.get('error')}: ${cb.searchParams.get('error_description')}`);
        }
        if (cb.searchParams.get('state') !== state) throw new Error('state mismatch');
        const tokens = await tokenRequest(meta, {
          grant_type: 'authorization_code', code: cb.searchParams.get('code'), redirect_uri: redirectUri, code_verifier: verifier,
        }, { clientId, clientSecret });
        return { ...tokens, state, nonce, iss: cb.searchParams.get('iss') };
      }
      url = next;
      continue;
    }
    const html = await res.text();
    const form = /<form method="post" action="([^"]+\/login)"/.exec(html);
    if (res.status === 200 && form) {
      if (/id="login-error"/.test(html)) throw new Error('login refused by the provider (bad username or password)');
      url = new URL(form[1], url).href;
      method = 'POST';
      body = new URLSearchParams({ username, password }).toString();
      continue;
    }
    throw new Error(`unexpected response ${res.status} at ${url}: ${html.slice(0, 300)}`);
  }
  throw new Error('too many redirects');
}
