#!/usr/bin/env bash
# (c'') bare Pingora in plumbing mode, sent the same Cookie header as (g): a cookie-store session sealed for
# bench/sidecar.toml (it drops the cookie, as the sidecar does, and adds the sidecar's captured headers).
exec "$(dirname "${BASH_SOURCE[0]}")/mint.sh" "$@"
