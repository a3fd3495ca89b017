// A real OpenID provider (npm `oidc-provider`) configured to look like Microsoft Entra ID, for oidc-sidecar's
// end-to-end tests and demo.
//
// Entra look-alike points: the issuer is `http://HOST:PORT/<tenant-guid>/v2.0` and the endpoints sit where Entra puts
// them (`/<tenant>/oauth2/v2.0/authorize`, `/token`, `/logout`, `/<tenant>/discovery/v2.0/keys`); access tokens are
// RS256 JWTs for a resource (`aud` = the API's App ID URI) carrying `scp` (space-separated string), `roles`,
// `groups`, `tid`, `oid`, `azp`, `ver`; app-only tokens carry `roles` and `idtyp: "app"` and no `scp`; Entra-style
// scope names (`api://app/user.read`, `api://app/.default`) are accepted; refresh tokens are issued to the
// confidential client without `prompt=consent` and rotate on every use; end_session takes `id_token_hint` and
// `post_logout_redirect_uri`.
//
// Everything is configured from the environment (see README.md beside this file). Prints `ready <issuer>` on stdout
// once it listens.

import http from 'node:http';
import fs from 'node:fs';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import querystring from 'node:querystring';

import Provider, { errors } from 'oidc-provider';

import { buildUsers, userClaims, guid, APP_ROLES } from './accounts.js';

const env = process.env;
const HOST = env.HOST || '127.0.0.1';
const PORT = Number(env.PORT || 9400);
const TENANT_ID = env.TENANT_ID || '8f2d6b1c-3c4a-4e7b-9a5d-1b2c3d4e5f60';
const ISSUER = (env.ISSUER || `http://${HOST}:${PORT}/${TENANT_ID}/v2.0`).replace(/\/$/, '');
const CLIENT_ID = env.CLIENT_ID || 'sidecar';
const CLIENT_SECRET = env.CLIENT_SECRET || 'sidecar-secret';
const REDIRECT_URIS = list(env.REDIRECT_URIS || 'http://127.0.0.1:8080/oauth2/callback');
const POST_LOGOUT_REDIRECT_URIS = env.POST_LOGOUT_REDIRECT_URIS
  ? list(env.POST_LOGOUT_REDIRECT_URIS)
  : [...new Set(REDIRECT_URIS.flatMap((u) => { const o = new URL(u).origin; return [o, `${o}/`]; }))];
// Entra front-channel logout: after a sign-out the logout page loads each app's logout URL (here in hidden iframes).
const FRONTCHANNEL_LOGOUT_URIS = list(env.FRONTCHANNEL_LOGOUT_URIS || '');
const AUDIENCE = env.AUDIENCE || 'api://oidc-sidecar-demo';
const API_SCOPES = list(env.API_SCOPES || 'user.read user.write', /[\s,]+/);
const ACCESS_TOKEN_TTL = seconds(env.ACCESS_TOKEN_TTL, 3600);
const ID_TOKEN_TTL = seconds(env.ID_TOKEN_TTL, 3600);
const REFRESH_TOKEN_TTL = seconds(env.REFRESH_TOKEN_TTL, 14 * 24 * 3600);
const USER_PASSWORD = env.USER_PASSWORD || 'password';
const POSTMAN_SECRET = env.POSTMAN_SECRET || 'postman-secret';
const DAEMON_SECRET = env.DAEMON_SECRET || 'daemon-secret';
const ROTATE_REFRESH_TOKENS = env.ROTATE_REFRESH_TOKENS !== '0';
// oidc-provider takes client_secret_basic and client_secret_post interchangeably (as Entra does); with
// STRICT_CLIENT_AUTH=1 the token endpoint refuses a method other than the client's registered one.
const STRICT_CLIENT_AUTH = env.STRICT_CLIENT_AUTH === '1';
const users = buildUsers({ groupCount: Number(env.GROUP_COUNT || 200) });

function list(value, sep = /[\s,]+/) {
  return String(value).split(sep).map((s) => s.trim()).filter(Boolean);
}

