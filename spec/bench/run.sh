#!/usr/bin/env bash
# spec/bench/run.sh: sluice against nginx, in front of the same sluice-origin.
#
#   make bench                  install wrk, nginx, valgrind; build; run this
#   spec/bench/run.sh           run it on an existing build (make all)
#
# Three measurements, each for a 100-byte and a 16 KiB response over
# keep-alive connections (docs/BENCHMARKS.md explains every choice):
#   1. throughput: wrk rounds, sluice and nginx interleaved; median req/s and
#      p99 latency of each;
#   2. instructions per request under callgrind, from two runs of N1 and N2
#      requests: (Ir2 - Ir1) / (N2 - N1), so start and stop cancel out;
#   3. system calls per request under strace -c, the same two-count way.
# Everything lands in build/bench/; the table is also build/bench/summary.txt.
#
# Exit status: 0 when everything ran, whether or not the targets are met
# (this is a benchmark, not a test); 1 when something failed to run, or when
# a proxy answered errors, crashed or hung (its figures are then marked
# INVALID rather than reported). Tunables, all optional:
#   BENCH_ROUNDS=5  BENCH_DURATION=4  BENCH_CONNS=32   wrk rounds
#   BENCH_N1=500    BENCH_N2=2500     BENCH_WARMUP=200 callgrind/strace counts
#   BENCH_SLUICE=build/sluice       the binary to measure (e.g. an older build)
#   BENCH_PIN=auto  1: proxy on CPU 0, origin and wrk on CPU 1 (auto: 1 when
#                   there are at least 2 CPUs); 0: let the scheduler place them
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/spec/bench
CLIENT=$HERE/client.py
SHOW=$ROOT/build/bench     # where the results end up
OUT=""                     # where they are written meanwhile (a temp dir)
SLUICE_SRC=${BENCH_SLUICE:-$ROOT/build/sluice}
ORIGIN_SRC=$ROOT/build/sluice-origin

ROUNDS=${BENCH_ROUNDS:-5}
DURATION=${BENCH_DURATION:-4}
CONNS=${BENCH_CONNS:-32}
N1=${BENCH_N1:-500}
N2=${BENCH_N2:-2500}
WARMUP=${BENCH_WARMUP:-200}
PIN=${BENCH_PIN:-auto}
SIZES=(100 16384)
PROXIES=(sluice nginx)

PIDS=()            # every process this script started and has not reaped
FAILED=0           # something did not run, or a proxy misbehaved
declare -A RES     # RES[metric.proxy.size] = figure, or INVALID
declare -A NOTE    # NOTE[proxy] = what went wrong with it
declare -A RPS P99 CPU  # RPS[proxy] = req/s of each wrk round so far, space-separated
declare -A BROKEN  # BROKEN[proxy] set: a round failed; no more rounds for it

