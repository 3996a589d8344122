// Cross-checks expected.json against V8 (an independent Wasm implementation)
// for the rows whose outcome does not depend on Covenant's own limits (fuel,
// deadline, call depth cap, memory cap, load limits, host imports).
//   node --stack-size=7000 tests/engine/adversarial/check_node.mjs BUILD_DIR
// (V8's default stack is too small for depth_fat(10000); 7000 KB fits the 8 MiB main thread.)
// Needs the .wasm files: wat2wasm is run here into a temp dir.
import { readFileSync, mkdtempSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join, basename } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const buildDir = process.argv[2] || join(here, '..', '..', '..', 'build');
const spec = JSON.parse(readFileSync(join(here, 'expected.json'), 'utf8'));
const tmp = mkdtempSync(join(tmpdir(), 'adv-'));

// V8 messages -> the trap kinds they can mean (V8 merges some kinds).
const v8Kinds = [
  [/unreachable/, ['unreachable']],
  [/memory access out of bounds/, ['memory_out_of_bounds']],
  [/(divide|remainder) by zero/, ['integer_divide_by_zero']],
  [/divide result unrepresentable/, ['integer_overflow']],
  [/float unrepresentable/, ['integer_overflow', 'invalid_conversion']],
  [/table index is out of bounds/, ['table_out_of_bounds']],
  [/null function|signature mismatch/, ['uninitialized_element', 'indirect_call_type_mismatch']],
  [/call stack size/, ['stack_exhausted']],
];
const engineSpecific = (c) =>
  c.expect.load_error || ['out_of_fuel', 'deadline', 'host'].includes(c.expect.trap) ||
  c.export === 'grow_until_refused' || (c.export === 'depth' && c.args[0] > 10000) ||
  c.file.startsWith('host_');

const modules = new Map();
function load(file) {
  if (modules.has(file)) return modules.get(file);
  const wat = file.startsWith('gen:')
    ? join(buildDir, 'tests', 'engine', 'adversarial', file.slice(4))
    : join(here, file);
  const out = join(tmp, basename(wat) + '.wasm');
  execFileSync('wat2wasm', [wat, '-o', out]);
  const m = new WebAssembly.Module(readFileSync(out));
  modules.set(file, m);
  return m;
}

let bad = 0, checked = 0;
for (const c of spec.cases) {
  if (engineSpecific(c)) continue;
  const inst = new WebAssembly.Instance(load(c.file), {});
  const f = inst.exports[c.export];
  const args = c.args.map((a) => (typeof a === 'string' ? BigInt(a) : a));
  let got;
  try {
    const r = f(...args);
    got = { results: [String(r)] };
  } catch (e) {
    const hit = v8Kinds.find(([re]) => re.test(String(e.message)));
    got = { trap: hit ? hit[1] : ['?' + e.message] };
  }
  checked++;
  const ok = c.expect.trap
    ? got.trap && got.trap.includes(c.expect.trap)
    : got.results && got.results[0] === String(c.expect.results[0]);
  if (!ok) {
    bad++;
    console.log(`MISMATCH ${c.file} ${c.export}(${c.args}): expected ${JSON.stringify(c.expect)} got ${JSON.stringify(got)}`);
  }
}
console.log(`${checked} rows checked against V8, ${bad} mismatches`);
process.exit(bad ? 1 : 0);
