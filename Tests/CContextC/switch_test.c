// Plain C test of the CContext context switch (no Swift involved).
//
// Builds from Sources/CContext/{context.c,exclusivity.c,stack.c,switch_<arch>_*.S} plus this
// file; scripts/check-switch.sh compiles it natively (x86_64) and for aarch64
// (run under qemu-user). Not a SwiftPM target: SwiftPM ignores this directory.
//
//   switch_test [--no-fork] [--list] [test-name ...]
//
// Each test case runs in its own forked child (so a crash in one case is
// reported as that case failing and the others still run). Output:
//   PASS <arch> <name>
//   FAIL <arch> <name>: <reason>
//   SUMMARY <arch> passed=N failed=M
// Exit status is non-zero when any case failed.
#define _GNU_SOURCE
#include "CContext.h"

#include <errno.h>
#include <fenv.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__clang__)
#pragma STDC FENV_ACCESS ON
#endif

#if defined(__x86_64__)
#define ARCH "x86_64"
#elif defined(__aarch64__)
#define ARCH "aarch64"
#else
#error "switch_test supports x86_64 and aarch64"
#endif

// ---------------------------------------------------------------------------
// Minimal test harness

static const char *g_test = "?";
static int g_failures;

__attribute__((format(printf, 4, 5)))
static void fail_at(const char *file, int line, const char *cond, const char *fmt, ...) {
    g_failures++;
    if (g_failures > 12) return;  // a broken switch in a 1M loop must not flood the log
    fprintf(stderr, "  FAIL %s %s: %s:%d: check `%s` failed: ", ARCH, g_test, file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (g_failures == 12) fprintf(stderr, "  (further failures of %s not printed)\n", g_test);
}

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) fail_at(__FILE__, __LINE__, #cond, __VA_ARGS__);      \
    } while (0)

// ---------------------------------------------------------------------------
// Stubs for the Swift runtime hooks context.c calls.
//
// context.c declares them __attribute__((swiftcall)). clang honours that, so
// the definitions must use the same convention; gcc ignores the attribute
// (-Wattributes) and then both sides are plain C. For a single pointer
// argument and void result the two conventions agree on x86_64 and aarch64
// anyway (rdi / x0, same callee-saved set).
#if defined(__clang__)
#define GT_SWIFTCC __attribute__((swiftcall))
#else
#define GT_SWIFTCC
#endif

// The exclusivity state currently "entered" on this (emulated) thread:
// NULL while an unmanaged (base) context runs, ctx->excl while a managed one does.
static char *volatile stub_current;
static volatile unsigned long stub_enters, stub_exits;

GT_SWIFTCC void swift_task_enterThreadLocalContext(char *state);
GT_SWIFTCC void swift_task_exitThreadLocalContext(char *state);

GT_SWIFTCC void swift_task_enterThreadLocalContext(char *state) {
    stub_enters++;
    CHECK(state != NULL, "enterThreadLocalContext(NULL)");
    CHECK(stub_current == NULL, "enter(%p) while %p is still entered (unbalanced enter/exit)",
          (void *)state, (void *)stub_current);
    stub_current = state;
}

GT_SWIFTCC void swift_task_exitThreadLocalContext(char *state) {
    stub_exits++;
    CHECK(stub_current == state, "exit(%p) but the entered state is %p (unbalanced enter/exit)",
          (void *)state, (void *)stub_current);
    stub_current = NULL;
}

// Checks the stubs saw exactly `enters`/`exits` calls since the snapshot.
#define CHECK_STUB_COUNTS(e0, x0, enters, exits)                                       \
    do {                                                                               \
        unsigned long de_ = stub_enters - (e0), dx_ = stub_exits - (x0);               \
        CHECK(de_ == (unsigned long)(enters), "expected %lu enter calls, saw %lu",     \
              (unsigned long)(enters), de_);                                           \
        CHECK(dx_ == (unsigned long)(exits), "expected %lu exit calls, saw %lu",       \
              (unsigned long)(exits), dx_);                                            \
    } while (0)

// ---------------------------------------------------------------------------
// Helpers

static gt_context main_ctx;  // the test's base (unmanaged) context

typedef struct green {
    gt_context ctx;
    gt_stack stack;
} green;

static void green_make(green *g, size_t size, void (*entry)(void *), void *arg) {
    memset(g, 0, sizeof *g);
    int e = gt_stack_alloc(size, &g->stack);
    if (e != 0) {
        fprintf(stderr, "gt_stack_alloc(%zu) failed: %s\n", size, strerror(-e));
        exit(2);
    }
    gt_context_make(&g->ctx, g->stack.base, g->stack.size, entry, arg);
}

static void green_free(green *g) { gt_stack_free(&g->stack); }

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static pid_t my_tid(void) { return (pid_t)syscall(SYS_gettid); }

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// ---------------------------------------------------------------------------
// Register probe: loads every callee-saved register with a caller-chosen
// pattern, calls gt_context_transfer(from, to), and stores what the
// callee-saved registers hold after the transfer returns.
//
//   void probe_transfer(gt_context *from, gt_context *to,
//                       const uint64_t *in, uint64_t *out);
//
// x86_64  in/out: rbx rbp r12 r13 r14 r15                      (6 words)
// aarch64 in/out: x19..x28, x29, d8..d15 (raw 64-bit patterns) (19 words)
#if defined(__x86_64__)
#define PROBE_WORDS 6
static const char *const probe_names[PROBE_WORDS] = {"rbx", "rbp", "r12", "r13", "r14", "r15"};
__asm__(
    "    .text\n"
    "    .globl probe_transfer\n"
    "    .hidden probe_transfer\n"
    "    .type probe_transfer, @function\n"
    "    .p2align 4\n"
    "probe_transfer:\n"
    "    pushq %rbp\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    pushq %rcx\n"              /* out; 7 pushes leave rsp 16-aligned for the call */
    "    movq 0(%rdx), %rbx\n"
    "    movq 8(%rdx), %rbp\n"
    "    movq 16(%rdx), %r12\n"
    "    movq 24(%rdx), %r13\n"
    "    movq 32(%rdx), %r14\n"
    "    movq 40(%rdx), %r15\n"
    "    call gt_context_transfer@PLT\n"
    "    popq %rcx\n"
    "    movq %rbx, 0(%rcx)\n"
    "    movq %rbp, 8(%rcx)\n"
    "    movq %r12, 16(%rcx)\n"
    "    movq %r13, 24(%rcx)\n"
    "    movq %r14, 32(%rcx)\n"
    "    movq %r15, 40(%rcx)\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    popq %rbp\n"
    "    ret\n"
    "    .size probe_transfer, .-probe_transfer\n");
