#!/usr/bin/env bash
# spec/bench/plugins.sh: what a plugin costs, in sluice and in the Lua hosts
# of nginx (lua-nginx-module) and HAProxy, in front of the same sluice-origin.
#
#   make bench            runs spec/bench/run.sh, then this
#   spec/bench/plugins.sh run it on an existing build (make all)
#
# The benchmark plugin does what most plugins do: set one request header
# and add one response header. Each proxy runs it in its own plugin system:
#   sluice-lua     a two-line Lua plugin (request.set_header, response.add_header)
#   sluice-native  the same two lines as a native plugin (when built)
#   sluice-headers the bundled plugins-lua/headers.lua configured to do the same
#   sluice-headers-native  the bundled native headers plugin, same config (when built)
#   nginx-lua      access_by_lua_block + header_filter_by_lua_block
#   haproxy-lua    http-request lua.bench_req + http-response lua.bench_res
# and each is also measured without it, so "added" is over its own baseline.
# sluice-chain-K runs K tiny Lua plugins (each sets its own request header):
# the cost of a chain should grow linearly with K.
#
# Measured: instructions per request under callgrind (a counted window of
# requests after an uncounted warm-up, 100-byte responses; cg_run below) and
# requests/s in interleaved wrk rounds. Then spec/bench/budget_cost.lua (what the CPU
# budget instrumentation costs a loop-heavy plugin, JIT on). Everything lands
# in build/bench-plugins/ (summary.txt holds the table).
#
# Exit status: 0 when everything ran (targets met or not: a benchmark, not a
# test); 1 when something failed to run or a proxy misbehaved. Tunables as in
# run.sh (BENCH_ROUNDS, BENCH_DURATION, BENCH_CONNS, BENCH_PIN, BENCH_SLUICE),
# BENCH_CG_WARMUP (1000) and BENCH_WINDOW (2000) requests for callgrind,
# plus BENCH_VARIANTS="a b ..." to
# measure a subset and BENCH_NATIVE_DIR=dir to take native plugins (NAME.so)
# from dir first.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# run.sh defines the process, arithmetic and wrk helpers and runs nothing
# when sourced.
# shellcheck source=spec/bench/run.sh
source "$HERE/run.sh"

SHOW=$ROOT/build/bench-plugins
ROUNDS=${BENCH_ROUNDS:-3}
SIZE=100
CG_WARMUP=${BENCH_CG_WARMUP:-1000}
WINDOW=${BENCH_WINDOW:-2000}
NGINX_MODULES=/usr/lib/nginx/modules

ALL_VARIANTS=(sluice-plain sluice-lua sluice-native sluice-headers sluice-headers-native sluice-chain-1 sluice-chain-5 sluice-chain-10
              nginx-plain nginx-lua haproxy-plain haproxy-lua)
# shellcheck disable=SC2206 # a space-separated list on purpose
VARIANTS=(${BENCH_VARIANTS:-${ALL_VARIANTS[*]}})
declare -A BASE=([sluice-lua]=sluice-plain [sluice-native]=sluice-plain
                 [sluice-headers]=sluice-plain [sluice-headers-native]=sluice-plain
                 [sluice-chain-1]=sluice-plain [sluice-chain-5]=sluice-plain
                 [sluice-chain-10]=sluice-plain [nginx-lua]=nginx-plain
                 [haproxy-lua]=haproxy-plain)

# --- configurations ------------------------------------------------------------

# native_so NAME: a native plugin (its absolute path), wherever make put it:
# $BENCH_NATIVE_DIR first when set, then next to the binary measured (make
# BUILD=dir builds bench.so into dir/bench-native, the bundled plugins into
# dir/plugins-native), then build/.
native_so() {
    local f bin_dir
    bin_dir=$(dirname "$SLUICE_SRC")
    for f in ${BENCH_NATIVE_DIR:+"$BENCH_NATIVE_DIR/$1.so"} \
             "$bin_dir/bench-native/$1.so" "$bin_dir/plugins-native/$1.so" \
             "$ROOT/build/bench-native/$1.so" "$ROOT/build/plugins-native/$1.so" \
             "$ROOT/plugins-native/$1.so"; do
        [[ -f $f ]] && { realpath "$f"; return 0; }
    done
    return 1
}

