// The seed's policy.approve in AssemblyScript over `covenant bindgen --lang
// assemblyscript` bindings (escrow.ts is the entry, escrow_types.ts the WIT
// types). Same rules as c/, cpp/, rust/: see ../README.md ("Guest SDK examples").
import { Decision, Intent } from "./escrow_types";

// The policy's "now": a fixed instant (2026-01-01T00:00:00Z) without a clock grant.
const POLICY_NOW_MS: u64 = 1767225600000;
const AGENT_ID_BYTES_MAX: i32 = 64;

function ceilingOf(task: string): u64 {
  if (task == "inference") return 10000;
  if (task == "search") return 1000;
  if (task == "storage") return 50000;
  if (task == "transfer") return 1000000;
  if (task == "compute") return 250000;
  return 0;
}

function check(i: Intent, ceiling: u64): string {
  const agentBytes = String.UTF8.byteLength(i.agentId);
  if (agentBytes == 0) return "empty-agent-id";
  if (agentBytes > AGENT_ID_BYTES_MAX) return "agent-id-too-long";
  // UTF-16 code units outside 0x21..0x7e are exactly the UTF-8 bytes outside it.
  for (let k = 0; k < i.agentId.length; k++) {
    const c = i.agentId.charCodeAt(k);
    if (c < 0x21 || c > 0x7e) return "agent-id-not-printable-ascii";
  }
  if (ceiling == 0) return "unknown-task-type";
  if (i.expiresAtMs <= POLICY_NOW_MS) return "expired";
  if (i.maxUnits == 0) return "zero-units";
  if (i.maxUnits > ceiling) return "over-ceiling";
  return "approved";
}

export function policyApprove(i: Intent): Decision {
  const d = new Decision();
  d.ceiling = ceilingOf(i.taskType);
  d.reason = check(i, d.ceiling);
  d.approved = d.reason == "approved";
  return d;
}
