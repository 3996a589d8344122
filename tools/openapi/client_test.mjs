// End-to-end check of a running `covenant serve` through a client built from
// src/server/openapi.json: openapi-typescript must generate types from the
// document, and openapi-fetch (plain JS) drives the API.
//
//   COVENANT_URL=http://127.0.0.1:8080 COVENANT_ADMIN_KEY=$(cat DATA/admin.key) \
//   COVENANT_SEED_WASM=path/to/seed.wasm node --test tools/openapi/client_test.mjs
//
// build/contracts/seed_c.wasm (seed world, no WIT needed) fits: its approve must
// approve the seed intent and plan a hold. COVENANT_SEED_WIT=FILE.wit is optional.
// Each step needs the ones before it; after a failure the rest are skipped.
import test from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import openapiTS, { astToString } from 'openapi-typescript';
import createClient from 'openapi-fetch';

const here = path.dirname(fileURLToPath(import.meta.url));
const DOC = path.join(here, '../../src/server/openapi.json');
const URL_ = process.env.COVENANT_URL;
const ADMIN_KEY = process.env.COVENANT_ADMIN_KEY?.trim();
const SEED_WASM = process.env.COVENANT_SEED_WASM;
const SEED_WIT = process.env.COVENANT_SEED_WIT; // optional: WIT source file sent with the module

const SEED_INTENT = { agent_id: 'agent-7', task_type: 'inference', max_units: '500', expires_at_ms: '1893456000000' };
const HEX64 = /^[0-9a-f]{64}$/;
const HEX32 = /^[0-9a-f]{32}$/;

const client = (key) =>
  createClient({ baseUrl: URL_.replace(/\/+$/, ''), headers: key ? { Authorization: `Bearer ${key}` } : {} });
const traceparent = () => `00-${crypto.randomBytes(16).toString('hex')}-${crypto.randomBytes(8).toString('hex')}-01`;
const sha256 = (...parts) => crypto.createHash('sha256').update(Buffer.concat(parts)).digest();

// The response status, with the error body in the message when it is not the one expected.
function expectStatus(res, status, what) {
  assert.equal(res.response.status, status, `${what}: HTTP ${res.response.status} ${JSON.stringify(res.error ?? res.data)}`);
}
function expectError(res, status, code, what) {
  expectStatus(res, status, what);
  assert.equal(typeof res.error?.error?.message, 'string', `${what}: error body ${JSON.stringify(res.error)}`);
  assert.equal(res.error.error.code, code, `${what}: error code`);
}

