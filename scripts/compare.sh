#!/usr/bin/env bash
# Compares GreenThreads (gt-bench) with its peers - Go, Boost.Fiber, Swift
# concurrency, raw Boost.Context, and (generator only) Python generators and
# greenlet - on the same workloads, and prints a markdown table of medians and
# ratios (ratio > 1: GreenThreads is faster). A peer without a benchmark shows "—".
# `echo` runs the echo-server example, a Go `net` echo server and a SwiftNIO
# echo server as separate processes, each driven by the same neutral load
# generator (`gt-bench loadgen`: 64-byte messages, 100 and 1,000 connections),
# and prints requests/s and p99 latency.
# `http` runs the http-hello example, a Go net/http hello server and a
# Hummingbird hello server the same way, driven by wrk (keep-alive, GET /,
# 100 and 1,000 connections), and prints requests/s with p50 and p99 latency.
#
# `scale` is its own mode: see the block at "scale mode" below.
#
# Usage: scripts/compare.sh [switch|spawn|fib|skew|pipeline|pingpong|deadline|chan|select|select-default|select-timeout|select-pingpong|mutex|generator|timers|timer|ticker|parkmany|echo|http ...]
#                                                        (default: all of them)
#        scripts/compare.sh scale [fib skew pipeline spawn]
#                       speedup over worker counts: gt-bench scale, Go (GOMAXPROCS=N)
#                       and Boost.Fiber (work_stealing on N threads), drawn on one
#                       chart (SCALE_PNG, default docs/scale.png) with a table of
#                       times, speedups and ratios; WORKERS defaults to 1,2,4,8 here
# Env:   ROUNDS=3       rounds; each round runs every implementation once per
#                       benchmark, in turn, so machine drift hits all alike
#        REPEATS=3      timed repeats inside each run (the run reports their
#                       median); the table shows the median over rounds
#        WORKERS=1,2    worker counts (switch and generator always use 1)
#        GT_BENCH_ARGS  extra arguments for `gt-bench run`
#        GT_BENCH       use this gt-bench binary instead of building one
#                       (echo also needs echo-server beside it, or builds it;
#                       http needs http-hello beside it, or builds it)
#        ECHO_SECONDS=5 seconds of load per echo run
#        ECHO_CONNECTIONS="100 1000"  connection counts for echo
#        HTTP_SECONDS=5 seconds of load per http run (after a 1 s warm-up)
#        HTTP_CONNECTIONS="100 1000"  connection counts for http
#        RESULTS_FILE   also keep every run's raw RESULT lines in this file
#        PEER_TIMEOUT=300  seconds a peer's run may take before it is stopped
#                       and left out ("—"); Boost.Fiber's timers run (10^6
#                       sleeping fibers) takes longer than that here
#        SCALE_PNG      scale: the chart to write (default docs/scale.png)
# Results are most meaningful on an otherwise idle machine.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
peers_dir="$root/scripts/peers"

