#!/usr/bin/env bash
# Installs what GreenThreads needs on a fresh Debian machine, only when it is
# missing. Usage: scripts/setup.sh [--peers]
#   (no flag)  the build and test dependencies
#   --peers    also the peer runtimes gt-bench is compared against (Go,
#              Boost.Fiber, Python greenlet/gevent), wrk (the HTTP load
#              generator of `scripts/compare.sh http`) and matplotlib, which
#              scripts/plot-scale draws the scaling chart with
set -euo pipefail

need_apt=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

command -v swift >/dev/null || [ -x /opt/swift/usr/bin/swift ] || {
    echo "setup: no Swift toolchain found (expected swift on PATH or in /opt/swift/usr/bin)" >&2
    exit 1
}
# The topology reader is compiled against numa.h (libnuma-dev); libnuma.so.1
# itself is opened at run time, so a program built here also starts where it
# is missing (with one NUMA node).
have_pkg libnuma-dev || need_apt+=(libnuma-dev)
# scripts/sanitize.sh (run by scripts/test.sh): the sanitizer runtimes and
# headers ship with the Swift toolchain; their reports name source lines
# only through llvm-symbolizer, which toolchains usually ship too.
command -v llvm-symbolizer >/dev/null || [ -x /opt/swift/usr/bin/llvm-symbolizer ] || need_apt+=(llvm)

if [ "${1:-}" = "--peers" ]; then
    command -v go >/dev/null || need_apt+=(golang-go)
    command -v g++ >/dev/null || need_apt+=(g++)
    have_pkg libboost-fiber-dev || need_apt+=(libboost-fiber-dev)
    have_pkg libboost-context-dev || need_apt+=(libboost-context-dev)
    command -v wrk >/dev/null || need_apt+=(wrk)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# On kernels without guard regions (before Linux 6.13) every green stack is
# two memory mappings (stack + guard page), so a million live green threads
# need vm.max_map_count above 2,000,000 (the kernel's default is 65530: about
# 32k threads); with them, 64 stacks share one mapping and the default does.
# The 10^6-sleeper test and the timers benchmark need a million.
want_maps=2200000
have_maps=$(cat /proc/sys/vm/max_map_count 2>/dev/null || echo 0)
if [ "$have_maps" -lt "$want_maps" ]; then
    if [ "$(id -u)" -eq 0 ] && sysctl -q -w vm.max_map_count=$want_maps 2>/dev/null; then
        echo "setup: raised vm.max_map_count from $have_maps to $want_maps (10^6 green stacks)"
    else
        echo "setup: vm.max_map_count is $have_maps: about $((have_maps / 2)) live green threads fit." \
            "For a million, as root: sysctl -w vm.max_map_count=$want_maps" >&2
    fi
fi

if [ "${1:-}" = "--peers" ]; then
    python3 -c 'import greenlet, gevent' 2>/dev/null || {
        echo "setup: installing greenlet and gevent from PyPI"
        python3 -m pip install -q greenlet gevent
    }
    python3 -c 'import matplotlib' 2>/dev/null || {
        echo "setup: installing matplotlib from PyPI (scripts/plot-scale)"
        python3 -m pip install -q matplotlib
    }
fi
