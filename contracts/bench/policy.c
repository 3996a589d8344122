// A byte-by-byte policy check over a JSON-ish intent held in a data segment:
// scan keys and values, parse numbers, compare strings against allow lists and
// the amount against a limit. The shape of a spending-policy contract.
#include "workload.h"

static const char* const kIntents[4] = {
    "{\"agent\":\"agent-7f3a\",\"action\":\"transfer\",\"amount\":125000,\"currency\":\"USDC\","
    "\"recipient\":\"acct:merchant-42\",\"memo\":\"invoice 2024-118 monthly hosting, net 30\","
    "\"expires_at\":1767225600,\"nonce\":\"8c1e4f0a9b7d\"}",
    "{\"agent\":\"agent-01bc\",\"action\":\"transfer\",\"amount\":9900000,\"currency\":\"USDC\","
    "\"recipient\":\"acct:exchange-9\",\"memo\":\"rebalance treasury to cold storage\","
    "\"expires_at\":1767225600,\"nonce\":\"00ff13a2\"}",
    "{\"agent\":\"agent-7f3a\",\"action\":\"refund\",\"amount\":4200,\"currency\":\"EURC\","
    "\"recipient\":\"acct:customer-1138\",\"memo\":\"order 5521 returned\","
    "\"expires_at\":1767225600,\"nonce\":\"77aa\"}",
    "{\"agent\":\"agent-9999\",\"action\":\"transfer\",\"amount\":310,\"currency\":\"DOGE\","
    "\"recipient\":\"acct:merchant-42\",\"memo\":\"tip\",\"expires_at\":1700000000,"
    "\"nonce\":\"1\"}",
};

static const char* const kAllowedCurrencies[3] = {"USDC", "EURC", "USDT"};
static const char* const kAllowedRecipientPrefixes[2] = {"acct:merchant-", "acct:customer-"};

typedef struct {
  const char* p;
  uint32_t n;
} Slice;

static int slice_eq(Slice s, const char* z) {
  uint32_t i = 0;
  for (; i < s.n; i++) {
    if (z[i] == 0 || z[i] != s.p[i]) return 0;
  }
  return z[i] == 0;
}

static int slice_has_prefix(Slice s, const char* z) {
  uint32_t i = 0;
  for (; z[i] != 0; i++) {
    if (i >= s.n || z[i] != s.p[i]) return 0;
  }
  return 1;
}

// Reason codes, ordered by which check runs first.
enum { kApproved = 0, kMalformed = 1, kBadAction = 2, kBadCurrency = 3, kBadRecipient = 4,
       kOverLimit = 5, kExpired = 6 };

static int32_t check_intent(const char* s, int64_t limit, int64_t now, uint32_t* hash) {
  Slice action = {0, 0}, currency = {0, 0}, recipient = {0, 0};
  int64_t amount = -1, expires_at = -1;
  uint32_t h = 2166136261u;
  uint32_t i = 0;
  if (s[i++] != '{') return kMalformed;
  for (;;) {
    while (s[i] == ' ' || s[i] == ',') i++;
    if (s[i] == '}') break;
    if (s[i++] != '"') return kMalformed;
    Slice key = {s + i, 0};
    while (s[i] != '"') {
      if (s[i] == 0) return kMalformed;
      i++;
      key.n++;
    }
    i++;
    if (s[i++] != ':') return kMalformed;
    Slice str = {0, 0};
    int64_t num = -1;
    if (s[i] == '"') {
      i++;
      str.p = s + i;
      while (s[i] != '"') {
        if (s[i] == 0) return kMalformed;
        h = (h ^ (uint8_t)s[i]) * 16777619u;
        i++;
        str.n++;
      }
      i++;
    } else if (s[i] >= '0' && s[i] <= '9') {
      num = 0;
      while (s[i] >= '0' && s[i] <= '9') {
        if (num > 922337203685477580) return kMalformed;
        num = num * 10 + (s[i] - '0');
        i++;
      }
    } else {
      return kMalformed;
    }
    if (slice_eq(key, "action")) action = str;
    else if (slice_eq(key, "currency")) currency = str;
    else if (slice_eq(key, "recipient")) recipient = str;
    else if (slice_eq(key, "amount")) amount = num;
    else if (slice_eq(key, "expires_at")) expires_at = num;
  }
  *hash ^= h;
  if (action.p == 0 || currency.p == 0 || recipient.p == 0 || amount < 0 || expires_at < 0)
    return kMalformed;
  if (!slice_eq(action, "transfer") && !slice_eq(action, "refund")) return kBadAction;
  int currency_ok = 0;
  for (int c = 0; c < 3; c++) currency_ok |= slice_eq(currency, kAllowedCurrencies[c]);
  if (!currency_ok) return kBadCurrency;
  int recipient_ok = 0;
  for (int r = 0; r < 2; r++) recipient_ok |= slice_has_prefix(recipient, kAllowedRecipientPrefixes[r]);
  if (!recipient_ok) return kBadRecipient;
  if (amount > limit) return kOverLimit;
  if (expires_at <= now) return kExpired;
  return kApproved;
}

// Checks reps intents (cycling through four); the limit moves with the
// repetition so no two rounds are the same. Returns a checksum of the reason
// codes and of the scanned bytes.
WORKLOAD_EXPORT(bench_policy)
int32_t bench_policy(int32_t reps) {
  uint32_t sum = 0, hash = 0;
  for (int32_t r = 0; r < reps; r++) {
    int64_t limit = 100000 + (int64_t)(r & 1023) * 1000;
    int32_t code = check_intent(kIntents[r & 3], limit, 1735689600, &hash);
    sum = sum * 31u + (uint32_t)code;
  }
  return (int32_t)(sum ^ hash);
}
