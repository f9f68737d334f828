// A futex-backed parking word for OS threads (workers and plain threads
// blocked on a channel or a join).
#include "CContext.h"
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { EMPTY = 0, NOTIFIED = 1, SLEEPING = 2 };

static int futex_wait(_Atomic uint32_t *addr, uint32_t expected, const struct timespec *ts) {
    return (int)syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, expected, ts, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *addr, int n) {
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

void gt_parker_init(gt_parker *p) {
    atomic_init(&p->state, EMPTY);
}

bool gt_parker_park(gt_parker *p, int64_t timeout_ns) {
    // Fast path: a notification arrived before we got here.
    uint32_t expected = NOTIFIED;
    if (atomic_compare_exchange_strong_explicit(&p->state, &expected, EMPTY,
                                                memory_order_acquire, memory_order_relaxed))
        return true;
    expected = EMPTY;
    if (!atomic_compare_exchange_strong_explicit(&p->state, &expected, SLEEPING,
                                                 memory_order_acquire, memory_order_acquire)) {
        // Only a notification can have raced us: consume it.
        atomic_store_explicit(&p->state, EMPTY, memory_order_relaxed);
        return true;
    }
    int64_t deadline = timeout_ns >= 0 ? gt_now_ns() + timeout_ns : 0;
    for (;;) {
        struct timespec ts, *tsp = NULL;
        if (timeout_ns >= 0) {
            int64_t left = deadline - gt_now_ns();
            if (left <= 0) break;
            ts.tv_sec = left / 1000000000;
            ts.tv_nsec = left % 1000000000;
            tsp = &ts;
        }
        futex_wait(&p->state, SLEEPING, tsp);
        // Wake-ups can be spurious: only the NOTIFIED state ends the park.
        if (atomic_load_explicit(&p->state, memory_order_acquire) == NOTIFIED) {
            atomic_store_explicit(&p->state, EMPTY, memory_order_relaxed);
            return true;
        }
    }
    // Timed out: leave SLEEPING, unless a notification slipped in.
    expected = SLEEPING;
    if (atomic_compare_exchange_strong_explicit(&p->state, &expected, EMPTY,
                                                memory_order_acquire, memory_order_acquire))
        return false;
    atomic_store_explicit(&p->state, EMPTY, memory_order_relaxed);
    return true;
}

void gt_parker_unpark(gt_parker *p) {
    // Release: what the waker wrote before unparking is visible after park.
    if (atomic_exchange_explicit(&p->state, NOTIFIED, memory_order_release) == SLEEPING)
        futex_wake(&p->state, 1);
}

bool gt_parker_try(gt_parker *p) {
    uint32_t expected = NOTIFIED;
    return atomic_compare_exchange_strong_explicit(&p->state, &expected, EMPTY,
                                                   memory_order_acquire, memory_order_relaxed);
}
