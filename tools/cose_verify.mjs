// Independent COSE_Sign1 / Ed25519 verifier for Covenant receipts.
// Uses cbor-x (CBOR) and @noble/ed25519 (RFC 8032, strict: zip215 false);
// shares no code with the C++ implementation. The Sig_structure is rebuilt
// here from RFC 9052 §4.4: ["Signature1", protected, external_aad = h'', payload].
// The payload map is checked against docs/receipts.md: integer keys 1..13 in
// ascending order, each once; keys 1-6 and 8-10 required with their types;
// key 7 (state root after) only when it differs from key 6 (absent = equal).
//
// node cose_verify.mjs LINES_FILE
//   Input: lines "<pubkey hex> <cose hex> <valid|invalid>".
//   Output: one JSON object {checked, mismatches: [...], decoded: [...]} on stdout.
//   Exit 0 iff every line's verdict matched its expectation.
// node cose_verify.mjs --layout FILE.cose
//   Prints where the bytes of one receipt go (no signature check): each part
//   of the envelope and each payload field with its encoded size.
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { Decoder, Encoder, Tag } from 'cbor-x';
import * as ed from '@noble/ed25519';

const dec = new Decoder({ mapsAsObjects: false, useRecords: false });
// tagUint8Array: false, or cbor-x wraps Uint8Array in tag 64 (RFC 8746) and
// the Sig_structure would differ from RFC 9052's plain byte strings.
const enc = new Encoder({ useRecords: false, mapsAsObjects: false, tagUint8Array: false });
const isBytes = (v) => v instanceof Uint8Array;
const isUint = (v) => (typeof v === 'number' && Number.isInteger(v) && v >= 0) || (typeof v === 'bigint' && v >= 0n);
const hex = (b) => Buffer.from(b).toString('hex');

// Payload keys (docs/receipts.md): name and type check.
const FIELDS = {
  1: ['contract hash', (v) => isBytes(v) && v.length === 32],
  2: ['world#export', (v) => typeof v === 'string'],
  3: ['intent hash', (v) => isBytes(v) && v.length === 32],
  4: ['decision', () => true],
  5: ['fuel used', isUint],
  6: ['state root before', (v) => isBytes(v) && v.length === 32],
  7: ['state root after', (v) => isBytes(v) && v.length === 32],
  8: ['time (ms)', isUint],
  9: ['trace id', (v) => isBytes(v) && v.length === 16],
  10: ['previous receipt hash', (v) => isBytes(v) && v.length === 32],
  11: ['raw intent', isBytes],
  12: ['interface hash', (v) => isBytes(v) && v.length === 16],
  13: ['intent signer', (v) => Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'string' && x.length > 0)],
};
const REQUIRED = [1, 2, 3, 4, 5, 6, 8, 9, 10];

// Number of entries a definite-length map head announces (cbor-x folds
// duplicate keys into one Map entry, so compare with the head).
function mapHeadCount(b) {
  const ai = b[0] & 0x1f;
  if (b[0] >> 5 !== 5 || ai > 25) return -1;
  return ai < 24 ? ai : ai === 24 ? b[1] : (b[1] << 8) | b[2];
}

function checkPayload(payload) {
  const m = dec.decode(payload);
  if (!(m instanceof Map)) throw new Error('payload is not a map');
  if (mapHeadCount(payload) !== m.size) throw new Error('payload map has duplicate keys');
  let last = 0;
  for (const [k, v] of m) {
    if (typeof k !== 'number' || !Number.isInteger(k) || k <= last) throw new Error(`payload key ${k} out of order or not an integer`);
    last = k;
    if (!FIELDS[k]) throw new Error(`payload key ${k} is unknown`);
    if (!FIELDS[k][1](v)) throw new Error(`payload key ${k} (${FIELDS[k][0]}) has the wrong type or size`);
  }
  for (const k of REQUIRED) if (!m.has(k)) throw new Error(`payload key ${k} (${FIELDS[k][0]}) is missing`);
  if (m.has(7) && Buffer.compare(Buffer.from(m.get(7)), Buffer.from(m.get(6))) === 0) {
    throw new Error('payload key 7 equals key 6: the deterministic encoding omits it');
  }
  return m;
}

