// The stateful per-agent budget policy of contracts/examples/budget/budget.c
// (same WIT, same rules, same kv keys and log lines) in Rust, over `covenant
// bindgen --lang rust contracts/examples/budget/budget.wit --deps
// src/host/wit/host.wit` bindings (budget_policy.rs, generated at build time
// beside a copy of this file): kv, log and clock are generated imports. Grants:
//   {"capabilities": {"kv": {"namespace": "budget", "max_keys": 1000, "max_bytes": 65536},
//                     "log": {"level": "info"}, "clock": {}}}
// tests/contracts/policy_corpus_test checks it decides, writes and logs as the C one.
mod budget_policy;
use budget_policy::*;

const DEFAULT_LIMIT: u64 = 1000;
const KEY_BYTES_MAX: usize = 300;
const LOG_AGENT_BYTES_MAX: usize = 200;

fn key(prefix: &str, agent: &str) -> String {
    if agent.len() > KEY_BYTES_MAX - prefix.len() {
        core::arch::wasm32::unreachable();
    }
    let mut k = String::with_capacity(prefix.len() + agent.len());
    k.push_str(prefix);
    k.push_str(agent);
    k
}

fn load_u64(prefix: &str, agent: &str, default: u64) -> u64 {
    match imports_kv_get(&key(prefix, agent)) {
        Some(v) if v.len() == 8 => u64::from_le_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]),
        _ => default,
    }
}

fn store_u64(prefix: &str, agent: &str, v: u64) {
    imports_kv_set(&key(prefix, agent), &v.to_le_bytes().to_vec());
}

fn log_decision(agent: &str, amount: u64, approved: bool, now_ms: u64) {
    // As budget.c: at most 200 bytes of the agent id (a cut inside a UTF-8
    // sequence makes the line invalid UTF-8, which the host refuses: a trap in both).
    let mut line: Vec<u8> = Vec::new();
    line.extend_from_slice(if approved { b"approved " } else { b"denied " });
    let a = agent.as_bytes();
    line.extend_from_slice(&a[..a.len().min(LOG_AGENT_BYTES_MAX)]);
    line.extend_from_slice(format!(" {} at {}", amount, now_ms).as_bytes());
    imports_log_write(Level::Info, &unsafe { String::from_utf8_unchecked(line) });
}

fn decide(approved: bool, spent: u64, limit: u64, reason: &str) -> Verdict {
    Verdict { approved, spent, remaining: if spent >= limit { 0 } else { limit - spent }, reason: reason.to_string() }
}

pub struct Component;

impl BudgetGuest for Component {
    fn approve(s: Spend) -> Verdict {
        if s.agent_id.is_empty() {
            return decide(false, 0, 0, "empty agent id");
        }
        let limit = load_u64("limit/", &s.agent_id, DEFAULT_LIMIT);
        let spent = load_u64("spent/", &s.agent_id, 0);
        let now = imports_clock_now_ms();
        if s.amount == 0 {
            return decide(false, spent, limit, "zero amount");
        }
        if s.amount > limit || spent > limit - s.amount {
            log_decision(&s.agent_id, s.amount, false, now);
            return decide(false, spent, limit, "over budget");
        }
        let spent = spent + s.amount;
        store_u64("spent/", &s.agent_id, spent);
        log_decision(&s.agent_id, s.amount, true, now);
        decide(true, spent, limit, "ok")
    }

    fn set_limit(agent_id: String, limit: u64) {
        store_u64("limit/", &agent_id, limit);
    }

    fn spent(agent_id: String) -> u64 {
        load_u64("spent/", &agent_id, 0)
    }

    fn spend_then_trap(s: Spend) {
        let spent = load_u64("spent/", &s.agent_id, 0);
        store_u64("spent/", &s.agent_id, spent.wrapping_add(s.amount));
        core::arch::wasm32::unreachable();
    }
}
