// Times the benchmark workloads on Node's V8: compile, instantiate and execute
// (warm median), and prints one JSON object on stdout. Used by bench_engine for
// its node columns; runnable alone:
//   node bench/node/run.mjs --wasm-dir build/contracts/bench [--quick] [--spec bench/workloads.json]
//   node --liftoff-only bench/node/run.mjs ...   # Liftoff only (V8 11: --no-wasm-tier-up still tiers up)
//   node --no-liftoff bench/node/run.mjs ...                  # TurboFan only
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const quick = argv.includes('--quick');
const specPath = opt('--spec', join(here, '..', 'workloads.json'));
const wasmDir = opt('--wasm-dir', join(here, '..', '..', 'build', 'contracts', 'bench'));
const only = opt('--only', null);
const spec = JSON.parse(readFileSync(specPath, 'utf8'));

const nowNs = () => process.hrtime.bigint();
const usSince = (t0) => Number(nowNs() - t0) / 1000;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const out = { runtime: 'node', v8: process.versions.v8, node: process.version,
              flags: process.execArgv, quick, workloads: {}, self_checks: [] };

for (const w of spec.workloads) {
  if (only && w.name !== only) continue;
  const bytes = readFileSync(join(wasmDir, w.wasm));
  const args = quick ? w.quick_args : w.args;
  // Compile: first compile of these bytes in this process (V8 may compile
  // functions lazily, so this is a lower bound on its real compile work).
  let t0 = nowNs();
  const module = await WebAssembly.compile(bytes);
  const compile_us = usSince(t0);
  // Instantiate: median of many, after a warm-up.
  const instN = quick ? 20 : (bytes.length > 100000 ? 200 : 2000);
  const inst = [];
  for (let i = 0; i < instN; i++) {
    t0 = nowNs();
    new WebAssembly.Instance(module, {});
    inst.push(usSince(t0));
  }
  const instance = new WebAssembly.Instance(module, {});
  const f = instance.exports[w.export];
  let checksum = f(...args);
  const r = { compile_us, instantiate_us: median(inst), wasm_size_bytes: bytes.length };
  if (w.kind === 'call') {
    const calls = quick ? w.quick_calls : w.calls;
    const per = [];
    for (let k = 0; k < 7; k++) {
      t0 = nowNs();
      let acc = 0;
      for (let i = 0; i < calls; i++) acc = (acc + f(args[0])) | 0;
      per.push(Number(nowNs() - t0) / calls);
      if (acc === 0x7fffffff) console.error('');  // keep acc live
    }
    r.call_ns = median(per);
    r.execute_us = r.call_ns / 1000;
  } else {
    const reps = quick ? 3 : 9;
    for (let i = 0; i < 2; i++) checksum = f(...args);  // warm: tier-up if enabled
    const ex = [];
    for (let i = 0; i < reps; i++) {
      t0 = nowNs();
      const c = f(...args);
      ex.push(usSince(t0));
      if (c !== checksum) throw new Error(`${w.name}: checksum changed ${c} != ${checksum}`);
    }
    r.execute_us = median(ex);
  }
  r.checksum = checksum;
  out.workloads[w.name] = r;
}

for (const c of spec.self_checks || []) {
  const { instance } = await WebAssembly.instantiate(readFileSync(join(wasmDir, c.wasm)), {});
  const got = instance.exports[c.export](...c.args);
  out.self_checks.push({ export: c.export, expected: c.result, got, ok: got === c.result });
}
console.log(JSON.stringify(out));
