#!/usr/bin/env bash
# Compares GreenThreads (gt-bench) with its peers - Go, Boost.Fiber, Swift
# concurrency, raw Boost.Context, and (generator only) Python generators and
# greenlet - on the same workloads, and prints a markdown table of medians and
# ratios (ratio > 1: GreenThreads is faster). A peer without a benchmark shows "—".
#
# Usage: scripts/compare.sh [switch|spawn|fib|skew|pingpong|chan|select|mutex|generator|timers ...]
#                                                        (default: all of them)
# Env:   ROUNDS=3       rounds; each round runs every implementation once per
#                       benchmark, in turn, so machine drift hits all alike
#        REPEATS=3      timed repeats inside each run (the run reports their
#                       median); the table shows the median over rounds
#        WORKERS=1,2    worker counts (switch and generator always use 1)
#        GT_BENCH_ARGS  extra arguments for `gt-bench run`
#        GT_BENCH       use this gt-bench binary instead of building one
# Results are most meaningful on an otherwise idle machine.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
peers_dir="$root/scripts/peers"
benches=()
for a in "$@"; do
    case $a in
        switch | spawn | fib | skew | pingpong | chan | select | mutex | generator | timers) benches+=("$a") ;;
        -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
        *)
            echo "compare.sh: unknown benchmark '$a'" \
                "(switch, spawn, fib, skew, pingpong, chan, select, mutex, generator, timers)" >&2
            exit 2
            ;;
    esac
done
((${#benches[@]})) || benches=(switch spawn fib skew pingpong chan select mutex generator)
rounds=${ROUNDS:-3}
workers=${WORKERS:-1,2}
export REPEATS=${REPEATS:-3}

log() { echo "compare: $*" >&2; }

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
machine="nproc=$(nproc) cpu=\"$cpu\" kernel=$(uname -r) date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN { exit !(l >= 0.5) }'; then
    log "warning: load average is $load - other work will skew the numbers"
fi

# --- build -----------------------------------------------------------------------
"$peers_dir/build.sh"

swift=$(command -v swift || echo /opt/swift/usr/bin/swift)
ours=""
build_log=$(mktemp)
results=$(mktemp)
trap 'rm -f "$build_log" "$results"' EXIT
if [[ -n ${GT_BENCH:-} ]]; then
    ours=$GT_BENCH
else
    log "building gt-bench (release)"
    if (cd "$root" && "$swift" build -c release --product gt-bench) >"$build_log" 2>&1; then
        ours="$(cd "$root" && "$swift" build -c release --show-bin-path)/gt-bench"
    else
        log "gt-bench is not available yet - comparing the peers only. Build output ends with:"
        tail -n 5 "$build_log" >&2
    fi
fi

# --- run ---------------------------------------------------------------------------
# gt-bench prints JSON; turn it into the peers' RESULT lines (peer=greenthreads).
run_ours() {
    local out
    # shellcheck disable=SC2086  # GT_BENCH_ARGS is a list of words
    out=$("$ours" run "$1" --workers "$2" --repeats "$REPEATS" --json ${GT_BENCH_ARGS:-}) || return 1
    python3 -c '
import json, sys
text = sys.stdin.read()
try:
    doc, _ = json.JSONDecoder().raw_decode(text[text.index("{"):])
    rows = doc["results"]
except (ValueError, KeyError, TypeError):
    sys.exit("compare: gt-bench printed no JSON results; output began: %r" % text[:200])
for r in rows:
    print("RESULT peer=greenthreads benchmark=%s workers=%d value=%s unit=%s"
          % (r["benchmark"], r["workers"], r["value"], r["unit"]))
    if r["benchmark"] == "timers" and "peakRSSBytesPerItem" in r:  # as the peers print it
        print("RESULT peer=greenthreads benchmark=timers-rss workers=%d value=%s unit=B/sleeper at_once=%d"
              % (r["workers"], r["peakRSSBytesPerItem"], r["peakItems"]))
' <<<"$out"
}

# peer_has PEER BENCH: true if that peer implements the benchmark.
peer_has() {
    case $1 in
        go) [[ $2 != generator ]] ;;
        boostfiber) [[ $2 != select && $2 != generator ]] ;;   # Boost.Fiber has no select
        swiftconc) [[ " switch spawn fib skew timers " == *" $2 "* ]] ;;
        python) [[ $2 == generator ]] ;;   # reports peer=python-gen and peer=greenlet
        *) false ;;
    esac
}

