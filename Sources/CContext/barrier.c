// Asymmetric memory barriers: a rare side pays for a StoreLoad fence on
// behalf of a hot side that issues none.
//
// Why: a worker's yield queue is touched by its owner on every switch with
// plain loads and stores. Sysmon takes it over from a worker stuck in one
// green thread, which is a Dekker handshake (each side stores, then loads
// the other's flag) and needs a full fence on both sides. membarrier(2)
// makes every running thread of the process execute one on the caller's
// behalf, so the owner's side needs only a compiler barrier
// (gt_compiler_barrier). Removable if the hand-over ever moves to a scheme
// with a fence on the owner's side.
#define _GNU_SOURCE
#include "CContext.h"
#include <errno.h>

#if defined(__linux__)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

int gt_membarrier_register(void) {
    // Idempotent: every runtime of the process may call it.
    if (syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) != 0) return -errno;
    return 0;
}

int gt_membarrier(void) {
    if (syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0) return -errno;
    return 0;
}
#else
int gt_membarrier_register(void) { return -ENOSYS; }
int gt_membarrier(void) { return -ENOSYS; }
#endif
