#!/usr/bin/env bash
# Builds and tests Examples/AsyncEcosystem, the examples that use the Swift
# server ecosystem (AsyncHTTPClient, Hummingbird, SwiftNIO). They live in a
# package of their own so the library's build never compiles SwiftNIO; this
# is the one command that does, and it prints how long the build took.
#
#   scripts/examples-package.sh           build, then `swift test`
#   scripts/examples-package.sh --cold    the same from an empty build folder
set -euo pipefail
cd "$(dirname "$0")/../Examples/AsyncEcosystem"
export PATH="$PATH:/opt/swift/usr/bin"
if [ "${1:-}" = "--cold" ]; then
    rm -rf .build
fi
start=$(date +%s)
swift build --build-tests
echo "== examples package built in $(( $(date +%s) - start )) s"
swift test --skip-build
