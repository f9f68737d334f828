// Finding a loaded module's thread-local block for the calling thread.
//
// The Swift runtime keeps per-thread state that a stack switch must carry
// (the exclusivity access set in libswiftCore, the task-local bindings of
// code outside a task in libswift_Concurrency) in thread-locals it does not
// export. exclusivity.c and task_locals.c locate those words inside the
// owning module's TLS block; this is the one place that finds the block.
#define _GNU_SOURCE
#include "module_tls.h"
#include <link.h>

struct tls_search {
    uintptr_t code;
    uintptr_t *block;
    size_t size;
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

uintptr_t *gt_module_tls_block(const void *code, size_t *size) {
    struct tls_search s = { .code = (uintptr_t)code, .block = NULL, .size = 0 };
    dl_iterate_phdr(find_tls_block, &s);
    *size = s.block ? s.size : 0;
    return s.block;
}
