// Call overhead: the smallest export that takes and returns a value.
#include "workload.h"

WORKLOAD_EXPORT(bench_noop)
int32_t bench_noop(int32_t x) { return x; }
