#!/usr/bin/env bash
# scripts/numa-vm/run.sh: runs one command in a disposable QEMU guest whose
# kernel sees a real multi-node NUMA machine (ACPI SRAT and SLIT), with this
# machine's filesystem visible at the same paths, so a binary built here runs
# there unchanged.
#
#   scripts/numa-vm/run.sh [--nodes 2|4] [--timeout S] [-v] -- COMMAND [ARGS...]
#
# Topology: 4 vCPUs and 2 GiB split evenly over the nodes. 2 nodes: CPUs
# 0-1 and 2-3, distances 10/20. 4 nodes: one CPU each, pairs {0,1} and
# {2,3} at 16, across the pairs 32. All of it is ordinary host RAM: the
# guest tests placement (which node a page or a CPU is on), not latency.
#
# Exit status: the command's; 124 when --timeout fired; 125 when the guest
# broke before the command finished; 126 when no guest can run here (not
# root, not x86_64, QEMU or a guest kernel missing and not installable),
# with the reason on stderr.
#
# How: the guest boots Debian's generic kernel straight from its
# uncompressed ELF image (PVH entry, which skips the decompressor: seconds
# under software emulation) with a small initramfs (static busybox and the
# virtio/9p/overlay modules). Its init mounts the host's / read-only over
# 9p, puts a tmpfs overlay on top (the guest may write anywhere; all of it
# is dropped), chroots and runs the job. The job's stdout, stderr and exit
# status come back on three serial ports. The kernel image and initramfs
# are cached under $GT_NUMA_VM_CACHE (default /tmp/gt-numa-vm-cache).
set -euo pipefail

ME=$(basename "$0")
CACHE=${GT_NUMA_VM_CACHE:-/tmp/gt-numa-vm-cache}
NODES=2 CPUS=4 MEM=2048 TIMEOUT=900 VERBOSE=0

fail() { echo "$ME: $*" >&2; exit 125; }
cannot() { echo "$ME: cannot run a guest here: $*" >&2; exit 126; }

while [ $# -gt 0 ]; do
  case $1 in
    --nodes) NODES=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    -v) VERBOSE=1; shift ;;
    --) shift; break ;;
    *) fail "unknown argument $1" ;;
  esac
done
[ $# -gt 0 ] || fail "no command (usage: $ME [--nodes 2|4] [--timeout S] [-v] -- COMMAND...)"
case $NODES in 2|4) ;; *) fail "--nodes must be 2 or 4" ;; esac

# ---------------------------------------------------------------- can a guest run?
[ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ] || cannot "the guest is an x86_64 Linux machine"
[ "$(id -u)" = 0 ] || cannot "not root (the guest runs its command as root over the host filesystem)"