#elif defined(__aarch64__)
#define PROBE_WORDS 19
static const char *const probe_names[PROBE_WORDS] = {
    "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28", "x29",
    "d8",  "d9",  "d10", "d11", "d12", "d13", "d14", "d15"};
__asm__(
    "    .text\n"
    "    .globl probe_transfer\n"
    "    .hidden probe_transfer\n"
    "    .type probe_transfer, %function\n"
    "    .p2align 4\n"
    "probe_transfer:\n"
    "    stp x29, x30, [sp, #-176]!\n"
    "    stp x19, x20, [sp, #16]\n"
    "    stp x21, x22, [sp, #32]\n"
    "    stp x23, x24, [sp, #48]\n"
    "    stp x25, x26, [sp, #64]\n"
    "    stp x27, x28, [sp, #80]\n"
    "    stp d8,  d9,  [sp, #96]\n"
    "    stp d10, d11, [sp, #112]\n"
    "    stp d12, d13, [sp, #128]\n"
    "    stp d14, d15, [sp, #144]\n"
    "    str x3, [sp, #160]\n"
    "    ldp x19, x20, [x2, #0]\n"
    "    ldp x21, x22, [x2, #16]\n"
    "    ldp x23, x24, [x2, #32]\n"
    "    ldp x25, x26, [x2, #48]\n"
    "    ldp x27, x28, [x2, #64]\n"
    "    ldr x29, [x2, #80]\n"
    "    ldp d8,  d9,  [x2, #88]\n"
    "    ldp d10, d11, [x2, #104]\n"
    "    ldp d12, d13, [x2, #120]\n"
    "    ldp d14, d15, [x2, #136]\n"
    "    bl gt_context_transfer\n"
    "    ldr x3, [sp, #160]\n"
    "    stp x19, x20, [x3, #0]\n"
    "    stp x21, x22, [x3, #16]\n"
    "    stp x23, x24, [x3, #32]\n"
    "    stp x25, x26, [x3, #48]\n"
    "    stp x27, x28, [x3, #64]\n"
    "    str x29, [x3, #80]\n"
    "    stp d8,  d9,  [x3, #88]\n"
    "    stp d10, d11, [x3, #104]\n"
    "    stp d12, d13, [x3, #120]\n"
    "    stp d14, d15, [x3, #136]\n"
    "    ldp x19, x20, [sp, #16]\n"
    "    ldp x21, x22, [sp, #32]\n"
    "    ldp x23, x24, [sp, #48]\n"
    "    ldp x25, x26, [sp, #64]\n"
    "    ldp x27, x28, [sp, #80]\n"
    "    ldp d8,  d9,  [sp, #96]\n"
    "    ldp d10, d11, [sp, #112]\n"
    "    ldp d12, d13, [sp, #128]\n"
    "    ldp d14, d15, [sp, #144]\n"
    "    ldp x29, x30, [sp], #176\n"
    "    ret\n"
    "    .size probe_transfer, .-probe_transfer\n");
#endif

void probe_transfer(gt_context *from, gt_context *to, const uint64_t *in, uint64_t *out);

static void probe_fill(uint64_t *in, uint64_t seed) {
    for (int i = 0; i < PROBE_WORDS; i++) in[i] = splitmix64(seed * 64 + (uint64_t)i);
}

// Transfers with every callee-saved register loaded, and checks they all
// come back intact. Returns the number of corrupted registers.
static int probe_checked(gt_context *from, gt_context *to, uint64_t seed, const char *side) {
    uint64_t in[PROBE_WORDS], out[PROBE_WORDS];
    probe_fill(in, seed);
    memset(out, 0xA5, sizeof out);
    probe_transfer(from, to, in, out);
    int bad = 0;
    for (int i = 0; i < PROBE_WORDS; i++) {
        if (in[i] != out[i]) bad++;
        CHECK(in[i] == out[i], "%s: callee-saved %s was 0x%016" PRIx64 " before the switch, 0x%016" PRIx64
              " after switching away and back (seed %" PRIu64 ")",
              side, probe_names[i], in[i], out[i], seed);
    }
    return bad;
}

// ---------------------------------------------------------------------------
// FP control helpers

#if defined(__x86_64__)
// x87 control word in the low 16 bits, MXCSR control bits (status flags masked) above.
static uint64_t fpctl_read(void) {
    uint16_t cw;
    uint32_t mxcsr;
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    return (uint64_t)cw | ((uint64_t)(mxcsr & ~0x3Fu) << 16);
}
// Sets MXCSR FTZ (bit 15) + DAZ (bit 6) and x87 precision control = double (PC=10b).
static void fpctl_set_exotic(void) {
    uint16_t cw;
    uint32_t mxcsr;
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    cw = (uint16_t)((cw & ~0x0300u) | 0x0200u);
    __asm__ volatile("fldcw %0" : : "m"(cw));
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    mxcsr |= (1u << 15) | (1u << 6);
    __asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));
}
#define FPCTL_NAME "x87 CW | MXCSR<<16"
#elif defined(__aarch64__)
static uint64_t fpctl_read(void) {
    uint64_t v;
    __asm__ volatile("mrs %0, fpcr" : "=r"(v));
    return v;
}
// Sets FPCR.FZ (bit 24) and FPCR.DN (bit 25).
static void fpctl_set_exotic(void) {
    uint64_t v = fpctl_read() | (1ull << 24) | (1ull << 25);
    __asm__ volatile("msr fpcr, %0" : : "r"(v));
}
#define FPCTL_NAME "FPCR"
#endif

