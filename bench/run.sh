#!/usr/bin/env bash
# Side-by-side load benchmark of the sidecar against its baselines, in ONE run.
#
# Every system under test (SUT) runs at the same time, pinned to SUT_CPU, each with one worker;
# wrk (1 thread) is pinned to LOADGEN_CPU. Points are interleaved: round 1 runs every system once,
# then round 2, ... so that drift of a shared machine hits all systems alike; the report takes the
# median over rounds. See docs/benchmarks.md for the method and the results.
#
# Systems (SYSTEMS, in this order by default):
#   upstream          (a) the upstream itself (nginx `return 200`, moved to SUT_CPU for its point)
#   nginx             (b) nginx as a plain reverse proxy, 1 worker, keep-alive to the upstream
#   bare-pingora      (c) bench/passthrough: the smallest Pingora proxy, 1 thread, built as the sidecar is built
#                     (fat LTO + PGO from its own pass-through profile, bench/build.sh)
#   bare-pingora-plain (c°) the same crate as a plain `cargo build --release` (no PGO): Pingora as it ships
#   bare-pingora-cookie (c') the same process, sent the Cookie header of (g): the same request as the session
#                     points, so their ratio compares proxies, not request sizes  [hook: bench/session/mint.sh]
#   bare-pingora-nosteal (c*) the same binary on Pingora's no-steal runtime (BARE_PINGORA_WORK_STEALING=0), the
#                     runtime the sidecar runs one worker on, sent (g)'s cookie: the framework's ceiling with the
#                     sidecar's runtime choice  [hook: bench/session/bare-pingora-nosteal.sh]
#   pingora-plumbing  (c'') the same binary in plumbing mode on the no-steal runtime: no check, but the sidecar's
#                     keep-alive and upstream timeouts, its Cookie removal and the very headers it adds upstream
#                     (captured from a real sidecar request by bench/session/capture-upstream.sh), sent (g)'s
#                     cookie: what any proxy in the sidecar's place pays before it checks anything
#                     [hook: bench/session/pingora-plumbing.sh]
#   apache-moa        (d) Apache mpm_event (1 process) + mod_auth_openidc checking the Bearer token
#   sidecar-bearer    (e) oidc-sidecar, 1 thread, valid Bearer token
#   sidecar-401       (f) oidc-sidecar, no token -> 401
#   sidecar-cookie    (g) oidc-sidecar, session cookie, cookie store        [hook: bench/session/sidecar-cookie.sh]
#   sidecar-cookie-plain (g°) the same, a plain `cargo build --release` of the sidecar (no PGO): what PGO adds
#                                                                           [hook: bench/session/sidecar-cookie-plain.sh]
#   sidecar-redis     (h) oidc-sidecar, session cookie, Redis store         [hook: bench/session/sidecar-redis.sh]
#   apache-moa-cache  (i) mod_auth_openidc session, server-side cache       [hook: bench/session/apache-moa-cache.sh]
#   apache-moa-cookie (i) mod_auth_openidc session, client-cookie           [hook: bench/session/apache-moa-cookie.sh]
# A system whose binary or hook is missing is skipped with the reason printed.
#
# Knobs (environment):
#   DURATION=10 ROUNDS=3 CONNECTIONS=50 WARMUP=2      seconds per point, rounds, wrk connections, warm-up s
#   LOADGEN_CPU=0 SUT_CPU=1 UPSTREAM_CPU=$LOADGEN_CPU  cores for wrk, the SUTs, the shared upstream
#   SYSTEMS="..."                                      subset / order of systems
#   ACCESS_LOG=1                                       nginx proxy and Apache write an access log (0: off)
#   SIDECAR_BIN=target/release/oidc-sidecar BARE_BIN=target/bench-pgo/release/bare-pingora   (bench/build.sh)
#   SIDECAR_PLAIN_BIN=target/bench-plain/release/oidc-sidecar BARE_PLAIN_BIN=target/bench-plain/release/bare-pingora
#   SIDECAR_CONFIG=bench/sidecar.toml SIDECAR_REDIS_CONFIG=bench/sidecar-redis.toml  (same ports, please)
#   RESULTS_DIR=bench/results KEEP_WORK=0              where the results file goes; keep the work dir
# Quick smoke run:  DURATION=3 ROUNDS=1 WARMUP=1 bench/run.sh
#
# Session hooks (issue 3): bench/session/<system>.sh is run once the system is up, with WORK, TOKEN,
# BENCH_SESSION_KEY, PORT and the system's config path in its environment; it prints the value of a
# `Cookie:` header for a logged-in session on stdout (exit non-zero = skip the system). It runs again
# before every point (outside the measured time), so each point starts with a fresh session, as a browser
# that stores the cookies the server slides would have; a long run never measures a stale-cookie path.
# The Apache session systems also need a provider that can log a user in (bench/conf/apache-moa-session.conf):
# APACHE_OIDC_METADATA_URL, APACHE_OIDC_CLIENT_ID and APACHE_OIDC_CLIENT_SECRET, or, when those are unset,
# run.sh starts the testkit provider TEST_PROVIDER_BIN (default target/debug/test-provider, from
# `cargo build -p oidc-testkit`) on 127.0.0.1:18089 and uses it.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-50}
WARMUP=${WARMUP:-2}
LOADGEN_CPU=${LOADGEN_CPU:-0}
SUT_CPU=${SUT_CPU:-1}
UPSTREAM_CPU=${UPSTREAM_CPU:-$LOADGEN_CPU}
SYSTEMS=${SYSTEMS:-"upstream nginx bare-pingora bare-pingora-plain bare-pingora-cookie bare-pingora-nosteal pingora-plumbing apache-moa sidecar-bearer sidecar-401 sidecar-cookie sidecar-cookie-plain sidecar-redis apache-moa-cache apache-moa-cookie"}
ACCESS_LOG=${ACCESS_LOG:-1}
SIDECAR_BIN=${SIDECAR_BIN:-$ROOT/target/release/oidc-sidecar}
SIDECAR_CONFIG=${SIDECAR_CONFIG:-$BENCH/sidecar.toml}
SIDECAR_REDIS_CONFIG=${SIDECAR_REDIS_CONFIG:-$BENCH/sidecar-redis.toml}
BARE_BIN=${BARE_BIN:-$ROOT/target/bench-pgo/release/bare-pingora}
SIDECAR_PLAIN_BIN=${SIDECAR_PLAIN_BIN:-$ROOT/target/bench-plain/release/oidc-sidecar}
BARE_PLAIN_BIN=${BARE_PLAIN_BIN:-$ROOT/target/bench-plain/release/bare-pingora}
TEST_PROVIDER_BIN=${TEST_PROVIDER_BIN:-$ROOT/target/debug/test-provider}
RESULTS_DIR=${RESULTS_DIR:-$BENCH/results}
KEEP_WORK=${KEEP_WORK:-0}

