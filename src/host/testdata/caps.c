// Capability probes for contract_test (world caps in caps.wit).
#include "guest.h"

static struct ch_opt_bytes opt_ret;
static struct ch_list list_ret;
static uint64_t pair_ret[2];

CABI_EXPORT("kv-set") void kv_set(const char* k, uint32_t kn, const char* v, uint32_t vn) {
  ch_kv_set(k, kn, v, vn);
  cabi_reset();
}

CABI_EXPORT("kv-get") struct ch_opt_bytes* kv_get(const char* k, uint32_t kn) {
  ch_kv_get(k, kn, &opt_ret);  // placed by the host with cabi_realloc: ours until cabi_reset()
  return &opt_ret;
}

CABI_EXPORT("kv-delete") int32_t kv_delete(const char* k, uint32_t kn) {
  int32_t r = ch_kv_delete(k, kn);
  cabi_reset();
  return r;
}

CABI_EXPORT("kv-list") struct ch_list* kv_list(const char* p, uint32_t pn) {
  ch_kv_list_keys(p, pn, &list_ret);
  return &list_ret;
}

CABI_EXPORT("kv-set-and-list")
struct ch_list* kv_set_and_list(const char* k, uint32_t kn, const char* v, uint32_t vn, const char* p, uint32_t pn) {
  ch_kv_set(k, kn, v, vn);
  ch_kv_list_keys(p, pn, &list_ret);
  return &list_ret;
}

CABI_EXPORT("kv-delete-and-list") struct ch_list* kv_delete_and_list(const char* k, uint32_t kn, const char* p, uint32_t pn) {
  ch_kv_delete(k, kn);
  ch_kv_list_keys(p, pn, &list_ret);
  return &list_ret;
}

CABI_EXPORT("kv-set-then-trap") void kv_set_then_trap(const char* k, uint32_t kn, const char* v, uint32_t vn) {
  ch_kv_set(k, kn, v, vn);
  __builtin_trap();
}

static uint8_t fill_buf[4096];

CABI_EXPORT("kv-fill") void kv_fill(const char* p, uint32_t pn, uint32_t n, uint32_t size) {
  char key[128];
  if (pn > 100 || size > sizeof fill_buf) __builtin_trap();
  cabi_copy((uint8_t*)key, (const uint8_t*)p, pn);
  for (uint32_t i = 0; i < n; i++) {
    uint32_t kn = pn + cabi_u64_to_dec(i, key + pn);
    ch_kv_set(key, kn, fill_buf, size);
  }
  cabi_reset();
}

CABI_EXPORT("log-flood") uint32_t log_flood(uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    ch_log_write(CH_LOG_DEBUG, "debug line", 10);
    ch_log_write(CH_LOG_INFO, "info line", 9);
  }
  cabi_reset();
  return n;
}

CABI_EXPORT("clock") uint64_t* clock(void) {
  pair_ret[0] = ch_clock_now_ms();
  pair_ret[1] = ch_clock_monotonic_ns();
  return pair_ret;
}

CABI_EXPORT("random") uint64_t* random(void) {
  pair_ret[0] = ch_random_next_u64();
  pair_ret[1] = ch_random_next_u64();
  return pair_ret;
}

CABI_EXPORT("random-bytes") struct ch_list* random_bytes(uint32_t n) {
  ch_random_bytes(n, &list_ret);
  return &list_ret;
}

CABI_EXPORT("sha256") struct ch_list* sha256(const uint8_t* d, uint32_t n) {
  ch_crypto_sha256(d, n, &list_ret);
  return &list_ret;
}

CABI_EXPORT("verify")
int32_t verify(const uint8_t* pk, uint32_t pkn, const uint8_t* m, uint32_t mn, const uint8_t* s, uint32_t sn) {
  int32_t r = ch_crypto_ed25519_verify(pk, pkn, m, mn, s, sn);
  cabi_reset();
  return r;
}

CABI_EXPORT("stamp") uint64_t stamp(const char* k, uint32_t kn) {
  struct ch_opt_bytes r;
  ch_kv_get(k, kn, &r);
  uint64_t v = 0;
  if (r.is_some && r.len == 8)
    for (int i = 7; i >= 0; i--) v = (v << 8) | r.ptr[i];
  v += ch_clock_now_ms() + ch_random_next_u64();
  uint8_t b[8];
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
  ch_kv_set(k, kn, b, 8);
  cabi_reset();
  return v;
}

// Results that point into the heap (host results included) are freed once
// the host has lifted them.
#define POST(name, fn) \
  CABI_EXPORT("cabi_post_" name) void fn(void* ret) { \
    (void)ret;                                        \
    cabi_reset();                                     \
  }
POST("kv-get", post_kv_get)
POST("kv-list", post_kv_list)
POST("kv-set-and-list", post_kv_set_and_list)
POST("kv-delete-and-list", post_kv_delete_and_list)
POST("clock", post_clock)
POST("random", post_random)
POST("random-bytes", post_random_bytes)
POST("sha256", post_sha256)
