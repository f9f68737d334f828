// libnuma, opened at run time.
//
// The runtime asks libnuma four things (each CPU's node, the SLIT distance
// matrix, memory per node, whether the kernel has NUMA at all) once per
// process. How it reaches the library is the whole design here:
//
// - Linking libnuma (-lnuma, a DT_NEEDED entry) was rejected: on a machine
//   without libnuma.so.1 the dynamic loader refuses to start the program
//   before main runs, so every program built on GreenThreads would need a
//   NUMA library even on a laptop with one node. The topology is an
//   optimisation; its absence must cost one node and a note, never a start.
// - Reading sysfs only (/sys/devices/system/node) was rejected as the
//   production path: it duplicates what libnuma already parses and keeps
//   up to date (sparse node ids, the distance file's column order, cpuset
//   quirks), and the node-local memory code wants libnuma's view anyway.
//   The sysfs parser stays in Swift for test fixtures of real machines.
// - So numa.c is compiled against the real numa.h (the CNuma system-library
//   target), which checks every function-pointer type below against
//   libnuma's own prototypes, and resolves the functions with dlopen/dlsym.
//   A missing library, a missing symbol or numa_available() < 0 each give a
//   code the Swift reader turns into a one-node topology with a note.
//
// Loading happens once, under pthread_once, because dlopen runs libnuma's
// constructor (it reads sysfs) and every runtime of the process shares the
// answer. The handle is never closed: the function pointers stay valid for
// the life of the process.
#define _GNU_SOURCE
#include "CContext.h"
#include <dlfcn.h>
#include <numa.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>

struct numa_functions {
    __typeof__(numa_available) *available;
    __typeof__(numa_max_node) *max_node;
    __typeof__(numa_num_configured_cpus) *configured_cpus;
    __typeof__(numa_node_of_cpu) *node_of_cpu;
    __typeof__(numa_distance) *distance;
    __typeof__(numa_node_size64) *node_size64;
};

static struct numa_functions loaded;
static int load_status = GT_NUMA_NO_LIBRARY;
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

// Resolves every function of `f` from `handle` and asks numa_available().
static int resolve(void *handle, struct numa_functions *f) {
    f->available = (__typeof__(f->available))dlsym(handle, "numa_available");
    f->max_node = (__typeof__(f->max_node))dlsym(handle, "numa_max_node");
    f->configured_cpus = (__typeof__(f->configured_cpus))dlsym(handle, "numa_num_configured_cpus");
    f->node_of_cpu = (__typeof__(f->node_of_cpu))dlsym(handle, "numa_node_of_cpu");
    f->distance = (__typeof__(f->distance))dlsym(handle, "numa_distance");
    f->node_size64 = (__typeof__(f->node_size64))dlsym(handle, "numa_node_size64");
    if (!f->available || !f->max_node || !f->configured_cpus || !f->node_of_cpu
        || !f->distance || !f->node_size64)
        return GT_NUMA_NO_SYMBOL;
    return f->available() < 0 ? GT_NUMA_UNAVAILABLE : GT_NUMA_OK;
}

static void load(void) {
    void *handle = dlopen("libnuma.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!handle) { load_status = GT_NUMA_NO_LIBRARY; return; }
    load_status = resolve(handle, &loaded);
}

int gt_numa_load(void) {
    pthread_once(&load_once, load);
    return load_status;
}

int gt_numa_probe(const char *soname) {
    void *handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!handle) return GT_NUMA_NO_LIBRARY;
    struct numa_functions f;
    int status = resolve(handle, &f);
    dlclose(handle);
    return status;
}

int gt_numa_max_node(void) { return loaded.max_node(); }
int gt_numa_configured_cpus(void) { return loaded.configured_cpus(); }
int gt_numa_node_of_cpu(int cpu) { return loaded.node_of_cpu(cpu); }
int gt_numa_distance(int from, int to) { return loaded.distance(from, to); }
int64_t gt_numa_node_bytes(int node) { return (int64_t)loaded.node_size64(node, NULL); }

int gt_current_cpu(void) {
    int cpu = sched_getcpu();
    return cpu >= 0 ? cpu : -errno;
}