ISSUER=http://127.0.0.1:18088
AUDIENCE=api://bench
SCOPE=bench.read

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in wrk nginx apache2 openssl python3 curl taskset envsubst ss; do
    command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install wrk nginx-light apache2 libapache2-mod-auth-openidc openssl curl util-linux gettext-base iproute2)"
done
[ -f /usr/lib/apache2/modules/mod_auth_openidc.so ] || die "mod_auth_openidc is not installed (apt-get install libapache2-mod-auth-openidc)"
for port in 18080 18081 18082 18083 18084 18085 18086 18087 18088 18089 18090 18091 18092 18093 18094 18095 18443 19901 19902 19903 19904; do
    if ss -Hltn "sport = :$port" | grep -q .; then die "port $port is in use (another bench run?)"; fi
done

WORK=$(mktemp -d /tmp/oidc-bench.XXXXXX)
chmod 755 "$WORK"   # Apache's and nginx's workers run unprivileged and read files from here
export WORK
RAW=$WORK/raw.tsv
: > "$RAW"

declare -A PID     # system -> root process id (nginx/apache master, or the binary itself)
declare -A PORT=([upstream]=18080 [nginx]=18081 [bare-pingora]=18082 [bare-pingora-cookie]=18082 [pingora-plumbing]=18090 [bare-pingora-nosteal]=18093 [apache-moa]=18083
                 [bare-pingora-plain]=18094 [sidecar-cookie-plain]=18095
                 [sidecar-bearer]=18084 [sidecar-401]=18084 [sidecar-cookie]=18084 [sidecar-redis]=18085
                 [apache-moa-cache]=18086 [apache-moa-cookie]=18087)