function seconds(value, fallback) {
  if (value === undefined || value === '') return fallback;
  const m = /^(\d+)\s*(s|m|h)?$/.exec(String(value).trim());
  if (!m) throw new Error(`invalid duration ${JSON.stringify(value)} (use seconds, or 30s / 5m / 1h)`);
  return Number(m[1]) * ({ s: 1, m: 60, h: 3600 }[m[2] || 's']);
}

function htmlEscape(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

// --- Layout: Entra keeps the issuer at /<tenant>/v2.0 but the endpoints at /<tenant>/oauth2/v2.0/... -------------
const issuerPath = new URL(ISSUER).pathname.replace(/\/$/, '');
const entraLayout = issuerPath.endsWith('/v2.0');
// Where the provider (a Koa app) is mounted; its routes below are relative to this.
const MOUNT = entraLayout ? issuerPath.slice(0, -'/v2.0'.length) : issuerPath;
const routes = entraLayout
  ? {
    authorization: '/oauth2/v2.0/authorize',
    token: '/oauth2/v2.0/token',
    end_session: '/oauth2/v2.0/logout',
    jwks: '/discovery/v2.0/keys',
    userinfo: '/openid/userinfo',
    revocation: '/oauth2/v2.0/revoke',
    introspection: '/oauth2/v2.0/introspect',
  }
  : { authorization: '/authorize', token: '/token', end_session: '/logout', jwks: '/keys', userinfo: '/userinfo' };
const DISCOVERY_PATH = `${issuerPath}/.well-known/openid-configuration`;
const INTERACTION_PREFIX = `${MOUNT}/interaction/`;

// --- Signing keys: RS256, Entra-style JWKS entries (kid, no alg) ------------------------------------------------
function signingKeys() {
  if (env.KEYS_FILE && fs.existsSync(env.KEYS_FILE)) {
    return JSON.parse(fs.readFileSync(env.KEYS_FILE, 'utf8'));
  }
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID().replace(/-/g, '').slice(0, 27), use: 'sig' };
  const keys = { keys: [jwk] };
  if (env.KEYS_FILE) fs.writeFileSync(env.KEYS_FILE, JSON.stringify(keys), { mode: 0o600 });
  return keys;
}

// --- Clients ---------------------------------------------------------------------------------------------------
const webClient = (clientId, tokenEndpointAuthMethod, extra = {}) => ({
  client_id: clientId,
  client_name: `oidc-sidecar (${tokenEndpointAuthMethod})`,
  token_endpoint_auth_method: tokenEndpointAuthMethod,
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: REDIRECT_URIS,
  post_logout_redirect_uris: POST_LOGOUT_REDIRECT_URIS,
  id_token_signed_response_alg: 'RS256',
  ...extra,
});
const clients = [
  webClient(CLIENT_ID, 'client_secret_basic', { client_secret: CLIENT_SECRET }),
  webClient(`${CLIENT_ID}-post`, 'client_secret_post', { client_secret: CLIENT_SECRET }),
  {
    client_id: 'postman', client_secret: POSTMAN_SECRET, client_name: 'Postman (client credentials)',
    grant_types: ['client_credentials'], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'client_secret_basic',
  },
  {
    client_id: 'daemon', client_secret: DAEMON_SECRET, client_name: 'Daemon (client credentials, post)',
    grant_types: ['client_credentials'], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'client_secret_post',
  },
];
if (env.SIDECAR_JWKS_FILE) {
  // private_key_jwt (Entra certificate credentials): the sidecar signs a client assertion with its own key.
  const jwks = JSON.parse(fs.readFileSync(env.SIDECAR_JWKS_FILE, 'utf8'));
  clients.push(webClient(`${CLIENT_ID}-pkjwt`, 'private_key_jwt', { jwks, token_endpoint_auth_signing_alg: 'RS256' }));
}

