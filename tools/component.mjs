#!/usr/bin/env node
// WebAssembly components with the standard toolchain (wasm-tools and jco, from
// npm @bytecodealliance/jco-transpile, pinned in tools/package.json): make
// component binaries from Covenant's core modules, and run or benchmark them
// in Node through `jco transpile`. docs/components-node.md has the details.
//
//   node tools/component.mjs new CORE.wasm WIT_FILE WORLD OUT.wasm [--host-wit PATH]
//   node tools/component.mjs parse IN.wat OUT.wasm
//   node tools/component.mjs wit COMPONENT.wasm
//   node tools/component.mjs run COMPONENT.wasm CALLS.json [--host covenant] [--now-ms N] [--random-seed HEX]
//   node tools/component.mjs bench COMPONENT.wasm CALLS.json [--iterations N] [--method auto|per-call|batch]
//                                  [--batch N] [--process-env live|snapshot] [--host covenant] [--now-ms N] [--random-seed HEX]
//
// Exit codes: 0 ok, 1 failure (unreadable file, bad component or WIT, bad
// CALLS.json, unknown export), 2 bad usage. Messages go to stderr. A guest
// trap is not a failure of `run`: it is reported in the output.
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createCovenantHost, DEFAULT_NOW_MS } from './covenant_host.mjs';

const PROG = 'component.mjs';

class UsageError extends Error {}
class Failure extends Error {}

const USAGE = `usage:
  node tools/component.mjs new CORE.wasm WIT_FILE WORLD OUT.wasm [--host-wit PATH]
  node tools/component.mjs parse IN.wat OUT.wasm
  node tools/component.mjs wit COMPONENT.wasm
  node tools/component.mjs run COMPONENT.wasm CALLS.json [--host covenant] [--now-ms N] [--random-seed HEX]
  node tools/component.mjs bench COMPONENT.wasm CALLS.json [--iterations N] [--method auto|per-call|batch]
                                 [--batch N] [--process-env live|snapshot] [--host covenant] [--now-ms N] [--random-seed HEX]`;

// ---------------------------------------------------------------------------
// Arguments

// Splits argv into positionals and --options (each option takes one value).
function parseArgs(argv, allowed) {
  const pos = [];
  const opts = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const name = a.slice(2);
      if (!allowed.includes(name)) throw new UsageError(`unknown option ${a}`);
      if (i + 1 >= argv.length) throw new UsageError(`option ${a} needs a value`);
      if (name in opts) throw new UsageError(`option ${a} given twice`);
      opts[name] = argv[++i];
    } else {
      pos.push(a);
    }
  }
  return { pos, opts };
}

function expectPositionals(cmd, pos, names) {
  if (pos.length !== names.length)
    throw new UsageError(`${cmd} takes ${names.join(' ')} (got ${pos.length} argument${pos.length === 1 ? '' : 's'})`);
}

function positiveInt(name, s) {
  if (!/^[0-9]+$/.test(s) || Number(s) < 1 || !Number.isSafeInteger(Number(s)))
    throw new UsageError(`--${name} must be a positive integer, got "${s}"`);
  return Number(s);
}

function hostOptions(opts) {
  if (opts.host !== undefined && opts.host !== 'covenant')
    throw new UsageError(`--host must be "covenant", got "${opts.host}"`);
  if (opts.host === undefined && (opts['now-ms'] !== undefined || opts['random-seed'] !== undefined))
    throw new UsageError('--now-ms and --random-seed need --host covenant');
  let nowMs = DEFAULT_NOW_MS;
  if (opts['now-ms'] !== undefined) {
    if (!/^[0-9]+$/.test(opts['now-ms']) || BigInt(opts['now-ms']) >= 1n << 64n)
      throw new UsageError(`--now-ms must be a u64 in decimal, got "${opts['now-ms']}"`);
    nowMs = BigInt(opts['now-ms']);
  }
  let randomSeed;
  if (opts['random-seed'] !== undefined) {
    if (!/^[0-9a-fA-F]{64}$/.test(opts['random-seed']))
      throw new UsageError('--random-seed must be 64 hex digits (32 bytes)');
    randomSeed = Buffer.from(opts['random-seed'], 'hex');
  }
  return { covenant: opts.host === 'covenant', nowMs, randomSeed };
}

