#!/usr/bin/env bash
# Shared by sidecar-cookie.sh and sidecar-redis.sh: seals a session for the sidecar config in $CONFIG with the
# sidecar's own code (proxy/examples/mint_session.rs) and prints the `Cookie:` header value. Arguments are passed
# to mint_session (e.g. --redis). See README.md for the contract.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MINT_BIN=${MINT_BIN:-$ROOT/target/release/examples/mint_session}
: "${CONFIG:?CONFIG (the sidecar config) is not set}"
: "${BENCH_SESSION_KEY:?BENCH_SESSION_KEY is not set (the config seals with it)}"
if [ ! -x "$MINT_BIN" ]; then
    echo "building $MINT_BIN (cargo build --release --example mint_session)" >&2
    (cd "$ROOT" && cargo build --release --example mint_session -q) >&2
fi
exec "$MINT_BIN" --config "$CONFIG" "$@"
