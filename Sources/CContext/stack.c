// Green stacks: lazily committed mappings with a guard page below.
//
// Stacks are carved from slabs: one mapping holds many stacks, each with
// a guard page installed by madvise(MADV_GUARD_INSTALL) (Linux 6.13+).
// Guard regions live in the page tables, not in the VMA tree, so a slab of
// 64 stacks is one kernel mapping instead of 128 (mmap + an mprotect that
// splits it), and a fresh stack costs one cheap madvise instead of two
// syscalls that rewrite the VMA tree: 0.47 µs instead of 7.2 µs measured on
// the project's VM. It also keeps a million stacks far below the default
// vm.max_map_count (65,530 mappings). Where guard regions do not work
// (older kernels, emulators), every stack gets its own mapping and a
// PROT_NONE page.
//
// A fresh slab gets all 64 guard pages at once: one process_madvise(2)
// with a vector of the 64 ranges (Linux 6.13+ takes any advice for the
// calling process, named by PIDFD_SELF_PROCESS from 6.15). A burst of new
// green threads maps a stack per thread: with a madvise each, mapping took
// 1.7 µs of CPU per stack in a cold `gt-bench parkmany` on a VM whose
// syscalls and page-table updates are slow (a fifth of such a thread's
// cost), and 0.9 µs with the batch, which does the same page-table work
// with one entry into the kernel instead of 64. It runs under `slab_lock`, so
// a worker after a stack waits for at most one batch (not longer than its
// own installs would have taken). Rejected: installing the batch outside
// the lock, which lets two workers that find the slab empty at once each
// map and guard a slab, one of them wasted, several times per burst. A
// kernel that refuses the vector leaves the slab unguarded, and each stack
// gets its own madvise when carved, as before.
#include "CContext.h"
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif
#ifndef PIDFD_SELF_PROCESS
#define PIDFD_SELF_PROCESS (-10001)
#endif

size_t gt_page_size(void) {
    static size_t cached;
    if (!cached) cached = (size_t)sysconf(_SC_PAGESIZE);
    return cached;
}

enum { slab_stacks = 64 };

// The slab being carved, one per memory node (index node + 1; index 0 for
// stacks with no node). A request for another stack size starts a new slab
// and unmaps the old one's uncarved tail; carved stacks are unmapped one by
// one when freed, so a slab disappears with its last stack. Stacks of one
// slab share its memory policy, so a node's stacks never come from another
// node's slab.
enum { slab_nodes = 64 };
static pthread_mutex_t slab_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slab {
    char *next;                 // next uncarved byte
    size_t left;                // stacks left to carve
    size_t stride;              // guard page + usable size
    bool guarded;               // every stack's guard installed already
} slabs[slab_nodes + 1];

// Set once the kernel refused a vector of guard installs (ENOSYS, EBADF,
// EINVAL, EPERM): every stack is guarded on its own from then on.
static _Atomic int guard_batch_unsupported = 0;

// Installs the guard page of each of the `slab_stacks` stacks of the slab at
// `m` in one call. False if the slab is left (wholly or partly) unguarded.
static bool guard_slab(char *m, size_t stride, size_t page) {
    if (atomic_load_explicit(&guard_batch_unsupported, memory_order_relaxed)) return false;
    struct iovec iov[slab_stacks];
    for (int i = 0; i < slab_stacks; i++) {
        iov[i].iov_base = m + (size_t)i * stride;
        iov[i].iov_len = page;
    }
    long r = syscall(SYS_process_madvise, PIDFD_SELF_PROCESS, iov, (size_t)slab_stacks,
                     MADV_GUARD_INSTALL, 0u);
    if (r < 0 && errno != EINTR && errno != EAGAIN && errno != ENOMEM)
        atomic_store_explicit(&guard_batch_unsupported, 1, memory_order_relaxed);
    // Partial: installing a guard again where one is does nothing, so the
    // per-stack path may safely redo them all.
    return r == (long)(page * slab_stacks);
}

static int map_single(size_t size, size_t page, int node, gt_stack *out) {
    size_t total = size + page;
    // MAP_NORESERVE: a million mostly idle stacks must not be charged
    // their full size against the commit limit; pages appear on first touch.
    void *m = mmap(NULL, total, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) return -errno;
    if (mprotect(m, page, PROT_NONE) != 0) {
        int e = errno;
        munmap(m, total);
        return -e;
    }
    // Before any page exists, so every page faults in on the node.
    if (node >= 0) (void)gt_numa_prefer(m, total, node, false);
    out->mapping = m;
    out->mapping_size = total;
    out->base = (char *)m + page;
    out->size = size;
    return 0;
}

