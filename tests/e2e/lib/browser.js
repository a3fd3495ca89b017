// Launches Debian's chromium (never a downloaded browser) through playwright-core, with a fresh profile per call.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function chromiumAvailable() {
  return fs.existsSync(CHROMIUM);
}

/**
 * A browser context with its own fresh user-data-dir (so no cookie survives between tests unless the test keeps the
 * context). Returns `{ context, page, userDataDir, close }`; `close` removes the profile.
 */
export async function launchBrowser({ viewport = { width: 1200, height: 800 }, ...options } = {}) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oidc-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
    timeout: 60_000,
    ...options,
  });
  context.setDefaultTimeout(20_000);
  context.setDefaultNavigationTimeout(30_000);
  const page = context.pages()[0] || (await context.newPage());
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await context.close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
  };
  return { context, page, userDataDir, close };
}

/**
 * Fills the e2e provider's login form (fields `username` / `password`, button `#submit`) on the current page and
 * waits until the browser has left the provider.
 */
export async function signInAtProvider(page, { username = 'alice', password = 'password', providerOrigin } = {}) {
  await page.waitForSelector('#login-form');
  await page.fill('#username', username);
  await page.fill('#password', password);
  await Promise.all([
    providerOrigin
      ? page.waitForURL((u) => !String(u).startsWith(providerOrigin), { timeout: 30_000 })
      : page.waitForLoadState('load'),
    page.click('#submit'),
  ]);
}
