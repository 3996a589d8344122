// Shared by the benchmark workloads: compiled to wasm32 with clang (freestanding,
// no imports) and natively with gcc -O2 into bench_engine, from the same source.
// Every export takes i32 arguments and returns an i32 checksum so all runtimes
// can be checked to agree.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __wasm__
#define WORKLOAD_EXPORT(name) __attribute__((export_name(#name))) __attribute__((visibility("default")))
#else
#define WORKLOAD_EXPORT(name)
#endif

#ifdef __cplusplus
extern "C" {
#endif
int32_t bench_loop(int32_t iterations);
int32_t bench_sha256(int32_t size_bytes, int32_t reps);
int32_t bench_sha256_abc(void);
int32_t bench_policy(int32_t reps);
int32_t bench_fib(int32_t n);
int32_t bench_noop(int32_t x);
int32_t bench_data_sum(int32_t stride);
#ifdef __cplusplus
}
#endif