for bench in "${benches[@]}"; do
    w=$workers
    [[ $bench == switch || $bench == generator ]] && w=1
    for ((round = 1; round <= rounds; round++)); do
        for impl in ours go boostfiber swiftconc python; do
            [[ $impl == ours ]] || peer_has "$impl" "$bench" || continue
            log "$bench round $round/$rounds: $impl"
            if [[ $impl == ours ]]; then
                [[ -n $ours ]] || continue
                if ! run_ours "$bench" "$w" >>"$results"; then
                    log "gt-bench failed on $bench; leaving GreenThreads out from here on"
                    ours=""
                fi
            else
                "$peers_dir/.build-peers/$impl-peer" "$bench" --workers "$w" >>"$results" \
                    || log "$impl failed on $bench"
            fi
        done
    done
done

# --- report --------------------------------------------------------------------------
echo "machine: $machine"
echo "rounds: $rounds, repeats per run: $REPEATS, load average at start: $load"
echo
python3 - "$results" "$workers" "${benches[@]}" <<'PY'
import statistics, sys
from collections import defaultdict

path, workers, benches = sys.argv[1], [int(w) for w in sys.argv[2].split(",")], sys.argv[3:]
# timers also reports memory: peak RSS per sleeper asleep at once, its own row.
benches = [x for b in benches for x in ([b, "timers-rss"] if b == "timers" else [b])]
values, units = defaultdict(list), {}
at_once = defaultdict(list)  # timers-rss: the most sleepers asleep at once, per run
for line in open(path):
    if not line.startswith("RESULT "):
        continue
    f = dict(kv.split("=", 1) for kv in line.split()[1:])
    key = (f["peer"], f["benchmark"], int(f["workers"]))
    values[key].append(float(f["value"]))
    units[key] = f["unit"]
    if "at_once" in f:
        at_once[key].append(int(f["at_once"]))

def med(peer, bench, w):
    v = values.get((peer, bench, w))
    return statistics.median(v) if v else None

def fmt(x):
    return "—" if x is None else f"{x:.1f}" if x < 100 else f"{x:.0f}"

def ratio(a, b):  # a / b
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}"

# (peer, column name, ratio column name). The first three always get a
# column; the Python ones only when they have results (i.e. for generator).
peers = [("go", "Go", "Go"), ("boostfiber", "Boost.Fiber", "Fiber"),
         ("swiftconc", "Swift conc", "Swift")]
peers += [p for p in [("python-gen", "Python gen", "PyGen"), ("greenlet", "greenlet", "greenlet")]
          if any(k[0] == p[0] and k[1] in benches for k in values)]
single = {"switch", "generator"}  # single-worker benchmarks
print("| benchmark | workers | GreenThreads | " + " | ".join(n for _, n, _ in peers)
      + " | " + " | ".join(f"ratio {r}/ours" for _, _, r in peers) + " |")
print("|---|---:|---:|" + "---:|" * (2 * len(peers)))
for b in benches:
    for w in ([1] if b in single else workers):
        unit = next((units[k] for k in units if k[1:] == (b, w)), "?")
        ours = med("greenthreads", b, w)
        ours_unit = units.get(("greenthreads", b, w))
        if ours_unit and ours_unit != unit:
            print(f"warning: {b}: gt-bench reports {ours_unit}, peers {unit}", file=sys.stderr)
        theirs = [med(p, b, w) for p, _, _ in peers]
        print(f"| {b} ({unit}) | {w} | {fmt(ours)} | " + " | ".join(fmt(t) for t in theirs)
              + " | " + " | ".join(ratio(t, ours) for t in theirs) + " |")

if "switch" in benches:
    raw, ours = med("boostcontext", "switch", 1), med("greenthreads", "switch", 1)
    print()
    print("| raw switch floor | GreenThreads | Boost.Context | ratio ours/boostcontext |")
    print("|---|---:|---:|---:|")
    print(f"| switch (ns/switch) | {fmt(ours)} | {fmt(raw)} | {ratio(ours, raw)} |")

if at_once:
    print()
    print("timers-rss = peak RSS / most sleepers asleep at once: "
          + "; ".join(f"{k[0]} workers={k[2]}: {'/'.join(str(n) for n in v)}" for k, v in sorted(at_once.items())))

print()
print("Values are medians (lower is better); ratio > 1 means GreenThreads is faster.")
print("Go: GOMAXPROCS = workers. Boost.Fiber: work_stealing on `workers` threads "
      "(switch: round_robin on one thread; no select). Swift conc: default executor, its pool "
      "pinned to `workers` CPUs with taskset (the only knob that works on Linux).")
if "generator" in benches:
    print("generator: Python gen = a plain generator resumed with send(); greenlet = one "
          "switch in and back out; both 10^6 resumes (gt-bench: 10^7).")
PY
