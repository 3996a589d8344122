// Receipts from calls, the escrow mapping and the ledger wiring (docs/settlement.md).
#include "settle/settle.h"

#include "settle/interface_diff.h"

#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <thread>

#include "evidence/cbor.h"

namespace covenant::settle {

using json = nlohmann::json;

namespace {

std::span<const uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

void write_opt_bytes(cbor::Writer& w, const std::optional<std::string>& v) {
  if (v) w.bytes(as_bytes(*v));
  else w.null();
}

Hash32 tagged_hash(std::string_view tag, std::span<const uint8_t> prefix, std::span<const uint8_t> body) {
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, reinterpret_cast<const uint8_t*>(tag.data()), tag.size());
  if (!prefix.empty()) crypto_hash_sha256_update(&st, prefix.data(), prefix.size());
  crypto_hash_sha256_update(&st, body.data(), body.size());
  Hash32 h;
  crypto_hash_sha256_final(&st, h.data());
  return h;
}

Status value_to_cbor(const abi::WitValue& v, cbor::Writer& w, int depth) {
  using K = wit::TypeKind;
  if (depth > cbor::kCborDepthMax - 2) return Status::invalid("decision nests too deeply");
  switch (v.kind()) {
    case K::kBool: w.boolean(v.as_bool()); return Status::ok();
    case K::kS8: case K::kS16: case K::kS32: case K::kS64: w.int64(v.as_signed()); return Status::ok();
    case K::kU8: case K::kU16: case K::kU32: case K::kU64: w.uint(v.as_unsigned()); return Status::ok();
    case K::kChar: w.uint(v.as_char()); return Status::ok();
    case K::kFlags: w.uint(v.flag_bits()); return Status::ok();
    case K::kEnum: w.uint(v.case_index()); return Status::ok();
    case K::kString: w.text(v.as_string()); return Status::ok();
    case K::kList: case K::kRecord: case K::kTuple:
      w.array(v.items().size());
      for (const abi::WitValue& item : v.items()) COVENANT_RETURN_IF_ERROR(value_to_cbor(item, w, depth + 1));
      return Status::ok();
    case K::kVariant: case K::kOption: case K::kResult:
      w.array(v.payload() ? 2 : 1);
      w.uint(v.case_index());
      if (v.payload()) COVENANT_RETURN_IF_ERROR(value_to_cbor(*v.payload(), w, depth + 1));
      return Status::ok();
    case K::kF32: case K::kF64: break;
  }
  return Status::invalid("decision holds a float, which receipts do not carry");
}

// A field of a JSON object in any spelling: "max-units", "max_units".
const json* field(const json& obj, std::string_view kebab) {
  if (!obj.is_object()) return nullptr;
  std::string snake(kebab);
  for (char& c : snake)
    if (c == '-') c = '_';
  for (const std::string& name : {std::string(kebab), snake}) {
    auto it = obj.find(name);
    if (it != obj.end()) return &*it;
  }
  return nullptr;
}

std::optional<uint64_t> as_u64(const json* v) {
  if (!v) return std::nullopt;
  if (v->is_number_unsigned()) return v->get<uint64_t>();
  if (v->is_number_integer() && v->get<int64_t>() >= 0) return static_cast<uint64_t>(v->get<int64_t>());
  if (v->is_string()) {
    const std::string& s = v->get_ref<const std::string&>();
    if (s.empty() || s.size() > 20 || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    errno = 0;
    unsigned long long x = std::strtoull(s.c_str(), nullptr, 10);
    if (errno) return std::nullopt;
    return x;
  }
  return std::nullopt;
}

Id128 id_from(std::span<const uint8_t> bytes16) {
  Id128Bytes b;
  std::memcpy(b.data(), bytes16.data(), b.size());
  return Id128::from_bytes(b);
}

std::string covenant_home() {
  if (const char* h = std::getenv("COVENANT_HOME"); h && *h) return h;
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.covenant";
}

Status write_file_atomic(const std::string& path, std::string_view data) {
  // The temporary is this process's and thread's own: concurrent writers never rename
  // each other's half-written file away.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." +
                          std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id()) % 1000000);
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return Status::io("cannot write " + tmp + ": " + std::strerror(errno));
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
    f.flush();
    if (!f) return Status::io("cannot write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status::io("cannot rename " + tmp + " to " + path + ": " + ec.message());
  return Status::ok();
}

}  // namespace

