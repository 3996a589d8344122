// Recursion: naive Fibonacci, one Wasm call per node (fib(27) ~ 630k calls).
#include "workload.h"

static int32_t fib_rec(int32_t n) __attribute__((noinline));
static int32_t fib_rec(int32_t n) { return n < 2 ? n : fib_rec(n - 1) + fib_rec(n - 2); }

WORKLOAD_EXPORT(bench_fib)
int32_t bench_fib(int32_t n) { return fib_rec(n); }
