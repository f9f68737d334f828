// Stack overflow reports: a green thread that runs off the bottom of its
// stack stops the process with one line that names it.
//
// ## The problem
//
// A green stack is a fixed mapping with a guard page below it (stack.c).
// Deep recursion walks into the guard and the kernel sends SIGSEGV. Without
// a handler the process dies with "Segmentation fault" and nothing says
// which of a million green threads did it, nor that the fix is a bigger
// `Runtime.Configuration.stackSize`. And the thread cannot even run a
// handler on its own stack: the stack is what ran out.
//
// ## The design
//
// * Every switch records, in a thread-local of the OS thread it runs on,
//   the context being switched in: one store, on the path every scheduler
//   switch takes (gt_context_transfer_passing, context.c); the handler
//   ignores a context that is not a green stack (`managed` 0). A
//   scheduled green thread's context sits at the top of its own stack,
//   followed by its label (`gt_green_top`: the thread's id, its stack's
//   size, its name), written when the stack is bound.
// * A coroutine's caller context is unmanaged (it is whatever stack
//   resumed the coroutine), yet it may stand on a green stack: a generator
//   resumed by a green thread. So coroutine switches (gt_context_transfer
//   and gt_coroutine_resume/suspend, which the scheduler never uses: it
//   has gt_context_transfer_passing) also remember, in the caller
//   context's unused `entry_arg`, what was running when it was left, and
//   restore that when it is resumed.
// * `gt_overflow_install` puts one handler on SIGSEGV and SIGBUS, with
//   SA_ONSTACK: it runs on the OS thread's alternate signal stack, which
//   every thread started by gt_thread_start has its own of (thread.c). The
//   previous actions are saved first.
// * The handler reads the thread-local. If a green stack runs here and the
//   faulting address lies in its guard page (or the stack pointer itself
//   has left the stack, for a frame larger than the guard), it writes one
//   line with write(2) and aborts:
//       green thread #ID "NAME" overflowed its N-byte stack (...)
//   A coroutine's stack (managed, not scheduled) gets the same line with
//   "a coroutine" and the coroutine's stackSize.
// * Anything else is not ours: the previous handler runs as if we were not
//   there. A handler function (Swift's runtime backtracer on Linux installs
//   one for SIGSEGV and SIGBUS) is called with the same arguments; a
//   default or ignored action is restored and the fault recurs on return
//   (or, for a signal sent with kill, is raised again), so the process dies
//   by the original signal, with its core dump.
//
// ## Async-signal safety
//
// The handler calls only write(2), sigaction(2), raise(3) and abort(3), all
// async-signal-safe, and the previous handler (whose own business it is).
// It allocates nothing and takes no lock: the thread-local is initial-exec
// (a %fs-relative load, no __tls_get_addr and so no lazy allocation), the
// number formatting is done by hand into a buffer on the alternate stack,
// and the page size is read at install. The record it reads cannot be
// freed under it: a context named by the thread-local is one this thread is
// running on, so its stack (or, for a coroutine, its control block) is
// alive. The green thread's label is read from the top of the overflowed
// stack, far from the guard, in pages the thread has already touched. No
// Swift code runs in the handler.
//
// ## Rejected designs
//
// * Recognising the guard page from the fault address alone (a registry of
//   slabs and strides, no per-switch store). It finds the stack but not
//   which thread runs on it without reading the stack's top at a guessed
//   address, and stacks mapped one by one (no guard regions) would need a
//   second registry; one store per switch is cheaper than either to keep
//   right.
// * Storing the fiber (a Swift object) instead of the context: its fields
//   are laid out by Swift, which a C handler must not guess.
// * Restoring the previous action and returning, for every foreign fault.
//   It loses this handler for the rest of the process's life after the
//   first fault someone else handles and recovers from.
// * Growing the stack on overflow (Go's approach). Stacks here cannot move:
//   Swift code keeps pointers into its own frames.
//
// ## Limits
//
// A frame larger than the guard page whose first touch lands in the
// neighbouring stack of a slab is not a fault at all: that corruption is
// not detected (Go avoids it with stack checks in every prologue; Swift has
// none). A coroutine run on an OS thread without an alternate stack (one
// not started by this library) dies by SIGSEGV without the line: the kernel
// cannot run a handler on the exhausted stack. A generator body that parks
// its green thread resumes with the thread-local naming the green thread,
// not the generator: an overflow of that generator's stack from then until
// it next yields is a plain crash.
#define _GNU_SOURCE
#include "CContext.h"
#include "overflow.h"
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

_Thread_local const gt_context *gt_running_context __attribute__((tls_model("initial-exec")));

static struct sigaction previous_segv, previous_bus;
static size_t guard_bytes;
static atomic_int installed;

