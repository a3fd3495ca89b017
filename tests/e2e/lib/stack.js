// The end-to-end stack: OpenID provider (tests/e2e/provider), Redis, the example FastAPI upstream, one or more
// oidc-sidecar processes with generated configs, and optionally an "ALB" that routes /api/* to an API sidecar and
// everything else to a UI sidecar serving the example SPA. Every piece listens on a free 127.0.0.1 port.

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

import { freePort, startProcess, tmpDir, waitFor } from './procs.js';

export const E2E_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = path.resolve(E2E_DIR, '../..');
export const SIDECAR_BIN = process.env.OIDC_SIDECAR_BIN
  || path.join(process.env.CARGO_TARGET_DIR ? path.resolve(ROOT, process.env.CARGO_TARGET_DIR) : path.join(ROOT, 'target'), 'debug/oidc-sidecar');
export const FASTAPI_DIR = path.join(ROOT, 'examples/fastapi');
export const SPA_DIR = path.join(ROOT, 'examples/spa');
export const PYTHON = process.env.FASTAPI_PYTHON || path.join(FASTAPI_DIR, '.venv/bin/python');
export const TENANT_ID = '8f2d6b1c-3c4a-4e7b-9a5d-1b2c3d4e5f60';
export const AUDIENCE = 'api://oidc-sidecar-demo';
export const CLIENT_SECRET = 'sidecar-secret';
export const USER_PASSWORD = 'password';
export const DEFAULT_COOKIE_NAME = '__Host-oidc_session';

/**
 * Why the sidecar tests cannot run here, or null. Only a missing sidecar binary is a reason to skip; everything
 * else (provider, Python venv, chromium, Redis) missing is a failure.
 */
export function sidecarMissing() {
  return fs.existsSync(SIDECAR_BIN)
    ? null
    : `oidc-sidecar binary not found at ${SIDECAR_BIN} (build it with \`cargo build -p oidc-sidecar\`, or set OIDC_SIDECAR_BIN)`;
}

export const newSessionKey = () => randomBytes(32).toString('base64');

/** A P-256 PKCS#8 PEM for `[identity] signing_key_file`, so several sidecars sign assertions with one key. */
export function writeAssertionKey(dir) {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const file = path.join(dir, 'assertion.pem');
  fs.writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return file;
}

/**
 * An RSA key pair for `private_key_jwt`: the private key as PKCS#8 PEM (`[provider] private_key_file`) and the public
 * key as a JWKS file (the provider's `SIDECAR_JWKS_FILE`). Returns `{ keyFile, jwksFile, jwk }`.
 */
export function writeClientAuthKey(dir, { kid = 'sidecar-e2e' } = {}) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyFile = path.join(dir, `${kid}.pem`);
  fs.writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' };
  const jwksFile = path.join(dir, `${kid}.jwks.json`);
  fs.writeFileSync(jwksFile, JSON.stringify({ keys: [jwk] }));
  return { keyFile, jwksFile, jwk };
}

/** Names the session cookie may have: the configured one, or without `__Host-` on plain-http localhost. */
export function sessionCookieNames(configured = DEFAULT_COOKIE_NAME) {
  return [...new Set([configured, configured.replace(/^__Host-/, '')])];
}

/** The session cookie(s) in a browser context: the base name and any chunk (`name`, `name.0`, `name-1`, ...). */
export async function sessionCookies(context, url, configured = DEFAULT_COOKIE_NAME) {
  const names = sessionCookieNames(configured);
  const all = await context.cookies(url);
  return all.filter((c) => names.some((n) => c.name === n || (c.name.startsWith(n) && /^[._-]?\d+$/.test(c.name.slice(n.length)))));
}

// ---------------------------------------------------------------------------------------------------------------
export async function startProvider({ port, redirectUris, postLogoutRedirectUris, accessTokenTtl, env = {}, logDir } = {}) {
  const p = port || await freePort();
  const issuer = `http://127.0.0.1:${p}/${TENANT_ID}/v2.0`;
  const proc = await startProcess({
    name: 'provider',
    cmd: process.execPath,
    args: [path.join(E2E_DIR, 'provider/server.js')],
    env: {
      PORT: String(p),
      ISSUER: issuer,
      TENANT_ID,
      CLIENT_SECRET,
      REDIRECT_URIS: (redirectUris || []).join(','),
      ...(postLogoutRedirectUris ? { POST_LOGOUT_REDIRECT_URIS: postLogoutRedirectUris.join(',') } : {}),
      ...(accessTokenTtl ? { ACCESS_TOKEN_TTL: String(accessTokenTtl) } : {}),
      ...env,
    },
    logDir,
    readyLine: /^ready /,
  });
  const origin = `http://127.0.0.1:${p}`;
  return {
    proc,
    port: p,
    origin,
    issuer,
    tenantId: TENANT_ID,
    async stats() { return (await fetch(`${origin}/_test/stats`)).json(); },
    async setSwitches(s) {
      const res = await fetch(`${origin}/_test/switches`, { method: 'POST', body: JSON.stringify(s) });
      return res.json();
    },
    stop: () => proc.stop(),
  };
}