# Messages name files where they will be once the run is over.
say()  { local m="$*"; [[ -n $OUT ]] && m=${m//"$OUT"/$SHOW}; printf '%s\n' "$m"; }
warn() { local m="$*"; [[ -n $OUT ]] && m=${m//"$OUT"/$SHOW}; printf 'bench: %s\n' "$m" >&2; }
die()  { warn "$*"; exit 1; }
bad()  { warn "$*"; FAILED=1; }

# --- processes ------------------------------------------------------------

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null
    done
    PIDS=()
    publish
}

# The tree is shared: someone may run `make clean` or rebuild while the
# benchmark runs. So the binaries are measured from a copy taken at the start,
# results are written to a private temp dir, and only the finished set is
# copied to build/bench.
publish() {
    [[ -n $OUT && -d $OUT ]] || return 0
    rm -rf "${OUT:?}/bin"
    local out=$OUT
    OUT=""   # from here on, messages name the temp dir as it is
    if rm -rf "$SHOW" && mkdir -p "$SHOW" && cp -a "$out/." "$SHOW/"; then
        rm -rf "$out"
    else
        warn "could not copy the results to $SHOW; they stay in $out"
    fi
}

forget() {
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# is_alive PID: running, and not a zombie waiting to be reaped.
is_alive() {
    local st
    kill -0 "$1" 2>/dev/null || return 1
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $st != Z ]]
}

# wait_gone PID SECONDS: 0 once PID has exited (and is reaped), 1 on timeout.
wait_gone() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        is_alive "$1" || { wait "$1" 2>/dev/null; return 0; }
        sleep 0.1
    done
    return 1
}

# stop PID SIGNAL SECONDS: ask PID to stop, kill it when it does not. Sets
# STOP_STATUS to its exit status; returns 1 when it had to be killed.
stop() {
    local pid=$1 sig=$2 secs=$3 rc=0
    kill "-$sig" "$pid" 2>/dev/null
    local i
    for ((i = 0; i < secs * 10; i++)); do
        is_alive "$pid" || break
        sleep 0.1
    done
    if is_alive "$pid"; then
        warn "pid $pid did not stop within ${secs}s of SIG$sig; killing it"
        kill -KILL "$pid" 2>/dev/null
        rc=1
    fi
    wait "$pid" 2>/dev/null
    STOP_STATUS=$?
    forget "$pid"
    return $rc
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

PIN0=()   # command prefixes placing the proxy (CPU 0) and origin, wrk (CPU 1)
PIN1=()

# wait_ready PID PORT SECONDS: the proxy (or origin) on PORT answers /size/1
# from our origin. One request reaches the server when it succeeds; a refused
# connection costs the server nothing, so the callgrind and strace runs see
# exactly one probe each.
wait_ready() {
    local pid=$1 port=$2 secs=$3 i head
    for ((i = 0; i < secs * 10; i++)); do
        is_alive "$pid" || return 1
        if head=$(timeout 120 python3 "$CLIENT" --head "127.0.0.1:$port" /size/1 1 1 2>/dev/null); then
            if grep -qi "^x-origin-name: $ORIGIN_NAME" <<<"$head"; then
                return 0
            fi
            warn "port $port answered, but not through our origin (port taken?):"
            warn "$head"
            return 1
        fi
        sleep 0.1
    done
    return 1
}

ORIGIN_NAME=bench-$$
start_origin() {
    ORIGIN_PORT=$(free_port)
    "${PIN1[@]}" "$ORIGIN" --listen "127.0.0.1:$ORIGIN_PORT" --name "$ORIGIN_NAME" \
        >"$OUT/origin.log" 2>&1 &
    ORIGIN_PID=$!
    PIDS+=("$ORIGIN_PID")
    wait_ready "$ORIGIN_PID" "$ORIGIN_PORT" 10 ||
        die "sluice-origin did not come up on 127.0.0.1:$ORIGIN_PORT (see $OUT/origin.log)"
}

# start_proxy NAME TAG [WRAPPER...]: start sluice or nginx on a free port in
# front of the origin, optionally under a wrapper (valgrind). Sets PROXY_PID,
# PROXY_PORT; logs to build/bench/TAG.log.
start_proxy() {
    local name=$1 tag=$2
    shift 2
    PROXY_PORT=$(free_port)
    local log=$OUT/$tag.log
    case $name in
    sluice)
        "$@" "$SLUICE" --listen "127.0.0.1:$PROXY_PORT" --to "127.0.0.1:$ORIGIN_PORT" \
            --workers 1 >"$log" 2>&1 &
        ;;
    nginx)
        local prefix=$OUT/$tag.prefix
        rm -rf "$prefix"
        mkdir -p "$prefix"
        sed -e "s|@PREFIX@|$prefix|g" -e "s|@LISTEN@|127.0.0.1:$PROXY_PORT|g" \
            -e "s|@ORIGIN@|127.0.0.1:$ORIGIN_PORT|g" "$HERE/nginx.conf.in" >"$prefix/nginx.conf"
        "$@" nginx -p "$prefix" -e "$prefix/error.log" -c "$prefix/nginx.conf" >"$log" 2>&1 &
        ;;
    esac
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    local secs=10
    [[ $# -gt 0 ]] && secs=90
    if ! wait_ready "$PROXY_PID" "$PROXY_PORT" "$secs"; then
        bad "$name did not come up on 127.0.0.1:$PROXY_PORT (see $log)"
        tail -5 "$log" >&2
        stop "$PROXY_PID" KILL 5
        return 1
    fi
}

stop_proxy() {  # stop_proxy NAME SECONDS: clean stop, so callgrind writes its file
    local sig=TERM
    [[ $1 == nginx ]] && sig=QUIT
    if ! is_alive "$PROXY_PID"; then
        wait "$PROXY_PID" 2>/dev/null
        bad "$1 had already exited (status $?) before it was asked to stop"
        forget "$PROXY_PID"
        return 1
    fi
    stop "$PROXY_PID" "$sig" "$2" || { bad "$1 hung on SIG$sig"; return 1; }
    if [[ $STOP_STATUS != 0 ]]; then
        bad "$1 exited with status $STOP_STATUS on SIG$sig"
        return 1
    fi
}

# --- arithmetic -----------------------------------------------------------

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() {  # cpu_ticks PID: utime + stime of the whole process, in ticks
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null
}

median() {  # median of the arguments (numbers); empty when there are none
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) exit
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio() {  # ratio A B, or "-" when either is not a number
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a !~ /^[0-9.eE+-]+$/ || b !~ /^[0-9.eE+-]+$/ || a !~ /[0-9]/ || b + 0 == 0) { print "-"; exit }
        printf "%.2f", a / b }'
}

