#!/usr/bin/env bash
# (c') bare Pingora sent the same Cookie header as (g): a cookie-store session sealed for bench/sidecar.toml.
exec "$(dirname "${BASH_SOURCE[0]}")/mint.sh" "$@"
