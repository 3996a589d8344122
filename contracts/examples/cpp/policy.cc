// The seed's policy.approve in freestanding C++ (-fno-exceptions -fno-rtti, no
// standard library) over `covenant bindgen --lang cpp` bindings (escrow.hpp
// wrapping escrow.h/escrow.c). Same rules as c/, assemblyscript/, rust/: see
// ../README.md ("Guest SDK examples").
#include "escrow.hpp"

namespace {

using escrow::StringView;

// The policy's "now": a fixed instant (2026-01-01T00:00:00Z) without a clock grant.
constexpr uint64_t kPolicyNowMs = 1767225600000ull;
constexpr size_t kAgentIdBytesMax = 64;

struct TaskCeiling {
  StringView task;
  uint64_t ceiling;
};
constexpr TaskCeiling kCeilings[] = {
    {"inference", 10000}, {"search", 1000}, {"storage", 50000}, {"transfer", 1000000}, {"compute", 250000},
};

uint64_t ceiling_of(StringView task) {
  for (const auto& c : kCeilings)
    if (c.task == task) return c.ceiling;
  return 0;
}

StringView check(const escrow::Intent& i, uint64_t ceiling) {
  StringView agent = escrow::view(i.agent_id);
  if (agent.empty()) return "empty-agent-id";
  if (agent.size() > kAgentIdBytesMax) return "agent-id-too-long";
  for (size_t k = 0; k < agent.size(); ++k) {
    auto c = static_cast<unsigned char>(agent[k]);
    if (c < 0x21 || c > 0x7e) return "agent-id-not-printable-ascii";
  }
  if (ceiling == 0) return "unknown-task-type";
  if (i.expires_at_ms <= kPolicyNowMs) return "expired";
  if (i.max_units == 0) return "zero-units";
  if (i.max_units > ceiling) return "over-ceiling";
  return "approved";
}

}  // namespace

extern "C" escrow::Decision exports_policy_approve(escrow::Intent i) {
  escrow::Decision d{};
  d.ceiling = ceiling_of(escrow::view(i.task_type));
  StringView reason = check(i, d.ceiling);
  d.approved = reason == StringView("approved");
  d.reason = escrow::borrow(reason);  // static data: never freed
  policy_intent_free(&i);             // the contract owns its params
  return d;
}
