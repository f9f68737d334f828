// CContext: the machine-level half of GreenThreads.
//
// Everything here is either assembly (the register switch) or a thin shim
// over a Linux system call. Scheduling decisions live in Swift; this layer
// only moves stacks, allocates them and puts OS threads to sleep.
//
// Errors: a function that can fail returns 0 (or its non-negative result)
// on success and a negative errno on failure, never a positive one and
// never through errno itself. The value is read in C right after the
// failing call because errno lives in thread-local storage: a green thread
// that reads it from Swift may have migrated to another worker between the
// call and the read, and Swift may cache the thread-local address across
// that switch. gt_resolve alone adds a second range for getaddrinfo codes
// (GT_EAI_BASE). Functions that take an errno (gt_strerror) take it
// positive, as strerror does.
#ifndef GT_CCONTEXT_H
#define GT_CCONTEXT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "gt_numa.h"
#include "gt_dump.h"

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
    uintptr_t task_locals;    // task-local bindings taken along while suspended (0: none)
    void (*entry)(void *);    // body of a fresh context; never returns
    void *entry_arg;          // its argument; in an OS thread's own context, the green context it stood on (overflow.c)
    uint32_t managed;         // 1: a green stack we entered ourselves; 0: an OS thread's own stack
    uint32_t scheduled;       // 1: a green thread run by a worker's scheduler (not a coroutine)
    void *stack_base;         // lowest usable address (for sanitizer hooks and overflow reports)
    size_t stack_size;
    void *sanitizer_fiber;    // ThreadSanitizer's fiber; NULL unless built with it (sanitizer_fibers.h)
} gt_context;

/// Prepares `ctx` to start `entry(arg)` on the stack [base, base+size).
/// The first transfer into `ctx` runs `entry`; `entry` must never return.
/// The context starts unscheduled (a coroutine); a worker's green thread
/// sets `scheduled` before its first run.
void gt_context_make(gt_context *ctx, void *base, size_t size,
                     void (*entry)(void *), void *arg);

/// Ends the life of a context made by gt_context_make, once nothing runs on
/// it and nothing will resume it (its green thread or coroutine finished,
/// or never ran): before its stack is recycled or unmapped. Releases what a
/// sanitizer build keeps per context; does nothing otherwise.
void gt_context_destroy(gt_context *ctx);

/// Prepares `ctx` as an OS thread's own context (the scheduler loop or a
/// generator's caller): it is only ever saved into by a transfer.
void gt_context_init_base(gt_context *ctx);

/// Saves the current execution into `from` and resumes `to`.
/// Returns when something transfers back into `from`, possibly on another
/// OS thread. This is the one place every switch goes through, so the
/// exclusivity bracket and the sanitizer fiber annotations live here.
void gt_context_transfer(gt_context *from, gt_context *to);

/// `gt_context_transfer`, handing `data` to the resumed side: returns, once
/// `from` is resumed, the `data` its resumer passed (the scheduler passes
/// its worker, so a resumed green thread learns where it runs without a
/// thread-local read). Meaningless when the resumer used the two-argument
/// form, and never returned to a fresh context's entry function.
void *gt_context_transfer_passing(gt_context *from, gt_context *to, void *data);

/// Coroutine transfers: `gt_coroutine_start` switches from `caller` into a
/// fresh coroutine `body` (made by gt_context_make), `gt_coroutine_resume`
/// into a suspended one, `gt_coroutine_suspend` back to `caller`, for a
/// yield and for the body's final transfer alike. They carry what
/// `gt_context_transfer` carries (exclusivity access set, task-local
/// bindings, overflow labels, sanitizer fibers) but call the runtime's
/// exclusivity hooks only when an access is open on either side. A body
/// entered or resumed by these must only ever be left by
/// `gt_coroutine_suspend`, and a body left by it only be resumed by
/// `gt_coroutine_resume`: each side does the other's arriving work.
void gt_coroutine_start(gt_context *caller, gt_context *body);
void gt_coroutine_resume(gt_context *caller, gt_context *body);
void gt_coroutine_suspend(gt_context *body, gt_context *caller);

/// Finds where the calling OS thread keeps its exclusivity access set, so
/// that `gt_context_transfer` can skip the runtime's exit hook when a green
/// stack leaves with no access open. Call once per thread that switches
/// green stacks (workers do, at start). Returns false if the location could
/// not be established; switches then call the hook every time.
bool gt_exclusivity_attach_thread(void);