Hash32 state_root_before(const CallRecord& r) {
  std::vector<uint8_t> buf;
  cbor::Writer w(&buf);
  w.array(3);
  if (r.kv_usage) {
    w.array(2);
    w.uint(r.kv_usage->keys);
    w.uint(r.kv_usage->bytes);
  } else {
    w.null();
  }
  w.array(r.kv_reads.size());
  for (const KvRead& k : r.kv_reads) {
    w.array(2);
    w.bytes(as_bytes(k.key));
    write_opt_bytes(w, k.value);
  }
  w.array(r.kv_lists.size());
  for (const KvList& l : r.kv_lists) {
    w.array(2);
    w.bytes(as_bytes(l.prefix));
    w.array(l.keys.size());
    for (const std::string& k : l.keys) w.bytes(as_bytes(k));
  }
  return tagged_hash("covenant/kv-before/v1", {}, buf);
}

Hash32 state_root_after(const Hash32& before, const CallRecord& r) {
  // No writes, no change: the root stays `before`, and the receipt omits it
  // (docs/receipts.md, key 7).
  if (r.kv_writes.empty()) return before;
  std::vector<uint8_t> buf;
  cbor::Writer w(&buf);
  w.array(r.kv_writes.size());
  for (const KvWrite& k : r.kv_writes) {
    w.array(2);
    w.bytes(as_bytes(k.key));
    write_opt_bytes(w, k.value);
  }
  return tagged_hash("covenant/kv-after/v1", before, buf);
}

Hash32 legacy_state_root_after_no_writes(const Hash32& before) {
  static constexpr uint8_t kEmptyArray[] = {0x80};
  return tagged_hash("covenant/kv-after/v1", before, kEmptyArray);
}

Result<std::vector<uint8_t>> decision_cbor(std::span<const abi::WitValue> results) {
  std::vector<uint8_t> buf;
  cbor::Writer w(&buf);
  if (results.empty()) w.null();
  else if (results.size() > 1) w.array(results.size());
  for (const abi::WitValue& v : results) COVENANT_RETURN_IF_ERROR(value_to_cbor(v, w, 0));
  if (buf.size() > kReceiptDecisionBytesMax)
    return Status::invalid("decision is " + std::to_string(buf.size()) + " bytes encoded; receipts hold at most " +
                                    std::to_string(kReceiptDecisionBytesMax));
  return buf;
}

Result<InterfaceHash> interface_hash(const wit::Package& package, const wit::World& world, std::string_view grants_json) {
  static constexpr char kDomain[] = "covenant/interface/v1";
  std::vector<uint8_t> buf(kDomain, kDomain + sizeof kDomain - 1);
  cbor::Writer w(&buf);
  w.array(2);
  w.array(3);
  w.text(world.name.kebab);
  encode_world_items(package, world.imports, w);
  encode_world_items(package, world.exports, w);
  if (grants_json.empty()) {
    w.null();
  } else {
    json g = json::parse(grants_json, nullptr, false);
    if (g.is_discarded()) return Status::invalid("grants: not valid JSON");
    w.text(g.dump());  // nlohmann's objects keep keys sorted: one spelling per manifest
  }
  const Hash32 h = sha256(std::span<const uint8_t>(buf));
  InterfaceHash out{};
  std::memcpy(out.data(), h.data(), out.size());
  return out;
}