kernel_with_9p() {   # newest /boot/vmlinuz-*-amd64 whose modules include 9p over virtio
  local k v
  for k in $(ls -1 /boot/vmlinuz-*-amd64 2>/dev/null | sort -rV); do
    v=${k##*/vmlinuz-}
    if [ -r "/lib/modules/$v/modules.dep" ] && grep -q '/9pnet_virtio\.ko' "/lib/modules/$v/modules.dep"; then
      echo "$k"; return 0
    fi
  done
  return 1
}
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || missing+=(busybox-static)
command -v cpio >/dev/null || missing+=(cpio)
# Debian's cloud kernel has no 9p: the generic one is needed.
kernel_with_9p >/dev/null || missing+=(linux-image-amd64)
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || cannot "missing ${missing[*]} and no apt-get to install them"
  echo "$ME: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/gt-numa-vm-apt.log 2>&1; then
    apt-get update -qq >>/tmp/gt-numa-vm-apt.log 2>&1 || true
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >>/tmp/gt-numa-vm-apt.log 2>&1 ||
      cannot "apt-get install ${missing[*]} failed (see /tmp/gt-numa-vm-apt.log)"
  fi
fi
KERNEL=$(kernel_with_9p) || cannot "no guest kernel with 9p modules (/boot/vmlinuz-*-amd64)"
KVER=${KERNEL##*/vmlinuz-}
MODDIR=/lib/modules/$KVER

# ---------------------------------------------------------------- initramfs (cached)
read -r -d '' INIT <<'EOF' || true
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say() { echo "guest-init: $*" > /dev/ttyS0; }
finish() { echo "$1" > /dev/ttyS3; sync; poweroff -f; sleep 5; }
for m in $(cat /modules.list); do insmod "/lib/modules/$m" 2>/dev/ttyS0 || say "insmod $m failed"; done
job=
for a in $(cat /proc/cmdline); do case $a in gtvm.job=*) job=${a#gtvm.job=} ;; esac; done
[ -n "$job" ] || finish "error no gtvm.job= on the kernel command line"
mkdir -p /mnt/host /mnt/rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /mnt/host ||
  finish "error cannot mount the host filesystem"
mount -t tmpfs -o mode=755 tmpfs /mnt/rw
mkdir -p /mnt/rw/upper /mnt/rw/work
if ! mount -t overlay overlay -o lowerdir=/mnt/host,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work /newroot; then
  say "no overlay: read-only root with tmpfs /tmp"
  mount --bind /mnt/host /newroot
  mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp
  mkdir -p "/newroot$job" && mount --bind "/mnt/host$job" "/newroot$job"
fi
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /newroot/dev/shm
mount -t tmpfs -o mode=755 tmpfs /newroot/run
stty -F /dev/ttyS1 raw -echo 2>/dev/null
stty -F /dev/ttyS2 raw -echo 2>/dev/null
chroot /newroot /bin/bash "$job/job.sh" </dev/null >/dev/ttyS1 2>/dev/ttyS2
finish "exit $?"
EOF

MODULES="virtio_pci 9pnet_virtio 9p overlay"
key=$( { echo "1 $KVER $MODULES"; echo "$INIT"; md5sum /bin/busybox; } | md5sum | cut -c1-12)
INITRD=$CACHE/initramfs-$KVER-$key.cpio.gz

build_initramfs() {
  local stage p base out m order=() seen=" "
  stage=$(mktemp -d "$CACHE/stage.XXXXXX")
  mkdir -p "$stage"/{bin,proc,sys,dev,mnt,newroot,lib/modules}
  cp /bin/busybox "$stage/bin/busybox"
  printf '%s\n' "$INIT" > "$stage/init"
  chmod 755 "$stage/init"
  # modules.dep lines are "path: dependencies..."; load dependencies first.
  add() {
    local d
    case $seen in *" $1 "*) return ;; esac
    seen="$seen$1 "
    for d in $(awk -F: -v p="$1" '$1 == p { print $2 }' "$MODDIR/modules.dep"); do add "$d"; done
    order+=("$1")
  }
  for m in $MODULES; do
    grep -qE "/$m\.ko" "$MODDIR/modules.builtin" 2>/dev/null && continue
    p=$(grep -E "(^|/)$m\.ko(\.xz|\.zst|\.gz)?:" "$MODDIR/modules.dep" | head -1 | cut -d: -f1)
    [ -n "$p" ] || { rm -rf "$stage"; fail "module $m not found for kernel $KVER"; }
    add "$p"
  done
  : > "$stage/modules.list"
  for p in "${order[@]}"; do
    base=${p##*/}; out=${base%.xz}; out=${out%.zst}; out=${out%.gz}
    case $base in
      *.xz) xz -dc "$MODDIR/$p" ;;
      *.zst) zstd -qdc "$MODDIR/$p" ;;
      *.gz) gzip -dc "$MODDIR/$p" ;;
      *) cat "$MODDIR/$p" ;;
    esac > "$stage/lib/modules/$out"
    echo "$out" >> "$stage/modules.list"
  done
  (cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1) > "$INITRD.$$"
  mv -f "$INITRD.$$" "$INITRD"
  rm -rf "$stage"
}

