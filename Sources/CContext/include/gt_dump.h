// The C half of the green-thread dump (GreenThreads/Runtime/Dump.swift has
// the design): a frame-pointer walk over a suspended context, a symbolizer
// that reads each image's ELF symbol table, a tick counter cheap enough to
// stamp every park, and the signal that asks for a dump.
#ifndef GT_DUMP_H
#define GT_DUMP_H

#include <stddef.h>
#include <stdint.h>

/// A monotonic tick count: the CPU's invariant time-stamp counter on
/// x86_64, the virtual counter on aarch64. One instruction, no system
/// call: cheap enough to stamp every park. `gt_ns_per_tick` converts.
static inline uint64_t gt_ticks(void) {
#if defined(__x86_64__)
    return __builtin_ia32_rdtsc();
#elif defined(__aarch64__)
    uint64_t v;
    __asm__ volatile("mrs %0, cntvct_el0" : "=r"(v));
    return v;
#else
#error "GreenThreads supports x86_64 and aarch64"
#endif
}

/// Records the first calibration point of `gt_ns_per_tick` (idempotent,
/// thread-safe). Called when a runtime starts, so that a dump finds a
/// long baseline and needs no calibration delay.
void gt_ticks_calibrate_start(void);

/// Nanoseconds per tick of `gt_ticks`, from the counter's frequency
/// (aarch64) or from two (ticks, monotonic ns) points (x86_64; sleeps a
/// few milliseconds when the baseline is younger than that).
double gt_ns_per_tick(void);

/// Return addresses of a suspended context's frames, innermost first:
/// the one gt_switch_raw saved, then each frame-pointer record, reading
/// only words inside [lo, hi). Stops at the first frame pointer outside
/// that range, not above the previous one, or misaligned, and after
/// `cap`. Returns how
/// many addresses were written to `pcs`. `context` is the suspended
/// `gt_context` (a `void *` here: this header comes before its type).
size_t gt_context_backtrace(const void *context, uintptr_t lo, uintptr_t hi, uintptr_t *pcs, size_t cap);

/// Names the function containing `address`, from the ELF symbol table of
/// the image that maps it (.symtab, else .dynsym), demangling Swift names
/// through the Swift runtime's `swift_demangle`. Writes the name into
/// `name` (NUL-terminated, truncated to `name_cap`), the image's file name
/// into `image` (`image_cap`), and the offset of `address` from the
/// function's start into `offset`. Returns 1 with a symbol, 0 with only
/// the image, -1 if no image maps `address`. Thread-safe; each image's
/// table is read once and kept.
int gt_symbolize(uintptr_t address, char *name, size_t name_cap, uintptr_t *offset,
                 char *image, size_t image_cap);

/// Starts listening for signal `signo` (dump_signal.c): returns a slot
/// for `gt_dump_signal_wait`, or -1 when all slots are taken or
/// sigaction fails. The first listener of a signal installs the handler
/// and keeps the previous action; the last one's stop restores it.
int gt_dump_signal_add(int signo);

/// Blocks the listener thread of `slot` until the signal arrives (returns
/// 1) or `gt_dump_signal_stop` is called (returns 0).
int gt_dump_signal_wait(int slot);

/// Stops listening: the slot's signal no longer wakes it, its waiter
/// returns 0. The slot stays reserved until `gt_dump_signal_release`.
void gt_dump_signal_stop(int slot);

/// Frees a stopped slot, once its listener thread has been joined.
void gt_dump_signal_release(int slot);

#endif /* GT_DUMP_H */
