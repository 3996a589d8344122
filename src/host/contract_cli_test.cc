// covenant call / covenant approve, run as a subprocess: the exact JSON shape
// and the exit codes (0 ok, 1 load/validation/usage error, 2 trap).
#include <gtest/gtest.h>
#include <unistd.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

namespace {

using json = nlohmann::json;

struct Outcome {
  int code = -1;
  std::string out, err;
};

// ctest runs each test in its own process, two at a time: names carry the pid.
std::string tmp(const std::string& name) {
  return ::testing::TempDir() + "/contract_cli_" + std::to_string(getpid()) + "_" + name;
}

void write(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') q += "'\\''";
    else q += c;
  }
  return q + "'";
}

Outcome run(const std::string& args, const std::string& stdin_text = "") {
  std::string err_path = tmp("stderr.txt");
  std::string cmd = std::string(COVENANT_CLI) + " " + args + " 2>" + err_path;
  if (!stdin_text.empty()) {
    write(tmp("stdin.txt"), stdin_text);
    cmd += " <" + tmp("stdin.txt");
  }
  Outcome r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream e(err_path);
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  return r;
}

const std::string kTestdata = HOST_TESTDATA_DIR;
const std::string kSeed = kTestdata + "/seed_c.wasm";
const std::string kBudget = kTestdata + "/budget.wasm";
const std::string kBudgetWit = std::string(COVENANT_SOURCE_DIR) + "/contracts/examples/budget/budget.wit";

std::string budget_grants() {
  std::string path = tmp("grants.json");
  write(path, R"({"capabilities": {"kv": {"namespace": "budget", "max_keys": 1000, "max_bytes": 65536},
                  "log": {"level": "info", "max_lines": 100}, "clock": {}}})");
  return path;
}

void expect_shape(const json& j) {
  std::set<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.insert(it.key());
  // tier and cache_hit as `covenant run` reports them; the guest's log lines (docs/cli.md).
  EXPECT_EQ(keys, (std::set<std::string>{"result", "fuel_used", "trap", "timings_us", "tier", "cache_hit", "logs",
                                         "logs_dropped"}))
      << j.dump();
  EXPECT_TRUE(j["fuel_used"].is_number_unsigned());
  EXPECT_TRUE(j["tier"] == "interp" || j["tier"] == "baseline" || j["tier"] == "optimized") << j.dump();
  EXPECT_TRUE(j["cache_hit"].is_boolean()) << j.dump();
  EXPECT_TRUE(j["logs"].is_array()) << j.dump();
  EXPECT_TRUE(j["logs_dropped"].is_number_unsigned()) << j.dump();
  EXPECT_TRUE(j["timings_us"].is_object());
  for (const char* k : {"load", "compile", "deploy", "lower", "execute", "lift", "call"})
    EXPECT_TRUE(j["timings_us"][k].is_number_unsigned()) << k;
}

TEST(CliApprove, SeedDecisionAsJson) {
  std::string intent = tmp("intent.json");
  write(intent, R"({"agent_id": "agent-7", "task_type": "compute", "max_units": 5, "expires_at_ms": 1767225600001})");
  uint64_t fuel = 0;
  for (const char* tier : {"optimized", "baseline", "interp"}) {
    Outcome r = run("approve " + kSeed + " --intent " + intent + " --tier " + tier + " --json");
    ASSERT_EQ(r.code, 0) << tier << ": " << r.err;
    json j = json::parse(r.out);
    expect_shape(j);
    EXPECT_EQ(j["tier"], tier) << "the tier asked for is the tier that ran";
    EXPECT_EQ(j["result"], json::parse(R"({"approved": true, "ceiling": "250000", "reason": "approved"})")) << tier;
    EXPECT_EQ(j["trap"], nullptr);
    if (fuel == 0) fuel = j["fuel_used"];
    EXPECT_EQ(j["fuel_used"], fuel) << "identical fuel on every tier";
  }
}

TEST(CliApprove, KebabInputStdinAndPlainOutput) {
  std::string intent = R"({"agent-id": "agent-7", "task-type": "search", "max-units": "5000", "expires-at-ms": "1767225600001"})";
  Outcome r = run("approve " + kSeed + " --intent - --tier baseline", intent);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("decision: {\"approved\":false,\"ceiling\":\"1000\",\"reason\":\"over-ceiling\"}\nfuel used: ", 0), 0u)
      << r.out;
  // The seed WIT as a file, in the article's own snake_case spelling: output uses the names as written.
  std::string wit = tmp("seed_snake.wit");
  write(wit, R"(package agent:settlement@0.1.0;
interface policy {
  record intent { agent_id: string, task_type: string, max_units: u64, expires_at_ms: u64 }
  record decision { approved: bool, ceiling: u64, reason: string }
  approve: func(i: intent) -> decision;
}
world escrow { export policy; }
)");
  r = run("approve " + kSeed + " --wit " + wit + " --intent - --tier baseline --json", intent);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["result"]["reason"], "over-ceiling");
}

