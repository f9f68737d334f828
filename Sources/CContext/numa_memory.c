// Node-local memory: the kernel's NUMA memory-policy calls, made directly.
//
// mbind(2), move_pages(2) and get_mempolicy(2) are plain system calls;
// libnuma wraps them in bitmask objects and a library the process would have
// to find at run time. The scheduler needs four things from them, so it
// makes the calls itself and works wherever the kernel has NUMA support,
// with or without libnuma installed. A kernel built without NUMA answers
// ENOSYS, and everything here then reports one node and binds nothing.
//
// Node masks are fixed arrays of `mask_bits` bits. The kernel's `maxnode`
// argument counts one more than the bits it reads (mbind and get_mempolicy
// both decrement it first), hence the `mask_bits + 1` below.
#define _GNU_SOURCE
#include "CContext.h"
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MPOL_PREFERRED
#define MPOL_PREFERRED 1
#endif
#ifndef MPOL_F_MEMS_ALLOWED
#define MPOL_F_MEMS_ALLOWED (1 << 2)
#endif
#ifndef MPOL_MF_MOVE
#define MPOL_MF_MOVE (1 << 1)
#endif

enum { mask_bits = 1024, mask_words = mask_bits / (8 * sizeof(unsigned long)) };

static _Atomic int memory_nodes_cached;  // 0: not asked yet

int gt_numa_memory_node_count(void) {
    int cached = atomic_load_explicit(&memory_nodes_cached, memory_order_relaxed);
    if (cached) return cached;
    unsigned long mask[mask_words];
    memset(mask, 0, sizeof mask);
    int count = 1;
    // The nodes this process may take memory from (its cpuset's mems), not
    // every node the machine has: a process confined to one node gains
    // nothing from binding.
    if (syscall(SYS_get_mempolicy, NULL, mask, (unsigned long)mask_bits + 1, NULL,
                (unsigned long)MPOL_F_MEMS_ALLOWED) == 0) {
        int n = 0;
        for (int i = 0; i < mask_words; i++) n += __builtin_popcountl(mask[i]);
        if (n > 0) count = n;
    }
    atomic_store_explicit(&memory_nodes_cached, count, memory_order_relaxed);
    return count;
}

int gt_numa_current_node(void) {
    unsigned cpu = 0, node = 0;
    if (syscall(SYS_getcpu, &cpu, &node, NULL) != 0) return -errno;
    return (int)node;
}

int gt_numa_pinned_node(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -errno;
    if (CPU_COUNT(&set) != 1) return -EINVAL;
    // One CPU allowed, so the thread runs on it now: its node is ours.
    return gt_numa_current_node();
}

int gt_numa_prefer(void *start, size_t length, int node, bool move) {
    if (node < 0 || node >= mask_bits) return -EINVAL;
    size_t page = gt_page_size();
    // Only the pages wholly inside the range: a page shared with memory
    // that belongs to someone else must not be moved on its behalf.
    uintptr_t lo = ((uintptr_t)start + page - 1) & ~(uintptr_t)(page - 1);
    uintptr_t hi = ((uintptr_t)start + length) & ~(uintptr_t)(page - 1);
    if (hi <= lo) return 0;
    unsigned long mask[mask_words];
    memset(mask, 0, sizeof mask);
    mask[node / (8 * sizeof(unsigned long))] = 1UL << (node % (8 * sizeof(unsigned long)));
    long r = syscall(SYS_mbind, (void *)lo, (unsigned long)(hi - lo), (unsigned long)MPOL_PREFERRED,
                     mask, (unsigned long)mask_bits + 1, move ? (unsigned)MPOL_MF_MOVE : 0u);
    return r == 0 ? 0 : -errno;
}

int gt_numa_node_of(const void *address) {
    size_t page = gt_page_size();
    void *pages[1] = { (void *)((uintptr_t)address & ~(uintptr_t)(page - 1)) };
    int status[1] = { -ENOENT };
    // nodes == NULL: move nothing, report where each page is (or -ENOENT
    // for a page never touched, -EFAULT on older kernels and outside any
    // mapping).
    if (syscall(SYS_move_pages, 0, 1UL, pages, NULL, status, 0) != 0) return -errno;
    return status[0];
}