// ---------------------------------------------------------------------------
// Files

function readBytes(path, what) {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new Failure(`cannot read ${what} ${path}: ${e.code ?? e.message}`);
  }
}

function readText(path, what) {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new Failure(`cannot read ${what} ${path}: ${e.code ?? e.message}`);
  }
}

// Writes OUT atomically: a temporary file beside it, then rename.
function writeAtomic(path, bytes) {
  const tmp = join(dirname(resolve(path)), `.${basename(path)}.tmp-${process.pid}-${Date.now()}`);
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {}
    throw new Failure(`cannot write ${path}: ${e.code ?? e.message}`);
  }
}

// wasm-tools reports errors as ComponentError whose message may span lines.
const errText = (e) => (e instanceof Error ? e.message : String(e)).trim();

// wast's parse errors arrive as a Rust Debug dump; keep line:col and the message.
function watError(text) {
  const pos = /line: (\d+), col: (\d+)/.exec(text);
  const msg = /kind: Custom\("((?:[^"\\]|\\.)*)"\)/.exec(text);
  if (!pos || !msg) return ` ${text}`;
  return `${Number(pos[1]) + 1}:${Number(pos[2]) + 1}: ${msg[1].replace(/\\(.)/g, '$1')}`;
}

async function wasmTools() {
  try {
    return await import('@bytecodealliance/jco-transpile/wasm-tools');
  } catch (e) {
    throw new Failure(`cannot load @bytecodealliance/jco-transpile (run npm install in tools/, or bash scripts/setup.sh): ${errText(e)}`);
  }
}

// ---------------------------------------------------------------------------
// new / parse / wit

