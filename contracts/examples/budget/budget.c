// A stateful policy: per-agent budgets kept in kv (covenant:host/kv), with a
// log line per decision and the decision time from covenant:host/clock.
// WIT: budget.wit (world budget-policy). Grants: kv, log, clock, e.g.
//   {"capabilities": {"kv": {"namespace": "budget", "max_keys": 1000, "max_bytes": 65536},
//                     "log": {"level": "info"}, "clock": {}}}
// Keys: "spent/<agent-id>" and "limit/<agent-id>", values u64 little-endian.
// An agent id holding "/.." or a control character makes an invalid key: the
// kv capability traps and nothing is written.
#include "covenant_host.h"

#define DEFAULT_LIMIT 1000u
#define KEY_BYTES_MAX 300

static char key_buf[KEY_BYTES_MAX];

static uint32_t make_key(const char* prefix, const char* agent, uint32_t agent_len) {
  uint32_t n = cabi_strlen(prefix);
  if (agent_len > KEY_BYTES_MAX - n) __builtin_trap();
  cabi_copy((uint8_t*)key_buf, (const uint8_t*)prefix, n);
  cabi_copy((uint8_t*)key_buf + n, (const uint8_t*)agent, agent_len);
  return n + agent_len;
}

static uint64_t load_u64(const char* prefix, const char* agent, uint32_t agent_len, uint64_t dflt) {
  uint32_t n = make_key(prefix, agent, agent_len);
  struct ch_opt_bytes r;
  ch_kv_get(key_buf, n, &r);
  if (!r.is_some || r.len != 8) return dflt;
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | r.ptr[i];
  return v;
}

static void store_u64(const char* prefix, const char* agent, uint32_t agent_len, uint64_t v) {
  uint32_t n = make_key(prefix, agent, agent_len);
  uint8_t b[8];
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
  ch_kv_set(key_buf, n, b, 8);
}

// verdict { approved: bool, spent: u64, remaining: u64, reason: string }: size 32, align 8.
static struct {
  uint8_t approved;
  uint8_t pad[7];
  uint64_t spent;
  uint64_t remaining;
  const char* reason_ptr;
  uint32_t reason_len;
} verdict;

static char log_buf[512];

static void log_decision(const char* agent, uint32_t agent_len, uint64_t amount, int approved, uint64_t now_ms) {
  uint32_t n = 0;
  const char* head = approved ? "approved " : "denied ";
  uint32_t hl = cabi_strlen(head);
  cabi_copy((uint8_t*)log_buf, (const uint8_t*)head, hl);
  n += hl;
  uint32_t al = agent_len > 200 ? 200 : agent_len;
  cabi_copy((uint8_t*)log_buf + n, (const uint8_t*)agent, al);
  n += al;
  log_buf[n++] = ' ';
  n += cabi_u64_to_dec(amount, log_buf + n);
  const char* at = " at ";
  cabi_copy((uint8_t*)log_buf + n, (const uint8_t*)at, 4);
  n += 4;
  n += cabi_u64_to_dec(now_ms, log_buf + n);
  ch_log_write(CH_LOG_INFO, log_buf, n);
}

static uint8_t* decide(int approved, uint64_t spent, uint64_t limit, const char* reason) {
  verdict.approved = (uint8_t)approved;
  verdict.spent = spent;
  verdict.remaining = spent >= limit ? 0 : limit - spent;
  verdict.reason_ptr = reason;
  verdict.reason_len = cabi_strlen(reason);
  return (uint8_t*)&verdict;
}

CABI_EXPORT("covenant:budget/budget@0.1.0#approve")
uint8_t* approve(const char* agent, uint32_t agent_len, uint64_t amount) {
  if (agent_len == 0) return decide(0, 0, 0, "empty agent id");
  uint64_t limit = load_u64("limit/", agent, agent_len, DEFAULT_LIMIT);
  uint64_t spent = load_u64("spent/", agent, agent_len, 0);
  uint64_t now = ch_clock_now_ms();
  if (amount == 0) return decide(0, spent, limit, "zero amount");
  if (amount > limit || spent > limit - amount) {
    log_decision(agent, agent_len, amount, 0, now);
    return decide(0, spent, limit, "over budget");
  }
  spent += amount;
  store_u64("spent/", agent, agent_len, spent);
  log_decision(agent, agent_len, amount, 1, now);
  return decide(1, spent, limit, "ok");
}

CABI_EXPORT("cabi_post_covenant:budget/budget@0.1.0#approve")
void approve_post_return(uint8_t* ret) {
  (void)ret;
  cabi_reset();
}

CABI_EXPORT("covenant:budget/budget@0.1.0#set-limit")
void set_limit(const char* agent, uint32_t agent_len, uint64_t limit) {
  store_u64("limit/", agent, agent_len, limit);
  cabi_reset();
}

CABI_EXPORT("covenant:budget/budget@0.1.0#spent")
uint64_t spent(const char* agent, uint32_t agent_len) {
  uint64_t v = load_u64("spent/", agent, agent_len, 0);
  cabi_reset();
  return v;
}

CABI_EXPORT("covenant:budget/budget@0.1.0#spend-then-trap")
void spend_then_trap(const char* agent, uint32_t agent_len, uint64_t amount) {
  uint64_t s = load_u64("spent/", agent, agent_len, 0);
  store_u64("spent/", agent, agent_len, s + amount);
  __builtin_trap();
}
