// OS threads, thread-local "current" slots, CPU sets and the clock.
#define _GNU_SOURCE
#include "CContext.h"
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static _Thread_local void *tls_worker;
static _Thread_local void *tls_fiber;

// noinline keeps callers from caching the thread-local address: a green
// thread that migrates between two calls must see the new thread's slot.
__attribute__((noinline)) void *gt_current_worker(void) { return tls_worker; }
__attribute__((noinline)) void gt_set_current_worker(void *w) { tls_worker = w; }
__attribute__((noinline)) void *gt_current_fiber(void) { return tls_fiber; }
__attribute__((noinline)) void gt_set_current_fiber(void *f) { tls_fiber = f; }

static _Thread_local void *tls_scopes;

void *gt_current_scopes(void) { return tls_scopes; }
void gt_set_current_scopes(void *s) { tls_scopes = s; }

// A thread pinned by gt_worker_pin keeps the mask it had before: threads
// it starts (a blocking-pool thread started from a pinned worker) get that
// mask instead of inheriting the one CPU the kernel would hand down.
static _Thread_local bool tls_pinned;
static _Thread_local cpu_set_t tls_unpinned_mask;

struct start_args { void (*fn)(void *); void *arg; };

static void *thread_main(void *p) {
    struct start_args a = *(struct start_args *)p;
    free(p);
    gt_thread_install_altstack();
    a.fn(a.arg);
    return NULL;
}

int gt_thread_start(void (*fn)(void *), void *arg, uint64_t *handle_out) {
    struct start_args *a = malloc(sizeof *a);
    if (!a) return -ENOMEM;
    a->fn = fn;
    a->arg = arg;
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_t *attrp = NULL;
    if (tls_pinned && pthread_attr_init(&attr) == 0) {
        attrp = &attr;
        pthread_attr_setaffinity_np(&attr, sizeof tls_unpinned_mask, &tls_unpinned_mask);
    }
    int rc = pthread_create(&t, attrp, thread_main, a);
    if (attrp) pthread_attr_destroy(attrp);
    if (rc != 0) { free(a); return -rc; }
    *handle_out = (uint64_t)t;
    return 0;
}

bool gt_is_main_thread(void) { return gettid() == getpid(); }

void gt_thread_join(uint64_t handle) {
    pthread_join((pthread_t)handle, NULL);
}

int gt_thread_join_timeout(uint64_t handle, int64_t timeout_ns) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ns / 1000000000;
    ts.tv_nsec += timeout_ns % 1000000000;
    if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
    int rc = pthread_timedjoin_np((pthread_t)handle, NULL, &ts);
    // Not joined in time: nobody will join it later (shutdown leaves a
    // worker stuck in a green thread running), so detach it, or its stack
    // and descriptor would outlive it until the process exits (a thread
    // leak, as ThreadSanitizer reports it).
    if (rc == ETIMEDOUT) (void)pthread_detach((pthread_t)handle);
    return -rc;
}

int gt_thread_install_altstack(void) {
    stack_t current;
    if (sigaltstack(NULL, &current) == 0 && !(current.ss_flags & SS_DISABLE)) return 0;
    size_t size = 64 * 1024;
    stack_t ss = { .ss_sp = malloc(size), .ss_size = size, .ss_flags = 0 };
    if (!ss.ss_sp) return -ENOMEM;
    if (sigaltstack(&ss, NULL) != 0) { int e = errno; free(ss.ss_sp); return -e; }
    return 0;  // kept for the thread's lifetime, like the main thread's
}

void gt_thread_yield_cpu(void) { sched_yield(); }

int gt_thread_pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return -pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

int gt_worker_pin(int cpu) {
    cpu_set_t before;
    if (!tls_pinned && pthread_getaffinity_np(pthread_self(), sizeof before, &before) != 0)
        return gt_thread_pin(cpu);
    int rc = gt_thread_pin(cpu);
    if (rc == 0 && !tls_pinned) {
        tls_unpinned_mask = before;
        tls_pinned = true;
    }
    return rc;
}

int gt_thread_set_cpus(const int *cpus, int count) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < count; i++)
        if (cpus[i] >= 0 && cpus[i] < CPU_SETSIZE) CPU_SET(cpus[i], &set);
    return -pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static int list_cpus(const cpu_set_t *set, int *cpus, int cap) {
    int count = 0;
    for (int i = 0; i < CPU_SETSIZE && count < cap; i++)
        if (CPU_ISSET(i, set)) cpus[count++] = i;
    return count;
}

int gt_thread_cpus(int *cpus, int cap) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        int count = 0;
        for (int i = 0; i < n && count < cap; i++) cpus[count++] = i;
        return count;
    }
    return list_cpus(&set, cpus, cap);
}

int gt_available_cpus(int *cpus, int cap) {
    // A pinned worker answers for the process, not for its one CPU: a
    // runtime created from one of its green threads gets every CPU.
    if (tls_pinned) return list_cpus(&tls_unpinned_mask, cpus, cap);
    return gt_thread_cpus(cpus, cap);
}

int64_t gt_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint64_t gt_random_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)(uintptr_t)&ts << 17) ^ (uint64_t)pthread_self();
    return x ? x : 0x9E3779B97F4A7C15ull;
}

size_t gt_resident_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    return n == 2 ? resident * gt_page_size() : 0;
}

size_t gt_peak_resident_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (size_t)ru.ru_maxrss * 1024;
}

void gt_write_stderr(const char *line) {
    size_t len = strlen(line);
    while (len > 0) {
        ssize_t n = write(2, line, len);
        if (n <= 0) { if (errno == EINTR) continue; return; }
        line += n;
        len -= (size_t)n;
    }
}

void gt_cpu_relax(void) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}