// Whether guard regions work here, decided once with a probe page: the
// madvise must succeed and the kernel reading the page for write(2) must
// then fail with EFAULT. An emulator may accept MADV_GUARD_INSTALL as a
// mere hint and do nothing (qemu-user does), which would leave stacks
// unguarded; asking through write(2) needs no signal handler. Returns -1
// while undecidable (no fd for the pipe): ask again later.
static int guard_verdict = -1;  // under slab_lock

static int guards_work(size_t page) {
    if (guard_verdict >= 0) return guard_verdict;
    int fds[2];
    if (pipe(fds) != 0) return -1;
    char *m = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m != MAP_FAILED) {
        bool installed = madvise(m, page, MADV_GUARD_INSTALL) == 0;
        ssize_t n = installed ? write(fds[1], m, 1) : 0;
        guard_verdict = installed && n < 0 && errno == EFAULT;
        munmap(m, page);
    }
    close(fds[0]);
    close(fds[1]);
    return guard_verdict;
}

// Called with slab_lock held, guard regions known to work.
static int new_slab(struct slab *slab, size_t stride, int node) {
    if (slab->left > 0) munmap(slab->next, slab->left * slab->stride);
    slab->left = 0;
    size_t total = stride * slab_stacks;
    char *m = mmap(NULL, total, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) return -errno;
    // One stack must never be backed by a 2 MiB huge page: that would be
    // 2 MiB of RSS for a green thread that touched 4 KiB. (MAP_STACK
    // implies this on recent kernels; say it anyway.)
    (void)madvise(m, total, MADV_NOHUGEPAGE);
    // The policy is set while the slab has no pages: each page faults in
    // on the node, whoever touches it, now or after a discard. A failure
    // (no NUMA in the kernel) leaves first-touch placement.
    if (node >= 0) (void)gt_numa_prefer(m, total, node, false);
    slab->next = m;
    slab->left = slab_stacks;
    slab->stride = stride;
    slab->guarded = guard_slab(m, stride, gt_page_size());
    return 0;
}

int gt_stack_alloc(size_t size, gt_stack *out) {
    return gt_stack_alloc_on(size, -1, out);
}

int gt_stack_alloc_on(size_t size, int node, gt_stack *out) {
    size_t page = gt_page_size();
    size = (size + page - 1) & ~(page - 1);
    size_t stride = size + page;
    out->home = 0;
    pthread_mutex_lock(&slab_lock);
    // Past the slab table a node's stacks are mapped one by one: still on
    // their node, at two mappings each.
    if (guards_work(page) != 1 || node >= slab_nodes) {
        pthread_mutex_unlock(&slab_lock);
        return map_single(size, page, node, out);
    }
    struct slab *slab = &slabs[node < 0 ? 0 : node + 1];
    if (slab->left == 0 || slab->stride != stride) {
        int rc = new_slab(slab, stride, node);
        if (rc != 0) {
            pthread_mutex_unlock(&slab_lock);
            return rc;
        }
    }
    char *m = slab->next;
    slab->next += stride;
    slab->left -= 1;
    bool guarded = slab->guarded;
    pthread_mutex_unlock(&slab_lock);
    // Outside the lock: the stack is ours alone now.
    if (!guarded && madvise(m, page, MADV_GUARD_INSTALL) != 0) {
        int e = errno;
        munmap(m, stride);
        return -e;
    }
    out->mapping = m;
    out->mapping_size = stride;
    out->base = m + page;
    out->size = size;
    return 0;
}

bool gt_stack_uses_guard_regions(void) {
    pthread_mutex_lock(&slab_lock);
    bool slabs = guards_work(gt_page_size()) == 1;
    pthread_mutex_unlock(&slab_lock);
    return slabs;
}

int gt_stack_guards_batched(void) {
    return !atomic_load_explicit(&guard_batch_unsupported, memory_order_relaxed);
}

void gt_stack_guards_disable_batching(void) {
    atomic_store_explicit(&guard_batch_unsupported, 1, memory_order_relaxed);
}

void gt_stack_free(gt_stack *stack) {
    // Unmapping a slab's stack removes its guard region with it.
    if (stack->mapping) munmap(stack->mapping, stack->mapping_size);
    stack->mapping = NULL;
}

