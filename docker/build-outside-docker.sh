#!/usr/bin/env bash
# The steps of docker/Dockerfile's builder and runtime stages, run on the host: CI has no Docker engine, so this
# proves the image's build commands work (cmake present, scripts/build-release.sh -- `cargo build --release --locked
# -p oidc-sidecar` with the committed PGO profile -- succeeds with the committed Cargo.lock, the binary starts) and that the files the image bakes in exist.
#
#   docker/build-outside-docker.sh            # build and check
#   STAGE_DIR=/tmp/img docker/build-outside-docker.sh   # also lay the runtime filesystem out under $STAGE_DIR
#
# Environment: CARGO_TARGET_DIR is honoured (default: <repo>/target). SIDECAR_CONFIG and SPA_DIST default to the
# Dockerfile's build-arg defaults.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

sidecar_config="${SIDECAR_CONFIG:-config/ecs-api.toml}"
spa_dist="${SPA_DIST:-examples/spa}"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'build-outside-docker: %s\n' "$*" >&2; exit 1; }

step "toolchain (the image uses rust:1.95-bookworm)"
rustc --version
cargo --version
command -v cmake >/dev/null || fail "cmake is missing (the Dockerfile installs it with apt-get install cmake)"
cmake --version | head -n1

step "scripts/build-release.sh (cargo build --release --locked -p oidc-sidecar, PGO from pgo/oidc-sidecar.profdata)"
scripts/build-release.sh

bin="$target_dir/release/oidc-sidecar"
[ -x "$bin" ] || fail "no binary at $bin"

step "the binary runs: oidc-sidecar --version"
version="$("$bin" --version)" || fail "'$bin --version' failed"
printf '%s\n' "$version"
case "$version" in
  oidc-sidecar*) ;;
  *) fail "unexpected --version output: $version" ;;
esac

step "files the image bakes in"
[ -f "$sidecar_config" ] || fail "SIDECAR_CONFIG $sidecar_config does not exist"
[ -f "$spa_dist/index.html" ] || fail "SPA_DIST $spa_dist has no index.html"
echo "config: $sidecar_config"
echo "spa:    $spa_dist"

# Dynamic libraries the distroless cc image must provide (glibc, libgcc_s): anything else would be missing there.
if command -v ldd >/dev/null; then
  step "shared libraries (distroless/cc-debian12 ships glibc, libgcc_s, libstdc++, libssl3)"
  libs="$(ldd "$bin" 2>&1 || true)"
  printf '%s\n' "$libs"
  if printf '%s' "$libs" | grep -q 'not a dynamic executable'; then
    echo "(static binary)"
  else
    if printf '%s' "$libs" | grep -q 'not found'; then
      fail "a shared library is missing"
    fi
    unexpected="$(printf '%s\n' "$libs" | awk '{print $1}' | grep -vE '^(linux-vdso|/lib64/ld-linux|/lib/ld-linux|libc\.so|libm\.so|libgcc_s\.so|libpthread\.so|libdl\.so|librt\.so|libstdc\+\+\.so|libssl\.so\.3|libcrypto\.so\.3)' || true)"
    [ -z "$unexpected" ] || fail "libraries not in distroless/cc-debian12: $unexpected"
  fi
fi

if [ -n "${STAGE_DIR:-}" ]; then
  step "runtime filesystem under $STAGE_DIR (what COPY --from=builder /out/ / puts in the image)"
  rm -rf "$STAGE_DIR"
  install -D -m 0755 "$bin" "$STAGE_DIR/usr/local/bin/oidc-sidecar"
  install -D -m 0644 "$sidecar_config" "$STAGE_DIR/etc/oidc-sidecar/config.toml"
  mkdir -p "$STAGE_DIR/srv/spa"
  cp -R "$spa_dist"/. "$STAGE_DIR/srv/spa/"
  find "$STAGE_DIR" -maxdepth 3 | sort
fi

step "ok"