# sluice_conf FILE PORT VARIANT: a one-worker configuration for VARIANT.
sluice_conf() {
    local f=$1 port=$2 v=$3 k
    {
        echo "workers: 1"
        echo "listen: [127.0.0.1:$port]"
        echo "log: {level: warn, access_log: \"off\"}"
        echo "upstreams: {origin: {backends: [127.0.0.1:$ORIGIN_PORT]}}"
        echo "routes: [{path: /, upstream: origin}]"
        case $v in
        sluice-plain) ;;
        sluice-lua)
            echo "plugin_paths: [$OUT/chain]"
            echo "plugins: [bench]"
            ;;
        sluice-native)
            echo "plugin_paths: [$(dirname "$(native_so bench)")]"
            echo "plugins: [{name: bench, kind: native}]"
            ;;
        sluice-headers)
            echo "plugin_paths: [$ROOT/plugins-lua]"
            echo "plugins: [{name: headers, config: {request: {set: {X-Bench: \"1\"}}, response: {add: {X-Plugin: \"1\"}}}}]"
            ;;
        sluice-headers-native)
            echo "plugin_paths: [$(dirname "$(native_so headers)")]"
            echo "plugins: [{name: headers, kind: native, config: {request: {set: {X-Bench: \"1\"}}, response: {add: {X-Plugin: \"1\"}}}}]"
            ;;
        sluice-chain-*)
            echo "plugin_paths: [$OUT/chain]"
            echo "plugins:"
            for ((k = 1; k <= ${v#sluice-chain-}; k++)); do echo "  - bench-$k"; done
            ;;
        esac
    } >"$f"
}

# The benchmark plugin and the tiny plugins of the chain variants.
write_chain_plugins() {
    local k
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
}

nginx_conf() {  # nginx_conf PREFIX PORT VARIANT
    local prefix=$1 port=$2 v=$3
    {
        if [[ $v == nginx-lua ]]; then
            echo "load_module $NGINX_MODULES/ndk_http_module.so;"
            echo "load_module $NGINX_MODULES/ngx_http_lua_module.so;"
        fi
        sed -e "s|@PREFIX@|$prefix|g" -e "s|@LISTEN@|127.0.0.1:$port|g" \
            -e "s|@ORIGIN@|127.0.0.1:$ORIGIN_PORT|g" "$HERE/nginx.conf.in" |
        if [[ $v == nginx-lua ]]; then
            # The same work as the sluice plugin, in the phases nginx users
            # would pick for it.
            sed -e 's|^\( *\)proxy_pass http://origin;|&\
\1access_by_lua_block { ngx.req.set_header("X-Bench", "1") }\
\1header_filter_by_lua_block { ngx.header["X-Plugin"] = "1" }|'
        else
            cat
        fi
    } >"$prefix/nginx.conf"
}

haproxy_conf() {  # haproxy_conf DIR PORT VARIANT
    local dir=$1 port=$2 v=$3
    cat >"$dir/bench.lua" <<'LUA'
core.register_action("bench_req", { "http-req" }, function(txn)
  txn.http:req_set_header("X-Bench", "1")
end)
core.register_action("bench_res", { "http-res" }, function(txn)
  txn.http:res_add_header("X-Plugin", "1")
end)
LUA
    {
        echo "global"
        echo "  nbthread 1"
        [[ $v == haproxy-lua ]] && echo "  lua-load $dir/bench.lua"
        echo "defaults"
        echo "  mode http"
        echo "  timeout connect 5s"
        echo "  timeout client 75s"
        echo "  timeout server 75s"
        echo "  timeout http-keep-alive 75s"
        echo "  option http-keep-alive"
        echo "frontend fe"
        echo "  bind 127.0.0.1:$port"
        if [[ $v == haproxy-lua ]]; then
            echo "  http-request lua.bench_req"
            echo "  http-response lua.bench_res"
        fi
        echo "  default_backend be"
        echo "backend be"
        echo "  http-reuse always"
        echo "  server origin 127.0.0.1:$ORIGIN_PORT"
    } >"$dir/haproxy.cfg"
}

# start_variant VARIANT TAG [WRAPPER...]: start it on a free port. Sets
# PROXY_PID and PROXY_PORT; returns 1 when it does not come up.
start_variant() {
    local v=$1 tag=$2
    shift 2
    PROXY_PORT=$(free_port)
    local log=$OUT/$tag.log dir=$OUT/$tag.conf
    rm -rf "$dir"
    mkdir -p "$dir"
    case $v in
    sluice-*)
        sluice_conf "$dir/sluice.yaml" "$PROXY_PORT" "$v"
        "$@" "$SLUICE" -c "$dir/sluice.yaml" >"$log" 2>&1 &
        ;;
    nginx-*)
        nginx_conf "$dir" "$PROXY_PORT" "$v"
        "$@" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >"$log" 2>&1 &
        ;;
    haproxy-*)
        haproxy_conf "$dir" "$PROXY_PORT" "$v"
        "$@" haproxy -db -f "$dir/haproxy.cfg" >"$log" 2>&1 &
        ;;
    esac
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    local secs=10
    [[ $# -gt 0 ]] && secs=90
    if ! wait_ready "$PROXY_PID" "$PROXY_PORT" "$secs"; then
        bad "$v did not come up on 127.0.0.1:$PROXY_PORT (see $log)"
        tail -5 "$log" >&2
        stop "$PROXY_PID" KILL 5
        return 1
    fi
    # The plugin really ran: its response header is there.
    if [[ $v == *-lua || $v == sluice-native || $v == sluice-headers* ]] &&
       ! timeout 60 python3 "$CLIENT" --head "127.0.0.1:$PROXY_PORT" /size/1 1 1 2>/dev/null |
         grep -qi '^x-plugin: 1'; then
        bad "$v answered without the X-Plugin header its plugin adds (see $log)"
        stop "$PROXY_PID" KILL 5
        return 1
    fi
}

stop_variant() {  # stop_variant VARIANT SECONDS: a clean stop (callgrind writes its file)
    local v=$1 sig=TERM
    [[ $v == nginx-* ]] && sig=QUIT
    [[ $v == haproxy-* ]] && sig=USR1
    if ! is_alive "$PROXY_PID"; then
        wait "$PROXY_PID" 2>/dev/null
        bad "$v had already exited (status $?) before it was asked to stop"
        forget "$PROXY_PID"
        return 1
    fi
    stop "$PROXY_PID" "$sig" "$2" || { bad "$v hung on SIG$sig"; return 1; }
}

available() {  # available VARIANT: can it run on this machine?
    case $1 in
    sluice-native) native_so bench >/dev/null ;;
    sluice-headers-native) native_so headers >/dev/null ;;
    nginx-lua) [[ -f $NGINX_MODULES/ngx_http_lua_module.so ]] ;;
    haproxy-*) command -v haproxy >/dev/null ;;
    *) return 0 ;;
    esac
}

