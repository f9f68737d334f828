// Creating contexts and the single switch path.
#include "CContext.h"
#include "exclusivity.h"
#include "task_locals.h"
#include "sanitizer_fibers.h"
#include "overflow.h"
#include "switch_frame.h"
#include <string.h>

// Assembly, one file per ABI (switch_<arch>_<abi>_elf.S).
extern void *gt_switch_raw(void **save_sp, void *load_sp, void *data);
extern void gt_entry_trampoline(void);
// gt_switch_raw entering the other stack by an indirect jump, not a
// return (the coroutine transfers use it; see the .S file). Elsewhere the
// plain switch does the same job.
#if defined(__x86_64__)
extern void *gt_switch_raw_jump(void **save_sp, void *load_sp, void *data);
#else
#define gt_switch_raw_jump gt_switch_raw
#endif

// libswiftCore swaps a thread's exclusivity access set in and out with
// these; Swift concurrency calls them around every task switch. Without
// them an `inout` access that spans a migration is ended on the wrong
// thread's list and the runtime crashes in swift_endAccess.
extern void swift_task_enterThreadLocalContext(char *state) __attribute__((swiftcall));
extern void swift_task_exitThreadLocalContext(char *state) __attribute__((swiftcall));

// Where this OS thread's exclusivity access-set head lives, once
// gt_exclusivity_attach_thread found it; until then (or if it cannot be
// found) a word that always reads "accesses open", so every switch calls
// the runtime. Read only before a raw switch, never after: a green stack
// may resume on another thread, whose slot differs. Two such words, so
// that a coroutine resume can attach its thread on first use (untried_open)
// without searching again on every resume where the search failed
// (always_open).
static uintptr_t untried_open = 1;
static uintptr_t always_open = 1;
// Initial-exec: one %fs-relative load, with no __tls_get_addr call (and
// no call frame) on the switch path even when built into a shared library.
static _Thread_local const uintptr_t *thread_access_head
    __attribute__((tls_model("initial-exec"))) = &untried_open;

bool gt_exclusivity_attach_thread(void) {
    if (thread_access_head != &untried_open && thread_access_head != &always_open) return true;
    uintptr_t *head = gt_exclusivity_find_head();
    thread_access_head = head ? head : &always_open;
    return head != NULL;
}

bool gt_exclusivity_thread_has_accesses(void) {
    return *thread_access_head != 0;
}

// Where this OS thread keeps its task-local bindings (task_locals.c), once
// attached. Before the thread's first switch: a word that reads "bindings
// present", so that the switch takes the bracketed path, which attaches.
// If the slot cannot be found: a word that always reads "no bindings", so
// switches carry none. Neither word is ever written: a take needs a
// non-zero read and a restore an attached thread, and the untried word
// is replaced before anything is taken.
static uintptr_t untried_task_locals = 1;
static uintptr_t no_task_locals = 0;
static _Thread_local uintptr_t *thread_task_locals
    __attribute__((tls_model("initial-exec"))) = &untried_task_locals;

bool gt_task_locals_attach_thread(void) {
    if (thread_task_locals != &untried_task_locals) return thread_task_locals != &no_task_locals;
    uintptr_t *slot = gt_task_locals_find_slot();
    thread_task_locals = slot ? slot : &no_task_locals;
    return slot != NULL;
}

bool gt_task_locals_thread_has_bindings(void) {
    return thread_task_locals != &untried_task_locals && *thread_task_locals != 0;
}

// Puts a resumed stack's bindings back into the slot of the thread it now
// runs on. Out of line: the compiler may keep a thread-local's address in
// a register across the switch, and after it the thread may differ.
__attribute__((noinline))
static void gt_task_locals_restore(gt_context *ctx) {
    // Attach cannot fail here: the word was taken on an attached thread,
    // so the offset is known and only this thread's block is added to it.
    if (!gt_task_locals_attach_thread()) return;
    *thread_task_locals = ctx->task_locals;
    ctx->task_locals = 0;
}

