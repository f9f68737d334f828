// Private to CContext: see task_locals.c.
#ifndef GT_TASK_LOCALS_H
#define GT_TASK_LOCALS_H

#include <stdint.h>

/// The address of the calling thread's task-local fallback slot inside
/// libswift_Concurrency, or NULL if it cannot be established with
/// certainty. Valid for the calling OS thread only, for its whole life.
uintptr_t *gt_task_locals_find_slot(void);

#endif