// --- Test statistics, and switches that let tests make the provider misbehave ----------------------------------
// `token_requests` counts token-endpoint calls by "<client_id> <how it authenticated>" as seen on the wire
// (Basic header, client_secret in the body, or a client_assertion), `grants_by_client` successful grants per client.
const stats = {
  grants: {}, grant_errors: {}, grants_by_client: {}, token_requests: {}, assertion_kids: {}, logins: 0, failed_logins: 0, end_session: 0,
};
const switches = { refresh: true };
const bump = (obj, key) => { obj[key] = (obj[key] || 0) + 1; };

// --- Provider configuration --------------------------------------------------------------------------------------
const configuration = {
  clients,
  jwks: signingKeys(),
  cookies: { keys: [env.COOKIE_KEY || 'e2e-provider-cookie-key-not-secret'] },
  routes,
  pkce: { required: () => true },
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  claims: {
    openid: ['sub', 'oid', 'tid', 'ver'],
    profile: ['name', 'preferred_username', 'roles', 'groups', 'department'],
    email: ['email'],
  },
  // Entra puts profile claims, roles and groups in the ID token, not only behind userinfo.
  conformIdTokenClaims: false,
  async findAccount(ctx, sub) {
    const u = [...users.values()].find((x) => x.oid === sub);
    if (!u) return undefined;
    return { accountId: u.oid, async claims() { return userClaims(u, TENANT_ID); } };
  },
  // First-party app: consent is granted on the user's behalf (as an Entra admin consent would), so logins are a
  // single form. All requested scopes are added to the grant.
  async loadExistingGrant(ctx) {
    const { oidc } = ctx;
    const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
    let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
    if (!grant) grant = new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
    grant.addOIDCScope('openid profile email offline_access');
    grant.addResourceScope(AUDIENCE, API_SCOPES.join(' '));
    await grant.save();
    return grant;
  },
  // Entra issues a refresh token whenever offline_access is asked for, without prompt=consent; and here to the web
  // clients always, so the sidecar's refresh path is exercised even if it forgets offline_access.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: () => ROTATE_REFRESH_TOKENS,
  expiresWithSession: async () => false,
  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    ClientCredentials: ACCESS_TOKEN_TTL,
    IdToken: ID_TOKEN_TTL,
    RefreshToken: REFRESH_TOKEN_TTL,
    AuthorizationCode: 120,
    Interaction: 600,
    Session: 8 * 3600,
    Grant: REFRESH_TOKEN_TTL,
  },
  clientBasedCORS: () => true,
  responseTypes: ['code'],
  interactions: {
    url: (ctx, interaction) => `${MOUNT}/interaction/${interaction.uid}`,
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => AUDIENCE,
      useGrantedResource: () => true,
      async getResourceServerInfo(ctx, resourceIndicator) {
        if (resourceIndicator !== AUDIENCE) throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
        return {
          scope: API_SCOPES.join(' '),
          audience: AUDIENCE,
          accessTokenTTL: ACCESS_TOKEN_TTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
    rpInitiatedLogout: {
      enabled: true,
      // Entra signs the user out without asking; auto-submit the provider's confirmation form.
      async logoutSource(ctx, form) {
        const autoForm = form.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>');
        const frames = FRONTCHANNEL_LOGOUT_URIS
          .map((u) => `<iframe class="fc" src="${htmlEscape(u)}" style="display:none"></iframe>`).join('');
        ctx.type = 'html';
        // Front-channel logout URLs load first (bounded wait), then the sign-out form submits itself.
        ctx.body = page('Signing out', `${autoForm}${frames}
          <p>Signing you out&hellip;</p><noscript><button type="submit" form="op.logoutForm" id="logout">Sign out</button></noscript>
          <script>
            (function () {
              var frames = document.querySelectorAll('iframe.fc');
              var pending = frames.length;
              var done = false;
              function submit() { if (!done) { done = true; document.getElementById('op.logoutForm').submit(); } }
              frames.forEach(function (f) { f.addEventListener('load', function () { pending -= 1; if (pending <= 0) submit(); }); });
              if (!pending) submit(); else setTimeout(submit, 5000);
            }());
          </script>`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.type = 'html';
        ctx.body = page('Signed out', '<h1 id="signed-out">You have been signed out.</h1>');
      },
    },
  },
  formats: {
    customizers: {
      // Reshape oidc-provider's RFC 9068 access token into Entra's v2 access token.
      async jwt(ctx, token, jwt) {
        const p = jwt.payload;
        jwt.header = { typ: 'JWT' };
        const scope = p.scope;
        delete p.scope;
        delete p.client_id;
        p.nbf = p.iat;
        p.azp = token.clientId;
        p.azpacr = '1';
        p.tid = TENANT_ID;
        p.ver = '2.0';
        p.uti = p.jti;
        if (token.kind === 'ClientCredentials') {
          const roles = APP_ROLES[token.clientId] || [];
          const spOid = guid(`sp-${token.clientId}`);
          p.sub = spOid;
          p.oid = spOid;
          p.idtyp = 'app';
          if (roles.length) p.roles = roles;
          return;
        }
        const u = [...users.values()].find((x) => x.oid === token.accountId);
        if (u) {
          const c = userClaims(u, TENANT_ID);
          for (const k of ['oid', 'name', 'preferred_username', 'email', 'roles', 'groups', '_claim_names', '_claim_sources']) {
            if (c[k] !== undefined) p[k] = c[k];
          }
        }
        p.idtyp = 'user';
        const apiScopes = String(scope || '').split(' ').filter((s) => API_SCOPES.includes(s));
        if (apiScopes.length) p.scp = apiScopes.join(' ');
      },
    },
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', `<h1 id="error">${htmlEscape(out.error)}</h1><p id="error_description">${htmlEscape(out.error_description || '')}</p>`);
  },
};

const provider = new Provider(ISSUER, configuration);
provider.on('grant.success', (ctx) => {
  const grantType = ctx.oidc.params?.grant_type || 'unknown';
  bump(stats.grants, grantType);
  const clientId = ctx.oidc.client?.clientId || 'unknown';
  stats.grants_by_client[clientId] = stats.grants_by_client[clientId] || {};
  bump(stats.grants_by_client[clientId], grantType);
});
provider.on('grant.error', (ctx) => bump(stats.grant_errors, ctx.oidc.params?.grant_type || 'unknown'));
provider.on('end_session.success', () => { stats.end_session += 1; });
provider.on('server_error', (ctx, err) => console.error('server_error', err));
const providerCallback = provider.callback();

// --- Entra-style scope names ------------------------------------------------------------------------------------
// `api://app/user.read` -> scope `user.read` + resource `api://app`; `api://app/.default` -> all API scopes
// (authorize) or just the resource (client credentials, where Entra issues app roles and no scopes).
function entraScopes(scope, { clientCredentials = false } = {}) {
  if (!scope) return { scope, resource: undefined };
  let resource;
  const out = [];
  for (const item of String(scope).split(' ').filter(Boolean)) {
    if (item.startsWith(`${AUDIENCE}/`)) {
      resource = AUDIENCE;
      const short = item.slice(AUDIENCE.length + 1);
      if (short === '.default') {
        if (!clientCredentials) out.push(...API_SCOPES);
      } else {
        out.push(short);
      }
    } else {
      out.push(item);
    }
  }
  return { scope: [...new Set(out)].join(' '), resource };
}

/** "<client_id> <method>" for a token request, from what it carries (not from what the client registered). */
function observedClientAuth(req, body) {
  const basic = /^Basic\s+(.+)$/i.exec(String(req.headers.authorization || ''));
  if (basic) {
    const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
    const id = decodeURIComponent(decoded.slice(0, Math.max(decoded.indexOf(':'), 0)).replace(/\+/g, ' '));
    return `${id} client_secret_basic`;
  }
  if (body.client_assertion) {
    const type = body.client_assertion_type === 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer' ? '' : '(bad type)';
    return `${body.client_id || '?'} private_key_jwt${type}`;
  }
  if (body.client_secret !== undefined) return `${body.client_id || '?'} client_secret_post`;
  return `${body.client_id || '?'} none`;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > 1 << 20) { reject(new Error('body too large')); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function page(title, body) {
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${htmlEscape(title)}</title>
<style>body{font-family:sans-serif;max-width:28rem;margin:3rem auto}label{display:block;margin:.6rem 0}input{width:100%}.err{color:#b00}</style>
</head><body>${body}</body></html>`;
}

function send(res, status, type, body, headers = {}) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...headers });
  res.end(body);
}

// --- Login interaction: a plain form with known field names, easy to drive from Playwright ---------------------
function loginPage(uid, details, error) {
  const client = details.params.client_id;
  return page('Sign in', `<h1>Sign in</h1>
<p>to <b id="client">${htmlEscape(client)}</b> (test provider, tenant ${htmlEscape(TENANT_ID)})</p>
${error ? `<p class="err" id="login-error">${htmlEscape(error)}</p>` : ''}
<form method="post" action="${INTERACTION_PREFIX}${uid}/login" id="login-form">
<label>Username <input name="username" id="username" autocomplete="username" autofocus value="${htmlEscape(details.params.login_hint || '')}"></label>
<label>Password <input name="password" id="password" type="password" autocomplete="current-password"></label>
<button type="submit" id="submit">Sign in</button>
</form>
<form method="post" action="${INTERACTION_PREFIX}${uid}/abort"><button type="submit" id="cancel">Cancel</button></form>
<p><small>Users: ${[...users.keys()].map(htmlEscape).join(', ')}.</small></p>`);
}

async function handleInteraction(req, res, rest) {
  const [uid, action] = rest.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, 'text/plain', 'interaction mismatch');
  if (req.method === 'GET' && !action) {
    if (details.prompt.name === 'login') return send(res, 200, 'text/html; charset=utf-8', loginPage(uid, details));
    // Consent is pre-granted by loadExistingGrant; anything else left here is granted as well.
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    const missing = details.prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  if (req.method === 'POST' && action === 'login') {
    const form = querystring.parse(await readBody(req));
    const u = users.get(String(form.username || '').trim().toLowerCase().replace(/@.*$/, ''));
    if (!u || form.password !== USER_PASSWORD) {
      stats.failed_logins += 1;
      return send(res, 200, 'text/html; charset=utf-8', loginPage(uid, details, 'Invalid username or password.'));
    }
    stats.logins += 1;
    return provider.interactionFinished(req, res, { login: { accountId: u.oid, amr: ['pwd'] } }, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && action === 'abort') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'The user cancelled the sign-in.',
    }, { mergeWithLastSubmission: false });
  }
  return send(res, 404, 'text/plain', 'not found');
}

// --- Test control endpoints (not part of any real provider) ------------------------------------------------------
async function handleTestControl(req, res, path) {
  if (path === '/_test/stats' && req.method === 'GET') {
    return send(res, 200, 'application/json', JSON.stringify({ ...stats, switches }));
  }
  if (path === '/_test/switches' && req.method === 'POST') {
    const body = JSON.parse((await readBody(req)) || '{}');
    if (typeof body.refresh === 'boolean') switches.refresh = body.refresh;
    return send(res, 200, 'application/json', JSON.stringify(switches));
  }
  if (path === '/_test/config' && req.method === 'GET') {
    return send(res, 200, 'application/json', JSON.stringify({
      issuer: ISSUER, tenant_id: TENANT_ID, client_id: CLIENT_ID, audience: AUDIENCE, api_scopes: API_SCOPES,
      redirect_uris: REDIRECT_URIS, post_logout_redirect_uris: POST_LOGOUT_REDIRECT_URIS,
      frontchannel_logout_uris: FRONTCHANNEL_LOGOUT_URIS,
      access_token_ttl: ACCESS_TOKEN_TTL, users: [...users.keys()],
    }));
  }
  return send(res, 404, 'text/plain', 'not found');
}

const tokenPath = `${MOUNT}${routes.token}`;
const authorizePath = `${MOUNT}${routes.authorization}`;

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://provider.invalid');
    const path = url.pathname;
    if (path.startsWith('/_test/')) return await handleTestControl(req, res, path);
    if (path.startsWith(INTERACTION_PREFIX)) return await handleInteraction(req, res, path.slice(INTERACTION_PREFIX.length));

    if (path === authorizePath && req.method === 'GET') {
      const { scope, resource } = entraScopes(url.searchParams.get('scope'));
      if (resource) {
        url.searchParams.set('scope', scope);
        if (!url.searchParams.has('resource')) url.searchParams.set('resource', resource);
        req.url = url.pathname + url.search;
      }
    }
    if (path === tokenPath && req.method === 'POST'
      && String(req.headers['content-type'] || '').startsWith('application/x-www-form-urlencoded')) {
      // Parse here so Entra-style scopes can be rewritten; oidc-provider then takes the parsed body.
      const body = querystring.parse(await readBody(req));
      const observed = observedClientAuth(req, body);
      bump(stats.token_requests, observed);
      if (body.client_assertion) {
        // The `kid` the client put in its assertion's header ("(none)" without one): how the key was picked.
        let kid = '(unreadable)';
        try {
          kid = JSON.parse(Buffer.from(String(body.client_assertion).split('.')[0], 'base64url').toString('utf8')).kid || '(none)';
        } catch { /* counted as unreadable */ }
        bump(stats.assertion_kids, kid);
      }
      const [observedId, observedMethod] = observed.split(' ');
      const registered = clients.find((c) => c.client_id === observedId)?.token_endpoint_auth_method;
      if (STRICT_CLIENT_AUTH && registered && registered !== observedMethod) {
        bump(stats.grant_errors, body.grant_type || 'unknown');
        return send(res, 401, 'application/json', JSON.stringify({
          error: 'invalid_client',
          error_description: `client ${observedId} is registered for ${registered}, not ${observedMethod}`,
        }));
      }
      if (body.grant_type === 'refresh_token' && !switches.refresh) {
        bump(stats.grant_errors, 'refresh_token');
        return send(res, 400, 'application/json', JSON.stringify({
          error: 'invalid_grant', error_description: 'refresh disabled by the test (AADSTS700082-like)',
        }));
      }
      if (body.grant_type === 'refresh_token' && body.scope !== undefined) {
        // Entra takes a `scope` on refresh mostly to name the resource, and does not insist that `offline_access`
        // or the OIDC scopes be "in" the refresh token. oidc-provider would refuse those (invalid_scope), so keep
        // only the resource and let the token carry the scopes granted at login.
        const { resource } = entraScopes(body.scope);
        delete body.scope;
        if (resource && !body.resource) body.resource = resource;
      }
      if (body.scope) {
        const { scope, resource } = entraScopes(body.scope, { clientCredentials: body.grant_type === 'client_credentials' });
        if (resource) {
          if (scope) body.scope = scope; else delete body.scope;
          if (!body.resource) body.resource = resource;
        }
      }
      req.body = body;
    }

    let internalPath = path;
    if (entraLayout && path === DISCOVERY_PATH) internalPath = '/.well-known/openid-configuration';
    else if (path === MOUNT || path.startsWith(`${MOUNT}/`)) internalPath = path.slice(MOUNT.length) || '/';
    else return send(res, 404, 'text/plain', 'not found');
    const search = req.url.includes('?') ? req.url.slice(req.url.indexOf('?')) : '';
    // Koa mount convention: originalUrl keeps the mount prefix so generated URLs include it.
    req.originalUrl = `${MOUNT}${internalPath}${search}`;
    req.url = `${internalPath}${search}`;
    return providerCallback(req, res);
  } catch (err) {
    console.error('provider wrapper error:', err);
    if (!res.headersSent) send(res, 500, 'text/plain', 'internal error');
    else res.end();
  }
});

server.listen(PORT, HOST, () => {
  const { port } = server.address();
  if (port !== PORT && !env.ISSUER) {
    console.error('PORT=0 needs ISSUER to be given (the issuer includes the port)');
  }
  console.log(`ready ${ISSUER} (port ${port}, tenant ${TENANT_ID}, client ${CLIENT_ID}, audience ${AUDIENCE})`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { server.close(); process.exit(0); });
}
