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
# path changes: this script says when it is due. The compiler warns for each function whose shape no longer matches
# its recorded profile ("function control flow change detected (hash mismatch)"); the script counts those warnings
# and names the count and the fix at the end (PGO_STRICT=1 makes it an error).
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
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Cargo replays a crate's cached warnings when it does not rebuild it, so the count holds for an up-to-date build too.
cargo build "${args[@]}" 2>&1 | tee "$log" >&2
if [ "${PGO:-1}" != 0 ]; then
  stale=$(grep -c 'function control flow change detected (hash mismatch)' "$log" || true)
  if [ "$stale" -gt 0 ]; then
    echo "build-release: the profile is stale: $stale function(s) changed since $profile was recorded and were" \
      "compiled without it; retrain with bench/pgo-train.sh (pgo/README.md)" >&2
    [ "${PGO_STRICT:-0}" = 1 ] && exit 3
  else
    echo "build-release: the profile matches the code (no profiled function changed shape)" >&2
  fi
fi
# The example in a second invocation: built together, its dev-dependencies would change the features of crates the
# binary shares with it, so the binary would no longer be compiled as the profile was recorded (bench/pgo-train.sh).
if [ "$examples" = 1 ]; then
  cargo build --release --locked -p oidc-sidecar --example mint_session
fi