Result<Receipt> build_receipt(const Contract& contract, const CallInputs& in, std::span<const abi::WitValue> results,
                              const CallRecord& record, uint64_t fuel_used) {
  Receipt r;
  r.contract_hash = sha256(std::span<const uint8_t>(in.module));
  const wit::Function* fn = contract.find_export(in.export_name);
  if (!fn) return Status::invalid("the world exports no " + in.export_name);
  r.entry = contract.world().name.written + "#" + fn->name.written;
  if (r.entry.size() > kReceiptEntryBytesMax) return Status::invalid("world#export is longer than receipts allow");
  r.intent_hash = sha256(as_bytes(in.intent));
  auto d = decision_cbor(results);
  if (!d) return d.status();
  r.decision = std::move(*d);
  r.fuel_used = fuel_used;
  r.state_root_before = state_root_before(record);
  r.state_root_after = state_root_after(r.state_root_before, record);
  r.time_unix_ms = record.wall_ms;
  auto ih = interface_hash(contract.package(), contract.world(), in.grants);
  if (!ih) return ih.status();
  r.interface_hash = *ih;
  return r;
}

// ---------------------------------------------------------------------------
// Escrow

Id128 derived_id(std::string_view text) {
  Hash32 h = sha256(as_bytes(text));
  return id_from(std::span(h).first(16));
}
Id128 agent_account_id(std::string_view agent_id) { return derived_id("covenant/agent/" + std::string(agent_id)); }
Id128 escrow_account_id() { return derived_id("covenant/escrow"); }
Id128 budget_account_id(std::string_view tenant, std::string_view agent_id) {
  return derived_id("covenant/budget/" + std::string(tenant) + "/" + std::string(agent_id));
}
Id128 treasury_account_id(std::string_view tenant) { return derived_id("covenant/treasury/" + std::string(tenant)); }
std::string budget_row_key(std::string_view tenant, std::string_view agent_id) {
  return "\x01budget/" + std::string(tenant) + "/" + std::string(agent_id);
}

Status fund_agent(Ledger& ledger, std::string_view tenant, std::string_view agent_id, uint64_t amount,
                  std::string_view transfer_key) {
  if (amount == 0) return Status::invalid("the amount must be positive");
  Atomic a;
  a.accounts.push_back(Account{.id = treasury_account_id(tenant), .ledger = kEscrowLedgerId, .code = kTreasuryAccountCode});
  a.accounts.push_back(Account{.id = budget_account_id(tenant, agent_id), .ledger = kEscrowLedgerId,
                               .code = kAgentAccountCode, .flags = kAccountDebitsMustNotExceedCredits});
  Transfer t;
  t.id = derived_id("covenant/fund/" + std::string(tenant) + "/" + std::string(agent_id) + "/" + std::string(transfer_key));
  t.debit_account_id = treasury_account_id(tenant);
  t.credit_account_id = budget_account_id(tenant, agent_id);
  t.amount = amount;
  t.ledger = kEscrowLedgerId;
  t.code = kTreasuryAccountCode;
  a.transfers.push_back(t);
  a.puts.push_back({budget_row_key(tenant, agent_id), json{{"account_id", budget_account_id(tenant, agent_id).hex()}}.dump()});
  std::vector<LedgerOperation> ops{a};
  auto r = ledger.submit(ops);
  if (!r) return r.status();
  const LedgerReply& rep = (*r)[0];
  if (rep.result == LedgerResult::ok) return Status::ok();
  const LedgerResult why = rep.result == LedgerResult::atomic_part_refused ? rep.part_result : rep.result;
  return Status::precondition(std::string("the ledger refused the funding: ") + ledger_result_name(why));
}

Result<AgentBalance> agent_balance(Ledger& ledger, std::string_view tenant, std::string_view agent_id) {
  AgentBalance b;
  b.account_id = budget_account_id(tenant, agent_id);
  auto acc = ledger.lookup_account(b.account_id);
  if (!acc) return acc.status();
  if (!*acc) return b;
  b.funded = true;
  b.credits_posted = (*acc)->credits_posted;
  b.debits_posted = (*acc)->debits_posted;
  b.debits_pending = (*acc)->debits_pending;
  const uint64_t spent = b.debits_posted + b.debits_pending;
  b.available = b.credits_posted > spent ? b.credits_posted - spent : 0;
  return b;
}

