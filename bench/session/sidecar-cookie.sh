#!/usr/bin/env bash
# (g) sidecar, cookie store: the whole session sealed in the cookie (bench/sidecar.toml).
exec "$(dirname "${BASH_SOURCE[0]}")/mint.sh" "$@"