// MARK: - Formatting without stdio

typedef struct line_buffer {
    char bytes[256];
    size_t length;
} line_buffer;

static void put(line_buffer *b, const char *s) {
    while (*s && b->length < sizeof b->bytes) b->bytes[b->length++] = *s++;
}

static void put_bytes(line_buffer *b, const char *s, size_t n) {
    for (size_t i = 0; i < n && s[i] && b->length < sizeof b->bytes; i++) b->bytes[b->length++] = s[i];
}

static void put_u64(line_buffer *b, uint64_t v) {
    char digits[20];
    int n = 0;
    do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n > 0 && b->length < sizeof b->bytes) b->bytes[b->length++] = digits[--n];
}

static void write_all(const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(2, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

// MARK: - The handler

static uintptr_t fault_stack_pointer(void *uc) {
    const ucontext_t *u = uc;
#if defined(__x86_64__)
    return (uintptr_t)u->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    return (uintptr_t)u->uc_mcontext.sp;
#else
    (void)u;
    return UINTPTR_MAX;
#endif
}

// Whether the fault is the running green stack's overflow: the address is
// in its guard page, or below its base with the stack pointer below too (a
// frame larger than the guard skipped over it into unmapped memory).
static bool is_overflow(const gt_context *ctx, const siginfo_t *info, void *uc) {
    if (!ctx || !ctx->managed || !ctx->stack_base) return false;
    if (info->si_code <= 0) return false;  // sent by kill/tgkill: no fault address
    uintptr_t base = (uintptr_t)ctx->stack_base;
    uintptr_t addr = (uintptr_t)info->si_addr;
    if (addr >= base) return false;
    if (base - addr <= guard_bytes) return true;
    uintptr_t sp = fault_stack_pointer(uc);
    return sp < base && base - sp <= (1u << 20) && base - addr <= (1u << 20);
}

static void report(const gt_context *ctx) {
    line_buffer b = { .length = 0 };
    if (ctx->scheduled) {
        const gt_green_top *top = (const gt_green_top *)ctx;
        put(&b, "GreenThreads: green thread #");
        put_u64(&b, top->label.id);
        if (top->label.name[0]) {
            put(&b, " \"");
            put_bytes(&b, top->label.name, sizeof top->label.name);
            put(&b, "\"");
        }
        put(&b, " overflowed its ");
        put_u64(&b, top->label.stack_bytes);
        put(&b, "-byte stack; raise Runtime.Configuration.stackSize (every green thread of the runtime gets that many bytes, mapped lazily)\n");
    } else {
        put(&b, "GreenThreads: a coroutine overflowed its ");
        put_u64(&b, ctx->stack_size);
        put(&b, "-byte stack; raise the stackSize passed to its Generator, Coroutine or Greenlet\n");
    }
    write_all(b.bytes, b.length);
}

static void forward(int sig, siginfo_t *info, void *uc) {
    struct sigaction *old = sig == SIGBUS ? &previous_bus : &previous_segv;
    if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
        old->sa_sigaction(sig, info, uc);
        return;
    }
    if (!(old->sa_flags & SA_SIGINFO) && old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
        old->sa_handler(sig);
        return;
    }
    // The default action: put it back, and the faulting instruction, run
    // again on return, raises the signal anew and ends the process by it.
    sigaction(sig, old, NULL);
    if (info->si_code <= 0) raise(sig);  // sent, not a fault: will not recur by itself
}

static void on_fault(int sig, siginfo_t *info, void *uc) {
    int saved_errno = errno;
    const gt_context *ctx = gt_running_context;
    if (is_overflow(ctx, info, uc)) {
        report(ctx);
        abort();
    }
    forward(sig, info, uc);
    errno = saved_errno;
}

int gt_overflow_install(void) {
    int expected = 0;
    if (!atomic_compare_exchange_strong(&installed, &expected, 1)) return 0;
    guard_bytes = gt_page_size();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &previous_segv) != 0) {
        int e = errno;
        atomic_store(&installed, 0);
        return -e;
    }
    if (sigaction(SIGBUS, &sa, &previous_bus) != 0) {
        int e = errno;
        sigaction(SIGSEGV, &previous_segv, NULL);
        atomic_store(&installed, 0);
        return -e;
    }
    return 0;
}

void gt_stack_label_set_name(gt_stack_label *label, const char *name) {
    size_t cap = sizeof label->name - 1;
    size_t n = strnlen(name, cap + 1);
    if (n > cap) {
        n = cap;
        // Cut at a character boundary: never leave half a UTF-8 sequence.
        while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80) n--;
    }
    memcpy(label->name, name, n);
    label->name[n] = 0;
}
