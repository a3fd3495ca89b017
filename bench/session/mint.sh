#!/usr/bin/env bash
# Shared by sidecar-cookie.sh and sidecar-redis.sh: seals a session for the sidecar config in $CONFIG with the
# sidecar's own code (proxy/examples/mint_session.rs) and prints the `Cookie:` header value. Arguments are passed
# to mint_session (e.g. --redis). See README.md for the contract.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MINT_BIN=${MINT_BIN:-$ROOT/target/release/examples/mint_session}
: "${CONFIG:?CONFIG (the sidecar config) is not set}"
: "${BENCH_SESSION_KEY:?BENCH_SESSION_KEY is not set (the config seals with it)}"
SIDECAR_BIN=${SIDECAR_BIN:-$ROOT/target/release/oidc-sidecar}
# Built when missing, or older than the sidecar binary it seals for (its session format may have changed).
# Checked once: the mark makes later calls (run.sh calls this before every point) skip cargo.
if [ ! -x "$MINT_BIN" ] || [ "$SIDECAR_BIN" -nt "$MINT_BIN" ]; then
    # With the release binary's own flags (scripts/build-release.sh): other flags would rebuild every crate.
    echo "building $MINT_BIN (scripts/build-release.sh --examples)" >&2
    "$ROOT/scripts/build-release.sh" --examples >&2
    touch "$MINT_BIN"
fi
exec "$MINT_BIN" --config "$CONFIG" "$@"
