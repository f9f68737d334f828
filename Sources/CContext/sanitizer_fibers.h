// Private to CContext: telling ThreadSanitizer and AddressSanitizer about
// green stacks. Every function here compiles to nothing unless the C layer
// itself is built with that sanitizer (`swift build --sanitize=thread` or
// `=address` passes -fsanitize to the C targets too), so the normal build's
// switch (context.c) is the same machine code with or without this file.
//
// ## The problem
//
// Both sanitizers keep per-thread state about the stack the thread runs
// on, and a stack switch they are not told about breaks it:
//
// - ThreadSanitizer keeps a shadow call stack and a vector clock per
//   thread. A green thread that parks on one worker and resumes on another
//   pops frames its new thread never pushed (the shadow stack underflows
//   into a crash: a SEGV in whatever function returns first) and carries
//   the clock of the wrong thread (bogus data races between a green
//   thread's own accesses before and after a migration).
// - AddressSanitizer checks an access against the bounds of "the current
//   stack" and poisons each frame's redzones on entry, unpoisoning them on
//   return. A green thread that ends never returns from its frames, so the
//   next green thread on that recycled stack finds stale redzones where its
//   own frames go (a bogus stack-buffer-overflow), and ASan's no-return
//   handling unpoisons the wrong range when it thinks the stack is the
//   thread's own.
//
// ## The pairs
//
// ThreadSanitizer models each execution context as a "fiber":
//   gt_context_make     -> __tsan_create_fiber (a managed context's own)
//   every transfer      -> __tsan_switch_to_fiber(to's fiber, 0) just before
//                          the raw switch; flag 0 makes the switch a
//                          release by the leaving fiber and an acquire by
//                          the resumed one, which is what the one OS thread
//                          running both sequentially guarantees
//   gt_context_destroy  -> __tsan_destroy_fiber, once nothing runs on it
// A context is not always left from its own stack: a green thread that
// parks inside a generator's body saves its context with the stack pointer
// on the generator's stack, and resumes there. So every switch records, in
// the context it leaves, the fiber actually running (__tsan_get_current_
// fiber), and that is the one a resume switches to. An OS thread's own
// context (managed == 0: a worker's scheduling loop, a coroutine's caller)
// has no fiber of its own and gets one only this way: the OS thread's, or,
// for a coroutine resumed from a green thread, that green thread's. A
// green thread's last switch is made from its own stack, so the fiber
// gt_context_destroy ends is the one gt_context_make created.
//
// AddressSanitizer wants each switch bracketed on both sides:
//   before the raw switch   __sanitizer_start_switch_fiber(&fake, to's
//                           stack bounds)
//   after landing           __sanitizer_finish_switch_fiber(fake, &bounds of
//                           the stack we came from)
// and a fresh context's first code calls the finish with no fake stack.
// A managed context's bounds are known from gt_context_make; an OS
// thread's own, or those of whichever stack a context was really left on
// (see above), are learnt on landing: the finish reports the bounds of the
// stack just left, which we store into the context just left (the OS thread
// publishes it in a thread-local just before the raw switch, and the
// landing code, on that same OS thread, reads it back). Recycled stacks are
// unpoisoned in gt_context_make, before the first frame is built on them.
// Known limit: a green thread or coroutine that ends never finishes its
// last switch, and its last start passes a save slot rather than NULL (the
// switch cannot tell a final transfer from any other), so under ASan's
// detect_stack_use_after_return (on by default on Linux) the fake stack of
// each ended green thread is not reclaimed: a few MiB of reserved address
// space each. Programs that end many green threads under ASan run with
// ASAN_OPTIONS=detect_stack_use_after_return=0, as scripts/sanitize.sh does.
//
// Cross-thread hand-offs (a green thread pushed on one worker's deque and
// stolen by another, injected, woken from a parked state) go through Swift
// atomics, which ThreadSanitizer instruments as such: the release/acquire
// pairs named in Fiber.swift, Deque.swift and Injector.swift are the edges
// it needs, so no __tsan_release/__tsan_acquire are added by hand. It does
// not model standalone fences, which is why the deque publishes `bottom`
// with release stores rather than a release fence (Deque.swift, "Push").
//
// gt_stack_save / gt_stack_restore (stack.c) copy a parked stack, redzones
// included, and so copy without ASan instrumentation.
//
// ## Rejected
//
// - Annotating from Swift: Swift has no compile-time condition for a
//   sanitizer build, so every annotation would be a call or a branch on the
//   normal build's switch. Here the C preprocessor removes them.
// - Keeping the TSan fiber in a side table keyed by context: a lock and a
//   lookup per switch, and a table that must follow compaction and reuse.
//   One pointer in gt_context (NULL in normal builds) goes wherever the
//   context goes, through compaction copies included.
#ifndef GT_SANITIZER_FIBERS_H
#define GT_SANITIZER_FIBERS_H

