// RFC 8785 (JCS) canonical form of JSON values, by the npm `canonicalize`
// package (the RFC's reference implementation): shares no code with
// Covenant's C++ (src/settle/jcs.cc), which jcs_test compares with it.
//
// node jcs.mjs LINES_FILE
//   Input: one JSON value per line. Output: its canonical form, one per line.
import { readFileSync } from 'node:fs';
import canonicalize from 'canonicalize';

const lines = readFileSync(process.argv[2], 'utf8').split('\n').filter((l) => l.length > 0);
const out = lines.map((l) => canonicalize(JSON.parse(l)));
process.stdout.write(out.join('\n') + '\n');