static double fp_div(double a, double b) {
    volatile double x = a, y = b;
    return x / y;
}
static uint64_t dbits(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}
// Bit patterns of 1/3 and 1/10 under the default rounding (computed at start-up).
static uint64_t third_nearest, tenth_nearest;

static const char *round_name(int r) {
    switch (r) {
    case FE_TONEAREST: return "FE_TONEAREST";
    case FE_UPWARD: return "FE_UPWARD";
    case FE_DOWNWARD: return "FE_DOWNWARD";
    case FE_TOWARDZERO: return "FE_TOWARDZERO";
    default: return "unknown";
    }
}

// ===========================================================================
// Test 1: ping-pong 1,000,000 times between main and one green context.

#define PINGPONG_N 1000000L
static green pp_g;
static volatile long pp_main_count, pp_green_count;

static void pingpong_entry(void *arg) {
    CHECK(arg == (void *)&pp_g, "entry argument is %p, expected %p", arg, (void *)&pp_g);
    for (long i = 0;; i++) {
        CHECK(stub_current == (char *)pp_g.ctx.excl,
              "green iteration %ld: entered exclusivity state is %p, expected the green's %p",
              i, (void *)stub_current, (void *)pp_g.ctx.excl);
        CHECK(pp_main_count == i + 1, "green iteration %ld: main counter is %ld, expected %ld",
              i, pp_main_count, i + 1);
        CHECK(pp_green_count == i, "green iteration %ld: own counter is %ld, expected %ld",
              i, pp_green_count, i);
        pp_green_count = i + 1;
        gt_context_transfer(&pp_g.ctx, &main_ctx);
    }
}

static void test_pingpong(void) {
    green_make(&pp_g, 256 * 1024, pingpong_entry, &pp_g);
    unsigned long e0 = stub_enters, x0 = stub_exits;
    int64_t t0 = now_ns();
    for (long i = 0; i < PINGPONG_N; i++) {
        pp_main_count = i + 1;
        gt_context_transfer(&main_ctx, &pp_g.ctx);
        CHECK(pp_green_count == i + 1, "main iteration %ld: green counter is %ld, expected %ld",
              i, pp_green_count, i + 1);
        CHECK(stub_current == NULL, "main iteration %ld: a green exclusivity state %p is still entered",
              i, (void *)stub_current);
        if (g_failures > 12) break;
    }
    int64_t dt = now_ns() - t0;
    CHECK(pp_green_count == PINGPONG_N, "green ran %ld times, expected %ld", pp_green_count, PINGPONG_N);
    // One enter (bootstrap / resume) and one exit per round trip: main is unmanaged.
    CHECK_STUB_COUNTS(e0, x0, PINGPONG_N, PINGPONG_N);
    printf("  info %s pingpong: %ld round trips, %.1f ns per switch\n", ARCH, PINGPONG_N,
           (double)dt / (2.0 * (double)PINGPONG_N));
    green_free(&pp_g);
}

// ===========================================================================
// Test 2: callee-saved registers survive a switch.
//   (a) exact: every callee-saved GPR / FP register is loaded with a pattern
//       on both sides and compared after each transfer (probe_transfer);
//   (b) compiler-driven: a computation keeps many int and double values live
//       across the transfer; the result must match a run without a switch.

#define REGS_ROUNDS 2000
static green regs_g;
static volatile int regs_mode;  // 0: probe, 1: live values

#if defined(__x86_64__)
#define FPR_CONSTRAINT "+x"
#else
#define FPR_CONSTRAINT "+w"
#endif
#define OPAQUE_I(v) __asm__ volatile("" : "+r"(v))
#define OPAQUE_D(v) __asm__ volatile("" : FPR_CONSTRAINT(v))

static uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// 12 integers and 10 doubles stay live across the (optional) transfer: more
// than the callee-saved registers of either ABI, so some are also spilled.
__attribute__((noinline)) static void live_values(gt_context *from, gt_context *to, uint64_t seed,
                                                  uint64_t *ires, double *dres) {
    uint64_t a = splitmix64(seed + 1), b = splitmix64(seed + 2), c = splitmix64(seed + 3),
             d = splitmix64(seed + 4), e = splitmix64(seed + 5), f = splitmix64(seed + 6),
             g = splitmix64(seed + 7), h = splitmix64(seed + 8), i = splitmix64(seed + 9),
             j = splitmix64(seed + 10), k = splitmix64(seed + 11), l = splitmix64(seed + 12);
    double d0 = (double)(a >> 11) * 0x1p-53 + 0.5, d1 = (double)(b >> 11) * 0x1p-50 - 3.0,
           d2 = (double)(c >> 11) * 0x1p-40, d3 = (double)(d >> 11) * 0x1p-60 + 7.25,
           d4 = (double)(e >> 11) * -0x1p-45, d5 = (double)(f >> 11) * 0x1p-30,
           d6 = (double)(g >> 11) * 0x1p-55 - 1.0, d7 = (double)(h >> 11) * 0x1p-52,
           d8 = (double)(i >> 11) * 0x1p-48 + 100.0, d9 = (double)(j >> 11) * -0x1p-51;
    OPAQUE_I(a); OPAQUE_I(b); OPAQUE_I(c); OPAQUE_I(d); OPAQUE_I(e); OPAQUE_I(f);
    OPAQUE_I(g); OPAQUE_I(h); OPAQUE_I(i); OPAQUE_I(j); OPAQUE_I(k); OPAQUE_I(l);
    OPAQUE_D(d0); OPAQUE_D(d1); OPAQUE_D(d2); OPAQUE_D(d3); OPAQUE_D(d4);
    OPAQUE_D(d5); OPAQUE_D(d6); OPAQUE_D(d7); OPAQUE_D(d8); OPAQUE_D(d9);
    if (from) gt_context_transfer(from, to);
    OPAQUE_I(a); OPAQUE_I(b); OPAQUE_I(c); OPAQUE_I(d); OPAQUE_I(e); OPAQUE_I(f);
    OPAQUE_I(g); OPAQUE_I(h); OPAQUE_I(i); OPAQUE_I(j); OPAQUE_I(k); OPAQUE_I(l);
    OPAQUE_D(d0); OPAQUE_D(d1); OPAQUE_D(d2); OPAQUE_D(d3); OPAQUE_D(d4);
    OPAQUE_D(d5); OPAQUE_D(d6); OPAQUE_D(d7); OPAQUE_D(d8); OPAQUE_D(d9);
    *ires = a ^ rotl64(b, 1) ^ rotl64(c, 2) ^ rotl64(d, 3) ^ rotl64(e, 4) ^ rotl64(f, 5) ^
            rotl64(g, 6) ^ rotl64(h, 7) ^ rotl64(i, 8) ^ rotl64(j, 9) ^ rotl64(k, 10) ^ rotl64(l, 11);
    *dres = d0 + 2 * d1 + 3 * d2 + 5 * d3 + 7 * d4 + 11 * d5 + 13 * d6 + 17 * d7 + 19 * d8 + 23 * d9;
}

