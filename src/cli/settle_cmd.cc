// covenant settle ...: the second phase of escrow created by
// `covenant approve --ledger` (release = post the hold, refund = void it)
// (docs/settlement.md). `settle checkpoint|prove|receipt` are the older
// spellings of `covenant log checkpoint`, `covenant log prove --id` and
// `covenant receipt get`, kept for scripts: they run the same code
// (src/cli/evidence_ops.h), so there is one implementation per concept.
// Exit codes: 0 ok, 1 usage/I/O/refused by the ledger.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/evidence_ops.h"
#include "settle/settle.h"

namespace covenant::cli {
namespace {

using json = nlohmann::json;

constexpr const char* kSettleUsage =
    "settle release HOLD_ID [--amount N] | refund HOLD_ID  (both: --ledger PATH_OR_URL [--pg-schema S] [--json]; "
    "settle checkpoint|prove|receipt are older spellings of log checkpoint, log prove --id, receipt get)";

struct SArgs {
  std::vector<std::string> pos;
  std::string ledger, pg_schema, keys_dir, origin = "covenant.local/ledger", dir, out;
  uint64_t amount = 0, size = 0;
  bool amount_given = false, size_given = false;
  bool as_json = false;
};

int sfail(const SArgs& a, const std::string& msg, const std::string& code = "settle") {
  return Reporter{"settle", a.as_json}.fail(kExitError, code, msg);
}


int settle_command(int argc, char** argv) {
  std::vector<std::string> argv_v = subcommand_first(to_vector(argc, argv));
  SArgs a;
  Reporter rep{"settle", has_json_flag(argv_v)};
  CLI::App app("The second phase of escrow made by `covenant approve --ledger` (release = post the hold, refund = "
               "void it), checkpoints of the ledger's journal, receipts and inclusion proofs read from it "
               "(docs/settlement.md). Exit 0 ok, 1 usage/I/O/refused by the ledger.",
               "covenant settle");
  configure(app);
  app.require_subcommand(1);
  auto common = [&](CLI::App* sub) {
    sub->add_option("--ledger", a.ledger, "the ledger: a SQLite path or a postgresql:// URL (required)")
        ->type_name("PATH_OR_URL");
    sub->add_option("--pg-schema", a.pg_schema, "PostgreSQL schema (default covenant)")->type_name("S");
    add_json(*sub, a.as_json);
  };
  CLI::App* release = app.add_subcommand("release", "post a hold: all of it, or --amount N (the rest goes back)");
  add_pos(*release, "HOLD_ID", a.pos, "the hold (32 hex digits)");
  add_u64(*release, "--amount", a.amount, "amount to post (default: the whole hold)", UINT64_MAX, false, &a.amount_given)
      ->default_str("");
  common(release);
  CLI::App* refund = app.add_subcommand("refund", "void a hold: the whole amount goes back");
  add_pos(*refund, "HOLD_ID", a.pos, "the hold (32 hex digits)");
  common(refund);
  CLI::App* checkpoint = app.add_subcommand("checkpoint", "the same as `covenant log checkpoint --ledger L`");
  checkpoint->add_option("--origin", a.origin, "checkpoint origin line")->type_name("O");
  checkpoint->add_option("--dir", a.dir, "where checkpoints go (default <ledger>.checkpoints)")->type_name("DIR");
  checkpoint->add_option("--keys-dir", a.keys_dir, "executor signing keys (default $COVENANT_HOME/keys)")->type_name("DIR");
  common(checkpoint);
  CLI::App* prove = app.add_subcommand("prove", "the same as `covenant log prove --id RECEIPT_ID --ledger L`");
  add_pos(*prove, "RECEIPT_ID", a.pos, "the receipt (64 hex digits)");
  add_u64(*prove, "--size", a.size, "tree size to prove against (default: the whole journal)", UINT64_MAX, false,
          &a.size_given)
      ->default_str("");
  prove->add_option("--out", a.out, "write the proof to this file (and print a one-line summary)")->type_name("FILE");
  common(prove);
  CLI::App* receipt = app.add_subcommand("receipt", "the same as `covenant receipt get RECEIPT_ID --ledger L`");
  add_pos(*receipt, "RECEIPT_ID", a.pos, "the receipt (64 hex digits)");
  receipt->add_option("--out", a.out, "the file to write (required)")->type_name("FILE");
  common(receipt);
  if (auto code = parse(app, argv_v, rep, kSettleUsage)) return *code;
  const std::string sub = app.get_subcommands().at(0)->get_name();
  if (sub != "checkpoint" && a.pos.size() != 1)
    return rep.usage(std::string(a.pos.empty() ? "missing " : "too many arguments for ") +
                         (sub == "release" || sub == "refund" ? "HOLD_ID" : "RECEIPT_ID"),
                     "settle " + sub + (sub == "release" || sub == "refund" ? " HOLD_ID" : " RECEIPT_ID") +
                         " --ledger L (covenant settle " + sub + " --help)");
  a.pos.insert(a.pos.begin(), sub);
  if (a.ledger.empty()) return rep.usage("--ledger PATH_OR_URL is required", kSettleUsage);
  if (sub == "receipt" && a.out.empty()) return rep.usage("--out FILE is required", kSettleUsage);
  // File arguments, before the ledger is opened.
  if (std::string e = first_error({
          [&] { return check_ledger("--ledger", a.ledger); },
          [&] { return a.out.empty() ? "" : check_output_file("--out", a.out); },
          [&] { return a.dir.empty() ? "" : check_dir("--dir", a.dir, true); },
          [&] { return a.keys_dir.empty() ? "" : check_dir("--keys-dir", a.keys_dir, true); },
          // Settling needs a ledger there: a mistyped SQLite path is not a fresh ledger.
          [&] { return check_existing_ledger("--ledger", a.ledger); },
      });
      !e.empty())
    return rep.fail(kExitError, "bad_file", e);
  if (sub == "checkpoint" || sub == "prove" || sub == "receipt") {
    // The older spellings: the receipt and log families' own code.
    EvidenceArgs e;
    e.who = "settle";
    e.json = a.as_json;
    e.flags["--ledger"] = a.ledger;
    if (!a.pg_schema.empty()) e.flags["--pg-schema"] = a.pg_schema;
    if (!a.out.empty()) e.flags["--out"] = a.out;
    if (sub == "checkpoint") {
      e.flags["--origin"] = a.origin;
      if (!a.dir.empty()) e.flags["--dir"] = a.dir;
      if (!a.keys_dir.empty()) e.flags["--keys-dir"] = a.keys_dir;
      return log_checkpoint_op(e);
    }
    Hash32 id;
    if (!from_hex(a.pos[1], id)) return rep.usage("a receipt id is 64 hex digits");
    if (sub == "prove") {
      e.flags["--id"] = a.pos[1];
      if (a.size_given) e.flags["--size"] = std::to_string(a.size);
      return log_prove_op(e);
    }
    e.positional = {a.pos[1]};
    return receipt_get_op(e);
  }
  auto ledger = settle::open_ledger(a.ledger, a.pg_schema);
  if (!ledger) return sfail(a, ledger.status().to_string(), "ledger_open");
  Ledger& l = **ledger;

  if (sub == "release" || sub == "refund") {
    auto hold = Id128::parse(a.pos[1]);
    if (!hold) {
      // A receipt id is the commonest mistake: its hold is its first 32 digits.
      Hash32 receipt;
      const bool receipt_id = from_hex(a.pos[1], receipt);
      return rep.usage("'" + a.pos[1] + "' is not a hold id: a hold id is 32 hex digits, the hold_id that approve --ledger "
                       "prints" + (receipt_id ? "; this is a receipt id, whose hold (if its decision made one) is " +
                                                    a.pos[1].substr(0, 32)
                                              : std::string()));
    }
    Transfer t;
    t.id = settle::derived_id("covenant/" + sub + "/" + hold->hex());
    t.pending_id = *hold;
    t.flags = sub == "release" ? kTransferPostPending : kTransferVoidPending;
    if (sub == "release" && a.amount_given) t.amount = a.amount;
    auto r = l.create_transfer(t);
    if (!r) return sfail(a, r.status().to_string(), "ledger");
    const bool ok = ledger_result_is_success(r->result);
    auto held = l.lookup_transfer(*hold);
    std::string state = held && *held ? hold_state_name((*held)->hold_state) : "unknown";
    // A hold past its timeout can no longer be released or refunded: say what to do.
    const std::string hint = r->result == LedgerResult::pending_transfer_expired
                                 ? "the hold timed out; `covenant ledger expire --ledger " + a.ledger +
                                       "` returns expired holds to the agents' accounts"
                                 : "";
    if (a.as_json) {
      json j{{"ok", ok}, {"id", t.id.hex()}, {"hold_id", hold->hex()}, {"result", ledger_result_name(r->result)},
             {"code", static_cast<int>(r->result)}, {"hold_state", state}};
      if (!ok)
        j["error"] = {{"code", ledger_result_name(r->result)},
                      {"message", sub + " of hold " + hold->hex() + " refused: " + ledger_result_name(r->result) +
                                      (hint.empty() ? "" : " (" + hint + ")")}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%s %s %s (hold %s)\n", sub.c_str(), t.id.hex().c_str(), ledger_result_name(r->result), state.c_str());
    }
    if (!hint.empty()) std::fprintf(stderr, "covenant settle: %s\n", hint.c_str());
    return ok ? kExitOk : kExitError;
  }
  return rep.usage("unknown subcommand '" + sub + "'", kSettleUsage);
}

}  // namespace

COVENANT_COMMAND("settle", kSettleUsage, settle_command);

}  // namespace covenant::cli