# --- measurements ------------------------------------------------------------------

# cg_run VARIANT: sets CG_IR to instructions per request. callgrind starts
# with instrumentation off; BENCH_CG_WARMUP requests warm the proxy (and its
# Lua JIT) up, then instrumentation counts exactly BENCH_WINDOW requests and goes
# off again. Unlike a difference of two runs, nothing one-off (start, stop,
# how much a JIT compiles while warming up, which varies from run to run)
# gets into the figure; it repeats to a few instructions.
cg_run() {
    local v=$1 tag=callgrind.$1
    local cg=$OUT/$tag.out
    CG_IR=""
    rm -f "$cg"*
    start_variant "$v" "$tag" valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$cg" || return 1
    if ! timeout 600 python3 "$CLIENT" "127.0.0.1:$PROXY_PORT" "/size/$SIZE" "$CG_WARMUP" "$SIZE" ||
       ! callgrind_control -i on "$PROXY_PID" >/dev/null 2>&1 ||
       ! timeout 600 python3 "$CLIENT" "127.0.0.1:$PROXY_PORT" "/size/$SIZE" "$WINDOW" "$SIZE" ||
       ! callgrind_control -i off "$PROXY_PID" >/dev/null 2>&1; then
        bad "$v under callgrind: the client or callgrind_control failed (see $OUT/$tag.log)"
        stop "$PROXY_PID" KILL 5
        return 1
    fi
    stop_variant "$v" 60 || return 1
    local ir
    ir=$(cat "$cg"* 2>/dev/null | awk '/^totals:/ { s += $2 } END { if (s) print s }')
    [[ -n $ir ]] || { bad "$v under callgrind: no totals in $cg"; return 1; }
    CG_IR=$(awk -v ir="$ir" -v n="$WINDOW" 'BEGIN { printf "%.1f", ir / n }')
}

instructions() {
    say ""
    say "== instructions per request: callgrind, /size/$SIZE, on one keep-alive connection:"
    say "   $CG_WARMUP warm-up requests uncounted, then a window of $WINDOW requests counted"
    local v
    for v in "${VARIANTS[@]}"; do
        available "$v" || { say "  $v: not available here, skipped"; RES[ir.$v]="-"; continue; }
        if ! cg_run "$v"; then
            RES[ir.$v]=INVALID
            continue
        fi
        RES[ir.$v]=$CG_IR
        printf '  %-22s %s instructions/request\n' "$v" "${RES[ir.$v]}"
    done
}