static void live_values_checked(gt_context *from, gt_context *to, uint64_t seed, const char *side) {
    uint64_t iref, igot;
    double dref, dgot;
    live_values(NULL, NULL, seed, &iref, &dref);
    live_values(from, to, seed, &igot, &dgot);
    CHECK(iref == igot, "%s: integer values live across the switch combine to 0x%016" PRIx64
          ", expected 0x%016" PRIx64 " (seed %" PRIu64 ")", side, igot, iref, seed);
    CHECK(dbits(dref) == dbits(dgot), "%s: double values live across the switch combine to %a, expected %a"
          " (seed %" PRIu64 ")", side, dgot, dref, seed);
}

static void regs_entry(void *arg) {
    (void)arg;
    for (uint64_t round = 0;; round++) {
        // Different patterns from main's, so a register leaking between
        // contexts (instead of being saved/restored) is caught.
        if (regs_mode == 0)
            probe_checked(&regs_g.ctx, &main_ctx, 0x100000 + round, "green side");
        else
            live_values_checked(&regs_g.ctx, &main_ctx, 0x200000 + round, "green side");
    }
}

static void test_callee_saved(void) {
    green_make(&regs_g, 256 * 1024, regs_entry, NULL);
    unsigned long e0 = stub_enters, x0 = stub_exits;
    regs_mode = 0;
    for (uint64_t r = 0; r < REGS_ROUNDS && g_failures == 0; r++)
        probe_checked(&main_ctx, &regs_g.ctx, r, "main side");
    regs_mode = 1;
    for (uint64_t r = 0; r < REGS_ROUNDS && g_failures == 0; r++)
        live_values_checked(&main_ctx, &regs_g.ctx, 0x300000 + r, "main side");
    if (g_failures == 0) CHECK_STUB_COUNTS(e0, x0, 2 * REGS_ROUNDS, 2 * REGS_ROUNDS);
    CHECK(stub_current == NULL, "main: exclusivity state %p still entered", (void *)stub_current);
    green_free(&regs_g);
}

// ===========================================================================
// Test 3: FP control state (rounding mode and more) belongs to each context.

static green fp_g, fp_fresh;
static volatile int fp_step;
static uint64_t fp_main_ctl_default;

static void fp_entry(void *arg) {
    (void)arg;
    // Step 1: a fresh context starts in the default environment.
    CHECK(fegetround() == FE_TONEAREST, "green (fresh): rounding mode is %s, expected FE_TONEAREST",
          round_name(fegetround()));
    CHECK(fpctl_read() == fp_main_ctl_default, "green (fresh): " FPCTL_NAME " is 0x%" PRIx64
          ", expected the default 0x%" PRIx64, fpctl_read(), fp_main_ctl_default);
    CHECK(fesetround(FE_UPWARD) == 0, "fesetround(FE_UPWARD) failed");
    fpctl_set_exotic();
    uint64_t mine = fpctl_read();
    CHECK(fegetround() == FE_UPWARD, "green: fesetround(FE_UPWARD) did not stick (%s)",
          round_name(fegetround()));
    CHECK(dbits(fp_div(1, 3)) == third_nearest + 1, "green: 1/3 under FE_UPWARD is %a, expected one ulp above the nearest 0x%016" PRIx64,
          fp_div(1, 3), third_nearest);
    fp_step = 1;
    gt_context_transfer(&fp_g.ctx, &main_ctx);

    // Step 2: main has meanwhile switched to FE_DOWNWARD; ours must be unchanged.
    CHECK(fegetround() == FE_UPWARD, "green after switching back: rounding mode is %s, expected FE_UPWARD",
          round_name(fegetround()));
    CHECK(fpctl_read() == mine, "green after switching back: " FPCTL_NAME " is 0x%" PRIx64 ", expected 0x%" PRIx64,
          fpctl_read(), mine);
    CHECK(dbits(fp_div(1, 3)) == third_nearest + 1, "green after switching back: 1/3 is not rounded upward");
    fp_step = 2;
    gt_context_transfer(&fp_g.ctx, &main_ctx);
    for (;;) gt_context_transfer(&fp_g.ctx, &main_ctx);
}

static void fp_fresh_entry(void *arg) {
    (void)arg;
    CHECK(fegetround() == FE_TONEAREST,
          "context created while main runs FE_DOWNWARD: starts with %s, expected FE_TONEAREST",
          round_name(fegetround()));
    CHECK(dbits(fp_div(1, 10)) == tenth_nearest, "fresh context: 1/10 is not rounded to nearest");
    for (;;) gt_context_transfer(&fp_fresh.ctx, &main_ctx);
}

