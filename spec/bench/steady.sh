#!/usr/bin/env bash
# spec/bench/steady.sh: instructions per request in the steady state, under
# callgrind, counting only a window of requests after a warm-up in one run.
#
#   spec/bench/steady.sh [PLUGINS...]      e.g. "" bench "bench-1, bench-2"
#
# plugins.sh and run.sh take (Ir(N2) - Ir(N1)) / (N2 - N1) over two runs,
# which cancels start and stop only when both runs do the same one-off
# work. With Lua plugins they do not quite: how much LuaJIT compiles while
# the hooks warm up varies from process to process (hot counters hashed by
# address, randomised retry penalties), by a few hundred thousand
# instructions, i.e. +-150 per request at the default counts. Here callgrind
# starts with instrumentation off (--instr-atstart=no), BENCH_WARMUP
# requests run, instrumentation goes on for BENCH_N requests and off again:
# the total is those requests' alone, repeatable to a few instructions.
#
# Each argument is a plugins: list for the configuration ("" for none),
# taken from the benchmark plugins plugins.sh writes (bench.lua: set one
# request header, add one response header; bench-K.lua: set one request
# header), which this script writes again to its temp dir. Tunables:
# BENCH_SLUICE (build/sluice), BENCH_WARMUP (1000), BENCH_N (2000), and
# BENCH_KEEP=dir to keep each run's callgrind output there (for
# callgrind_annotate). Native plugins are found next to the binary
# (dir/bench-native/bench.so, dir/plugins-native/*.so): pass
# "{name: bench, kind: native}" for the native benchmark plugin.
# Prints one line per configuration; exit status 1 when one failed.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLIENT=$ROOT/spec/bench/client.py
SLUICE=${BENCH_SLUICE:-$ROOT/build/sluice}
NATIVE=$(cd "$(dirname "$SLUICE")" && pwd)
ORIGIN=$NATIVE/sluice-origin
[[ -x $ORIGIN ]] || ORIGIN=$ROOT/build/sluice-origin
WARMUP=${BENCH_WARMUP:-1000}
N=${BENCH_N:-2000}
OUT=$(mktemp -d "${TMPDIR:-/tmp}/sluice-steady.XXXXXX") || exit 1
PIDS=()

# shellcheck disable=SC2317 # reached through the EXIT trap
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    rm -rf "$OUT"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_up PID PORT: PORT accepts connections (60 s at most).
wait_up() {
    local i
    for ((i = 0; i < 600; i++)); do
        kill -0 "$1" 2>/dev/null || return 1
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $2), 1).close()" \
            2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

mkdir -p "$OUT/chain"
cat >"$OUT/chain/bench.lua" <<'LUA'
local sluice = require "sluice"
local set_header, add_header = sluice.request.set_header, sluice.response.add_header
return {
  name = "bench", version = "1.0.0", priority = 1,
  request_headers = function(conf, ctx) set_header("X-Bench", "1") end,
  response_headers = function(conf, ctx) add_header("X-Plugin", "1") end,
}
LUA
for ((k = 1; k <= 10; k++)); do
    cat >"$OUT/chain/bench-$k.lua" <<LUA
local set_header = require("sluice").request.set_header
return {
  name = "bench-$k", version = "1.0.0", priority = $k,
  request_headers = function(conf, ctx) set_header("X-Bench-$k", "1") end,
}
LUA
done

ORIGIN_PORT=$(free_port)
"$ORIGIN" --listen "127.0.0.1:$ORIGIN_PORT" --name steady >"$OUT/origin.log" 2>&1 &
PIDS+=($!)
wait_up "$!" "$ORIGIN_PORT" || { echo "steady: the origin did not come up" >&2; exit 1; }

export SLUICE_LUA_PATH=${SLUICE_LUA_PATH:-$ROOT/lua}
status=0
for plugins in "$@"; do
    port=$(free_port)
    {
        echo "workers: 1"
        echo "listen: [127.0.0.1:$port]"
        echo 'log: {level: warn, access_log: "off"}'
        echo "upstreams: {origin: {backends: [127.0.0.1:$ORIGIN_PORT]}}"
        echo "routes: [{path: /, upstream: origin}]"
        if [[ -n $plugins ]]; then
            echo "plugin_paths: [$OUT/chain, $NATIVE/bench-native, $NATIVE/plugins-native]"
            echo "plugins: [$plugins]"
        fi
    } >"$OUT/sluice.yaml"
    rm -f "$OUT"/callgrind.out*
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/callgrind.out" \
        "$SLUICE" -c "$OUT/sluice.yaml" >"$OUT/sluice.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    ok=1
    wait_up "$pid" "$port" &&
        timeout 600 python3 "$CLIENT" "127.0.0.1:$port" /size/100 "$WARMUP" 100 >/dev/null &&
        callgrind_control -i on "$pid" >/dev/null 2>&1 &&
        timeout 600 python3 "$CLIENT" "127.0.0.1:$port" /size/100 "$N" 100 >/dev/null &&
        callgrind_control -i off "$pid" >/dev/null 2>&1 || ok=0
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    ir=$(cat "$OUT"/callgrind.out* 2>/dev/null | awk '/^totals:/ { s += $2 } END { print s + 0 }')
    if [[ -n ${BENCH_KEEP:-} ]]; then
        mkdir -p "$BENCH_KEEP"
        tag=$(printf '%s' "${plugins:-none}" | tr -c 'A-Za-z0-9_-' '_')
        cat "$OUT"/callgrind.out* >"$BENCH_KEEP/callgrind.$tag.out" 2>/dev/null
    fi
    if [[ $ok == 1 && $ir -gt 0 ]]; then
        awk -v ir="$ir" -v n="$N" -v p="${plugins:-(none)}" \
            'BEGIN { printf "%-40s %10.1f instructions/request\n", p, ir / n }'
    else
        echo "steady: ${plugins:-(none)}: the run failed; sluice said:" >&2
        tail -5 "$OUT/sluice.log" >&2
        status=1
    fi
done
exit "$status"