static void gt_context_bootstrap(void *arg) {
    gt_context *ctx = (gt_context *)arg;
#ifdef GT_SANITIZE_FIBERS
    gt_san_after_switch(NULL);
#endif
    // A fresh scheduled thread has no accesses and lands on an empty worker
    // set (see gt_context_transfer): nothing to enter.
    if (!ctx->scheduled) swift_task_enterThreadLocalContext((char *)ctx->excl);
    ctx->entry(ctx->entry_arg);
    __builtin_trap();  // entry functions end by transferring away, never by returning
}

void gt_context_init_base(gt_context *ctx) {
    memset(ctx, 0, sizeof *ctx);
}

void gt_context_make(gt_context *ctx, void *base, size_t size,
                     void (*entry)(void *), void *arg) {
    memset(ctx, 0, sizeof *ctx);
    ctx->entry = entry;
    ctx->entry_arg = arg;
    ctx->managed = 1;
    ctx->stack_base = base;
    ctx->stack_size = size;
#ifdef GT_SANITIZE_FIBERS
    // Before the frame below is written: it may land on stale redzones.
    gt_san_context_made(ctx);
#endif

    // The frame the first gt_switch_raw into this context restores from
    // (switch_frame.h): zeroed callee-saved registers, default control
    // words, the trampoline as return address, and the function and
    // argument in the registers the trampoline reads them from.
    uintptr_t top = ((uintptr_t)base + size) & ~(uintptr_t)15;
    char *frame = (char *)(top - GT_FRAME_TOP_GAP - GT_FRAME_SIZE);
    memset(frame, 0, GT_FRAME_SIZE);
#if defined(__x86_64__)
    *(uint64_t *)(frame + GT_FRAME_X87CW) = GT_X87CW_DEFAULT;
    *(uint64_t *)(frame + GT_FRAME_MXCSR) = GT_MXCSR_DEFAULT;
#endif
    // aarch64's FPCR slot stays 0: round to nearest, no traps, the default.
    *(uint64_t *)(frame + GT_FRAME_ENTRY_ARG) = (uint64_t)(uintptr_t)ctx;
    *(uint64_t *)(frame + GT_FRAME_ENTRY_FN) = (uint64_t)(uintptr_t)gt_context_bootstrap;
    *(uint64_t *)(frame + GT_FRAME_ENTRY_PC) = (uint64_t)(uintptr_t)gt_entry_trampoline;
    ctx->sp = frame;
}

// A leaving stack takes its task-local bindings along and leaves the
// thread with none (read before the switch, on the thread it leaves).
static inline __attribute__((always_inline)) void take_task_locals(gt_context *from) {
    if (__builtin_expect(thread_task_locals == &untried_task_locals, 0))
        gt_task_locals_attach_thread();
    uintptr_t *slot = thread_task_locals;
    if (*slot != 0) {
        from->task_locals = *slot;
        *slot = 0;
    }
}

#ifndef GT_SANITIZE_FIBERS
// The switch of a stack that must run the runtime's hooks: its thread
// holds an access (or it entered a set), it is a coroutine, or it leaves
// with task-local bindings.
__attribute__((noinline))
static void gt_context_transfer_bracketed(gt_context *from, gt_context *to) {
    bool managed = from->managed;
    if (managed && (from->excl[0] | *thread_access_head) != 0)
        swift_task_exitThreadLocalContext((char *)from->excl);
    take_task_locals(from);
    gt_switch_raw(&from->sp, to->sp, NULL);
    if (managed && (!from->scheduled || from->excl[0] != 0))
        swift_task_enterThreadLocalContext((char *)from->excl);
    if (from->task_locals) gt_task_locals_restore(from);
}

// The same, handing `data` over and returning the resumer's (a separate
// function so that coroutines, which pass nothing, keep nothing alive
// across the switch).
__attribute__((noinline))
static void *gt_context_transfer_bracketed_passing(gt_context *from, gt_context *to, void *data) {
    bool managed = from->managed;
    if (managed && (from->excl[0] | *thread_access_head) != 0)
        swift_task_exitThreadLocalContext((char *)from->excl);
    take_task_locals(from);
    void *resumer = gt_switch_raw(&from->sp, to->sp, data);
    if (managed && (!from->scheduled || from->excl[0] != 0))
        swift_task_enterThreadLocalContext((char *)from->excl);
    if (from->task_locals) gt_task_locals_restore(from);
    return resumer;
}
#endif

