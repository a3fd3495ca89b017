#!/usr/bin/env bash
# Installs what the end-to-end suites and the example app need, idempotently and without prompts:
#   - chromium from Debian (only if /usr/bin/chromium is missing; never a downloaded browser build)
#   - redis-server from Debian (only if missing)
#   - npm packages of tests/e2e (oidc-provider, playwright-core) from package-lock.json
#   - a Python venv at examples/fastapi/.venv with examples/fastapi/requirements.txt
# Usage: scripts/install-e2e-deps.sh            (from anywhere)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export DEBIAN_FRONTEND=noninteractive

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
  apt-get install -y -qq --no-install-recommends "$@"
}

[ -x /usr/bin/chromium ] || apt_install chromium
command -v redis-server >/dev/null 2>&1 || apt_install redis-server
command -v node >/dev/null 2>&1 || apt_install nodejs npm
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv

# npm: reinstall only when the lock file changed since the last install.
cd "$root/tests/e2e"
stamp=node_modules/.installed-lock-sha
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

# Python venv for the example FastAPI upstream and its tests.
cd "$root/examples/fastapi"
[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=.venv/.installed-req-sha
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/pip install --disable-pip-version-check -q -r requirements.txt
  echo "$want" > "$stamp"
fi

echo "e2e deps ready: $(/usr/bin/chromium --version 2>/dev/null | head -1); node $(node --version); $(redis-server --version | cut -d' ' -f1-3)"