# --- scale mode ------------------------------------------------------------------
# Each round runs every workload on every runtime in turn (gt-bench scale over
# all worker counts in one process; Go one process per count with GOMAXPROCS=N;
# Boost.Fiber one forked child per count, as its work_stealing table is sized
# once per process), so machine drift hits all three alike. Each run reports
# the median of its REPEATS; the chart and table take the best run over the
# ROUNDS, since other load only ever adds time. A peer that cannot be built
# even after scripts/setup.sh --peers prints SKIP and is left out; the run
# fails if gt-bench itself cannot run or prints no parseable JSON.
if [[ ${1:-} == scale ]]; then
    shift
    benches=()
    for a in "$@"; do
        case $a in
            fib | skew | pipeline | spawn | pingpong | chan | mutex) benches+=("$a") ;;
            -h | --help) sed -n '2,41p' "$0"; exit 0 ;;
            *) echo "compare.sh scale: unknown workload '$a' (fib, skew, pipeline, spawn, pingpong, chan, mutex)" >&2; exit 2 ;;
        esac
    done
    ((${#benches[@]})) || benches=(fib skew pipeline spawn)
    rounds=${ROUNDS:-3}
    workers=${WORKERS:-1,2,4,8}
    [[ ,$workers, == *,1,* ]] || workers=1,$workers
    export REPEATS=${REPEATS:-3}
    png=${SCALE_PNG:-$root/docs/scale.png}
    log() { echo "compare scale: $*" >&2; }
    load=$(cut -d' ' -f1 /proc/loadavg)

    results=$(mktemp)
    build_log=$(mktemp)
    trap 'rm -f "$results" "$build_log"' EXIT

    swift=$(command -v swift || echo /opt/swift/usr/bin/swift)
    if [[ -n ${GT_BENCH:-} ]]; then
        ours=$GT_BENCH
    else
        log "building gt-bench (release)"
        (cd "$root" && "$swift" build -c release --product gt-bench) >"$build_log" 2>&1 || {
            tail -n 20 "$build_log" >&2
            echo "compare scale: FAILED: gt-bench does not build" >&2
            exit 1
        }
        ours="$(cd "$root" && "$swift" build -c release --show-bin-path)/gt-bench"
    fi

    # The peers: built here; when one is missing, install the toolchains with
    # setup.sh --peers and try once more; still missing: SKIP.
    "$peers_dir/build.sh" go boostfiber >&2 || true
    if [[ ! -x $peers_dir/.build-peers/go-peer || ! -x $peers_dir/.build-peers/boostfiber-peer ]]; then
        log "a peer is missing: installing the peer toolchains (scripts/setup.sh --peers)"
        "$root/scripts/setup.sh" --peers >&2 || log "setup.sh --peers failed"
        "$peers_dir/build.sh" go boostfiber >&2 || true
    fi
    peers=()
    for p in go boostfiber; do
        if [[ -x $peers_dir/.build-peers/$p-peer ]]; then
            peers+=("$p")
        else
            echo "SKIP $p: $p-peer could not be built (see the messages above)"
        fi
    done

    # gt-bench scale's JSON, checked and turned into the peers' RESULT lines
    # (value = the median of the run's repeats, as the peers report).
    # run_ours_scale BENCH [--no-ceiling]: `ceiling` (plain OS threads, the
    # machine's own speedup) is timed with the first workload of each round.
    run_ours_scale() {
        local out
        out=$("$ours" scale "$@" --workers "$workers" --repeats "$REPEATS" --statistic median --json) || {
            echo "compare scale: FAILED: gt-bench scale $1 exited with an error" >&2
            return 1
        }
        python3 -c '
import json, sys
text = sys.stdin.read()
try:
    doc = json.loads(text)
    rows = doc["results"]
    assert doc["statistic"] == "median" and rows
    for r in rows:
        float(r["speedup"]), float(r["efficiency"]), float(r["value"])
except (ValueError, KeyError, TypeError, AssertionError) as e:
    sys.exit("compare scale: FAILED: gt-bench scale printed no parseable JSON (%r); output began: %r" % (e, text[:300]))
for r in rows:
    print("RESULT peer=greenthreads benchmark=%s workers=%d value=%s unit=%s"
          % (r["benchmark"], r["workers"], r["value"], r["unit"]))
' <<<"$out"
    }

    for ((round = 1; round <= rounds; round++)); do
        for bench in "${benches[@]}"; do
            log "$bench round $round/$rounds: greenthreads"
            if [[ $bench == "${benches[0]}" ]]; then
                run_ours_scale "$bench" >>"$results" || exit 1
            else
                run_ours_scale "$bench" --no-ceiling >>"$results" || exit 1
            fi
            for p in "${peers[@]}"; do
                log "$bench round $round/$rounds: $p"
                if [[ $p == go ]]; then
                    for w in ${workers//,/ }; do
                        GOMAXPROCS=$w "$peers_dir/.build-peers/go-peer" "$bench" --workers "$w" >>"$results" \
                            || log "go failed on $bench at $w workers"
                    done
                else
                    "$peers_dir/.build-peers/$p-peer" "$bench" --workers "$workers" >>"$results" \
                        || log "$p failed on $bench"
                fi
            done
        done
    done

    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
    echo "machine: nproc=$(nproc) cpu=\"$cpu\" kernel=$(uname -r) date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "rounds: $rounds, repeats per run: $REPEATS (each run's median; the table takes the best run)," \
        "load average at start: $load"
    echo
    [[ -n ${RESULTS_FILE:-} ]] && cp "$results" "$RESULTS_FILE"
    "$root/scripts/plot-scale" --table --summary --stat min --cpus "$(nproc)" --out "$png" \
        --title "Speedup over 1 worker, higher is better: $(nproc) CPUs ($cpu), $(date -u +%Y-%m-%d), load average $load at the start" \
        "$results"
    exit 0
fi
benches=()
for a in "$@"; do
    case $a in
        switch | spawn | fib | skew | pipeline | pingpong | deadline | chan | select | select-default | select-timeout | select-pingpong | mutex | generator | timers | timer | ticker | parkmany | echo | http) benches+=("$a") ;;
        -h | --help) sed -n '2,41p' "$0"; exit 0 ;;
        *)
            echo "compare.sh: unknown benchmark '$a'" \
                "(switch, spawn, fib, skew, pipeline, pingpong, deadline, chan, select, select-default, select-timeout, select-pingpong, mutex, generator, timers, timer, ticker, parkmany, echo, http)" >&2
            exit 2
            ;;
    esac
done
((${#benches[@]})) || benches=(switch spawn fib skew pingpong deadline chan select select-default select-timeout select-pingpong mutex generator timers timer ticker parkmany echo http)
rounds=${ROUNDS:-3}
workers=${WORKERS:-1,2}
echo_seconds=${ECHO_SECONDS:-5}
peer_timeout=${PEER_TIMEOUT:-300}
echo_connections=${ECHO_CONNECTIONS:-100 1000}
http_seconds=${HTTP_SECONDS:-5}
http_connections=${HTTP_CONNECTIONS:-100 1000}
export REPEATS=${REPEATS:-3}

log() { echo "compare: $*" >&2; }

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
machine="nproc=$(nproc) cpu=\"$cpu\" kernel=$(uname -r) date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN { exit !(l >= 0.5) }'; then
    log "warning: load average is $load - other work will skew the numbers"
fi

# --- build -----------------------------------------------------------------------
# Hummingbird (a long first build) only when http is asked for.
peer_builds=(go boostfiber swiftconc nio-echo python)
[[ " ${benches[*]} " == *" http "* ]] && peer_builds+=(hummingbird)
"$peers_dir/build.sh" "${peer_builds[@]}" || log "some peers did not build (see above): they are left out"
if [[ " ${benches[*]} " == *" http "* ]] && ! command -v wrk >/dev/null; then
    log "wrk is missing: installing the peer tools (scripts/setup.sh --peers)"
    "$root/scripts/setup.sh" --peers >&2 || log "setup.sh --peers failed"
fi

swift=$(command -v swift || echo /opt/swift/usr/bin/swift)
ours=""
build_log=$(mktemp)
results=$(mktemp)
trap 'rm -f "$build_log" "$results"' EXIT
if [[ -n ${GT_BENCH:-} ]]; then
    ours=$GT_BENCH
elif [[ " ${benches[*]} " == " http " ]]; then
    :  # http alone needs only the http-hello example (below)
else
    log "building gt-bench (release)"
    if (cd "$root" && "$swift" build -c release --product gt-bench) >"$build_log" 2>&1; then
        ours="$(cd "$root" && "$swift" build -c release --show-bin-path)/gt-bench"
    else
        log "gt-bench is not available yet - comparing the peers only. Build output ends with:"
        tail -n 5 "$build_log" >&2
    fi
fi

# The echo-server example, for `echo`: beside gt-bench, or built here.
echo_server=""
if [[ " ${benches[*]} " == *" echo "* && -n $ours ]]; then
    if [[ -x $(dirname "$ours")/echo-server ]]; then
        echo_server="$(dirname "$ours")/echo-server"
    elif (cd "$root" && "$swift" build -c release --product echo-server) >"$build_log" 2>&1; then
        echo_server="$(cd "$root" && "$swift" build -c release --show-bin-path)/echo-server"
    else
        log "the echo-server example does not build - echo runs without GreenThreads. Build output ends with:"
        tail -n 5 "$build_log" >&2
    fi
fi

# The http-hello example, for `http`: beside gt-bench, or built here.
http_hello=""
if [[ " ${benches[*]} " == *" http "* ]]; then
    if [[ -n $ours && -x $(dirname "$ours")/http-hello ]]; then
        http_hello="$(dirname "$ours")/http-hello"
    else
        log "building http-hello (release)"
        if (cd "$root" && "$swift" build -c release --product http-hello) >"$build_log" 2>&1; then
            http_hello="$(cd "$root" && "$swift" build -c release --show-bin-path)/http-hello"
        else
            log "the http-hello example does not build - http runs without GreenThreads. Build output ends with:"
            tail -n 5 "$build_log" >&2
        fi
    fi
fi

# --- run ---------------------------------------------------------------------------
# gt-bench prints JSON; turn it into the peers' RESULT lines (peer=greenthreads).
# run_ours BENCH WORKERS [cold]: with "cold", one run with no warm-up,
# reported as BENCH-cold (call it once per process and worker count).
run_ours() {
    local out
    # shellcheck disable=SC2086  # GT_BENCH_ARGS is a list of words
    if [[ ${3:-} == cold ]]; then
        out=$("$ours" run "$1" --workers "$2" --repeats 1 --cold --json ${GT_BENCH_ARGS:-}) || return 1
    else
        out=$("$ours" run "$1" --workers "$2" --repeats "$REPEATS" --json ${GT_BENCH_ARGS:-}) || return 1
    fi
    python3 -c '
import json, sys
text = sys.stdin.read()
try:
    doc, _ = json.JSONDecoder().raw_decode(text[text.index("{"):])
    rows = doc["results"]
except (ValueError, KeyError, TypeError):
    sys.exit("compare: gt-bench printed no JSON results; output began: %r" % text[:200])
cold = sys.argv[1] == "cold"
for r in rows:
    print("RESULT peer=greenthreads benchmark=%s workers=%d value=%s unit=%s"
          % (r["benchmark"] + ("-cold" if cold else ""), r["workers"], r["value"], r["unit"]))
    if not cold and r["benchmark"] in ("timers", "parkmany") and "peakRSSBytesPerItem" in r:  # as the peers print it
        print("RESULT peer=greenthreads benchmark=%s-rss workers=%d value=%s unit=%s at_once=%d"
              % (r["benchmark"], r["workers"], r["peakRSSBytesPerItem"],
                 "B/sleeper" if r["benchmark"] == "timers" else "B/thread", r["peakItems"]))
' "${3:-warm}" <<<"$out"
}

# peer_has PEER BENCH: true if that peer implements the benchmark.
peer_has() {
    case $1 in
        go) [[ $2 != generator ]] ;;
        boostfiber) [[ $2 != select* && $2 != generator && $2 != deadline && $2 != timer && $2 != ticker ]] ;;   # no select, no deadline scopes, no timer channels
        swiftconc) [[ " switch spawn fib skew timers parkmany " == *" $2 "* ]] ;;
        python) [[ $2 == generator ]] ;;   # reports peer=python-gen and peer=greenlet
        *) false ;;
    esac
}

