// The signal that asks a runtime for its dump (Runtime.Configuration.dumpSignal).
//
// A signal handler may do almost nothing: no allocation, no lock, nothing
// that could be interrupted half-way in the thread it lands on (a worker
// holding a registry shard's lock, say). Building a dump does all of that.
// So the handler only flags and wakes: each listening runtime owns a slot
// of static memory holding a futex word, and a dedicated thread of that
// runtime sleeps on the word, builds the dump and writes it. An atomic
// store and a futex wake are async-signal-safe.
//
// Rejected: a pipe per runtime, written by the handler. A runtime that shut
// down closes it, and a handler still running on another thread could then
// write into whatever file reuses the descriptor; a static slot outlives
// every runtime.
//
// Coexistence: the first listener of a signal installs the handler and
// keeps the action that was there (Swift's crash backtracer takes SIGQUIT
// on Linux, for instance); the last one restores it. A signal that finds no
// listener (the last runtime between its stop and the restore) goes to that
// previous handler. A listening runtime does not forward to it otherwise:
// asking for this signal to mean "dump" is the point of the setting, and
// SIGQUIT's previous action would end the process.
#define _GNU_SOURCE
#include "CContext.h"
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { IDLE = 0, ASKED = 1, STOP = 2 };
enum { FREE = 0, TAKEN = -1 };  // a slot's `signal` word: a signal number when listening

#define GT_DUMP_LISTENERS 16
static struct {
    int signal;             // (__atomic builtins only) FREE, TAKEN (stopped, not yet released) or the signal listened to
    uint32_t word;          // IDLE, ASKED or STOP: the listener's futex word
} slots[GT_DUMP_LISTENERS];

// Per signal: how many slots listen, and the action before the first.
// Written under signal_lock; `previous` is read by the handler only while
// no slot listens (after the last stop wrote it, before sigaction restored it).
static int listeners_of[NSIG];
static struct sigaction previous[NSIG];
static pthread_mutex_t signal_lock = PTHREAD_MUTEX_INITIALIZER;

static void wake(uint32_t *word, uint32_t value) {
    __atomic_store_n(word, value, __ATOMIC_RELEASE);
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void handler(int signo, siginfo_t *info, void *context) {
    int saved_errno = errno;
    bool heard = false;
    for (int i = 0; i < GT_DUMP_LISTENERS; i++) {
        if (__atomic_load_n(&slots[i].signal, __ATOMIC_ACQUIRE) != signo) continue;
        // Never overwrite STOP: the listener is leaving.
        uint32_t idle = IDLE;
        __atomic_compare_exchange_n(&slots[i].word, &idle, ASKED, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
        syscall(SYS_futex, &slots[i].word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
        heard = true;
    }
    if (!heard) {
        struct sigaction *old = &previous[signo];
        if (old->sa_flags & SA_SIGINFO) {
            if (old->sa_sigaction) old->sa_sigaction(signo, info, context);
        } else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
            old->sa_handler(signo);
        }
    }
    errno = saved_errno;
}

int gt_dump_signal_add(int signo) {
    if (signo <= 0 || signo >= NSIG) return -1;
    pthread_mutex_lock(&signal_lock);
    int slot = -1;
    for (int i = 0; i < GT_DUMP_LISTENERS && slot < 0; i++) {
        if (__atomic_load_n(&slots[i].signal, __ATOMIC_RELAXED) == FREE) slot = i;
    }
    if (slot >= 0 && listeners_of[signo] == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = handler;
        // SA_ONSTACK: the signal may land on a worker running a green
        // thread near the end of its stack.
        sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
        sigfillset(&sa.sa_mask);
        if (sigaction(signo, &sa, &previous[signo]) != 0) slot = -1;
    }
    if (slot >= 0) {
        listeners_of[signo]++;
        __atomic_store_n(&slots[slot].word, IDLE, __ATOMIC_RELAXED);
        __atomic_store_n(&slots[slot].signal, signo, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&signal_lock);
    return slot;
}

int gt_dump_signal_wait(int slot) {
    for (;;) {
        uint32_t w = __atomic_load_n(&slots[slot].word, __ATOMIC_ACQUIRE);
        if (w == STOP) return 0;
        if (w == ASKED) {
            uint32_t asked = ASKED;
            // Back to IDLE first, so a signal during the dump asks again.
            if (__atomic_compare_exchange_n(&slots[slot].word, &asked, IDLE, false,
                                            __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return 1;
            continue;
        }
        syscall(SYS_futex, &slots[slot].word, FUTEX_WAIT_PRIVATE, IDLE, NULL, NULL, 0);
    }
}

void gt_dump_signal_stop(int slot) {
    pthread_mutex_lock(&signal_lock);
    int signo = __atomic_load_n(&slots[slot].signal, __ATOMIC_RELAXED);
    if (signo > 0) {
        // TAKEN, not FREE: the slot may not be reused while its listener
        // could still be reading its word.
        __atomic_store_n(&slots[slot].signal, TAKEN, __ATOMIC_RELEASE);
        if (--listeners_of[signo] == 0) sigaction(signo, &previous[signo], NULL);
    }
    pthread_mutex_unlock(&signal_lock);
    wake(&slots[slot].word, STOP);
}

void gt_dump_signal_release(int slot) {
    __atomic_store_n(&slots[slot].signal, FREE, __ATOMIC_RELEASE);
}
