#!/usr/bin/env bash
# The main job: builds gt-bench in release, runs every benchmark at 1 and N
# workers, then runs the peers (Go, Boost.Fiber, Swift concurrency) on the
# same workloads, alternating, and prints the ratio table.
# Usage: scripts/bench.sh [--no-peers] [benchmark ...]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
peers=1
if [ "${1:-}" = "--no-peers" ]; then peers=0; shift; fi
if [ $peers = 1 ]; then scripts/setup.sh --peers; else scripts/setup.sh; fi
swift build -c release --product gt-bench
echo "== gt-bench list"
.build/release/gt-bench list
echo "== gt-bench run ${*:-all}"
.build/release/gt-bench run "${@:-all}"
if [ $peers = 1 ]; then
    echo "== peers, in one alternating run"
    GT_BENCH="$PWD/.build/release/gt-bench" scripts/compare.sh
fi
