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
#include <dlfcn.h>
#include <link.h>
#include <stddef.h>
#include <string.h>

extern void swift_task_enterThreadLocalContext(char *state) __attribute__((swiftcall));

struct tls_search {
    uintptr_t code;     // an address inside the module that owns the set
    uintptr_t *block;   // out: the calling thread's copy of its PT_TLS segment
    size_t size;        // out: its size in bytes
};

static int find_tls_block(struct dl_phdr_info *info, size_t size, void *arg) {
    struct tls_search *s = arg;
    if (size < offsetof(struct dl_phdr_info, dlpi_tls_data) + sizeof info->dlpi_tls_data) return 1;
    int owns = 0;
    size_t tls_size = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && s->code >= start && s->code < start + ph->p_memsz) owns = 1;
        if (ph->p_type == PT_TLS) tls_size = ph->p_memsz;
    }
    if (!owns) return 0;
    s->block = info->dlpi_tls_data;  // NULL if this thread has not allocated it
    s->size = tls_size;
    return 1;
}

uintptr_t *gt_exclusivity_find_head(void) {
    // The definition itself, not a PLT stub: dlsym resolves the symbol.
    void *enter = dlsym(RTLD_DEFAULT, "swift_task_enterThreadLocalContext");
    if (!enter) return NULL;
    struct tls_search s = { .code = (uintptr_t)enter, .block = NULL, .size = 0 };
    dl_iterate_phdr(find_tls_block, &s);
    size_t words = s.size / sizeof(uintptr_t);
    // (libswiftCore's block is a few words; a statically linked runtime
    // shares the executable's, which is larger but still small.)
    if (!s.block || words == 0 || words > 256) return NULL;

    uintptr_t before[256];
    memcpy(before, s.block, words * sizeof(uintptr_t));
    // A record for the runtime to link in front of whatever the thread
    // already holds (it may write the link into the record).
    uintptr_t record[8] = {0};
    uintptr_t state[2] = { (uintptr_t)record, 0 };
    swift_task_enterThreadLocalContext((char *)state);

    uintptr_t *head = NULL;
    int changed = 0;
    for (size_t i = 0; i < words; i++) {
        if (s.block[i] == before[i]) continue;
        changed++;
        if (s.block[i] == (uintptr_t)record) head = &s.block[i];
    }
    // Undo the enter: the thread's own list goes back exactly as it was.
    for (size_t i = 0; i < words; i++) s.block[i] = before[i];
    return changed == 1 ? head : NULL;
}