// RFC 9162 section 2.1.3.2: the root from a leaf hash and its inclusion path.
function rootFromInclusion(leafIndex, treeSize, leafHash, pathHex) {
  if (leafIndex >= treeSize) throw new Error('leaf index beyond the tree');
  let fn = BigInt(leafIndex), sn = BigInt(treeSize - 1), r = leafHash;
  for (const h of pathHex) {
    const p = Buffer.from(h, 'hex');
    if (sn === 0n) throw new Error('inclusion path too long');
    if ((fn & 1n) === 1n || fn === sn) {
      r = sha256(Buffer.from([1]), p, r);
      if ((fn & 1n) === 0n) while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = sha256(Buffer.from([1]), r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new Error('inclusion path too short');
  return r;
}

let failed = false;
const step = (name, fn) =>
  test(name, async (t) => {
    if (failed) return t.skip('an earlier step failed');
    try {
      await fn(t);
    } catch (e) {
      failed = true;
      throw e;
    }
  });

const s = {}; // state shared by the steps
const tenant = `t-${Date.now().toString(36)}-${crypto.randomBytes(3).toString('hex')}`;
const contract = 'seed';

step('openapi-typescript generates types from the document', async () => {
  const doc = JSON.parse(fs.readFileSync(DOC, 'utf8'));
  const ts = astToString(await openapiTS(doc));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'covenant-openapi-'));
  const out = path.join(dir, 'covenant-api.d.ts');
  fs.writeFileSync(out, ts);
  try {
    assert.match(ts, /export interface paths/);
    for (const p of Object.keys(doc.paths)) assert.ok(ts.includes(`"${p}"`), `types lack path ${p}`);
    assert.match(ts, /approve: \{/, 'types lack operation approve');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

step('environment: COVENANT_URL, COVENANT_ADMIN_KEY, COVENANT_SEED_WASM', () => {
  assert.ok(URL_, 'set COVENANT_URL (e.g. http://127.0.0.1:8080)');
  assert.ok(ADMIN_KEY, 'set COVENANT_ADMIN_KEY (the contents of DATA/admin.key)');
  assert.ok(SEED_WASM && fs.existsSync(SEED_WASM), `set COVENANT_SEED_WASM to a wasm file (got ${SEED_WASM})`);
  s.admin = client(ADMIN_KEY);
});

step('POST /v1/keys: a deployer, a caller, and a caller of another tenant', async () => {
  for (const [who, t, role] of [['deployer', tenant, 'deployer'], ['caller', tenant, 'caller'], ['other', `${tenant}-b`, 'caller']]) {
    const res = await s.admin.POST('/v1/keys', { body: { tenant: t, role }, params: { header: { traceparent: traceparent() } } });
    expectStatus(res, 201, `create ${role} key for ${t}`);
    assert.match(res.data.key, /^cvk_/);
    assert.equal(res.data.tenant, t);
    assert.equal(res.data.role, role);
    s[who] = client(res.data.key);
  }
});

step('PUT /v1/contracts/{name}: deploy the seed contract (first version becomes active)', async () => {
  const wasm = fs.readFileSync(SEED_WASM);
  const res = await s.deployer.PUT('/v1/contracts/{name}', {
    params: { path: { name: contract } },
    body: { wasm_base64: wasm.toString('base64'), ...(SEED_WIT ? { wit: fs.readFileSync(SEED_WIT, 'utf8') } : {}) },
  });
  expectStatus(res, 201, 'deploy');
  assert.equal(res.data.version, sha256(wasm).toString('hex'), 'version is the SHA-256 of the module');
  assert.equal(res.data.active, true);
  s.version = res.data.version;

  const forbidden = await s.caller.PUT('/v1/contracts/{name}', { params: { path: { name: contract } }, body: { wasm_base64: wasm.toString('base64') } });
  expectError(forbidden, 403, 'forbidden', 'a caller deploying');
});

step('GET /v1/contracts/{name}', async () => {
  const res = await s.caller.GET('/v1/contracts/{name}', { params: { path: { name: contract } } });
  expectStatus(res, 200, 'get contract');
  assert.equal(res.data.name, contract);
  assert.equal(res.data.active_version, s.version);
  assert.deepEqual(res.data.versions, [s.version]);
  assert.ok(res.data.history.some((h) => h.action === 'activate' && h.version === s.version));
});

step('POST /v1/contracts/{name}/approve: the seed intent is approved, signed, journaled and held', async () => {
  s.idem = `client-test-${crypto.randomUUID()}`;
  const tp = traceparent();
  const res = await s.caller.POST('/v1/contracts/{name}/approve', {
    params: { path: { name: contract }, header: { 'Idempotency-Key': s.idem, traceparent: tp } },
    body: SEED_INTENT,
  });
  expectStatus(res, 200, 'approve');
  const a = res.data;
  assert.equal(a.decision?.approved, true, `decision: ${JSON.stringify(a.decision)}`);
  assert.match(a.receipt_id, HEX64);
  assert.notEqual(a.hold_id, null, 'hold_id');
  assert.match(a.hold_id, HEX32);
  assert.equal(a.version, s.version);
  assert.equal(a.trace_id, tp.slice(3, 35), 'trace_id comes from traceparent');
  assert.ok(Number.isInteger(a.log_index) && a.log_index >= 0);
  assert.ok(a.receipt.length > 0);
  assert.equal(res.response.headers.get('idempotent-replayed'), null);
  s.approval = a;
});

step('idempotency: same key and body replays; a different body is 422', async () => {
  const again = await s.caller.POST('/v1/contracts/{name}/approve', {
    params: { path: { name: contract }, header: { 'Idempotency-Key': s.idem } },
    body: SEED_INTENT,
  });
  expectStatus(again, 200, 'replayed approve');
  assert.equal(again.response.headers.get('idempotent-replayed'), 'true');
  assert.equal(again.data.receipt_id, s.approval.receipt_id);
  assert.equal(again.data.hold_id, s.approval.hold_id);

  const other = await s.caller.POST('/v1/contracts/{name}/approve', {
    params: { path: { name: contract }, header: { 'Idempotency-Key': s.idem } },
    body: { ...SEED_INTENT, max_units: '501' },
  });
  expectError(other, 422, 'idempotency_conflict', 'same key, other body');
});

step('GET /v1/holds/{id}: pending', async () => {
  const res = await s.caller.GET('/v1/holds/{id}', { params: { path: { id: s.approval.hold_id } } });
  expectStatus(res, 200, 'get hold');
  assert.equal(res.data.hold_id, s.approval.hold_id);
  assert.equal(res.data.receipt_id, s.approval.receipt_id);
  assert.equal(res.data.state, 'pending');
  assert.match(res.data.amount, /^[0-9]+$/);

  const foreign = await s.other.GET('/v1/holds/{id}', { params: { path: { id: s.approval.hold_id } } });
  expectError(foreign, 404, 'not_found', 'a hold of another tenant');
});

step('POST /v1/holds/{id}/release: posted', async () => {
  const res = await s.caller.POST('/v1/holds/{id}/release', {
    params: { path: { id: s.approval.hold_id }, header: { 'Idempotency-Key': `release-${crypto.randomUUID()}` } },
  });
  expectStatus(res, 200, 'release');
  assert.equal(res.data.hold_id, s.approval.hold_id);
  assert.match(res.data.transfer_id, HEX32);
  assert.equal(res.data.state, 'posted');

  const twice = await s.caller.POST('/v1/holds/{id}/release', { params: { path: { id: s.approval.hold_id } } });
  expectError(twice, 409, 'pending_transfer_already_posted', 'release again');
});

step('GET /v1/checkpoints/latest', async () => {
  const res = await s.caller.GET('/v1/checkpoints/latest');
  expectStatus(res, 200, 'latest checkpoint');
  assert.ok(Number.isInteger(res.data.tree_size) && res.data.tree_size >= 1);
  assert.match(res.data.root, HEX64);
  assert.equal(typeof res.data.note, 'string');
  assert.ok(res.data.note.length > 0);
  s.checkpoint = res.data;
});

step('GET /v1/receipts/{id} and /proof: the receipt is in the signed tree', async () => {
  const rc = await s.caller.GET('/v1/receipts/{id}', { params: { path: { id: s.approval.receipt_id } }, parseAs: 'arrayBuffer' });
  expectStatus(rc, 200, 'get receipt');
  assert.equal(rc.response.headers.get('content-type'), 'application/cose');
  const cose = Buffer.from(rc.data);
  assert.deepEqual(cose, Buffer.from(s.approval.receipt, 'base64'), 'journaled receipt = approval receipt');
  assert.equal(rc.response.headers.get('x-log-index'), String(s.approval.log_index));

  const res = await s.caller.GET('/v1/receipts/{id}/proof', { params: { path: { id: s.approval.receipt_id } } });
  expectStatus(res, 200, 'get proof');
  const p = res.data;
  assert.equal(p.type, 'inclusion');
  assert.equal(p.receipt_id, s.approval.receipt_id);
  assert.equal(p.leaf_index, s.approval.log_index);
  assert.ok(p.tree_size > p.leaf_index);
  assert.equal(p.leaf_hash, sha256(Buffer.from([0]), cose).toString('hex'), 'leaf hash = SHA-256(0x00 || receipt)');
  assert.equal(rootFromInclusion(p.leaf_index, p.tree_size, Buffer.from(p.leaf_hash, 'hex'), p.path).toString('hex'), p.root);
  if (p.tree_size === s.checkpoint.tree_size) assert.equal(p.root, s.checkpoint.root);
});

step('404 for an unknown contract and for another tenant\'s contract', async () => {
  const res = await s.caller.GET('/v1/contracts/{name}', { params: { path: { name: `no-such-${crypto.randomBytes(4).toString('hex')}` } } });
  expectError(res, 404, 'not_found', 'unknown contract');
  const foreign = await s.other.GET('/v1/contracts/{name}', { params: { path: { name: contract } } });
  expectError(foreign, 404, 'not_found', 'contract of another tenant');
  const call = await s.caller.POST('/v1/contracts/{name}/approve', {
    params: { path: { name: `no-such-${crypto.randomBytes(4).toString('hex')}` } },
    body: SEED_INTENT,
  });
  expectError(call, 404, 'not_found', 'approve on an unknown contract');
});

step('401 without a key, and with an unknown key', async () => {
  const none = await client(null).GET('/v1/contracts');
  expectError(none, 401, 'unauthenticated', 'no key');
  const bad = await client(`cvk_${'0'.repeat(16)}_${'0'.repeat(48)}`).GET('/v1/contracts');
  expectError(bad, 401, 'unauthenticated', 'unknown key');
});
