// Compares Covenant's core signatures (abi_spec_dump output) with the ones
// wasm-tools' dummy module generator (via jco) derives from the same WIT.
import { componentEmbed, print } from '@bytecodealliance/jco-transpile/wasm-tools';
import { readFileSync } from 'node:fs';
// usage: node wasm_tools_sigdiff.mjs dump.json   (npm i @bytecodealliance/jco beside it)
const pkgs = JSON.parse(readFileSync(process.argv[2], 'utf8'));
let checked = 0, bad = 0, skipped = 0;
function sigOf(text) {
  const p = [...text.matchAll(/\(param ([^)]*)\)/g)].flatMap(m => m[1].trim().split(/\s+/));
  const r = [...text.matchAll(/\(result ([^)]*)\)/g)].flatMap(m => m[1].trim().split(/\s+/));
  return JSON.stringify({ params: p, results: r });
}
for (const pkg of pkgs) {
  const src = pkg.wit + '\nworld wexp { export t; }\nworld wimp { import t; }\n';
  for (const [world, dir] of [['wexp', 'export'], ['wimp', 'import']]) {
    let wat;
    try { wat = await print(await componentEmbed({ witSource: src, dummy: true, world })); }
    catch (e) {
      // wasm-tools no longer accepts the old named-results syntax `-> (a: T, ..)`.
      if (/expected a type, found '\('/.test(String(e))) { skipped++; continue; }
      console.log('seed', pkg.seed, world, 'ERROR', String(e)); bad++; continue;
    }
    const types = {};
    for (const m of wat.matchAll(/\(type \(;(\d+);\) \(func([^\n]*)\)\)/g)) types[m[1]] = sigOf(m[2]);
    const funcs = {};
    for (const m of wat.matchAll(/\(func \(;(\d+);\) \(type (\d+)\)/g)) funcs[m[1]] = types[m[2]];
    for (const fn of pkg.functions) {
      let got;
      if (dir === 'export') {
        const m = wat.match(new RegExp(`\\(export "[^"]*\\|${fn.name}" \\(func (\\d+)\\)\\)`));
        got = m && funcs[m[1]];
      } else {
        const m = wat.match(new RegExp(`\\(import "[^"]*" "${fn.name}" \\(func \\(;\\d+;\\) \\(type (\\d+)\\)\\)\\)`));
        got = m && types[m[1]];
      }
      const ours = JSON.stringify(fn[dir]);
      checked++;
      if (got !== ours) { bad++; if (bad < 10) console.log('seed', pkg.seed, dir, fn.name, 'wasm-tools', got, 'ours', ours); }
    }
  }
}
console.log(`checked ${checked} signatures against wasm-tools: ${bad} mismatches (${skipped} package/world pairs skipped: named results)`);