# run_echo IMPL SERVER-COMMAND... : starts the server on a free port, drives it
# with `gt-bench loadgen` for each connection count in turn, and prints RESULT
# lines (value = ns per request, plus rps and p99_us). One server process per
# (impl, workers) per round, like one run of a benchmark binary.
run_echo() {
    local impl=$1 w=$2 out port="" pid i c json
    shift 2
    out=$(mktemp)
    "$@" >"$out" 2>&1 &
    pid=$!
    for ((i = 0; i < 300; i++)); do
        port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out")
        [[ -n $port ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $port ]]; then
        log "$impl echo server did not start: $(head -c 300 "$out")"
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        rm -f "$out"
        return 1
    fi
    for c in $echo_connections; do
        if json=$("$ours" loadgen --port "$port" --connections "$c" --size 64 \
            --duration "$echo_seconds" --server-workers "$w" --json); then
            python3 -c '
import json, sys
r = json.loads(sys.argv[1])
if not r["rps"]:
    sys.exit("compare: %s echo at %s connections completed no request in %s s" % (sys.argv[2], sys.argv[3], r["seconds"]))
print("RESULT peer=%s benchmark=echo%s workers=%s value=%.1f unit=ns/request rps=%.1f p99_us=%.1f"
      % (sys.argv[2], sys.argv[3], sys.argv[4], 1e9 / r["rps"], r["rps"], r["p99_us"]))
' "$json" "$impl" "$c" "$w" || log "server output: $(tail -c 600 "$out")"
        else
            log "$impl echo at $c connections failed; server output: $(tail -c 600 "$out")"
        fi
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -f "$out"
}

