#!/usr/bin/env bash
# Installs what GreenThreads needs on a fresh Debian machine, only when it is
# missing. Usage: scripts/setup.sh [--peers]
#   (no flag)  the build and test dependencies
#   --peers    also the peer runtimes gt-bench is compared against (Go,
#              Boost.Fiber, Python greenlet/gevent)
set -euo pipefail

need_apt=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

command -v swift >/dev/null || [ -x /opt/swift/usr/bin/swift ] || {
    echo "setup: no Swift toolchain found (expected swift on PATH or in /opt/swift/usr/bin)" >&2
    exit 1
}
# The library itself needs only the toolchain and the kernel: topology is
# read from sysfs, so libnuma is not a build dependency.

if [ "${1:-}" = "--peers" ]; then
    command -v go >/dev/null || need_apt+=(golang-go)
    command -v g++ >/dev/null || need_apt+=(g++)
    have_pkg libboost-fiber-dev || need_apt+=(libboost-fiber-dev)
    have_pkg libboost-context-dev || need_apt+=(libboost-context-dev)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ "${1:-}" = "--peers" ]; then
    python3 -c 'import greenlet, gevent' 2>/dev/null || {
        echo "setup: installing greenlet and gevent from PyPI"
        python3 -m pip install -q greenlet gevent
    }
fi