static void test_fp_control(void) {
    CHECK(fegetround() == FE_TONEAREST, "main: starts with %s", round_name(fegetround()));
    fp_main_ctl_default = fpctl_read();
    green_make(&fp_g, 256 * 1024, fp_entry, NULL);

    gt_context_transfer(&main_ctx, &fp_g.ctx);
    CHECK(fp_step == 1, "green did not reach step 1 (step %d)", fp_step);
    CHECK(fegetround() == FE_TONEAREST, "main after the green set FE_UPWARD: rounding mode is %s, expected FE_TONEAREST",
          round_name(fegetround()));
    CHECK(fpctl_read() == fp_main_ctl_default, "main after the green changed its FP control: " FPCTL_NAME
          " is 0x%" PRIx64 ", expected 0x%" PRIx64, fpctl_read(), fp_main_ctl_default);
    CHECK(dbits(fp_div(1, 3)) == third_nearest, "main: 1/3 is %a, not rounded to nearest", fp_div(1, 3));

    CHECK(fesetround(FE_DOWNWARD) == 0, "fesetround(FE_DOWNWARD) failed");
    uint64_t main_down = fpctl_read();
    CHECK(dbits(fp_div(1, 10)) == tenth_nearest - 1, "main: 1/10 under FE_DOWNWARD is not one ulp below nearest");
    gt_context_transfer(&main_ctx, &fp_g.ctx);
    CHECK(fp_step == 2, "green did not reach step 2 (step %d)", fp_step);
    CHECK(fegetround() == FE_DOWNWARD, "main after switching back: rounding mode is %s, expected FE_DOWNWARD",
          round_name(fegetround()));
    CHECK(fpctl_read() == main_down, "main after switching back: " FPCTL_NAME " is 0x%" PRIx64 ", expected 0x%" PRIx64,
          fpctl_read(), main_down);

    // A context made while main runs FE_DOWNWARD still starts from the default.
    green_make(&fp_fresh, 64 * 1024, fp_fresh_entry, NULL);
    gt_context_transfer(&main_ctx, &fp_fresh.ctx);
    CHECK(fegetround() == FE_DOWNWARD, "main after the fresh context ran: %s, expected FE_DOWNWARD",
          round_name(fegetround()));

    fesetround(FE_TONEAREST);
    CHECK(fpctl_read() == fp_main_ctl_default, "main: restoring FE_TONEAREST did not restore the default control");
    green_free(&fp_g);
    green_free(&fp_fresh);
}

// ===========================================================================
// Test 4: stack alignment inside green contexts; long double / varargs calls.

static green al_g;
static gt_context al_odd_ctx;
static void *al_lo, *al_hi;  // the stack range the current alignment check expects
static volatile int al_done;

static long double vsum(int n, ...) {
    va_list ap;
    va_start(ap, n);
    long double s = 0;
    for (int i = 0; i < n; i++) {
        if (i % 2 == 0) s += va_arg(ap, long double);
        else s += va_arg(ap, double);
    }
    va_end(ap);
    return s;
}

__attribute__((noinline)) static void check_alignment_here(const char *where) {
    alignas(16) volatile unsigned char buf[16];
    buf[0] = 1;
    uintptr_t fa = (uintptr_t)__builtin_frame_address(0);
    CHECK(fa % 16 == 0, "%s: frame address %#lx is not 16-byte aligned", where, (unsigned long)fa);
    CHECK(((uintptr_t)buf & 15) == 0, "%s: alignas(16) local at %p is not 16-byte aligned", where, (void *)buf);
    CHECK((char *)buf >= (char *)al_lo && (char *)buf < (char *)al_hi,
          "%s: local %p is not on the green stack [%p, %p)", where, (void *)buf, al_lo, al_hi);

    char out[160];
    long double third = 1.0L / 3.0L;
    int n = snprintf(out, sizeof out, "%.6Lf|%.3f|%d|%s|%.2Lf", third, 2.5, 42, "green", (long double)1e10);
    const char *want = "0.333333|2.500|42|green|10000000000.00";
    CHECK(n == (int)strlen(want) && strcmp(out, want) == 0, "%s: snprintf with long double/varargs gave \"%s\", expected \"%s\"",
          where, out, want);
    long double s = vsum(4, 1.5L, 2.25, 3.125L, 4.0);
    CHECK(s == 10.875L, "%s: vararg long double/double sum is %Lf, expected 10.875", where, s);
}

static void alignment_entry(void *arg) {
    const char *name = arg;
    alignas(16) volatile unsigned char local[32];
    local[0] = 0;
    uintptr_t fa = (uintptr_t)__builtin_frame_address(0);
    CHECK(fa % 16 == 0, "%s entry: frame address %#lx is not 16-byte aligned", name, (unsigned long)fa);
    CHECK(((uintptr_t)local & 15) == 0, "%s entry: alignas(16) local at %p is not 16-byte aligned",
          name, (void *)local);
    check_alignment_here(name);
    gt_context *self = (name[0] == 'o') ? &al_odd_ctx : &al_g.ctx;
    gt_context_transfer(self, &main_ctx);
    check_alignment_here("after resuming");
    al_done++;
    for (;;) gt_context_transfer(self, &main_ctx);
}

static void test_stack_alignment(void) {
    // A page-aligned green stack from gt_stack_alloc.
    green_make(&al_g, 256 * 1024, alignment_entry, "green entry");
    al_lo = al_g.stack.base;
    al_hi = (char *)al_g.stack.base + al_g.stack.size;
    gt_context_transfer(&main_ctx, &al_g.ctx);
    gt_context_transfer(&main_ctx, &al_g.ctx);
    CHECK(al_done == 1, "green stack: the entry did not run to the resume check");
    green_free(&al_g);

    // gt_context_make must align the top itself: an odd base and odd size.
    size_t odd_size = 128 * 1024 + 13;
    char *raw = malloc(odd_size + 64);
    CHECK(raw != NULL, "malloc failed");
    if (!raw) return;
    char *odd_base = raw + 5;
    gt_context_make(&al_odd_ctx, odd_base, odd_size, alignment_entry, "odd-sized stack entry");
    al_lo = odd_base;
    al_hi = odd_base + odd_size;
    gt_context_transfer(&main_ctx, &al_odd_ctx);
    gt_context_transfer(&main_ctx, &al_odd_ctx);
    CHECK(al_done == 2, "odd-sized stack: the entry did not run to the resume check");
    free(raw);
}

