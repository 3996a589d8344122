#!/usr/bin/env python3
"""Writes data_1mib.inc: 1 MiB of a fixed xorshift32 byte stream as a C initializer."""
import sys

out = sys.argv[1]
x = 2463534242
lines = []
row = []
for i in range(1 << 20):
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    row.append(str((x & 0xFF) | 1))
    if len(row) == 64:
        lines.append(",".join(row) + ",")
        row = []
with open(out, "w") as f:
    f.write("\n".join(lines) + "\n")