std::optional<uint64_t> intent_expiry_ms(const json& intent) {
  auto exp = as_u64(field(intent, "expires-at-ms"));
  if (exp && *exp) return exp;
  return std::nullopt;
}

EscrowPlan plan_escrow(const json& intent, const json& result, uint64_t now_ms, const Hash32& receipt_id) {
  EscrowPlan p;
  const json* approved = field(result, "approved");
  if (!approved || !approved->is_boolean() || !approved->get<bool>()) return p;
  const json* agent = field(intent, "agent-id");
  if (!agent || !agent->is_string() || agent->get_ref<const std::string&>().empty()) return p;
  std::optional<uint64_t> amount = as_u64(field(intent, "amount"));
  if (!amount) amount = as_u64(field(intent, "max-units"));
  if (!amount || *amount == 0) return p;
  p.hold = true;
  p.agent_id = agent->get<std::string>();
  p.agent_account = agent_account_id(p.agent_id);
  p.escrow_account = escrow_account_id();
  p.hold_id = id_from(std::span(receipt_id).first(16));
  p.amount = *amount;
  if (auto exp = intent_expiry_ms(intent)) {
    uint64_t s = *exp > now_ms ? (*exp - now_ms + 999) / 1000 : 1;
    s = std::max<uint64_t>(s, kHoldTimeoutMinS);
    p.timeout_s = static_cast<uint32_t>(std::min<uint64_t>(s, std::numeric_limits<uint32_t>::max()));
  }
  return p;
}

std::vector<Account> escrow_accounts(const EscrowPlan& plan) {
  return {Account{.id = plan.agent_account, .ledger = kEscrowLedgerId, .code = kAgentAccountCode},
          Account{.id = plan.escrow_account, .ledger = kEscrowLedgerId, .code = kEscrowAccountCode}};
}

Transfer escrow_hold(const EscrowPlan& plan) {
  Transfer t;
  t.id = plan.hold_id;
  t.debit_account_id = plan.agent_account;
  t.credit_account_id = plan.escrow_account;
  t.amount = plan.amount;
  t.user_data = plan.hold_id;
  t.timeout_s = plan.timeout_s;
  t.ledger = kEscrowLedgerId;
  t.code = kAgentAccountCode;
  t.flags = kTransferPending;
  return t;
}

// ---------------------------------------------------------------------------
// Ledger wiring

Result<std::unique_ptr<Ledger>> open_ledger(const std::string& location, const std::string& pg_schema) {
  LedgerOptions lo;
  if (!pg_schema.empty()) lo.storage.pg_schema = pg_schema;
  return Ledger::open(location, std::move(lo));
}

Result<MerkleTree> journal_tree(Ledger& ledger) {
  MerkleTree t;
  auto n = ledger.journal_count();
  if (!n) return n.status();
  t.reserve(*n);
  COVENANT_RETURN_IF_ERROR(ledger.journal_for_each(1, [&](const JournalRow& row) {
    t.append_entry(as_bytes(row.entry));
    return true;
  }));
  return t;
}

std::string default_checkpoint_dir(const std::string& location) {
  if (is_postgres_location(location) || location == "memory:") return covenant_home() + "/checkpoints";
  return location + ".checkpoints";
}

// ---------------------------------------------------------------------------
// Checkpoint frontier

