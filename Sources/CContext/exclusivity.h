// Private to CContext: see exclusivity.c.
#ifndef GT_EXCLUSIVITY_H
#define GT_EXCLUSIVITY_H

#include <stdint.h>

/// The address of the calling thread's exclusivity access-set head inside
/// libswiftCore, or NULL if it cannot be found with certainty. Valid for
/// the calling OS thread only, for its whole life.
uintptr_t *gt_exclusivity_find_head(void);

#endif
