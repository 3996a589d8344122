// The seed's policy.approve in Rust (std, no crates) over `covenant bindgen
// --lang rust` bindings (escrow.rs). Same rules as c/, cpp/, assemblyscript/:
// see ../README.md ("Guest SDK examples").
mod escrow;
use escrow::{Decision, Intent, PolicyGuest};

/// The policy's "now": a fixed instant (2026-01-01T00:00:00Z) without a clock grant.
const POLICY_NOW_MS: u64 = 1_767_225_600_000;
const AGENT_ID_BYTES_MAX: usize = 64;

const CEILINGS: [(&str, u64); 5] = [
    ("inference", 10_000),
    ("search", 1_000),
    ("storage", 50_000),
    ("transfer", 1_000_000),
    ("compute", 250_000),
];

fn ceiling_of(task: &str) -> u64 {
    CEILINGS.iter().find(|(t, _)| *t == task).map_or(0, |(_, c)| *c)
}

fn check(i: &Intent, ceiling: u64) -> &'static str {
    let agent = i.agent_id.as_bytes();
    if agent.is_empty() {
        return "empty-agent-id";
    }
    if agent.len() > AGENT_ID_BYTES_MAX {
        return "agent-id-too-long";
    }
    if agent.iter().any(|&c| !(0x21..=0x7e).contains(&c)) {
        return "agent-id-not-printable-ascii";
    }
    if ceiling == 0 {
        return "unknown-task-type";
    }
    if i.expires_at_ms <= POLICY_NOW_MS {
        return "expired";
    }
    if i.max_units == 0 {
        return "zero-units";
    }
    if i.max_units > ceiling {
        return "over-ceiling";
    }
    "approved"
}

pub struct Component;

impl PolicyGuest for Component {
    fn approve(i: Intent) -> Decision {
        let ceiling = ceiling_of(&i.task_type);
        let reason = check(&i, ceiling);
        Decision { approved: reason == "approved", ceiling, reason: reason.to_string() }
    }
}
