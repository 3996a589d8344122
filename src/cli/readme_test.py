#!/usr/bin/env python3
"""Runs the README's shell blocks exactly as written, so they cannot drift.

Usage: readme_test.py SOURCE_DIR BUILD_DIR

The rule (also stated in README.md): every ```sh block runs, in order, each in
a fresh `bash -euo pipefail`, in one scratch directory whose entries link the
checkout's top-level folders (build/ is BUILD_DIR), with BUILD_DIR first on
PATH so that `covenant` is the binary just built. A block whose preceding line
is `<!-- readme-test: skip (REASON) -->` is not run; a skip without a reason is
an error, and so is a README with no block to run. Files a block writes (my/,
intent.json, grants.json, ...) stay for the blocks after it. Exit 0 when every
block exits 0.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

# Files the blocks make, and what must hold of them (issue 10: the Rust line
# once omitted -C strip=debuginfo and made a 5 MB contract instead of ~28 KB).
CHECKS = [
    ("policy_rust.wasm", lambda p: os.path.isfile(p) and os.path.getsize(p) < 200_000,
     "the README's Rust build line must strip debug info (under 200 KB)"),
    ("policy_c.wasm", os.path.isfile, "step 3 builds policy_c.wasm"),
    ("policy_cpp.wasm", os.path.isfile, "step 3 builds policy_cpp.wasm"),
    ("policy_as.wasm", os.path.isfile, "step 3 builds policy_as.wasm"),
    ("budget.sqlite", os.path.isfile, "the budget example keeps its kv state in budget.sqlite (--kv)"),
]

SKIP = re.compile(r"^<!-- readme-test: skip \((?P<why>[^)]+)\) -->$")


def blocks(readme):
    """(line number, text, skip reason or None) of each ```sh block."""
    lines = readme.split("\n")
    out = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```sh":
            start = i + 1
            j = start
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            if j == len(lines):
                raise SystemExit(f"README.md:{i + 1}: unterminated ```sh block")
            prev = lines[i - 1].strip() if i > 0 else ""
            skip = SKIP.match(prev)
            if prev.startswith("<!-- readme-test") and not skip:
                raise SystemExit(f"README.md:{i}: a readme-test marker must read <!-- readme-test: skip (REASON) -->")
            out.append((start + 1, "\n".join(lines[start:j]) + "\n", skip.group("why") if skip else None))
            i = j
        i += 1
    return out


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    source, build = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    with open(os.path.join(source, "README.md"), encoding="utf-8") as f:
        found = blocks(f.read())
    if not any(why is None for _, _, why in found):
        raise SystemExit("README.md has no shell block to run")
    scratch = tempfile.mkdtemp(prefix="covenant_readme_")
    try:
        for name in os.listdir(source):
            if name.startswith(".") or name == "build":
                continue
            os.symlink(os.path.join(source, name), os.path.join(scratch, name))
        os.symlink(build, os.path.join(scratch, "build"))
        env = dict(os.environ)
        env["PATH"] = build + os.pathsep + env.get("PATH", "")
        env["COVENANT_HOME"] = os.path.join(scratch, "home")        # keys, checkpoints
        env["COVENANT_CACHE_DIR"] = os.path.join(scratch, "cache")  # artifacts
        failed = 0
        for line, text, why in found:
            if why is not None:
                print(f"README.md:{line}: skipped ({why})")
                continue
            print(f"README.md:{line}: running\n{text}", flush=True)
            r = subprocess.run(["bash", "-euo", "pipefail", "-c", text], cwd=scratch, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
            print(r.stdout, end="")
            if r.returncode != 0:
                print(f"FAIL README.md:{line}: the block exited {r.returncode}")
                failed += 1
                break  # later blocks build on this one
        # What the blocks must have made, beyond exiting 0.
        for name, ok, why in CHECKS:
            path = os.path.join(scratch, name)
            if not failed and not ok(path):
                print(f"FAIL {name}: {why}")
                failed += 1
        print("README blocks: " + ("ok" if not failed else "FAILED"))
        return 1 if failed else 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
