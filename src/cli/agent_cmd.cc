// covenant agent fund|balance: an agent's budget on a covenant serve ledger
// (docs/api.md "Budgets"; the same rows POST /v1/agents/{id}/fund writes).
#include <cctype>
#include <cstdio>
#include <random>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/command.h"
#include "settle/settle.h"

namespace covenant::cli {
namespace {

using json = nlohmann::json;

constexpr const char* kAgentUsage =
    "agent fund AGENT --amount N --tenant T | agent balance AGENT --tenant T  (both: --ledger PATH|postgresql://URL "
    "[--pg-schema S] | --data DIR; [--json])";

bool valid_id(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == ':' || c == '@')) return false;
  return true;
}

int agent_command(int argc, char** argv) {
  std::vector<std::string> argv_v = to_vector(argc, argv);
  Reporter rep{"agent", has_json_flag(argv_v)};
  std::string agent, tenant, ledger_loc, data, pg_schema;
  uint64_t amount = 0;
  bool as_json = false;
  CLI::App app("An agent's budget on a covenant serve ledger: once funded, every hold an approval places for the "
               "agent draws on it and it never goes below zero (docs/api.md, Budgets).",
               "covenant agent");
  configure(app);
  app.require_subcommand(1);
  CLI::App* fund = app.add_subcommand("fund", "credit the agent's budget from the tenant's treasury");
  CLI::App* balance = app.add_subcommand("balance", "show the agent's budget");
  for (CLI::App* sub : {fund, balance}) {
    add_pos(*sub, "AGENT", agent, "the agent id (the intent's agent-id)");
    sub->add_option("--tenant", tenant, "the tenant whose agent it is")->required();
    sub->add_option("--ledger", ledger_loc, "the ledger (SQLite path or postgresql://URL)");
    sub->add_option("--data", data, "a covenant serve data directory (its DIR/ledger.db)");
    sub->add_option("--pg-schema", pg_schema, "PostgreSQL schema (docs/ledger.md)");
    add_json(*sub, as_json);
  }
  add_u64(*fund, "--amount", amount, "units to credit (within u64)")->required();
  if (auto code = parse(app, argv_v, rep, kAgentUsage)) return *code;
  const bool funding = fund->parsed();
  if (!valid_id(agent)) return rep.usage("AGENT: expected 1-64 of [A-Za-z0-9._:@-]", kAgentUsage);
  if (!valid_id(tenant)) return rep.usage("--tenant: expected 1-64 of [A-Za-z0-9._:@-]", kAgentUsage);
  if (ledger_loc.empty() == data.empty()) return rep.usage("give exactly one of --ledger and --data", kAgentUsage);
  if (funding && amount == 0) return rep.usage("--amount must be positive", kAgentUsage);
  const std::string loc = ledger_loc.empty() ? data + "/ledger.db" : ledger_loc;
  if (std::string e = check_existing_ledger(ledger_loc.empty() ? "--data" : "--ledger", loc); !e.empty())
    return rep.fail(kExitError, "bad_file", e);
  auto l = settle::open_ledger(loc, pg_schema);
  if (!l) return rep.fail(kExitError, "ledger_open", l.status().to_string());
  if (funding) {
    Status st = settle::fund_agent(**l, tenant, agent, amount, std::to_string(std::random_device{}()) + "-" +
                                                                 std::to_string(std::random_device{}()));
    if (!st) return rep.fail(kExitError, st.code() == Code::kFailedPrecondition ? "refused" : "ledger", st.message());
  }
  auto b = settle::agent_balance(**l, tenant, agent);
  if (!b) return rep.fail(kExitError, "ledger", b.status().to_string());
  json j = {{"ok", true}, {"tenant", tenant}, {"agent", agent}, {"funded", b->funded}};
  if (b->funded) {
    j["account_id"] = b->account_id.hex();
    j["credits_posted"] = std::to_string(b->credits_posted);
    j["debits_posted"] = std::to_string(b->debits_posted);
    j["debits_pending"] = std::to_string(b->debits_pending);
    j["available"] = std::to_string(b->available);
  }
  if (as_json) {
    std::printf("%s\n", j.dump().c_str());
  } else if (!b->funded) {
    std::printf("agent %s of tenant %s: not funded (its holds use the seed mapping's unbounded account)\n", agent.c_str(),
                tenant.c_str());
  } else {
    std::printf("%sagent %s of tenant %s: available %llu (credited %llu, spent %llu, held %llu)\n",
                funding ? "funded; " : "", agent.c_str(), tenant.c_str(), (unsigned long long)b->available,
                (unsigned long long)b->credits_posted, (unsigned long long)b->debits_posted,
                (unsigned long long)b->debits_pending);
  }
  return kExitOk;
}

}  // namespace

COVENANT_COMMAND("agent", kAgentUsage, agent_command);

}  // namespace covenant::cli