namespace {

std::vector<uint8_t> frontier_signed_message(std::span<const uint8_t> body) {
  std::vector<uint8_t> m(kFrontierSignatureContext.size() + body.size());
  std::memcpy(m.data(), kFrontierSignatureContext.data(), kFrontierSignatureContext.size());
  if (!body.empty()) std::memcpy(m.data() + kFrontierSignatureContext.size(), body.data(), body.size());
  return m;
}

// Reads a whole file; nullopt when it does not exist.
Result<std::optional<std::string>> read_optional_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec) && !ec) return std::optional<std::string>();
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::io("cannot read " + path + ": " + std::strerror(errno));
  std::string text{std::istreambuf_iterator<char>(f), {}};
  if (f.bad()) return Status::io("cannot read " + path);
  return std::optional<std::string>(std::move(text));
}

// The stored frontier when it may be used for `ledger`; nullopt with *why
// otherwise. Errors are the journal's own (a damaged row): the rebuild would
// meet them too.
Result<std::optional<StoredFrontier>> usable_frontier(Ledger& ledger, const SigningKey& key, const std::string& dir,
                                                      std::string* why) {
  const std::string path = dir + "/" + kFrontierFileName;
  auto bytes = read_optional_file(path);
  if (!bytes) {
    *why = bytes.status().to_string();
    return std::optional<StoredFrontier>();
  }
  if (!*bytes) {
    *why = "no frontier file " + path;
    return std::optional<StoredFrontier>();
  }
  auto f = decode_frontier(as_bytes(**bytes), key.public_key());
  if (!f) {
    *why = path + ": " + f.status().message();
    return std::optional<StoredFrontier>();
  }
  const uint64_t m = f->range.size();
  if (m > 0) {
    // No journal_count() here: on SQLite it is a scan of the table.
    auto row = ledger.journal_at(m);
    if (!row) return row.status();
    if (!*row) {
      auto n = ledger.journal_count();
      *why = path + " covers " + std::to_string(m) + " entries but the journal has " +
             (n ? std::to_string(*n) : std::string("fewer")) + " (another or a restored ledger)";
      return std::optional<StoredFrontier>();
    }
    if ((*row)->chain != f->journal_chain) {
      *why = path + " was cut from another journal (the journal chain at entry " + std::to_string(m) + " differs)";
      return std::optional<StoredFrontier>();
    }
  } else if (f->journal_chain != Hash32{}) {
    *why = path + ": size 0 with a non-zero journal chain";
    return std::optional<StoredFrontier>();
  }
  const std::string cp_path = dir + "/checkpoint-" + std::to_string(m) + ".txt";
  auto note = read_optional_file(cp_path);
  if (!note || !*note) {
    *why = path + " (size " + std::to_string(m) + ") has no " + cp_path + " to be checked against";
    return std::optional<StoredFrontier>();
  }
  const PublicKey keys[] = {key.public_key()};
  auto cp = verify_checkpoint(**note, keys);
  if (!cp) {
    *why = cp_path + " does not verify with the executor key (" + cp.status().message() + ")";
    return std::optional<StoredFrontier>();
  }
  if (cp->tree_size != m || cp->root != f->range.root()) {
    *why = path + ": its root at size " + std::to_string(m) + " is not the one signed in " + cp_path;
    return std::optional<StoredFrontier>();
  }
  return std::optional<StoredFrontier>(std::move(*f));
}

}  // namespace

std::vector<uint8_t> encode_frontier(const StoredFrontier& f, const SigningKey& key) {
  const std::vector<uint8_t> range = f.range.serialize();
  const size_t head = kFrontierMagic.size() + 32;
  std::vector<uint8_t> out(head + range.size() + kSignatureBytes);
  std::memcpy(out.data(), kFrontierMagic.data(), kFrontierMagic.size());
  std::memcpy(out.data() + kFrontierMagic.size(), f.journal_chain.data(), 32);
  std::memcpy(out.data() + head, range.data(), range.size());
  const size_t body = head + range.size();
  key.sign(frontier_signed_message(std::span(out).first(body)), out.data() + body);
  return out;
}

