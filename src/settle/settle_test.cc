// Settlement and replay as a library: receipts from calls, replay packages
// (confirmed on another tier; refuted when intent, kv state or module is
// altered or the receipt is tampered with), the escrow mapping, and the
// ledger wiring on SQLite (and PostgreSQL when COVENANT_PG_URL is set).
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "evidence/cbor.h"
#include "settle/settle.h"

namespace covenant::settle {
namespace {

using json = nlohmann::json;

const std::string kTestdata = HOST_TESTDATA_DIR;

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}
std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

std::string tmpdir(const std::string& name) {
  std::string d = ::testing::TempDir() + "/settle_test_" + name + "_" + std::to_string(getpid());
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

const char* kSeedIntent = R"({"agent_id": "agent-7", "task_type": "compute", "max_units": 250, "expires_at_ms": 4102444800000})";
const char* kBudgetGrants =
    R"({"capabilities": {"kv": {"namespace": "budget"}, "log": {"level": "info"}, "clock": {}}})";

CallInputs seed_inputs(Tier tier, const std::string& intent = kSeedIntent) {
  CallInputs in;
  in.module = read_file(kTestdata + "/seed_c.wasm");
  in.export_name = "policy.approve";
  in.intent = intent;
  in.tier = tier;
  return in;
}

CallInputs budget_inputs(Tier tier, const std::string& intent) {
  CallInputs in;
  in.module = read_file(kTestdata + "/budget.wasm");
  in.wit = read_text(std::string(COVENANT_SOURCE_DIR) + "/contracts/examples/budget/budget.wit");
  in.grants = kBudgetGrants;
  in.export_name = "approve";
  in.intent = intent;
  in.tier = tier;
  return in;
}

struct Produced {
  std::unique_ptr<Engine> engine;
  std::unique_ptr<Contract> contract;
  Contract::CallResult call;
};

// Deploys and calls (kv_path: SQLite kv file, or empty for memory).
Produced produce(const CallInputs& in, const std::string& kv_path = "") {
  Produced p;
  p.engine = Engine::create({}).value();
  DeployOptions o;
  o.tier = in.tier;
  o.wit = in.wit;
  o.world = in.world;
  o.kv_path = kv_path;
  if (!in.grants.empty()) o.grants = parse_grants(in.grants).value();
  auto c = Contract::deploy(*p.engine, in.module, o);
  EXPECT_TRUE(c.is_ok()) << c.status().to_string();
  p.contract = std::move(*c);
  CallOptions co;
  co.fuel = in.fuel;
  auto r = p.contract->call_json(in.export_name, json::array({json::parse(in.intent)}), co);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  p.call = std::move(*r);
  EXPECT_EQ(p.call.trap.kind, TrapKind::kNone) << p.call.trap.message;
  return p;
}

std::vector<uint8_t> sign(const Produced& p, const CallInputs& in, const SigningKey& key) {
  auto r = build_receipt(*p.contract, in, p.call.values, p.call.record, p.call.fuel_used);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  std::vector<uint8_t> cose;
  EXPECT_TRUE(sign_receipt(*r, key, &cose).is_ok());
  return cose;
}

ReplayPackage package_for(const CallInputs& in, const SigningKey& key, const std::string& kv_path = "") {
  Produced p = produce(in, kv_path);
  auto cose = sign(p, in, key);
  // Through the file format, as a disputant would receive it.
  auto bytes = encode_replay_package(make_replay_package(in, p.call.record, cose, key.public_key()));
  auto back = decode_replay_package(bytes);
  EXPECT_TRUE(back.is_ok()) << back.status().to_string();
  return std::move(*back);
}

void expect_refuted(const ReplayPackage& pkg, Tier tier, const std::string& field) {
  auto v = replay(pkg, tier);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_FALSE(v->confirmed);
  EXPECT_EQ(v->field, field) << v->detail;
}

TEST(SettleReceipt, FromASeedCallFitsTheBudget) {
  const SigningKey key = SigningKey::generate();
  CallInputs in = seed_inputs(Tier::kBaseline);
  Produced p = produce(in);
  auto cose = sign(p, in, key);
  auto r = verify_receipt(cose, PinnedKey(key.public_key()));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->entry, "escrow#approve");
  EXPECT_EQ(r->fuel_used, p.call.fuel_used);
  EXPECT_EQ(r->time_unix_ms, p.call.record.wall_ms);
  EXPECT_EQ(r->intent_hash, sha256(std::span(reinterpret_cast<const uint8_t*>(in.intent.data()), in.intent.size())));
  EXPECT_EQ(r->contract_hash, sha256(std::span<const uint8_t>(in.module)));
  // decision { approved: bool, ceiling: u64, reason: string } -> [approved, ceiling, reason], in WIT order.
  const json& d = p.call.result;
  ASSERT_TRUE(d["approved"].get<bool>()) << d.dump();
  std::vector<uint8_t> want;
  cbor::Writer w(&want);
  w.array(3);
  w.boolean(true);
  w.uint(std::stoull(d["ceiling"].get<std::string>()));
  w.text(d["reason"].get<std::string>());
  EXPECT_EQ(r->decision, want);
  // The seed writes no kv state: the after root is the before root, and the
  // payload omits it (docs/receipts.md, key 7).
  ASSERT_TRUE(p.call.record.kv_writes.empty());
  EXPECT_EQ(r->state_root_after, r->state_root_before);
  EXPECT_EQ(r->state_root_before, state_root_before(p.call.record));
  EXPECT_LE(cose.size(), kReceiptTypicalSizeBytesMax);
  // docs/settlement.md: 293 bytes besides the decision for this entry, a fuel
  // below 65,536, no kv writes and the interface hash (key 12).
  ASSERT_LT(r->fuel_used, 65536u);
  ASSERT_TRUE(r->interface_hash.has_value());
  EXPECT_EQ(cose.size(), 293 + want.size());
  std::printf("seed approval receipt: %zu bytes (decision %zu bytes)\n", cose.size(), want.size());
}

// A call that writes kv carries both roots; a receipt that claims no state
// change (after = before, key 7 omitted) for a call that wrote is refuted.
TEST(SettleReceipt, WritesKeepTheAfterRootAndItIsChecked) {
  const SigningKey key = SigningKey::generate();
  std::string dir = tmpdir("after");
  CallInputs in = budget_inputs(Tier::kBaseline, R"({"agent_id": "agent-7", "amount": 300})");
  Produced p = produce(in, dir + "/kv.sqlite");
  ASSERT_FALSE(p.call.record.kv_writes.empty());
  auto r = build_receipt(*p.contract, in, p.call.values, p.call.record, p.call.fuel_used);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_NE(r->state_root_after, r->state_root_before);
  std::vector<uint8_t> cose, lie;
  ASSERT_TRUE(sign_receipt(*r, key, &cose).is_ok());
  Receipt claimed = *r;
  claimed.state_root_after = claimed.state_root_before;
  ASSERT_TRUE(sign_receipt(claimed, key, &lie).is_ok());
  std::vector<uint8_t> payload, lie_payload;
  ASSERT_TRUE(encode_receipt_payload(*r, &payload).is_ok());
  ASSERT_TRUE(encode_receipt_payload(claimed, &lie_payload).is_ok());
  EXPECT_EQ(payload.size(), lie_payload.size() + 35);  // key 7: 1-byte key + 2-byte head + 32
  std::printf("budget approval receipt (kv writes): %zu bytes\n", cose.size());

  ReplayPackage honest = make_replay_package(in, p.call.record, cose, key.public_key());
  auto v = replay(honest, Tier::kInterp);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_TRUE(v->confirmed) << v->field << ": " << v->detail;
  expect_refuted(make_replay_package(in, p.call.record, lie, key.public_key()), Tier::kInterp, "state_root_after");
}

// The converse: a seed call (no writes) whose receipt claims an after root.
// Old receipts (after root spelled as a hash over the before root) confirm.
TEST(SettleReceipt, AnAfterRootForACallWithoutWritesIsRefuted) {
  const SigningKey key = SigningKey::generate();
  CallInputs in = seed_inputs(Tier::kBaseline);
  Produced p = produce(in);
  auto r = build_receipt(*p.contract, in, p.call.values, p.call.record, p.call.fuel_used);
  ASSERT_TRUE(r.is_ok());
  r->state_root_after[0] ^= 1;
  std::vector<uint8_t> cose;
  ASSERT_TRUE(sign_receipt(*r, key, &cose).is_ok());
  expect_refuted(make_replay_package(in, p.call.record, cose, key.public_key()), Tier::kInterp, "state_root_after");
  // The after root receipts carried for no writes before it became the before
  // root (a hash of it and an empty write list) still confirms: same commitment.
  r->state_root_after = legacy_state_root_after_no_writes(r->state_root_before);
  r->interface_hash.reset();  // nor had they key 12
  ASSERT_TRUE(sign_receipt(*r, key, &cose).is_ok());
  EXPECT_EQ(cose.size(), 326u);  // the seed receipt as it was before key 7 could be omitted
  auto v = replay(make_replay_package(in, p.call.record, cose, key.public_key()), Tier::kInterp);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_TRUE(v->confirmed) << v->field << ": " << v->detail;
}

TEST(SettleReceipt, DecisionRefusesFloats) {
  using abi::WitValue;
  EXPECT_FALSE(decision_cbor(std::vector<WitValue>{WitValue::record({WitValue::f64(1.5)})}).is_ok());
  auto ok = decision_cbor(std::vector<WitValue>{
      WitValue::record({WitValue::s64(-3), WitValue::list({WitValue::none(), WitValue::some(WitValue::boolean(false))})})});
  ASSERT_TRUE(ok.is_ok());
  // [-3, [[0], [1, false]]]
  EXPECT_EQ(*ok, (std::vector<uint8_t>{0x82, 0x22, 0x82, 0x81, 0x00, 0x82, 0x01, 0xf4}));
  EXPECT_EQ(decision_cbor(std::vector<WitValue>{}).value(), std::vector<uint8_t>{0xf6});
}

TEST(SettleReplayPackage, RoundTripIsExactAndStrict) {
  const SigningKey key = SigningKey::generate();
  CallInputs in = seed_inputs(Tier::kInterp);
  Produced p = produce(in);
  auto cose = sign(p, in, key);
  auto bytes = encode_replay_package(make_replay_package(in, p.call.record, cose, key.public_key()));
  auto back = decode_replay_package(bytes);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(encode_replay_package(*back), bytes);
  EXPECT_EQ(back->call.tier, Tier::kInterp);
  EXPECT_EQ(back->record.wall_ms, p.call.record.wall_ms);
  // Truncated, trailing bytes, not CBOR: refused.
  EXPECT_FALSE(decode_replay_package(std::span(bytes).first(bytes.size() - 1)).is_ok());
  auto longer = bytes;
  longer.push_back(0);
  EXPECT_FALSE(decode_replay_package(longer).is_ok());
  EXPECT_FALSE(decode_replay_package(std::vector<uint8_t>{0x01}).is_ok());
  // A masked package keeps its list; an unmasked one has no "masked" field at all.
  ReplayPackage masked = *back;
  masked.masked = {"/intent/agent_id"};
  auto mbytes = encode_replay_package(masked);
  auto mback = decode_replay_package(mbytes);
  ASSERT_TRUE(mback.is_ok()) << mback.status().to_string();
  EXPECT_EQ(mback->masked, masked.masked);
  EXPECT_EQ(encode_replay_package(*mback), mbytes);
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()).find("masked"), std::string::npos);
}