void gt_stack_discard(gt_stack *stack) {
    // MADV_DONTNEED keeps guard regions (they are not page contents).
    madvise(stack->base, stack->size, MADV_DONTNEED);
}

// MARK: - Compaction of parked stacks (see GreenThreads/Scheduler/Stacks/StackCompaction.swift)
//
// Under AddressSanitizer, gt_stack_save and gt_stack_restore read and write
// a *parked* stack whose frames carry poisoned redzones, and they are the
// only code that does. So they copy without instrumentation (a word loop
// the compiler may not turn into memcpy, which ASan intercepts and checks),
// and the shadow of the released pages is left as it is: the bytes come
// back at the same addresses, so the poisoning stays true.

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include "sanitizer_fibers.h"

#ifdef GT_ASAN
// Whole words: a parked stack's live part runs from its saved sp (16-byte
// aligned) to the top of its usable range (page-aligned).
__attribute__((no_sanitize("address"), noinline))
static void copy_stack_bytes(void *to, const void *from, size_t length) {
    uintptr_t *d = to;
    const uintptr_t *s = from;
    for (size_t i = 0; i < length / sizeof(uintptr_t); i++) {
        d[i] = s[i];
        __asm__ volatile("" ::: "memory");  // not a memcpy idiom
    }
}
#else
#define copy_stack_bytes memcpy
#endif

// A saved stack: its length, then its bytes (16-byte aligned, like a frame).
typedef struct gt_saved_stack {
    size_t length;
    size_t _pad;
    unsigned char bytes[];
} gt_saved_stack;

void *gt_stack_save(const void *from, size_t length) {
    gt_saved_stack *saved = malloc(sizeof(gt_saved_stack) + length);
    if (!saved) return NULL;
    saved->length = length;
    copy_stack_bytes(saved->bytes, from, length);
    return saved;
}

size_t gt_stack_saved_length(const void *saved) {
    return ((const gt_saved_stack *)saved)->length;
}

void gt_stack_restore(void *saved, void *top) {
    gt_saved_stack *s = saved;
    copy_stack_bytes((char *)top - s->length, s->bytes, s->length);
    free(s);
}

void gt_stack_saved_free(void *saved) {
    free(saved);
}

// process_madvise(2) on our own process takes every advice since Linux
// 6.13, and since 6.16 a batch of MADV_DONTNEED ranges costs one TLB flush
// instead of one per range. PIDFD_SELF_PROCESS (6.15) names the calling
// process without opening anything: no fd to leak or to carry across a
// fork. Older kernels refuse it, and we fall back to one madvise per stack.
// (SYS_process_madvise and PIDFD_SELF_PROCESS: defined at the top.)

static _Atomic int batch_unsupported = 0;

int gt_stacks_discard(const gt_stack *stacks, int count) {
    enum { max_batch = 64 };
    int done = 0;
    if (!atomic_load_explicit(&batch_unsupported, memory_order_relaxed)) {
        struct iovec iov[max_batch];
        while (done < count) {
            int n = count - done < max_batch ? count - done : max_batch;
            size_t total = 0;
            for (int i = 0; i < n; i++) {
                iov[i].iov_base = stacks[done + i].base;
                iov[i].iov_len = stacks[done + i].size;
                total += stacks[done + i].size;
            }
            long r = syscall(SYS_process_madvise, PIDFD_SELF_PROCESS, iov, (size_t)n, MADV_DONTNEED, 0u);
            if (r < 0) {
                // ENOSYS (before 5.10), EBADF (no PIDFD_SELF before 6.15),
                // EINVAL (advice refused before 6.13), EPERM (sandboxed):
                // one madvise per stack from now on.
                if (errno != EINTR && errno != EAGAIN)
                    atomic_store_explicit(&batch_unsupported, 1, memory_order_relaxed);
                break;
            }
            if ((size_t)r != total) break;  // partial: finish one by one below
            done += n;
        }
    }
    int err = 0;
    for (int i = done; i < count; i++) {
        if (madvise(stacks[i].base, stacks[i].size, MADV_DONTNEED) != 0) err = -errno;
    }
    return err;
}

int gt_stacks_discard_batched(void) {
    return !atomic_load_explicit(&batch_unsupported, memory_order_relaxed);
}

void gt_stacks_discard_disable_batching(void) {
    atomic_store_explicit(&batch_unsupported, 1, memory_order_relaxed);
}