per_request() {  # per_request X1 X2: (X2 - X1) / (N2 - N1)
    awk -v a="$1" -v b="$2" -v n1="$N1" -v n2="$N2" 'BEGIN { printf "%.1f", (b - a) / (n2 - n1) }'
}

# --- 1. throughput ----------------------------------------------------------

# wrk_round NAME PORT SIZE LABEL: one wrk run. Appends the req/s and p99 to
# RPS[NAME] / P99[NAME], or marks NAME broken.
wrk_round() {
    local name=$1 port=$2 size=$3 label=$4
    local f=$OUT/wrk.$name.$size.$label.txt d=$DURATION
    [[ $label == warmup ]] && d=2
    local t0 t1
    t0=$(cpu_ticks "$PROXY_PID_OF_ROUND")
    "${PIN1[@]}" timeout $((d + 30)) wrk -t1 -c"$CONNS" -d"${d}s" --timeout 5s \
        --latency "http://127.0.0.1:$port/size/$size" >"$f" 2>&1
    local rc=$?
    t1=$(cpu_ticks "$PROXY_PID_OF_ROUND")
    local rps p99 non2xx sockerr total
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$f")
    total=$(awk '/requests in/ { print $1 }' "$f")
    # "99%  1.23ms": wrk picks us, ms or s; convert to ms.
    p99=$(awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
                             f = (u == "us") ? 0.001 : (u == "s") ? 1000 : (u == "m") ? 60000 : 1
                             printf "%.3f", v * f }' "$f")
    non2xx=$(awk -F: '/Non-2xx or 3xx responses/ { gsub(/ /, "", $2); print $2 }' "$f")
    sockerr=$(awk '/Socket errors:/ { n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) n += $i; print n }' "$f")
    non2xx=${non2xx:-0}
    sockerr=${sockerr:-0}
    # CPU time the server under test spent (user + system, all threads) per
    # request: less sensitive than req/s to what else runs on the machine.
    local cpu
    cpu=$(awk -v a="$t0" -v b="$t1" -v n="$total" -v hz="$CLK_TCK" 'BEGIN {
        if (a == "" || b == "" || n + 0 == 0) print "-"; else printf "%.1f", (b - a) * 1e6 / hz / n }')
    printf '  %-6s %-8s %-7s %10s req/s  p99 %8s ms  %6s us CPU/req  requests %s  non-2xx %s  socket errors %s\n' \
        "$name" "$size" "$label" "${rps:--}" "${p99:--}" "$cpu" "${total:--}" "$non2xx" "$sockerr"
    [[ $label == warmup ]] && { check_round "$name" "$f" "$rc" "$rps" "$non2xx" "$sockerr"; return; }
    if check_round "$name" "$f" "$rc" "$rps" "$non2xx" "$sockerr"; then
        RPS[$name]+="$rps "
        P99[$name]+="$p99 "
        CPU[$name]+="$cpu "
    fi
}