// ===========================================================================
// Test 5: several green contexts, round-robin through main, then a direct ring.

#define RR_N 8
#define RR_ROUNDS 20000
typedef struct rr_fiber {
    green g;
    int idx;
    volatile long runs;
} rr_fiber;
static rr_fiber rr[RR_N];
static volatile int rr_ring;  // 0: each returns to main; 1: each hands over to the next
static volatile int rr_last = -1;
static volatile long rr_hops;

static void rr_entry(void *arg) {
    rr_fiber *me = arg;
    for (;;) {
        CHECK(stub_current == (char *)me->g.ctx.excl, "green %d: entered exclusivity state is %p, expected %p",
              me->idx, (void *)stub_current, (void *)me->g.ctx.excl);
        int expect_prev = rr_ring ? me->idx - 1 : -1;
        CHECK(rr_last == expect_prev, "green %d runs after %d, expected after %d", me->idx, rr_last, expect_prev);
        me->runs++;
        rr_hops++;
        rr_last = me->idx;
        gt_context *next = (rr_ring && me->idx + 1 < RR_N) ? &rr[me->idx + 1].g.ctx : &main_ctx;
        gt_context_transfer(&me->g.ctx, next);
    }
}

static void test_many_contexts(void) {
    for (int i = 0; i < RR_N; i++) {
        rr[i].idx = i;
        rr[i].runs = 0;
        green_make(&rr[i].g, 64 * 1024, rr_entry, &rr[i]);
    }
    unsigned long e0 = stub_enters, x0 = stub_exits;
    rr_ring = 0;
    for (long r = 0; r < RR_ROUNDS && g_failures == 0; r++) {
        for (int i = 0; i < RR_N; i++) {
            rr_last = -1;
            gt_context_transfer(&main_ctx, &rr[i].g.ctx);
            CHECK(rr_last == i, "round %ld: transfer to green %d ran green %d", r, i, rr_last);
            CHECK(rr[i].runs == r + 1, "round %ld: green %d ran %ld times, expected %ld", r, i, rr[i].runs, r + 1);
            CHECK(stub_current == NULL, "main: exclusivity state %p still entered", (void *)stub_current);
        }
    }
    CHECK_STUB_COUNTS(e0, x0, (long)RR_N * RR_ROUNDS, (long)RR_N * RR_ROUNDS);

    // Ring: main -> g0 -> g1 -> ... -> g7 -> main, greens switching among themselves.
    e0 = stub_enters;
    x0 = stub_exits;
    rr_ring = 1;
    long hops0 = rr_hops;
    for (long r = 0; r < RR_ROUNDS && g_failures == 0; r++) {
        rr_last = -1;
        gt_context_transfer(&main_ctx, &rr[0].g.ctx);
        CHECK(rr_last == RR_N - 1, "ring round %ld ended after green %d, expected %d", r, rr_last, RR_N - 1);
        CHECK(stub_current == NULL, "main: exclusivity state %p still entered", (void *)stub_current);
    }
    CHECK(rr_hops - hops0 == (long)RR_N * RR_ROUNDS, "ring made %ld hops, expected %ld", rr_hops - hops0,
          (long)RR_N * RR_ROUNDS);
    for (int i = 0; i < RR_N; i++)
        CHECK(rr[i].runs == 2L * RR_ROUNDS, "green %d ran %ld times, expected %ld", i, rr[i].runs, 2L * RR_ROUNDS);
    CHECK_STUB_COUNTS(e0, x0, (long)RR_N * RR_ROUNDS, (long)RR_N * RR_ROUNDS);
    for (int i = 0; i < RR_N; i++) green_free(&rr[i].g);
}

// ===========================================================================
// Test 6: a PROT_NONE guard page sits right below `base`.

// Finds the /proc/self/maps line covering addr; copies its 4 permission chars.
static int maps_perms(uintptr_t addr, char perms[5], uintptr_t *lo_out, uintptr_t *hi_out) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    char line[512];
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char p[5] = {0};
        if (sscanf(line, "%lx-%lx %4s", &lo, &hi, p) != 3) continue;
        if (addr >= lo && addr < hi) {
            memcpy(perms, p, 5);
            *lo_out = lo;
            *hi_out = hi;
            found = 0;
            break;
        }
    }
    fclose(f);
    return found;
}

static void no_core(void) {
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);
}

// Runs fn(arg) in a child; returns its wait status.
static int run_in_child(void (*fn)(void *), void *arg) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        no_core();
        fn(arg);
        _exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    return status;
}

static void child_write(void *p) { *(volatile char *)p = 42; }

static gt_context ovf_ctx;
static gt_stack ovf_stack;
static volatile int keep_recursing = 1;
__attribute__((noinline)) static long recurse_forever(long depth) {
    volatile char pad[512];
    pad[0] = (char)depth;
    if (!keep_recursing) return pad[0];
    return recurse_forever(depth + 1) + pad[0];
}
static void overflow_entry(void *arg) {
    (void)arg;
    recurse_forever(0);
    _exit(3);  // not reached
}
static void child_overflow(void *arg) {
    (void)arg;
    gt_context_transfer(&main_ctx, &ovf_ctx);
    _exit(4);  // not reached: the green context never transfers back
}

static const char *status_str(int status, char *buf, size_t n) {
    if (status == -1) snprintf(buf, n, "fork failed");
    else if (WIFSIGNALED(status)) snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else if (WIFEXITED(status)) snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
    else snprintf(buf, n, "status %#x", status);
    return buf;
}

// 1 if the kernel can read the byte at p (write(2) of it into a pipe), 0 if
// that faults (EFAULT), -1 if the pipe itself failed.
static int kernel_can_read(const void *p) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    ssize_t n = write(fds[1], p, 1);
    int r = n == 1 ? 1 : (n < 0 && errno == EFAULT ? 0 : -1);
    close(fds[0]);
    close(fds[1]);
    return r;
}