// host.wit's `package covenant:host@0.1.0;` header rewritten to the nested form
// `package covenant:host@0.1.0 { ... }`, so it can follow the contract's own
// package in one WIT source (componentEmbed cannot read files: witPath panics).
function nestHostWit(text, path = 'host WIT') {
  const m = /^[ \t]*package[ \t]+([A-Za-z0-9:@.\-+]+)[ \t]*;[ \t]*$/m.exec(text);
  if (!m) {
    if (/^[ \t]*package[ \t]+[^\s;{]+[ \t]*\{/m.test(text)) return text; // already nested
    throw new Failure(`${path}: no "package NAME;" header to nest`);
  }
  return text.slice(0, m.index) + `package ${m[1]} {` + text.slice(m.index + m[0].length) + '\n}\n';
}

async function cmdNew(argv) {
  const { pos, opts } = parseArgs(argv, ['host-wit']);
  expectPositionals('new', pos, ['CORE.wasm', 'WIT_FILE', 'WORLD', 'OUT.wasm']);
  const [corePath, witPath, world, outPath] = pos;
  const binary = readBytes(corePath, 'core module');
  let witSource = readText(witPath, 'WIT file');
  if (opts['host-wit'] !== undefined) {
    const host = readText(opts['host-wit'], 'host WIT file');
    witSource = witSource.replace(/\s*$/, '\n\n') + nestHostWit(host, opts['host-wit']);
  }
  const { componentEmbed, componentNew } = await wasmTools();
  let component;
  try {
    const embedded = await componentEmbed({ binary, witSource, world });
    component = await componentNew(embedded);
  } catch (e) {
    let hint = '';
    if (/package 'covenant:host@[^']*' not found/.test(errText(e)) && opts['host-wit'] === undefined)
      hint = ' (a world that imports covenant:host needs --host-wit src/host/wit/host.wit)';
    throw new Failure(`cannot make a component of ${corePath} with ${witPath} world ${world}: ${errText(e)}${hint}`);
  }
  writeAtomic(outPath, component);
}

async function cmdParse(argv) {
  const { pos } = parseArgs(argv, []);
  expectPositionals('parse', pos, ['IN.wat', 'OUT.wasm']);
  const text = readText(pos[0], 'WAT file');
  const { parse } = await wasmTools();
  let bytes;
  try {
    bytes = await parse(text);
  } catch (e) {
    throw new Failure(`${pos[0]}:${watError(errText(e))}`);
  }
  writeAtomic(pos[1], bytes);
}

async function cmdWit(argv) {
  const { pos } = parseArgs(argv, []);
  expectPositionals('wit', pos, ['COMPONENT.wasm']);
  const bytes = readBytes(pos[0], 'component');
  const { componentWit } = await wasmTools();
  let text;
  try {
    text = await componentWit(bytes);
  } catch (e) {
    throw new Failure(`${pos[0]}: ${errText(e)}`);
  }
  process.stdout.write(text.endsWith('\n') ? text : text + '\n');
}

// ---------------------------------------------------------------------------
// Tagged JSON: JS values of jco's bindings <-> JSON, losslessly.
//   BigInt <-> {"$bigint": "decimal"}, Uint8Array <-> {"$bytes": "hex"},
//   undefined <-> {"$undefined": true}, NaN / ±Infinity / -0 <-> {"$number": "NaN" | "Infinity" | "-Infinity" | "-0"};
//   other typed arrays (jco's list<s32>, list<f64>, ...) -> arrays; everything else plain JSON.

const TAGS = ['$bigint', '$bytes', '$undefined', '$number'];

function toTagged(v) {
  if (typeof v === 'bigint') return { $bigint: v.toString() };
  if (v === undefined) return { $undefined: true };
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return { $number: 'NaN' };
    if (v === Infinity) return { $number: 'Infinity' };
    if (v === -Infinity) return { $number: '-Infinity' };
    if (Object.is(v, -0)) return { $number: '-0' };
    return v;
  }
  if (v === null || typeof v !== 'object') return v;
  if (v instanceof Uint8Array) return { $bytes: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex') };
  if (ArrayBuffer.isView(v)) return Array.from(v, toTagged);
  if (Array.isArray(v)) return v.map(toTagged);
  const o = {};
  for (const [k, x] of Object.entries(v)) o[k] = toTagged(x);
  return o;
}

function fromTagged(v, path = 'value') {
  if (Array.isArray(v)) return v.map((x, i) => fromTagged(x, `${path}[${i}]`));
  if (v === null || typeof v !== 'object') return v;
  const keys = Object.keys(v);
  if (keys.length === 1 && TAGS.includes(keys[0])) {
    const x = v[keys[0]];
    switch (keys[0]) {
      case '$bigint':
        if (typeof x !== 'string' || !/^-?[0-9]+$/.test(x)) throw new Failure(`${path}: $bigint must be a decimal string`);
        return BigInt(x);
      case '$bytes':
        if (typeof x !== 'string' || !/^([0-9a-fA-F]{2})*$/.test(x)) throw new Failure(`${path}: $bytes must be a hex string`);
        return new Uint8Array(Buffer.from(x, 'hex'));
      case '$undefined':
        if (x !== true) throw new Failure(`${path}: $undefined must be true`);
        return undefined;
      case '$number':
        if (x === 'NaN') return NaN;
        if (x === 'Infinity') return Infinity;
        if (x === '-Infinity') return -Infinity;
        if (x === '-0') return -0;
        throw new Failure(`${path}: $number must be "NaN", "Infinity", "-Infinity" or "-0"`);
    }
  }
  const o = {};
  for (const k of keys) o[k] = fromTagged(v[k], `${path}.${k}`);
  return o;
}

// ---------------------------------------------------------------------------
// Loading a component in Node

// jco's identifier spelling: kebab-case -> lowerCamelCase (heck's
// to_lower_camel_case for WIT identifiers: `spend-then-trap` -> `spendThenTrap`,
// `next-u64` -> `nextU64`, `my-iface` -> `myIface`).
function camel(id) {
  return id
    .split('-')
    .map((w, i) => (i === 0 ? w.toLowerCase() : w.charAt(0).toUpperCase() + w.slice(1).toLowerCase()))
    .join('');
}

// Resolves a core (wit-bindgen) export name to the function on jco's root object:
//   ns:pkg/iface@ver#func -> root['ns:pkg/iface@ver'][camel(func)]  (or root[camel(iface)])
//   iface#func            -> root[camel(iface)][camel(func)]        (an inline interface)
//   func                  -> root[camel(func)]                      (a world-level function)
function resolveExport(root, name) {
  const hash = name.lastIndexOf('#');
  const has = (o, k) => o != null && Object.prototype.hasOwnProperty.call(o, k);
  let fn;
  if (hash < 0) {
    fn = has(root, camel(name)) ? root[camel(name)] : undefined;
  } else {
    const iface = name.slice(0, hash);
    const func = camel(name.slice(hash + 1));
    const short = iface.replace(/@[^@]*$/, '').replace(/^.*\//, '');
    const candidates = [iface, camel(short), short];
    const inst = candidates.map((k) => (has(root, k) ? root[k] : undefined)).find((x) => x && typeof x === 'object');
    fn = has(inst, func) ? inst[func] : undefined;
  }
  if (typeof fn !== 'function') {
    const avail = [];
    for (const [k, v] of Object.entries(root)) {
      if (typeof v === 'function') avail.push(k);
      else if (v && typeof v === 'object' && k.includes(':')) for (const f of Object.keys(v)) avail.push(`${k}#${f}`);
    }
    throw new Failure(`export "${name}" not found in the component (jco exports: ${avail.join(', ') || 'none'})`);
  }
  return fn;
}

// Transpiles the component into a temporary directory (instantiation mode:
// imports are given at instantiate time), imports the generated module and
// compiles its core modules; the directory is removed before returning.
// Returns instantiate(imports) -> Promise<root>.
async function loadComponent(path) {
  const bytes = readBytes(path, 'component');
  let transpileBytes;
  try {
    ({ transpileBytes } = await import('@bytecodealliance/jco-transpile'));
  } catch (e) {
    throw new Failure(`cannot load @bytecodealliance/jco-transpile (run npm install in tools/, or bash scripts/setup.sh): ${errText(e)}`);
  }
  let out;
  try {
    out = await transpileBytes(bytes, { name: 'component', instantiation: 'async', noComponentErrorWrapping: true });
  } catch (e) {
    throw new Failure(`jco transpile ${path}: ${errText(e)}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'covenant-jco-'));
  try {
    for (const [name, data] of Object.entries(out.files)) {
      if (name.includes('..')) throw new Failure(`jco produced an unexpected file name ${name}`);
      const p = join(dir, name);
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, data);
    }
    const mod = await import(pathToFileURL(join(dir, 'component.js')).href);
    const cores = new Map();
    for (const [name, data] of Object.entries(out.files))
      if (name.endsWith('.wasm')) cores.set(name, await WebAssembly.compile(data));
    const getCoreModule = (name) => {
      const m = cores.get(name);
      if (!m) throw new Failure(`jco asked for core module ${name}, which it did not produce`);
      return m;
    };
    return {
      imports: out.imports,
      instantiate: (imports) => mod.instantiate(getCoreModule, imports),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function readCalls(path) {
  let calls;
  try {
    calls = JSON.parse(readText(path, 'calls file'));
  } catch (e) {
    if (e instanceof Failure) throw e;
    throw new Failure(`${path}: not JSON: ${e.message}`);
  }
  if (!Array.isArray(calls)) throw new Failure(`${path}: expected a JSON array of {"export": NAME, "args": [...]}`);
  return calls.map((c, i) => {
    if (c === null || typeof c !== 'object' || typeof c.export !== 'string')
      throw new Failure(`${path}: call ${i}: expected {"export": NAME, "args": [...]}`);
    const args = c.args ?? [];
    if (!Array.isArray(args)) throw new Failure(`${path}: call ${i}: "args" must be an array`);
    return { export: c.export, args: fromTagged(args, `call ${i}.args`) };
  });
}

// Everything needed to make calls: the instance (re-made after a trap, as
// Covenant resets a trapped instance), the host, and the resolved functions.
async function prepare(componentPath, callsPath, hostOpts, onLog) {
  const calls = readCalls(callsPath);
  const comp = await loadComponent(componentPath);
  let host = null;
  let imports = {};
  if (hostOpts.covenant) {
    host = createCovenantHost({ nowMs: hostOpts.nowMs, randomSeed: hostOpts.randomSeed, onLog });
    imports = host.imports;
  }
  const other = comp.imports.filter((i) => !(hostOpts.covenant && i.startsWith('covenant:host/')));
  if (other.length)
    throw new Failure(
      `the component imports ${other.join(', ')}` +
        (other.every((i) => i.startsWith('covenant:host/')) ? ': pass --host covenant' : ', which this tool does not provide'),
    );
  let root;
  const instantiate = async () => {
    try {
      root = await comp.instantiate(imports);
    } catch (e) {
      throw new Failure(`instantiating ${componentPath}: ${errText(e)}`);
    }
    return calls.map((c) => resolveExport(root, c.export));
  };
  let fns = await instantiate();
  return {
    calls,
    host,
    fns: () => fns,
    reinstantiate: async () => {
      fns = await instantiate();
    },
  };
}

// One call: {"result": V}, {"err": E} (a top-level result<_, E> returned
// err: jco throws the payload itself) or {"trap": message}.
function outcome(f, args, host) {
  host?.beginCall();
  try {
    const v = f(...args);
    host?.endCall(true);
    return { ok: true, out: { result: toTagged(v) } };
  } catch (e) {
    host?.endCall(false);
    if (!(e instanceof Error)) return { ok: true, out: { err: toTagged(e) } };
    // Wasm traps: jco's wasmtime-style message ("wasm trap: integer divide by zero");
    // a covenant:host capability refusing: "host: <Covenant's message>"; else "<Name>: <message>".
    let msg = e.message;
    if (e.name === 'HostTrap') msg = `host: ${e.message}`;
    else if (e.name && e.name !== 'Error' && !e.message.startsWith('wasm trap')) msg = `${e.name}: ${e.message}`;
    return { ok: false, out: { trap: msg } };
  }
}

async function cmdRun(argv) {
  const { pos, opts } = parseArgs(argv, ['host', 'now-ms', 'random-seed']);
  expectPositionals('run', pos, ['COMPONENT.wasm', 'CALLS.json']);
  const hostOpts = hostOptions(opts);
  let callIndex = 0;
  const onLog = (lvl, msg) => process.stderr.write(`log[${callIndex}] ${lvl}: ${msg}\n`);
  const p = await prepare(pos[0], pos[1], hostOpts, onLog);
  const results = [];
  for (; callIndex < p.calls.length; callIndex++) {
    const r = outcome(p.fns()[callIndex], p.calls[callIndex].args, p.host);
    results.push(r.out);
    if (!r.ok) await p.reinstantiate();
  }
  process.stdout.write(JSON.stringify(results) + '\n');
}

// ---------------------------------------------------------------------------
// bench

function quantile(sorted, q) {
  // nearest-rank
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

async function cmdBench(argv) {
  const { pos, opts } = parseArgs(argv, ['iterations', 'method', 'batch', 'process-env', 'host', 'now-ms', 'random-seed']);
  expectPositionals('bench', pos, ['COMPONENT.wasm', 'CALLS.json']);
  const hostOpts = hostOptions(opts);
  const iterations = opts.iterations === undefined ? 200000 : positiveInt('iterations', opts.iterations);
  const method = opts.method ?? 'auto';
  if (!['auto', 'per-call', 'batch'].includes(method))
    throw new UsageError(`--method must be auto, per-call or batch, got "${method}"`);
  const batch = opts.batch === undefined ? 100 : positiveInt('batch', opts.batch);
  // jco 0.15's generated code calls _debugLog(...) several times per call and per
  // import, and each reads process.env.JCO_DEBUG: a getenv through Node's env
  // proxy. `snapshot` swaps process.env for a plain copy (same values) so those
  // reads are property loads; `live` (default) measures the code as generated.
  const processEnv = opts['process-env'] ?? 'live';
  if (!['live', 'snapshot'].includes(processEnv))
    throw new UsageError(`--process-env must be live or snapshot, got "${processEnv}"`);
  if (processEnv === 'snapshot') process.env = { ...process.env };
  let logLines = 0;
  const p = await prepare(pos[0], pos[1], hostOpts, () => logLines++);
  const n = p.calls.length;
  if (n === 0) throw new Failure(`${pos[1]}: no calls to time`);
  const fns = p.fns();
  const args = p.calls.map((c) => c.args);
  const host = p.host;
  const call = (i) => {
    host?.beginCall();
    let v;
    try {
      v = fns[i](...args[i]);
    } catch (e) {
      host?.endCall(false);
      const what = e instanceof Error ? errText(e) : `err ${JSON.stringify(toTagged(e))}`;
      throw new Failure(`call ${i} (${p.calls[i].export}) did not return during the bench: ${what}`);
    }
    host?.endCall(true);
    return v;
  };

  // Warm-up: every call at least once, and enough calls for V8's optimizing tiers.
  const warm = Math.max(n, 20000);
  for (let k = 0; k < warm; k++) call(k % n);

  // Cost of one timer read (back-to-back hrtime pairs).
  const timerSamples = [];
  for (let k = 0; k < 10000; k++) {
    const a = process.hrtime.bigint();
    const b = process.hrtime.bigint();
    timerSamples.push(Number(b - a));
  }
  timerSamples.sort((a, b) => a - b);
  const timerNs = quantile(timerSamples, 0.5);

  // auto: time calls one by one for a pilot; batch if the timer is over 5% of a call.
  let useBatch = method === 'batch';
  if (method === 'auto') {
    const pilot = [];
    for (let k = 0; k < Math.min(2000, iterations); k++) {
      const t0 = process.hrtime.bigint();
      call(k % n);
      pilot.push(Number(process.hrtime.bigint() - t0));
    }
    pilot.sort((a, b) => a - b);
    useBatch = timerNs > 0.05 * quantile(pilot, 0.5);
  }

  const samples = [];
  let total = 0n;
  let done = 0;
  if (useBatch) {
    while (done < iterations) {
      const m = Math.min(batch, iterations - done);
      const t0 = process.hrtime.bigint();
      for (let k = 0; k < m; k++) call((done + k) % n);
      const dt = process.hrtime.bigint() - t0;
      total += dt;
      samples.push(Number(dt) / m);
      done += m;
    }
  } else {
    for (; done < iterations; done++) {
      const t0 = process.hrtime.bigint();
      call(done % n);
      const dt = process.hrtime.bigint() - t0;
      total += dt;
      samples.push(Number(dt));
    }
  }
  samples.sort((a, b) => a - b);
  const round = (x) => Math.round(x * 10) / 10;
  const report = {
    calls: iterations,
    median_ns: round(quantile(samples, 0.5)),
    mean_ns: round(Number(total) / iterations),
    p99_ns: round(quantile(samples, 0.99)),
    method: useBatch ? `batch: ${batch} calls per sample, sample = batch time / ${batch}` : 'per-call: one timer pair per call',
    timer_overhead_ns: timerNs,
    distinct_calls: n,
    warmup_calls: warm,
    host: hostOpts.covenant ? 'covenant' : 'none',
    process_env: processEnv,
    node: process.version,
  };
  if (hostOpts.covenant) report.log_lines = logLines;
  process.stdout.write(JSON.stringify(report) + '\n');
}

// ---------------------------------------------------------------------------

const COMMANDS = { new: cmdNew, parse: cmdParse, wit: cmdWit, run: cmdRun, bench: cmdBench };

async function main() {
  const [cmd, ...rest] = process.argv.slice(2);
  if (cmd === undefined || cmd === '-h' || cmd === '--help') {
    process.stderr.write(USAGE + '\n');
    return cmd === undefined ? 2 : 0;
  }
  const f = COMMANDS[cmd];
  if (!f) throw new UsageError(`unknown command "${cmd}"`);
  await f(rest);
  return 0;
}

try {
  process.exitCode = await main();
} catch (e) {
  if (e instanceof UsageError) {
    process.stderr.write(`${PROG}: ${e.message}\n${USAGE}\n`);
    process.exitCode = 2;
  } else if (e instanceof Failure) {
    process.stderr.write(`${PROG}: ${e.message}\n`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`${PROG}: unexpected error: ${e?.stack ?? e}\n`);
    process.exitCode = 1;
  }
}
