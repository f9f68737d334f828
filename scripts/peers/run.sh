#!/usr/bin/env bash
# Runs the peer implementations of the GreenThreads benchmarks and prints one
# line per (peer, benchmark, workers):
#   RESULT peer=<go|boostfiber|boostcontext|swiftconc> benchmark=<name> workers=<n> value=<median> unit=<unit>
#
# Usage: scripts/peers/run.sh [switch|spawn|fib|skew ...] [--workers 1,2]
#                             [--peers go,boostfiber,swiftconc]
# Env:   REPEATS  timed repeats per measurement, median reported (default 3
#                 here so a full run stays around three minutes; the peer
#                 binaries themselves default to 5). Each measurement also
#                 gets one untimed warm-up run.
# `switch` is single-worker only; with the boostfiber peer it also reports the
# raw Boost.Context switch as peer=boostcontext.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
benches=()
workers=1,2
peers=go,boostfiber,swiftconc
while (($#)); do
    case $1 in
        --workers) workers=${2:?--workers needs a list like 1,2}; shift 2 ;;
        --peers) peers=${2:?--peers needs a list like go,swiftconc}; shift 2 ;;
        switch | spawn | fib | skew) benches+=("$1"); shift ;;
        -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
((${#benches[@]})) || benches=(switch spawn fib skew)
export REPEATS=${REPEATS:-3}

"$here/build.sh"

status=0
for peer in ${peers//,/ }; do
    bin="$here/.build-peers/$peer-peer"
    [[ -x $bin ]] || { echo "run.sh: no peer '$peer' ($bin)" >&2; exit 2; }
    "$bin" "${benches[@]}" --workers "$workers" || status=1
done
exit $status
