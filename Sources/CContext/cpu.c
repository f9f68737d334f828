// The CPU the calling thread runs on, for placing work from outside the
// runtime on that CPU's NUMA node.
#define _GNU_SOURCE
#include "gt_cpu.h"
#include <sched.h>

int gt_current_cpu(void) {
    int cpu = sched_getcpu();
    return cpu < 0 ? -1 : cpu;
}