# check_round NAME FILE RC RPS NON2XX SOCKERR: a round counts only if wrk ran,
# every response was 2xx/3xx, no socket failed and the proxy is still alive.
check_round() {
    local name=$1 f=$2 rc=$3 rps=$4 non2xx=$5 sockerr=$6 why=""
    [[ $rc != 0 ]] && why="wrk exited with status $rc"
    [[ -z $rps ]] && why="${why:+$why; }wrk printed no Requests/sec"
    [[ $non2xx != 0 ]] && why="${why:+$why; }$non2xx non-2xx/3xx responses"
    [[ $sockerr != 0 ]] && why="${why:+$why; }$(grep 'Socket errors' "$f" | sed 's/^ *//')"
    if [[ $name != origin ]] && ! is_alive "$PROXY_PID_OF_ROUND"; then
        wait "$PROXY_PID_OF_ROUND" 2>/dev/null
        why="${why:+$why; }$name exited (status $?) during the round"
        forget "$PROXY_PID_OF_ROUND"
    fi
    [[ -z $why ]] && return 0
    bad "$name, /size/$size: $why (wrk output: $f)"
    BROKEN[$name]=1
    NOTE[$name]="${NOTE[$name]:+${NOTE[$name]}; }throughput /size/$size: $why"
    return 1
}

throughput() {
    say ""
    say "== 1. throughput: wrk -t1 -c$CONNS -d${DURATION}s --latency, $ROUNDS rounds interleaved"
    if [[ $PIN == 1 ]]; then
        say "   pinned: the proxy on CPU 0, sluice-origin and wrk on CPU 1 (BENCH_PIN=0 to not pin)"
    else
        say "   not pinned: proxy, origin and wrk share the CPUs as the scheduler decides"
    fi
    local name size r
    declare -A PORT PID
    for name in "${PROXIES[@]}"; do
        start_proxy "$name" "$name.wrk" "${PIN0[@]}" || { BROKEN[$name]=1; continue; }
        PORT[$name]=$PROXY_PORT
        PID[$name]=$PROXY_PID
    done
    for size in "${SIZES[@]}"; do
        say "-- /size/$size"
        PROXY_PID_OF_ROUND=$ORIGIN_PID
        RPS=() P99=() CPU=()
        wrk_round origin "$ORIGIN_PORT" "$size" direct
        RES[rps.origin.$size]=${RPS[origin]:-}
        RES[rps.origin.$size]=${RES[rps.origin.$size]% }
        for r in warmup $(seq 1 "$ROUNDS"); do
            for name in "${PROXIES[@]}"; do
                [[ -n ${BROKEN[$name]:-} ]] && continue
                PROXY_PID_OF_ROUND=${PID[$name]}
                wrk_round "$name" "${PORT[$name]}" "$size" "$r"
            done
        done
        for name in "${PROXIES[@]}"; do
            if [[ -n ${BROKEN[$name]:-} ]]; then
                RES[rps.$name.$size]=INVALID
                RES[p99.$name.$size]=INVALID
                RES[cpu.$name.$size]=INVALID
            else
                # shellcheck disable=SC2086 # the lists split on purpose
                RES[rps.$name.$size]=$(median ${RPS[$name]:-})
                # shellcheck disable=SC2086
                RES[rounds.$name.$size]=$(printf '%.0f ' ${RPS[$name]:-})
                # shellcheck disable=SC2086
                RES[p99.$name.$size]=$(median ${P99[$name]:-})
                # shellcheck disable=SC2086
                RES[cpu.$name.$size]=$(median ${CPU[$name]:-})
            fi
        done
    done
    for name in "${PROXIES[@]}"; do
        [[ -n ${PID[$name]:-} ]] || continue
        PROXY_PID=${PID[$name]}
        is_alive "$PROXY_PID" && stop_proxy "$name" 20
    done
}