/**
 * A private redis-server. It saves its data on SIGTERM (`--save` set), so `stop()` then `start()` keeps sessions,
 * like an ElastiCache failover that keeps data.
 */
export async function startRedis({ port, logDir } = {}) {
  const p = port || await freePort();
  const dataDir = tmpDir('oidc-e2e-redis-');
  const start = () => startProcess({
    name: `redis-${p}`,
    cmd: process.env.REDIS_SERVER || 'redis-server',
    args: ['--port', String(p), '--bind', '127.0.0.1', '--dir', dataDir, '--save', '3600 1', '--appendonly', 'no'],
    logDir,
    readyLine: /Ready to accept connections/,
  });
  const redis = { port: p, url: `redis://127.0.0.1:${p}/0`, proc: await start() };
  redis.stop = () => redis.proc.stop();
  redis.start = async () => { redis.proc = await start(); };
  return redis;
}

export async function startUpstream({ port, jwksUrl, audience, logDir, env = {} } = {}) {
  const p = port || await freePort();
  if (!fs.existsSync(PYTHON)) {
    throw new Error(`${PYTHON} missing: run scripts/install-e2e-deps.sh (creates examples/fastapi/.venv)`);
  }
  const proc = await startProcess({
    name: `fastapi-${p}`,
    cmd: PYTHON,
    args: ['-m', 'uvicorn', 'app:app', '--host', '127.0.0.1', '--port', String(p), '--no-access-log'],
    cwd: FASTAPI_DIR,
    env: {
      SIDECAR_JWKS_URL: jwksUrl || 'http://127.0.0.1:9901/.well-known/jwks.json',
      ...(audience ? { SIDECAR_AUDIENCE: audience } : {}),
      ...env,
    },
    logDir,
    readyUrl: `http://127.0.0.1:${p}/health`,
  });
  return { proc, port: p, url: `http://127.0.0.1:${p}`, stop: () => proc.stop() };
}

// ---------------------------------------------------------------------------------------------------------------
const q = (s) => JSON.stringify(String(s));
const qa = (a) => `[${a.map(q).join(', ')}]`;

/** Default routes for the API host: the FastAPI example's own rules, enforced again at the sidecar. */
export const API_ROUTES = [
  { path: '/health', access: 'public' },
  { path: '/admin/', roles: ['Admin'] },
  { path: '/api/items', scopes: ['user.read'] },
  { path: '/', access: 'authenticated' },
];

/** Routes for a UI host serving the SPA: everything behind login except assets and the favicon. */
export const SPA_ROUTES = [
  { path: '/assets/', access: 'public' },
  { exact: '/favicon.ico', access: 'public' },
  { path: '/', access: 'authenticated' },
];

function routeToml(r) {
  const lines = ['[[hosts.routes]]'];
  if (r.exact) lines.push(`exact = ${q(r.exact)}`); else lines.push(`path = ${q(r.path)}`);
  if (r.methods) lines.push(`methods = ${qa(r.methods)}`);
  if (r.access) lines.push(`access = ${q(r.access)}`);
  for (const k of ['roles', 'roles_all', 'scopes', 'scopes_any', 'groups']) if (r[k]) lines.push(`${k} = ${qa(r[k])}`);
  return lines.join('\n');
}

/**
 * The sidecar's TOML for one process (shape: /work/helper-toml-shape.md, docs/configuration.md).
 * `hosts`: [{ name, upstream | static_root, login, external_url, routes, forward_access_token, allowed_origins }].
 */
