#!/usr/bin/env python3
"""Writes tests/contracts/intents.jsonl: the shared corpus of seed intents that
every example contract (C, C++, AssemblyScript, Rust) must decide identically.
Deterministic: a fixed seed, no clock. Run from anywhere:
    python3 tests/contracts/gen_intents.py > tests/contracts/intents.jsonl
u64 fields are decimal strings (docs/abi.md: JSON numbers lose precision past 2^53)."""
import json
import random

NOW_MS = 1767225600000  # the example policy's fixed "now" (2026-01-01T00:00:00Z)
U64_MAX = 2**64 - 1
TASKS = {"inference": 10000, "search": 1000, "storage": 50000, "transfer": 1000000, "compute": 250000}

AGENTS = [
    "agent-7", "a", "x" * 64, "y" * 65, "", "acct:merchant-42", "agent 7", "agent\t7", "agent\u00e9",
    "\u30a8\u30fc\u30b8\u30a7\u30f3\u30c8", "\U0001f916-bot", "~!@#$%^&*()_+", "\x7f", "\x00", "z" * 4096,
    "orchestrator/worker-3", "A-B-C", "agent-" + "9" * 58,
]
TASK_NAMES = list(TASKS) + [
    "mining", "Inference", "inference ", " inference", "", "inferenc", "inference\x00", "search\u00a0", "\u63a8\u7406",
    "t" * 10000, "transfer" * 3, "compute\U0001f4bb",
]


def units_for(task):
    c = TASKS.get(task, 0)
    return [0, 1, 2, c, c + 1, c - 1 if c else 3, U64_MAX, 2**63, 2**53 + 1, 123456789]


EXPIRIES = [0, 1, NOW_MS - 1, NOW_MS, NOW_MS + 1, NOW_MS + 86_400_000, U64_MAX, 2**63, 1767225600, 4102444800000]


def intent(agent, task, units, expires):
    return {"agent_id": agent, "task_type": task, "max_units": str(units), "expires_at_ms": str(expires)}


def main():
    rows = []
    # One row per edge on each axis, the others held at an approvable baseline.
    for a in AGENTS:
        rows.append(intent(a, "inference", 500, NOW_MS + 1))
    for t in TASK_NAMES:
        rows.append(intent("agent-7", t, 500, NOW_MS + 1))
    for t in TASKS:
        for u in units_for(t):
            rows.append(intent("agent-7", t, u, NOW_MS + 1))
    for e in EXPIRIES:
        rows.append(intent("agent-7", "search", 10, e))
    # Random combinations (several rules failing at once: the first in order wins).
    rng = random.Random(20261125)
    while len(rows) < 320:
        t = rng.choice(TASK_NAMES)
        u = rng.choice(units_for(t) + [rng.randrange(0, 2_000_000), rng.randrange(0, 2**64)])
        e = rng.choice(EXPIRIES + [rng.randrange(0, 2**64), NOW_MS + rng.randrange(-10**9, 10**9)])
        rows.append(intent(rng.choice(AGENTS), t, u, e))
    for r in rows:
        print(json.dumps(r, ensure_ascii=False, separators=(",", ":")))


if __name__ == "__main__":
    main()
