// A JavaScript implementation of Covenant's host capabilities
// (src/host/wit/host.wit, package covenant:host@0.1.0) for components
// transpiled by jco, so that a component importing covenant:host/* runs in
// Node. Used by tools/component.mjs (`run`/`bench` with `--host covenant`);
// described in docs/components-node.md.
//
// It follows src/host/capabilities.cc where that is cheap, so the same calls
// give the same results as in Covenant:
//   kv      an in-memory store per run; writes are journaled per export call
//           and committed only when the call returns (a trap discards them);
//           key checks and the value / list-keys bounds as in Covenant. No
//           grants, so no namespace quotas (max_keys / max_bytes).
//   log     every line kept (no level filter, no line/byte bounds) and
//           handed to the `onLog` callback.
//   clock   now-ms: a fixed value (default 1700000000000); monotonic-ns:
//           fixed for one export call, +1 per call (1, 2, 3, ...).
//   crypto  sha256 and Ed25519 verification with node:crypto (OpenSSL), not
//           libsodium: equal for honest keys and signatures; libsodium also
//           rejects small-order public keys, which OpenSSL may accept.
//   random  ChaCha20-IETF keyed by a 32-byte seed with libsodium's
//           randombytes_buf_deterministic nonce, restarted for every export
//           call, as Covenant does; the seed is `randomSeed` (default 32 zero
//           bytes) for every call, whereas Covenant draws a fresh seed per call
//           and records it: values agree only for the same seed.
//
// jco calls imports with its own JS conventions: u64 as BigInt, list<u8> as
// Uint8Array, option<T> as T | undefined, enums as strings; function names
// camelCased (`list-keys` -> `listKeys`, `now-ms` -> `nowMs`).
import { createCipheriv, createHash, createPublicKey, verify } from 'node:crypto';

export const KV_KEY_BYTES_MAX = 512;
export const KV_VALUE_BYTES_MAX = 128 * 1024;
export const KV_LIST_KEYS_MAX = 1000;
export const KV_LIST_BYTES_MAX = 128 * 1024;
export const RANDOM_BYTES_MAX = 4096;
export const DEFAULT_NOW_MS = 1700000000000n;

const U64_MAX = (1n << 64n) - 1n;
const utf8 = (s) => Buffer.from(s, 'utf8');

/** A capability refusing a request: a trap of the export call, as in Covenant. */
export class HostTrap extends Error {
  constructor(message) {
    super(message);
    this.name = 'HostTrap';
  }
}

// src/host/capabilities.cc kv_key_error, same rules and messages.
function kvKeyError(key, isPrefix) {
  const b = utf8(key);
  const shown = b.length > 64 ? b.subarray(0, 64).toString('utf8') + '...' : key;
  if (!isPrefix && b.length === 0) return 'kv key is empty';
  if (b.length > KV_KEY_BYTES_MAX) return `kv key of ${b.length} bytes is longer than ${KV_KEY_BYTES_MAX}`;
  for (const c of b) if (c < 0x20 || c === 0x7f) return `kv key "${shown}" contains a control character`;
  if (b.length && b[0] === 0x2f) return `kv key "${shown}" starts with '/' (keys are relative to the namespace)`;
  const segs = key.split('/');
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i];
    const last = i === segs.length - 1;
    if ((seg === '.' || seg === '..') && !(isPrefix && last && seg === '.'))
      return `kv key "${shown}" has a '${seg}' segment (no path escapes: keys are names, not paths)`;
  }
  return '';
}

const byteOrder = (a, b) => Buffer.compare(utf8(a), utf8(b));

// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the 32 key bytes.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
// libsodium's randombytes_buf_deterministic nonce.
const RANDOM_NONCE = Buffer.from('LibsodiumDRG', 'latin1');

/**
 * Creates one host: state lives as long as the returned object (one `run`).
 *
 * options: nowMs (BigInt), randomSeed (32-byte Uint8Array), onLog(level, msg).
 * Returns { imports, beginCall(), endCall(ok), kv, logs }:
 *   imports    the jco import object (keys with and without the @0.1.0 version)
 *   beginCall  before each export call: fixes the call's clock, restarts random
 *   endCall    after it: commits the kv journal if ok, else discards it
 *   kv         the committed store (Map key -> Uint8Array)
 */
