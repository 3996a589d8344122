// Evidence commands: `receipt`, `key`, `log`. See docs/receipts.md and
// docs/merkle-log.md. Exit codes: 0 ok; 1 usage, I/O or lookup error;
// 2 the thing examined did not verify (bad signature, malformed receipt,
// corrupted log, proof or checkpoint that fails).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/command.h"
#include "covenant/keys.h"
#include "covenant/merkle.h"
#include "covenant/receipt.h"
#include "covenant/receipt_log.h"
#include "evidence/cbor.h"

namespace covenant::cli {
namespace {

constexpr int kExitVerifyFailed = 2;
using json = nlohmann::json;

// Positionals and the flags given (by name, "--key"), filled by CLI11.
struct Args {
  std::string who;  // "receipt verify", for messages
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;
  bool json = false;

  bool has(const std::string& f) const { return flags.count(f) > 0; }
  std::string get(const std::string& f, const std::string& def = "") const {
    auto it = flags.find(f);
    return it == flags.end() ? def : it->second;
  }
};

std::string covenant_home() {
  if (const char* h = std::getenv("COVENANT_HOME"); h && *h) return h;
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.covenant";
  return ".covenant";
}
std::string keys_dir(const Args& a) { return a.get("--keys-dir", default_keys_dir()); }
std::string log_path(const Args& a) { return a.get("--log", covenant_home() + "/receipts.log"); }

// Prints an error (JSON or text) and returns `code`.
int fail(const Args& a, int code, const std::string& what) {
  return Reporter{a.who, a.json}.fail(
      code, code == kExitVerifyFailed ? "verification_failed" : what.rfind("usage:", 0) == 0 ? "usage" : "error", what);
}

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

void emit(const Args& a, const json& j, const std::string& text) {
  if (a.json) std::printf("%s\n", j.dump().c_str());
  else std::printf("%s", text.c_str());
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
  return j;
}

std::string receipt_text(const json& j) {
  std::ostringstream s;
  for (const char* k : {"id", "size_bytes", "contract_hash", "entry", "intent_hash", "decision", "fuel_used",
                        "state_root_before", "state_root_after", "time_unix_ms", "executor_kid", "trace_id",
                        "prev_receipt_hash", "intent"}) {
    if (!j.contains(k)) continue;
    s << k << ": " << (j[k].is_string() ? j[k].get<std::string>() : j[k].dump()) << "\n";
  }
  return s.str();
}

// ---- receipt ----

int receipt_verify(const Args& a) {
  if (a.positional.size() != 1) return fail(a, kExitError, "usage: covenant receipt verify FILE [--key PUBHEX] [--keys-dir DIR] [--json]");
  std::vector<uint8_t> cose;
  if (!read_file(a.positional[0], &cose)) return fail(a, kExitError, "cannot read " + a.positional[0]);
  Result<Receipt> v = Status::internal("unset");
  const bool pinned = a.has("--key");
  if (pinned) {
    PublicKey pub;
    if (!from_hex(a.get("--key"), pub)) return fail(a, kExitError, "--key must be 64 hex digits (an Ed25519 public key)");
    v = verify_receipt(cose, PinnedKey(pub));
  } else {
    auto ks = KeyStore::open(keys_dir(a), false);
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
  emit(a, json{{"ok", true}, {"verdict", "valid"}, {"receipt", j}}, receipt_text(j) + "verdict: valid\n");
  return kExitOk;
}

int receipt_get(const Args& a) {
  if (a.positional.size() != 1 || !a.has("--out")) return fail(a, kExitError, "usage: covenant receipt get ID --out FILE [--log FILE] [--json]");
  Hash32 id;
  if (!from_hex(a.positional[0], id)) return fail(a, kExitError, "receipt id must be 64 hex digits");
  auto log = ReceiptLog::open(log_path(a), {.create = false});
  if (!log) return fail(a, log.status());
  auto idx = (*log)->find(id);
  if (!idx) return fail(a, kExitError, idx.status().to_string());
  auto bytes = (*log)->read(*idx);
  if (!bytes) return fail(a, bytes.status());
  if (!write_file(a.get("--out"), *bytes)) return fail(a, kExitError, "cannot write " + a.get("--out"));
  emit(a, json{{"ok", true}, {"id", a.positional[0]}, {"index", *idx}, {"size_bytes", bytes->size()}, {"out", a.get("--out")}},
       "wrote " + std::to_string(bytes->size()) + " bytes (log index " + std::to_string(*idx) + ") to " + a.get("--out") + "\n");
  return kExitOk;
}

// Issues synthetic receipts (random hashes) chained into the log: a stand-in
// for `covenant approve --ledger` until the engine wiring lands.
int receipt_demo(const Args& a) {
  auto ks = KeyStore::open(keys_dir(a));
  if (!ks) return fail(a, ks.status());
  auto log = ReceiptLog::open(log_path(a), {.sync_each_append = false});
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
  auto ks = KeyStore::open(keys_dir(a));
  if (!ks) return fail(a, ks.status());
  if (sub == "rotate") {
    if (Status st = (*ks)->rotate(); !st.is_ok()) return fail(a, st);
  }
  const SigningKey& k = (*ks)->active();
  json retired = json::array();
  for (const PublicKey& p : (*ks)->public_keys()) {
    if (p != k.public_key()) retired.push_back(json{{"kid", to_hex(kid_for(p))}, {"public_key", to_hex(p)}});
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

int log_checkpoint(const Args& a) {
  auto ks = KeyStore::open(keys_dir(a));
  if (!ks) return fail(a, ks.status());
  auto log = ReceiptLog::open(log_path(a), {.create = false});
  if (!log) return fail(a, log.status());
  const Checkpoint cp{a.get("--origin", "covenant.local/log"), (*log)->size(), (*log)->tree().root()};
  auto note = sign_checkpoint(cp, (*ks)->active());
  if (!note) return fail(a, note.status());
  if (a.has("--out") && !write_file(a.get("--out"), std::span(reinterpret_cast<const uint8_t*>(note->data()), note->size()))) {
    return fail(a, kExitError, "cannot write " + a.get("--out"));
  }
  emit(a, json{{"ok", true}, {"origin", cp.origin}, {"tree_size", cp.tree_size}, {"root", to_hex(cp.root)}, {"checkpoint", *note}},
       *note);
  return kExitOk;
}

int log_prove(const Args& a) {
  auto log = ReceiptLog::open(log_path(a), {.create = false});
  if (!log) return fail(a, log.status());
  const MerkleTree& t = (*log)->tree();
  const uint64_t size = a.has("--size") || a.has("--to") ? std::strtoull(a.get(a.has("--size") ? "--size" : "--to").c_str(), nullptr, 10) : t.size();
  json j;
  if (a.has("--from")) {
    const uint64_t from = std::strtoull(a.get("--from").c_str(), nullptr, 10);
    auto p = t.consistency_proof(from, size);
    if (!p) return fail(a, kExitError, p.status().to_string());
    j = {{"type", "consistency"}, {"old_size", from}, {"new_size", size}, {"old_root", to_hex(t.root_at(from).value())},
         {"new_root", to_hex(t.root_at(size).value())}, {"path", hashes_json(*p)}};
  } else {
    uint64_t index;
    if (a.has("--id")) {
      Hash32 id;
      if (!from_hex(a.get("--id"), id)) return fail(a, kExitError, "--id must be 64 hex digits");
      auto idx = (*log)->find(id);
      if (!idx) return fail(a, kExitError, idx.status().to_string());
      index = *idx;
    } else if (a.has("--index")) {
      index = std::strtoull(a.get("--index").c_str(), nullptr, 10);
    } else {
      return fail(a, kExitError, "usage: covenant log prove (--id RECEIPT_ID | --index I) [--size N] | --from M [--to N]");
    }
    auto p = t.inclusion_proof(index, size);
    if (!p) return fail(a, kExitError, p.status().to_string());
    auto entry = (*log)->read(index);
    if (!entry) return fail(a, entry.status());
    j = {{"type", "inclusion"}, {"leaf_index", index}, {"tree_size", size}, {"leaf_hash", to_hex(t.leaf_hash(index))},
         {"receipt_id", receipt_id_hex(*entry)}, {"root", to_hex(t.root_at(size).value())}, {"path", hashes_json(*p)}};
  }
  const std::string text = j.dump(2) + "\n";
  if (a.has("--out") && !write_file(a.get("--out"), std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()))) {
    return fail(a, kExitError, "cannot write " + a.get("--out"));
  }
  if (a.json) std::printf("%s\n", j.dump().c_str());
  else std::printf("%s", text.c_str());
  return kExitOk;
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

int log_verify(const Args& a) {
  std::vector<PublicKey> keys;
  if (a.has("--key")) {
    PublicKey pub;
    if (!from_hex(a.get("--key"), pub)) return fail(a, kExitError, "--key must be 64 hex digits");
    keys.push_back(pub);
  } else if (a.has("--checkpoint")) {
    auto ks = KeyStore::open(keys_dir(a), false);
    if (!ks) return fail(a, ks.status());
    keys = (*ks)->public_keys();
  }
  if (a.has("--proof")) return verify_proof_file(a, keys);
  auto log = ReceiptLog::open(log_path(a), {.create = false});
  if (!log) return fail(a, log.status());  // corruption names record and offset
  json j{{"ok", true}, {"verdict", "valid"}, {"log", log_path(a)}, {"tree_size", (*log)->size()}, {"root", to_hex((*log)->tree().root())}};
  std::string text = "log: " + std::to_string((*log)->size()) + " entries, hash chain intact\nroot: " + to_hex((*log)->tree().root()) + "\n";
  if (a.has("--checkpoint")) {
    std::vector<uint8_t> note;
    if (!read_file(a.get("--checkpoint"), &note)) return fail(a, kExitError, "cannot read " + a.get("--checkpoint"));
    auto cp = verify_checkpoint(std::string_view(reinterpret_cast<const char*>(note.data()), note.size()), keys);
    if (!cp) return fail(a, cp.status().code() == Code::kNotFound ? kExitError : kExitVerifyFailed, cp.status().to_string());
    auto root = (*log)->tree().root_at(cp->tree_size);
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

// ---- parsing: one CLI11 app per command, a subcommand per verb ----

constexpr const char* kReceiptUsage =
    "receipt verify FILE [--key PUBHEX] [--keys-dir DIR] [--json] | receipt get ID --out FILE [--log FILE] [--json] "
    "| receipt demo [--count N] [--entry W#E] [--log FILE] [--keys-dir DIR] [--json]";
constexpr const char* kKeyUsage = "key show|rotate [--keys-dir DIR] [--json]";
constexpr const char* kLogUsage =
    "log checkpoint [--origin O] [--out FILE] [--keys-dir DIR] | log prove (--id ID | --index I) [--size N] [--out FILE] "
    "| log prove --from M [--to N] [--out FILE] | log verify [--checkpoint FILE] [--proof FILE [--receipt FILE]] "
    "[--key PUBHEX] [--keys-dir DIR]  (all: [--log FILE] [--json])";

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

const std::string kDefaultLogHelp = "the receipt log (default $COVENANT_HOME/receipts.log)";
const std::string kKeysDirHelp = "the key store (default $COVENANT_HOME/keys)";

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

CLI::App* verb(CLI::App& app, const char* name, const char* desc) { return app.add_subcommand(name, desc); }

int receipt_cmd(int argc, char** argv) {
  Args a;
  CLI::App app("Receipts: verify a COSE_Sign1 receipt, read one from the receipt log, or append synthetic ones "
               "(docs/receipts.md). Exit 0 ok, 1 usage/I/O/lookup error, 2 did not verify.",
               "covenant receipt");
  configure(app);
  app.require_subcommand(1);
  CLI::App* v = verb(app, "verify", "verify a receipt's signature and print it");
  add_pos(*v, "FILE", a.positional, "the receipt (COSE_Sign1 bytes)");
  add_flags(v, a, {{"--key", "PUBHEX", "trust only this Ed25519 public key (64 hex digits)"},
                   {"--keys-dir", "DIR", kKeysDirHelp.c_str()}});
  CLI::App* g = verb(app, "get", "write the bytes of a receipt from the log");
  add_pos(*g, "ID", a.positional, "the receipt id (64 hex digits)");
  add_flags(g, a, {{"--out", "FILE", "the file to write (required)"}, {"--log", "FILE", kDefaultLogHelp.c_str()}});
  CLI::App* d = verb(app, "demo", "append synthetic signed receipts to the log");
  add_flags(d, a, {{"--count", "", "how many (1..10000000; default 1)", 10'000'000},
                   {"--entry", "W#E", "the entry field (default spend#approve)"},
                   {"--log", "FILE", kDefaultLogHelp.c_str()},
                   {"--keys-dir", "DIR", kKeysDirHelp.c_str()}});
  int exit = 0;
  const std::string sub = parse_verbs(app, to_vector(argc, argv), a, "receipt", kReceiptUsage, &exit);
  if (sub.empty()) return exit;
  if (sub == "verify") {
    if (a.positional.size() == 1)
      if (std::string e = check_input_file("FILE", a.positional[0]); !e.empty())
        return Reporter{a.who, a.json}.fail(kExitError, "bad_file", e);
    if (int rc = check_files(a, {{"--keys-dir", 'r'}}); rc >= 0) return rc;
    return receipt_verify(a);
  }
  if (sub == "get") {
    if (int rc = check_files(a, {{"--out", 'o'}, {"--log", 'i'}}); rc >= 0) return rc;
    return receipt_get(a);
  }
  if (int rc = check_files(a, {{"--log", 'o'}, {"--keys-dir", 'd'}}); rc >= 0) return rc;
  return receipt_demo(a);
}

int key_cmd(int argc, char** argv) {
  Args a;
  CLI::App app("The executor's signing keys (docs/receipts.md).", "covenant key");
  configure(app);
  app.require_subcommand(1);
  add_flags(verb(app, "show", "print the active public key and kid (creates the key store if missing)"), a,
            {{"--keys-dir", "DIR", kKeysDirHelp.c_str()}});
  add_flags(verb(app, "rotate", "make a new active key; old keys still verify"), a,
            {{"--keys-dir", "DIR", kKeysDirHelp.c_str()}});
  int exit = 0;
  const std::string sub = parse_verbs(app, to_vector(argc, argv), a, "key", kKeyUsage, &exit);
  if (sub.empty()) return exit;
  if (int rc = check_files(a, {{"--keys-dir", 'd'}}); rc >= 0) return rc;
  return key_run(a, sub);
}

int log_cmd(int argc, char** argv) {
  Args a;
  CLI::App app("The receipt log, an RFC 9162 Merkle tree: signed checkpoints, inclusion and consistency proofs, "
               "verification (docs/merkle-log.md). Exit 0 ok, 1 usage/I/O/lookup error, 2 did not verify.",
               "covenant log");
  configure(app);
  app.require_subcommand(1);
  add_flags(verb(app, "checkpoint", "sign a checkpoint of the log"), a,
            {{"--origin", "O", "the origin line (default covenant.local/log)"},
             {"--out", "FILE", "also write the checkpoint to this file"},
             {"--log", "FILE", kDefaultLogHelp.c_str()},
             {"--keys-dir", "DIR", kKeysDirHelp.c_str()}});
  add_flags(verb(app, "prove", "an inclusion proof (--id or --index) or a consistency proof (--from)"), a,
            {{"--id", "RECEIPT_ID", "inclusion proof of this receipt"},
             {"--index", "", "inclusion proof of this leaf", UINT64_MAX},
             {"--size", "", "tree size to prove against (default: the whole log)", UINT64_MAX},
             {"--from", "", "consistency proof from this size", UINT64_MAX},
             {"--to", "", "consistency proof to this size (default: the whole log)", UINT64_MAX},
             {"--out", "FILE", "also write the proof to this file"},
             {"--log", "FILE", kDefaultLogHelp.c_str()}});
  add_flags(verb(app, "verify", "check the log's hash chain, a checkpoint against it, or a proof file offline"), a,
            {{"--checkpoint", "FILE", "a signed checkpoint"},
             {"--proof", "FILE", "a proof file (with --checkpoint)"},
             {"--receipt", "FILE", "the receipt an inclusion proof is about"},
             {"--key", "PUBHEX", "trust only this Ed25519 public key (64 hex digits)"},
             {"--keys-dir", "DIR", kKeysDirHelp.c_str()},
             {"--log", "FILE", kDefaultLogHelp.c_str()}});
  int exit = 0;
  const std::string sub = parse_verbs(app, to_vector(argc, argv), a, "log", kLogUsage, &exit);
  if (sub.empty()) return exit;
  if (sub == "checkpoint") {
    if (int rc = check_files(a, {{"--out", 'o'}, {"--log", 'i'}, {"--keys-dir", 'd'}}); rc >= 0) return rc;
    return log_checkpoint(a);
  }
  if (sub == "prove") {
    if (int rc = check_files(a, {{"--out", 'o'}, {"--log", 'i'}}); rc >= 0) return rc;
    return log_prove(a);
  }
  if (int rc = check_files(a, {{"--checkpoint", 'i'}, {"--proof", 'i'}, {"--receipt", 'i'}, {"--log", 'i'}, {"--keys-dir", 'r'}});
      rc >= 0)
    return rc;
  if (a.has("--proof") && !a.has("--checkpoint"))
    return Reporter{a.who, a.json}.usage("--proof needs --checkpoint FILE", kLogUsage);
  return log_verify(a);
}

}  // namespace

COVENANT_COMMAND("receipt", kReceiptUsage, receipt_cmd);
COVENANT_COMMAND("key", kKeyUsage, key_cmd);
COVENANT_COMMAND("log", kLogUsage, log_cmd);

}  // namespace covenant::cli
