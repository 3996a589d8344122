// covenant settle ...: the second phase of escrow created by
// `covenant approve --ledger` (release = post the hold, refund = void it),
// checkpoints of the ledger's journal, and receipts and inclusion proofs read
// from it (docs/settlement.md). Proofs and checkpoints use the formats of
// `covenant log prove|checkpoint`, so `covenant log verify --proof P
// --checkpoint CP --receipt R` checks them offline.
// Exit codes: 0 ok, 1 usage/I/O/refused by the ledger.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "settle/settle.h"

namespace covenant::cli {
namespace {

using json = nlohmann::json;

constexpr const char* kSettleUsage =
    "settle release HOLD_ID [--amount N] | refund HOLD_ID | checkpoint [--origin O] [--dir DIR] [--keys-dir DIR] | "
    "prove RECEIPT_ID [--size N] [--out FILE] | receipt RECEIPT_ID --out FILE  --ledger PATH_OR_URL [--pg-schema S] [--json]";

struct SArgs {
  std::vector<std::string> pos;
  std::map<std::string, std::string> opt;
  bool as_json = false;
  std::string get(const std::string& k, const std::string& d = "") const {
    auto it = opt.find(k);
    return it == opt.end() ? d : it->second;
  }
};

int sfail(const SArgs& a, const std::string& msg) {
  if (a.as_json) std::printf("%s\n", json{{"ok", false}, {"error", msg}}.dump().c_str());
  else std::fprintf(stderr, "covenant settle: %s\n", msg.c_str());
  return kExitError;
}

bool write_bytes(const std::string& path, std::string_view data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  return static_cast<bool>(f);
}

int settle_command(int argc, char** argv) {
  SArgs a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--json") {
      a.as_json = true;
    } else if (s.rfind("--", 0) == 0) {
      if (i + 1 >= argc) return sfail(a, s + " needs a value");
      a.opt[s.substr(2)] = argv[++i];
    } else {
      a.pos.push_back(s);
    }
  }
  if (a.pos.empty()) return sfail(a, std::string("usage: covenant ") + kSettleUsage);
  const std::string sub = a.pos[0];
  if (a.get("ledger").empty()) return sfail(a, "--ledger PATH_OR_URL is required");
  auto ledger = settle::open_ledger(a.get("ledger"), a.get("pg-schema"));
  if (!ledger) return sfail(a, ledger.status().to_string());
  Ledger& l = **ledger;

  if (sub == "release" || sub == "refund") {
    if (a.pos.size() != 2) return sfail(a, "usage: covenant settle " + sub + " HOLD_ID --ledger L");
    auto hold = Id128::parse(a.pos[1]);
    if (!hold) return sfail(a, "'" + a.pos[1] + "' is not a hold id (32 hex digits)");
    Transfer t;
    t.id = settle::derived_id("covenant/" + sub + "/" + hold->hex());
    t.pending_id = *hold;
    t.flags = sub == "release" ? kTransferPostPending : kTransferVoidPending;
    if (sub == "release" && !a.get("amount").empty()) {
      char* end = nullptr;
      t.amount = std::strtoull(a.get("amount").c_str(), &end, 10);
      if (*end || a.get("amount")[0] == '-') return sfail(a, "--amount must be a non-negative integer");
    } else if (sub == "refund" && !a.get("amount").empty()) {
      return sfail(a, "refund takes no --amount (a void returns the whole hold)");
    }
    auto r = l.create_transfer(t);
    if (!r) return sfail(a, r.status().to_string());
    const bool ok = ledger_result_is_success(r->result);
    auto held = l.lookup_transfer(*hold);
    std::string state = held && *held ? hold_state_name((*held)->hold_state) : "unknown";
    if (a.as_json) {
      std::printf("%s\n", json{{"ok", ok}, {"id", t.id.hex()}, {"hold_id", hold->hex()},
                               {"result", ledger_result_name(r->result)}, {"code", static_cast<int>(r->result)},
                               {"hold_state", state}}.dump().c_str());
    } else {
      std::printf("%s %s %s (hold %s)\n", sub.c_str(), t.id.hex().c_str(), ledger_result_name(r->result), state.c_str());
    }
    return ok ? kExitOk : kExitError;
  }
  if (sub == "checkpoint") {
    auto keys = KeyStore::open(a.get("keys-dir", default_keys_dir()));
    if (!keys) return sfail(a, keys.status().to_string());
    const std::string dir = a.get("dir", settle::default_checkpoint_dir(a.get("ledger")));
    uint64_t size = 0;
    auto path = settle::cut_checkpoint(l, (*keys)->active(), a.get("origin", "covenant.local/ledger"), dir, &size);
    if (!path) return sfail(a, path.status().to_string());
    if (a.as_json) std::printf("%s\n", json{{"ok", true}, {"tree_size", size}, {"path", *path}}.dump().c_str());
    else std::printf("checkpoint of %llu entries: %s\n", (unsigned long long)size, path->c_str());
    return kExitOk;
  }
  if (sub == "prove" || sub == "receipt") {
    if (a.pos.size() != 2) return sfail(a, "usage: covenant settle " + sub + " RECEIPT_ID --ledger L");
    Hash32 id;
    if (!from_hex(a.pos[1], id)) return sfail(a, "a receipt id is 64 hex digits");
    auto row = l.journal_by_key(id);
    if (!row) return sfail(a, row.status().to_string());
    if (!*row) return sfail(a, "receipt " + a.pos[1] + " is not in the journal");
    if (sub == "receipt") {
      if (a.get("out").empty()) return sfail(a, "--out FILE is required");
      if (!write_bytes(a.get("out"), (*row)->entry)) return sfail(a, "cannot write " + a.get("out"));
      if (a.as_json)
        std::printf("%s\n", json{{"ok", true}, {"id", a.pos[1]}, {"index", (*row)->seq - 1}, {"size_bytes", (*row)->entry.size()},
                                 {"out", a.get("out")}}.dump().c_str());
      else
        std::printf("wrote %zu bytes (log index %llu) to %s\n", (*row)->entry.size(),
                    (unsigned long long)((*row)->seq - 1), a.get("out").c_str());
      return kExitOk;
    }
    auto tree = settle::journal_tree(l);
    if (!tree) return sfail(a, tree.status().to_string());
    uint64_t size = tree->size();
    if (!a.get("size").empty()) size = std::strtoull(a.get("size").c_str(), nullptr, 10);
    const uint64_t index = (*row)->seq - 1;
    auto p = tree->inclusion_proof(index, size);
    if (!p) return sfail(a, p.status().to_string());
    json path = json::array();
    for (const Hash32& h : *p) path.push_back(to_hex(h));
    json j = {{"type", "inclusion"}, {"leaf_index", index}, {"tree_size", size}, {"leaf_hash", to_hex(tree->leaf_hash(index))},
              {"receipt_id", a.pos[1]}, {"root", to_hex(tree->root_at(size).value())}, {"path", path}};
    const std::string text = j.dump(2) + "\n";
    if (!a.get("out").empty() && !write_bytes(a.get("out"), text)) return sfail(a, "cannot write " + a.get("out"));
    if (a.as_json) std::printf("%s\n", j.dump().c_str());
    else std::printf("%s", text.c_str());
    return kExitOk;
  }
  return sfail(a, "unknown subcommand '" + sub + "'; usage: covenant " + kSettleUsage);
}

}  // namespace

COVENANT_COMMAND("settle", kSettleUsage, settle_command);

}  // namespace covenant::cli
