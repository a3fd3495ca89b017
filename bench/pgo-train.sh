#!/usr/bin/env bash
# Makes the profiles in pgo/ that scripts/build-release.sh (the sidecar) and bench/build.sh (bare Pingora, built the
# same way for a like-for-like comparison) optimize with. See pgo/README.md.
#
#   apt-get install llvm-19     # llvm-profdata; besides bench/run.sh's packages
#   bench/pgo-train.sh          # about 12 minutes on 2 cores: instrumented build (~7), training (~3), merge
#
# 1. Builds both binaries instrumented (-Cprofile-generate) into target/pgo-gen.
# 2. Trains: bench/run.sh with those binaries, one round of TRAIN_SECONDS (5) per system, over the request mix the
#    bench measures: bare Pingora's pass-through (with and without the session cookie, both runtimes, plumbing mode)
#    for bare-pingora; a valid Bearer token, no token (401), a cookie-store session and a Redis session for the
#    sidecar. Each binary writes its own raw profiles (a wrapper sets LLVM_PROFILE_FILE), so neither binary's
#    profile counts the other's use of the Pingora code they share.
# 3. Merges each binary's raw profiles into pgo/<binary>.profdata (--sparse: functions never run are left out and
#    compiled as without a profile).
#
# llvm-profdata must read the raw format of rustc's LLVM: Debian 12's llvm-19 reads Rust 1.95's (LLVM 22). Set
# LLVM_PROFDATA to use another one.
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
GEN=$ROOT/target/pgo-gen
TRAIN_SECONDS=${TRAIN_SECONDS:-5}

profdata=${LLVM_PROFDATA:-}
if [ -z "$profdata" ]; then
    for v in 22 21 20 19; do
        if command -v "llvm-profdata-$v" >/dev/null; then profdata=llvm-profdata-$v; break; fi
    done
fi
[ -n "$profdata" ] || { echo "pgo-train: no llvm-profdata-19 or newer (apt-get install llvm-19, or set LLVM_PROFDATA)" >&2; exit 1; }
echo "pgo-train: merging with $profdata ($("$profdata" --version | grep -m1 -i version | sed 's/^ *//'))" >&2

# Each binary built alone, with the very package selection its optimized build uses (scripts/build-release.sh,
# bench/build.sh): cargo unifies the features of shared crates over what one invocation builds, and a profile only
# applies to functions compiled the same way. One invocation for both, or one that adds an example (its
# dev-dependencies), changes Tokio's or Pingora's features and the profile silently misses their functions.
echo "pgo-train: instrumented builds into $GEN" >&2
(cd "$ROOT" && export CARGO_TARGET_DIR=$GEN RUSTFLAGS="-Cprofile-generate=$GEN/raw-default" \
    && cargo build --release --locked -p oidc-sidecar --bin oidc-sidecar \
    && cargo build --release --locked -p bare-pingora)

raw=$GEN/raw
rm -rf "$raw"
mkdir -p "$raw/oidc-sidecar" "$raw/bare-pingora"
wrappers=$(mktemp -d /tmp/pgo-train.XXXXXX)
trap 'rm -rf "$wrappers"' EXIT
for bin in oidc-sidecar bare-pingora; do
    printf '#!/bin/sh\nLLVM_PROFILE_FILE=%s/%s/%%p.profraw exec %s/release/%s "$@"\n' "$raw" "$bin" "$GEN" "$bin" \
        > "$wrappers/$bin"
    chmod +x "$wrappers/$bin"
    # Older than any minter: bench/session/mint.sh rebuilds the minter when the sidecar binary is newer than it.
    touch -d '2000-01-01' "$wrappers/$bin"
done

echo "pgo-train: training (bench/run.sh, ${TRAIN_SECONDS} s per system)" >&2
SIDECAR_BIN=$wrappers/oidc-sidecar BARE_BIN=$wrappers/bare-pingora RESULTS_DIR=$wrappers \
    SYSTEMS="bare-pingora bare-pingora-cookie bare-pingora-nosteal pingora-plumbing sidecar-bearer sidecar-401 sidecar-cookie sidecar-redis" \
    DURATION=$TRAIN_SECONDS ROUNDS=1 WARMUP=1 "$BENCH/run.sh" >&2

mkdir -p "$ROOT/pgo"
for bin in oidc-sidecar bare-pingora; do
    shopt -s nullglob
    files=("$raw/$bin"/*.profraw)
    shopt -u nullglob
    [ ${#files[@]} -gt 0 ] || { echo "pgo-train: $bin wrote no profile (did it exit cleanly?)" >&2; exit 1; }
    "$profdata" merge --sparse -o "$ROOT/pgo/$bin.profdata" "${files[@]}"
    echo "pgo-train: pgo/$bin.profdata from ${#files[@]} processes: $("$profdata" show "$ROOT/pgo/$bin.profdata" | grep -m1 'Total functions')" >&2
done
echo "pgo-train: done; rebuild with scripts/build-release.sh (the sidecar) or bench/build.sh (everything the bench compares)" >&2
