// Prints tokens from the e2e provider without a browser, for curl/Postman experiments:
//   node tests/e2e/provider/get-token.js user alice [issuer] [redirect_uri]   (authorization code + PKCE, scripted login)
//   node tests/e2e/provider/get-token.js app [issuer] [client_id] [secret]    (client credentials)
// Output: JSON with the raw tokens and their decoded claims.

import { authCodeLogin, clientCredentials, decodeJwt } from '../lib/oidc-client.js';

const DEFAULT_ISSUER = 'http://127.0.0.1:9400/8f2d6b1c-3c4a-4e7b-9a5d-1b2c3d4e5f60/v2.0';
const [kind = 'user', ...rest] = process.argv.slice(2);

try {
  let tokens;
  if (kind === 'app') {
    const [issuer = DEFAULT_ISSUER, clientId = 'postman', clientSecret = 'postman-secret'] = rest;
    tokens = await clientCredentials(issuer, { clientId, clientSecret, scope: 'api://oidc-sidecar-demo/.default' });
  } else {
    const [username = 'alice', issuer = DEFAULT_ISSUER, redirectUri = 'http://127.0.0.1:8080/oauth2/callback'] = rest;
    tokens = await authCodeLogin(issuer, { username, redirectUri, password: process.env.USER_PASSWORD || 'password' });
  }
  const decoded = {};
  for (const k of ['access_token', 'id_token']) if (tokens[k]) decoded[k] = decodeJwt(tokens[k]);
  console.log(JSON.stringify({ ...tokens, decoded }, null, 2));
} catch (err) {
  console.error(err.message);
  process.exit(1);
}
