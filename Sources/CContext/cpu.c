// The CPU the calling thread runs on, for placing work that arrives from
// outside the runtime on that CPU's NUMA node (RuntimeCore.externalNode).
//
// Weak: a NUMA layer of this library that defines the same function (with
// the same contract) takes precedence, so the two never clash at link time.
#define _GNU_SOURCE
#include "CContext.h"
#include <sched.h>

__attribute__((weak)) int gt_current_cpu(void) {
    int cpu = sched_getcpu();
    return cpu < 0 ? -1 : cpu;
}