# --- 2. instructions per request (callgrind) --------------------------------

# callgrind_run NAME SIZE N [norep]: one run under callgrind, N measured
# requests. Sets CG_IR to the total Ir; returns 1 on failure. "norep" raises
# glibc's threshold for `rep movsb` in memcpy (see NOREP below).
callgrind_run() {
    local name=$1 size=$2 n=$3 variant=${4:-}
    local tag=callgrind.$name.$size${variant:+.$variant}.$n
    local cg=$OUT/$tag.out
    local env=(env)
    [[ $variant == norep ]] && env+=("GLIBC_TUNABLES=$NOREP")
    CG_IR=""
    rm -f "$cg"
    start_proxy "$name" "$tag" "${env[@]}" valgrind --tool=callgrind --callgrind-out-file="$cg" || return 1
    if ! timeout 600 python3 "$CLIENT" "127.0.0.1:$PROXY_PORT" "/size/$size" "$WARMUP" "$size" ||
       ! timeout 600 python3 "$CLIENT" "127.0.0.1:$PROXY_PORT" "/size/$size" "$n" "$size"; then
        bad "$name under callgrind, /size/$size: the client failed (see $OUT/$tag.log)"
        stop "$PROXY_PID" KILL 5
        return 1
    fi
    stop_proxy "$name" 60 || return 1
    CG_IR=$(awk '/^summary:/ { print $2 }' "$cg" 2>/dev/null)
    [[ -n $CG_IR ]] || { bad "$name under callgrind: no summary in $cg"; return 1; }
}

# callgrind counts every iteration of a `rep movsb` as one instruction, and
# glibc's memcpy switches to `rep movsb` above a few KiB: one 16 KiB copy then
# counts ~16,400 instructions where the vector loop used below that threshold
# counts ~1,500. The 16 KiB runs are therefore also made with the threshold
# out of reach, for both proxies; docs/BENCHMARKS.md discusses the two.
NOREP=glibc.cpu.x86_rep_movsb_threshold=1073741824

instructions() {
    say ""
    say "== 2. instructions per request: callgrind, ($WARMUP warm-up + N) requests on one"
    say "   keep-alive connection, N1=$N1 and N2=$N2; Ir/request = (Ir2 - Ir1) / (N2 - N1)"
    local name size ir1 ir2 variant
    for size in "${SIZES[@]}"; do
        for variant in "" norep; do
            [[ $variant == norep && $size -lt 4096 ]] && continue
            for name in "${PROXIES[@]}"; do
                local m=ir${variant:+_$variant}
                ir1="" ir2=""
                callgrind_run "$name" "$size" "$N1" ${variant:+"$variant"} && ir1=$CG_IR &&
                    callgrind_run "$name" "$size" "$N2" ${variant:+"$variant"} && ir2=$CG_IR
                if [[ -z $ir1 || -z $ir2 ]]; then
                    FAILED=1
                    RES[$m.$name.$size]=INVALID
                    NOTE[$name]="${NOTE[$name]:+${NOTE[$name]}; }callgrind /size/$size did not complete"
                    continue
                fi
                RES[$m.$name.$size]=$(per_request "$ir1" "$ir2")
                printf '  %-6s %-6s %-6s Ir(N1)=%s Ir(N2)=%s -> %s instructions/request\n' \
                    "$name" "$size" "${variant:-}" "$ir1" "$ir2" "${RES[$m.$name.$size]}"
            done
        done
    done
}