// Masking rules: erase or replace under /intent and /decision; bad rules refused.
TEST(SettleMask, RulesEraseOrReplace) {
  auto rules = parse_mask(json::parse(R"(["/intent/card", {"path": "/intent/payee/name", "replace": "***"},
                                         {"path": "/decision/reason"}, "/intent/missing"])"));
  ASSERT_TRUE(rules.is_ok()) << rules.status().to_string();
  std::vector<std::string> masked;
  json i = apply_mask(json::parse(R"({"card": "4111", "payee": {"name": "Ann", "id": 7}, "amount": 3})"), *rules,
                      "intent", &masked);
  EXPECT_EQ(i, json::parse(R"({"payee": {"name": "***", "id": 7}, "amount": 3})"));
  EXPECT_EQ(masked, (std::vector<std::string>{"/intent/card", "/intent/payee/name"}));
  masked.clear();
  json d = apply_mask(json::parse(R"({"approved": true, "reason": "ok"})"), *rules, "decision", &masked);
  EXPECT_EQ(d, json::parse(R"({"approved": true})"));
  EXPECT_FALSE(parse_mask(json::parse(R"(["/card"])")).is_ok());
  EXPECT_FALSE(parse_mask(json::parse(R"([{"path": "/intent/a", "erase": true}])")).is_ok());
  EXPECT_FALSE(parse_mask(json::parse(R"("/intent/a")")).is_ok());
}

