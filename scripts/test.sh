#!/usr/bin/env bash
# The test command: installs what is missing, then runs every test suite in
# a debug build and again in a release build (optimizations change how code
# behaves across green-thread switches, so both matter), then a 60-second
# soak (`gt-bench stress`) and the core suites under ThreadSanitizer (any
# report fails the run).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
scripts/setup.sh
echo "== context switch in C, x86_64 natively and aarch64 under qemu-user"
scripts/check-switch.sh --install

# Runs one `swift test`, its output also kept in a log. If it fails, ends
# with a digest: a crash report's first lines and the tests that started
# but never finished. A CI page often shows only the tail of the output,
# where a crash leaves nothing but the list of loaded images.
run_tests() {
    local log
    log=$(mktemp)
    local status=0
    swift test "$@" 2>&1 | tee "$log" || status=$?
    if [ "$status" -ne 0 ]; then
        echo "== failure digest (swift test $*)"
        grep -n -m 3 -A 40 -E "Crash|crashed|Fatal error|Precondition failed|Assertion failed" "$log" \
            | grep -v -E "^[0-9]+-0x[0-9a-f]+.*\.so" | head -120 || true
        echo "-- tests started and never finished:"
        sed -n -E '/^◇ Test (case |run started)/d; s/^◇ Test (.*) started\.$/\1/p' "$log" | sort > "$log.started" || true
        sed -n -E 's/ with [0-9]+ test cases (passed|failed) after/ \1 after/; s/^[✔✘] Test (.*) (passed|failed) after .*/\1/p' "$log" | sort -u > "$log.ended" || true
        comm -23 "$log.started" "$log.ended" | head -40 || true
        rm -f "$log.started" "$log.ended"
    fi
    rm -f "$log"
    return "$status"
}

echo "== swift test (debug)"
run_tests
echo "== swift test (release)"
run_tests -c release -Xswiftc -enable-testing --scratch-path .build-release-tests
echo "== soak: gt-bench stress for 60 s (release; every primitive at once, invariants checked)"
# The release test build above already compiled gt-bench with these flags,
# so this only links what is missing. The soak prints its seed first and
# ends with one line, `stress: OK ...` or `stress: FAILED seed=S: ...`
# (exit 1); `gt-bench stress --seed S` replays the failing mix.
swift build -c release -Xswiftc -enable-testing --scratch-path .build-release-tests --product gt-bench
.build-release-tests/release/gt-bench stress --duration 60
echo "== ThreadSanitizer: the scheduler, channel and select suites (scripts/sanitize.sh thread for all)"
scripts/sanitize.sh thread --filter "SchedulerTests|ChannelTests|SelectTests|TaskLocalTests"
echo "== NUMA: the NUMA suites in a 2-node and a 4-node guest kernel"
scripts/numa-vm-test.sh
