// Green stacks: lazily committed mappings with a guard page below.
#include "CContext.h"
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

size_t gt_page_size(void) {
    static size_t cached;
    if (!cached) cached = (size_t)sysconf(_SC_PAGESIZE);
    return cached;
}

int gt_stack_alloc(size_t size, gt_stack *out) {
    size_t page = gt_page_size();
    size = (size + page - 1) & ~(page - 1);
    size_t total = size + page;
    // MAP_NORESERVE: a million mostly idle stacks must not be charged
    // their full size against the commit limit; pages appear on first touch.
    void *m = mmap(NULL, total, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) return errno;
    if (mprotect(m, page, PROT_NONE) != 0) {
        int e = errno;
        munmap(m, total);
        return e;
    }
    out->mapping = m;
    out->mapping_size = total;
    out->base = (char *)m + page;
    out->size = size;
    return 0;
}

void gt_stack_free(gt_stack *stack) {
    if (stack->mapping) munmap(stack->mapping, stack->mapping_size);
    stack->mapping = NULL;
}

void gt_stack_discard(gt_stack *stack) {
    madvise(stack->base, stack->size, MADV_DONTNEED);
}
