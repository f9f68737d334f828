// The libnuma API the runtime's topology reader is checked against.
#include <numa.h>