TEST(SettleReplay, SeedOnAnotherTierConfirms) {
  const SigningKey key = SigningKey::generate();
  ReplayPackage pkg = package_for(seed_inputs(Tier::kBaseline), key);
  for (Tier t : {Tier::kInterp, Tier::kBaseline}) {
    auto v = replay(pkg, t);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    EXPECT_TRUE(v->confirmed) << tier_name(t) << ": " << v->field << ": " << v->detail;
  }
}

TEST(SettleReplay, OptimizedReceiptConfirmsOnTheInterpreter) {
  const SigningKey key = SigningKey::generate();
  ReplayPackage pkg = package_for(seed_inputs(Tier::kOptimized), key);
  auto v = replay(pkg, Tier::kInterp);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_TRUE(v->confirmed) << v->field << ": " << v->detail;
}

// Replay against a key store: a receipt signed before its key's revocation
// confirms, one signed at or after it is refuted at `signature`.
TEST(SettleReplay, ReceiptFromARevokedKeyIsRefutedFromItsRevocationOn) {
  const std::string dir = tmpdir("revoke");
  auto ks = KeyStore::open(dir + "/keys");
  ASSERT_TRUE(ks.is_ok());
  const ReplayPackage pkg = package_for(seed_inputs(Tier::kBaseline), (*ks)->active());
  const uint64_t signed_at = decode_receipt(pkg.receipt).value().time_unix_ms;
  const KeyId kid = (*ks)->active().kid();
  ASSERT_TRUE((*ks)->rotate().is_ok());
  ASSERT_TRUE((*ks)->revoke(kid, signed_at + 1).is_ok());
  auto v = replay(pkg, Tier::kInterp, ks->get());
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_TRUE(v->confirmed) << v->field << ": " << v->detail;
  ASSERT_TRUE((*ks)->revoke(kid, signed_at).is_ok());
  v = replay(pkg, Tier::kInterp, ks->get());
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_FALSE(v->confirmed);
  EXPECT_EQ(v->field, "signature");
  EXPECT_NE(v->detail.find("revocation"), std::string::npos) << v->detail;
}

TEST(SettleReplay, AlteredIntentModuleOrReceiptIsRefuted) {
  const SigningKey key = SigningKey::generate();
  const ReplayPackage pkg = package_for(seed_inputs(Tier::kBaseline), key);

  ReplayPackage intent = pkg;
  intent.call.intent = R"({"agent_id": "agent-7", "task_type": "compute", "max_units": 2500, "expires_at_ms": 4102444800000})";
  expect_refuted(intent, Tier::kInterp, "intent_hash");

  ReplayPackage module = pkg;
  module.call.module.back() ^= 1;
  expect_refuted(module, Tier::kInterp, "contract_hash");

  for (size_t at : {size_t{20}, pkg.receipt.size() / 2, pkg.receipt.size() - 1}) {
    ReplayPackage tampered = pkg;
    tampered.receipt[at] ^= 0x01;
    expect_refuted(tampered, Tier::kInterp, "signature");
  }
  // Signed by another key than the one the verifier trusts.
  const SigningKey other = SigningKey::generate();
  PinnedKey pinned(other.public_key());
  auto v = replay(pkg, Tier::kInterp, &pinned);
  ASSERT_TRUE(v.is_ok());
  EXPECT_EQ(v->field, "signature");
  // A recorded clock that is not the one signed.
  ReplayPackage clock = pkg;
  clock.record.wall_ms += 1;
  expect_refuted(clock, Tier::kInterp, "time");
}

