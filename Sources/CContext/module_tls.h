// Private to CContext: see module_tls.c.
#ifndef GT_MODULE_TLS_H
#define GT_MODULE_TLS_H

#include <stddef.h>
#include <stdint.h>

/// The calling thread's copy of the PT_TLS segment of the loaded module
/// that contains `code`, and its size in bytes in `*size`; NULL if there is
/// no such module, it has no TLS segment, or this thread has not allocated
/// its block yet.
uintptr_t *gt_module_tls_block(const void *code, size_t *size);

#endif
