// The seed article's policy.approve (agent:settlement@0.1.0, world escrow) in
// freestanding C with hand-written canonical ABI glue. WIT: the built-in seed
// world (covenant::wit::seed_policy_wit(), also seed.wit beside this file).
//
// Rules (checked in this order, first failure decides):
//   agent-id empty              -> denied, ceiling 0, "empty agent id"
//   task-type unknown           -> denied, ceiling 0, "unknown task type"
//   expires-at-ms == 0          -> denied, ceiling of the task, "expired"
//   max-units > task ceiling    -> denied, ceiling of the task, "over ceiling"
//   otherwise                   -> approved, ceiling of the task, "ok"
// Task ceilings: compute 1000, inference 2000, storage 500, transfer 10000.
// The seed world imports nothing, so "expired" can only mean a zero expiry;
// a contract that wants the time imports covenant:host/clock (see ../budget).
#include "cabi.h"

struct task {
  const char* name;
  uint64_t ceiling;
};
static const struct task kTasks[] = {
    {"compute", 1000}, {"inference", 2000}, {"storage", 500}, {"transfer", 10000},
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
  (void)agent;
  if (agent_len == 0) return decide(0, 0, "empty agent id");
  const struct task* t = 0;
  for (uint32_t i = 0; i < sizeof kTasks / sizeof kTasks[0]; i++)
    if (cabi_eq(task, task_len, kTasks[i].name)) t = &kTasks[i];
  if (!t) return decide(0, 0, "unknown task type");
  if (expires_at_ms == 0) return decide(0, t->ceiling, "expired");
  if (max_units > t->ceiling) return decide(0, t->ceiling, "over ceiling");
  return decide(1, t->ceiling, "ok");
}

// The host is done with the decision: free the intent's strings.
CABI_EXPORT("cabi_post_agent:settlement/policy@0.1.0#approve")
void approve_post_return(uint8_t* ret) {
  (void)ret;
  cabi_reset();
}