async function verify(pub, cose) {
  const top = dec.decode(cose); // throws on malformed input or trailing bytes
  if (!(top instanceof Tag) || top.tag !== 18) throw new Error('not a tagged COSE_Sign1 (tag 18)');
  const arr = top.value;
  if (!Array.isArray(arr) || arr.length !== 4) throw new Error('COSE_Sign1 must be an array of 4');
  const [prot, unprot, payload, sig] = arr;
  if (!isBytes(prot) || !(unprot instanceof Map) || !isBytes(payload) || !isBytes(sig)) throw new Error('bad COSE_Sign1 member types');
  const hdr = dec.decode(prot);
  if (!(hdr instanceof Map) || hdr.get(1) !== -8) throw new Error('alg is not EdDSA (-8)');
  const kid = hdr.get(4);
  const want = createHash('sha256').update(pub).digest().subarray(0, 8);
  if (!isBytes(kid) || Buffer.compare(Buffer.from(kid), want) !== 0) throw new Error('kid does not match the key');
  if (sig.length !== 64) throw new Error('signature must be 64 bytes');
  const tbs = enc.encode(['Signature1', prot, new Uint8Array(0), payload]);
  const ok = await ed.verifyAsync(sig, tbs, pub, { zip215: false });
  if (!ok) throw new Error('signature does not verify');
  const m = checkPayload(payload);
  return {
    entry: m.get(2),
    fuel_used: Number(m.get(5)),
    time_unix_ms: Number(m.get(8)),
    kid: hex(kid),
    decision: m.get(4),
    state_root_before: hex(m.get(6)),
    state_root_after: hex(m.get(7) ?? m.get(6)),
    after_omitted: !m.has(7),
  };
}

// --layout: byte spans from a minimal head parser (definite lengths only).
function itemEnd(b, pos) {
  const ib = b[pos], major = ib >> 5, ai = ib & 0x1f;
  let arg = ai, p = pos + 1;
  if (ai >= 24 && ai <= 27) {
    const n = 1 << (ai - 24);
    arg = 0;
    for (let i = 0; i < n; ++i) arg = arg * 256 + b[p + i];
    p += n;
  } else if (ai > 27) throw new Error(`byte ${pos}: indefinite or reserved head`);
  if (major === 2 || major === 3) return p + arg;
  if (major === 4) { for (let i = 0; i < arg; ++i) p = itemEnd(b, p); return p; }
  if (major === 5) { for (let i = 0; i < 2 * arg; ++i) p = itemEnd(b, p); return p; }
  if (major === 6) return itemEnd(b, p);
  return p;
}
const headLen = (b, pos) => { const ai = b[pos] & 0x1f; return ai < 24 ? 1 : 1 + (1 << (ai - 24)); };

function layout(cose) {
  const rows = [];
  const row = (part, bytes, note = '') => rows.push([part, bytes, note]);
  let p = headLen(cose, 0);
  p += headLen(cose, p);
  row('tag 18 + array(4) heads', p);
  let e = itemEnd(cose, p);
  const hdr = dec.decode(cose.subarray(p + headLen(cose, p), e));
  row('protected header', e - p, `{1: ${hdr.get(1)}, 4: h'${hex(hdr.get(4))}'}`);
  p = e; e = itemEnd(cose, p);
  row('unprotected header', e - p, '{}');
  p = e; e = itemEnd(cose, p);
  const ph = headLen(cose, p);
  row('payload bstr head', ph);
  const payload = cose.subarray(p + ph, e);
  let q = headLen(payload, 0);
  row('  payload map head', q, `${mapHeadCount(payload)} entries`);
  while (q < payload.length) {
    const k = payload[q];
    const end = itemEnd(payload, itemEnd(payload, q));
    const v = dec.decode(payload.subarray(itemEnd(payload, q), end));
    const note = k === 2 ? JSON.stringify(v) : k === 4 ? JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? x.toString() : x)) : isBytes(v) ? `${v.length} bytes` : String(v);
    row(`  ${k} ${FIELDS[k] ? FIELDS[k][0] : '?'}`, end - q, note);
    q = end;
    if (k === 6 && payload[q] !== 7) row('  7 state root after', 0, 'omitted: equal to key 6');
  }
  p = e; e = itemEnd(cose, p);
  row('signature', e - p, 'Ed25519, 64 bytes');
  if (e !== cose.length) throw new Error(`${cose.length - e} bytes after the COSE_Sign1`);
  for (const [part, bytes, note] of rows) process.stdout.write(`${part.padEnd(28)} ${String(bytes).padStart(4)}  ${note}\n`);
  process.stdout.write(`${'total'.padEnd(28)} ${String(cose.length).padStart(4)}  (payload ${payload.length})\n`);
}

if (process.argv[2] === '--layout') {
  layout(readFileSync(process.argv[3]));
  process.exit(0);
}

const lines = readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean);
const out = { checked: 0, mismatches: [], decoded: [] };
for (const [i, line] of lines.entries()) {
  const [pubHex, coseHex, expect] = line.split(' ');
  let verdict = 'valid', why = '';
  let fields = null;
  try {
    fields = await verify(Buffer.from(pubHex, 'hex'), Buffer.from(coseHex, 'hex'));
  } catch (e) {
    verdict = 'invalid';
    why = e.message;
  }
  out.checked++;
  if (verdict !== expect) out.mismatches.push({ line: i, expect, verdict, why });
  if (verdict === 'valid' && fields) out.decoded.push({ line: i, ...fields });
}
process.stdout.write(JSON.stringify(out) + '\n');
process.exit(out.mismatches.length ? 1 : 0);
