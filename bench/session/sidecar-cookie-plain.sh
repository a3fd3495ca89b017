#!/usr/bin/env bash
# (g°) the sidecar built without PGO, cookie store: the same minted session as (g) (same config and key).
exec "$(dirname "${BASH_SOURCE[0]}")/mint.sh" "$@"
