#!/usr/bin/env bash
# Local demo: builds oidc-sidecar (debug), installs the e2e/example dependencies, then starts the Entra-like
# provider, the example FastAPI API, the example SPA and two sidecars behind an ALB stand-in, and prints the URL
# and the test users. Ctrl-C stops everything. Env: see tests/e2e/demo.js (DEMO_PORT, SESSION_STORE=redis, ...).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build -p oidc-sidecar
bash scripts/install-e2e-deps.sh
exec node tests/e2e/demo.js
