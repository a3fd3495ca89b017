#!/usr/bin/env bash
# (i) mod_auth_openidc, OIDCSessionType server-cache (shm): the cookie holds a session id (127.0.0.1:18086).
exec "$(dirname "${BASH_SOURCE[0]}")/apache-login.sh" "$@"
