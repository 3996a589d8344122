// Example contract: an agent spending policy, the seed article's idea in plain
// C over core Wasm types (no WIT yet). Compiled with clang --target=wasm32,
// freestanding, no imports: see README.md for the exports and expected results.
#include <stdint.h>

#define EXPORT(name) __attribute__((export_name(#name)))

// Reason codes: stable, never reused, ordered by which check runs first.
enum {
  kApproved = 0,
  kMalformed = 1,      // the intent could not be read
  kInvalidAmount = 2,  // requested <= 0 or max_units < 0
  kExpired = 3,        // now >= expires_at
  kOverLimit = 4,      // requested > max_units
  kBadCurrency = 5,    // currency not in the allow list
  kBadRecipient = 6,   // recipient without an allowed prefix
};

// approve: may an agent move `requested` units under a cap of `max_units`
// before `expires_at` (seconds since the epoch), given the time `now`?
EXPORT(approve)
int32_t approve(int64_t max_units, int64_t requested, int64_t expires_at, int64_t now) {
  if (requested <= 0 || max_units < 0) return kInvalidAmount;
  if (now >= expires_at) return kExpired;
  if (requested > max_units) return kOverLimit;
  return kApproved;
}

// A buffer the host may write an intent into before calling check_intent.
#define INTENT_SIZE_BYTES_MAX 4096
static char intent_buffer[INTENT_SIZE_BYTES_MAX];

EXPORT(intent_buffer_ptr)
int32_t intent_buffer_ptr(void) { return (int32_t)(uintptr_t)intent_buffer; }

EXPORT(intent_buffer_size)
int32_t intent_buffer_size(void) { return INTENT_SIZE_BYTES_MAX; }

static int bytes_eq(const char* a, uint32_t n, const char* z) {
  uint32_t i = 0;
  for (; i < n; i++) {
    if (z[i] == 0 || z[i] != a[i]) return 0;
  }
  return z[i] == 0;
}

static int has_prefix(const char* a, uint32_t n, const char* z) {
  for (uint32_t i = 0; z[i] != 0; i++) {
    if (i >= n || z[i] != a[i]) return 0;
  }
  return 1;
}

// check_intent: scans a flat JSON object of string and non-negative integer
// values, byte by byte, e.g.
//   {"amount":125000,"currency":"USDC","recipient":"acct:merchant-42","expires_at":1767225600}
// and applies approve() plus the currency and recipient allow lists.
// [ptr, ptr+len) must lie inside linear memory, else the guest traps
// (memory_out_of_bounds), which is the point of a sandbox.
EXPORT(check_intent)
int32_t check_intent(int32_t ptr, int32_t len, int64_t max_units, int64_t now) {
  const char* s = (const char*)(uintptr_t)(uint32_t)ptr;
  uint32_t n = (uint32_t)len;
  const char *currency = 0, *recipient = 0;
  uint32_t currency_n = 0, recipient_n = 0;
  int64_t amount = -1, expires_at = -1;
  uint32_t i = 0;
  if (n == 0 || s[i++] != '{') return kMalformed;
  for (;;) {
    while (i < n && (s[i] == ' ' || s[i] == ',' || s[i] == '\n')) i++;
    if (i >= n) return kMalformed;
    if (s[i] == '}') break;
    if (s[i++] != '"') return kMalformed;
    const char* key = s + i;
    uint32_t key_n = 0;
    while (i < n && s[i] != '"') { i++; key_n++; }
    if (i + 1 >= n || s[i + 1] != ':') return kMalformed;
    i += 2;
    if (i >= n) return kMalformed;
    if (s[i] == '"') {
      const char* v = s + ++i;
      uint32_t v_n = 0;
      while (i < n && s[i] != '"') { i++; v_n++; }
      if (i >= n) return kMalformed;
      i++;
      if (bytes_eq(key, key_n, "currency")) { currency = v; currency_n = v_n; }
      if (bytes_eq(key, key_n, "recipient")) { recipient = v; recipient_n = v_n; }
    } else if (s[i] >= '0' && s[i] <= '9') {
      int64_t v = 0;
      while (i < n && s[i] >= '0' && s[i] <= '9') {
        if (v > 922337203685477580) return kMalformed;
        v = v * 10 + (s[i++] - '0');
      }
      if (bytes_eq(key, key_n, "amount")) amount = v;
      if (bytes_eq(key, key_n, "expires_at")) expires_at = v;
    } else {
      return kMalformed;
    }
  }
  if (amount < 0 || expires_at < 0 || currency == 0 || recipient == 0) return kMalformed;
  int32_t code = approve(max_units, amount, expires_at, now);
  if (code != kApproved) return code;
  if (!bytes_eq(currency, currency_n, "USDC") && !bytes_eq(currency, currency_n, "EURC"))
    return kBadCurrency;
  if (!has_prefix(recipient, recipient_n, "acct:merchant-")) return kBadRecipient;
  return kApproved;
}

// Sample intents shipped in the data segment, so a CLI that passes only
// numbers can exercise check_intent: sample_intent(i, max_units, now).
static const char* const kSamples[4] = {
    "{\"amount\":125000,\"currency\":\"USDC\",\"recipient\":\"acct:merchant-42\",\"expires_at\":1767225600}",
    "{\"amount\":9900000,\"currency\":\"USDC\",\"recipient\":\"acct:merchant-42\",\"expires_at\":1767225600}",
    "{\"amount\":500,\"currency\":\"DOGE\",\"recipient\":\"acct:merchant-42\",\"expires_at\":1767225600}",
    "{\"amount\":500,\"currency\":\"EURC\",\"recipient\":\"acct:exchange-9\",\"expires_at\":1767225600}",
};

EXPORT(sample_intent)
int32_t sample_intent(int32_t index, int64_t max_units, int64_t now) {
  if (index < 0 || index >= 4) return kMalformed;
  const char* s = kSamples[index];
  int32_t n = 0;
  while (s[n] != 0) n++;
  return check_intent((int32_t)(uintptr_t)s, n, max_units, now);
}

// Budget burner for fuel demos: sums i*i for i < n (wrapping), O(n) fuel.
EXPORT(spend_fuel)
int64_t spend_fuel(int64_t n) {
  uint64_t acc = 0;
  for (int64_t i = 0; i < n; i++) acc += (uint64_t)i * (uint64_t)i ^ (acc >> 7);
  return (int64_t)acc;
}