TEST(SettleReplay, BudgetKvStateAlteredIsRefuted) {
  const SigningKey key = SigningKey::generate();
  std::string dir = tmpdir("budget");
  std::string kv = dir + "/kv.sqlite";
  const std::string intent = R"({"agent_id": "agent-7", "amount": 300})";
  // Two earlier calls leave spent/agent-7 = 600 in the store.
  for (int i = 0; i < 2; ++i) produce(budget_inputs(Tier::kBaseline, intent), kv);
  ReplayPackage pkg = package_for(budget_inputs(Tier::kBaseline, intent), key, kv);
  ASSERT_FALSE(pkg.record.kv_reads.empty());
  ASSERT_FALSE(pkg.record.kv_writes.empty());
  auto v = replay(pkg, Tier::kInterp);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_TRUE(v->confirmed) << v->field << ": " << v->detail;

  // The spent total the call read, changed in the package.
  ReplayPackage state = pkg;
  bool changed = false;
  for (KvRead& r : state.record.kv_reads) {
    if (r.key.rfind("spent/", 0) == 0 && r.value) {
      (*r.value)[0] ^= 0x01;
      changed = true;
    }
  }
  ASSERT_TRUE(changed);
  expect_refuted(state, Tier::kInterp, "state_root_before");
  // A read dropped from the record: the replay diverges.
  ReplayPackage dropped = pkg;
  dropped.record.kv_reads.pop_back();
  expect_refuted(dropped, Tier::kInterp, "state_root_before");
}

// Receipt key 12 binds the WIT world and the grants: a package whose WIT
// renames a decision field (same decision bytes: records are arrays) or whose
// grants differ is refuted at `interface`; reformatting either still confirms.
TEST(SettleReplay, AnotherInterfaceOrOtherGrantsAreRefuted) {
  const SigningKey key = SigningKey::generate();
  std::string dir = tmpdir("iface");
  const std::string intent = R"({"agent_id": "agent-7", "amount": 300})";
  ReplayPackage pkg = package_for(budget_inputs(Tier::kBaseline, intent), key, dir + "/kv.sqlite");
  auto receipt = decode_receipt(pkg.receipt);
  ASSERT_TRUE(receipt.is_ok());
  ASSERT_TRUE(receipt->interface_hash.has_value());
  auto v = replay(pkg, Tier::kInterp);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_TRUE(v->confirmed) << v->field << ": " << v->detail;

  auto replace = [](std::string s, const std::string& from, const std::string& to) {
    const size_t at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return s.replace(at, from.size(), to);
  };
  ReplayPackage renamed = pkg;
  renamed.call.wit = replace(pkg.call.wit, "    remaining: u64,", "    refundable: u64,");
  expect_refuted(renamed, Tier::kInterp, "interface");
  ReplayPackage retyped = pkg;
  retyped.call.wit = replace(pkg.call.wit, "  spent: func(agent-id: string) -> u64;", "  spent: func(agent-id: string) -> s64;");
  expect_refuted(retyped, Tier::kInterp, "interface");
  ReplayPackage regranted = pkg;
  regranted.call.grants = replace(pkg.call.grants, R"("level": "info")", R"("level": "debug")");
  expect_refuted(regranted, Tier::kInterp, "interface");

  ReplayPackage reformatted = pkg;
  reformatted.call.wit = "// a comment\n" + replace(pkg.call.wit, "    amount: u64,", "    amount:   u64 ,");
  reformatted.call.grants = "  " + replace(pkg.call.grants, R"({"namespace": "budget"})", R"({ "namespace" : "budget" })");
  v = replay(reformatted, Tier::kInterp);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_TRUE(v->confirmed) << v->field << ": " << v->detail;
}

TEST(SettleEscrow, ApprovedIntentWithAmountHolds) {
  Hash32 id{};
  id[0] = 0xab;
  json intent = json::parse(R"({"agent-id": "agent-7", "max-units": "250", "expires-at-ms": 10500})");
  EscrowPlan p = plan_escrow(intent, json::parse(R"({"approved": true})"), 1000, id);
  EXPECT_TRUE(p.hold);
  EXPECT_EQ(p.amount, 250u);
  // 9.5 s left: the hold still gets the documented minimum.
  EXPECT_EQ(p.timeout_s, kHoldTimeoutMinS);
  EXPECT_EQ(p.agent_account, agent_account_id("agent-7"));
  // Longer: the time left, rounded up to whole seconds.
  EXPECT_EQ(plan_escrow(json::parse(R"({"agent-id": "a", "max-units": 1, "expires-at-ms": 101500})"),
                        json::parse(R"({"approved": true})"), 1000, id)
                .timeout_s,
            101u);
  EXPECT_EQ(p.escrow_account, escrow_account_id());
  EXPECT_EQ(p.hold_id.hex().substr(0, 2), "ab");
  // "amount" wins over max-units; no expiry = no timeout.
  p = plan_escrow(json::parse(R"({"agent_id": "a", "amount": 7, "max_units": 9})"), json::parse(R"({"approved": true})"), 0, id);
  EXPECT_TRUE(p.hold);
  EXPECT_EQ(p.amount, 7u);
  EXPECT_EQ(p.timeout_s, 0u);
  // Denied, no agent, zero amount: nothing.
  EXPECT_FALSE(plan_escrow(intent, json::parse(R"({"approved": false})"), 0, id).hold);
  EXPECT_FALSE(plan_escrow(json::parse(R"({"amount": 5})"), json::parse(R"({"approved": true})"), 0, id).hold);
  EXPECT_FALSE(plan_escrow(json::parse(R"({"agent_id": "a", "amount": 0})"), json::parse(R"({"approved": true})"), 0, id).hold);
}