export function createCovenantHost(options = {}) {
  const nowMs = BigInt(options.nowMs ?? DEFAULT_NOW_MS);
  const seed = Buffer.from(options.randomSeed ?? new Uint8Array(32));
  if (seed.length !== 32) throw new Error('random seed must be 32 bytes');
  const onLog = options.onLog ?? (() => {});

  const store = new Map(); // committed: key -> Uint8Array
  let journal = new Map(); // this call: key -> Uint8Array | null (deleted)
  let monotonic = 0n;
  let randomOffset = 0;

  const read = (key) => (journal.has(key) ? journal.get(key) : store.get(key) ?? null);

  const kv = {
    get(key) {
      const e = kvKeyError(key, false);
      if (e) throw new HostTrap(e);
      const v = read(key);
      return v === null ? undefined : new Uint8Array(v);
    },
    set(key, value) {
      if (value.length > KV_VALUE_BYTES_MAX)
        throw new HostTrap(`kv value of ${value.length} bytes is larger than ${KV_VALUE_BYTES_MAX}`);
      const e = kvKeyError(key, false);
      if (e) throw new HostTrap(e);
      journal.set(key, new Uint8Array(value));
    },
    delete(key) {
      const e = kvKeyError(key, false);
      if (e) throw new HostTrap(e);
      const existed = read(key) !== null;
      journal.set(key, null);
      return existed;
    },
    listKeys(prefix) {
      const e = kvKeyError(prefix, true);
      if (e) throw new HostTrap(e);
      const p = utf8(prefix);
      const keys = new Set();
      for (const k of store.keys()) keys.add(k);
      for (const k of journal.keys()) keys.add(k);
      const out = [...keys]
        .filter((k) => read(k) !== null && utf8(k).subarray(0, p.length).equals(p))
        .sort(byteOrder)
        .slice(0, KV_LIST_KEYS_MAX);
      let bytes = 0;
      for (let i = 0; i < out.length; i++) {
        bytes += utf8(out[i]).length + 8;
        if (bytes > KV_LIST_BYTES_MAX) return out.slice(0, i);
      }
      return out;
    },
  };

  const log = {
    write(lvl, msg) {
      onLog(lvl, msg);
    },
  };

  const clock = {
    nowMs: () => nowMs,
    monotonicNs: () => monotonic,
  };

  const crypto = {
    sha256: (data) => new Uint8Array(createHash('sha256').update(data).digest()),
    ed25519Verify(pubkey, msg, sig) {
      if (pubkey.length !== 32 || sig.length !== 64) return false;
      try {
        const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, pubkey]), format: 'der', type: 'spki' });
        return verify(null, msg, key, sig);
      } catch {
        return false;
      }
    },
  };

  // Bytes [randomOffset, randomOffset + n) of ChaCha20-IETF(seed, nonce) from block 0.
  function draw(n) {
    const block = Math.floor(randomOffset / 64);
    const skip = randomOffset % 64;
    const iv = Buffer.alloc(16);
    iv.writeUInt32LE(block, 0);
    RANDOM_NONCE.copy(iv, 4);
    const c = createCipheriv('chacha20', seed, iv);
    const ks = Buffer.concat([c.update(Buffer.alloc(skip + n)), c.final()]);
    randomOffset += n;
    return new Uint8Array(ks.subarray(skip, skip + n));
  }
  const random = {
    nextU64() {
      const b = draw(8);
      let v = 0n;
      for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
      return v & U64_MAX;
    },
    bytes(n) {
      if (n > RANDOM_BYTES_MAX) throw new HostTrap(`random.bytes(${n}): at most ${RANDOM_BYTES_MAX} bytes per request`);
      return draw(n);
    },
  };

  const ifaces = { kv, log, clock, crypto, random };
  const imports = {};
  for (const [name, impl] of Object.entries(ifaces)) {
    // The generated code reads imports['covenant:host/kv']; its .d.ts names the versioned key.
    imports[`covenant:host/${name}`] = impl;
    imports[`covenant:host/${name}@0.1.0`] = impl;
  }

  return {
    imports,
    kv: store,
    beginCall() {
      journal = new Map();
      monotonic += 1n;
      randomOffset = 0;
    },
    endCall(ok) {
      if (ok)
        for (const [k, v] of journal) {
          if (v === null) store.delete(k);
          else store.set(k, v);
        }
      journal = new Map();
    },
  };
}