declare -A HEADER  # system -> extra request header for wrk/curl
declare -A EXPECT  # system -> expected status
declare -A SKIP    # system -> reason
STARTED_PIDS=()

cleanup() {
    local p alive
    for p in "${STARTED_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for _ in $(seq 1 50); do   # nginx and Apache masters stop their workers first: give them 5 s
        alive=0
        for p in "${STARTED_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for p in "${STARTED_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    if [ "$KEEP_WORK" = 1 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Fill ${WORK}-style placeholders of a config template, leaving nginx's own $variables alone.
render() { envsubst "$2" < "$1"; }

# The root pid and all its descendants.
tree_pids() {
    local root=$1
    ps -e -o pid=,ppid= | awk -v root="$root" '
        { parent[$1] = $2; pids[NR] = $1 }
        END {
            keep[root] = 1; changed = 1
            while (changed) { changed = 0
                for (i in pids) { p = pids[i]; if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 } } }
            for (p in keep) print p
        }'
}

# utime + stime (clock ticks) summed over processes; fields 14 and 15 of /proc/PID/stat, counted
# after the ")" that ends the command name.
cpu_ticks() {
    local total=0 p rest
    for p in "$@"; do
        rest=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || continue
        set -- $rest
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}

mem_kb() {  # prints "RSS_KB HWM_KB N" summed over the given processes
    local rss=0 hwm=0 n=0 p r h
    for p in "$@"; do
        r=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
        h=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
        [ -n "$r" ] || continue
        rss=$((rss + r)); hwm=$((hwm + h)); n=$((n + 1))
    done
    echo "$rss $hwm $n"
}

status_of() {  # system -> HTTP status of one request
    local sys=$1
    local args=(-s -o /dev/null -w '%{http_code}' --max-time 5)
    [ -n "${HEADER[$sys]:-}" ] && args+=(-H "${HEADER[$sys]}")
    curl "${args[@]}" "http://127.0.0.1:${PORT[$sys]}/bench/resource" || true
}

wait_status() {  # system, seconds: wait until it answers its expected status
    local sys=$1 deadline=$((SECONDS + $2)) got=""
    while [ $SECONDS -lt $deadline ]; do
        if ! kill -0 "${PID[$sys]}" 2>/dev/null; then log "$sys exited"; return 1; fi
        got=$(status_of "$sys")
        [ "$got" = "${EXPECT[$sys]}" ] && return 0
        sleep 0.2
    done
    log "$sys answered '$got', expected ${EXPECT[$sys]}"
    return 1
}

pidfile_pid() {  # wait for a daemon's pid file
    local f=$1 i
    for i in $(seq 1 50); do [ -s "$f" ] && { cat "$f"; return 0; }; sleep 0.1; done
    return 1
}

selected() { [[ " $SYSTEMS " == *" $1 "* ]]; }

# --- fixtures: keys, JWKS, discovery, TLS certificate, token ------------------------------------
mkdir -p "$WORK/idp"
python3 "$BENCH/fixtures.py" "$WORK/idp" "$ISSUER" "$AUDIENCE" "$SCOPE"
mkdir -p "$WORK/idp/.well-known"
mv "$WORK/idp/openid-configuration" "$WORK/idp/.well-known/openid-configuration"
chmod 644 "$WORK/idp"/*.json "$WORK/idp/.well-known/openid-configuration" "$WORK/idp/tls.crt"
chmod 755 "$WORK/idp" "$WORK/idp/.well-known"
TOKEN=$(cat "$WORK/idp/token.txt")
BENCH_SESSION_KEY=$(openssl rand -base64 32)
export TOKEN BENCH_SESSION_KEY

# --- the upstream + loopback provider (always) ----------------------------------------------------
mkdir -p "$WORK/nginx-upstream-tmp"
render "$BENCH/conf/nginx-upstream.conf" '${WORK}' > "$WORK/nginx-upstream.conf"
taskset -c "$UPSTREAM_CPU" nginx -q -p "$WORK" -e "$WORK/nginx-upstream.error.log" -c "$WORK/nginx-upstream.conf"
PID[upstream]=$(pidfile_pid "$WORK/nginx-upstream.pid") || die "the upstream nginx did not start: $(cat "$WORK/nginx-upstream.error.log")"
STARTED_PIDS+=("${PID[upstream]}")
EXPECT[upstream]=200
wait_status upstream 10 || die "the upstream does not answer"
curl -sf "$ISSUER/.well-known/openid-configuration" >/dev/null || die "the loopback provider (http) does not answer"
curl -sfk https://127.0.0.1:18443/jwks.json >/dev/null || die "the loopback provider (https) does not answer"

# --- (b) nginx reverse proxy ----------------------------------------------------------------------
if selected nginx; then
    mkdir -p "$WORK/nginx-proxy-tmp"
    if [ "$ACCESS_LOG" = 1 ]; then NGINX_ACCESS_LOG="$WORK/nginx-proxy.access.log"; else NGINX_ACCESS_LOG=off; fi
    export NGINX_ACCESS_LOG
    render "$BENCH/conf/nginx-proxy.conf" '${WORK} ${NGINX_ACCESS_LOG}' > "$WORK/nginx-proxy.conf"
    taskset -c "$SUT_CPU" nginx -q -p "$WORK" -e "$WORK/nginx-proxy.error.log" -c "$WORK/nginx-proxy.conf"
    PID[nginx]=$(pidfile_pid "$WORK/nginx-proxy.pid") || die "nginx proxy did not start"
    STARTED_PIDS+=("${PID[nginx]}")
    EXPECT[nginx]=200
fi

# --- (c), (c°), (c*), (c'') bare Pingora -----------------------------------------------------------------------
start_bare() {  # system binary port [VAR=value ...] -> PID/EXPECT, or SKIP when the binary is missing
    local sys=$1 bin=$2 port=$3
    shift 3
    if [ ! -x "$bin" ]; then
        SKIP[$sys]="no $bin (bench/build.sh)"
        return
    fi
    env "$@" taskset -c "$SUT_CPU" "$bin" "127.0.0.1:$port" 127.0.0.1:18080 > "$WORK/$sys.log" 2>&1 &
    PID[$sys]=$!
    STARTED_PIDS+=("$!")
    EXPECT[$sys]=200
}

# (c) and (c') are one process, sent different requests.
if selected bare-pingora || selected bare-pingora-cookie; then
    start_bare bare-pingora "$BARE_BIN" 18082
    if [ -n "${SKIP[bare-pingora]:-}" ]; then
        SKIP[bare-pingora-cookie]=${SKIP[bare-pingora]}
    else
        PID[bare-pingora-cookie]=${PID[bare-pingora]}
        EXPECT[bare-pingora-cookie]=200
    fi
fi
# (c°) bare Pingora as a plain release build (no PGO).
if selected bare-pingora-plain; then
    start_bare bare-pingora-plain "$BARE_PLAIN_BIN" 18094
fi
# (c*) bare Pingora on the no-steal runtime (the sidecar's, with one worker).
if selected bare-pingora-nosteal; then
    start_bare bare-pingora-nosteal "$BARE_BIN" 18093 BARE_PINGORA_WORK_STEALING=0
fi
# (c'') bare Pingora in plumbing mode, adding the headers a real sidecar request added upstream.
if selected pingora-plumbing; then
    if [ ! -x "$BARE_BIN" ]; then
        SKIP[pingora-plumbing]="no $BARE_BIN (bench/build.sh)"
    elif [ ! -x "$SIDECAR_BIN" ]; then
        SKIP[pingora-plumbing]="no $SIDECAR_BIN to capture the upstream headers from (bench/build.sh)"
    elif ! SIDECAR_BIN=$SIDECAR_BIN CONFIG=$SIDECAR_CONFIG "$BENCH/session/capture-upstream.sh" > "$WORK/plumbing-headers.txt" 2> "$WORK/capture.log"; then
        SKIP[pingora-plumbing]="capturing the sidecar's upstream headers failed: $(tail -c 300 "$WORK/capture.log" | tr '\n' ' ')"
    else
        start_bare pingora-plumbing "$BARE_BIN" 18090 BARE_PINGORA_PLUMBING="$WORK/plumbing-headers.txt" \
            BARE_PINGORA_WORK_STEALING="${BARE_PINGORA_PLUMBING_WORK_STEALING:-0}"
    fi
fi

# --- a provider that logs a user in, for the mod_auth_openidc session systems (i) ------------------
# The testkit provider auto-approves /authorize (PKCE S256) and redeems codes for its fixed test client; its
# tokens live ten years so nothing refreshes during a run. It only serves logins and mod_auth_openidc's
# metadata/JWKS fetches, never the measured requests, so it shares the load generator's core.
if { selected apache-moa-cache || selected apache-moa-cookie; } && [ -z "${APACHE_OIDC_METADATA_URL:-}" ] \
        && [ -x "$TEST_PROVIDER_BIN" ]; then
    taskset -c "$UPSTREAM_CPU" "$TEST_PROVIDER_BIN" --port 18089 --audience "$AUDIENCE" --scopes "$SCOPE" \
        --lifetime 315360000 > "$WORK/test-provider.log" 2>&1 &
    STARTED_PIDS+=("$!")
    for _ in $(seq 1 50); do
        curl -sf http://127.0.0.1:18089/.well-known/openid-configuration >/dev/null && break
        sleep 0.1
    done
    if curl -sf http://127.0.0.1:18089/.well-known/openid-configuration >/dev/null; then
        APACHE_OIDC_METADATA_URL=http://127.0.0.1:18089/.well-known/openid-configuration
        APACHE_OIDC_CLIENT_ID=00000000-aaaa-bbbb-cccc-000000000001   # oidc_testkit::TEST_CLIENT_ID
        APACHE_OIDC_CLIENT_SECRET=test-client-secret                 # oidc_testkit::TEST_CLIENT_SECRET
    else
        log "the test provider did not start: $(tail -c 300 "$WORK/test-provider.log" | tr '\n' ' ')"
    fi
fi

# --- (d) and (i) Apache + mod_auth_openidc --------------------------------------------------------
if selected apache-moa || selected apache-moa-cache || selected apache-moa-cookie; then
    mkdir -p "$WORK/apache-run"
    if [ "$ACCESS_LOG" = 1 ]; then APACHE_ACCESS_LOG="CustomLog $WORK/apache.access.log bench"; else APACHE_ACCESS_LOG=""; fi
    export APACHE_ACCESS_LOG
    render "$BENCH/conf/apache-moa.conf" '${WORK} ${APACHE_ACCESS_LOG}' > "$WORK/apache.conf"
    if [ -n "${APACHE_OIDC_METADATA_URL:-}" ]; then
        export APACHE_OIDC_METADATA_URL APACHE_OIDC_CLIENT_ID APACHE_OIDC_CLIENT_SECRET
        render "$BENCH/conf/apache-moa-session.conf" \
            '${APACHE_OIDC_METADATA_URL} ${APACHE_OIDC_CLIENT_ID} ${APACHE_OIDC_CLIENT_SECRET}' >> "$WORK/apache.conf"
    else
        SKIP[apache-moa-cache]="APACHE_OIDC_METADATA_URL not set and no $TEST_PROVIDER_BIN (cargo build -p oidc-testkit)"
        SKIP[apache-moa-cookie]="${SKIP[apache-moa-cache]}"
    fi
    APACHE_LOCK_DIR=$WORK/apache-run APACHE_RUN_DIR=$WORK/apache-run \
        taskset -c "$SUT_CPU" apache2 -f "$WORK/apache.conf" -k start \
        || die "Apache did not start: $(cat "$WORK/apache.error.log" 2>/dev/null)"
    PID[apache-moa]=$(pidfile_pid "$WORK/apache.pid") || die "Apache did not write its pid file"
    PID[apache-moa-cache]=${PID[apache-moa]}
    PID[apache-moa-cookie]=${PID[apache-moa]}
    STARTED_PIDS+=("${PID[apache-moa]}")
    EXPECT[apache-moa]=200; EXPECT[apache-moa-cache]=200; EXPECT[apache-moa-cookie]=200
    HEADER[apache-moa]="Authorization: Bearer $TOKEN"
fi

# --- (e)-(h) the sidecar --------------------------------------------------------------------------
start_sidecar() {  # name config [binary] -> SIDECAR_PID
    local name=$1 config=$2 bin=${3:-$SIDECAR_BIN}
    taskset -c "$SUT_CPU" "$bin" run --config "$config" > "$WORK/$name.log" 2>&1 &
    SIDECAR_PID=$!
    STARTED_PIDS+=("$SIDECAR_PID")
}
if selected sidecar-bearer || selected sidecar-401 || selected sidecar-cookie; then
    if [ -x "$SIDECAR_BIN" ]; then
        start_sidecar sidecar "$SIDECAR_CONFIG"
        PID[sidecar-bearer]=$SIDECAR_PID; PID[sidecar-401]=$SIDECAR_PID; PID[sidecar-cookie]=$SIDECAR_PID
        EXPECT[sidecar-bearer]=200; EXPECT[sidecar-401]=401; EXPECT[sidecar-cookie]=200
        HEADER[sidecar-bearer]="Authorization: Bearer $TOKEN"
    else
        for s in sidecar-bearer sidecar-401 sidecar-cookie; do
            SKIP[$s]="no $SIDECAR_BIN (bench/build.sh)"
        done
    fi
fi
if selected sidecar-redis; then
    if [ ! -x "$SIDECAR_BIN" ]; then
        SKIP[sidecar-redis]="no $SIDECAR_BIN (bench/build.sh)"
    elif [ ! -x "$BENCH/session/sidecar-redis.sh" ]; then
        SKIP[sidecar-redis]="no hook bench/session/sidecar-redis.sh (login flow)"
    else
        start_sidecar sidecar-redis "$SIDECAR_REDIS_CONFIG"
        PID[sidecar-redis]=$SIDECAR_PID
        EXPECT[sidecar-redis]=200
    fi
fi

if selected sidecar-cookie-plain; then
    if [ ! -x "$SIDECAR_PLAIN_BIN" ]; then
        SKIP[sidecar-cookie-plain]="no $SIDECAR_PLAIN_BIN (bench/build.sh)"
    else
        # (g)'s config on its own ports; the same session key, so the same minted cookie opens there.
        sed -e 's/127\.0\.0\.1:18084/127.0.0.1:18095/' -e 's/127\.0\.0\.1:19901/127.0.0.1:19904/' "$SIDECAR_CONFIG" \
            > "$WORK/sidecar-plain.toml"
        start_sidecar sidecar-plain "$WORK/sidecar-plain.toml" "$SIDECAR_PLAIN_BIN"
        PID[sidecar-cookie-plain]=$SIDECAR_PID
        EXPECT[sidecar-cookie-plain]=200
    fi
fi

# --- readiness, session hooks, warm-up ------------------------------------------------------------
is_session() { case $1 in bare-pingora-cookie|bare-pingora-nosteal|pingora-plumbing|sidecar-cookie|sidecar-cookie-plain|sidecar-redis|apache-moa-cache|apache-moa-cookie) return 0 ;; esac; return 1; }

# Runs the system's session hook; sets HEADER[$sys] to its Cookie header. Non-zero when it found no session.
session_login() {
    local sys=$1 hook=$BENCH/session/$1.sh cfg cookie
    case $sys in
        sidecar-cookie|sidecar-cookie-plain|bare-pingora-cookie|bare-pingora-nosteal|pingora-plumbing) cfg=$SIDECAR_CONFIG ;;
        sidecar-redis) cfg=$SIDECAR_REDIS_CONFIG ;;
        *) cfg=$WORK/apache.conf ;;
    esac
    cookie=$(PORT=${PORT[$sys]} CONFIG=$cfg "$hook") && [ -n "$cookie" ] || return 1
    HEADER[$sys]="Cookie: $cookie"
}

ACTIVE=()
for sys in $SYSTEMS; do
    [ -n "${PORT[$sys]:-}" ] || die "unknown system '$sys'"
    if [ -n "${SKIP[$sys]:-}" ]; then continue; fi
    if [ -z "${PID[$sys]:-}" ]; then SKIP[$sys]="not started"; continue; fi
    if is_session "$sys"; then
        if [ ! -x "$BENCH/session/$sys.sh" ]; then SKIP[$sys]="no hook bench/session/$sys.sh (login flow)"; continue; fi
        if ! session_login "$sys"; then SKIP[$sys]="bench/session/$sys.sh found no session"; continue; fi
    fi
    if ! wait_status "$sys" 30; then
        case $sys in
            sidecar-redis) SKIP[$sys]="not ready (log: $(tail -c 300 "$WORK/sidecar-redis.log" 2>/dev/null | tr '\n\t' '  '))" ;;
            sidecar-cookie-plain) SKIP[$sys]="not ready (log: $(tail -c 300 "$WORK/sidecar-plain.log" 2>/dev/null | tr '\n\t' '  '))" ;;
            sidecar-*) SKIP[$sys]="not ready (log: $(tail -c 300 "$WORK/sidecar.log" 2>/dev/null | tr '\n\t' '  '))" ;;
            apache-*) SKIP[$sys]="not ready (error log: $(tail -c 300 "$WORK/apache.error.log" 2>/dev/null | tr '\n\t' '  '))" ;;
            *) SKIP[$sys]="not ready" ;;
        esac
        continue
    fi
    ACTIVE+=("$sys")
done
for sys in $SYSTEMS; do
    if [ -n "${SKIP[$sys]:-}" ]; then
        log "skip $sys: ${SKIP[$sys]}"
        printf 'skip\t%s\t%s\n' "$sys" "${SKIP[$sys]}" >> "$RAW"
    fi
done
[ ${#ACTIVE[@]} -gt 0 ] || die "no system to measure"

# Move the upstream nginx onto the SUT core for its own point, and back afterwards.
pin_upstream() { local p; for p in $(tree_pids "${PID[upstream]}"); do taskset -a -p -c "$1" "$p" >/dev/null; done; }

run_wrk() {  # system seconds -> wrk output on stdout
    local sys=$1 secs=$2
    local args=(-t1 "-c$CONNECTIONS" "-d${secs}s" --latency --timeout 5s)
    [ -n "${HEADER[$sys]:-}" ] && args+=(-H "${HEADER[$sys]}")
    taskset -c "$LOADGEN_CPU" wrk "${args[@]}" "http://127.0.0.1:${PORT[$sys]}/bench/resource"
}

measure() {  # round system
    local rnd=$1 sys=$2 pids before after t0 t1 out
    if is_session "$sys"; then
        session_login "$sys" || log "round $rnd $sys: the session hook failed; reusing the previous session"
    fi
    [ "$sys" = upstream ] && pin_upstream "$SUT_CPU"
    [ "$WARMUP" -gt 0 ] && run_wrk "$sys" "$WARMUP" >/dev/null
    pids=$(tree_pids "${PID[$sys]}")
    before=$(cpu_ticks $pids); t0=$(date +%s.%N)
    out=$(run_wrk "$sys" "$DURATION")
    after=$(cpu_ticks $pids); t1=$(date +%s.%N)
    [ "$sys" = upstream ] && pin_upstream "$UPSTREAM_CPU"
    echo "$out" > "$WORK/wrk-$rnd-$sys.txt"
    awk -v rnd="$rnd" -v sys="$sys" -v ticks=$((after - before)) -v t0="$t0" -v t1="$t1" -v expect="${EXPECT[$sys]}" '
        /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 }
        / requests in / { reqs = $1 }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /Socket errors:/ { gsub(",", ""); sockerr = $4 + $6 + $8 + $10 }
        /^Requests\/sec:/ { rps = $2 }
        END { printf "point\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%.3f\t%s\n",
              rnd, sys, rps, p50, p99, reqs, non2xx, sockerr, ticks, t1 - t0, expect }' <<< "$out" >> "$RAW"
    tail -n 1 "$RAW" | awk -F'\t' '{ printf "[bench] round %s %-18s %9.0f req/s  p50 %s  p99 %s  non-2xx %s  socket errors %s\n", $2, $3, $4, $5, $6, $8, $9 }' >&2
}

log "measuring ${ACTIVE[*]}: $ROUNDS round(s) x ${DURATION}s, $CONNECTIONS connections, wrk on cpu $LOADGEN_CPU, SUTs on cpu $SUT_CPU, upstream on cpu $UPSTREAM_CPU"
for rnd in $(seq 1 "$ROUNDS"); do
    for sys in "${ACTIVE[@]}"; do measure "$rnd" "$sys"; done
done
for sys in "${ACTIVE[@]}"; do
    printf 'mem\t%s\t%s\n' "$sys" "$(mem_kb $(tree_pids "${PID[$sys]}") | tr ' ' '\t')" >> "$RAW"
done

# --- report ---------------------------------------------------------------------------------------
mkdir -p "$RESULTS_DIR"
stamp=$(date -u +%Y-%m-%dT%H%MZ)
if [ "$DURATION" -ge 10 ] && [ "$ROUNDS" -ge 3 ]; then suffix=""; else suffix="-smoke"; fi
RESULT=$RESULTS_DIR/$stamp$suffix.txt
{
    echo "# bench/run.sh $stamp"
    echo "# DURATION=$DURATION ROUNDS=$ROUNDS CONNECTIONS=$CONNECTIONS WARMUP=$WARMUP LOADGEN_CPU=$LOADGEN_CPU SUT_CPU=$SUT_CPU UPSTREAM_CPU=$UPSTREAM_CPU ACCESS_LOG=$ACCESS_LOG"
    echo "# host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r)"
    echo "# $(nginx -v 2>&1); $(apache2 -v | head -1); mod_auth_openidc $(dpkg-query -W -f='${Version}' libapache2-mod-auth-openidc 2>/dev/null || echo '?'); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
    [ -x "$SIDECAR_BIN" ] && echo "# $(timeout 5 "$SIDECAR_BIN" --version 2>/dev/null || echo oidc-sidecar)"
    echo
    python3 "$BENCH/report.py" "$RAW" $SYSTEMS
    echo
    echo "## raw records (report.py input)"
    cat "$RAW"
} > "$RESULT"
python3 "$BENCH/report.py" "$RAW" $SYSTEMS
log "results written to ${RESULT#$ROOT/}"