/// Whether the calling thread's access set holds an open access, as the
/// switch sees it (always true on a thread that is not attached). For tests.
bool gt_exclusivity_thread_has_accesses(void);

/// Finds where the calling OS thread keeps its task-local bindings, so that
/// `gt_context_transfer` carries them with the stack that made them (see
/// task_locals.c). Workers call it at start; any other thread attaches on
/// its first switch. Returns false if the location cannot be established:
/// switches then carry no bindings.
bool gt_task_locals_attach_thread(void);

/// Whether the calling thread holds task-local bindings, as the switch sees
/// them (always false on a thread that is not attached). For tests.
bool gt_task_locals_thread_has_bindings(void);

// MARK: - Stacks

/// One green stack: a guard page below `size` usable bytes.
typedef struct gt_stack {
    void *base;       // lowest usable byte (just above the guard page)
    size_t size;      // usable bytes
    void *mapping;    // the guard page: this stack's part of its mapping
    size_t mapping_size;
    int32_t home;     // the scheduler's node whose pool this stack returns to
} gt_stack;

/// Carves a lazily committed stack with a guard page from a shared slab
/// (or maps it alone where the kernel lacks guard regions). Thread-safe.
/// Returns 0 or a negative errno.
int gt_stack_alloc(size_t size, gt_stack *out);
/// gt_stack_alloc with the stack's pages preferring kernel memory node
/// `node` (mbind MPOL_PREFERRED on a slab of that node only); node < 0:
/// no policy, pages come from wherever they are first touched.
int gt_stack_alloc_on(size_t size, int node, gt_stack *out);
/// Whether stacks come from slabs with guard regions (64 stacks per kernel
/// mapping) rather than two mappings each.
bool gt_stack_uses_guard_regions(void);
/// Whether a fresh slab gets its 64 guard pages in one process_madvise
/// (1) rather than one madvise per stack as it is carved (0).
int gt_stack_guards_batched(void);
/// Guards every later stack with its own madvise (tests of that fallback).
void gt_stack_guards_disable_batching(void);
/// Unmaps a stack (its part of the slab).
void gt_stack_free(gt_stack *stack);
/// Returns a pooled stack's touched pages to the kernel (keeps the mapping).
void gt_stack_discard(gt_stack *stack);
/// The system page size.
size_t gt_page_size(void);

/// Returns the pages of `count` stacks to the kernel (MADV_DONTNEED over
/// each whole usable range; mappings and guard pages stay). One
/// process_madvise(2) per 64 stacks where the kernel accepts it for the
/// calling process, else one madvise each. Returns 0 or the last failing
/// madvise's negative errno.
int gt_stacks_discard(const gt_stack *stacks, int count);
/// 1 if gt_stacks_discard batches (process_madvise works here), else 0.
int gt_stacks_discard_batched(void);
/// Makes gt_stacks_discard use one madvise per stack from now on, as on a
/// kernel that refuses process_madvise (tests of the fallback).
void gt_stacks_discard_disable_batching(void);

/// Copies the `length` live bytes of a parked stack, [from, from+length),
/// into a new heap block; NULL if out of memory.
void *gt_stack_save(const void *from, size_t length);
/// The length a saved block holds.
size_t gt_stack_saved_length(const void *saved);
/// Copies a saved block back so that it ends at `top` (the address it was
/// saved from, plus its length), and frees it.
void gt_stack_restore(void *saved, void *top);
/// Frees a saved block without restoring it.
void gt_stack_saved_free(void *saved);

// MARK: - Stack overflow reports (overflow.c)

/// What the overflow report says about the green thread on a stack.
typedef struct gt_stack_label {
    uint64_t id;            // the green thread's id
    uint64_t stack_bytes;   // the stack's usable bytes (the configured stackSize, in whole pages)
    char name[48];          // NUL-terminated, truncated at a character boundary; empty: no name
} gt_stack_label;

/// The top of a scheduled green thread's stack: its context, then its
/// label. The overflow handler finds the label from the context the
/// thread runs on.
typedef struct gt_green_top {
    gt_context context;
    gt_stack_label label;
} gt_green_top;

/// Labels a freshly bound stack: its thread's id and size, no name yet (a
/// pooled stack still holds its previous thread's). Inline: three stores
/// on the spawn path.
static inline void gt_green_top_label(gt_green_top *top, uint64_t id, uint64_t stack_bytes) {
    top->label.id = id;
    top->label.stack_bytes = stack_bytes;
    top->label.name[0] = 0;
}

