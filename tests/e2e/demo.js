// The local demo: the Entra-like provider, the example FastAPI API and the example SPA behind oidc-sidecar, laid
// out like the ECS deployment (an ALB stand-in routes /api/* to the API service's sidecar, the rest to the UI
// service's sidecar serving examples/spa). Prints the URL and the test users, then runs until Ctrl-C.
//
//   node tests/e2e/demo.js          (or scripts/demo.sh, which also builds and installs what is needed)
//
// Ports (env): DEMO_PORT 8080 (the URL to open), PROVIDER_PORT 9400, FASTAPI_PORT 8000, API_SIDECAR_PORT 8081,
// UI_SIDECAR_PORT 8082, API_ADMIN_PORT 9901 (its JWKS is what FastAPI trusts), UI_ADMIN_PORT 9902.
// SESSION_STORE=redis uses the Redis at REDIS_URL (default redis://127.0.0.1:6379/0).

import { stopAll, tmpDir } from './lib/procs.js';
import {
  API_ROUTES, SPA_DIR, SPA_ROUTES, USER_PASSWORD, newSessionKey, sidecarMissing, startAlb, startProvider,
  startSidecar, startUpstream, stopStack, writeAssertionKey,
} from './lib/stack.js';

const env = process.env;
const port = (name, dflt) => Number(env[name] || dflt);

const missing = sidecarMissing();
if (missing) {
  console.error(`${missing}\nRun scripts/demo.sh, which builds it first.`);
  process.exit(1);
}

const demoUrl = `http://127.0.0.1:${port('DEMO_PORT', 8080)}`;
const store = env.SESSION_STORE === 'redis' ? 'redis' : 'cookie';
const stack = { sidecars: [], logDir: tmpDir('oidc-demo-logs-') };

async function main() {
  stack.provider = await startProvider({
    port: port('PROVIDER_PORT', 9400), redirectUris: [`${demoUrl}/oauth2/callback`], logDir: stack.logDir,
  });
  const apiAdminPort = port('API_ADMIN_PORT', 9901);
  stack.upstream = await startUpstream({
    port: port('FASTAPI_PORT', 8000), jwksUrl: `http://127.0.0.1:${apiAdminPort}/.well-known/jwks.json`, logDir: stack.logDir,
  });
  const common = {
    issuer: stack.provider.issuer,
    sessionKeys: [newSessionKey()],
    signingKeyFile: writeAssertionKey(tmpDir('oidc-demo-keys-')),
    trustedProxies: ['127.0.0.1/32'],
    store,
    redisUrl: store === 'redis' ? (env.REDIS_URL || 'redis://127.0.0.1:6379/0') : undefined,
    logDir: stack.logDir,
  };
  stack.sidecars.push(await startSidecar({
    ...common,
    port: port('API_SIDECAR_PORT', 8081),
    adminPort: apiAdminPort,
    hosts: [{ name: '127.0.0.1', upstream: stack.upstream.url, external_url: demoUrl, login: 'deny', routes: API_ROUTES }],
  }));
  stack.sidecars.push(await startSidecar({
    ...common,
    port: port('UI_SIDECAR_PORT', 8082),
    adminPort: port('UI_ADMIN_PORT', 9902),
    hosts: [{ name: '127.0.0.1', static_root: SPA_DIR, external_url: demoUrl, routes: SPA_ROUTES }],
  }));
  stack.alb = await startAlb({
    port: port('DEMO_PORT', 8080), rules: [{ prefix: '/api/', port: stack.sidecars[0].port }], defaultPort: stack.sidecars[1].port,
  });

  console.log(`
oidc-sidecar demo is up (session store: ${store}).

  Open:      ${demoUrl}/
  Sign in:   alice / ${USER_PASSWORD}   (role Admin, 3 groups)
             bob / ${USER_PASSWORD}     (role Reader)
             carol / ${USER_PASSWORD}   (200 groups)   dave / ${USER_PASSWORD}  (group overage)
  Provider:  ${stack.provider.issuer}
  Bearer:    curl -s -u postman:postman-secret -d grant_type=client_credentials \\
               -d scope=api://oidc-sidecar-demo/.default ${stack.provider.origin}/${stack.provider.tenantId}/oauth2/v2.0/token
             curl -H "Authorization: Bearer <access_token>" ${demoUrl}/api/me
  Logs:      ${stack.logDir}

Ctrl-C stops everything.`);
}

// Ctrl-C (SIGINT) or SIGTERM: stop every process with SIGTERM and wait for it (lib/procs.js leaves the signal to this
// handler), then say how each one exited. A second signal exits at once; procs.js then SIGKILLs what is left.
let stopping = false;
async function shutdown(signal) {
  if (stopping) {
    console.error(`${signal} again: killing what is left.`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  }
  stopping = true;
  console.log(`\n${signal}: stopping the demo ...`);
  const procs = [stack.provider?.proc, stack.upstream?.proc, ...stack.sidecars.map((s) => s.proc)].filter(Boolean);
  await stopStack(stack);
  await stopAll(); // anything still starting
  console.log(`Demo stopped (${procs.map((p) => `${p.name} exit ${p.exitCode}`).join(', ')}).`);
  process.exit(0);
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { shutdown(sig); });

main().catch(async (err) => {
  if (stopping) return; // a process stopped by shutdown() while starting
  console.error(err.message);
  await stopStack(stack);
  process.exit(1);
});
