#!/usr/bin/env bash
# User-space instructions per request, counted by valgrind's callgrind: the noise-free companion of run.sh.
#
# run.sh measures time, which on a shared 2-core machine moves by 10-20 % between runs of the same binary.
# Instructions do not: the same binary, request and load give the same count whatever else the machine does, so a
# change of a few hundred instructions per request is visible here long before wrk can resolve it. The count leaves
# out the kernel (the loopback TCP both servers pay alike: `strace -c` shows the same syscalls per request for bare
# Pingora and the sidecar: 2 recvfrom, 2 sendto, 1 getpeername) and cache misses, so it is a floor, not a time.
#
# Each system runs alone under callgrind, pinned to SUT_CPU, with instrumentation off; after WARM requests (caches
# and pools warm) it is switched on for N requests from `ab` (keep-alive, 10 connections) and the total is divided
# by N. Systems (any of): bare-pingora (c), bare-pingora-nosteal (c*), pingora-plumbing (c''), sidecar-cookie (g),
# sidecar-bearer (e), sidecar-redis (h); the letters are run.sh's.
#
#   bench/instructions.sh                                  # all six, 20000 requests each, about 5 minutes
#   SYSTEMS="pingora-plumbing sidecar-cookie" N=5000 bench/instructions.sh
#   KEEP_WORK=1 CALLGRIND_ARGS=--cache-sim=yes bench/instructions.sh   # also simulated cache misses, per function
#                                                                       # (callgrind_annotate on the kept files)
#
# Needs: valgrind, ab (apache2-utils), nginx, openssl, python3, and the release builds run.sh uses.
# Ports as run.sh's (18080, 18082, 18084, 18085, 18088, 18090, 18093, 19901-19903), so not while run.sh runs.
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
SYSTEMS=${SYSTEMS:-"bare-pingora bare-pingora-nosteal pingora-plumbing sidecar-cookie sidecar-bearer sidecar-redis"}
N=${N:-20000}
WARM=${WARM:-2000}
LOADGEN_CPU=${LOADGEN_CPU:-0}
SUT_CPU=${SUT_CPU:-1}
SIDECAR_BIN=${SIDECAR_BIN:-$ROOT/target/release/oidc-sidecar}
BARE_BIN=${BARE_BIN:-$ROOT/target/bench-pgo/release/bare-pingora}
for tool in valgrind callgrind_control ab nginx openssl python3 envsubst; do
    command -v "$tool" >/dev/null || { echo "instructions.sh: $tool is missing (apt-get install valgrind apache2-utils nginx-light openssl gettext-base)" >&2; exit 1; }
done
for bin in "$SIDECAR_BIN" "$BARE_BIN"; do
    [ -x "$bin" ] || { echo "instructions.sh: no $bin (bench/build.sh)" >&2; exit 1; }
done

for port in 18080 18082 18084 18085 18088 18090 18091 18092 18093 18443 19901 19902 19903; do
    if ss -Hltn "sport = :$port" | grep -q .; then
        echo "instructions.sh: port $port is taken (run.sh or another instructions.sh running?)" >&2
        exit 1
    fi
done

