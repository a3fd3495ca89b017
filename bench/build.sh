#!/usr/bin/env bash
# Builds everything bench/run.sh and bench/instructions.sh compare, each the way its row says:
#
#   target/release/oidc-sidecar, target/release/examples/mint_session
#       the sidecar as shipped: scripts/build-release.sh (fat LTO + PGO from pgo/oidc-sidecar.profdata)
#   target/bench-pgo/release/bare-pingora
#       bare Pingora built the same way, with PGO from its own profile (pgo/bare-pingora.profdata, trained on its own
#       pass-through): the like-for-like ceiling, systems (c), (c'), (c*), (c'')
#   target/bench-plain/release/bare-pingora, target/bench-plain/release/oidc-sidecar
#       both as a plain `cargo build --release` (fat LTO, no PGO): bare Pingora as it ships, and what PGO adds
#   target/debug/test-provider
#       the provider the mod_auth_openidc session systems log in with
#
# Separate target directories, because other compiler flags would rebuild every crate in a shared one. About 25
# minutes on 2 cores from scratch (four fat-LTO builds), seconds when nothing changed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
scripts/build-release.sh --examples
CARGO_TARGET_DIR=$ROOT/target/bench-pgo RUSTFLAGS="-Cprofile-use=$ROOT/pgo/bare-pingora.profdata" \
    cargo build --release --locked -p bare-pingora
# One package per invocation, as the PGO builds (pgo/README.md: cargo unifies features over what it builds at once).
CARGO_TARGET_DIR=$ROOT/target/bench-plain cargo build --release --locked -p bare-pingora
CARGO_TARGET_DIR=$ROOT/target/bench-plain cargo build --release --locked -p oidc-sidecar --bin oidc-sidecar
cargo build --locked -p oidc-testkit --bin test-provider