// ---------------------------------------------------------------------------
// Incremental checkpoints (the stored frontier, docs/settlement.md)

const SigningKey& cp_key() {
  static const SigningKey k = [] {
    std::array<uint8_t, 32> seed;
    seed.fill(7);
    return SigningKey::from_seed(seed);
  }();
  return k;
}
const std::string kOrigin = "covenant.local/ledger";

// Appends entries [from, to) of a synthetic journal (about the size of a
// receipt), in one durable transaction. `salt` tells ledgers apart.
void append_entries(Ledger& l, uint64_t from, uint64_t to, const std::string& salt = "a") {
  std::vector<LedgerOperation> ops;
  for (uint64_t i = from; i < to; ++i) {
    std::string entry = "entry " + salt + " " + std::to_string(i) + " " + std::string(270, 'x');
    ops.push_back(JournalAppend{sha256(entry), entry});
  }
  auto r = l.submit(ops);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  for (const LedgerReply& rep : *r) ASSERT_EQ(rep.result, LedgerResult::ok);
}

// What cut_checkpoint signed before the frontier existed: the whole tree
// rebuilt from the journal, then the note. Ed25519 is deterministic, so the
// notes compare byte for byte.
std::string full_rebuild_note(Ledger& l) {
  auto t = journal_tree(l);
  EXPECT_TRUE(t.is_ok()) << t.status().to_string();
  return sign_checkpoint({kOrigin, t->size(), t->root()}, cp_key()).value();
}

CheckpointStats cut(Ledger& l, const std::string& dir, const SigningKey& key = cp_key()) {
  CheckpointStats st;
  uint64_t size = 0;
  auto path = cut_checkpoint(l, key, kOrigin, dir, &size, &st);
  EXPECT_TRUE(path.is_ok()) << path.status().to_string();
  if (path.is_ok()) {
    EXPECT_EQ(*path, dir + "/checkpoint-" + std::to_string(size) + ".txt");
    EXPECT_EQ(read_text(*path), read_text(dir + "/latest.txt"));
    EXPECT_EQ(read_text(*path), full_rebuild_note(l)) << "size " << size;
  }
  EXPECT_EQ(st.tree_size, size);
  EXPECT_TRUE(st.frontier_written);
  return st;
}

