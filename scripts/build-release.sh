#!/usr/bin/env bash
# The sidecar's release binary, built the one way the image (docker/Dockerfile), CI (docker/build-outside-docker.sh)
# and the benchmarks (bench/build.sh) build it: `cargo build --release --locked` (fat LTO and one codegen unit, from
# the workspace Cargo.toml) with profile-guided optimization from the committed profile pgo/oidc-sidecar.profdata.
#
#   scripts/build-release.sh               # $CARGO_TARGET_DIR/release/oidc-sidecar (default: target/release)
#   scripts/build-release.sh --examples    # then the bench's session minter, target/release/examples/mint_session,
#                                          # with the same flags (other flags would rebuild every crate)
#   PGO=0 scripts/build-release.sh         # without the profile: a plain `cargo build --release`
#
# Why: with the profile the compiler lays out and inlines the request path as it runs (hot code together, error
# paths apart); the sidecar then runs about a fifth fewer instructions per request (docs/benchmarks.md). Reading a
# profile needs no LLVM tools, only the file; making one does (bench/pgo-train.sh, pgo/README.md). A profile older
# than the code still builds: functions whose shape changed are compiled as without one. Retrain when the request
# path changes.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
profile=${PGO_PROFILE:-$root/pgo/oidc-sidecar.profdata}
args=(--release --locked -p oidc-sidecar --bin oidc-sidecar)
case "${1:-}" in
  --examples) examples=1 ;;
  "") examples=0 ;;
  *) echo "usage: scripts/build-release.sh [--examples]" >&2; exit 2 ;;
esac
if [ "${PGO:-1}" != 0 ]; then
  [ -f "$profile" ] || { echo "build-release: no profile at $profile (PGO=0 builds without one)" >&2; exit 1; }
  export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-Cprofile-use=$profile"
fi
cd "$root"
echo "build-release: cargo build ${args[*]}${RUSTFLAGS:+ (RUSTFLAGS=$RUSTFLAGS)}" >&2
cargo build "${args[@]}"
# The example in a second invocation: built together, its dev-dependencies would change the features of crates the
# binary shares with it, so the binary would no longer be compiled as the profile was recorded (bench/pgo-train.sh).
if [ "$examples" = 1 ]; then
  cargo build --release --locked -p oidc-sidecar --example mint_session
fi