#include "CContext.h"

#if defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define GT_TSAN 1
#  endif
#  if __has_feature(address_sanitizer)
#    define GT_ASAN 1
#  endif
#endif
#if defined(__SANITIZE_THREAD__) && !defined(GT_TSAN)
#  define GT_TSAN 1
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(GT_ASAN)
#  define GT_ASAN 1
#endif
#if defined(GT_TSAN) || defined(GT_ASAN)
#  define GT_SANITIZE_FIBERS 1
#endif

#ifdef GT_TSAN
#include <sanitizer/tsan_interface.h>
#endif
#ifdef GT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#ifdef GT_SANITIZE_FIBERS

// The functions below are always inlined: ThreadSanitizer pushes a frame of
// its shadow call stack on function entry and pops one on exit, on whichever
// fiber is current then. A helper of its own that called
// __tsan_switch_to_fiber would push on the leaving fiber and pop on the
// resumed one: one frame lost per switch on one, gained on the other, until
// a shadow stack overflows. Inlined, the switch happens inside the transfer
// function, whose exit runs on the fiber that entered it (after the resumed
// side switched back).

/// What the leaving side keeps across the raw switch.
typedef struct gt_san_switch {
    void *fake_stack;  // ASan's fake-stack save slot for the leaving side
} gt_san_switch;

#ifdef GT_ASAN
// The context this OS thread is leaving, for the landing side to store the
// bounds of its stack into. Only touched through the two noinline functions
// below: an inlined thread-local address computed before a switch would be
// the old thread's after a migration.
extern _Thread_local gt_context *gt_san_leaving;
__attribute__((noinline)) void gt_san_set_leaving(gt_context *ctx);
__attribute__((noinline)) gt_context *gt_san_get_leaving(void);
#endif

/// A managed context was just made on [base, base+size).
static inline __attribute__((always_inline)) void gt_san_context_made(gt_context *ctx) {
#ifdef GT_ASAN
    // Frames of an earlier user of this stack that never returned (a green
    // thread that ended, a finished coroutine) left their redzones poisoned.
    __asan_unpoison_memory_region(ctx->stack_base, ctx->stack_size);
#endif
#ifdef GT_TSAN
    ctx->sanitizer_fiber = __tsan_create_fiber(0);
#endif
}

/// Nothing runs on `ctx` any more, and nothing will.
static inline __attribute__((always_inline)) void gt_san_context_destroyed(gt_context *ctx) {
#ifdef GT_TSAN
    if (ctx->managed && ctx->sanitizer_fiber) __tsan_destroy_fiber(ctx->sanitizer_fiber);
#endif
    ctx->sanitizer_fiber = NULL;
}

/// Last thing before the raw switch from `from` to `to`.
static inline __attribute__((always_inline)) void gt_san_before_switch(gt_context *from, gt_context *to, gt_san_switch *s) {
    (void)s;
#ifdef GT_ASAN
    gt_san_set_leaving(from);
    __sanitizer_start_switch_fiber(&s->fake_stack, to->stack_base, to->stack_size);
#endif
#ifdef GT_TSAN
    from->sanitizer_fiber = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(to->sanitizer_fiber, 0);
#endif
}

/// First thing after landing, on a stack that switched out before
/// (`s` is what its gt_san_before_switch filled), or on a fresh one (NULL).
static inline __attribute__((always_inline)) void gt_san_after_switch(gt_san_switch *s) {
    (void)s;
#ifdef GT_ASAN
    const void *bottom = NULL;
    size_t size = 0;
    __sanitizer_finish_switch_fiber(s ? s->fake_stack : NULL, &bottom, &size);
    gt_context *left = gt_san_get_leaving();
    if (left) {
        left->stack_base = (void *)bottom;
        left->stack_size = size;
    }
#endif
}

#endif  // GT_SANITIZE_FIBERS

#endif
