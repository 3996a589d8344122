// Integer loop: a mix of 32/64-bit add, mul, xor, shift and rotate per
// iteration, the shape of a contract's arithmetic inner loop.
#include "workload.h"

WORKLOAD_EXPORT(bench_loop)
int32_t bench_loop(int32_t iterations) {
  uint64_t x = 0x9E3779B97F4A7C15ull;
  uint32_t y = 12345u;
  for (int32_t i = 0; i < iterations; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    y = y * 1664525u + 1013904223u + (uint32_t)i;
    y ^= (uint32_t)(x >> 32);
    y = (y << 5) | (y >> 27);
  }
  return (int32_t)(y ^ (uint32_t)x ^ (uint32_t)(x >> 32));
}
