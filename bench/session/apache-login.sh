#!/usr/bin/env bash
# Shared by apache-moa-cache.sh and apache-moa-cookie.sh: signs in to mod_auth_openidc on 127.0.0.1:$PORT the way
# a browser does (GET a protected page -> 302 to the provider's /authorize -> the provider auto-approves and
# redirects to Apache's redirect URI with a code -> Apache redeems it and sets its session cookie -> 302 back),
# with curl and a private cookie jar, then prints Apache's session cookie(s) as one `Cookie:` header value.
# The provider must log a user in without a person: run.sh starts the testkit test-provider for this.
set -euo pipefail
: "${PORT:?PORT is not set}"
jar=$(mktemp)
trap 'rm -f "$jar"' EXIT
# A top-level navigation, so mod_auth_openidc redirects to the provider instead of answering 401.
status=$(curl -s -o /dev/null -w '%{http_code}' -L --max-redirs 10 --max-time 20 -c "$jar" -b "$jar" \
    -H 'Accept: text/html,application/xhtml+xml' -H 'Sec-Fetch-Mode: navigate' -H 'Sec-Fetch-Dest: document' \
    "http://127.0.0.1:$PORT/bench/resource")
if [ "$status" != 200 ]; then
    echo "login through http://127.0.0.1:$PORT ended with HTTP $status" >&2
    exit 1
fi
# Netscape jar: domain flag path secure expiry name value; HttpOnly cookies are written as "#HttpOnly_<domain>".
cookie=$(awk -F'\t' '
    /^#HttpOnly_/ { sub(/^#HttpOnly_/, "") } /^#/ || NF < 7 { next }
    $6 ~ /^mod_auth_openidc_session/ { out = out (out == "" ? "" : "; ") $6 "=" $7 }
    END { print out }' "$jar")
if [ -z "$cookie" ]; then
    echo "login through http://127.0.0.1:$PORT set no mod_auth_openidc_session cookie" >&2
    exit 1
fi
printf '%s\n' "$cookie"