static void test_guard_page(void) {
    size_t page = gt_page_size();
    gt_stack st;
    int e = gt_stack_alloc(64 * 1024, &st);
    CHECK(e == 0, "gt_stack_alloc failed: %s", strerror(-e));
    if (e) return;
    CHECK(((uintptr_t)st.base % page) == 0, "base %p is not page-aligned", st.base);
    CHECK((char *)st.mapping == (char *)st.base - page, "mapping %p is not one page below base %p",
          st.mapping, st.base);
    CHECK(st.size >= 64 * 1024, "usable size %zu < requested", st.size);

    // The page below base is a guard: a PROT_NONE mapping of its own, or a
    // guard region inside a slab mapping (MADV_GUARD_INSTALL). Either way
    // the kernel cannot read it; the writes in children below check that
    // user code cannot touch it either.
    CHECK(kernel_can_read((char *)st.base - 1) == 0, "the page below base %p is readable", st.base);
    CHECK(kernel_can_read(st.base) == 1, "base %p is not readable", st.base);
    CHECK(kernel_can_read((char *)st.base + st.size - 1) == 1, "the top byte is not readable");
    char perms[5] = {0};
    uintptr_t lo = 0, hi = 0;
    int r = maps_perms((uintptr_t)st.base, perms, &lo, &hi);
    CHECK(r == 0 && perms[0] == 'r' && perms[1] == 'w', "base %p is not mapped read-write (perms %s)", st.base, perms);
    r = maps_perms((uintptr_t)st.base + st.size - 1, perms, &lo, &hi);
    CHECK(r == 0 && perms[0] == 'r' && perms[1] == 'w', "top byte is not mapped read-write (perms %s)", perms);

    char sb[96];
    int status = run_in_child(child_write, (char *)st.base - 1);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
          "writing one byte below base should raise SIGSEGV; the child was %s", status_str(status, sb, sizeof sb));
    status = run_in_child(child_write, (char *)st.base - page);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
          "writing to the first byte of the guard page should raise SIGSEGV; the child was %s",
          status_str(status, sb, sizeof sb));
    status = run_in_child(child_write, st.base);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writing to base should succeed; the child was %s",
          status_str(status, sb, sizeof sb));
    status = run_in_child(child_write, (char *)st.base + st.size - 1);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writing to the top byte should succeed; the child was %s",
          status_str(status, sb, sizeof sb));

    // Unbounded recursion on a green stack stops at the guard page.
    e = gt_stack_alloc(64 * 1024, &ovf_stack);
    CHECK(e == 0, "gt_stack_alloc failed: %s", strerror(-e));
    if (e == 0) {
        gt_context_make(&ovf_ctx, ovf_stack.base, ovf_stack.size, overflow_entry, NULL);
        status = run_in_child(child_overflow, NULL);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
              "overflowing a green stack should die with SIGSEGV at the guard page; the child was %s",
              status_str(status, sb, sizeof sb));
        gt_stack_free(&ovf_stack);
    }
    gt_stack_free(&st);
}

// Stacks carved from shared slabs: every one of 300 (several slabs, and a
// change of size in between) has its own guard page and a usable range
// disjoint from every other; freeing some leaves the others intact.
static void test_many_guards(void) {
    enum { n = 300 };
    static gt_stack st[n];
    for (int i = 0; i < n; i++) {
        size_t size = (i / 100 == 1 ? 32 : 64) * 1024;  // the middle hundred: another size
        int e = gt_stack_alloc(size, &st[i]);
        CHECK(e == 0, "gt_stack_alloc #%d failed: %s", i, strerror(-e));
        if (e) return;
        memset(st[i].base, 0xA5, 64);
        memset((char *)st[i].base + st[i].size - 64, 0x5A, 64);
    }
    for (int i = 0; i < n; i++) {
        CHECK(kernel_can_read((char *)st[i].base - 1) == 0, "stack #%d: the page below base is readable", i);
        CHECK(kernel_can_read((char *)st[i].base - gt_page_size()) == 0, "stack #%d: guard page start is readable", i);
        for (int j = i + 1; j < n; j++) {
            char *a0 = st[i].mapping, *a1 = (char *)st[i].base + st[i].size;
            char *b0 = st[j].mapping, *b1 = (char *)st[j].base + st[j].size;
            CHECK(a1 <= b0 || b1 <= a0, "stacks #%d and #%d overlap", i, j);
        }
    }
    // With guard regions, consecutive stacks of one size come from one slab.
    int adjacent = 0;
    for (int i = 0; i + 1 < n; i++)
        adjacent += (char *)st[i + 1].mapping == (char *)st[i].base + st[i].size;
    if (gt_stack_uses_guard_regions())
        CHECK(adjacent >= n / 2, "guard regions in use, yet only %d of %d stacks sit beside the previous one",
              adjacent, n - 1);
    printf("INFO %s many_guards: %s, %d of %d stacks adjacent\n", ARCH,
           gt_stack_uses_guard_regions() ? "slabs with guard regions" : "one mapping per stack", adjacent, n - 1);
    for (int i = 0; i < n; i += 2) gt_stack_free(&st[i]);
    for (int i = 1; i < n; i += 2) {
        unsigned char *lo = st[i].base, *hi = (unsigned char *)st[i].base + st[i].size - 64;
        CHECK(lo[0] == 0xA5 && lo[63] == 0xA5 && hi[0] == 0x5A && hi[63] == 0x5A,
              "stack #%d lost its contents when its neighbours were freed", i);
        CHECK(kernel_can_read((char *)st[i].base - 1) == 0, "stack #%d: guard gone after neighbours were freed", i);
        gt_stack_free(&st[i]);
    }
}

// ===========================================================================
// Test 7: a suspended green context resumes on another OS thread, with its
// registers and FP control state, and comes back.

static green mig_g;
static gt_context mig_thread_base;
static pid_t mig_tids[3];
static volatile int mig_step;