# run_http IMPL WORKERS SERVER-COMMAND... : starts the server on a free port,
# checks that GET / answers the greeting, then drives it with wrk for each
# connection count in turn (a 1 s warm-up first) and prints RESULT lines
# (value = ns per request, plus rps, p50_us and p99_us from wrk --latency).
# wrk gets the cores the server leaves free, or all of them when it leaves
# none (as gt-bench loadgen does for echo); it shares them with the server.
run_http() {
    local impl=$1 w=$2 out port="" pid i c report threads body
    shift 2
    out=$(mktemp)
    "$@" >"$out" 2>&1 &
    pid=$!
    for ((i = 0; i < 300; i++)); do
        port=$(sed -n 's#^listening on \(http://\)\{0,1\}127\.0\.0\.1:\([0-9]*\).*#\2#p' "$out")
        [[ -n $port ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $port ]]; then
        log "$impl http server did not start: $(head -c 300 "$out")"
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        rm -f "$out"
        return 1
    fi
    body=$(python3 -c '
import sys, urllib.request
with urllib.request.urlopen("http://127.0.0.1:%s/" % sys.argv[1], timeout=10) as r:
    sys.stdout.write(r.read().decode())' "$port" 2>&1) || true
    if [[ $body != "Hello, world!" ]]; then  # $(...) drops the final newline
        log "$impl: GET / answered '${body:0:200}', not the greeting - not measured"
    else
        threads=$(($(nproc) - w))
        ((threads > 0)) || threads=$(nproc)
        wrk -t "$threads" -c "${http_connections%% *}" -d 1 "http://127.0.0.1:$port/" >/dev/null 2>&1 || true
        for c in $http_connections; do
            ((threads <= c)) || threads=$c
            if report=$(wrk -t "$threads" -c "$c" -d "$http_seconds" --latency "http://127.0.0.1:$port/" 2>&1); then
                python3 -c '
import re, sys
text, impl, c, w = sys.argv[1:]
def us(s):  # wrk prints 812.00us, 1.23ms, 2.01s
    n, unit = re.fullmatch(r"([0-9.]+)(us|ms|s)", s).groups()
    return float(n) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]
try:
    rps = float(re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M).group(1))
    p50 = us(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
    p99 = us(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
except (AttributeError, ValueError):
    sys.exit("compare: %s http at %s connections: no wrk numbers in %r" % (impl, c, text[-400:]))
errors = re.search(r"^\s+Socket errors: (.*)$", text, re.M)
non2xx = re.search(r"^\s+Non-2xx or 3xx responses: (\d+)", text, re.M)
if errors or non2xx:
    print("compare: %s http at %s connections, workers %s: %s%s" % (impl, c, w,
          "socket errors: " + errors.group(1) if errors else "", "; non-2xx: " + non2xx.group(1) if non2xx else ""),
          file=sys.stderr)
if not rps:
    sys.exit("compare: %s http at %s connections completed no request" % (impl, c))
print("RESULT peer=%s benchmark=http%s workers=%s value=%.1f unit=ns/request rps=%.1f p50_us=%.1f p99_us=%.1f"
      % (impl, c, w, 1e9 / rps, rps, p50, p99))
' "$report" "$impl" "$c" "$w" || log "server output: $(tail -c 600 "$out")"
            else
                log "$impl http at $c connections: wrk failed: $(tail -c 300 <<<"$report"); server output: $(tail -c 600 "$out")"
            fi
        done
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -f "$out"
}

for bench in "${benches[@]}"; do
    if [[ $bench == http ]]; then
        command -v wrk >/dev/null || { log "http needs wrk (scripts/setup.sh --peers installs it) - skipped"; continue; }
        impls=(ours go hummingbird)
        for ((round = 1; round <= rounds; round++)); do
            for w in ${workers//,/ }; do
                for impl in "${impls[@]}"; do
                    log "http round $round/$rounds, workers $w: $impl"
                    case $impl in
                        ours) [[ -n $http_hello ]] && run_http greenthreads "$w" "$http_hello" 0 --workers "$w" ;;
                        go) run_http go "$w" "$peers_dir/.build-peers/go-http" 0 --workers "$w" ;;
                        hummingbird) run_http hummingbird "$w" "$peers_dir/.build-peers/hummingbird-hello" 0 --workers "$w" ;;
                    esac >>"$results" || true
                done
            done
            impls=("${impls[@]:1}" "${impls[0]}")  # the next round starts with the next server
        done
        continue
    fi
    if [[ $bench == echo ]]; then
        [[ -n $ours ]] || { log "echo needs gt-bench's load generator - skipped"; continue; }
        for ((round = 1; round <= rounds; round++)); do
            for w in ${workers//,/ }; do
                for impl in ours go nio; do
                    log "echo round $round/$rounds, workers $w: $impl"
                    case $impl in
                        ours) [[ -n $echo_server ]] && run_echo greenthreads "$w" "$echo_server" 0 --workers "$w" ;;
                        go) run_echo go "$w" "$peers_dir/.build-peers/go-echo" 0 --workers "$w" ;;
                        nio) run_echo nio "$w" "$peers_dir/.build-peers/nio-echo" 0 --workers "$w" ;;
                    esac >>"$results" || true
                done
            done
        done
        continue
    fi
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
                timeout "$peer_timeout" "$peers_dir/.build-peers/$impl-peer" "$bench" --workers "$w" >>"$results" \
                    || log "$impl failed on $bench (or ran past PEER_TIMEOUT=${peer_timeout}s)"
            fi
        done
        # The mass workloads also cold: one process per worker count, no
        # warm-up (the warm runs above reuse stacks and heap, as a service's
        # second burst does; a program's first burst pays for them).
        if [[ $bench == timers || $bench == parkmany ]]; then
            for cw in ${w//,/ }; do
                log "$bench-cold round $round/$rounds, workers $cw: ours, go"
                if [[ -n $ours ]]; then
                    run_ours "$bench" "$cw" cold >>"$results" || log "gt-bench failed on $bench-cold"
                fi
                COLD=1 "$peers_dir/.build-peers/go-peer" "$bench" --workers "$cw" >>"$results" \
                    || log "go failed on $bench-cold"
            done
        fi
    done
done

# --- report --------------------------------------------------------------------------
echo "machine: $machine"
echo "rounds: $rounds, repeats per run: $REPEATS, load average at start: $load"
echo
[[ -n ${RESULTS_FILE:-} ]] && cp "$results" "$RESULTS_FILE"
python3 - "$results" "$workers" "${benches[@]}" <<'PY'
import statistics, sys
from collections import defaultdict

path, workers, benches = sys.argv[1], [int(w) for w in sys.argv[2].split(",")], sys.argv[3:]
# timers and parkmany also run cold (no warm-up, a process each) and report
# memory (peak RSS per thread held at once): rows of their own.
benches = [x for b in benches for x in ([b, b + "-cold", b + "-rss"] if b in ("timers", "parkmany") else [b])]
values, units = defaultdict(list), {}
echo = defaultdict(list)  # (peer, connections, workers) -> [(rps, p99_us)]
http = defaultdict(list)  # (peer, connections, workers) -> [(rps, p50_us, p99_us)]
at_once = defaultdict(list)  # timers-rss: the most sleepers asleep at once, per run
for line in open(path):
    if not line.startswith("RESULT "):
        continue
    f = dict(kv.split("=", 1) for kv in line.split()[1:])
    if f["benchmark"].startswith("http") and "rps" in f:
        http[(f["peer"], int(f["benchmark"][4:]), int(f["workers"]))].append(
            (float(f["rps"]), float(f["p50_us"]), float(f["p99_us"])))
        continue
    if f["benchmark"].startswith("echo") and "rps" in f:
        echo[(f["peer"], int(f["benchmark"][4:]), int(f["workers"]))].append((float(f["rps"]), float(f["p99_us"])))
        continue
    key = (f["peer"], f["benchmark"], int(f["workers"]))
    values[key].append(float(f["value"]))
    units[key] = f["unit"]
    if "at_once" in f and f["benchmark"] == "timers-rss":
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
table = [b for b in benches if b not in ("echo", "http")]
if table:
    print("| benchmark | workers | GreenThreads | " + " | ".join(n for _, n, _ in peers)
          + " | " + " | ".join(f"ratio {r}/ours" for _, _, r in peers) + " |")
    print("|---|---:|---:|" + "---:|" * (2 * len(peers)))
    for b in table:
        for w in ([1] if b in single else workers):
            unit = next((units[k] for k in units if k[1:] == (b, w)), "?")
            ours = med("greenthreads", b, w)
            ours_unit = units.get(("greenthreads", b, w))
            if ours_unit and ours_unit != unit:
                print(f"warning: {b}: gt-bench reports {ours_unit}, peers {unit}", file=sys.stderr)
            theirs = [med(p, b, w) for p, _, _ in peers]
            print(f"| {b} ({unit}) | {w} | {fmt(ours)} | " + " | ".join(fmt(t) for t in theirs)
                  + " | " + " | ".join(ratio(t, ours) for t in theirs) + " |")

def server_med(runs, peer, c, w, i):  # median over rounds of field i of a server's runs
    v = runs.get((peer, c, w))
    return statistics.median(x[i] for x in v) if v else None

def k(x):
    return "—" if x is None else f"{x / 1000:.1f}k"

if "echo" in benches:
    def emed(peer, c, w, i):
        return server_med(echo, peer, c, w, i)
    conns = sorted({key[1] for key in echo})
    names = [("greenthreads", "GreenThreads"), ("go", "Go"), ("nio", "SwiftNIO")]
    print()
    print("| echo | workers | " + " | ".join(f"{n} req/s" for _, n in names)
          + " | ratio ours/Go | ratio ours/NIO | " + " | ".join(f"{n} p99 µs" for _, n in names)
          + " | p99 ratio Go/ours | p99 ratio NIO/ours |")
    print("|---|---:|" + "---:|" * 10)
    for c in conns:
        for w in workers:
            rps = [emed(p, c, w, 0) for p, _ in names]
            p99 = [emed(p, c, w, 1) for p, _ in names]
            print(f"| {c} connections | {w} | " + " | ".join(k(x) for x in rps)
                  + f" | {ratio(rps[0], rps[1])} | {ratio(rps[0], rps[2])} | "
                  + " | ".join(fmt(x) for x in p99)
                  + f" | {ratio(p99[1], p99[0])} | {ratio(p99[2], p99[0])} |")
    print()
    print("echo: each server is its own process, driven by `gt-bench loadgen` (POSIX sockets + epoll "
          "on OS threads) with 64-byte messages, one in flight per connection; medians over rounds "
          "of requests/s and of p99 round trip. The load generator takes the cores the server leaves "
          "free (`--server-workers`), or shares them all when it leaves none. Ratios > 1: GreenThreads is better (more requests/s, lower p99). "
          "GreenThreads = the echo-server example; Go = go-echo (GOMAXPROCS = workers); "
          "SwiftNIO = nio-echo (MultiThreadedEventLoopGroup of `workers` threads).")
    print()

if "http" in benches:
    def hmed(peer, c, w, i):
        return server_med(http, peer, c, w, i)
    conns = sorted({key[1] for key in http})
    names = [("greenthreads", "GreenThreads"), ("go", "Go"), ("hummingbird", "Hummingbird")]
    print()
    print("| http | workers | " + " | ".join(f"{n} req/s" for _, n in names)
          + " | ratio ours/Go | ratio ours/HB | " + " | ".join(f"{n} p50 µs" for _, n in names)
          + " | " + " | ".join(f"{n} p99 µs" for _, n in names)
          + " | p99 ratio Go/ours | p99 ratio HB/ours |")
    print("|---|---:|" + "---:|" * 13)
    for c in conns:
        for w in workers:
            rps = [hmed(p, c, w, 0) for p, _ in names]
            p50 = [hmed(p, c, w, 1) for p, _ in names]
            p99 = [hmed(p, c, w, 2) for p, _ in names]
            print(f"| {c} connections | {w} | " + " | ".join(k(x) for x in rps)
                  + f" | {ratio(rps[0], rps[1])} | {ratio(rps[0], rps[2])} | "
                  + " | ".join(fmt(x) for x in p50) + " | " + " | ".join(fmt(x) for x in p99)
                  + f" | {ratio(p99[1], p99[0])} | {ratio(p99[2], p99[0])} |")
    print()
    print("http: each server is its own process serving GET / with \"Hello, world!\\n\" (text/plain) "
          "over keep-alive connections, driven by wrk (`--latency`, after a 1 s warm-up); medians over "
          "rounds of requests/s and of wrk's p50 and p99 latency. wrk runs on the same machine: it takes "
          "the cores the server leaves free, or shares them all when it leaves none, so at "
          "workers = cores the load generator competes with the server for CPU. The servers take turns "
          "within a round and the first of each round rotates. Ratios > 1: GreenThreads is better "
          "(more requests/s, lower p99). GreenThreads = the http-hello example; Go = go-http (net/http, "
          "GOMAXPROCS = workers); Hummingbird = hummingbird-hello (Hummingbird 2 on NIO's event loop "
          "group of `workers` threads, which also runs its async handlers).")
    print()

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
if table:
    print("Values are medians (lower is better); ratio > 1 means GreenThreads is faster.")
    print("Go: GOMAXPROCS = workers. Boost.Fiber: work_stealing on `workers` threads "
          "(switch: round_robin on one thread; no select). Swift conc: default executor, its pool "
          "pinned to `workers` CPUs with taskset (the only knob that works on Linux).")
if any(b.endswith("-cold") for b in table):
    print("-cold rows: one run per process with no warm-up (fresh stacks, heap and page tables), "
          "gt-bench run --cold and the Go peer with COLD=1; the plain rows are warm, repeats after "
          "a warm-up in one process.")
if "generator" in benches:
    print("generator: Python gen = a plain generator resumed with send(); greenlet = one "
          "switch in and back out; both 10^6 resumes (gt-bench: 10^7).")
PY
