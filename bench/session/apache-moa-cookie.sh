#!/usr/bin/env bash
# (i) mod_auth_openidc, OIDCSessionType client-cookie: the whole session encrypted in the cookie (127.0.0.1:18087).
exec "$(dirname "${BASH_SOURCE[0]}")/apache-login.sh" "$@"