void write_bytes(const std::string& path, std::span<const uint8_t> b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

std::unique_ptr<Ledger> new_ledger(const std::string& path) {
  auto l = open_ledger(path, "");
  EXPECT_TRUE(l.is_ok()) << l.status().to_string();
  return std::move(*l);
}

TEST(SettleCheckpoint, IncrementalEqualsFullRebuildOver1000Appends) {
  const std::string dir = tmpdir("incr");
  auto l = new_ledger(dir + "/ledger.db");
  const std::string cps = dir + "/cp";
  // The first checkpoint, on a fresh directory: built from the whole journal, silently.
  append_entries(*l, 0, 3);
  CheckpointStats st = cut(*l, cps);
  EXPECT_TRUE(st.rebuilt);
  EXPECT_EQ(st.frontier_note, "");
  EXPECT_EQ(st.leaves_read, 3u);
  uint64_t n = 3, incremental = 0;
  while (n < 1000) {
    const uint64_t next = std::min<uint64_t>(n + 7, 1000);
    append_entries(*l, n, next);
    st = cut(*l, cps);
    ASSERT_EQ(st.tree_size, next);
    // Only the new entries were read: the rest came from the frontier.
    EXPECT_FALSE(st.rebuilt) << st.frontier_note;
    EXPECT_EQ(st.frontier_size, n);
    EXPECT_EQ(st.leaves_read, next - n);
    incremental += !st.rebuilt;
    n = next;
  }
  EXPECT_EQ(incremental, 143u);
  // Nothing new: the same checkpoint again, reading nothing.
  st = cut(*l, cps);
  EXPECT_EQ(st.tree_size, 1000u);
  EXPECT_EQ(st.leaves_read, 0u);
  EXPECT_FALSE(st.rebuilt);
  // The stored frontier is the compact range of the journal's tree.
  auto f = decode_frontier(read_file(cps + "/frontier"), cp_key().public_key());
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  EXPECT_EQ(f->range.size(), 1000u);
  EXPECT_EQ(f->range.hashes().size(), 6u);  // 1000 = 1111101000b
  EXPECT_EQ(f->range.root(), journal_tree(*l).value().root());
  EXPECT_EQ(f->journal_chain, l->journal_at(1000).value()->chain);
}

// The executor never signs two roots for one tree size, nor a size below one
// it signed: even when the journal's tail and its head row were both removed
// by hand (so the ledger opens), the signed heads recorded in the ledger
// refuse the checkpoint, with a fresh checkpoint directory too.
TEST(SettleCheckpoint, NeverSignsASecondRootForASize) {
  const std::string dir = tmpdir("sth");
  const std::string path = dir + "/ledger.db";
  {
    auto l = new_ledger(path);
    append_entries(*l, 0, 5);
    EXPECT_EQ(cut(*l, dir + "/cp").tree_size, 5u);
  }
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const std::string sql = "DELETE FROM journal WHERE seq >= 4; DELETE FROM kv WHERE key = X'" +
                            to_hex(std::span(reinterpret_cast<const uint8_t*>(kJournalHeadKvKey.data()), kJournalHeadKvKey.size())) + "';";
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  auto l = new_ledger(path);
  uint64_t size = 0;
  auto shrunk = cut_checkpoint(*l, cp_key(), kOrigin, dir + "/cp2", &size, nullptr);
  ASSERT_FALSE(shrunk.is_ok());
  EXPECT_EQ(shrunk.status().code(), Code::kCorruption);
  EXPECT_NE(shrunk.status().message().find("tree size 5 was already signed, so entries 4..5 are missing"),
            std::string::npos)
      << shrunk.status().message();
  append_entries(*l, 3, 5, "other");
  auto forked = cut_checkpoint(*l, cp_key(), kOrigin, dir + "/cp3", &size, nullptr);
  ASSERT_FALSE(forked.is_ok());
  EXPECT_EQ(forked.status().code(), Code::kCorruption);
  EXPECT_NE(forked.status().message().find("was already signed for that size"), std::string::npos)
      << forked.status().message();
  EXPECT_FALSE(std::filesystem::exists(dir + "/cp3/checkpoint-5.txt"));
}

TEST(SettleCheckpoint, DamagedFrontierIsDetectedAndTheCheckpointStaysRight) {
  const std::string dir = tmpdir("damaged");
  auto l = new_ledger(dir + "/ledger.db");
  const std::string cps = dir + "/cp", fpath = cps + "/frontier";
  append_entries(*l, 0, 20);
  cut(*l, cps);
  const std::vector<uint8_t> good20 = read_file(fpath);
  ASSERT_EQ(good20.size(), 8 + 32 + CompactRange::serialized_size(20) + 64);
  append_entries(*l, 20, 50);

  auto expect_rebuilt = [&](std::span<const uint8_t> bytes, const std::string& what, const std::string& why) {
    write_bytes(fpath, bytes);
    CheckpointStats st = cut(*l, cps);
    EXPECT_TRUE(st.rebuilt) << what;
    EXPECT_EQ(st.leaves_read, 50u) << what;
    EXPECT_NE(st.frontier_note.find(why), std::string::npos) << what << ": " << st.frontier_note;
  };
  // Every single flipped byte.
  for (size_t i = 0; i < good20.size(); ++i) {
    auto bad = good20;
    bad[i] ^= 0x01;
    expect_rebuilt(bad, "byte " + std::to_string(i), "frontier");
  }
  // Every truncation (a torn write), and an empty file (a crash before the data reached the disk).
  for (size_t n = 0; n < good20.size(); ++n) expect_rebuilt(std::span(good20).first(n), "truncated to " + std::to_string(n), "frontier");
  expect_rebuilt({}, "empty", "not a frontier file");
  // A checksum-valid range with other hashes, correctly signed (as if the key
  // holder's disk were rewritten): the signed checkpoint catches it.
  {
    auto f = decode_frontier(good20, cp_key().public_key()).value();
    auto hashes = f.range.hashes();
    hashes.back()[0] ^= 1;
    f.range = CompactRange::from_hashes(20, hashes).value();
    expect_rebuilt(encode_frontier(f, cp_key()), "re-signed other hashes", "is not the one signed in");
  }
  // Signed by another key.
  {
    const SigningKey other = SigningKey::generate();
    expect_rebuilt(encode_frontier(decode_frontier(good20, cp_key().public_key()).value(), other), "other key",
                   "signature does not verify");
  }
  // Missing, with checkpoints in the directory: said, and rebuilt.
  std::filesystem::remove(fpath);
  CheckpointStats st = cut(*l, cps);
  EXPECT_TRUE(st.rebuilt);
  EXPECT_NE(st.frontier_note.find("no frontier file"), std::string::npos) << st.frontier_note;
  // After every rebuild the frontier is whole again and the next one is incremental.
  append_entries(*l, 50, 55);
  st = cut(*l, cps);
  EXPECT_FALSE(st.rebuilt) << st.frontier_note;
  EXPECT_EQ(st.leaves_read, 5u);
}

// A crash between writing the checkpoint and the frontier, either order.
TEST(SettleCheckpoint, CrashBetweenCheckpointAndFrontierIsRepaired) {
  const std::string dir = tmpdir("crash");
  auto l = new_ledger(dir + "/ledger.db");
  const std::string cps = dir + "/cp", fpath = cps + "/frontier";
  append_entries(*l, 0, 20);
  cut(*l, cps);
  const std::vector<uint8_t> at20 = read_file(fpath);
  append_entries(*l, 20, 27);
  cut(*l, cps);
  const std::vector<uint8_t> at27 = read_file(fpath);
  // checkpoint-27 written, the frontier still at 20 (the order cut_checkpoint
  // writes in): the older frontier matches its own checkpoint and is extended.
  write_bytes(fpath, at20);
  append_entries(*l, 27, 35);
  CheckpointStats st = cut(*l, cps);
  EXPECT_FALSE(st.rebuilt) << st.frontier_note;
  EXPECT_EQ(st.frontier_size, 20u);
  EXPECT_EQ(st.leaves_read, 15u);
  // A stale frontier whose checkpoint file is gone or differs: rebuilt.
  write_bytes(fpath, at27);
  std::filesystem::remove(cps + "/checkpoint-27.txt");
  st = cut(*l, cps);
  EXPECT_TRUE(st.rebuilt);
  EXPECT_NE(st.frontier_note.find("checkpoint-27.txt"), std::string::npos) << st.frontier_note;
  write_bytes(fpath, at27);
  {
    // checkpoint-27.txt replaced by a correctly signed note of another root.
    Hash32 other{};
    other[3] = 9;
    std::ofstream(cps + "/checkpoint-27.txt") << sign_checkpoint({kOrigin, 27, other}, cp_key()).value();
  }
  st = cut(*l, cps);
  EXPECT_TRUE(st.rebuilt);
  EXPECT_NE(st.frontier_note.find("is not the one signed in"), std::string::npos) << st.frontier_note;
  // ... or signed by a key that is not the executor's.
  write_bytes(fpath, at27);
  {
    auto t = journal_tree(*l).value();
    std::ofstream(cps + "/checkpoint-27.txt")
        << sign_checkpoint({kOrigin, 27, t.root_at(27).value()}, SigningKey::generate()).value();
  }
  st = cut(*l, cps);
  EXPECT_TRUE(st.rebuilt);
  EXPECT_NE(st.frontier_note.find("does not verify"), std::string::npos) << st.frontier_note;
}

TEST(SettleCheckpoint, AFrontierFromAnotherLedgerIsNotUsed) {
  const std::string dir = tmpdir("other");
  // One checkpoint directory for two ledgers (as PostgreSQL and memory:
  // ledgers share $COVENANT_HOME/checkpoints by default), one key.
  const std::string cps = dir + "/cp";
  auto a = new_ledger(dir + "/a.db");
  auto b = new_ledger(dir + "/b.db");
  append_entries(*a, 0, 30, "a");
  cut(*a, cps);
  const std::vector<uint8_t> fa = read_file(cps + "/frontier");
  // B is longer: A's frontier and checkpoint-30 match each other, not B's journal.
  append_entries(*b, 0, 40, "b");
  CheckpointStats st = cut(*b, cps);
  EXPECT_TRUE(st.rebuilt);
  EXPECT_NE(st.frontier_note.find("another journal"), std::string::npos) << st.frontier_note;
  EXPECT_EQ(st.leaves_read, 40u);
  // B is shorter than A's frontier.
  auto c = new_ledger(dir + "/c.db");
  append_entries(*c, 0, 10, "c");
  write_bytes(cps + "/frontier", fa);
  st = cut(*c, cps);
  EXPECT_TRUE(st.rebuilt);
  EXPECT_NE(st.frontier_note.find("the journal has 10"), std::string::npos) << st.frontier_note;
  // A's frontier relabelled with B's journal chain at 30 (unsigned): refused by its signature.
  write_bytes(cps + "/frontier", fa);
  auto forged = fa;
  const Hash32 bchain = b->journal_at(30).value()->chain;
  std::copy(bchain.begin(), bchain.end(), forged.begin() + 8);
  write_bytes(cps + "/frontier", forged);
  st = cut(*b, cps);
  EXPECT_TRUE(st.rebuilt);
  EXPECT_NE(st.frontier_note.find("signature"), std::string::npos) << st.frontier_note;
  // A ledger whose journal starts with the same entries may use it: same tree.
  auto d = new_ledger(dir + "/d.db");
  append_entries(*d, 0, 30, "a");
  append_entries(*d, 30, 33, "d");
  write_bytes(cps + "/frontier", fa);
  cut(*a, cps);  // checkpoint-30.txt is A's again
  st = cut(*d, cps);
  EXPECT_FALSE(st.rebuilt) << st.frontier_note;
  EXPECT_EQ(st.leaves_read, 3u);
}

TEST(SettleCheckpoint, FrontierFileIsStrict) {
  CompactRange r;
  for (int i = 0; i < 5; ++i) r.append(sha256(std::string(1, static_cast<char>(i))));
  StoredFrontier f{r, sha256(std::string("chain"))};
  const auto bytes = encode_frontier(f, cp_key());
  auto back = decode_frontier(bytes, cp_key().public_key());
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->range, r);
  EXPECT_EQ(back->journal_chain, f.journal_chain);
  EXPECT_EQ(decode_frontier(std::vector<uint8_t>{'C', 'V', 'N'}, cp_key().public_key()).status().code(),
            Code::kInvalidArgument);
  auto longer = bytes;
  longer.push_back(0);
  EXPECT_FALSE(decode_frontier(longer, cp_key().public_key()).is_ok());
}