static void migrate_entry(void *arg) {
    (void)arg;
    fesetround(FE_UPWARD);
    mig_tids[0] = my_tid();
    mig_step = 1;
    probe_checked(&mig_g.ctx, &main_ctx, 0xAAAA, "green (suspended on main, resumed on a thread)");
    mig_tids[1] = my_tid();
    CHECK(fegetround() == FE_UPWARD, "green resumed on another thread: rounding mode is %s, expected FE_UPWARD",
          round_name(fegetround()));
    CHECK(stub_current == (char *)mig_g.ctx.excl, "green on the thread: exclusivity state %p, expected %p",
          (void *)stub_current, (void *)mig_g.ctx.excl);
    mig_step = 2;
    probe_checked(&mig_g.ctx, &mig_thread_base, 0xBBBB, "green (suspended on a thread, resumed on main)");
    mig_tids[2] = my_tid();
    CHECK(fegetround() == FE_UPWARD, "green back on main: rounding mode is %s, expected FE_UPWARD",
          round_name(fegetround()));
    mig_step = 3;
    for (;;) gt_context_transfer(&mig_g.ctx, &main_ctx);
}

static void *migrate_thread(void *arg) {
    (void)arg;
    gt_context_init_base(&mig_thread_base);
    CHECK(fegetround() == FE_TONEAREST, "new thread starts with %s", round_name(fegetround()));
    probe_checked(&mig_thread_base, &mig_g.ctx, 0xCCCC, "thread base");
    CHECK(mig_step == 2, "green did not reach step 2 on the thread (step %d)", mig_step);
    CHECK(fegetround() == FE_TONEAREST, "thread after the green left: rounding mode is %s, expected FE_TONEAREST",
          round_name(fegetround()));
    return NULL;
}

static void test_migration(void) {
    green_make(&mig_g, 256 * 1024, migrate_entry, NULL);
    unsigned long e0 = stub_enters, x0 = stub_exits;
    probe_checked(&main_ctx, &mig_g.ctx, 0x1111, "main (1)");
    CHECK(mig_step == 1, "green did not reach step 1 (step %d)", mig_step);
    pthread_t t;
    int e = pthread_create(&t, NULL, migrate_thread, NULL);
    CHECK(e == 0, "pthread_create: %s", strerror(e));
    if (e) return;
    pthread_join(t, NULL);
    CHECK(fegetround() == FE_TONEAREST, "main: rounding mode is %s, expected FE_TONEAREST", round_name(fegetround()));
    probe_checked(&main_ctx, &mig_g.ctx, 0x2222, "main (2)");
    CHECK(mig_step == 3, "green did not reach step 3 (step %d)", mig_step);
    CHECK(mig_tids[0] == my_tid() && mig_tids[2] == my_tid(),
          "green should run on the main thread first and last (tids %d, %d; main %d)",
          (int)mig_tids[0], (int)mig_tids[2], (int)my_tid());
    CHECK(mig_tids[1] != my_tid() && mig_tids[1] != 0, "green did not run on the other thread (tid %d)",
          (int)mig_tids[1]);
    CHECK_STUB_COUNTS(e0, x0, 3, 3);
    green_free(&mig_g);
}

// ===========================================================================
// Driver

typedef struct test_case {
    const char *name;
    void (*fn)(void);
} test_case;

static const test_case tests[] = {
    {"pingpong_1M", test_pingpong},
    {"callee_saved_registers", test_callee_saved},
    {"fp_control_per_context", test_fp_control},
    {"stack_alignment", test_stack_alignment},
    {"many_contexts", test_many_contexts},
    {"guard_page", test_guard_page},
    {"many_guards", test_many_guards},
    {"migrate_os_thread", test_migration},
};
#define NTESTS (int)(sizeof tests / sizeof tests[0])

static void run_one(const test_case *t) {
    g_test = t->name;
    g_failures = 0;
    gt_context_init_base(&main_ctx);
    t->fn();
    CHECK(stub_current == NULL, "after the test an exclusivity state (%p) is still entered", (void *)stub_current);
}

static bool selected(const char *name, int argc, char **argv, int first) {
    if (first >= argc) return true;
    for (int i = first; i < argc; i++)
        if (strcmp(argv[i], name) == 0) return true;
    return false;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    setvbuf(stderr, NULL, _IONBF, 0);
    bool fork_each = true;
    int first = 1;
    for (; first < argc && argv[first][0] == '-'; first++) {
        if (strcmp(argv[first], "--no-fork") == 0) fork_each = false;
        else if (strcmp(argv[first], "--list") == 0) {
            for (int i = 0; i < NTESTS; i++) puts(tests[i].name);
            return 0;
        } else {
            fprintf(stderr, "usage: %s [--no-fork] [--list] [test-name ...]\n", argv[0]);
            return 2;
        }
    }
    third_nearest = dbits(fp_div(1, 3));
    tenth_nearest = dbits(fp_div(1, 10));

    int passed = 0, failed = 0;
    for (int i = 0; i < NTESTS; i++) {
        const test_case *t = &tests[i];
        if (!selected(t->name, argc, argv, first)) continue;
        char reason[160] = "";
        bool ok;
        if (fork_each) {
            fflush(NULL);
            pid_t pid = fork();
            if (pid < 0) {
                perror("fork");
                return 2;
            }
            if (pid == 0) {
                no_core();
                alarm(600);  // a switch that loops forever must not hang the run
                run_one(t);
                fflush(NULL);
                _exit(g_failures ? 1 : 0);
            }
            int status = 0;
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
            ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            if (WIFEXITED(status) && WEXITSTATUS(status) == 1) snprintf(reason, sizeof reason, "checks failed (see above)");
            else if (!ok) status_str(status, reason, sizeof reason);
        } else {
            run_one(t);
            ok = g_failures == 0;
            if (!ok) snprintf(reason, sizeof reason, "%d checks failed (see above)", g_failures);
        }
        if (ok) {
            passed++;
            printf("PASS %s %s\n", ARCH, t->name);
        } else {
            failed++;
            printf("FAIL %s %s: %s\n", ARCH, t->name, reason);
        }
    }
    printf("SUMMARY %s passed=%d failed=%d\n", ARCH, passed, failed);
    return failed ? 1 : 0;
}
