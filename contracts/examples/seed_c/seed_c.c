// The seed article's policy.approve (agent:settlement@0.1.0, world escrow) in
// freestanding C with hand-written canonical ABI glue. WIT: the built-in seed
// world (covenant::wit::seed_policy_wit(), also seed.wit beside this file).
//
// The project's reference policy (contracts/examples/README.md, the same rules
// as the guest SDK examples and tests/contracts/intents.jsonl); the first
// failing check decides the reason:
//   agent-id empty                        -> "empty-agent-id"
//   agent-id over 64 bytes                -> "agent-id-too-long"
//   agent-id byte outside 0x21..0x7e      -> "agent-id-not-printable-ascii"
//   task-type unknown (ceiling 0)         -> "unknown-task-type"
//   expires-at-ms <= 2026-01-01T00:00:00Z -> "expired" (a fixed "now": the seed
//                                            world imports no clock)
//   max-units == 0                        -> "zero-units"
//   max-units > the task's ceiling        -> "over-ceiling"
//   otherwise approved, reason "approved".
// Ceilings: inference 10000, search 1000, storage 50000, transfer 1000000,
// compute 250000; the decision carries the task's ceiling (0 if unknown).
#include "cabi.h"

#define POLICY_NOW_MS 1767225600000ull
#define AGENT_ID_BYTES_MAX 64u

struct task {
  const char* name;
  uint64_t ceiling;
};
static const struct task kTasks[] = {
    {"inference", 10000}, {"search", 1000}, {"storage", 50000}, {"transfer", 1000000}, {"compute", 250000},
};

// decision { approved: bool, ceiling: u64, reason: string }: size 24, align 8.
static struct {
  uint8_t approved;
  uint8_t pad[7];
  uint64_t ceiling;
  const char* reason_ptr;
  uint32_t reason_len;
} ret_area;

static uint8_t* decide(int approved, uint64_t ceiling, const char* reason) {
  ret_area.approved = (uint8_t)approved;
  ret_area.ceiling = ceiling;
  ret_area.reason_ptr = reason;
  ret_area.reason_len = cabi_strlen(reason);
  return (uint8_t*)&ret_area;
}

// approve: func(i: intent) -> decision, intent flattened to
// (agent-id ptr, len, task-type ptr, len, max-units, expires-at-ms).
CABI_EXPORT("agent:settlement/policy@0.1.0#approve")
uint8_t* approve(const char* agent, uint32_t agent_len, const char* task, uint32_t task_len, uint64_t max_units,
                 uint64_t expires_at_ms) {
  uint64_t ceiling = 0;
  for (uint32_t i = 0; i < sizeof kTasks / sizeof kTasks[0]; i++)
    if (cabi_eq(task, task_len, kTasks[i].name)) ceiling = kTasks[i].ceiling;
  if (agent_len == 0) return decide(0, ceiling, "empty-agent-id");
  if (agent_len > AGENT_ID_BYTES_MAX) return decide(0, ceiling, "agent-id-too-long");
  for (uint32_t i = 0; i < agent_len; i++) {
    uint8_t c = (uint8_t)agent[i];
    if (c < 0x21 || c > 0x7e) return decide(0, ceiling, "agent-id-not-printable-ascii");
  }
  if (ceiling == 0) return decide(0, 0, "unknown-task-type");
  if (expires_at_ms <= POLICY_NOW_MS) return decide(0, ceiling, "expired");
  if (max_units == 0) return decide(0, ceiling, "zero-units");
  if (max_units > ceiling) return decide(0, ceiling, "over-ceiling");
  return decide(1, ceiling, "approved");
}

// The host is done with the decision: free the intent's strings.
CABI_EXPORT("cabi_post_agent:settlement/policy@0.1.0#approve")
void approve_post_return(uint8_t* ret) {
  (void)ret;
  cabi_reset();
}
