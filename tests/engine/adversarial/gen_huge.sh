#!/bin/sh
# Generates compile-bomb modules for the adversarial corpus (run at build time).
#   gen_huge.sh straight N OUT.wat  - export "huge": ~N straight-line instructions
#                                     (N/6 steps of a = a*3 + k), returns a as i32
#   gen_huge.sh nested  N OUT.wat   - export "nested": N nested blocks, each a br_if
#                                     and an add; returns the count of levels passed
# The expected results are written as a comment on the module's first line and
# are listed in expected.json.
set -eu
kind=$1 n=$2 out=$3
case "$kind" in
straight)
  awk -v n="$n" 'BEGIN {
    steps = int(n / 6); a = 0;
    for (i = 0; i < steps; i++) { a = (a * 3 + (i % 100)) % 4294967296 }
    s = a >= 2147483648 ? a - 4294967296 : a;
    printf ";; expected result: %d (steps %d)\n", s, steps;
    print "(module";
    print "  (func (export \"huge\") (result i32)";
    print "    (local $a i32)";
    for (i = 0; i < steps; i++) {
      printf "    local.get $a\n    i32.const 3\n    i32.mul\n    i32.const %d\n    i32.add\n    local.set $a\n", i % 100;
    }
    print "    local.get $a))";
  }' > "$out"
  ;;
nested)
  awk -v n="$n" 'BEGIN {
    printf ";; expected result: %d\n", n;
    print "(module";
    print "  (func (export \"nested\") (param $stop i32) (result i32)";
    print "    (local $c i32)";
    for (i = 0; i < n; i++) printf "    block\n";
    for (i = 0; i < n; i++) {
      printf "    local.get $c\n    i32.const 1\n    i32.add\n    local.set $c\n";
      printf "    local.get $c\n    local.get $stop\n    i32.eq\n    br_if 0\n    end\n";
    }
    print "    local.get $c))";
  }' > "$out"
  ;;
*)
  echo "usage: gen_huge.sh straight|nested N OUT.wat" >&2
  exit 1
  ;;
esac