throughput() {
    say ""
    say "== requests/s: wrk -t1 -c$CONNS -d${DURATION}s, /size/$SIZE, $ROUNDS rounds interleaved"
    local v r
    declare -A PORT PID
    local run=()
    for v in "${VARIANTS[@]}"; do
        available "$v" || continue
        start_variant "$v" "$v.wrk" "${PIN0[@]}" || { RES[rps.$v]=INVALID; continue; }
        PORT[$v]=$PROXY_PORT
        PID[$v]=$PROXY_PID
        run+=("$v")
    done
    RPS=() P99=() CPU=()
    for r in warmup $(seq 1 "$ROUNDS"); do
        for v in "${run[@]}"; do
            [[ -n ${BROKEN[$v]:-} ]] && continue
            PROXY_PID_OF_ROUND=${PID[$v]}
            wrk_round "$v" "${PORT[$v]}" "$SIZE" "$r"
        done
    done
    for v in "${run[@]}"; do
        if [[ -n ${BROKEN[$v]:-} ]]; then
            RES[rps.$v]=INVALID
        else
            # shellcheck disable=SC2086 # the lists split on purpose
            RES[rps.$v]=$(median ${RPS[$v]:-})
        fi
        PROXY_PID=${PID[$v]}
        is_alive "$PROXY_PID" && stop_variant "$v" 20
    done
}

summary() {
    {
        local rev
        rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "not a git checkout")
        git -C "$ROOT" diff --quiet HEAD -- src lua plugins-lua plugins-native 2>/dev/null ||
            rev="$rev + uncommitted changes"
        say "sluice plugin benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $rev"
        say "machine: $(nproc) CPUs, load average $LOAD0 at start, $(cut -d' ' -f1-3 /proc/loadavg) at end;"
        say "  $(nginx -v 2>&1 | sed 's/.*: //') + lua-nginx-module, $(haproxy -v 2>/dev/null | head -1 | awk '{print "HAProxy", $3}'), $(valgrind --version)"
        say ""
        printf '%-16s %14s %16s %12s\n' variant "instr/req" "added over base" "req/s"
        local v base added
        for v in "${VARIANTS[@]}"; do
            base=${BASE[$v]:-}
            added="-"
            if [[ -n $base ]]; then
                added=$(awk -v a="${RES[ir.$v]:-}" -v b="${RES[ir.$base]:-}" 'BEGIN {
                    if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/) print "-"; else printf "%+.0f", a - b }')
            fi
            printf '%-16s %14s %16s %12s\n' "$v" "${RES[ir.$v]:--}" "$added" "${RES[rps.$v]:--}"
        done
        say ""
        say "req/s ratios: sluice-lua / nginx-lua $(ratio "${RES[rps.sluice-lua]:--}" "${RES[rps.nginx-lua]:--}")x" \
            "(target >= 1.0), sluice-lua / haproxy-lua $(ratio "${RES[rps.sluice-lua]:--}" "${RES[rps.haproxy-lua]:--}")x"
        # Linearity: what each plugin of a chain adds, from the chain sizes measured.
        local k per=""
        for k in 1 5 10; do
            per+=" K=$k: $(awk -v a="${RES[ir.sluice-chain-$k]:-}" -v b="${RES[ir.sluice-plain]:-}" -v k="$k" 'BEGIN {
                if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/) print "-"; else printf "%.0f", (a - b) / k }')"
        done
        say "chain of K one-hook plugins, instructions added per plugin:$per"
        say ""
        say "targets: the benchmark plugin adds <= 1,500 instructions/request in Lua (sluice-lua),"
        say "<= 500 native (sluice-native); a chain of K plugins grows linearly in K."
        [[ -n ${BUDGET_OUT:-} ]] && { say ""; say "== budget instrumentation (spec/bench/budget_cost.lua)"; cat "$BUDGET_OUT"; }
        [[ $FAILED == 1 ]] && say "Some measurements failed; see the messages above and the logs in $OUT."
    } | tee "$OUT/summary.txt"
}

# --- main --------------------------------------------------------------------

setup sluice-bench-plugins wrk nginx haproxy valgrind strace python3 taskset timeout luajit
START=$SECONDS
write_chain_plugins

start_origin
say "origin: sluice-origin on 127.0.0.1:$ORIGIN_PORT (pid $ORIGIN_PID); output in $OUT"
instructions
throughput
BUDGET_OUT=$OUT/budget_cost.txt
(cd "$ROOT" && timeout 600 luajit spec/bench/budget_cost.lua) >"$BUDGET_OUT" 2>&1 ||
    bad "spec/bench/budget_cost.lua failed (see $BUDGET_OUT)"
is_alive "$ORIGIN_PID" || bad "sluice-origin died during the run (see $OUT/origin.log)"
say ""
say "== summary ($((SECONDS - START)) s)"
summary
exit "$FAILED"