export function sidecarToml({
  port, adminPort, issuer, clientId = 'sidecar', clientSecret = CLIENT_SECRET, clientAuth = 'client_secret_basic',
  store = 'cookie', redisUrl, sessionKeys, cookieName = DEFAULT_COOKIE_NAME, refreshMargin = '60s',
  inactivityTimeout = '1h', maxLifetime = '8h', maxCookieBytes, trustedProxies = [], hosts, signingKeyFile, privateKeyFile, privateKeyId,
  scopes = ['openid', 'profile', 'email', 'offline_access', `${AUDIENCE}/user.read`],
}) {
  const out = [];
  out.push('[server]');
  out.push(`listen = ${q(`127.0.0.1:${port}`)}`);
  out.push(`admin_listen = ${q(`127.0.0.1:${adminPort}`)}`);
  out.push('threads = 1');
  out.push('health_path = "/healthz"');
  out.push('log_format = "text"');
  out.push('grace_period = "0s"');
  out.push('shutdown_timeout = "2s"');
  out.push(`trusted_proxies = ${qa(trustedProxies)}`);
  out.push('');
  out.push('[provider]');
  out.push(`issuer = ${q(issuer)}`);
  out.push(`client_id = ${q(clientId)}`);
  // `clientSecret: null` leaves the secret out (private_key_jwt needs none).
  if (clientSecret !== null) out.push(`client_secret = ${q(clientSecret)}`);
  out.push(`client_auth = ${q(clientAuth)}`);
  if (privateKeyFile) out.push(`private_key_file = ${q(privateKeyFile)}`);
  if (privateKeyId) out.push(`private_key_id = ${q(privateKeyId)}`);
  out.push(`audiences = ${qa([AUDIENCE])}`);
  out.push(`required_tenant = ${q(TENANT_ID)}`);
  out.push('algorithms = ["RS256"]');
  out.push(`scopes = ${qa(scopes)}`);
  out.push('');
  out.push('[identity]');
  out.push('header_prefix = "X-Auth-"');
  out.push('assertion_ttl = "5m"');
  out.push('assertion_issuer = "oidc-sidecar"');
  if (signingKeyFile) out.push(`signing_key_file = ${q(signingKeyFile)}`);
  out.push('');
  out.push('[session]');
  out.push(`store = ${q(store)}`);
  out.push(`cookie_name = ${q(cookieName)}`);
  out.push(`keys = ${qa(sessionKeys)}`);
  out.push(`inactivity_timeout = ${q(inactivityTimeout)}`);
  out.push(`max_lifetime = ${q(maxLifetime)}`);
  out.push(`refresh_margin = ${q(refreshMargin)}`);
  if (maxCookieBytes) out.push(`max_cookie_bytes = ${maxCookieBytes}`);
  if (redisUrl) out.push(`redis_url = ${q(redisUrl)}`);
  for (const h of hosts) {
    out.push('');
    out.push('[[hosts]]');
    out.push(`name = ${q(h.name || '127.0.0.1')}`);
    if (h.static_root) out.push(`static_root = ${q(h.static_root)}`); else out.push(`upstream = ${q(h.upstream)}`);
    out.push(`login = ${q(h.login || 'redirect')}`);
    if (h.forward_access_token !== undefined) out.push(`forward_access_token = ${h.forward_access_token}`);
    if (h.allowed_origins) out.push(`allowed_origins = ${qa(h.allowed_origins)}`);
    if (h.external_url) out.push(`external_url = ${q(h.external_url)}`);
    for (const r of h.routes || API_ROUTES) {
      out.push('');
      out.push(routeToml(r));
    }
  }
  return `${out.join('\n')}\n`;
}

/**
 * Starts one sidecar process from `sidecarToml(options)`. The handle can `restart(changes)` on the same ports with
 * changed options (key rotation, another store).
 */
export async function startSidecar(options) {
  const opts = { ...options };
  opts.port = opts.port || await freePort();
  opts.adminPort = opts.adminPort || await freePort();
  const dir = opts.dir || tmpDir('oidc-e2e-sidecar-');
  const configPath = path.join(dir, `sidecar-${opts.port}.toml`);
  const sidecar = {
    port: opts.port,
    adminPort: opts.adminPort,
    url: `http://127.0.0.1:${opts.port}`,
    adminUrl: `http://127.0.0.1:${opts.adminPort}`,
    jwksUrl: `http://127.0.0.1:${opts.adminPort}/.well-known/jwks.json`,
    configPath,
    options: opts,
  };
  const launch = async () => {
    fs.writeFileSync(configPath, sidecarToml(sidecar.options), { mode: 0o600 });
    sidecar.proc = await startProcess({
      name: `sidecar-${opts.port}`,
      cmd: SIDECAR_BIN,
      args: ['run', '--config', configPath],
      env: { RUST_LOG: process.env.RUST_LOG || 'info', RUST_BACKTRACE: '1' },
      logDir: opts.logDir,
      readyUrl: `${sidecar.url}/healthz`,
      timeoutMs: 60_000,
    });
    // Health answers before the provider's metadata may be loaded; wait for the admin JWKS too.
    await waitFor(async () => (await fetch(sidecar.jwksUrl)).ok, { what: 'sidecar admin JWKS', timeoutMs: 30_000 });
  };
  sidecar.stop = () => sidecar.proc?.stop();
  sidecar.restart = async (changes = {}) => {
    await sidecar.stop();
    sidecar.options = { ...sidecar.options, ...changes };
    await launch();
  };
  await launch();
  return sidecar;
}

