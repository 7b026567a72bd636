// jemalloc (Debian: libjemalloc-dev) replaces the C library's malloc for the whole process:
// linking it into the executables is enough. Only its control interface is declared here —
// jemalloc.h would declare malloc and free a second time beside Glibc's, and Swift code
// calling them would become ambiguous.
#include <stddef.h>

int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
