// Independent COSE_Sign1 / Ed25519 verifier for Covenant receipts.
// Uses cbor-x (CBOR) and @noble/ed25519 (RFC 8032, strict: zip215 false);
// shares no code with the C++ implementation. The Sig_structure is rebuilt
// here from RFC 9052 §4.4: ["Signature1", protected, external_aad = h'', payload].
//
// Input (argv[2]): lines "<pubkey hex> <cose hex> <valid|invalid>".
// Output: one JSON object {checked, mismatches: [...], decoded: [...]} on stdout.
// Exit 0 iff every line's verdict matched its expectation.
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { Decoder, Encoder, Tag } from 'cbor-x';
import * as ed from '@noble/ed25519';

const dec = new Decoder({ mapsAsObjects: false, useRecords: false });
// tagUint8Array: false, or cbor-x wraps Uint8Array in tag 64 (RFC 8746) and
// the Sig_structure would differ from RFC 9052's plain byte strings.
const enc = new Encoder({ useRecords: false, mapsAsObjects: false, tagUint8Array: false });
const isBytes = (v) => v instanceof Uint8Array;

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
  const m = dec.decode(payload);
  if (!(m instanceof Map)) throw new Error('payload is not a map');
  return {
    entry: m.get(2),
    fuel_used: Number(m.get(5)),
    time_unix_ms: Number(m.get(8)),
    kid: Buffer.from(kid).toString('hex'),
    decision: m.get(4),
  };
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