// The figure in docs/settlement.md: a checkpoint at 100,000 journal entries,
// rebuilt from the journal vs extended from the frontier. Prints timings; it
// asserts only that the results are the same.
TEST(SettleCheckpointBench, FullVsIncrementalAt100k) {
  uint64_t total = 100'000;
  if (const char* e = std::getenv("COVENANT_CHECKPOINT_BENCH_ENTRIES"); e && *e) total = std::strtoull(e, nullptr, 10);
  const std::string dir = tmpdir("bench");
  auto l = new_ledger(dir + "/ledger.db");
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  for (uint64_t i = 0; i < total; i += 5000) append_entries(*l, i, std::min(total, i + 5000));
  const double fill_s = std::chrono::duration<double>(clock::now() - t0).count();
  auto ms = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  double old_best = 1e30, full_best = 1e30, incr_best = 1e30, incr1_best = 1e30;
  for (int round = 0; round < 3; ++round) {
    // Before: the whole MerkleTree from the journal, then sign.
    auto a = clock::now();
    const std::string old_note = full_rebuild_note(*l);
    old_best = std::min(old_best, ms(a, clock::now()));
    // Now, with no usable frontier (a fresh directory): the compact range from the whole journal.
    const std::string cps = dir + "/cp" + std::to_string(round);
    CheckpointStats st;
    a = clock::now();
    ASSERT_TRUE(cut_checkpoint(*l, cp_key(), kOrigin, cps, nullptr, &st).is_ok());
    full_best = std::min(full_best, ms(a, clock::now()));
    EXPECT_TRUE(st.rebuilt);
    EXPECT_EQ(read_text(cps + "/latest.txt"), old_note);
    // Now, 16 entries later (--checkpoint-every 16), and 1 entry later.
    for (int rep = 0; rep < 5; ++rep) {
      for (uint64_t k : {16, 1}) {
        const uint64_t n = l->journal_count().value();
        append_entries(*l, n, n + k);
        a = clock::now();
        ASSERT_TRUE(cut_checkpoint(*l, cp_key(), kOrigin, cps, nullptr, &st).is_ok());
        double& best = k == 16 ? incr_best : incr1_best;
        best = std::min(best, ms(a, clock::now()));
        EXPECT_FALSE(st.rebuilt) << st.frontier_note;
        EXPECT_EQ(st.leaves_read, k);
      }
    }
  }
  EXPECT_EQ(read_text(dir + "/cp2/latest.txt"), full_rebuild_note(*l));
  std::printf("checkpoint at %llu journal entries (SQLite, filled in %.1f s), best of 3 (incremental: of 15):\n"
              "  full rebuild, MerkleTree (before)          %8.1f ms\n"
              "  full rebuild, compact range (no frontier)  %8.1f ms\n"
              "  incremental, 16 new entries                %8.3f ms\n"
              "  incremental, 1 new entry                   %8.3f ms\n",
              static_cast<unsigned long long>(total), fill_s, old_best, full_best, incr_best, incr1_best);
}

