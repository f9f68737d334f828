// CContext: the machine-level half of GreenThreads.
//
// Everything here is either assembly (the register switch) or a thin shim
// over a Linux system call. Scheduling decisions live in Swift; this layer
// only moves stacks, allocates them and puts OS threads to sleep.
#ifndef GT_CCONTEXT_H
#define GT_CCONTEXT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: - Execution contexts

/// A suspended execution: the saved stack pointer plus Swift's per-thread
/// exclusivity state for the code running on that stack.
///
/// Contexts must live in stable raw memory (never a Swift class property),
/// because the switch writes `sp` through the pointer.
typedef struct gt_context {
    void *sp;                 // saved stack pointer; the frame below it holds the registers
    uintptr_t excl[2];        // Swift exclusivity access set, swapped at each switch
    void (*entry)(void *);    // body of a fresh context; never returns
    void *entry_arg;
    uint32_t managed;         // 1: a green stack we entered ourselves; 0: an OS thread's own stack
    uint32_t scheduled;       // 1: a green thread run by a worker's scheduler (not a coroutine)
    void *stack_base;         // lowest usable address (for sanitizer hooks and overflow reports)
    size_t stack_size;
} gt_context;

/// Prepares `ctx` to start `entry(arg)` on the stack [base, base+size).
/// The first transfer into `ctx` runs `entry`; `entry` must never return.
/// The context starts unscheduled (a coroutine); a worker's green thread
/// sets `scheduled` before its first run.
void gt_context_make(gt_context *ctx, void *base, size_t size,
                     void (*entry)(void *), void *arg);

/// Prepares `ctx` as an OS thread's own context (the scheduler loop or a
/// generator's caller): it is only ever saved into by a transfer.
void gt_context_init_base(gt_context *ctx);

/// Saves the current execution into `from` and resumes `to`.
/// Returns when something transfers back into `from`, possibly on another
/// OS thread. This is the one place every switch goes through, so the
/// exclusivity bracket (and, later, sanitizer fiber annotations) live here.
void gt_context_transfer(gt_context *from, gt_context *to);

// MARK: - Stacks

/// One green stack: a PROT_NONE guard page below `size` usable bytes.
typedef struct gt_stack {
    void *base;       // lowest usable byte (just above the guard page)
    size_t size;      // usable bytes
    void *mapping;    // start of the whole mapping (the guard page)
    size_t mapping_size;
} gt_stack;

/// Maps a lazily committed stack with a guard page. Returns 0 or an errno.
int gt_stack_alloc(size_t size, gt_stack *out);
/// Unmaps a stack.
void gt_stack_free(gt_stack *stack);
/// Returns a pooled stack's touched pages to the kernel (keeps the mapping).
void gt_stack_discard(gt_stack *stack);
/// The system page size.
size_t gt_page_size(void);

// MARK: - Thread parking (futex)

/// A one-waiter parking word: 0 = empty, 1 = notified, 2 = sleeping.
typedef struct gt_parker {
    _Atomic uint32_t state;
} gt_parker;

void gt_parker_init(gt_parker *p);
/// Sleeps until unparked or `timeout_ns` passes (< 0: no timeout).
/// Consumes a pending notification. Returns true if it was notified.
bool gt_parker_park(gt_parker *p, int64_t timeout_ns);
/// Wakes the parked thread, or makes its next park return at once.
void gt_parker_unpark(gt_parker *p);

// MARK: - Threads and time

/// Per-thread "current" slots, read out of line on purpose: an inlined
/// thread-local address would be reused after a green thread migrates.
void *gt_current_worker(void);
void gt_set_current_worker(void *worker);
void *gt_current_fiber(void);
void gt_set_current_fiber(void *fiber);

/// Starts a detached-joinable OS thread running fn(arg). Returns 0 or an errno.
int gt_thread_start(void (*fn)(void *), void *arg, uint64_t *handle_out);
/// Joins a thread started by gt_thread_start.
void gt_thread_join(uint64_t handle);
/// Joins with a timeout. Returns 0 when joined, ETIMEDOUT otherwise.
int gt_thread_join_timeout(uint64_t handle, int64_t timeout_ns);
/// Installs an alternate signal stack so a stack overflow on this thread
/// reaches a handler instead of killing the process silently.
int gt_thread_install_altstack(void);
/// Pins the calling thread to one CPU. Returns 0 or an errno.
int gt_thread_pin(int cpu);
/// Fills `cpus` (capacity `cap`) with the CPUs this process may run on;
/// returns how many.
int gt_available_cpus(int *cpus, int cap);
/// Monotonic clock in nanoseconds.
int64_t gt_now_ns(void);
/// A cheap per-thread seed for random victim selection.
uint64_t gt_random_seed(void);
/// Current resident set size in bytes (from /proc/self/statm).
size_t gt_resident_bytes(void);
/// Peak resident set size in bytes (getrusage).
size_t gt_peak_resident_bytes(void);
/// Writes one line to stderr without going through buffered stdio.
void gt_write_stderr(const char *line);
/// Relaxes the CPU inside a spin loop.
void gt_cpu_relax(void);

#ifdef __cplusplus
}
#endif

#endif
