#!/usr/bin/env bash
# (c*) bare Pingora on the no-steal runtime, sent the same Cookie header as (g): a cookie-store session sealed for
# bench/sidecar.toml (bare Pingora forwards it untouched).
exec "$(dirname "${BASH_SOURCE[0]}")/mint.sh" "$@"
