// Validates src/server/openapi.json: the OpenAPI 3.1 schema and semantic rules
// (@readme/openapi-parser), then Covenant's own rules: every route the service
// dispatches is present, every operation has an operationId, authenticated
// operations declare 401, mutating ones take Idempotency-Key.
// Usage: node validate.mjs [PATH]   (default: ../../src/server/openapi.json)
// Prints "openapi: valid (N paths)" and exits 0, or lists the problems and exits 1.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { validate, compileErrors } from '@readme/openapi-parser';

const here = path.dirname(fileURLToPath(import.meta.url));
const file = path.resolve(process.argv[2] ?? path.join(here, '../../src/server/openapi.json'));

// route_of() and dispatch() in src/server/service.cc.
const EXPECTED = [
  'get /healthz', 'get /readyz', 'get /metrics', 'get /v1/openapi.json',
  'post /v1/keys', 'delete /v1/keys/{id}',
  'get /v1/contracts', 'get /v1/contracts/{name}', 'put /v1/contracts/{name}',
  'post /v1/contracts/{name}/activate', 'post /v1/contracts/{name}/approve',
  'post /v1/contracts/{name}/simulate', 'post /v1/contracts/{name}/call/{export}',
  'get /v1/receipts/{id}', 'get /v1/receipts/{id}/proof', 'get /v1/receipts/{id}/replay',
  'get /v1/checkpoints/latest', 'get /v1/checkpoints/consistency',
  'get /v1/holds/{id}', 'post /v1/holds/{id}/release', 'post /v1/holds/{id}/refund',
  'get /v1/executor/keys',
  'put /v1/agents/{id}/keys/{kid}', 'delete /v1/agents/{id}/keys/{kid}', 'get /v1/agents/{id}/keys',
  'post /v1/agents/{id}/fund', 'get /v1/agents/{id}/balance',
  'get /v1/contracts/{name}/diff', 'put /v1/contracts/{name}/owners', 'post /v1/contracts/{name}/freeze',
  'put /v1/users/{id}/keys/{kid}', 'delete /v1/users/{id}/keys/{kid}', 'get /v1/users/{id}/keys',
  'post /v1/mandates', 'get /v1/mandates/{id}', 'post /v1/mandates/{id}/revoke',
];
const UNAUTHENTICATED = new Set(['get /healthz', 'get /readyz', 'get /metrics', 'get /v1/openapi.json']);
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

const problems = [];
let doc;
try {
  doc = JSON.parse(fs.readFileSync(file, 'utf8'));
} catch (e) {
  console.error(`openapi: ${file}: ${e.message}`);
  process.exit(1);
}

if (typeof doc.openapi !== 'string' || !doc.openapi.startsWith('3.1.')) problems.push(`openapi: expected 3.1.x, got ${doc.openapi}`);

// The parser dereferences its argument in place: give it a copy.
const result = await validate(structuredClone(doc));
if (!result.valid) problems.push(compileErrors(result));
else if (result.warnings.length) console.error(compileErrors(result));

const resolve = (x) => {
  if (x && typeof x.$ref === 'string') {
    let node = doc;
    for (const part of x.$ref.replace(/^#\//, '').split('/')) node = node?.[part.replace(/~1/g, '/').replace(/~0/g, '~')];
    if (node === undefined) problems.push(`unresolved $ref ${x.$ref}`);
    return node ?? {};
  }
  return x;
};

const seen = new Set();
const ids = new Map();
for (const [p, item] of Object.entries(doc.paths ?? {})) {
  for (const m of METHODS) {
    const op = item[m];
    if (!op) continue;
    const key = `${m} ${p}`;
    seen.add(key);
    if (!op.operationId) problems.push(`${key}: no operationId`);
    else if (ids.has(op.operationId)) problems.push(`${key}: operationId ${op.operationId} also used by ${ids.get(op.operationId)}`);
    else ids.set(op.operationId, key);
    const params = [...(item.parameters ?? []), ...(op.parameters ?? [])].map(resolve);
    const authed = !(Array.isArray(op.security) && op.security.length === 0);
    if (UNAUTHENTICATED.has(key) === authed) problems.push(`${key}: security should be ${UNAUTHENTICATED.has(key) ? 'empty' : 'bearer'}`);
    if (authed && !op.responses?.['401']) problems.push(`${key}: no 401 response`);
    if (authed && !params.some((x) => x.in === 'header' && x.name === 'traceparent')) problems.push(`${key}: no traceparent parameter`);
    if (['post', 'put', 'delete'].includes(m)) {
      if (!params.some((x) => x.in === 'header' && x.name === 'Idempotency-Key')) problems.push(`${key}: no Idempotency-Key parameter`);
      if (!op.responses?.['422']) problems.push(`${key}: no 422 response (idempotency_conflict)`);
    }
    for (const [status, r] of Object.entries(op.responses ?? {})) {
      const body = resolve(r).content?.['application/json']?.schema;
      if (/^[45]/.test(status) && !(body && resolve(body) === doc.components?.schemas?.Error))
        problems.push(`${key}: ${status} does not use the Error schema`);
    }
  }
}
for (const k of EXPECTED) if (!seen.has(k)) problems.push(`missing operation: ${k}`);
for (const k of seen) if (!EXPECTED.includes(k)) problems.push(`operation not served by service.cc: ${k}`);
if (doc.components?.securitySchemes?.bearerAuth?.scheme !== 'bearer') problems.push('components.securitySchemes.bearerAuth: expected http bearer');

if (problems.length) {
  for (const p of problems) console.error(`openapi: ${p}`);
  console.error(`openapi: ${file} is NOT valid (${problems.length} problem${problems.length > 1 ? 's' : ''})`);
  process.exit(1);
}
console.log(`openapi: valid (${Object.keys(doc.paths).length} paths)`);