TEST(CliApprove, Errors) {
  std::string intent = tmp("bad_intent.json");
  write(intent, R"({"agent_id": "a", "task_type": "compute", "max_units": "ten", "expires_at_ms": 1})");
  Outcome r = run("approve " + kSeed + " --intent " + intent + " --tier baseline --json");
  EXPECT_EQ(r.code, 1);
  // --json: exactly one JSON object on stdout, failures included.
  EXPECT_EQ(json::parse(r.out)["ok"], false) << r.out;
  EXPECT_NE(json::parse(r.out)["error"]["message"].get<std::string>().find("expected u64"), std::string::npos);
  EXPECT_NE(r.err.find("i.max-units: expected u64, got \"ten\""), std::string::npos) << r.err;
  r = run("approve " + kSeed + " --tier baseline");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("need --intent"), std::string::npos) << r.err;
  r = run("approve /nonexistent.wasm --intent " + intent);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("cannot open /nonexistent.wasm"), std::string::npos) << r.err;
}

TEST(CliCall, BudgetStatePersistsAcrossProcessesAndTrapsExitTwo) {
  std::string kv = tmp("budget.sqlite");
  std::remove(kv.c_str());
  std::string base = "call " + kBudget + " --wit " + kBudgetWit + " --grants " + budget_grants() + " --kv " + kv +
                     " --tier baseline --json";
  for (int i = 1; i <= 4; ++i) {
    Outcome r = run(base + " --export approve --args " + quote(R"([{"agent_id": "agent-7", "amount": 300}])"));
    ASSERT_EQ(r.code, 0) << r.err;
    json j = json::parse(r.out);
    expect_shape(j);
    EXPECT_EQ(j["result"]["approved"], i <= 3) << i;
    EXPECT_EQ(j["result"]["spent"], std::to_string(std::min(i, 3) * 300)) << i;
    EXPECT_NE(r.err.find(i <= 3 ? "log info: approved agent-7 300 at " : "log info: denied agent-7 300 at "),
              std::string::npos)
        << r.err;
  }
  Outcome r = run(base + " --export budget.spend-then-trap --args " + quote(R"([{"agent-id": "agent-7", "amount": 1}])"));
  EXPECT_EQ(r.code, 2) << r.err;
  json j = json::parse(r.out);
  expect_shape(j);
  EXPECT_EQ(j["result"], nullptr);
  EXPECT_EQ(j["trap"]["kind"], "unreachable");
  r = run(base + " --export spent --args '[\"agent-7\"]'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["result"], "900") << "the trapped call wrote nothing";
  // Another deployment on the same file starts from zero.
  r = run(base + " --deployment other --export spent --args '[\"agent-7\"]'");
  EXPECT_EQ(json::parse(r.out)["result"], "0");
  // A capability trap (bad key) is a trap too.
  r = run(base + " --export approve --args " + quote(R"([{"agent_id": "../agent-7", "amount": 1}])"));
  EXPECT_EQ(r.code, 2);
  j = json::parse(r.out);
  EXPECT_EQ(j["trap"]["kind"], "host");
  EXPECT_NE(j["trap"]["message"].get<std::string>().find("'..' segment"), std::string::npos);
  r = run(base + " --export spent --args '[\"agent-7\"]' --fuel 10");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(json::parse(r.out)["trap"]["kind"], "out_of_fuel");
}

TEST(CliCall, RefusalsAndUsageExitOne) {
  std::string base = "call " + kBudget + " --wit " + kBudgetWit + " --tier baseline --json";
  Outcome r = run(base + " --export approve --args '[{\"agent_id\": \"a\", \"amount\": 1}]'");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(json::parse(r.out)["ok"], false) << r.out;
  EXPECT_NE(r.err.find("import \"covenant:host/kv@0.1.0\" \"get\" is refused: it needs the grant \"kv\""),
            std::string::npos)
      << r.err;
  std::string no_kv = tmp("no_kv.json");
  write(no_kv, R"({"capabilities": {"log": {}, "clock": {}}})");
  r = run(base + " --grants " + no_kv + " --export approve --args '[]'");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("needs the grant \"kv\""), std::string::npos);
  EXPECT_EQ(r.err.find("needs the grant \"log\""), std::string::npos);

  std::string g = " --grants " + budget_grants();
  r = run(base + g + " --export nope --args '[]'");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no exported function \"nope\""), std::string::npos) << r.err;
  r = run(base + g + " --export approve --args '[{]'");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--args: not valid JSON"), std::string::npos);
  r = run(base + g + " --export approve");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("usage: covenant call"), std::string::npos);
  std::string bad = tmp("bad_grants.json");
  write(bad, R"({"capabilities": {"kv": {"max_keys": "many"}}})");
  r = run(base + " --grants " + bad + " --export approve --args '[]'");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("capabilities.kv.max_keys: expected a non-negative integer"), std::string::npos) << r.err;

  std::string run_wit = std::string(COVENANT_SOURCE_DIR) + "/src/host/testdata/run.wit";
  r = run("call " + kTestdata + "/wasi.wasm --wit " + run_wit + g + " --export run --args '[]' --json");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("\"wasi_snapshot_preview1\" \"fd_write\" is refused"), std::string::npos) << r.err;
}

}  // namespace
