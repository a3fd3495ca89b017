#!/usr/bin/env bash
# (h) sidecar, Redis store: the session written to Redis (bench/sidecar-redis.toml, db 15), the cookie holds its id.
exec "$(dirname "${BASH_SOURCE[0]}")/mint.sh" --redis "$@"
