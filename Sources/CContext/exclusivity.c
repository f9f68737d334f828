// Finding the calling thread's exclusivity access-set head, so that a switch
// can skip swift_task_exitThreadLocalContext when the leaving stack holds no
// access (the common case): the call costs ~35 instructions, most of them a
// __tls_get_addr lookup inside libswiftCore, on every switch.
//
// libswiftCore keeps the head of each thread's list of open accesses in a
// thread-local it does not export. Its address is found by observation: on
// the calling thread, enter a set holding one dummy record and look for the
// one word of libswiftCore's TLS block that now points at the record; put
// the old value back. Any surprise (no such module or TLS block, not exactly
// one word changed) reports failure, and the switch keeps calling the
// runtime every time: slower, never wrong.
#define _GNU_SOURCE
#include "exclusivity.h"
#include "module_tls.h"
#include <dlfcn.h>
#include <stddef.h>
#include <string.h>

extern void swift_task_enterThreadLocalContext(char *state) __attribute__((swiftcall));

uintptr_t *gt_exclusivity_find_head(void) {
    // The definition itself, not a PLT stub: dlsym resolves the symbol.
    void *enter = dlsym(RTLD_DEFAULT, "swift_task_enterThreadLocalContext");
    if (!enter) return NULL;
    size_t size = 0;
    uintptr_t *block = gt_module_tls_block(enter, &size);
    size_t words = size / sizeof(uintptr_t);
    // (libswiftCore's block is a few words; a statically linked runtime
    // shares the executable's, which is larger but still small.)
    if (!block || words == 0 || words > 256) return NULL;

    uintptr_t before[256];
    memcpy(before, block, words * sizeof(uintptr_t));
    // A record for the runtime to link in front of whatever the thread
    // already holds (it may write the link into the record): a set whose
    // head and tail are the record, so that the enter also works on a
    // thread with accesses open (a coroutine's caller attaches on its
    // first resume, possibly inside an `inout` access), where it links
    // the tail to the thread's old head.
    uintptr_t record[8] = {0};
    uintptr_t state[2] = { (uintptr_t)record, (uintptr_t)record };
    swift_task_enterThreadLocalContext((char *)state);

    uintptr_t *head = NULL;
    int changed = 0;
    for (size_t i = 0; i < words; i++) {
        if (block[i] == before[i]) continue;
        changed++;
        if (block[i] == (uintptr_t)record) head = &block[i];
    }
    // Undo the enter: the thread's own list goes back exactly as it was.
    for (size_t i = 0; i < words; i++) block[i] = before[i];
    return changed == 1 ? head : NULL;
}