# The ELF kernel inside the bzImage (an xz, zstd or gzip payload), usable
# for a PVH boot when it carries the PVH entry note (type 0x12).
extract_elf_kernel() {
  local magic tool off
  for magic in '\xfd7zXZ\x00:xz -dc' '\x28\xb5\x2f\xfd:zstd -qdc' '\x1f\x8b\x08:gzip -dc'; do
    tool=${magic#*:}; magic=${magic%%:*}
    for off in $(LC_ALL=C grep -obUaP "$magic" "$KERNEL" 2>/dev/null | cut -d: -f1 | head -4); do
      tail -c +$((off + 1)) "$KERNEL" | $tool > "$1.tmp" 2>/dev/null || true
      if [ "$(head -c 4 "$1.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] &&
         readelf -n "$1.tmp" 2>/dev/null | grep -q '(0x00000012)'; then
        mv -f "$1.tmp" "$1"; return 0
      fi
    done
  done
  rm -f "$1.tmp"
  return 1
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
[ -s "$INITRD" ] || build_initramfs
BOOT=$KERNEL
ELF=$CACHE/vmlinux-$KVER-$(stat -c %s.%Y "$KERNEL")
if command -v readelf >/dev/null &&
   { [ -s "$ELF" ] || { [ ! -e "$ELF.none" ] && extract_elf_kernel "$ELF"; } || { : > "$ELF.none"; false; }; }; then
  BOOT=$ELF
fi
flock -u 9
exec 9>&-

# ---------------------------------------------------------------- machine
# KVM only with hardware virtualisation underneath; nested schemes that
# emulate a stock kernel instruction by instruction are far slower than TCG.
if [ -c /dev/kvm ] && [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo && [ ! -d /sys/module/kvm_pvm ]; then
  ACCEL=(-accel kvm -cpu host)
  CMDLINE_ACCEL=""
else
  # tsc=reliable keeps the TSC clocksource (TCG's TSC follows the host
  # clock), else the guest reads the emulated HPET on every clock_gettime;
  # lpj= skips the delay-loop calibration of each vCPU.
  mhz=$(awk -F: '/^cpu MHz/ { printf "%d", $2; exit }' /proc/cpuinfo 2>/dev/null)
  ACCEL=(-accel tcg,thread=multi -cpu max,la57=off)
  CMDLINE_ACCEL="tsc=reliable lpj=$(( ${mhz:-2000} * 4000 )) cryptomgr.notests"
fi

case $NODES in
  2) DIST=(10 20 20 10) ;;
  4) DIST=(10 16 32 32 16 10 32 32 32 32 10 16 32 32 16 10) ;;
esac
MACHINE=(-smp "$CPUS,sockets=$NODES,cores=$((CPUS / NODES)),threads=1")
for ((i = 0; i < NODES; i++)); do
  MACHINE+=(-object "memory-backend-ram,id=m$i,size=$((MEM / NODES))M"
            -numa "node,nodeid=$i,memdev=m$i" -numa "cpu,node-id=$i,socket-id=$i")
done
for ((i = 0; i < NODES; i++)); do
  for ((j = 0; j < NODES; j++)); do
    [ $i = $j ] || MACHINE+=(-numa "dist,src=$i,dst=$j,val=${DIST[i * NODES + j]}")
  done
done

# ---------------------------------------------------------------- the job
JOB=$(mktemp -d /tmp/gt-numa-vm.XXXXXX)
chmod 755 "$JOB"
QEMU_PID="" RELAYS=()
cleanup() {
  [ -z "$QEMU_PID" ] || kill "$QEMU_PID" 2>/dev/null || true
  for p in "${RELAYS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$JOB"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
{
  echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  echo 'export HOME=/root LANG=C.UTF-8 GT_NUMA_VM=1'
  printf 'cd %q || exit 125\n' "$PWD"
  printf 'exec'; printf ' %q' "$@"; printf '\n'
} > "$JOB/job.sh"
mkfifo "$JOB/out" "$JOB/err"
cat "$JOB/out" & RELAYS+=($!)
cat "$JOB/err" >&2 & RELAYS+=($!)
: > "$JOB/console"; : > "$JOB/status"

QEMU=(qemu-system-x86_64 -machine q35 "${ACCEL[@]}" -m "$MEM" "${MACHINE[@]}"
  -nodefaults -no-user-config -display none -vga none -monitor none -no-reboot
  -kernel "$BOOT" -initrd "$INITRD"
  -append "console=ttyS0 quiet loglevel=4 panic=-1 mitigations=off $CMDLINE_ACCEL gtvm.job=$JOB"
  -chardev "file,id=c0,path=$JOB/console" -serial chardev:c0
  -chardev "file,id=c1,path=$JOB/out" -serial chardev:c1
  -chardev "file,id=c2,path=$JOB/err" -serial chardev:c2
  -chardev "file,id=c3,path=$JOB/status" -serial chardev:c3
  -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap")
[ "$VERBOSE" = 0 ] || { printf '%q ' "${QEMU[@]}" >&2; echo >&2; }

set +e
timeout -k 5 "$TIMEOUT" "${QEMU[@]}" </dev/null >"$JOB/qemu.log" 2>&1 &
QEMU_PID=$!
wait "$QEMU_PID"; qemu_rc=$?
QEMU_PID=""
for p in "${RELAYS[@]}"; do wait "$p" 2>/dev/null; done
RELAYS=()
set -e
[ "$VERBOSE" = 0 ] || cat "$JOB/console" >&2

# The status port may end its line with a carriage return.
status=$(grep -a '^exit ' "$JOB/status" | tail -1 | tr -dc '0-9' || true)
[ -z "$status" ] || exit "$status"
{
  if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
    echo "$ME: the guest timed out after ${TIMEOUT}s"
  else
    echo "$ME: the guest ended before the command finished (qemu exit $qemu_rc)"
  fi
  grep -h . "$JOB/status" "$JOB/qemu.log" | sed 's/^/  /'
  echo "-- last lines of the guest console:"
  tail -n 30 "$JOB/console"
} >&2
if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then exit 124; fi
exit 125
