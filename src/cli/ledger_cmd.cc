// covenant ledger ...: accounts, transfers, holds and verification from the shell.
// See docs/ledger.md ("CLI") for every subcommand and its output.
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/command.h"
#include "covenant/ledger.h"
#include "settle/pipeline.h"

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
    "  balance ACCOUNT\n"
    "  verify\n"
    "PATH is a SQLite file; a postgresql:// URL selects PostgreSQL (tables in schema 'covenant',\n"
    "or --pg-schema NAME). Ids: decimal or 32 hex digits.\n";

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;
  bool json = false;
};

// --name value pairs; --json is the only flag without a value.
bool parse(int argc, char** argv, Args* out, std::string* error) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json") {
      out->json = true;
    } else if (a.starts_with("--")) {
      if (i + 1 >= argc) {
        *error = a + " needs a value";
        return false;
      }
      out->options[a.substr(2)] = argv[++i];
    } else {
      out->positional.push_back(a);
    }
  }
  return true;
}

int fail(const Args& args, const std::string& message) {
  if (args.json) std::printf("%s\n", nlohmann::json{{"error", message}}.dump().c_str());
  else std::fprintf(stderr, "covenant ledger: %s\n", message.c_str());
  return kExitError;
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
    nlohmann::json j = {{"id", id},
                        {"result", ledger_result_name(reply.result)},
                        {"code", static_cast<int>(reply.result)},
                        {"timestamp_ns", reply.timestamp_ns}};
    if (reply.expired_count) j["expired"] = reply.expired_count;
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s %s\n", id.c_str(), ledger_result_name(reply.result));
  }
  return success ? kExitOk : kExitError;
}

int run_ledger(int argc, char** argv) {
  Args args;
  std::string error;
  if (!parse(argc, argv, &args, &error)) return fail(args, error);
  if (args.positional.empty() || args.positional[0] == "help") {
    std::fputs(kUsage, args.positional.empty() ? stderr : stdout);
    return args.positional.empty() ? kExitError : kExitOk;
  }
  auto loc = args.options.find("ledger");
  if (loc == args.options.end()) return fail(args, "--ledger PATH_OR_URL is required");
  const std::string sub = args.positional[0];
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
    if (args.positional.size() < 3 || args.positional[1] != "create") return fail(args, "usage: account create ID ...");
    Account a;
    uint64_t ledger_id = 0, code = 0;
    if (!get_id(args, args.positional[2], "account id", &a.id, &error) ||
        !get_u64(o, "ledger-id", 1, &ledger_id, &error) || !get_u64(o, "code", 1, &code, &error))
      return fail(args, error);
    if (ledger_id > UINT32_MAX || code > UINT16_MAX) return fail(args, "--ledger-id or --code out of range");
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
    if (sub == "transfer" && o.count("timeout")) return fail(args, "--timeout is for holds");
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
    if (!need_pos(2, "ACCOUNT")) return fail(args, error);
    Id128 id;
    if (!get_id(args, args.positional[1], "account id", &id, &error)) return fail(args, error);
    auto a = ledger.lookup_account(id);
    if (!a.is_ok()) return fail(args, a.status().to_string());
    if (!a->has_value()) return fail(args, "account " + id.hex() + " not found");
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
      std::printf("%s\n", nlohmann::json{{"ok", v.ok()},
                                         {"accounts", v.accounts},
                                         {"transfers", v.transfers},
                                         {"holds_live", v.holds_live},
                                         {"journal_entries", v.journal_entries},
                                         {"journal_head", hex(v.journal_head)},
                                         {"receipts", chains->receipts},
                                         {"executor_chains", chains->chains},
                                         {"problems", v.problems}}
                              .dump()
                              .c_str());
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

COVENANT_COMMAND("ledger", "ledger init|account create|transfer|hold|post|void|dispute|resolve|expire|balance|verify ... --ledger PATH_OR_URL [--json]", run_ledger);

}  // namespace covenant::cli
