// SHA-256 (FIPS 180-4) over a buffer in linear memory, repeated. Each round
// feeds the previous digest back into the buffer so no round can be skipped.
#include "workload.h"

#define SHA_BUFFER_SIZE_BYTES_MAX (1 << 20)

static uint8_t sha_buffer[SHA_BUFFER_SIZE_BYTES_MAX];

static const uint32_t kSha256K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static inline uint32_t rotr32(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha256_block(uint32_t state[8], const uint8_t* p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++) {
    w[i] = ((uint32_t)p[4 * i] << 24) | ((uint32_t)p[4 * i + 1] << 16) |
           ((uint32_t)p[4 * i + 2] << 8) | (uint32_t)p[4 * i + 3];
  }
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = rotr32(w[i - 15], 7) ^ rotr32(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = rotr32(w[i - 2], 17) ^ rotr32(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
  uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = h + (rotr32(e, 6) ^ rotr32(e, 11) ^ rotr32(e, 25)) + ((e & f) ^ (~e & g)) +
                  kSha256K[i] + w[i];
    uint32_t t2 = (rotr32(a, 2) ^ rotr32(a, 13) ^ rotr32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  state[0] += a; state[1] += b; state[2] += c; state[3] += d;
  state[4] += e; state[5] += f; state[6] += g; state[7] += h;
}

// Hashes data[0..size) into out (32 bytes).
static void sha256(const uint8_t* data, uint32_t size, uint8_t out[32]) {
  uint32_t state[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                       0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  uint32_t full = size & ~63u;
  for (uint32_t off = 0; off < full; off += 64) sha256_block(state, data + off);
  uint8_t tail[128];
  uint32_t rest = size - full;
  for (uint32_t i = 0; i < 128; i++) tail[i] = 0;
  for (uint32_t i = 0; i < rest; i++) tail[i] = data[full + i];
  tail[rest] = 0x80;
  uint32_t tail_size = rest + 9 <= 64 ? 64 : 128;
  uint64_t bits = (uint64_t)size * 8;
  for (int i = 0; i < 8; i++) tail[tail_size - 1 - i] = (uint8_t)(bits >> (8 * i));
  for (uint32_t off = 0; off < tail_size; off += 64) sha256_block(state, tail + off);
  for (int i = 0; i < 8; i++) {
    out[4 * i] = (uint8_t)(state[i] >> 24);
    out[4 * i + 1] = (uint8_t)(state[i] >> 16);
    out[4 * i + 2] = (uint8_t)(state[i] >> 8);
    out[4 * i + 3] = (uint8_t)state[i];
  }
}

// Returns the first four digest bytes (big-endian) of the last round.
// size_bytes is clamped to [0, 1 MiB]. sha256("abc") is checked by
// bench_sha256_selftest so a broken port cannot report fast wrong numbers.
WORKLOAD_EXPORT(bench_sha256)
int32_t bench_sha256(int32_t size_bytes, int32_t reps) {
  uint32_t size = size_bytes < 0 ? 0 : (uint32_t)size_bytes;
  if (size > SHA_BUFFER_SIZE_BYTES_MAX) size = SHA_BUFFER_SIZE_BYTES_MAX;
  uint32_t seed = 0x12345678u;
  for (uint32_t i = 0; i < size; i++) {
    seed = seed * 1103515245u + 12345u;
    sha_buffer[i] = (uint8_t)(seed >> 16);
  }
  uint8_t digest[32] = {0};
  for (int32_t r = 0; r < reps; r++) {
    for (uint32_t i = 0; i < 32 && i < size; i++) sha_buffer[i] ^= digest[i];
    sha256(sha_buffer, size, digest);
  }
  return (int32_t)(((uint32_t)digest[0] << 24) | ((uint32_t)digest[1] << 16) |
                   ((uint32_t)digest[2] << 8) | (uint32_t)digest[3]);
}

// Self-check: the first four bytes of SHA-256("abc") are ba 78 16 bf, so this
// returns (int32_t)0xba7816bf == -1166534977 on every correct runtime.
WORKLOAD_EXPORT(bench_sha256_abc)
int32_t bench_sha256_abc(void) {
  const uint8_t abc[3] = {'a', 'b', 'c'};
  uint8_t digest[32];
  sha256(abc, 3, digest);
  return (int32_t)(((uint32_t)digest[0] << 24) | ((uint32_t)digest[1] << 16) |
                   ((uint32_t)digest[2] << 8) | (uint32_t)digest[3]);
}
