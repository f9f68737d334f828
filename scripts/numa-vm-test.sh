#!/usr/bin/env bash
# Runs the NUMA test suites on real multi-node kernels: a 2-node and a
# 4-node guest (scripts/numa-vm/run.sh), each running the test bundle built
# here, unchanged. On a one-node machine those suites assert only what
# holds there and skip the rest; in the guests everything runs.
#
#   scripts/numa-vm-test.sh [--nodes "2 4"]
#
# Prints SKIP with the reason and exits 0 where no guest can run (not root,
# not x86_64 Linux, QEMU or a guest kernel missing and not installable).
# Exits nonzero when a guest test fails or a guest breaks.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"

NODE_COUNTS="2 4"
[ "${1:-}" = "--nodes" ] && NODE_COUNTS=$2
SUITES='NUMAGuestTests|NUMAMemoryGuestTests'

echo "== NUMA guests: building the test bundle (debug)"
swift build --build-tests >/dev/null
BUNDLE="$(swift build --show-bin-path)/GreenThreadsPackageTests.xctest"
[ -x "$BUNDLE" ] || { echo "numa-vm-test: no test bundle at $BUNDLE" >&2; exit 1; }

status=0
for nodes in $NODE_COUNTS; do
    echo "== NUMA guest, $nodes nodes: $SUITES"
    log=$(mktemp)
    start=$(date +%s)
    rc=0
    scripts/numa-vm/run.sh --nodes "$nodes" --timeout 600 -- \
        "$BUNDLE" --testing-library swift-testing --filter "$SUITES" 2>&1 | tee "$log" || rc=${PIPESTATUS[0]}
    if [ "$rc" = 126 ]; then
        echo "SKIP: NUMA guest tests: $(grep -m1 'cannot run a guest here' "$log" | sed 's/.*cannot run a guest here: //')"
        rm -f "$log"
        exit 0
    fi
    # A filter that matched nothing would pass silently: the run must
    # have tested something.
    if [ "$rc" = 0 ] && ! grep -qE 'Test run with [1-9][0-9]* tests? .*passed' "$log"; then
        echo "numa-vm-test: no test ran in the $nodes-node guest" >&2
        rc=1
    fi
    echo "== NUMA guest, $nodes nodes: exit $rc after $(( $(date +%s) - start ))s"
    [ "$rc" = 0 ] || status=1
    rm -f "$log"
done
exit "$status"
