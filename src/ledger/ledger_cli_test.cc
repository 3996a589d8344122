// `covenant ledger ...` end to end: a table of commands run against the real binary, each
// with its expected exit status and output, on SQLite and (when available) PostgreSQL.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include "ledger/ledger_test_util.h"

namespace covenant {
namespace {

struct Ran {
  int exit_code = -1;
  std::string out;
};

Ran run(const std::string& args, const std::string& env = "") {
  std::string cmd = env + " " + std::string(COVENANT_BINARY_DIR) + "/covenant ledger " + args + " 2>&1";
  Ran r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class LedgerCli : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(Backends, LedgerCli, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

TEST_P(LedgerCli, CommandTable) {
  ledger_test::TestStore store(GetParam());
  COVENANT_REQUIRE_STORE(store);
  std::string L = " --ledger '" + store.location + "'";
  if (GetParam() == "postgresql") L += " --pg-schema " + store.options.storage.pg_schema;  // dropped after
  const std::string env;
  auto id = [](int n) { return std::to_string(n); };
  struct Row {
    std::string args;
    int exit_code;
    std::string output_has;
  };
  const Row rows[] = {
      {"init" + L, 0, "initialized"},
      {"account create " + id(1) + L, 0, " ok"},
      {"account create " + id(2) + " --flags no-overdraft" + L + " --json", 0, "\"result\":\"ok\""},
      {"account create " + id(3) + L, 0, " ok"},
      {"account create " + id(3) + L, 0, "account_exists"},
      {"account create " + id(3) + " --code 2" + L, 1, "account_exists_with_different_code"},
      {"account create " + id(4) + " --flags nonsense" + L, 1, "--flags must be"},
      {"transfer " + id(10) + " --from " + id(1) + " --to " + id(2) + " --amount 100" + L + " --json", 0,
       "\"code\":0"},
      {"transfer " + id(10) + " --from " + id(1) + " --to " + id(2) + " --amount 100" + L, 0, "exists"},
      {"transfer " + id(10) + " --from " + id(1) + " --to " + id(2) + " --amount 101" + L, 1,
       "exists_with_different_amount"},
      {"transfer " + id(11) + " --from " + id(2) + " --to " + id(3) + " --amount 101" + L, 1, "exceeds_credits"},
      {"transfer " + id(12) + " --from " + id(1) + " --to " + id(2) + " --amount x" + L, 1, "not a non-negative"},
      {"hold " + id(20) + " --from " + id(2) + " --to " + id(3) + " --amount 60 --timeout 3600" + L, 0, " ok"},
      {"dispute " + id(21) + " --hold " + id(20) + L, 0, " ok"},
      {"post " + id(22) + " --hold " + id(20) + L, 1, "pending_transfer_disputed"},
      {"void " + id(23) + " --hold " + id(20) + L, 1, "pending_transfer_disputed"},
      {"resolve " + id(24) + " --hold " + id(20) + L, 0, " ok"},
      {"post " + id(22) + " --hold " + id(20) + " --amount 40" + L, 0, " ok"},
      {"void " + id(25) + " --hold " + id(20) + L, 1, "pending_transfer_already_posted"},
      {"balance " + id(2) + L + " --json", 0, "\"debits_posted\":40"},
      {"balance " + id(3) + L, 0, "credits pending 0 posted 40"},
      {"balance " + id(9) + L, 1, "not found"},
      {"expire" + L, 0, "expired 0 holds"},
      {"verify" + L, 0, "ok: "},
      {"verify" + L + " --json", 0, "\"ok\":true"},
      {"frobnicate" + L, 1, "unknown subcommand"},
      {"balance 1", 1, "--ledger PATH_OR_URL is required"},
  };
  for (const Row& r : rows) {
    Ran got = run(r.args, env);
    EXPECT_EQ(got.exit_code, r.exit_code) << r.args << "\n" << got.out;
    EXPECT_NE(got.out.find(r.output_has), std::string::npos) << r.args << "\nwant: " << r.output_has << "\ngot: " << got.out;
  }
}

}  // namespace
}  // namespace covenant
