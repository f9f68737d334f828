#!/usr/bin/env bash
# Builds and runs the plain-C context-switch test (Tests/CContextC/switch_test.c)
# against Sources/CContext: natively on x86_64, and for aarch64 under
# qemu-user when a cross toolchain and qemu are available.
#
# Usage: scripts/check-switch.sh [--install]
#   --install   apt-get install what the aarch64 part needs when it is missing
#               (gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user);
#               without it a missing piece only skips the aarch64 part.
#
# Each arch is built with gcc -O2, clang -O0 and clang -O2 (clang honours the
# swiftcall attribute context.c uses; gcc ignores it). The last line is
# "N passed, N failed", counting test cases over every build that ran.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

install=0
for arg in "$@"; do
    case "$arg" in
        --install) install=1 ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "check-switch: unknown argument $arg (usage: $0 [--install])" >&2; exit 2 ;;
    esac
done

SRC=Sources/CContext
TEST=Tests/CContextC/switch_test.c
OUT=.build-switch-test
mkdir -p "$OUT"

# Test case names, straight from the test's table, so a build failure or a
# crash of the whole binary counts every case it did not report as failed.
mapfile -t CASES < <(sed -n '/^static const test_case tests\[\] = {/,/^};/p' "$TEST" | sed -n 's/^ *{"\([^"]*\)".*/\1/p')
NCASES=${#CASES[@]}
if [ "$NCASES" -eq 0 ]; then
    echo "check-switch: could not read the test table from $TEST" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

CLANG=""
for c in clang /opt/swift/usr/bin/clang; do
    if command -v "$c" >/dev/null 2>&1; then CLANG=$(command -v "$c"); break; fi
done

total_pass=0
total_fail=0
summary=()

# run_config <label> <arch> <runner...> -- <compiler and flags...>
run_config() {
    local label=$1 arch=$2; shift 2
    local runner=()
    while [ "$1" != "--" ]; do runner+=("$1"); shift; done
    shift
    local bin="$OUT/switch_test-$label"
    local asm
    case "$arch" in
        x86_64) asm=$SRC/switch_x86_64_sysv_elf.S ;;
        aarch64) asm=$SRC/switch_arm64_aapcs_elf.S ;;
    esac
    echo "== $label: $*"
    if ! "$@" -std=gnu11 -g -Wall -Wextra -frounding-math -pthread -I"$SRC/include" \
            "$TEST" "$SRC/context.c" "$SRC/exclusivity.c" "$SRC/module_tls.c" "$SRC/task_locals.c" "$SRC/overflow.c" "$SRC/stack.c" "$SRC/numa_memory.c" "$asm" -o "$bin" -lm -ldl 2>"$OUT/$label.build.log"; then
        cat "$OUT/$label.build.log"
        echo "FAIL $label: build failed (all $NCASES cases counted as failed)"
        total_fail=$((total_fail + NCASES))
        summary+=("$label: 0 passed, $NCASES failed (build failed)")
        return
    fi
    # Warnings other than gcc's expected "swiftcall attribute ignored".
    grep -v -e "swiftcall" -e "^ *[0-9]* |" -e "^ *|" -e "In function" "$OUT/$label.build.log" | grep -i "warning" || true
    local log="$OUT/$label.log"
    # Child processes that die of the expected SIGSEGV (guard-page cases) make
    # qemu print "uncaught target signal 11"; filter that noise.
    "${runner[@]}" "$bin" 2>&1 | grep -v "^qemu: uncaught target signal 11" | tee "$log"
    local p f
    p=$(grep -c "^PASS $arch " "$log" || true)
    f=$((NCASES - p))
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    summary+=("$label: $p passed, $f failed")
}

# --- native x86_64 ---------------------------------------------------------
if [ "$(uname -m)" = "x86_64" ]; then
    if command -v gcc >/dev/null 2>&1; then
        run_config x86_64-gcc-O2 x86_64 -- gcc -O2 -Wno-attributes
    fi
    if [ -n "$CLANG" ]; then
        run_config x86_64-clang-O0 x86_64 -- "$CLANG" -O0
        run_config x86_64-clang-O2 x86_64 -- "$CLANG" -O2
    fi
    if ! command -v gcc >/dev/null 2>&1 && [ -z "$CLANG" ]; then
        echo "FAIL x86_64: no C compiler (gcc or clang) found"
        total_fail=$((total_fail + NCASES))
    fi
else
    echo "SKIP x86_64: this machine is $(uname -m), not x86_64"
fi

# --- aarch64 under qemu-user -------------------------------------------------
SYSROOT=/usr/aarch64-linux-gnu
find_qemu() {
    QEMU=""
    for q in qemu-aarch64 qemu-aarch64-static; do
        if command -v "$q" >/dev/null 2>&1; then QEMU=$(command -v "$q"); return 0; fi
    done
    return 1
}
missing_pkgs() {
    local m=()
    command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || m+=(gcc-aarch64-linux-gnu)
    [ -e "$SYSROOT/lib/libc.so.6" ] && [ -e "$SYSROOT/include/stdio.h" ] || m+=(libc6-dev-arm64-cross)
    find_qemu || m+=(qemu-user)
    echo "${m[@]:-}"
}

missing=$(missing_pkgs)
if [ -n "$missing" ] && [ "$install" = 1 ]; then
    echo "== installing for aarch64: $missing"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null; }; then
        echo "check-switch: apt-get install $missing failed" >&2
    fi
    missing=$(missing_pkgs)
fi

if [ -n "$missing" ]; then
    if [ "$install" = 1 ]; then
        echo "SKIP aarch64: still missing $missing after apt-get install"
    else
        echo "SKIP aarch64: missing $missing (rerun with --install to apt-get install them)"
    fi
    summary+=("aarch64: skipped (missing $missing)")
else
    find_qemu
    run_config aarch64-gcc-O2 aarch64 "$QEMU" -L "$SYSROOT" -- aarch64-linux-gnu-gcc -O2 -Wno-attributes
    if [ -n "$CLANG" ]; then
        run_config aarch64-clang-O0 aarch64 "$QEMU" -L "$SYSROOT" -- "$CLANG" --target=aarch64-linux-gnu -O0
        run_config aarch64-clang-O2 aarch64 "$QEMU" -L "$SYSROOT" -- "$CLANG" --target=aarch64-linux-gnu -O2
    fi
fi

echo "== summary ($NCASES cases per build)"
for s in "${summary[@]}"; do echo "   $s"; done
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
