// libnuma, resolved at run time (numa.c). Included by CContext.h.
#ifndef GT_NUMA_H
#define GT_NUMA_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Why libnuma cannot answer (gt_numa_load, gt_numa_probe).
enum {
    GT_NUMA_OK = 0,
    /// dlopen found no libnuma.so.1 (libnuma1 is not installed).
    GT_NUMA_NO_LIBRARY = -1,
    /// The library lacks a function the reader calls (not libnuma 2).
    GT_NUMA_NO_SYMBOL = -2,
    /// numa_available() < 0: the kernel has no NUMA support.
    GT_NUMA_UNAVAILABLE = -3,
};

/// Loads libnuma.so.1 once per process (thread-safe) and checks
/// numa_available(). Returns GT_NUMA_OK when the gt_numa_* queries below
/// answer, else the reason; the library stays loaded.
int gt_numa_load(void);
/// Loads `soname`, resolves the same functions and asks numa_available(),
/// then unloads it: the same checks as gt_numa_load without touching its
/// state, so that the fallback can be tested with a library name that
/// does not exist.
int gt_numa_probe(const char *soname);

/// sched_getcpu(): the CPU the calling thread runs on now, or a negative
/// errno. Needs no libnuma.
int gt_current_cpu(void);

// Valid only after gt_numa_load() returned GT_NUMA_OK.

/// numa_max_node(): the highest node id (ids may have gaps).
int gt_numa_max_node(void);
/// numa_num_configured_cpus(): CPUs the machine has, allowed or not.
int gt_numa_configured_cpus(void);
/// numa_node_of_cpu(): the node of `cpu`, or -1.
int gt_numa_node_of_cpu(int cpu);
/// numa_distance(): SLIT distance (10 = local), or 0 when unknown.
int gt_numa_distance(int from, int to);
/// numa_node_size64(): total memory of `node` in bytes, or -1 when the
/// node does not exist.
int64_t gt_numa_node_bytes(int node);

#ifdef __cplusplus
}
#endif

#endif