WORK=$(mktemp -d /tmp/oidc-sidecar-instructions.XXXXXX)
export WORK
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -s "$WORK/nginx-upstream.pid" ] && kill "$(cat "$WORK/nginx-upstream.pid")" 2>/dev/null || true
    [ "${KEEP_WORK:-0}" = 1 ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

# The same fixtures, upstream and configs as run.sh.
mkdir -p "$WORK/idp/.well-known" "$WORK/nginx-upstream-tmp"
python3 "$BENCH/fixtures.py" "$WORK/idp" http://127.0.0.1:18088 api://bench bench.read
mv "$WORK/idp/openid-configuration" "$WORK/idp/.well-known/openid-configuration"
chmod -R a+rX "$WORK"
TOKEN=$(cat "$WORK/idp/token.txt")
BENCH_SESSION_KEY=$(openssl rand -base64 32)
export BENCH_SESSION_KEY
envsubst '${WORK}' < "$BENCH/conf/nginx-upstream.conf" > "$WORK/nginx-upstream.conf"
taskset -c "$LOADGEN_CPU" nginx -q -p "$WORK" -e "$WORK/nginx-upstream.error.log" -c "$WORK/nginx-upstream.conf"
for _ in $(seq 1 50); do curl -sf -o /dev/null http://127.0.0.1:18088/.well-known/openid-configuration && break; sleep 0.1; done

declare -A IR
measure() {  # name port header -- command...
    local name=$1 port=$2 header=$3
    shift 4
    local out=$WORK/$name.callgrind
    # shellcheck disable=SC2086 # CALLGRIND_ARGS is a list of options
    taskset -c "$SUT_CPU" valgrind --tool=callgrind --instr-atstart=no ${CALLGRIND_ARGS:-} --callgrind-out-file="$out" "$@" \
        > "$WORK/$name.log" 2>&1 &
    local vpid=$!
    PIDS+=("$vpid")
    local code=""
    for _ in $(seq 1 300); do
        code=$(curl -s -o /dev/null -w '%{http_code}' -H "$header" "http://127.0.0.1:$port/bench/resource" || true)
        [ "$code" = 200 ] && break
        sleep 0.2
    done
    if [ "$code" != 200 ]; then
        echo "$name: answered '$code', not 200 (log: $(tail -c 300 "$WORK/$name.log" | tr '\n' ' '))" >&2
        kill "$vpid" 2>/dev/null || true
        return 1
    fi
    taskset -c "$LOADGEN_CPU" ab -q -k -n "$WARM" -c 10 -H "$header" "http://127.0.0.1:$port/bench/resource" > /dev/null
    callgrind_control -i on "$vpid" > /dev/null 2>&1
    local ab_out
    ab_out=$(taskset -c "$LOADGEN_CPU" ab -q -k -n "$N" -c 10 -H "$header" "http://127.0.0.1:$port/bench/resource")
    callgrind_control -i off "$vpid" > /dev/null 2>&1
    callgrind_control -d "$vpid" > /dev/null 2>&1
    kill "$vpid" 2>/dev/null || true
    wait "$vpid" 2>/dev/null || true
    local failed non2xx
    failed=$(awk '/^Failed requests:/ {print $3}' <<< "$ab_out")
    non2xx=$(awk '/^Non-2xx responses:/ {print $3}' <<< "$ab_out")
    if [ "${failed:-0}" != 0 ] || [ -n "$non2xx" ]; then
        echo "$name: $failed failed, ${non2xx:-0} non-2xx of $N: not counted" >&2
        return 1
    fi
    local total=0 f
    for f in "$out".*; do
        [ -e "$f" ] || continue
        total=$((total + $(awk '/^totals:/ {print $2}' "$f")))
    done
    IR[$name]=$((total / N))
    printf '%-22s %8d instructions per request\n' "$name" "${IR[$name]}"
}

cookie() { CONFIG=$1 "$BENCH/session/mint.sh" "${@:2}"; }

for sys in $SYSTEMS; do
    case $sys in
        bare-pingora)
            measure "$sys" 18082 "Cookie: $(cookie "$BENCH/sidecar.toml")" -- "$BARE_BIN" 127.0.0.1:18082 127.0.0.1:18080 || true ;;
        bare-pingora-nosteal)
            BARE_PINGORA_WORK_STEALING=0 measure "$sys" 18093 "Cookie: $(cookie "$BENCH/sidecar.toml")" -- \
                "$BARE_BIN" 127.0.0.1:18093 127.0.0.1:18080 || true ;;
        pingora-plumbing)
            SIDECAR_BIN=$SIDECAR_BIN CONFIG=$BENCH/sidecar.toml "$BENCH/session/capture-upstream.sh" > "$WORK/plumbing-headers.txt"
            BARE_PINGORA_PLUMBING=$WORK/plumbing-headers.txt BARE_PINGORA_WORK_STEALING=0 measure "$sys" 18090 \
                "Cookie: $(cookie "$BENCH/sidecar.toml")" -- "$BARE_BIN" 127.0.0.1:18090 127.0.0.1:18080 || true ;;
        sidecar-cookie)
            measure "$sys" 18084 "Cookie: $(cookie "$BENCH/sidecar.toml")" -- \
                "$SIDECAR_BIN" run --config "$BENCH/sidecar.toml" || true ;;
        sidecar-bearer)
            measure "$sys" 18084 "Authorization: Bearer $TOKEN" -- "$SIDECAR_BIN" run --config "$BENCH/sidecar.toml" || true ;;
        sidecar-redis)
            measure "$sys" 18085 "Cookie: $(cookie "$BENCH/sidecar-redis.toml" --redis)" -- \
                "$SIDECAR_BIN" run --config "$BENCH/sidecar-redis.toml" || true ;;
        *) echo "instructions.sh: unknown system $sys" >&2 ;;
    esac
done

echo
ratio() {  # a b label
    [ -n "${IR[$1]:-}" ] && [ -n "${IR[$2]:-}" ] || return 0
    python3 -c "import sys; a,b=int(sys.argv[1]),int(sys.argv[2]); print(f'{sys.argv[3]:<62} {b/a:5.2f}x  (+{a-b} instructions)')" \
        "${IR[$1]}" "${IR[$2]}" "$3"
}
ratio sidecar-cookie bare-pingora "cookie session vs bare Pingora (g / c), by instructions"
ratio sidecar-cookie bare-pingora-nosteal "cookie session vs same-runtime bare Pingora (g / c*)"
ratio pingora-plumbing bare-pingora-nosteal "plumbing vs same-runtime bare Pingora (c'' / c*)"
ratio sidecar-cookie pingora-plumbing "cookie session vs the same plumbing (g / c'')"
ratio sidecar-redis bare-pingora "Redis session vs bare Pingora (h / c)"
ratio sidecar-bearer bare-pingora "Bearer vs bare Pingora (e / c)"
