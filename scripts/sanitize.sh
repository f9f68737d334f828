#!/usr/bin/env bash
# Runs the test suites under ThreadSanitizer and/or AddressSanitizer, each in
# its own build directory (.build-tsan, .build-asan), and fails on any report.
#
# Usage: scripts/sanitize.sh [thread|address|all] [--filter REGEX]...
#   thread | address | all   which sanitizer(s); default: all
#   --filter REGEX           run only the matching tests (as `swift test
#                            --filter`; repeatable). Without it every suite
#                            runs except those skipped below.
#
# The C layer annotates every stack switch for both sanitizers
# (Sources/CContext/sanitizer_fibers.h): a report is a real finding, in the
# library or in a test. The last line is "sanitize: PASS ..." or
# "sanitize: FAIL ..." (exit 1): a report, a crash or a failing test.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
export PATH="$PATH:/opt/swift/usr/bin"

which=all
filters=()
while [ $# -gt 0 ]; do
    case "$1" in
        thread|address|all) which=$1 ;;
        --filter) shift; filters+=(--filter "${1:?--filter needs a regex}") ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "sanitize: unknown argument $1 (see $0 --help)" >&2; exit 2 ;;
    esac
    shift
done

# Tests that cannot run under a sanitizer, by the test function name `swift
# test --skip` matches (one reason each). Applied only when no --filter is
# given; everything else runs.
skip_common=(
    # 10^6 green threads at once: each fiber gets a sanitizer shadow call
    # stack (TSan) or fake stack (ASan) reservation, beyond the address
    # space and the time budget.
    "millionSleepersAllWake"
    # Assert RSS stays flat or drops: shadow memory grows with every page
    # touched and never goes back.
    "millionResumesDoNotGrowMemory"
    "hundredThousandGeneratorsDoNotLeak"
    "residentMemoryDrops"
    # Assert how few bytes or pages a parked stack uses: instrumented frames
    # carry redzones and spill more.
    "plainSleeperSavesLittle"
    "sleeperTouchesOnePage"
    # Counts the process's kernel mappings: the sanitizer runtime maps its
    # own per fiber.
    "liveThreadsShareMappings"
    # Fault handling: the sanitizer runtime installs its own SIGSEGV/SIGBUS
    # handler and reports the fault itself, so neither the overflow line nor
    # the plain crash by signal these child processes expect can appear.
    "StackOverflowTests"
    # Lowers RLIMIT_AS: the sanitizer's shadow memory reservation alone
    # exceeds any limit that stacks could exhaust.
    "addressSpaceExhaustion"
    # Wall-clock budgets sized for uninstrumented code: shutdown's grace
    # period for unwinding 500 compacted sleepers, and an echo client's read
    # deadline; instrumented code runs 30-120 times slower.
    "shutdownWithCompactedSleepers"
    "manyClientsEchoAndTheServerStopsCleanly"
)
skip_thread=("${skip_common[@]}")
skip_address=("${skip_common[@]}")

# Reports name source lines through llvm-symbolizer (scripts/setup.sh).
symbolizer=$(command -v llvm-symbolizer || echo /opt/swift/usr/bin/llvm-symbolizer)

total_reports=0
failed=()

run_one() {
    local san=$1 scratch options pattern
    local -n skips="skip_$san"
    case "$san" in
        thread)
            scratch=.build-tsan
            pattern="WARNING: ThreadSanitizer|ERROR: ThreadSanitizer|ThreadSanitizer: (SEGV|BUS|ABRT|FPE|ILL)"
            # halt_on_error=0: every report of the run, not just the first;
            # exitcode: a report fails the test process even if every test
            # passed.
            export TSAN_OPTIONS="halt_on_error=0 exitcode=66 second_deadlock_stack=1 history_size=4 external_symbolizer_path=$symbolizer ${TSAN_OPTIONS_EXTRA:-}"
            ;;
        address)
            scratch=.build-asan
            pattern="ERROR: AddressSanitizer|ERROR: LeakSanitizer|AddressSanitizer: (SEGV|BUS|ABRT|FPE|ILL)"
            # detect_leaks=0: a runtime shut down with green threads still
            # parked leaks what their frames retain, by design (RuntimeCore+
            # Ending.swift); leaks are counted by the suites' own checks.
            # halt_on_error needs -fsanitize-recover, which swift does not
            # pass: ASan stops at its first report, which still fails here.
            export ASAN_OPTIONS="detect_leaks=0 exitcode=66 detect_stack_use_after_return=0 external_symbolizer_path=$symbolizer ${ASAN_OPTIONS_EXTRA:-}"
            ;;
    esac
    echo "== $san sanitizer: build ($scratch)"
    if ! swift build --build-tests --sanitize="$san" --scratch-path "$scratch" 2>&1 | tail -n 30; then
        failed+=("$san: build failed")
        return
    fi
    local args=(--skip-build --sanitize="$san" --scratch-path "$scratch")
    if [ ${#filters[@]} -gt 0 ]; then
        args+=("${filters[@]}")
    else
        local s
        for s in "${skips[@]}"; do args+=(--skip "$s"); done
    fi
    local log
    log=$(mktemp)
    echo "== $san sanitizer: swift test ${args[*]}"
    swift test "${args[@]}" >"$log" 2>&1
    local status=$?
    local reports
    reports=$(grep -c -E "$pattern" "$log")
    total_reports=$((total_reports + reports))
    # Each report in full (they are long: the first lines and the frames
    # inside this package are what matter), then the test summary.
    if [ "$reports" -gt 0 ]; then
        grep -n -E -A 40 "$pattern" "$log" | head -400
    fi
    grep -E "^(✔|✘) Test run|Test run with|tests? (passed|failed)|Fatal error|crashed" "$log" | tail -n 5
    if [ "$status" -ne 0 ] || [ "$reports" -gt 0 ]; then
        failed+=("$san: $reports report(s), swift test exit $status (log: $log)")
    else
        rm -f "$log"
        echo "== $san sanitizer: clean"
    fi
}

case "$which" in
    thread) run_one thread ;;
    address) run_one address ;;
    all) run_one thread; run_one address ;;
esac

if [ ${#failed[@]} -eq 0 ]; then
    echo "sanitize: PASS ($which): 0 reports"
    exit 0
fi
for f in "${failed[@]}"; do echo "   $f"; done
echo "sanitize: FAIL ($which): $total_reports report(s)"
exit 1
