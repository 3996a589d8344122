#!/usr/bin/env python3
"""`covenant approve` (the CLI contract of docs/cli.md) on every 8th corpus
intent, for each example contract that was built: the printed decision must
equal the rules of contracts/examples/README.md ("Guest SDK examples").
usage: cli_approve.py COVENANT_BIN BUILD_DIR SOURCE_DIR"""
import json
import os
import subprocess
import sys
import tempfile

NOW_MS = 1767225600000
CEILINGS = {"inference": 10000, "search": 1000, "storage": 50000, "transfer": 1000000, "compute": 250000}


def reference(i):
    agent = i["agent_id"].encode()
    ceiling = CEILINGS.get(i["task_type"], 0)
    units, expires = int(i["max_units"]), int(i["expires_at_ms"])
    if not agent:
        reason = "empty-agent-id"
    elif len(agent) > 64:
        reason = "agent-id-too-long"
    elif any(c < 0x21 or c > 0x7E for c in agent):
        reason = "agent-id-not-printable-ascii"
    elif ceiling == 0:
        reason = "unknown-task-type"
    elif expires <= NOW_MS:
        reason = "expired"
    elif units == 0:
        reason = "zero-units"
    elif units > ceiling:
        reason = "over-ceiling"
    else:
        reason = "approved"
    return {"approved": reason == "approved", "ceiling": str(ceiling), "reason": reason}


def main():
    covenant, build, source = sys.argv[1:4]
    with open(os.path.join(source, "tests/contracts/intents.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()][::8]
    passed = failed = 0
    for lang in ("c", "cpp", "assemblyscript", "rust"):
        wasm = os.path.join(build, "contracts/examples", f"policy_{lang}.wasm")
        if not os.path.exists(wasm):
            print(f"{lang}: not built (toolchain missing), skipped")
            continue
        for n, row in enumerate(rows):
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as t:
                json.dump(row, t, ensure_ascii=False)
            try:
                out = subprocess.run([covenant, "approve", wasm, "--intent", t.name, "--json", "--tier", "interp"],
                                     capture_output=True, text=True, timeout=120)
            finally:
                os.unlink(t.name)
            got = json.loads(out.stdout)["result"] if out.returncode == 0 else None
            if got == reference(row):
                passed += 1
            else:
                failed += 1
                print(f"{lang} row {n * 8}: got {got!r} (exit {out.returncode}, {out.stderr.strip()[:200]}), want {reference(row)!r}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
