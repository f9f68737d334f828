// Task-local bindings that follow a green thread, not its worker.
//
// Problem. `TaskLocal.withValue` outside an async task (which is where all
// green-thread code runs) pushes the binding onto a per-OS-thread list in
// libswift_Concurrency: one thread-local word, NULL when the thread holds no
// binding, else a malloc'ed storage whose first word heads the list. The
// runtime allocates the storage on the first push and frees it (setting the
// word back to NULL) on the last pop. A green thread that parks inside
// `withValue` leaves its binding on the worker, so the next green thread
// the worker runs sees it, and if that one binds and parks too, the two
// lists interleave and each pops the other's items.
//
// Design. The switch treats that word like the exclusivity access set: a
// stack that leaves takes the word with it (into its gt_context) and leaves
// NULL behind; when it is resumed, on whatever thread, it puts its word
// back into that thread's slot. The storage is plain heap memory owned by
// whoever holds the word, so it moves between threads unchanged. Every
// stack, green or an OS thread's own, owns its bindings: a green thread
// starts with none, and a generator's body neither sees its caller's
// bindings nor leaks its own into them.
//
// Rejected: copying bindings at each switch (allocates on the hot path);
// binding through an AsyncTask (green threads are not tasks and must not
// pretend to be, the runtime would run its executor checks on them);
// documenting the leak and offering only a separate green-local type (the
// leak corrupts the lists of well-behaved code, it is not a style issue).
//
// Finding the word. It is a thread-local the runtime does not export. Its
// offset inside libswift_Concurrency's TLS block is found once per process,
// by observation on a fresh thread (which holds no binding and runs no
// task, unlike the thread asking, which may be inside `withValue`): push
// one binding through the runtime's own entry point, look for the single
// word of the block that went from NULL to a storage whose head is set,
// pop, and check the word is NULL again. Each thread then adds that offset
// to its own block. Any surprise (no module, no block, not exactly one
// candidate) reports failure: switches then carry nothing, which is the
// runtime's plain per-thread behaviour.
//
// Limit. Code running inside an async task binds in the task, not in this
// word; a switch does not carry task state, so a generator driven from
// async code shares the task's bindings as any synchronous call would.
#define _GNU_SOURCE
#include "task_locals.h"
#include "module_tls.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

typedef void (*push_fn)(const void *key, void *value, const void *type) __attribute__((swiftcall));
typedef void (*pop_fn)(void) __attribute__((swiftcall));
typedef const void *(*current_task_fn)(void) __attribute__((swiftcall));

// Offset of the word in the block, in words; -1 until found (or if it can
// never be). Written once, before pthread_once returns to any reader.
static _Atomic long slot_offset = -1;

static long observe_offset(void *push_sym, uintptr_t *block, size_t words) {
    pop_fn pop = (pop_fn)dlsym(RTLD_DEFAULT, "swift_task_localValuePop");
    current_task_fn current = (current_task_fn)dlsym(RTLD_DEFAULT, "swift_task_getCurrent");
    // Int's type metadata: its value witnesses copy and destroy 8 plain bytes.
    const void *int_type = dlsym(RTLD_DEFAULT, "$sSiN");
    if (!pop || !current || !int_type || current() != NULL) return -1;

    uintptr_t before[64];
    int headed[64] = {0};
    memcpy(before, block, words * sizeof(uintptr_t));
    static const char key;  // compared by address only
    uintptr_t value = 0;
    ((push_fn)push_sym)(&key, &value, int_type);
    for (size_t i = 0; i < words; i++) {
        // A word that just turned into an aligned address: read it as the
        // storage, whose first word must now head the list.
        uintptr_t now = block[i];
        if (before[i] == 0 && now >= 4096 && (now & 7) == 0)
            headed[i] = *(const uintptr_t *)now != 0;
    }
    pop();

    long found = -1;
    int candidates = 0;
    for (size_t i = 0; i < words; i++) {
        if (!headed[i] || block[i] != 0) continue;
        candidates++;
        found = (long)i;
    }
    return candidates == 1 ? found : -1;
}

// The calling thread's copy of libswift_Concurrency's TLS block, and its
// size in words (0 if there is none, or it is larger than observed here).
static uintptr_t *concurrency_block(void *push, size_t *words) {
    size_t size = 0;
    uintptr_t *block = push ? gt_module_tls_block(push, &size) : NULL;
    *words = size / sizeof(uintptr_t);
    return block && *words > 0 && *words <= 64 ? block : NULL;
}

// Runs the observation on a thread of its own, which surely holds no
// binding and runs no task: the thread asking may be inside `withValue`.
static void *observe_on_fresh_thread(void *unused) {
    (void)unused;
    void *push = dlsym(RTLD_DEFAULT, "swift_task_localValuePush");
    size_t words;
    uintptr_t *block = concurrency_block(push, &words);
    if (block)
        atomic_store_explicit(&slot_offset, observe_offset(push, block, words), memory_order_relaxed);
    return NULL;
}

static pthread_once_t observed = PTHREAD_ONCE_INIT;

static void observe_once(void) {
    pthread_t t;
    if (pthread_create(&t, NULL, observe_on_fresh_thread, NULL) == 0) pthread_join(t, NULL);
}

uintptr_t *gt_task_locals_find_slot(void) {
    pthread_once(&observed, observe_once);
    long offset = atomic_load_explicit(&slot_offset, memory_order_relaxed);
    if (offset < 0) return NULL;
    size_t words;
    uintptr_t *block = concurrency_block(dlsym(RTLD_DEFAULT, "swift_task_localValuePush"), &words);
    return block && (size_t)offset < words ? &block[offset] : NULL;
}
