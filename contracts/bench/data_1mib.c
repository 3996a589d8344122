// Instantiate cost: a module with a 1 MiB active data segment. The bytes come
// from data_1mib.inc, generated at build time (a fixed xorshift stream, so every
// byte is non-zero-ish and the segment cannot be elided as BSS).
#include "workload.h"

#define DATA_SIZE_BYTES (1 << 20)

static const uint8_t kData[DATA_SIZE_BYTES] = {
#include "data_1mib.inc"
};

// Sums every stride-th byte (stride clamped to >= 1): touches the segment so
// runtimes cannot drop it, and checks that it was copied correctly.
WORKLOAD_EXPORT(bench_data_sum)
int32_t bench_data_sum(int32_t stride) {
  uint32_t step = stride < 1 ? 1u : (uint32_t)stride;
  uint32_t sum = 0;
  for (uint32_t i = 0; i < DATA_SIZE_BYTES; i += step) sum = sum * 33u + kData[i];
  return (int32_t)sum;
}
