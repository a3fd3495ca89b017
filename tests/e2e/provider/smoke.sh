#!/usr/bin/env bash
# Smoke test of the e2e provider with curl: discovery, JWKS, client credentials (decoded), and a scripted
# authorization code + PKCE login. Starts its own provider on PORT (default 9411) and stops it by PID.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${PORT:-9411}"
tenant=8f2d6b1c-3c4a-4e7b-9a5d-1b2c3d4e5f60
base="http://127.0.0.1:$port/$tenant"
log="$(mktemp)"
PORT="$port" REDIRECT_URIS="http://127.0.0.1:8080/oauth2/callback" node "$here/server.js" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do grep -q '^ready ' "$log" && break; sleep 0.1; done
grep '^ready ' "$log"

decode() { python3 -c 'import sys,json,base64
t=sys.stdin.read().strip().split(".")
for p in t[:2]: print(json.dumps(json.loads(base64.urlsafe_b64decode(p+"="*(-len(p)%4)))))'; }

echo "== discovery"; curl -fsS "$base/v2.0/.well-known/openid-configuration" | python3 -c 'import sys,json; d=json.load(sys.stdin); print(d["issuer"]); print(d["token_endpoint"]); print(d["jwks_uri"])'
echo "== jwks"; curl -fsS "$base/discovery/v2.0/keys" | python3 -c 'import sys,json; k=json.load(sys.stdin)["keys"]; print(len(k), "key(s)", [x["kid"] for x in k])'
echo "== client credentials (postman)"
curl -fsS -u postman:postman-secret -d grant_type=client_credentials -d scope=api://oidc-sidecar-demo/.default \
  "$base/oauth2/v2.0/token" | python3 -c 'import sys,json; print(json.load(sys.stdin)["access_token"])' | decode
echo "== authorization code + PKCE (alice, scripted)"
node "$here/get-token.js" user alice "$base/v2.0" | python3 -c 'import sys,json; d=json.load(sys.stdin)["decoded"]; a=d["access_token"]["payload"]; print("aud", a["aud"], "scp", a.get("scp"), "roles", a.get("roles"), "groups", len(a.get("groups", [])))'
echo "smoke ok"