# profile SIZE: sluice's hottest functions. callgrind_annotate of the N2 run,
# next to each function's own share per request from the N1/N2 difference.
profile() {
    local size=$1
    local f1=$OUT/callgrind.sluice.$size.$N1.out f2=$OUT/callgrind.sluice.$size.$N2.out
    [[ -s $f1 && -s $f2 ]] || return
    say ""
    say "-- sluice, /size/$size: top 15 functions (self cost), from"
    say "   callgrind_annotate $f2"
    say "   Ir/req = (Ir in the N2 run - Ir in the N1 run) / (N2 - N1)"
    callgrind_annotate --threshold=100 "$f1" >"$f1.annotate.txt" 2>/dev/null
    callgrind_annotate --threshold=100 "$f2" >"$f2.annotate.txt" 2>/dev/null
    # Lines read "1,234 (12.3%)  file:function [object]"; join both runs on
    # the function column, rank by the difference.
    printf '  %10s  %s\n' "Ir/req" "callgrind_annotate line of the N2 run"
    awk -v n1="$N1" -v n2="$N2" '
        function key(line,   k) { k = line; sub(/^ *[0-9,]+ +(\( *[0-9.]+%\) +)?/, "", k); return k }
        function num(line,   v) { v = line; sub(/^ */, "", v); sub(/ .*/, "", v); gsub(/,/, "", v); return v + 0 }
        FNR == 1 { file++; body = 0 }
        /file:function/ { body = 1; next }
        body && /^$/ { body = 0 }   # the function table ends; source annotation follows
        body && /^ *[0-9,]+ / {
            k = key($0)
            if (file == 1) a[k] = num($0)
            else { b[k] = num($0); line[k] = $0 }
        }
        END { for (k in b) printf "%.1f\t%s\n", (b[k] - a[k]) / (n2 - n1), line[k] }' \
        "$f1.annotate.txt" "$f2.annotate.txt" | sort -t$'\t' -k1,1rg | head -15 |
        awk -F'\t' '{ printf "  %10s  %s\n", $1, $2 }' | sed "s|$OUT/bin/|build/|g"
}

# --- 3. system calls per request (strace) ------------------------------------

# strace_window NAME SIZE N: attach strace -c -f to the running proxy, send N
# requests on a new connection, detach. Sets ST_FILE to the file holding the
# counts; returns 1 on failure.
strace_window() {
    local name=$1 size=$2 n=$3
    local f=$OUT/strace.$name.$size.$n.txt
    ST_FILE=""
    strace -f -c -o "$f" -p "$PROXY_PID" 2>"$f.err" &
    local spid=$! i threads
    PIDS+=("$spid")
    # -p with -f attaches every thread; wait until each is reported attached.
    threads=$(awk '/^Threads:/ { print $2 }' "/proc/$PROXY_PID/status")
    for ((i = 0; i < 100; i++)); do
        (($(grep -c attached "$f.err") >= threads)) && break
        sleep 0.1
    done
    sleep 0.2
    if ! timeout 300 python3 "$CLIENT" "127.0.0.1:$PROXY_PORT" "/size/$size" "$n" "$size"; then
        bad "$name under strace, /size/$size: the client failed"
        stop "$spid" KILL 5
        return 1
    fi
    stop "$spid" INT 10
    grep -q ' total$' "$f" || { bad "strace wrote no summary for $name (see $f.err)"; return 1; }
    ST_FILE=$f
}

syscall_total() {  # the calls column of strace -c's "total" line
    awk '$NF == "total" { print $4 }' "$1"
}

