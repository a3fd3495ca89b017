#!/usr/bin/env bash
# Installs everything the test suites need on a fresh Debian machine (idempotent, non-interactive).
# Pingora needs cmake to build zlib-ng; the browser tests need Debian's chromium (never a downloaded browser).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v openssl >/dev/null || need_apt+=(openssl)
# `ss`: the Bearer suite reads the kernel's keep-alive timer on the sidecar's client socket.
command -v ss >/dev/null || need_apt+=(iproute2)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v node >/dev/null || need_apt+=(nodejs npm)
python3 -c 'import venv' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}"
fi

# Node (provider, browser tests) and Python (example app, static checks) dependencies.
if [ -x scripts/install-e2e-deps.sh ]; then
  bash scripts/install-e2e-deps.sh
fi
if [ -f tests/static/requirements.txt ]; then
  python3 -m venv .venv-static
  .venv-static/bin/pip install -q -r tests/static/requirements.txt
fi
echo "install-deps: done"
