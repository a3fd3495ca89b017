#!/usr/bin/env bash
# For (c'') pingora-plumbing: prints the headers oidc-sidecar adds to the upstream request of a cookie-session
# request, one `name: value` per line, so that bare Pingora in plumbing mode appends the very same bytes.
# It runs the sidecar once with a copy of $CONFIG (bench/sidecar.toml) whose upstream is a one-shot capture
# server, sends one request with a freshly minted session cookie, and prints what arrived minus `Host` (which the
# client sent itself). Environment as for the session hooks (README.md): WORK, BENCH_SESSION_KEY, CONFIG.
# Ports: 18091 (capture), 18092 (sidecar), 19903 (its admin listener).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SIDECAR_BIN=${SIDECAR_BIN:-$ROOT/target/release/oidc-sidecar}
: "${CONFIG:?CONFIG (the sidecar config) is not set}"
: "${WORK:?WORK is not set}"
CAP=$WORK/capture
mkdir -p "$CAP"

python3 - "$CAP/request.txt" > "$CAP/server.log" 2>&1 <<'PY' &
import http.server, sys
out = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        with open(out, "w") as f:
            for name, value in self.headers.items():
                f.write(f"{name}: {value}\n")
        body = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", 18091), H).handle_request()
PY
CAPTURE_PID=$!

sed -e 's|^listen = .*|listen = "127.0.0.1:18092"|' \
    -e 's|^admin_listen = .*|admin_listen = "127.0.0.1:19903"|' \
    -e 's|^upstream = .*|upstream = "http://127.0.0.1:18091"|' "$CONFIG" > "$CAP/sidecar.toml"
"$SIDECAR_BIN" run --config "$CAP/sidecar.toml" > "$CAP/sidecar.log" 2>&1 &
SIDECAR_PID=$!
trap 'kill $SIDECAR_PID $CAPTURE_PID 2>/dev/null || true' EXIT
# Both must listen before the one request (the capture server answers exactly one connection: no probing it).
for _ in $(seq 1 100); do
    ss -Hltn "sport = :18091" | grep -q . && curl -sf -o /dev/null http://127.0.0.1:18092/healthz && break
    sleep 0.1
done
COOKIE=$(CONFIG=$CAP/sidecar.toml "$HERE/mint.sh")
# As wrk sends it: Host and the cookie only (curl drops its own User-Agent and Accept when given empty values).
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'User-Agent:' -H 'Accept:' -H "Cookie: $COOKIE" \
    http://127.0.0.1:18092/bench/resource)
if [ "$code" != 200 ] || [ ! -s "$CAP/request.txt" ]; then
    echo "capture failed: the sidecar answered $code (log: $(tail -c 300 "$CAP/sidecar.log"))" >&2
    exit 1
fi
grep -v -i '^host:' "$CAP/request.txt"
