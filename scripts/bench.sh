#!/usr/bin/env bash
# The main job: builds gt-bench in release, runs every benchmark at 1 and N
# workers, then runs the peers (Go, Boost.Fiber, Swift concurrency; Go and
# SwiftNIO echo servers against the echo-server example) on the same
# workloads, alternating, and prints the ratio tables.
# Usage: scripts/bench.sh [--no-peers] [benchmark ...]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
peers=1
if [ "${1:-}" = "--no-peers" ]; then peers=0; shift; fi
if [ $peers = 1 ]; then scripts/setup.sh --peers; else scripts/setup.sh; fi
swift build -c release --product gt-bench
# compare.sh's echo runs the example server beside gt-bench.
[ $peers = 0 ] || swift build -c release --product echo-server
echo "== gt-bench list"
.build/release/gt-bench list
echo "== gt-bench run ${*:-all}"
.build/release/gt-bench run "${@:-all}"
if [ $peers = 1 ]; then
    # The peers run the benchmarks asked for (echo1000 is part of compare's
    # echo), or all of them.
    compare=()
    for b in "$@"; do
        [ "$b" = echo1000 ] && b=echo
        case " switch spawn fib skew pingpong chan select select-default select-timeout select-pingpong mutex generator timers parkmany echo " in
            *" $b "*) [[ " ${compare[*]:-} " == *" $b "* ]] || compare+=("$b") ;;
        esac
    done
    if [ $# -gt 0 ] && [ "$*" != all ] && [ ${#compare[@]} -eq 0 ]; then
        echo "== no peer runs: $*"
    else
        echo "== peers, in one alternating run"
        GT_BENCH="$PWD/.build/release/gt-bench" scripts/compare.sh ${compare[@]+"${compare[@]}"}
    fi
fi