syscalls() {
    say ""
    say "== 3. system calls per request: strace -f -c attached after $WARMUP warm-up requests,"
    say "   N1=$N1 and N2=$N2 requests on one keep-alive connection; (S2 - S1) / (N2 - N1)"
    local name size f1 f2
    for size in "${SIZES[@]}"; do
        for name in "${PROXIES[@]}"; do
            f1="" f2=""
            if start_proxy "$name" "strace.$name.$size"; then
                if timeout 120 python3 "$CLIENT" "127.0.0.1:$PROXY_PORT" "/size/$size" "$WARMUP" "$size"; then
                    strace_window "$name" "$size" "$N1" && f1=$ST_FILE &&
                        strace_window "$name" "$size" "$N2" && f2=$ST_FILE
                else
                    bad "$name, /size/$size: warm-up before strace failed"
                fi
                stop_proxy "$name" 20
            fi
            if [[ -z $f1 || -z $f2 ]]; then
                FAILED=1
                RES[sys.$name.$size]=INVALID
                NOTE[$name]="${NOTE[$name]:+${NOTE[$name]}; }strace /size/$size did not complete"
                continue
            fi
            RES[sys.$name.$size]=$(per_request "$(syscall_total "$f1")" "$(syscall_total "$f2")")
            printf '  %-6s %-6s %s syscalls/request:' "$name" "$size" "${RES[sys.$name.$size]}"
            # Per system call, the same difference; calls are column 4 whether
            # or not the errors column is filled.
            awk -v n1="$N1" -v n2="$N2" '
                $1 ~ /^[0-9.]+$/ && $NF != "total" { if (FNR == NR) a[$NF] = $4; else b[$NF] = $4 }
                END { for (k in b) { v = (b[k] - a[k]) / (n2 - n1); if (v >= 0.05) printf "%.2f %s\n", v, k } }' \
                "$f1" "$f2" | sort -rg | awk '{ printf " %s %s", $2, $1 } END { print "" }'
        done
    done
}

# --- summary -----------------------------------------------------------------

row() {  # row LABEL METRIC SIZE TARGET_RATIO CMP ("ge": higher is better, "le": lower)
    local label=$1 m=$2 size=$3 target=$4 cmp=$5
    local s=${RES[$m.sluice.$size]:--} n=${RES[$m.nginx.$size]:--} r verdict tgt
    r=$(ratio "$s" "$n")
    case $cmp in
    ge) tgt=">= ${target}x"; verdict=$(awk -v r="$r" -v t="$target" 'BEGIN { print (r == "-") ? "-" : (r + 0 >= t ? "met" : "MISSED") }') ;;
    le) tgt="<= ${target}x"; verdict=$(awk -v r="$r" -v t="$target" 'BEGIN { print (r == "-") ? "-" : (r + 0 <= t ? "met" : "MISSED") }') ;;
    *)  tgt="(info)"; verdict="" ;;
    esac
    [[ $s == INVALID || $n == INVALID ]] && verdict="INVALID"
    printf '%-28s %12s %12s %7s  %-9s %s\n' "$label" "$s" "$n" "$r" "$tgt" "$verdict"
}