void gt_context_destroy(gt_context *ctx) {
#ifdef GT_SANITIZE_FIBERS
    gt_san_context_destroyed(ctx);
#else
    (void)ctx;
#endif
}

// Whether the switch of `from` must run the runtime's hooks.
static inline __attribute__((always_inline)) bool needs_hooks(const gt_context *from) {
    // A green stack takes its open accesses with it; an OS thread's own
    // stack (managed == 0) keeps them on the thread, underneath whatever
    // the green stack pushes.
    //
    // Exit: with no set entered underneath (excl[0] == 0) and nothing open
    // on the thread, the exit hook would change nothing.
    // Enter: entering an empty set into a thread whose own set is empty
    // changes nothing, and a scheduled green thread always resumes on a
    // worker whose set is empty: the scheduling loop holds no access across
    // a switch, and every green stack took its accesses along when it left.
    // So the enter is needed only when this thread left with accesses open.
    // Coroutines are entered from arbitrary frames, whose open accesses the
    // enter must record, so they always enter.
    //
    // Both hooks are skipped for a scheduled green thread with nothing open
    // (the common case), and for an OS thread's own stack. Then the switch
    // is a tail call: the resumed stack returns straight to our caller, and
    // this function leaves no frame on the hot path.
    //
    // Task-local bindings (task_locals.c) leave with any stack that holds
    // some, an OS thread's own included. A thread that never attached
    // (a generator's caller on a plain thread) reads "bindings present"
    // and attaches in the bracketed path of its first switch, so that its
    // own bindings are taken along too.
    uintptr_t bindings = *thread_task_locals;
    if (!from->managed) return bindings != 0;
    return !from->scheduled || (from->excl[0] | *thread_access_head | bindings) != 0;
}

#ifdef GT_SANITIZE_FIBERS
// Under a sanitizer every switch, of any context, goes through here: the
// exclusivity bracket and the task-local hand-over exactly as above, and
// inside them the fiber annotations
// of sanitizer_fibers.h around the raw switch. Normal builds never compile
// it, so their switch above stays as it is.
__attribute__((noinline))
static void *gt_context_transfer_annotated(gt_context *from, gt_context *to, void *data) {
    bool hooks = needs_hooks(from) && from->managed;
    if (hooks && (from->excl[0] | *thread_access_head) != 0)
        swift_task_exitThreadLocalContext((char *)from->excl);
    take_task_locals(from);
    gt_san_switch s;
    gt_san_before_switch(from, to, &s);
    void *resumer = gt_switch_raw(&from->sp, to->sp, data);
    gt_san_after_switch(&s);
    if (hooks && (!from->scheduled || from->excl[0] != 0))
        swift_task_enterThreadLocalContext((char *)from->excl);
    if (from->task_locals) gt_task_locals_restore(from);
    return resumer;
}

#ifdef GT_ASAN
_Thread_local gt_context *gt_san_leaving;
void gt_san_set_leaving(gt_context *ctx) { gt_san_leaving = ctx; }
gt_context *gt_san_get_leaving(void) { return gt_san_leaving; }
#endif

void gt_context_transfer(gt_context *from, gt_context *to) {
    (void)gt_context_transfer_annotated(from, to, NULL);
}

void *gt_context_transfer_passing(gt_context *from, gt_context *to, void *data) {
    return gt_context_transfer_annotated(from, to, data);
}

void gt_coroutine_start(gt_context *caller, gt_context *body) {
    (void)gt_context_transfer_annotated(caller, body, NULL);
}

void gt_coroutine_resume(gt_context *caller, gt_context *body) {
    (void)gt_context_transfer_annotated(caller, body, NULL);
}

void gt_coroutine_suspend(gt_context *body, gt_context *caller) {
    (void)gt_context_transfer_annotated(body, caller, NULL);
}

#else

void gt_context_transfer(gt_context *from, gt_context *to) {
    gt_note_running_coroutine(from, to);
    if (needs_hooks(from)) {
        gt_context_transfer_bracketed(from, to);
        return;
    }
    gt_switch_raw(&from->sp, to->sp, NULL);
}