Result<StoredFrontier> decode_frontier(std::span<const uint8_t> bytes, const PublicKey& key) {
  if (bytes.size() < kFrontierMagic.size() ||
      std::memcmp(bytes.data(), kFrontierMagic.data(), kFrontierMagic.size()) != 0) {
    return Status::invalid("not a frontier file (no \"" + std::string(kFrontierMagic) + "\" header)");
  }
  const size_t fixed = kFrontierMagic.size() + 32 + kSignatureBytes;
  if (bytes.size() < fixed + CompactRange::serialized_size(0)) {
    return Status::invalid("frontier file of " + std::to_string(bytes.size()) + " bytes is truncated");
  }
  StoredFrontier f;
  std::memcpy(f.journal_chain.data(), bytes.data() + kFrontierMagic.size(), 32);
  const auto range_bytes = bytes.subspan(kFrontierMagic.size() + 32, bytes.size() - fixed);
  auto range = CompactRange::parse(range_bytes);
  if (!range) return range.status();
  f.range = std::move(*range);
  const auto body = bytes.first(bytes.size() - kSignatureBytes);
  if (!ed25519_verify(key, frontier_signed_message(body), bytes.last(kSignatureBytes))) {
    return Status::corruption("frontier signature does not verify with the executor key (kid " + to_hex(kid_for(key)) +
                              "): altered, or written under another key");
  }
  return f;
}

std::string signed_head_key(uint64_t tree_size) {
  std::string k(kSignedHeadKvPrefix);
  for (int i = 0; i < 8; ++i) k.push_back(static_cast<char>(tree_size >> (56 - 8 * i)));
  return k;
}

Status record_signed_head(Ledger& ledger, const Checkpoint& cp) {
  const std::string root(reinterpret_cast<const char*>(cp.root.data()), cp.root.size());
  // A larger size already signed: the journal has shrunk below it.
  auto larger = ledger.kv_scan(std::string(kSignedHeadKvPrefix), signed_head_key(cp.tree_size), 1);
  if (!larger) return larger.status();
  if (!larger->empty()) {
    uint64_t signed_size = 0;
    const std::string& k = larger->front().first;
    for (size_t i = kSignedHeadKvPrefix.size(); i < k.size(); ++i) signed_size = (signed_size << 8) | static_cast<uint8_t>(k[i]);
    return Status::corruption("refusing to sign tree size " + std::to_string(cp.tree_size) + ": tree size " +
                              std::to_string(signed_size) + " was already signed, so entries " +
                              std::to_string(cp.tree_size + 1) + ".." + std::to_string(signed_size) + " are missing");
  }
  for (int attempt = 0; attempt < 8; ++attempt) {
    auto have = ledger.kv_get(signed_head_key(cp.tree_size));
    if (!have) return have.status();
    if (*have) {
      if (**have == root) return Status::ok();
      return Status::corruption("refusing to sign tree size " + std::to_string(cp.tree_size) + " with root " +
                                to_hex(cp.root) + ": root " + to_hex(as_bytes(**have)) +
                                " was already signed for that size (the journal was changed after it was checkpointed)");
    }
    std::vector<LedgerOperation> ops = {Atomic{.expects = {{signed_head_key(cp.tree_size), std::nullopt}},
                                               .puts = {{signed_head_key(cp.tree_size), root}}}};
    auto r = ledger.submit(ops);
    if (!r) return r.status();
    if ((*r)[0].result == LedgerResult::ok) return Status::ok();
    if ((*r)[0].result != LedgerResult::kv_expectation_failed)
      return Status::internal(std::string("recording the signed head: ") + ledger_result_name((*r)[0].result));
    // Another process recorded this size at the same moment: compare with its root.
  }
  return Status::io("recording the signed head: still contended after 8 attempts");
}

