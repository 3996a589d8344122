// covenant:host@0.1.0 imports for freestanding C guests, with the core
// signatures the canonical ABI gives (docs/host.md). Only the functions a
// guest calls end up as imports of its module; each needs its grant.
#pragma once

#include "../seed_c/cabi.h"

#define CH_KV "covenant:host/kv@0.1.0"
#define CH_LOG "covenant:host/log@0.1.0"
#define CH_CLOCK "covenant:host/clock@0.1.0"
#define CH_RANDOM "covenant:host/random@0.1.0"
#define CH_CRYPTO "covenant:host/crypto@0.1.0"

// option<list<u8>> / option<string> return area: {u8 is_some; ptr @4; len @8}.
struct ch_opt_bytes {
  uint8_t is_some;
  uint8_t pad[3];
  uint8_t* ptr;
  uint32_t len;
};
// list<T> return area: {ptr, len}.
struct ch_list {
  void* ptr;
  uint32_t len;
};
// a string inside a list<string>
struct ch_str {
  const char* ptr;
  uint32_t len;
};

CABI_IMPORT(CH_KV, "get") void ch_kv_get(const char* key, uint32_t key_len, struct ch_opt_bytes* ret);
CABI_IMPORT(CH_KV, "set") void ch_kv_set(const char* key, uint32_t key_len, const void* value, uint32_t value_len);
CABI_IMPORT(CH_KV, "delete") int32_t ch_kv_delete(const char* key, uint32_t key_len);
CABI_IMPORT(CH_KV, "list-keys") void ch_kv_list_keys(const char* prefix, uint32_t prefix_len, struct ch_list* ret);

enum { CH_LOG_DEBUG = 0, CH_LOG_INFO = 1, CH_LOG_WARN = 2, CH_LOG_ERROR = 3 };
CABI_IMPORT(CH_LOG, "write") void ch_log_write(int32_t level, const char* msg, uint32_t msg_len);

CABI_IMPORT(CH_CLOCK, "now-ms") uint64_t ch_clock_now_ms(void);
CABI_IMPORT(CH_CLOCK, "monotonic-ns") uint64_t ch_clock_monotonic_ns(void);

CABI_IMPORT(CH_RANDOM, "next-u64") uint64_t ch_random_next_u64(void);
CABI_IMPORT(CH_RANDOM, "bytes") void ch_random_bytes(uint32_t n, struct ch_list* ret);

CABI_IMPORT(CH_CRYPTO, "sha256") void ch_crypto_sha256(const void* data, uint32_t len, struct ch_list* ret);
CABI_IMPORT(CH_CRYPTO, "ed25519-verify")
int32_t ch_crypto_ed25519_verify(const void* pk, uint32_t pk_len, const void* msg, uint32_t msg_len, const void* sig,
                                 uint32_t sig_len);