void settle_cycle(const std::string& location, const std::string& pg_schema, const std::string& dir) {
  SettleOptions o;
  o.ledger = location;
  o.pg_schema = pg_schema;
  o.keys_dir = dir + "/keys";
  o.checkpoint_every = 2;
  o.checkpoint_dir = dir + "/cp";
  o.replay_out = dir + "/last.replay";
  std::vector<SettleOutcome> outs;
  for (int i = 0; i < 3; ++i) {
    std::string intent = R"({"agent_id": "agent-)" + std::to_string(i) +
                         R"(", "task_type": "compute", "max_units": )" + std::to_string(100 + i) +
                         R"(, "expires_at_ms": 4102444800000})";
    CallInputs in = seed_inputs(Tier::kBaseline, intent);
    Produced p = produce(in);
    auto s = settle_call(o, *p.contract, in, p.call);
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    ASSERT_TRUE(s->hold_id.has_value());
    EXPECT_EQ(*s->log_index, static_cast<uint64_t>(i));
    EXPECT_EQ(s->checkpoint_path.empty(), i != 1) << i;
    outs.push_back(*s);
  }
  auto keys = KeyStore::open(o.keys_dir, false).value();
  auto ledger = open_ledger(location, pg_schema).value();
  // Receipts chain through the journal.
  auto second = verify_receipt(outs[1].cose, *keys).value();
  EXPECT_EQ(to_hex(second.prev_receipt_hash), outs[0].receipt_id);
  // Holds are pending from the agent to escrow.
  auto hold = ledger->lookup_transfer(*Id128::parse(*outs[2].hold_id)).value();
  ASSERT_TRUE(hold.has_value());
  EXPECT_EQ(hold->hold_state, HoldState::kPending);
  EXPECT_EQ(hold->amount, 102u);
  EXPECT_EQ(hold->debit_account_id, agent_account_id("agent-2"));
  EXPECT_GT(hold->timeout_s, 0u);
  // The checkpoint at 2 entries verifies, and so does an inclusion proof of the first receipt.
  auto cp = verify_checkpoint(read_text(dir + "/cp/checkpoint-2.txt"), keys->public_keys());
  ASSERT_TRUE(cp.is_ok()) << cp.status().to_string();
  EXPECT_EQ(cp->tree_size, 2u);
  auto tree = journal_tree(*ledger).value();
  EXPECT_EQ(tree.size(), 3u);
  auto proof = tree.inclusion_proof(0, 2).value();
  EXPECT_TRUE(verify_inclusion(merkle_leaf_hash(outs[0].cose), 0, 2, proof, cp->root).is_ok());
  // The last call's replay package confirms.
  auto pkg = decode_replay_package(read_file(o.replay_out)).value();
  auto v = replay(pkg, Tier::kInterp, keys.get());
  ASSERT_TRUE(v.is_ok());
  EXPECT_TRUE(v->confirmed) << v->field << ": " << v->detail;
  EXPECT_EQ(receipt_id_hex(pkg.receipt), outs[2].receipt_id);
  auto report = ledger->verify().value();
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.journal_entries, 3u);
}

TEST(Settle, CycleOnSqlite) {
  std::string dir = tmpdir("sqlite");
  settle_cycle(dir + "/ledger.db", "", dir);
}

TEST(Settle, CycleOnPostgres) {
  const char* url = std::getenv("COVENANT_PG_URL");
  if (!url || !*url) {
    const char* require = std::getenv("COVENANT_REQUIRE_PG");
    if (require && std::string(require) == "1") FAIL() << "COVENANT_REQUIRE_PG=1 but COVENANT_PG_URL is not set";
    GTEST_SKIP() << "COVENANT_PG_URL not set";
  }
  std::string dir = tmpdir("pg");
  std::string schema = "settle_test_" + std::to_string(getpid());
  settle_cycle(url, schema, dir);
}

}  // namespace
}  // namespace covenant::settle