/// Installs the process's SIGSEGV and SIGBUS handler that reports a green
/// thread's stack overflow in one line on stderr and aborts, and passes
/// every other fault to the handler that was installed before it (or the
/// default action). Once per process; later calls do nothing. Returns 0 or
/// a negative errno.
int gt_overflow_install(void);
/// Copies `name` into `label` (truncated to fit, at a UTF-8 boundary).
void gt_stack_label_set_name(gt_stack_label *label, const char *name);

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
/// Consumes a pending notification without sleeping; true if there was one.
/// (The netpoller's blocker sleeps in epoll_wait, not on the futex.)
bool gt_parker_try(gt_parker *p);

// MARK: - NUMA memory (numa_memory.c): raw mbind, move_pages, get_mempolicy

/// How many memory nodes this process may allocate from (1 where the
/// kernel has no NUMA support). Asked once, then cached.
int gt_numa_memory_node_count(void);
/// The kernel memory node of the CPU the calling thread runs on now, or a
/// negative errno.
int gt_numa_current_node(void);
/// The memory node of the calling thread's CPU if the thread may run on one
/// CPU only (pinned); otherwise -EINVAL.
int gt_numa_pinned_node(void);
/// Makes the pages wholly inside [start, start+length) prefer memory node
/// `node` (mbind MPOL_PREFERRED); with `move`, pages already present move
/// there too (MPOL_MF_MOVE). Returns 0 or a negative errno.
int gt_numa_prefer(void *start, size_t length, int node, bool move);
/// The memory node holding the page of `address` (move_pages without
/// moving), or a negative errno: for a page never touched -ENOENT
/// (-EFAULT on older kernels).
int gt_numa_node_of(const void *address);

// MARK: - Threads and time

/// Per-thread "current" slots, read out of line on purpose: an inlined
/// thread-local address would be reused after a green thread migrates.
void *gt_current_worker(void);
void gt_set_current_worker(void *worker);
void *gt_current_fiber(void);
void gt_set_current_fiber(void *fiber);
/// A plain OS thread's active wait scopes (GreenThreads' Deadline.swift);
/// a green thread keeps its own in its fiber.
void *gt_current_scopes(void);
void gt_set_current_scopes(void *scopes);

/// Starts a joinable OS thread running fn(arg). Returns 0 or a negative errno.
int gt_thread_start(void (*fn)(void *), void *arg, uint64_t *handle_out);
/// Joins a thread started by gt_thread_start.
void gt_thread_join(uint64_t handle);
/// Joins with a timeout. Returns 0 when joined, -ETIMEDOUT otherwise.
int gt_thread_join_timeout(uint64_t handle, int64_t timeout_ns);
/// Whether the calling thread is the process's main thread (its id is the
/// process id).
bool gt_is_main_thread(void);
/// Installs an alternate signal stack so a stack overflow on this thread
/// reaches a handler instead of killing the process silently. Returns 0
/// (also when the thread already has one) or a negative errno.
int gt_thread_install_altstack(void);
/// Gives the calling thread's CPU to other runnable threads, if any
/// (sched_yield: cannot fail on Linux).
void gt_thread_yield_cpu(void);
/// Pins the calling thread to one CPU. Returns 0 or a negative errno.
int gt_thread_pin(int cpu);
/// Pins the calling worker thread to one CPU, like gt_thread_pin, but the
/// threads it starts afterwards (gt_thread_start) get the mask it had
/// before rather than its one CPU. Returns 0 or a negative errno.
int gt_worker_pin(int cpu);
/// Restricts the calling thread to `cpus` (what `taskset` does to a
/// process; threads it starts inherit the mask). Returns 0 or a negative
/// errno.
int gt_thread_set_cpus(const int *cpus, int count);
/// Fills `cpus` (capacity `cap`) with the CPUs this process may run on
/// (the calling thread's affinity mask; for a worker pinned by
/// gt_worker_pin, the mask it had before); returns how many.
int gt_available_cpus(int *cpus, int cap);
/// Fills `cpus` with the CPUs the calling thread may run on now, pinned or
/// not; returns how many.
int gt_thread_cpus(int *cpus, int cap);
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

// MARK: - Asymmetric barriers (barrier.c)

/// Registers the process for gt_membarrier. Returns 0 or a negative errno
/// (-ENOSYS, -EINVAL on kernels before 4.14 or where the call is filtered).
int gt_membarrier_register(void);
/// A full memory barrier executed by every running thread of the process
/// (membarrier PRIVATE_EXPEDITED). Returns 0 or a negative errno.
int gt_membarrier(void);
/// Keeps the compiler from moving memory accesses across this point, and
/// costs no instruction: the hot side of a gt_membarrier handshake.
static inline void gt_compiler_barrier(void) { __atomic_signal_fence(__ATOMIC_SEQ_CST); }