void *gt_context_transfer_passing(gt_context *from, gt_context *to, void *data) {
    gt_note_running(to);
    if (needs_hooks(from)) return gt_context_transfer_bracketed_passing(from, to, data);
    return gt_switch_raw(&from->sp, to->sp, data);
}

// The coroutine transfers (see CContext.h; the reasoning is in the header
// of CoroutineControl.swift). Each side does, before its switch and on the
// thread it leaves from, both its own leaving work and the other side's
// arriving work: the thread is the same on both sides of a switch, and the
// exclusivity hooks and the task-local slot are per thread, not per stack.
// So nothing runs after a switch, every transfer ends in a tail jump to
// it, and neither side ever executes a `ret` into the other's stack.
//
// Exclusivity, with the runtime's two trivial cases done inline:
// - Enter (on resume): changes nothing when the body's saved set is empty
//   (excl[0] == 0) and the thread's head is NULL: push cases 1-2.
// - Exit (on suspend): when the thread's head equals excl[0] (the head the
//   body was entered on, NULL if the caller held none), the body has no
//   access open (its own are pushed above that head, and the caller's
//   cannot end while it waits under the body), and the exit would only
//   clear excl: pop cases 1 and 3.
// Anything else calls the runtime. An unattached thread's head reads 1, so
// it always calls the runtime: slower, never wrong.
//
// Task-local bindings: the leaving side takes what the slot holds, and
// puts back what the arriving side took when it last left.
//
// The first transfer into a body is gt_coroutine_start: its enter is the
// bootstrap's (gt_context_bootstrap), which must not find one already done.

// A transfer whose arriving or leaving side has work to do, or whose thread
// has not been attached: the full hand-over, then the switch.
__attribute__((noinline))
static void gt_coroutine_resume_slow(gt_context *caller, gt_context *body) {
    if (thread_access_head == &untried_open) gt_exclusivity_attach_thread();
    take_task_locals(caller);
    if ((body->excl[0] | *thread_access_head) != 0)
        swift_task_enterThreadLocalContext((char *)body->excl);
    if (body->task_locals) gt_task_locals_restore(body);
    gt_switch_raw_jump(&caller->sp, body->sp, NULL);
}

// The caller's context is an OS thread's own (unmanaged), the body's a
// coroutine stack (managed): gt_note_running_coroutine, specialised.
static inline __attribute__((always_inline)) void note_entering(gt_context *caller, gt_context *body) {
    caller->entry_arg = (void *)gt_running_context;
    gt_running_context = body;
}

void gt_coroutine_start(gt_context *caller, gt_context *body) {
    note_entering(caller, body);
    if (thread_access_head == &untried_open) gt_exclusivity_attach_thread();
    take_task_locals(caller);
    gt_switch_raw_jump(&caller->sp, body->sp, NULL);
}

void gt_coroutine_resume(gt_context *caller, gt_context *body) {
    note_entering(caller, body);
    const uintptr_t *head = thread_access_head;
    if (__builtin_expect(head == &untried_open || *thread_task_locals != 0
                             || (*head | body->excl[0] | body->task_locals) != 0, 0)) {
        gt_coroutine_resume_slow(caller, body);
        return;
    }
    gt_switch_raw_jump(&caller->sp, body->sp, NULL);
}

__attribute__((noinline))
static void gt_coroutine_suspend_slow(gt_context *body, gt_context *caller) {
    if (*thread_access_head != body->excl[0])
        swift_task_exitThreadLocalContext((char *)body->excl);
    else
        body->excl[0] = 0;
    take_task_locals(body);
    if (caller->task_locals) gt_task_locals_restore(caller);
    gt_switch_raw_jump(&body->sp, caller->sp, NULL);
}

void gt_coroutine_suspend(gt_context *body, gt_context *caller) {
    gt_running_context = (const gt_context *)caller->entry_arg;
    if (__builtin_expect(*thread_access_head != body->excl[0] || *thread_task_locals != 0
                             || caller->task_locals != 0, 0)) {
        gt_coroutine_suspend_slow(body, caller);
        return;
    }
    body->excl[0] = 0;
    gt_switch_raw_jump(&body->sp, caller->sp, NULL);
}

#endif  // GT_SANITIZE_FIBERS