Result<std::string> cut_checkpoint(Ledger& ledger, const SigningKey& key, const std::string& origin,
                                   const std::string& dir, uint64_t* tree_size, CheckpointStats* stats) {
  CheckpointStats st;
  std::string why;
  auto stored = usable_frontier(ledger, key, dir, &why);
  if (!stored) return stored.status();
  StoredFrontier f;
  if (*stored) {
    f = std::move(**stored);
    st.frontier_size = f.range.size();
  } else {
    st.rebuilt = true;
    std::error_code ec;
    // A directory that never had a checkpoint has nothing to explain.
    const bool fresh = !std::filesystem::exists(dir + "/latest.txt", ec) &&
                       !std::filesystem::exists(dir + "/" + kFrontierFileName, ec);
    if (!fresh) {
      st.frontier_note = why;
      std::fprintf(stderr, "covenant: checkpoint: not using the stored frontier: %s; rebuilding the tree from the whole journal\n",
                   why.c_str());
    }
  }
  // Only the entries after the frontier, checked against its journal chain by
  // journal_for_each (each row against its predecessor, from row `size`).
  COVENANT_RETURN_IF_ERROR(ledger.journal_for_each(f.range.size() + 1, [&](const JournalRow& row) {
    f.range.append_entry(as_bytes(row.entry));
    f.journal_chain = row.chain;
    ++st.leaves_read;
    return true;
  }));
  Checkpoint cp{origin, f.range.size(), f.range.root()};
  COVENANT_RETURN_IF_ERROR(record_signed_head(ledger, cp));
  auto note = sign_checkpoint(cp, key);
  if (!note) return note.status();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::io("cannot create " + dir + ": " + ec.message());
  const std::string path = dir + "/checkpoint-" + std::to_string(cp.tree_size) + ".txt";
  COVENANT_RETURN_IF_ERROR(write_file_atomic(path, *note));
  COVENANT_RETURN_IF_ERROR(write_file_atomic(dir + "/latest.txt", *note));
  // Last: a crash before this leaves the previous frontier, still matching
  // its own checkpoint file, so the next run extends it.
  const std::vector<uint8_t> fb = encode_frontier(f, key);
  Status w = write_file_atomic(dir + "/" + kFrontierFileName,
                               std::string_view(reinterpret_cast<const char*>(fb.data()), fb.size()));
  if (w.is_ok()) {
    st.frontier_written = true;
  } else {
    std::fprintf(stderr, "covenant: checkpoint: %s (the next checkpoint rebuilds the tree)\n", w.to_string().c_str());
  }
  st.tree_size = cp.tree_size;
  if (tree_size) *tree_size = cp.tree_size;
  if (stats) *stats = std::move(st);
  return path;
}

