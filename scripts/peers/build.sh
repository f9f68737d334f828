#!/usr/bin/env bash
# Builds the peer implementations (Go, Boost.Fiber/Boost.Context, Swift
# concurrency, Python, the Go and SwiftNIO echo servers, and the Go net/http
# and Hummingbird hello servers) into
# scripts/peers/.build-peers/, installing the Debian packages (and, for
# Python, the greenlet and gevent wheels from PyPI) they need first if they
# are missing.
#
# Usage: scripts/peers/build.sh [go boostfiber swiftconc nio-echo hummingbird python]
#        (default: all of them; quiet when everything is up to date)
set -euo pipefail

only=" $* "
# want PEER: true if PEER is to be built (named, or no peer named at all).
want() { [[ $only == "  " || $only == *" $1 "* ]]; }

here=$(cd "$(dirname "$0")" && pwd)
out="$here/.build-peers"
mkdir -p "$out"

log() { echo "peers/build: $*" >&2; }

# --- toolchains ---------------------------------------------------------------
missing=()
want go && { command -v go >/dev/null || missing+=(golang-go); }
if want boostfiber; then
    command -v g++ >/dev/null || missing+=(g++)
    [[ -f /usr/include/boost/fiber/all.hpp ]] || missing+=(libboost-fiber-dev)
    [[ -f /usr/include/boost/context/fiber.hpp ]] || missing+=(libboost-context-dev)
fi
want swiftconc && { command -v taskset >/dev/null || missing+=(util-linux); }   # pins the Swift pool
if ((${#missing[@]})); then
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Only refresh the package lists if a plain install cannot find them.
    $sudo apt-get install -y -q "${missing[@]}" >&2 \
        || { $sudo apt-get update -q >&2 && $sudo apt-get install -y -q "${missing[@]}" >&2; }
fi

swift=$(command -v swift || true)
[[ -n $swift ]] || swift=/opt/swift/usr/bin/swift
[[ -x $swift ]] || { log "swift not found (looked in PATH and /opt/swift/usr/bin)"; exit 1; }

# stale OUTPUT INPUT...: true if OUTPUT is missing or older than any INPUT.
stale() {
    local o=$1 i
    shift
    [[ -e $o ]] || return 0
    for i in "$@"; do [[ $i -nt $o ]] && return 0; done
    return 1
}

# --- Go -----------------------------------------------------------------------
if want go && stale "$out/go-peer" "$here"/go/*.go "$here/go/go.mod"; then
    log "building go-peer"
    # No dependencies, so no module downloads: keep the proxy out of it.
    (cd "$here/go" && GOFLAGS=-mod=mod GOPROXY=off go build -o "$out/go-peer" .)
fi
if want go && stale "$out/go-echo" "$here"/go/echo/*.go "$here/go/go.mod"; then
    log "building go-echo"
    (cd "$here/go" && GOFLAGS=-mod=mod GOPROXY=off go build -o "$out/go-echo" ./echo)
fi
if want go && stale "$out/go-http" "$here"/go/http/*.go "$here/go/go.mod"; then
    log "building go-http"
    (cd "$here/go" && GOFLAGS=-mod=mod GOPROXY=off go build -o "$out/go-http" ./http)
fi

# --- Boost.Fiber / Boost.Context ------------------------------------------------
if want boostfiber && stale "$out/boostfiber-peer" "$here/boostfiber/main.cpp"; then
    log "building boostfiber-peer"
    g++ -std=c++20 -O2 -Wall -o "$out/boostfiber-peer" "$here/boostfiber/main.cpp" \
        -lboost_fiber -lboost_context -pthread
fi

# --- Swift concurrency ----------------------------------------------------------
# SwiftPM does its own up-to-date checks; its scratch dir lives with the rest.
if want swiftconc && stale "$out/swiftconc-peer" "$here/swiftconc/Package.swift" "$here"/swiftconc/Sources/*/*.swift; then
    log "building swiftconc-peer"
    "$swift" build -c release --package-path "$here/swiftconc" \
        --scratch-path "$out/swiftconc" >&2
    ln -sfr "$("$swift" build -c release --package-path "$here/swiftconc" \
        --scratch-path "$out/swiftconc" --show-bin-path)/swiftconc-peer" "$out/swiftconc-peer"
fi

# --- SwiftNIO echo server, Hummingbird hello server ----------------------------------
# One package (scripts/peers/nio-echo), so the two share one SwiftNIO build;
# each product is built only when asked for. Resolves swift-nio and
# hummingbird by version (the local package mirror serves them offline).
# build_nio PRODUCT WHAT: builds PRODUCT and links it into $out.
build_nio() {
    log "building $1 ($2)"
    "$swift" build -c release --package-path "$here/nio-echo" \
        --scratch-path "$out/nio-echo-build" --product "$1" >&2
    ln -sfr "$("$swift" build -c release --package-path "$here/nio-echo" \
        --scratch-path "$out/nio-echo-build" --show-bin-path)/$1" "$out/$1"
}
if want nio-echo && stale "$out/nio-echo" "$here/nio-echo/Package.swift" "$here"/nio-echo/Sources/nio-echo/*.swift; then
    build_nio nio-echo "the first build compiles SwiftNIO: a few minutes"
fi
if want hummingbird && stale "$out/hummingbird-hello" "$here/nio-echo/Package.swift" \
    "$here"/nio-echo/Sources/hummingbird-hello/*.swift; then
    build_nio hummingbird-hello "the first build compiles SwiftNIO and Hummingbird: ten minutes or more"
fi

# --- Python (generator / greenlet) --------------------------------------------------
# Nothing to compile: python-peer is a link to the script. It needs greenlet
# (gevent's switching core; gevent comes along for anyone comparing further).
python=$(command -v python3 || true)
if ! want python; then
    :
elif [[ -z $python ]]; then
    log "python3 not found: the python peer will not run"
else
    if ! "$python" -c 'import greenlet, gevent' 2>/dev/null; then
        log "installing greenlet and gevent with pip"
        "$python" -m pip install -q greenlet gevent >&2 \
            || "$python" -m pip install -q --break-system-packages greenlet gevent >&2 \
            || log "pip install failed: the greenlet half of the python peer will not run"
    fi
    [[ -L $out/python-peer ]] || ln -sfr "$here/python/peer.py" "$out/python-peer"
fi