// MARK: - Netpoller (poll.c)

/// One readiness event: epoll's mask and the registration's 64-bit tag.
/// (epoll_event is packed on x86_64 only; Swift sees this portable copy.)
typedef struct gt_poll_event {
    uint32_t events;
    uint64_t data;
} gt_poll_event;

/// epoll and poll(2) bits, as Swift cannot import them from Glibc
/// (checked against the system headers in poll.c).
#define GT_EPOLLIN 0x001u
#define GT_EPOLLOUT 0x004u
#define GT_EPOLLERR 0x008u
#define GT_EPOLLHUP 0x010u
#define GT_EPOLLPRI 0x002u
#define GT_EPOLLRDHUP 0x2000u
#define GT_EPOLLET (1u << 31)
#define GT_POLLIN 0x001
#define GT_POLLOUT 0x004
#define GT_POLLNVAL 0x020
#define GT_POLLRDHUP 0x2000

/// How many events one netpoll asks for (Go's netpoll takes 128 too).
#define GT_POLL_BATCH 128

// Every call below returns its result, or a negative errno (see the top).
int gt_epoll_create(void);
int gt_epoll_add(int epfd, int fd, uint32_t events, uint64_t data);
int gt_epoll_del(int epfd, int fd);
/// Waits up to `timeout_ns` (< 0: forever, 0: just poll) for up to `max`
/// events, written to `out` (room for `max`). Returns the count.
int gt_epoll_wait(int epfd, gt_poll_event *out, int max, int64_t timeout_ns);
int gt_eventfd_create(void);
void gt_eventfd_signal(int fd);
void gt_eventfd_drain(int fd);
/// poll(2) on one fd, for plain OS threads (< 0 timeout: forever).
int gt_poll_one(int fd, int16_t events, int64_t timeout_ns, int16_t *revents);
int gt_close(int fd);
/// 1 if fd is open, 0 if not, or a negative errno.
int gt_fd_is_open(int fd);

// MARK: - Sockets (net.c)

/// Any socket address, with its length.
typedef struct gt_sockaddr {
    union {
        uint8_t bytes[128];
        uint64_t _align;
    } storage;
    uint32_t length;
} gt_sockaddr;

/// getaddrinfo failures come back as -(GT_EAI_BASE + |EAI code|).
#define GT_EAI_BASE 10000

int gt_socket(int family, int type);
int gt_setsockopt_int(int fd, int level, int name, int value);
/// SO_LINGER {on, 0}: close sends RST instead of FIN.
int gt_set_linger_zero(int fd);
/// The pending SO_ERROR as a negative errno (0 if none).
int gt_socket_error(int fd);
int gt_bind(int fd, const gt_sockaddr *addr);
int gt_listen(int fd, int backlog);
int gt_accept(int fd, gt_sockaddr *peer);
int gt_connect(int fd, const gt_sockaddr *addr);
int gt_local_address(int fd, gt_sockaddr *out);
int gt_peer_address(int fd, gt_sockaddr *out);
long gt_read(int fd, void *buf, size_t len);
/// send(MSG_NOSIGNAL) on sockets, write(2) on other fds.
long gt_write(int fd, const void *buf, size_t len);
long gt_sendto(int fd, const void *buf, size_t len, const gt_sockaddr *to);
long gt_recvfrom(int fd, void *buf, size_t len, gt_sockaddr *from);
int gt_shutdown(int fd, int how);
/// Parses a numeric IPv4 or IPv6 host ("::1" or "[::1]"); -EINVAL otherwise.
int gt_sockaddr_from_numeric(const char *host, int port, gt_sockaddr *out);
int gt_sockaddr_from_path(const char *path, gt_sockaddr *out);
int gt_sockaddr_family(const gt_sockaddr *addr);
/// The port of an IP address, -1 for other families.
int gt_sockaddr_port(const gt_sockaddr *addr);
/// The numeric host (or a Unix socket's path) into `out`.
int gt_sockaddr_host(const gt_sockaddr *addr, char *out, size_t cap);
/// getaddrinfo: up to `cap` addresses into `out`; returns how many.
int gt_resolve(const char *host, int port, int socktype, gt_sockaddr *out, int cap);
/// The message for a -(GT_EAI_BASE + n) code, given as its positive value.
const char *gt_resolve_error(int code);
const char *gt_strerror(int err, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
