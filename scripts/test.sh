#!/usr/bin/env bash
# The test command: installs what is missing, then runs every test suite in
# a debug build and again in a release build (optimizations change how code
# behaves across green-thread switches, so both matter).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
scripts/setup.sh
echo "== context switch in C, x86_64 natively and aarch64 under qemu-user"
scripts/check-switch.sh --install
echo "== swift test (debug)"
swift test
echo "== swift test (release)"
swift test -c release -Xswiftc -enable-testing --scratch-path .build-release-tests