// ---------------------------------------------------------------------------------------------------------------
/**
 * A minimal stand-in for the ALB: path-based listener rules (`/api/*` -> the API sidecar, the rest -> the UI
 * sidecar), Host preserved, X-Forwarded-For appended, X-Forwarded-Proto/Port set.
 */
export async function startAlb({ port, rules, defaultPort }) {
  const p = port || await freePort();
  const server = http.createServer((req, res) => {
    const rule = rules.find((r) => req.url.startsWith(r.prefix));
    const target = rule ? rule.port : defaultPort;
    const headers = { ...req.headers };
    const xff = req.headers['x-forwarded-for'];
    headers['x-forwarded-for'] = xff ? `${xff}, ${req.socket.remoteAddress}` : req.socket.remoteAddress;
    headers['x-forwarded-proto'] = 'http';
    headers['x-forwarded-port'] = String(p);
    const up = http.request({ host: '127.0.0.1', port: target, method: req.method, path: req.url, headers }, (ur) => {
      res.writeHead(ur.statusCode, ur.rawHeaders.length ? rawToObject(ur.rawHeaders) : ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('alb: target unreachable');
    });
    req.pipe(up);
  });
  await new Promise((resolve) => { server.listen(p, '127.0.0.1', resolve); });
  return { port: p, url: `http://127.0.0.1:${p}`, stop: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }) };
}

function rawToObject(raw) {
  // Keep repeated headers (Set-Cookie) as arrays.
  const out = {};
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i].toLowerCase();
    if (out[k] === undefined) out[k] = raw[i + 1];
    else out[k] = [].concat(out[k], raw[i + 1]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
/**
 * The usual stack for a test file: provider, FastAPI upstream, `sidecars` sidecar processes for host 127.0.0.1 in
 * front of it (same session keys), and Redis when `store = "redis"`.
 */
export async function startStack({
  store = 'cookie', sidecars = 1, accessTokenTtl, providerEnv, sessionKeys = [newSessionKey()], sidecarOptions = {},
  hostOptions = {}, routes, withRedis = store === 'redis',
} = {}) {
  const logDir = tmpDir('oidc-e2e-logs-');
  const ports = [];
  for (let i = 0; i < sidecars; i += 1) ports.push({ port: await freePort(), adminPort: await freePort() });
  const redirectUris = ports.map(({ port }) => `http://127.0.0.1:${port}/oauth2/callback`);
  const stack = { logDir, sidecars: [] };
  const signingKeyFile = writeAssertionKey(tmpDir('oidc-e2e-keys-'));
  try {
    const frontchannel = ports.map(({ port }) => `http://127.0.0.1:${port}/oauth2/frontchannel-logout`).join(',');
    stack.provider = await startProvider({
      redirectUris, accessTokenTtl, env: { FRONTCHANNEL_LOGOUT_URIS: frontchannel, ...providerEnv }, logDir,
    });
    if (withRedis) stack.redis = await startRedis({ logDir });
    stack.upstream = await startUpstream({
      jwksUrl: `http://127.0.0.1:${ports[0].adminPort}/.well-known/jwks.json`, logDir,
    });
    for (const { port, adminPort } of ports) {
      stack.sidecars.push(await startSidecar({
        port, adminPort, logDir, issuer: stack.provider.issuer, store, redisUrl: stack.redis?.url, sessionKeys, signingKeyFile,
        hosts: [{
          name: '127.0.0.1', upstream: stack.upstream.url, external_url: `http://127.0.0.1:${port}`, routes, ...hostOptions,
        }],
        ...sidecarOptions,
      }));
    }
  } catch (err) {
    await stopStack(stack);
    throw err;
  }
  [stack.sidecar] = stack.sidecars;
  stack.stop = () => stopStack(stack);
  return stack;
}

export async function stopStack(stack) {
  for (const s of stack.sidecars || []) await s.stop?.();
  await stack.alb?.stop();
  await stack.upstream?.stop();
  await stack.redis?.stop();
  await stack.provider?.stop();
}

/** Dumps the tail of every log of the stack (for a failing test's diagnostics). */
export function stackLogs(stack, chars = 3000) {
  const files = fs.existsSync(stack.logDir) ? fs.readdirSync(stack.logDir).filter((f) => f.endsWith('.log')) : [];
  return files.map((f) => `--- ${f} ---\n${fs.readFileSync(path.join(stack.logDir, f), 'utf8').slice(-chars)}`).join('\n');
}
