#!/usr/bin/env bash
# spec/run.sh: runs every spec twice, against the release build and against
# the ASan+UBSan build, and ends with exactly one line "N passed, N failed".
#
#   SLUICE_SKIP_ASAN=1   skip the second pass
#
# Exit status 1 when anything failed or a busted run went wrong outside the
# specs (crashed, could not start, no results): such a pass also counts as
# one failure in the final line. `make test` builds both binaries first.
set -u
cd "$(dirname "$0")/.." || exit 1

results_dir=spec/.results
mkdir -p "$results_dir"

total_passed=0
total_failed=0
broken=0

# run_pass LABEL BIN [VAR=VALUE ...]
run_pass() {
    local label=$1 bin=$2
    shift 2
    local results="$results_dir/$label.txt"
    : >"$results"
    echo "=== pass: $label (SLUICE_BIN=$bin)"
    env "$@" SLUICE_BIN="$bin" SLUICE_RESULTS="$results" \
        busted --lua=luajit -o spec/support/summary.lua spec
    local rc=$?
    local passed failed line_seen=0 pass_broken=0
    # busted may be run with --repeat; sum every line.
    while read -r passed failed; do
        [[ $passed =~ ^[0-9]+$ && $failed =~ ^[0-9]+$ ]] || continue
        line_seen=1
        total_passed=$((total_passed + passed))
        total_failed=$((total_failed + failed))
    done <"$results"
    if [ "$line_seen" = 0 ]; then
        echo "=== pass: $label: busted exited with $rc and reported no results"
        pass_broken=1
    elif [ "$rc" -ne 0 ] && [ "$(awk '{f += $2} END {print f + 0}' "$results")" = 0 ]; then
        # busted's own exit status counts failures too; nonzero with none
        # reported means something went wrong outside the specs.
        echo "=== pass: $label: busted exited with $rc although no spec failed"
        pass_broken=1
    fi
    if [ "$pass_broken" = 1 ]; then
        broken=1
        total_failed=$((total_failed + 1))
    fi
}

run_pass release build/sluice

if [ "${SLUICE_SKIP_ASAN:-0}" = 1 ]; then
    echo "=== pass: asan skipped (SLUICE_SKIP_ASAN=1)"
else
    run_pass asan build/asan/sluice \
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
        UBSAN_OPTIONS=print_stacktrace=1
fi

echo "$total_passed passed, $total_failed failed"
if [ "$total_failed" -ne 0 ] || [ "$broken" -ne 0 ]; then
    exit 1
fi
exit 0
