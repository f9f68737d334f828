// Private to CContext: see overflow.c.
#ifndef GT_OVERFLOW_H
#define GT_OVERFLOW_H

#include "CContext.h"

/// The green stack context this OS thread runs on, or NULL on the thread's
/// own stack: what the overflow handler reads. Initial-exec, so the store
/// on the switch path is one %fs-relative move.
extern _Thread_local const gt_context *gt_running_context __attribute__((tls_model("initial-exec")));

/// Records the context about to be switched in by the scheduler (called on
/// the thread that will run it, before the switch). Unconditionally, one
/// store: the scheduler's own context (`managed` 0, which the handler
/// checks) lives in the worker's memory until after its thread has exited.
static inline __attribute__((always_inline)) void gt_note_running(const gt_context *to) {
    gt_running_context = to;
}

/// The same for a coroutine switch, whose caller's context is an unmanaged
/// one that may stand on a green stack (a generator resumed by a green
/// thread): leaving such a context remembers what ran on it in its unused
/// `entry_arg`, and returning to it restores that.
static inline __attribute__((always_inline)) void gt_note_running_coroutine(gt_context *from, const gt_context *to) {
    if (!from->managed) from->entry_arg = (void *)gt_running_context;
    gt_running_context = to->managed ? to : (const gt_context *)to->entry_arg;
}

#endif
