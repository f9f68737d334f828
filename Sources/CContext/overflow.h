// Private to CContext: see overflow.c.
#ifndef GT_OVERFLOW_H
#define GT_OVERFLOW_H

#include "CContext.h"

/// The green stack context this OS thread runs on, or NULL on the thread's
/// own stack: what the overflow handler reads. Initial-exec, so the store
/// on the switch path is one %fs-relative move.
extern _Thread_local const gt_context *gt_running_context __attribute__((tls_model("initial-exec")));

/// Records the context about to be switched in (called on the thread that
/// will run it, before the switch).
static inline __attribute__((always_inline)) void gt_note_running(const gt_context *to) {
    gt_running_context = to->managed ? to : NULL;
}

#endif
