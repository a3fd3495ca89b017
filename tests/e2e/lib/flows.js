// Browser steps shared by the sidecar test files.

import assert from 'node:assert/strict';
import { describe } from 'node:test';

import { signInAtProvider } from './browser.js';
import { sidecarMissing, sessionCookies, DEFAULT_COOKIE_NAME } from './stack.js';

/**
 * `describe` that skips (with the reason) when the sidecar binary is missing, and only then. Use for every suite
 * that needs the sidecar.
 */
export function describeWithSidecar(name, fn) {
  const reason = sidecarMissing();
  return describe(name, reason ? { skip: reason } : {}, fn);
}

export const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

/**
 * Navigates to `url` (a protected page on the sidecar), expects to be sent to the provider's login form, signs in
 * and waits until the browser is back on the sidecar. Returns the final URL.
 */
export async function loginVia(page, url, { provider, username = 'alice', password = 'password' } = {}) {
  await page.goto(url);
  assert.ok(
    page.url().startsWith(provider.origin),
    `expected a redirect to the provider (${provider.origin}), got ${page.url()}`,
  );
  await signInAtProvider(page, { username, password, providerOrigin: provider.origin });
  return page.url();
}

/** The JSON body the browser is showing (the FastAPI echo renders as JSON text). */
export async function pageJson(page) {
  const text = await page.evaluate(() => document.body.innerText);
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`page at ${page.url()} is not JSON: ${text.slice(0, 300)}`);
  }
}

/**
 * A `fetch` run inside the page (same origin, the browser's cookies and Sec-Fetch-* headers): what an SPA does.
 * Returns `{ status, redirected, url, headers, text, json }`.
 */
export async function pageFetch(page, path, init = {}) {
  return page.evaluate(async ({ path: p, init: i }) => {
    const res = await fetch(p, { credentials: 'same-origin', ...i });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return {
      status: res.status, redirected: res.redirected, url: res.url, headers: Object.fromEntries(res.headers), text, json,
    };
  }, { path, init });
}

/** `Cookie:` header value carrying the browser's session cookie(s) for `url`, for requests made from Node. */
export async function cookieHeader(context, url, cookieName = DEFAULT_COOKIE_NAME) {
  const cookies = await sessionCookies(context, url, cookieName);
  return cookies.map((c) => `${c.name}=${c.value}`).join('; ');
}

/** Records every request URL the browser makes (for "did it go to the provider / to end_session?"). */
export function recordRequests(page) {
  const urls = [];
  const onRequest = (req) => urls.push(req.url());
  page.on('request', onRequest);
  return { urls, stop: () => page.off('request', onRequest) };
}

/** The `X-Auth-*` headers the upstream received, from an echo body. */
export function authHeaders(echo) {
  return Object.fromEntries(Object.entries(echo.headers).filter(([k]) => k.startsWith('x-auth-')));
}

/**
 * Clicks the example SPA's "Call API" button and checks what FastAPI answered: 200, for Alice, with the session
 * (FastAPI verified the assertion the API side's sidecar sent for the session the UI side created).
 * `apiMeUrl` is the absolute URL of the SPA's `/api/me` call.
 */
export async function callApiFromSpa(page, apiMeUrl) {
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.url() === apiMeUrl),
    page.click('#call-api'),
  ]);
  assert.equal(res.status(), 200);
  await page.waitForSelector('#api-result[data-status="200"]');
  const body = JSON.parse(await page.textContent('#api-result'));
  assert.equal(body.user.name, 'Alice Admin');
  assert.equal(body.user.auth_method, 'session');
  return body;
}
