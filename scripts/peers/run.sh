#!/usr/bin/env bash
# Runs the peer implementations of the GreenThreads benchmarks and prints one
# line per (peer, benchmark, workers):
#   RESULT peer=<go|boostfiber|boostcontext|swiftconc|python-gen|greenlet> benchmark=<name>
#          workers=<n> value=<median> unit=<unit>
#
# Usage: scripts/peers/run.sh [switch|spawn|fib|skew|pipeline|pingpong|chan|select|select-default|select-timeout|select-pingpong|mutex|generator|timers|timer|ticker|parkmany ...]
#                             [--workers 1,2] [--peers go,boostfiber,swiftconc,python]
# Env:   REPEATS  timed repeats per measurement, median reported (default 3
#                 here to keep a full run to a few minutes; the peer
#                 binaries themselves default to 5). Each measurement also
#                 gets one untimed warm-up run.
# `switch` and `generator` are single-worker only; with the boostfiber peer
# `switch` also reports the raw Boost.Context switch as peer=boostcontext. The
# python peer reports `generator` as peer=python-gen and peer=greenlet. A peer
# is only given the benchmarks it implements (see peer_benches).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
benches=()
workers=1,2
peers=go,boostfiber,swiftconc,python
while (($#)); do
    case $1 in
        --workers) workers=${2:?--workers needs a list like 1,2}; shift 2 ;;
        --peers) peers=${2:?--peers needs a list like go,swiftconc}; shift 2 ;;
        switch | spawn | fib | skew | pipeline | pingpong | chan | select | select-default | select-timeout | select-pingpong | mutex | generator | timers | timer | ticker | parkmany)
            benches+=("$1"); shift ;;
        -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
((${#benches[@]})) || benches=(switch spawn fib skew pingpong chan select select-default select-timeout select-pingpong mutex generator)
export REPEATS=${REPEATS:-3}

# peer_benches PEER: the benchmarks that peer implements.
peer_benches() {
    case $1 in
        go) echo switch spawn fib skew pipeline pingpong chan select select-default select-timeout select-pingpong mutex timers timer ticker parkmany ;;
        boostfiber) echo switch spawn fib skew pipeline pingpong chan mutex timers parkmany ;;   # no select in Boost.Fiber
        swiftconc) echo switch spawn fib skew timers parkmany ;;
        python) echo generator ;;
    esac
}

"$here/build.sh"

status=0
for peer in ${peers//,/ }; do
    bin="$here/.build-peers/$peer-peer"
    [[ -x $bin ]] || { echo "run.sh: no peer '$peer' ($bin)" >&2; exit 2; }
    mine=()
    for b in "${benches[@]}"; do
        [[ " $(peer_benches "$peer") " == *" $b "* ]] && mine+=("$b")
    done
    ((${#mine[@]})) || continue
    "$bin" "${mine[@]}" --workers "$workers" || status=1
done
exit $status
