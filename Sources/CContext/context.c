// Creating contexts and the single switch path.
#include "CContext.h"
#include "exclusivity.h"
#include "overflow.h"
#include "switch_frame.h"
#include <string.h>

// Assembly, one file per ABI (switch_<arch>_<abi>_elf.S).
extern void *gt_switch_raw(void **save_sp, void *load_sp, void *data);
extern void gt_entry_trampoline(void);

// libswiftCore swaps a thread's exclusivity access set in and out with
// these; Swift concurrency calls them around every task switch. Without
// them an `inout` access that spans a migration is ended on the wrong
// thread's list and the runtime crashes in swift_endAccess.
extern void swift_task_enterThreadLocalContext(char *state) __attribute__((swiftcall));
extern void swift_task_exitThreadLocalContext(char *state) __attribute__((swiftcall));

// Where this OS thread's exclusivity access-set head lives, once
// gt_exclusivity_attach_thread found it; until then (or if it cannot be
// found) a word that always reads "accesses open", so every switch calls
// the runtime. Read only before the switch in gt_context_transfer, never
// after: a green stack may resume on another thread, whose slot differs.
static const uintptr_t always_open = 1;
// Initial-exec: one %fs-relative load, with no __tls_get_addr call (and
// no call frame) on the switch path even when built into a shared library.
static _Thread_local const uintptr_t *thread_access_head
    __attribute__((tls_model("initial-exec"))) = &always_open;

bool gt_exclusivity_attach_thread(void) {
    if (thread_access_head != &always_open) return true;
    uintptr_t *head = gt_exclusivity_find_head();
    if (head) thread_access_head = head;
    return head != NULL;
}

bool gt_exclusivity_thread_has_accesses(void) {
    return *thread_access_head != 0;
}

static void gt_context_bootstrap(void *arg) {
    gt_context *ctx = (gt_context *)arg;
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

// The switch of a green stack that must run the runtime's hooks: its
// thread holds an access (or it entered a set), or it is a coroutine.
__attribute__((noinline))
static void gt_context_transfer_bracketed(gt_context *from, gt_context *to) {
    if ((from->excl[0] | *thread_access_head) != 0)
        swift_task_exitThreadLocalContext((char *)from->excl);
    gt_switch_raw(&from->sp, to->sp, NULL);
    if (!from->scheduled || from->excl[0] != 0)
        swift_task_enterThreadLocalContext((char *)from->excl);
}

// The same, handing `data` over and returning the resumer's (a separate
// function so that coroutines, which pass nothing, keep nothing alive
// across the switch).
__attribute__((noinline))
static void *gt_context_transfer_bracketed_passing(gt_context *from, gt_context *to, void *data) {
    if ((from->excl[0] | *thread_access_head) != 0)
        swift_task_exitThreadLocalContext((char *)from->excl);
    void *resumer = gt_switch_raw(&from->sp, to->sp, data);
    if (!from->scheduled || from->excl[0] != 0)
        swift_task_enterThreadLocalContext((char *)from->excl);
    return resumer;
}

// Whether the switch of `from` must run the runtime's hooks.
static inline __attribute__((always_inline)) bool needs_hooks(const gt_context *from) {
    // A green stack takes its open accesses with it; an OS thread's own
    // stack (managed == 0) keeps them on the thread, underneath whatever
    // the green stack pushes. Sanitizer fiber annotations belong here too.
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
    return from->managed && (!from->scheduled || (from->excl[0] | *thread_access_head) != 0);
}

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
