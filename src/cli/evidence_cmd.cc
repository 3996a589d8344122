// Evidence commands: `receipt`, `key`, `log`. See docs/receipts.md,
// docs/merkle-log.md and docs/cli.md ("Command families"). Receipts, proofs and
// checkpoints are read from the ledger's journal (--ledger, or --data DIR of a
// `covenant serve`), whatever produced them, or from a standalone receipt-log
// file (--log FILE): one implementation (src/cli/evidence_ops.h), which the
// older `covenant settle receipt|prove|checkpoint` spellings also run.
// Exit codes: 0 ok; 1 usage, I/O or lookup error; 2 the thing examined did not
// verify (bad signature, malformed receipt, corrupted log or journal, proof or
// checkpoint that fails).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/evidence_ops.h"
#include "cli/guest_output.h"
#include "covenant/keys.h"
#include "covenant/ledger.h"
#include "covenant/merkle.h"
#include "covenant/receipt.h"
#include "covenant/receipt_log.h"
#include "evidence/cbor.h"
#include "settle/settle.h"

namespace covenant::cli {

using Args = EvidenceArgs;

namespace {

constexpr int kExitVerifyFailed = 2;
using json = nlohmann::json;

constexpr const char* kNoLocation =
    "say where the receipts are: --ledger PATH|postgresql://URL (the ledger of approve --ledger or covenant serve), "
    "--data DIR (a covenant serve data directory) or --log FILE (a receipt-log file)";

// Prints an error (JSON or text) and returns `code`.
int fail(const Args& a, int code, const std::string& what) {
  return Reporter{a.who, a.json}.fail(
      code, code == kExitVerifyFailed ? "verification_failed" : what.rfind("usage:", 0) == 0 ? "usage" : "error", what);
}
int fail(const Args& a, int code, const std::string& error_code, const std::string& what) {
  return Reporter{a.who, a.json}.fail(code, error_code, what);
}

// A receipt-log file that does not parse or whose chain breaks did not verify (2).
int fail(const Args& a, const Status& st) {
  const bool verify = st.code() == Code::kCorruption || st.code() == Code::kInvalidArgument ||
                      st.code() == Code::kUnsupported;
  return fail(a, verify ? kExitVerifyFailed : kExitError, st.to_string());
}

bool read_file(const std::string& path, std::vector<uint8_t>* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  out->assign(std::istreambuf_iterator<char>(f), {});
  return true;
}

bool write_file(const std::string& path, std::span<const uint8_t> bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(f);
}
bool write_text(const std::string& path, std::string_view text) {
  return write_file(path, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

void emit(const Args& a, const json& j, const std::string& text) {
  if (a.json) std::printf("%s\n", j.dump().c_str());
  else std::printf("%s", text.c_str());
}

// ---- where the receipts are ----

// The receipts of one location, in order: leaf i of the Merkle tree is receipt i.
class ReceiptSource {
 public:
  virtual ~ReceiptSource() = default;
  virtual Result<std::optional<uint64_t>> find(const Hash32& id) = 0;  // its leaf index
  virtual Result<std::vector<uint8_t>> read(uint64_t index) = 0;
  // The tree over every receipt; each record is checked (checksum, hash chain) as it is read.
  virtual Result<const MerkleTree*> tree() = 0;
  virtual Ledger* ledger() { return nullptr; }
  virtual std::string describe() const = 0;  // "ledger l.db", "receipt log r.log"
};

class LogSource final : public ReceiptSource {
 public:
  LogSource(std::unique_ptr<ReceiptLog> log, std::string path) : log_(std::move(log)), path_(std::move(path)) {}
  Result<std::optional<uint64_t>> find(const Hash32& id) override {
    auto idx = log_->find(id);
    if (!idx) {
      if (idx.status().code() == Code::kNotFound) return std::optional<uint64_t>();
      return idx.status();
    }
    return std::optional<uint64_t>(*idx);
  }
  Result<std::vector<uint8_t>> read(uint64_t index) override { return log_->read(index); }
  Result<const MerkleTree*> tree() override { return &log_->tree(); }  // checked on open
  std::string describe() const override { return "receipt log " + path_; }
  ReceiptLog& log() { return *log_; }

 private:
  std::unique_ptr<ReceiptLog> log_;
  std::string path_;
};

class LedgerSource final : public ReceiptSource {
 public:
  LedgerSource(std::unique_ptr<Ledger> ledger, std::string location)
      : ledger_(std::move(ledger)), location_(std::move(location)) {}
  Result<std::optional<uint64_t>> find(const Hash32& id) override {
    auto row = ledger_->journal_by_key(id);
    if (!row) return row.status();
    if (!*row) return std::optional<uint64_t>();
    return std::optional<uint64_t>((*row)->seq - 1);
  }
  Result<std::vector<uint8_t>> read(uint64_t index) override {
    auto row = ledger_->journal_at(index + 1);
    if (!row) return row.status();
    if (!*row) return Status::not_found("no receipt at index " + std::to_string(index) + " in " + describe());
    return std::vector<uint8_t>((*row)->entry.begin(), (*row)->entry.end());
  }
  Result<const MerkleTree*> tree() override {
    if (!tree_) {
      auto t = settle::journal_tree(*ledger_);
      if (!t) return t.status();
      tree_ = std::move(*t);
    }
    return &*tree_;
  }
  Ledger* ledger() override { return ledger_.get(); }
  std::string describe() const override { return "ledger " + location_; }

 private:
  std::unique_ptr<Ledger> ledger_;
  std::string location_;
  std::optional<MerkleTree> tree_;
};

// Opens the location (check_location passed). On failure reports it and sets *exit:
// a log or journal that does not check out is 2, anything else 1.
std::unique_ptr<ReceiptSource> open_source(const Args& a, int* exit) {
  if (a.has("--log")) {
    auto log = ReceiptLog::open(a.get("--log"), {.create = false});
    if (!log) {
      *exit = fail(a, log.status());  // corruption names record and offset
      return nullptr;
    }
    return std::make_unique<LogSource>(std::move(*log), a.get("--log"));
  }
  const std::string location = location_ledger(a);
  auto l = settle::open_ledger(location, a.get("--pg-schema"));
  if (!l) {
    *exit = fail(a, l.status().code() == Code::kCorruption ? kExitVerifyFailed : kExitError,
                 l.status().code() == Code::kCorruption ? "verification_failed" : "ledger_open", l.status().to_string());
    return nullptr;
  }
  return std::make_unique<LedgerSource>(std::move(*l), location);
}

// A lookup or read that failed: corruption did not verify (2), anything else 1.
int fail_read(const Args& a, const Status& st) {
  return st.code() == Code::kCorruption ? fail(a, kExitVerifyFailed, st.to_string()) : fail(a, kExitError, "io", st.to_string());
}

json receipt_json(const Receipt& r, std::span<const uint8_t> cose) {
  json j{{"id", receipt_id_hex(cose)},
         {"size_bytes", cose.size()},
         {"contract_hash", to_hex(r.contract_hash)},
         {"entry", r.entry},
         {"intent_hash", to_hex(r.intent_hash)},
         {"fuel_used", r.fuel_used},
         {"state_root_before", to_hex(r.state_root_before)},
         {"state_root_after", to_hex(r.state_root_after)},
         {"time_unix_ms", r.time_unix_ms},
         {"executor_kid", to_hex(r.executor_kid)},
         {"trace_id", to_hex(r.trace_id)},
         {"prev_receipt_hash", to_hex(r.prev_receipt_hash)}};
  auto diag = cbor::diagnostic(r.decision);
  j["decision"] = diag.is_ok() ? *diag : std::string("?");
  if (auto d = decode_decision(r.decision); d.is_ok()) {
    j["approved"] = d->approved;
    j["reason_code"] = d->reason_code;
    if (d->amount) j["amount"] = *d->amount;
  }
  if (r.intent) j["intent"] = to_hex(*r.intent);
  if (r.interface_hash) j["interface_hash"] = to_hex(*r.interface_hash);
  // The agent's key id and nonce come from the request: printed inert.
  if (r.intent_signer)
    j["intent_signer"] = {{"kid", escape_guest_text(r.intent_signer->kid)},
                          {"nonce", escape_guest_text(r.intent_signer->nonce)}};
  return j;
}

std::string receipt_text(const json& j) {
  std::ostringstream s;
  for (const char* k : {"id", "size_bytes", "contract_hash", "entry", "intent_hash", "decision", "fuel_used",
                        "state_root_before", "state_root_after", "time_unix_ms", "executor_kid", "trace_id",
                        "prev_receipt_hash", "intent", "interface_hash", "intent_signer"}) {
    if (!j.contains(k)) continue;
    s << k << ": " << (j[k].is_string() ? j[k].get<std::string>() : j[k].dump()) << "\n";
  }
  return s.str();
}

// ---- receipt ----

// FILE, or with a location (--ledger, --data, --log) the receipt ID read from it.
int receipt_verify(const Args& a) {
  if (a.positional.size() != 1)
    return fail(a, kExitError, "usage: covenant receipt verify FILE | ID (--ledger L | --data DIR | --log FILE) "
                               "[--key PUBHEX] [--keys-dir DIR] [--json]");
  std::vector<uint8_t> cose;
  std::string source = a.positional[0];
  if (a.has_location()) {
    Hash32 id;
    if (!from_hex(a.positional[0], id))
      return fail(a, kExitError, "usage", "with --ledger, --data or --log the argument is a receipt id (64 hex digits)");
    int exit = 0;
    auto src = open_source(a, &exit);
    if (!src) return exit;
    auto idx = src->find(id);
    if (!idx) return fail_read(a, idx.status());
    if (!*idx) return fail(a, kExitError, "not_found", "receipt " + a.positional[0] + " is not in the " + src->describe());
    auto bytes = src->read(**idx);
    if (!bytes) return fail_read(a, bytes.status());
    cose = std::move(*bytes);
    source = src->describe() + ", index " + std::to_string(**idx);
  } else if (!read_file(a.positional[0], &cose)) {
    return fail(a, kExitError, "cannot read " + a.positional[0]);
  }
  Result<Receipt> v = Status::internal("unset");
  const bool pinned = a.has("--key");
  if (pinned) {
    PublicKey pub;
    if (!from_hex(a.get("--key"), pub)) return fail(a, kExitError, "--key must be 64 hex digits (an Ed25519 public key)");
    v = verify_receipt(cose, PinnedKey(pub));
  } else {
    auto ks = KeyStore::open(location_keys_dir(a), false);
    if (!ks) return fail(a, ks.status());
    v = verify_receipt(cose, **ks);
  }
  if (!v) {
    auto decoded = decode_receipt(cose);
    // With --key the verifier named the one key to trust: a receipt it did not sign
    // failed verification (exit 2). From a key store, a kid it does not hold is a
    // lookup error (exit 1).
    const int code = v.status().code() == Code::kNotFound && !pinned ? kExitError : kExitVerifyFailed;
    json j{{"ok", false},
           {"verdict", "invalid"},
           {"error", {{"code", code == kExitVerifyFailed ? "verification_failed" : "key_not_found"},
                      {"message", v.status().to_string()}}}};
    if (decoded) j["receipt"] = receipt_json(*decoded, cose);
    if (a.json) std::printf("%s\n", j.dump().c_str());
    else std::fprintf(stderr, "verdict: invalid\n%s\n", v.status().to_string().c_str());
    return code;
  }
  json j = receipt_json(*v, cose);
  emit(a, json{{"ok", true}, {"verdict", "valid"}, {"source", source}, {"receipt", j}}, receipt_text(j) + "verdict: valid\n");
  return kExitOk;
}

// Issues synthetic receipts (random hashes) chained into a receipt-log file: test
// and benchmark material for the log commands, not evidence of any call.
int receipt_demo(const Args& a) {
  auto ks = KeyStore::open(location_keys_dir(a));
  if (!ks) return fail(a, ks.status());
  auto log = ReceiptLog::open(a.get("--log"), {.sync_each_append = false});
  if (!log) return fail(a, log.status());
  const long count = std::strtol(a.get("--count", "1").c_str(), nullptr, 10);
  if (count <= 0 || count > 10'000'000) return fail(a, kExitError, "--count must be 1..10000000");
  json ids = json::array();
  std::vector<uint8_t> cose;
  for (long i = 0; i < count; ++i) {
    Receipt r;
    const Hash32 seed = sha256(std::span(reinterpret_cast<const uint8_t*>(&i), sizeof i));
    r.contract_hash = sha256(seed);
    r.entry = a.get("--entry", "spend#approve");
    r.intent_hash = sha256(r.contract_hash);
    r.decision = encode_decision({.approved = (seed[0] & 7) != 0, .reason_code = seed[0] & 7 ? 0u : 3u, .amount = seed[1] * 100u});
    r.fuel_used = 40'000 + seed[2] * 37u;
    r.state_root_before = sha256(r.intent_hash);
    r.state_root_after = sha256(r.state_root_before);
    r.time_unix_ms = 1'767'225'600'000ull + static_cast<uint64_t>(i);
    std::memcpy(r.trace_id.data(), seed.data() + 16, r.trace_id.size());
    r.prev_receipt_hash = (*log)->last_receipt_id();
    if (Status st = sign_receipt(r, (*ks)->active(), &cose); !st.is_ok()) return fail(a, st);
    uint64_t index;
    if (Status st = (*log)->append(cose, &index); !st.is_ok()) return fail(a, st);
    if (count <= 100) ids.push_back(receipt_id_hex(cose));
  }
  if (Status st = (*log)->sync(); !st.is_ok()) return fail(a, st);
  std::string text;
  for (const auto& id : ids) text += id.get<std::string>() + "\n";
  emit(a, json{{"ok", true}, {"appended", count}, {"log_size", (*log)->size()}, {"ids", ids}}, text);
  return kExitOk;
}

// ---- key ----

int key_run(const Args& a, const std::string& sub) {
  auto ks = KeyStore::open(location_keys_dir(a));
  if (!ks) return fail(a, ks.status());
  if (sub == "rotate") {
    if (Status st = (*ks)->rotate(); !st.is_ok()) return fail(a, st);
  }
  if (sub == "revoke") {
    KeyId kid{};
    if (a.positional.size() != 1 || !from_hex(a.positional[0], kid))
      return fail(a, kExitError, "usage", "key revoke KID: the key id is 16 hex digits (covenant key show --json lists them)");
    uint64_t at = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
    if (a.has("--at")) (void)parse_u64_arg("--at", a.get("--at"), UINT64_MAX, false, &at);
    if (Status st = (*ks)->revoke(kid, at); !st.is_ok()) return fail(a, st);
  }
  const SigningKey& k = (*ks)->active();
  json retired = json::array();
  for (const PublicKey& p : (*ks)->public_keys()) {
    if (p == k.public_key()) continue;
    json r{{"kid", to_hex(kid_for(p))}, {"public_key", to_hex(p)}};
    if (auto t = (*ks)->revoked_at_ms(kid_for(p))) r["revoked_at_ms"] = *t;
    retired.push_back(r);
  }
  if (sub == "revoke") {
    const uint64_t t = *(*ks)->revoked_at_ms([&] {
      KeyId kid{};
      from_hex(a.positional[0], kid);
      return kid;
    }());
    emit(a, json{{"ok", true}, {"kid", a.positional[0]}, {"revoked_at_ms", t}, {"keys_dir", (*ks)->dir()}},
         "revoked " + a.positional[0] + " as of " + std::to_string(t) +
             " ms: receipts it signed from then on no longer verify\n");
    return kExitOk;
  }
  emit(a,
       json{{"ok", true}, {"kid", to_hex(k.kid())}, {"public_key", to_hex(k.public_key())}, {"keys_dir", (*ks)->dir()},
            {"retired", retired}},
       to_hex(k.public_key()) + "\n" + (sub == "rotate" ? "rotated; " : "") + "kid " + to_hex(k.kid()) + "\n");
  return kExitOk;
}

// ---- log ----

json hashes_json(const std::vector<Hash32>& hs) {
  json j = json::array();
  for (const auto& h : hs) j.push_back(to_hex(h));
  return j;
}

bool hashes_from_json(const json& j, std::vector<Hash32>* out) {
  if (!j.is_array() || j.size() > kMerkleProofHashesMax) return false;
  for (const auto& e : j) {
    Hash32 h;
    if (!e.is_string() || !from_hex(e.get<std::string>(), h)) return false;
    out->push_back(h);
  }
  return true;
}

// Offline: a proof file checked against a signed checkpoint (and, for an
// inclusion proof, optionally the receipt bytes it is about).
int verify_proof_file(const Args& a, const std::vector<PublicKey>& keys) {
  std::vector<uint8_t> raw;
  if (!read_file(a.get("--proof"), &raw)) return fail(a, kExitError, "cannot read " + a.get("--proof"));
  json p = json::parse(raw.begin(), raw.end(), nullptr, false);
  if (p.is_discarded() || !p.is_object()) return fail(a, kExitVerifyFailed, "proof file is not JSON");
  std::vector<uint8_t> note;
  if (!read_file(a.get("--checkpoint"), &note)) return fail(a, kExitError, "cannot read " + a.get("--checkpoint"));
  auto cp = verify_checkpoint(std::string_view(reinterpret_cast<const char*>(note.data()), note.size()), keys);
  if (!cp) return fail(a, cp.status().code() == Code::kNotFound ? kExitError : kExitVerifyFailed, cp.status().to_string());
  std::vector<Hash32> path;
  if (!hashes_from_json(p.value("path", json()), &path)) return fail(a, kExitVerifyFailed, "proof path is not a list of hex hashes");
  Status st;
  if (p.value("type", "") == "inclusion") {
    Hash32 leaf;
    if (a.has("--receipt")) {
      std::vector<uint8_t> cose;
      if (!read_file(a.get("--receipt"), &cose)) return fail(a, kExitError, "cannot read " + a.get("--receipt"));
      leaf = merkle_leaf_hash(cose);
    } else if (!from_hex(p.value("leaf_hash", ""), leaf)) {
      return fail(a, kExitVerifyFailed, "proof has no leaf_hash");
    }
    if (p.value("tree_size", uint64_t{0}) != cp->tree_size) {
      return fail(a, kExitVerifyFailed, "proof is for tree size " + std::to_string(p.value("tree_size", uint64_t{0})) +
                                            ", the checkpoint for " + std::to_string(cp->tree_size));
    }
    st = verify_inclusion(leaf, p.value("leaf_index", uint64_t{0}), cp->tree_size, path, cp->root);
  } else if (p.value("type", "") == "consistency") {
    // The checkpoint is the NEW tree head; the old root comes from the proof
    // (an earlier checkpoint the verifier already trusts).
    Hash32 old_root;
    if (!from_hex(p.value("old_root", ""), old_root)) return fail(a, kExitVerifyFailed, "proof has no old_root");
    if (p.value("new_size", uint64_t{0}) != cp->tree_size) return fail(a, kExitVerifyFailed, "proof new_size does not match the checkpoint");
    st = verify_consistency(p.value("old_size", uint64_t{0}), cp->tree_size, old_root, cp->root, path);
  } else {
    return fail(a, kExitVerifyFailed, "proof type must be inclusion or consistency");
  }
  if (!st.is_ok()) return fail(a, kExitVerifyFailed, st.to_string());
  emit(a, json{{"ok", true}, {"verdict", "valid"}, {"type", p.value("type", "")}, {"tree_size", cp->tree_size}, {"root", to_hex(cp->root)}},
       p.value("type", "") + " proof: valid against checkpoint of size " + std::to_string(cp->tree_size) + "\n");
  return kExitOk;
}

// The location's hash chain (receipt-log file: every record; ledger: every journal
// row) and, with --checkpoint, a signed checkpoint against it; or, with --proof, a
// proof file against a checkpoint offline.
int log_verify(const Args& a) {
  std::vector<PublicKey> keys;
  if (a.has("--key")) {
    PublicKey pub;
    if (!from_hex(a.get("--key"), pub)) return fail(a, kExitError, "--key must be 64 hex digits");
    keys.push_back(pub);
  } else if (a.has("--checkpoint")) {
    auto ks = KeyStore::open(location_keys_dir(a), false);
    if (!ks) return fail(a, ks.status());
    keys = (*ks)->public_keys();
  }
  if (a.has("--proof")) return verify_proof_file(a, keys);
  int exit = 0;
  auto src = open_source(a, &exit);
  if (!src) return exit;
  auto tree = src->tree();
  if (!tree) return fail_read(a, tree.status());
  const MerkleTree& t = **tree;
  const bool is_log = a.has("--log");
  json j{{"ok", true}, {"verdict", "valid"}, {"source", src->describe()}, {"tree_size", t.size()}, {"root", to_hex(t.root())}};
  if (is_log) j["log"] = a.get("--log");
  std::string text = (is_log ? "log: " : src->describe() + ": ") + std::to_string(t.size()) +
                     (is_log ? " entries" : " receipts") + ", hash chain intact\nroot: " + to_hex(t.root()) + "\n";
  if (a.has("--checkpoint")) {
    std::vector<uint8_t> note;
    if (!read_file(a.get("--checkpoint"), &note)) return fail(a, kExitError, "cannot read " + a.get("--checkpoint"));
    auto cp = verify_checkpoint(std::string_view(reinterpret_cast<const char*>(note.data()), note.size()), keys);
    if (!cp) return fail(a, cp.status().code() == Code::kNotFound ? kExitError : kExitVerifyFailed, cp.status().to_string());
    auto root = t.root_at(cp->tree_size);
    if (!root) return fail(a, kExitVerifyFailed, "checkpoint tree size " + std::to_string(cp->tree_size) + " is beyond the log");
    if (*root != cp->root) {
      return fail(a, kExitVerifyFailed, "checkpoint root for size " + std::to_string(cp->tree_size) + " does not match the log (" +
                                            to_hex(*root) + ")");
    }
    j["checkpoint_tree_size"] = cp->tree_size;
    text += "checkpoint: signature valid, root matches the log at size " + std::to_string(cp->tree_size) + "\n";
  }
  emit(a, j, text);
  return kExitOk;
}

}  // namespace

// ---- the operations shared with `covenant settle` (evidence_ops.h) ----

std::string location_ledger(const EvidenceArgs& a) {
  if (a.has("--ledger")) return a.get("--ledger");
  if (a.has("--data")) return a.get("--data") + "/ledger.db";
  return "";
}

std::string location_keys_dir(const EvidenceArgs& a) {
  if (a.has("--keys-dir")) return a.get("--keys-dir");
  if (a.has("--data")) return a.get("--data") + "/keys";
  return default_keys_dir();
}

std::string check_location(const EvidenceArgs& a) {
  if (!a.has_location()) return kNoLocation;
  if (a.has("--log") && (a.has("--ledger") || a.has("--data")))
    return "--log names a receipt-log file and --ledger/--data a ledger: give one";
  if (a.has("--log")) return check_input_file("--log", a.get("--log"));
  if (a.has("--data")) {
    const std::string d = a.get("--data");
    std::error_code ec;
    if (!std::filesystem::is_directory(d, ec)) return "--data " + d + ": no such directory (the --data of covenant serve)";
    if (!a.has("--ledger") && !std::filesystem::exists(d + "/ledger.db", ec))
      return "--data " + d + ": no ledger.db there (a server on PostgreSQL: add --ledger postgresql://...)";
  }
  if (a.has("--ledger")) return check_existing_ledger("--ledger", a.get("--ledger"));
  return "";
}

int receipt_get_op(const EvidenceArgs& a) {
  if (a.positional.size() != 1 || !a.has("--out"))
    return fail(a, kExitError, "usage: covenant receipt get ID --out FILE (--ledger L | --data DIR | --log FILE) [--json]");
  Hash32 id;
  if (!from_hex(a.positional[0], id)) return fail(a, kExitError, "usage", "a receipt id is 64 hex digits");
  if (std::string e = check_location(a); !e.empty()) return fail(a, kExitError, a.has_location() ? "bad_file" : "usage", e);
  int exit = 0;
  auto src = open_source(a, &exit);
  if (!src) return exit;
  auto idx = src->find(id);
  if (!idx) return fail_read(a, idx.status());
  if (!*idx) return fail(a, kExitError, "not_found", "receipt " + a.positional[0] + " is not in the " + src->describe());
  auto bytes = src->read(**idx);
  if (!bytes) return fail_read(a, bytes.status());
  if (!write_file(a.get("--out"), *bytes)) return fail(a, kExitError, "io", "cannot write " + a.get("--out"));
  emit(a, json{{"ok", true}, {"id", a.positional[0]}, {"index", **idx}, {"size_bytes", bytes->size()}, {"out", a.get("--out")}},
       "wrote " + std::to_string(bytes->size()) + " bytes (log index " + std::to_string(**idx) + ") to " + a.get("--out") + "\n");
  return kExitOk;
}

int log_prove_op(const EvidenceArgs& a) {
  if (!a.has("--from") && !a.has("--id") && !a.has("--index"))
    return fail(a, kExitError, "usage: covenant log prove (--id RECEIPT_ID | --index I) [--size N] | --from M [--to N] "
                               "(--ledger L | --data DIR | --log FILE)");
  if (std::string e = check_location(a); !e.empty()) return fail(a, kExitError, a.has_location() ? "bad_file" : "usage", e);
  int exit = 0;
  auto src = open_source(a, &exit);
  if (!src) return exit;
  auto tree = src->tree();
  if (!tree) return fail_read(a, tree.status());
  const MerkleTree& t = **tree;
  const uint64_t size = a.has("--size") || a.has("--to") ? std::strtoull(a.get(a.has("--size") ? "--size" : "--to").c_str(), nullptr, 10) : t.size();
  json j;
  std::string summary;
  if (a.has("--from")) {
    const uint64_t from = std::strtoull(a.get("--from").c_str(), nullptr, 10);
    auto p = t.consistency_proof(from, size);
    if (!p) return fail(a, kExitError, p.status().to_string());
    j = {{"type", "consistency"}, {"old_size", from}, {"new_size", size}, {"old_root", to_hex(t.root_at(from).value())},
         {"new_root", to_hex(t.root_at(size).value())}, {"path", hashes_json(*p)}};
    summary = "consistency proof from size " + std::to_string(from) + " to " + std::to_string(size);
  } else {
    uint64_t index;
    if (a.has("--id")) {
      Hash32 id;
      if (!from_hex(a.get("--id"), id)) return fail(a, kExitError, "usage", "a receipt id is 64 hex digits");
      auto idx = src->find(id);
      if (!idx) return fail_read(a, idx.status());
      if (!*idx) return fail(a, kExitError, "not_found", "receipt " + a.get("--id") + " is not in the " + src->describe());
      index = **idx;
    } else {
      index = std::strtoull(a.get("--index").c_str(), nullptr, 10);
    }
    auto p = t.inclusion_proof(index, size);
    if (!p) return fail(a, kExitError, p.status().to_string());
    auto entry = src->read(index);
    if (!entry) return fail_read(a, entry.status());
    j = {{"type", "inclusion"}, {"leaf_index", index}, {"tree_size", size}, {"leaf_hash", to_hex(t.leaf_hash(index))},
         {"receipt_id", receipt_id_hex(*entry)}, {"root", to_hex(t.root_at(size).value())}, {"path", hashes_json(*p)}};
    summary = "inclusion proof of receipt " + receipt_id_hex(*entry) + " (leaf " + std::to_string(index) +
              ") in a tree of " + std::to_string(size);
  }
  // --out writes the proof and prints a one-line summary; without it the proof is the output.
  if (a.has("--out")) {
    if (!write_text(a.get("--out"), j.dump(2) + "\n")) return fail(a, kExitError, "io", "cannot write " + a.get("--out"));
    json r = j;
    r["ok"] = true;
    r["out"] = a.get("--out");
    emit(a, r, summary + " written to " + a.get("--out") + "\n");
    return kExitOk;
  }
  json r = j;
  r["ok"] = true;
  emit(a, r, j.dump(2) + "\n");
  return kExitOk;
}

int log_checkpoint_op(const EvidenceArgs& a) {
  if (std::string e = check_location(a); !e.empty()) return fail(a, kExitError, a.has_location() ? "bad_file" : "usage", e);
  auto ks = KeyStore::open(location_keys_dir(a));
  if (!ks) return fail(a, kExitError, "keys", ks.status().to_string());
  int exit = 0;
  auto src = open_source(a, &exit);
  if (!src) return exit;
  std::string note, path;
  Checkpoint cp;
  if (Ledger* l = src->ledger()) {
    // The ledger's checkpoints live in a directory beside it (or the server's),
    // with the frontier that makes the next one cheap (docs/settlement.md).
    cp.origin = a.get("--origin", "covenant.local/ledger");
    const std::string dir = a.has("--dir") ? a.get("--dir")
                            : a.has("--data") ? a.get("--data") + "/checkpoints"
                                              : settle::default_checkpoint_dir(location_ledger(a));
    auto written = settle::cut_checkpoint(*l, (*ks)->active(), cp.origin, dir, &cp.tree_size);
    if (!written) return fail_read(a, written.status());
    path = *written;
    std::vector<uint8_t> bytes;
    if (!read_file(path, &bytes)) return fail(a, kExitError, "io", "cannot read back " + path);
    note.assign(bytes.begin(), bytes.end());
    const PublicKey pub = (*ks)->active().public_key();
    auto checked = verify_checkpoint(note, std::span(&pub, 1));
    if (!checked) return fail(a, kExitError, "io", path + ": " + checked.status().to_string());
    cp = *checked;
  } else {
    auto tree = src->tree();
    if (!tree) return fail_read(a, tree.status());
    cp = Checkpoint{a.get("--origin", "covenant.local/log"), (*tree)->size(), (*tree)->root()};
    auto signed_note = sign_checkpoint(cp, (*ks)->active());
    if (!signed_note) return fail(a, signed_note.status());
    note = *signed_note;
  }
  if (a.has("--out") && !write_text(a.get("--out"), note)) return fail(a, kExitError, "io", "cannot write " + a.get("--out"));
  json j{{"ok", true}, {"origin", cp.origin}, {"tree_size", cp.tree_size}, {"root", to_hex(cp.root)}, {"checkpoint", note}};
  if (!path.empty()) j["path"] = path;
  if (a.has("--out")) j["out"] = a.get("--out");
  // A file written: a one-line summary. Nothing written: the checkpoint itself.
  std::string text = note;
  if (!path.empty() || a.has("--out")) {
    text = "checkpoint of " + std::to_string(cp.tree_size) + " entries: " + (path.empty() ? a.get("--out") : path);
    if (!path.empty() && a.has("--out")) text += " (and " + a.get("--out") + ")";
    text += "\n";
  }
  emit(a, j, text);
  return kExitOk;
}

namespace {

// ---- parsing: one CLI11 app per command, a subcommand per verb ----

constexpr const char* kReceiptUsage =
    "receipt get ID --out FILE LOCATION [--json] | receipt verify FILE | ID LOCATION [--key PUBHEX] [--keys-dir DIR] "
    "[--json] | receipt demo --log FILE [--count N] [--entry W#E] [--keys-dir DIR] [--json]  "
    "(LOCATION: --ledger PATH|postgresql://URL [--pg-schema S] | --data DIR | --log FILE)";
constexpr const char* kKeyUsage = "key show|rotate [--keys-dir DIR | --data DIR] [--json] | key revoke KID [--at MS] [--keys-dir DIR | --data DIR] [--json]";
constexpr const char* kLogUsage =
    "log checkpoint LOCATION [--origin O] [--dir DIR] [--out FILE] [--keys-dir DIR] | log prove LOCATION (--id ID | "
    "--index I) [--size N] [--out FILE] | log prove LOCATION --from M [--to N] [--out FILE] | log verify LOCATION "
    "[--checkpoint FILE] | log verify --proof FILE --checkpoint FILE [--receipt FILE]  (all: [--key PUBHEX] "
    "[--keys-dir DIR] [--json]; LOCATION: --ledger PATH|postgresql://URL [--pg-schema S] | --data DIR | --log FILE)";

struct Flag {
  const char* name;
  const char* type;  // "" for a flag that takes a number (type N), else the value's name
  const char* desc;
  uint64_t max = 0;  // numbers: the largest value
};

// Adds the flags to sub; their values land in a.flags (numbers checked first).
void add_flags(CLI::App* sub, Args& a, std::initializer_list<Flag> flags) {
  for (const Flag& f : flags) {
    const std::string name = f.name;
    const uint64_t max = f.max;
    const bool number = max != 0;
    auto* o = sub->add_option_function<std::string>(
        name,
        [&a, name, max, number](const std::string& v) {
          uint64_t x = 0;
          if (number)
            if (std::string e = parse_u64_arg(name, v, max, false, &x); !e.empty()) throw CLI::ValidationError(e);
          a.flags[name] = v;
        },
        f.desc);
    o->type_name(number ? "N" : f.type);
  }
  add_json(*sub, a.json);
}

const std::string kKeysDirHelp = "the key store (default DIR/keys with --data, else $COVENANT_HOME/keys)";

// The location flags (evidence_ops.h), added after a verb's own flags.
void add_location(CLI::App* sub, Args& a) {
  for (const Flag& f : std::initializer_list<Flag>{
           {"--ledger", "PATH|URL", "the ledger (approve --ledger, covenant serve): a SQLite path or postgresql://"},
           {"--pg-schema", "S", "PostgreSQL schema (default covenant)"},
           {"--data", "DIR", "a covenant serve data directory (its ledger.db, keys/, checkpoints/)"},
           {"--log", "FILE", "a standalone receipt-log file (as receipt demo writes)"}}) {
    const std::string name = f.name;
    sub->add_option_function<std::string>(name, [&a, name](const std::string& v) { a.flags[name] = v; }, f.desc)
        ->type_name(f.type);
  }
}

// Parses a command with subcommands; returns the subcommand's name, or sets *exit.
std::string parse_verbs(CLI::App& app, std::vector<std::string> argv_v, Args& a, const std::string& cmd,
                        const char* usage, int* exit) {
  argv_v = subcommand_first(std::move(argv_v));
  Reporter rep{cmd, has_json_flag(argv_v)};
  a.json = rep.json;
  a.who = cmd;
  if (argv_v.size() > 1 && argv_v[1].rfind("-", 0) != 0 && !has_subcommand(app, argv_v[1])) {
    *exit = rep.usage("unknown " + cmd + " subcommand '" + argv_v[1] + "'", usage);
    return "";
  }
  if (auto code = parse(app, argv_v, rep, usage)) {
    *exit = *code;
    return "";
  }
  const std::string sub = app.get_subcommands().at(0)->get_name();
  a.who = cmd + " " + sub;
  return sub;
}

// Input files must exist and be files; output files and key stores must be writable.
int check_files(const Args& a, std::initializer_list<std::pair<const char*, char>> which) {
  for (auto [flag, kind] : which) {
    if (!a.has(flag)) continue;
    const std::string v = a.get(flag);
    std::string e = kind == 'i' ? check_input_file(flag, v)
                    : kind == 'o' ? check_output_file(flag, v)
                    : kind == 'd' ? check_dir(flag, v, true)
                                  : check_dir(flag, v, false);
    if (!e.empty()) return Reporter{a.who, a.json}.fail(kExitError, "bad_file", e);
  }
  return -1;
}

// A location for a command that reads receipts: given, and there.
int require_location(const Args& a, const char* usage) {
  if (std::string e = check_location(a); !e.empty()) {
    Reporter rep{a.who, a.json};
    return a.has_location() ? rep.fail(kExitError, "bad_file", e) : rep.usage(e, usage);
  }
  return -1;
}

CLI::App* verb(CLI::App& app, const char* name, const char* desc) { return app.add_subcommand(name, desc); }

int receipt_cmd(int argc, char** argv) {
  Args a;
  CLI::App app("Receipts, wherever they are: read one from the ledger (--ledger, or --data of covenant serve) or a "
               "receipt-log file (--log), verify one (docs/receipts.md). Exit 0 ok, 1 usage/I/O/lookup error, 2 did "
               "not verify.",
               "covenant receipt");
  configure(app);
  app.require_subcommand(1);
  CLI::App* g = verb(app, "get", "write the exact COSE_Sign1 bytes of a receipt");
  add_pos(*g, "ID", a.positional, "the receipt id (64 hex digits)");
  add_flags(g, a, {{"--out", "FILE", "the file to write (required)"}});
  add_location(g, a);
  CLI::App* v = verb(app, "verify", "verify a receipt's signature and print it: a file, or an id with a location");
  add_pos(*v, "FILE|ID", a.positional, "the receipt (COSE_Sign1 bytes), or its id with --ledger, --data or --log");
  add_flags(v, a, {{"--key", "PUBHEX", "trust only this Ed25519 public key (64 hex digits)"},
                   {"--keys-dir", "DIR", kKeysDirHelp.c_str()}});
  add_location(v, a);
  CLI::App* d = verb(app, "demo", "append synthetic signed receipts to a receipt-log file (test material)");
  add_flags(d, a, {{"--log", "FILE", "the receipt-log file to append to (created if missing; required)"},
                   {"--count", "", "how many (1..10000000; default 1)", 10'000'000},
                   {"--entry", "W#E", "the entry field (default spend#approve)"},
                   {"--keys-dir", "DIR", kKeysDirHelp.c_str()}});
  int exit = 0;
  const std::string sub = parse_verbs(app, to_vector(argc, argv), a, "receipt", kReceiptUsage, &exit);
  if (sub.empty()) return exit;
  if (sub == "verify") {
    if (!a.has_location() && a.positional.size() == 1)
      if (std::string e = check_input_file("FILE", a.positional[0]); !e.empty())
        return Reporter{a.who, a.json}.fail(kExitError, "bad_file", e);
    if (int rc = check_files(a, {{"--keys-dir", 'r'}}); rc >= 0) return rc;
    if (a.has_location())
      if (int rc = require_location(a, kReceiptUsage); rc >= 0) return rc;
    return receipt_verify(a);
  }
  if (sub == "get") {
    if (int rc = check_files(a, {{"--out", 'o'}}); rc >= 0) return rc;
    return receipt_get_op(a);
  }
  if (!a.has("--log"))
    return Reporter{a.who, a.json}.usage("--log FILE is required: demo receipts go to a receipt-log file, never to a ledger",
                                         kReceiptUsage);
  if (int rc = check_files(a, {{"--log", 'o'}, {"--keys-dir", 'd'}}); rc >= 0) return rc;
  return receipt_demo(a);
}

int key_cmd(int argc, char** argv) {
  Args a;
  CLI::App app("The executor's signing keys (docs/receipts.md).", "covenant key");
  configure(app);
  app.require_subcommand(1);
  for (auto [name, desc] : {std::pair{"show", "print the active public key and kid (creates the key store if missing)"},
                            std::pair{"rotate", "make a new active key; old keys still verify"}})
    add_flags(verb(app, name, desc), a,
              {{"--keys-dir", "DIR", kKeysDirHelp.c_str()}, {"--data", "DIR", "a covenant serve data directory (DIR/keys)"}});
  CLI::App* rv = verb(app, "revoke",
                      "revoke a retired key as of a time: receipts it signed from then on stop verifying, older ones "
                      "still verify (rotate first if it is the active key)");
  add_pos(*rv, "KID", a.positional, "the key id (16 hex digits)");
  add_flags(rv, a,
            {{"--at", "", "revocation time in Unix milliseconds (default: now; may be in the past)", UINT64_MAX},
             {"--keys-dir", "DIR", kKeysDirHelp.c_str()},
             {"--data", "DIR", "a covenant serve data directory (DIR/keys)"}});
  int exit = 0;
  const std::string sub = parse_verbs(app, to_vector(argc, argv), a, "key", kKeyUsage, &exit);
  if (sub.empty()) return exit;
  if (int rc = check_files(a, {{"--keys-dir", 'd'}, {"--data", 'r'}}); rc >= 0) return rc;
  return key_run(a, sub);
}

int log_cmd(int argc, char** argv) {
  Args a;
  CLI::App app("The Merkle log of receipts (RFC 9162), wherever it is: the ledger's journal (--ledger, or --data of "
               "covenant serve) or a receipt-log file (--log): signed checkpoints, inclusion and consistency proofs, "
               "verification (docs/merkle-log.md). Exit 0 ok, 1 usage/I/O/lookup error, 2 did not verify.",
               "covenant log");
  configure(app);
  app.require_subcommand(1);
  CLI::App* c = verb(app, "checkpoint", "sign a checkpoint of every receipt now");
  add_flags(c, a,
            {{"--origin", "O", "the origin line (default covenant.local/ledger; covenant.local/log for --log)"},
             {"--dir", "DIR", "ledgers: where checkpoints go (default DIR/checkpoints with --data, else <ledger>.checkpoints)"},
             {"--out", "FILE", "also write the checkpoint to this file"},
             {"--keys-dir", "DIR", kKeysDirHelp.c_str()}});
  add_location(c, a);
  CLI::App* p = verb(app, "prove", "an inclusion proof (--id or --index) or a consistency proof (--from)");
  add_flags(p, a,
            {{"--id", "RECEIPT_ID", "inclusion proof of this receipt"},
             {"--index", "", "inclusion proof of this leaf", UINT64_MAX},
             {"--size", "", "tree size to prove against (default: every receipt)", UINT64_MAX},
             {"--from", "", "consistency proof from this size", UINT64_MAX},
             {"--to", "", "consistency proof to this size (default: every receipt)", UINT64_MAX},
             {"--out", "FILE", "write the proof to this file (and print a one-line summary)"}});
  add_location(p, a);
  CLI::App* v = verb(app, "verify", "check the hash chain, a checkpoint against it, or a proof file offline");
  add_flags(v, a,
            {{"--checkpoint", "FILE", "a signed checkpoint"},
             {"--proof", "FILE", "a proof file (with --checkpoint; no location needed)"},
             {"--receipt", "FILE", "the receipt an inclusion proof is about"},
             {"--key", "PUBHEX", "trust only this Ed25519 public key (64 hex digits)"},
             {"--keys-dir", "DIR", kKeysDirHelp.c_str()}});
  add_location(v, a);
  int exit = 0;
  const std::string sub = parse_verbs(app, to_vector(argc, argv), a, "log", kLogUsage, &exit);
  if (sub.empty()) return exit;
  if (sub == "checkpoint") {
    if (int rc = check_files(a, {{"--out", 'o'}, {"--dir", 'd'}, {"--keys-dir", 'd'}}); rc >= 0) return rc;
    if (int rc = require_location(a, kLogUsage); rc >= 0) return rc;
    return log_checkpoint_op(a);
  }
  if (sub == "prove") {
    if (int rc = check_files(a, {{"--out", 'o'}}); rc >= 0) return rc;
    if (!a.has("--from") && !a.has("--id") && !a.has("--index"))
      return Reporter{a.who, a.json}.usage("say what to prove: --id RECEIPT_ID, --index I or --from M", kLogUsage);
    if (int rc = require_location(a, kLogUsage); rc >= 0) return rc;
    return log_prove_op(a);
  }
  if (int rc = check_files(a, {{"--checkpoint", 'i'}, {"--proof", 'i'}, {"--receipt", 'i'}, {"--keys-dir", 'r'}});
      rc >= 0)
    return rc;
  if (a.has("--proof") && !a.has("--checkpoint"))
    return Reporter{a.who, a.json}.usage("--proof needs --checkpoint FILE", kLogUsage);
  if (!a.has("--proof"))
    if (int rc = require_location(a, kLogUsage); rc >= 0) return rc;
  return log_verify(a);
}

}  // namespace

COVENANT_COMMAND("receipt", kReceiptUsage, receipt_cmd);
COVENANT_COMMAND("key", kKeyUsage, key_cmd);
COVENANT_COMMAND("log", kLogUsage, log_cmd);

}  // namespace covenant::cli
