// covenant ledger ...: accounts, transfers, holds and verification from the shell.
// See docs/ledger.md ("CLI") for every subcommand and its output.
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/command.h"
#include "covenant/ledger.h"
#include "settle/pipeline.h"
#include "settle/settle.h"

namespace covenant::cli {
namespace {

constexpr const char* kUsage =
    "usage: covenant ledger <sub> ... --ledger PATH_OR_URL [--json]\n"
    "  init\n"
    "  account create ID [--ledger-id N] [--code C] [--flags no-overdraft|no-overcredit]\n"
    "  transfer ID --from A --to B --amount X [--ledger-id N] [--code C]\n"
    "  hold ID --from A --to B --amount X [--timeout S] [--ledger-id N] [--code C]\n"
    "  post ID --hold H [--amount X]\n"
    "  void ID --hold H\n"
    "  dispute ID --hold H\n"
    "  resolve ID --hold H\n"
    "  expire\n"
    "  balance ACCOUNT | balance --agent ID\n"
    "  verify\n"
    "PATH is a SQLite file; a postgresql:// URL selects PostgreSQL (tables in schema 'covenant',\n"
    "or --pg-schema NAME). Ids: decimal or 32 hex digits. `covenant ledger SUB --help`: every flag.\n";
constexpr const char* kLedgerUsage =
    "ledger init|account create|transfer|hold|post|void|dispute|resolve|expire|balance|verify ... --ledger PATH_OR_URL "
    "[--pg-schema S] [--json]";

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;  // by name without "--"
  bool json = false;
};

int fail(const Args& args, const std::string& message, const std::string& code = "error") {
  return Reporter{"ledger", args.json}.fail(kExitError, code, message);
}

bool get_id(const Args& args, const std::string& text, const char* what, Id128* out, std::string* error) {
  auto id = Id128::parse(text);
  if (!id) {
    *error = std::string(what) + " '" + text + "' is not an id (decimal < 2^64 or 32 hex digits)";
    return false;
  }
  *out = *id;
  return true;
}

bool get_u64(const std::map<std::string, std::string>& o, const char* name, uint64_t fallback, uint64_t* out,
             std::string* error) {
  auto it = o.find(name);
  if (it == o.end()) {
    *out = fallback;
    return true;
  }
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(it->second.c_str(), &end, 10);
  if (it->second.empty() || *end || errno || it->second[0] == '-') {
    *error = std::string("--") + name + " '" + it->second + "' is not a non-negative integer";
    return false;
  }
  *out = v;
  return true;
}

nlohmann::json account_json(const Account& a) {
  return {{"id", a.id.hex()},
          {"ledger", a.ledger},
          {"code", a.code},
          {"flags", a.flags},
          {"debits_pending", a.debits_pending},
          {"debits_posted", a.debits_posted},
          {"credits_pending", a.credits_pending},
          {"credits_posted", a.credits_posted},
          {"timestamp_ns", a.timestamp_ns}};
}

int print_reply(const Args& args, const std::string& id, const LedgerReply& reply) {
  const bool success = ledger_result_is_success(reply.result);
  if (args.json) {
    nlohmann::json j = {{"ok", success},
                        {"id", id},
                        {"result", ledger_result_name(reply.result)},
                        {"code", static_cast<int>(reply.result)},
                        {"timestamp_ns", reply.timestamp_ns}};
    if (reply.expired_count) j["expired"] = reply.expired_count;
    if (!success)
      j["error"] = {{"code", ledger_result_name(reply.result)},
                    {"message", id + " refused by the ledger: " + ledger_result_name(reply.result)}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s %s\n", id.c_str(), ledger_result_name(reply.result));
  }
  return success ? kExitOk : kExitError;
}

struct Flag {
  const char* name;   // without "--"
  const char* type;   // "N" for numbers (checked while parsing)
  const char* desc;
  uint64_t max = 0;   // numbers: the largest value
};

void add_flags(CLI::App* sub, Args& args, std::initializer_list<Flag> flags) {
  std::vector<Flag> all(flags);
  all.push_back({"ledger", "PATH_OR_URL", "the ledger: a SQLite file or a postgresql:// URL (required)"});
  all.push_back({"pg-schema", "NAME", "PostgreSQL schema (default covenant)"});
  for (const Flag& f : all) {
    const std::string name = f.name;
    const uint64_t max = f.max;
    auto* o = sub->add_option_function<std::string>(
        "--" + name,
        [&args, name, max](const std::string& v) {
          uint64_t x = 0;
          if (max)
            if (std::string e = parse_u64_arg("--" + name, v, max, false, &x); !e.empty()) throw CLI::ValidationError(e);
          args.options[name] = v;
        },
        f.desc);
    o->type_name(f.type);
  }
  add_json(*sub, args.json);
}

int run_ledger(int argc, char** argv) {
  Args args;
  std::string error;
  std::vector<std::string> argv_v = subcommand_first(to_vector(argc, argv), 2);
  Reporter rep{"ledger", has_json_flag(argv_v)};
  args.json = rep.json;
  CLI::App app("Accounts, transfers, holds and verification of a Covenant ledger (docs/ledger.md). Ids: decimal or 32 "
               "hex digits. Exit 0 ok, 1 usage/I/O error or refused by the ledger.",
               "covenant ledger");
  configure(app);
  app.require_subcommand(1);
  std::string id_arg, account_arg;
  const uint64_t u32 = UINT32_MAX, u16 = UINT16_MAX, u64 = UINT64_MAX;
  auto idpos = [&](CLI::App* sub, const char* name, const char* desc) { add_pos(*sub, name, id_arg, desc); };
  add_flags(app.add_subcommand("init", "create a ledger (the only ledger subcommand that creates one)"), args, {});
  CLI::App* account = app.add_subcommand("account", "accounts: account create ID");
  account->require_subcommand(1);
  CLI::App* create = account->add_subcommand("create", "create an account");
  idpos(create, "ID", "the account id");
  add_flags(create, args,
            {{"ledger-id", "N", "ledger number (default 1)", u32},
             {"code", "N", "account code (default 1)", u16},
             {"flags", "no-overdraft|no-overcredit", "balance constraint (default none)"}});
  const std::initializer_list<Flag> transfer_flags = {{"from", "ACCOUNT", "debit account (required)"},
                                                      {"to", "ACCOUNT", "credit account (required)"},
                                                      {"amount", "N", "amount (required)", u64},
                                                      {"ledger-id", "N", "ledger number (default 1)", u32},
                                                      {"code", "N", "transfer code (default 1)", u16}};
  CLI::App* transfer = app.add_subcommand("transfer", "move an amount between two accounts");
  idpos(transfer, "ID", "the transfer id");
  add_flags(transfer, args, transfer_flags);
  CLI::App* hold = app.add_subcommand("hold", "reserve an amount (a pending transfer)");
  idpos(hold, "ID", "the hold's transfer id");
  add_flags(hold, args, transfer_flags);
  hold->add_option_function<std::string>(
          "--timeout",
          [&args](const std::string& v) {
            uint64_t x = 0;
            if (std::string e = parse_u64_arg("--timeout", v, UINT32_MAX, false, &x); !e.empty())
              throw CLI::ValidationError(e);
            args.options["timeout"] = v;
          },
          "seconds until the hold expires (default 0 = never)")
      ->type_name("S");
  for (const char* verb : {"post", "void", "dispute", "resolve"}) {
    const std::string v = verb;
    CLI::App* sub = app.add_subcommand(verb, v == "post"      ? "post a hold (all of it, or --amount)"
                                             : v == "void"    ? "void a hold"
                                             : v == "dispute" ? "freeze a hold until it is resolved"
                                                              : "unfreeze a disputed hold");
    idpos(sub, "ID", "the id of this resolving transfer");
    if (v == "post")
      add_flags(sub, args, {{"hold", "H", "the hold (required)"}, {"amount", "N", "amount to post (default: all)", u64}});
    else
      add_flags(sub, args, {{"hold", "H", "the hold (required)"}});
  }
  add_flags(app.add_subcommand("expire", "void every hold past its timeout"), args, {});
  CLI::App* balance = app.add_subcommand("balance", "an account's balances");
  add_pos(*balance, "ACCOUNT", account_arg, "the account id");
  add_flags(balance, args, {{"agent", "ID", "instead of ACCOUNT: the escrow account of this agent (docs/settlement.md)"}});
  add_flags(app.add_subcommand("verify", "check balances, the journal and every executor's receipt chain"), args, {});
  app.add_subcommand("help", "print this help");

  if (argv_v.size() < 2) {
    std::fputs(kUsage, stderr);
    return kExitError;
  }
  if (argv_v[1].rfind("-", 0) != 0 && !has_subcommand(app, argv_v[1]))
    return rep.usage("unknown subcommand '" + argv_v[1] + "' (covenant ledger help)", kLedgerUsage);
  if (auto code = parse(app, argv_v, rep, kLedgerUsage)) return *code;
  const std::string sub = app.get_subcommands().at(0)->get_name();
  if (sub == "help") {
    std::fputs(kUsage, stdout);
    return kExitOk;
  }
  args.positional.push_back(sub);
  if (sub == "account") args.positional.push_back("create");
  if (!id_arg.empty()) args.positional.push_back(id_arg);
  if (sub == "balance") {
    if (args.options.count("agent")) {
      if (!account_arg.empty()) return rep.usage("give ACCOUNT or --agent ID, not both", kLedgerUsage);
      args.positional.push_back(settle::agent_account_id(args.options["agent"]).hex());
    } else if (!account_arg.empty()) {
      args.positional.push_back(account_arg);
    }
  }
  auto loc = args.options.find("ledger");
  if (loc == args.options.end()) return fail(args, "--ledger PATH_OR_URL is required", "usage");
  // Only init creates a ledger; the others need one there (a mistyped path is not a fresh ledger).
  if (std::string e = sub == "init" ? check_ledger("--ledger", loc->second) : check_existing_ledger("--ledger", loc->second);
      !e.empty())
    return fail(args, e, "bad_file");
  const auto& o = args.options;

  LedgerOptions options;
  if (auto schema = args.options.find("pg-schema"); schema != args.options.end())
    options.storage.pg_schema = schema->second;
  if (sub == "verify") options.check_journal_tail_on_open = false;  // report damage, don't refuse
  auto opened = Ledger::open(loc->second, options);
  if (!opened.is_ok()) return fail(args, opened.status().to_string());
  Ledger& ledger = **opened;

  auto need_pos = [&](size_t n, const char* what) {
    if (args.positional.size() < n) {
      error = std::string("missing ") + what;
      return false;
    }
    return true;
  };

  if (sub == "init") {
    if (args.json) std::printf("%s\n", nlohmann::json{{"ledger", loc->second}, {"backend", ledger.storage().backend()}}.dump().c_str());
    else std::printf("initialized %s ledger %s\n", ledger.storage().backend(), loc->second.c_str());
    return kExitOk;
  }

  if (sub == "account") {
    if (args.positional.size() < 3) return fail(args, "usage: account create ID ...", "usage");
    Account a;
    uint64_t ledger_id = 0, code = 0;
    if (!get_id(args, args.positional[2], "account id", &a.id, &error) ||
        !get_u64(o, "ledger-id", 1, &ledger_id, &error) || !get_u64(o, "code", 1, &code, &error))
      return fail(args, error);
    if (ledger_id > UINT32_MAX || code > UINT16_MAX) return fail(args, "--ledger-id or --code is out of range");
    a.ledger = static_cast<uint32_t>(ledger_id);
    a.code = static_cast<uint16_t>(code);
    if (auto f = o.find("flags"); f != o.end()) {
      if (f->second == "no-overdraft") a.flags = kAccountDebitsMustNotExceedCredits;
      else if (f->second == "no-overcredit") a.flags = kAccountCreditsMustNotExceedDebits;
      else return fail(args, "--flags must be no-overdraft or no-overcredit");
    }
    auto r = ledger.create_account(a);
    if (!r.is_ok()) return fail(args, r.status().to_string());
    return print_reply(args, a.id.hex(), *r);
  }

  if (sub == "transfer" || sub == "hold") {
    if (!need_pos(2, "transfer ID")) return fail(args, error);
    Transfer t;
    uint64_t ledger_id = 0, code = 0, timeout = 0;
    auto from = o.find("from"), to = o.find("to");
    if (from == o.end() || to == o.end() || !o.count("amount")) return fail(args, "--from, --to and --amount are required");
    if (!get_id(args, args.positional[1], "transfer id", &t.id, &error) ||
        !get_id(args, from->second, "--from", &t.debit_account_id, &error) ||
        !get_id(args, to->second, "--to", &t.credit_account_id, &error) ||
        !get_u64(o, "amount", 0, &t.amount, &error) || !get_u64(o, "ledger-id", 1, &ledger_id, &error) ||
        !get_u64(o, "code", 1, &code, &error) || !get_u64(o, "timeout", 0, &timeout, &error))
      return fail(args, error);
    if (ledger_id > UINT32_MAX || code > UINT16_MAX || timeout > UINT32_MAX) return fail(args, "a value is out of range");
    t.ledger = static_cast<uint32_t>(ledger_id);
    t.code = static_cast<uint16_t>(code);
    t.timeout_s = static_cast<uint32_t>(timeout);
    if (sub == "hold") t.flags = kTransferPending;
    auto r = ledger.create_transfer(t);
    if (!r.is_ok()) return fail(args, r.status().to_string());
    return print_reply(args, t.id.hex(), *r);
  }

  static const std::map<std::string, uint16_t> kResolving = {{"post", kTransferPostPending},
                                                              {"void", kTransferVoidPending},
                                                              {"dispute", kTransferDisputePending},
                                                              {"resolve", kTransferResolvePending}};
  if (auto k = kResolving.find(sub); k != kResolving.end()) {
    if (!need_pos(2, "transfer ID")) return fail(args, error);
    auto h = o.find("hold");
    if (h == o.end()) return fail(args, "--hold H is required");
    Transfer t;
    t.flags = k->second;
    if (!get_id(args, args.positional[1], "transfer id", &t.id, &error) ||
        !get_id(args, h->second, "--hold", &t.pending_id, &error) || !get_u64(o, "amount", 0, &t.amount, &error))
      return fail(args, error);
    auto r = ledger.create_transfer(t);
    if (!r.is_ok()) return fail(args, r.status().to_string());
    return print_reply(args, t.id.hex(), *r);
  }

  if (sub == "expire") {
    auto r = ledger.expire_holds(1 << 20);
    if (!r.is_ok()) return fail(args, r.status().to_string());
    if (args.json) std::printf("%s\n", nlohmann::json{{"expired", r->expired_count}}.dump().c_str());
    else std::printf("expired %llu holds\n", static_cast<unsigned long long>(r->expired_count));
    return kExitOk;
  }

  if (sub == "balance") {
    if (!need_pos(2, "ACCOUNT (or --agent ID)")) return fail(args, error, "usage");
    Id128 id;
    if (!get_id(args, args.positional[1], "account id", &id, &error)) return fail(args, error);
    auto a = ledger.lookup_account(id);
    if (!a.is_ok()) return fail(args, a.status().to_string());
    if (!a->has_value()) return fail(args, "account " + id.hex() + " not found", "not_found");
    const Account& acc = **a;
    if (args.json) {
      std::printf("%s\n", account_json(acc).dump().c_str());
    } else {
      std::printf("account %s ledger %u code %u\n  debits  pending %llu posted %llu\n  credits pending %llu posted %llu\n",
                  acc.id.hex().c_str(), acc.ledger, acc.code, static_cast<unsigned long long>(acc.debits_pending),
                  static_cast<unsigned long long>(acc.debits_posted),
                  static_cast<unsigned long long>(acc.credits_pending),
                  static_cast<unsigned long long>(acc.credits_posted));
    }
    return kExitOk;
  }

  if (sub == "verify") {
    auto r = ledger.verify();
    if (!r.is_ok()) return fail(args, r.status().to_string());
    VerifyReport& v = *r;
    // Receipts: every executor's chain, and every escrow hold named by a receipt.
    auto chains = settle::verify_chains(ledger);
    if (!chains.is_ok()) return fail(args, chains.status().to_string());
    for (const std::string& p : chains->problems) v.problems.push_back(p);
    if (args.json) {
      nlohmann::json j{{"ok", v.ok()},
                       {"accounts", v.accounts},
                       {"transfers", v.transfers},
                       {"holds_live", v.holds_live},
                       {"journal_entries", v.journal_entries},
                       {"journal_head", hex(v.journal_head)},
                       {"receipts", chains->receipts},
                       {"executor_chains", chains->chains},
                       {"problems", v.problems}};
      if (!v.ok())
        j["error"] = {{"code", "verification_failed"},
                      {"message", std::to_string(v.problems.size()) + " problem(s) found: " + v.problems.front()}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%s: %llu accounts, %llu transfers (%llu live holds), %llu journal entries, head %s\n",
                  v.ok() ? "ok" : "CORRUPT", static_cast<unsigned long long>(v.accounts),
                  static_cast<unsigned long long>(v.transfers), static_cast<unsigned long long>(v.holds_live),
                  static_cast<unsigned long long>(v.journal_entries), hex(v.journal_head).c_str());
      std::printf("receipts: %llu in %zu executor chain(s)\n", static_cast<unsigned long long>(chains->receipts),
                  chains->chains.size());
      for (const std::string& p : v.problems) std::printf("  %s\n", p.c_str());
    }
    return v.ok() ? kExitOk : kExitError;
  }

  return fail(args, "unknown subcommand '" + sub + "' (covenant ledger help)");
}

}  // namespace

COVENANT_COMMAND("ledger", kLedgerUsage, run_ledger);

}  // namespace covenant::cli