Result<SettleOutcome> settle_call(const SettleOptions& opts, const Contract& contract, const CallInputs& in,
                                  const Contract::CallResult& call) {
  if (call.trap.kind != TrapKind::kNone) return Status::precondition("a trapped call has no receipt");
  auto receipt = build_receipt(contract, in, call.values, call.record, call.fuel_used);
  if (!receipt) return receipt.status();
  auto keys = KeyStore::open(opts.keys_dir.empty() ? default_keys_dir() : opts.keys_dir);
  if (!keys) return keys.status();
  const SigningKey& key = (*keys)->active();
  randombytes_buf(receipt->trace_id.data(), receipt->trace_id.size());

  std::unique_ptr<Ledger> ledger;
  if (!opts.ledger.empty()) {
    auto l = open_ledger(opts.ledger, opts.pg_schema);
    if (!l) return l.status();
    ledger = std::move(*l);
    auto n = ledger->journal_count();
    if (!n) return n.status();
    if (*n > 0) {
      auto last = ledger->journal_at(*n);
      if (!last) return last.status();
      if (!*last) return Status::corruption("journal row " + std::to_string(*n) + " is missing");
      receipt->prev_receipt_hash = (*last)->key;
    }
  }
  SettleOutcome out;
  COVENANT_RETURN_IF_ERROR(sign_receipt(*receipt, key, &out.cose));
  const Hash32 id = receipt_id(out.cose);
  out.receipt_id = to_hex(id);

  if (ledger) {
    json intent = json::parse(in.intent, nullptr, false);
    EscrowPlan plan = plan_escrow(intent, call.result, call.record.wall_ms, id);
    std::vector<LedgerOperation> ops;
    ops.push_back(JournalAppend{id, std::string(out.cose.begin(), out.cose.end())});
    if (plan.hold) {
      for (const Account& a : escrow_accounts(plan)) ops.push_back(a);
      ops.push_back(escrow_hold(plan));
    }
    auto replies = ledger->submit(ops);
    if (!replies) return replies.status();
    static const char* const kWhat[] = {"journal append", "agent account", "escrow account", "hold"};
    for (size_t i = 0; i < replies->size(); ++i) {
      if (!ledger_result_is_success((*replies)[i].result))
        return Status::precondition(std::string("ledger refused the ") + kWhat[i] + ": " +
                                           ledger_result_name((*replies)[i].result));
    }
    const uint64_t seq = (*replies)[0].journal_seq;
    out.log_index = seq - 1;
    if (plan.hold) out.hold_id = plan.hold_id.hex();
    if (opts.checkpoint_every && seq % opts.checkpoint_every == 0) {
      auto path = cut_checkpoint(*ledger, key, opts.origin,
                                 opts.checkpoint_dir.empty() ? default_checkpoint_dir(opts.ledger) : opts.checkpoint_dir);
      if (!path) return path.status();
      out.checkpoint_path = *path;
    }
  }
  if (!opts.replay_out.empty()) {
    auto bytes = encode_replay_package(make_replay_package(in, call.record, out.cose, key.public_key()));
    COVENANT_RETURN_IF_ERROR(
        write_file_atomic(opts.replay_out, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size())));
  }
  return out;
}

Status write_replay_package(const std::string& path, const ReplayPackage& pkg) {
  auto bytes = encode_replay_package(pkg);
  return write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

// ---------------------------------------------------------------------------
// approve flags

bool ApproveFlags::takes(const std::string& flag) {
  return flag == "--ledger" || flag == "--keys-dir" || flag == "--replay-out" || flag == "--checkpoint-every" ||
         flag == "--checkpoint-dir" || flag == "--origin" || flag == "--pg-schema";
}

std::string ApproveFlags::set(const std::string& flag, const std::string& value) {
  if (flag == "--ledger") opts.ledger = value;
  else if (flag == "--keys-dir") opts.keys_dir = value;
  else if (flag == "--replay-out") opts.replay_out = value;
  else if (flag == "--checkpoint-dir") opts.checkpoint_dir = value;
  else if (flag == "--origin") opts.origin = value;
  else if (flag == "--pg-schema") opts.pg_schema = value;
  else if (flag == "--checkpoint-every") {
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(value.c_str(), &end, 10);
    if (value.empty() || value[0] == '-' || *end || errno) return "--checkpoint-every needs a non-negative integer";
    opts.checkpoint_every = v;
  } else {
    return "unknown option " + flag;
  }
  return "";
}

Result<json> ApproveFlags::apply(const Contract& contract, CallInputs in, const Contract::CallResult& call,
                                 const std::string& grants_path) const {
  if (!grants_path.empty()) {
    std::ifstream f(grants_path, std::ios::binary);
    if (!f) return Status::io("cannot read " + grants_path + " again for the replay package");
    in.grants.assign(std::istreambuf_iterator<char>(f), {});
  }
  auto s = settle_call(opts, contract, in, call);
  if (!s) return s.status();
  json j;
  j["receipt_id"] = s->receipt_id;
  if (!opts.ledger.empty()) {
    j["hold_id"] = s->hold_id ? json(*s->hold_id) : json(nullptr);
    j["log_index"] = *s->log_index;
    if (!s->checkpoint_path.empty()) j["checkpoint"] = s->checkpoint_path;
  }
  return j;
}

}  // namespace covenant::settle