summary() {
    {
        local rev
        if rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
            git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || rev="$rev + uncommitted changes in src/"
        else
            rev="not a git checkout"
        fi
        say "sluice benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $rev, build/sluice of $BUILT"
        say "machine: $(nproc) CPUs, $(uname -r), load average $LOAD0 at start, $(cut -d' ' -f1-3 /proc/loadavg) at end; $(nginx -v 2>&1 | sed 's/.*: //'), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), $(valgrind --version)"
        say "wrk: -t1 -c$CONNS -d${DURATION}s, $ROUNDS interleaved rounds, median; pinning: $([[ $PIN == 1 ]] && echo 'proxy on CPU 0, origin+wrk on CPU 1' || echo none)"
        say "callgrind/strace: $WARMUP warm-up, then N1=$N1 / N2=$N2 requests on one keep-alive connection"
        say ""
        printf '%-28s %12s %12s %7s  %-9s %s\n' metric sluice nginx ratio target verdict
        local size label
        for size in "${SIZES[@]}"; do
            label=$([[ $size == 100 ]] && echo "100 B" || echo "16 KiB")
            row "req/s, $label" rps "$size" 1.0 ge
            row "p99 latency ms, $label" p99 "$size" "" info
            row "CPU us/req (wrk), $label" cpu "$size" "" info
            row "instructions/req, $label" ir "$size" 0.8 le
            [[ -n ${RES[ir_norep.sluice.$size]:-} ]] &&
                row "  same, no rep movsb" ir_norep "$size" 0.8 le
            row "syscalls/req, $label" sys "$size" 1.0 le
        done
        say ""
        for size in "${SIZES[@]}"; do
            say "req/s of each round, /size/$size: sluice ${RES[rounds.sluice.$size]:--}| nginx ${RES[rounds.nginx.$size]:--}"
        done
        for size in "${SIZES[@]}"; do
            say "origin alone (wrk straight at sluice-origin, one round), /size/$size: ${RES[rps.origin.$size]:--} req/s"
        done
        local name
        for name in "${PROXIES[@]}"; do
            [[ -n ${NOTE[$name]:-} ]] && say "PROBLEM with $name: ${NOTE[$name]}"
        done
        [[ $FAILED == 1 ]] && say "Some measurements failed; see the messages above and the logs in $OUT."
    } | tee "$OUT/summary.txt"
}

# --- main --------------------------------------------------------------------

# setup TMPNAME TOOL...: what every benchmark script does first: the tools are
# there, the binaries exist, CPUs are chosen, and OUT is a private temp dir
# holding copies of the binaries (SLUICE, ORIGIN) that are measured.
setup() {
    local name=$1 tool
    shift
    trap cleanup EXIT
    trap 'warn "interrupted"; exit 1' INT TERM
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "$tool is not installed (make deps-bench installs the bench tools)"
    done
    [[ -x $SLUICE_SRC && -x $ORIGIN_SRC ]] || die "build/sluice or build/sluice-origin missing: run make all"
    ((N2 > N1)) || die "BENCH_N2 ($N2) must be larger than BENCH_N1 ($N1)"
    if [[ $PIN == auto ]]; then
        PIN=0
        (($(nproc) >= 2)) && taskset -c 0,1 true 2>/dev/null && PIN=1
    fi
    if [[ $PIN == 1 ]]; then
        PIN0=(taskset -c 0)
        PIN1=(taskset -c 1)
    fi
    OUT=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX") || die "cannot make a temp dir"
    mkdir -p "$OUT/bin"
    SLUICE=$OUT/bin/sluice
    ORIGIN=$OUT/bin/sluice-origin
    cp "$SLUICE_SRC" "$SLUICE" || die "cannot copy $SLUICE_SRC"
    cp "$ORIGIN_SRC" "$ORIGIN" || die "cannot copy $ORIGIN_SRC"
    # The copied binary is not next to lua/ any more.
    export SLUICE_LUA_PATH=$ROOT/lua
    LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
}

# Sourced (to try a function by hand, or by plugins.sh): define everything,
# run nothing.
[[ ${BASH_SOURCE[0]} == "$0" ]] || return 0

setup sluice-bench wrk nginx valgrind callgrind_annotate strace python3 taskset timeout
BUILT=$(date -u -r "$SLUICE_SRC" '+%Y-%m-%d %H:%M UTC')
START=$SECONDS

start_origin
say "origin: sluice-origin on 127.0.0.1:$ORIGIN_PORT (pid $ORIGIN_PID); output in $OUT"

throughput
instructions
say ""
say "callgrind files: $OUT/callgrind.*.out"
for size in "${SIZES[@]}"; do profile "$size"; done
syscalls

is_alive "$ORIGIN_PID" || bad "sluice-origin died during the run (see $OUT/origin.log)"
say ""
say "== summary ($((SECONDS - START)) s)"
summary
exit "$FAILED"
