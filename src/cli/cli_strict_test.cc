// The CLI's own contract (docs/cli.md), run against build/covenant as a
// subprocess: every command refuses an unknown flag (exit 1); a directory where
// a file is expected is a one-line error naming the argument (exit 1, no
// abort); --help on every command and subcommand (exit 0); `covenant help`,
// `--version`; `--flag=value`; with --json a failure is exactly one JSON object
// on stdout; the exit-code table; the kv-without-persistence warning; receipt
// verify against another key (exit 2); ledger balance --agent; guest output
// made inert; validate; run's exit 3; the one-shot tier and deadline; JSON
// error paths in the WIT's spelling.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

using json = nlohmann::json;

struct Outcome {
  int code = -1;
  bool signaled = false;
  std::string out, err;
};

std::string g_dir;

void write(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

// Runs `covenant ARGS` in g_dir with COVENANT_HOME=g_dir/home (and `env`, "NAME=value ...").
Outcome run(const std::string& args, const std::string& env = "") {
  const std::string err_path = g_dir + "/stderr.txt";
  const std::string cmd = "cd '" + g_dir + "' && COVENANT_HOME='" + g_dir + "/home' " + env + " " +
                          std::string(COVENANT_CLI) + " " + args + " 2>'" + err_path + "' </dev/null";
  Outcome r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.signaled = WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) > 128);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream e(err_path);
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  return r;
}

std::string sh(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[256];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

const std::string kTestdata = HOST_TESTDATA_DIR;
const std::string kSeed = kTestdata + "/seed_c.wasm";
const std::string kBudget = kTestdata + "/budget.wasm";
const std::string kBudgetWit = std::string(COVENANT_SOURCE_DIR) + "/contracts/examples/budget/budget.wit";

std::string intent(const std::string& name, const std::string& agent = "agent-7", int units = 100) {
  const std::string path = g_dir + "/" + name;
  write(path, R"({"agent_id": ")" + agent + R"(", "task_type": "compute", "max_units": )" + std::to_string(units) +
                  R"(, "expires_at_ms": 4102444800000})");
  return path;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

std::string budget_grants() {
  const std::string path = g_dir + "/grants.json";
  write(path, R"({"capabilities": {"kv": {"namespace": "budget", "max_keys": 1000, "max_bytes": 65536},
                  "log": {"level": "info", "max_lines": 100}, "clock": {}}})");
  return path;
}

// Exactly one JSON object on stdout (one line), ok:false and error {code, message}.
void expect_json_failure(const Outcome& r, const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  ASSERT_FALSE(r.out.empty()) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  json j = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_EQ(j.value("ok", true), false) << r.out;
  ASSERT_TRUE(j.contains("error") && j["error"].is_object()) << r.out;
  ASSERT_TRUE(j["error"]["code"].is_string()) << r.out;
  const std::string code = j["error"]["code"];
  EXPECT_FALSE(code.empty());
  EXPECT_TRUE(std::all_of(code.begin(), code.end(), [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; })) << code;
  EXPECT_TRUE(j["error"]["message"].is_string()) << r.out;
}

class CliStrict : public ::testing::Test {
 protected:
  void SetUp() override {
    g_dir = ::testing::TempDir() + "/cli_strict_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(g_dir);
    std::filesystem::create_directories(g_dir + "/adir");
  }
  void TearDown() override { std::filesystem::remove_all(g_dir); }
};

TEST_F(CliStrict, UnknownFlagIsRefusedByEveryCommand) {
  const std::string i = intent("i.json");
  const std::string hold = std::string(32, 'a');
  // A receipt to verify, from the demo log.
  ASSERT_EQ(run("receipt demo --count 1 --log demo.log").code, 0);
  const std::string id = run("receipt demo --count 1 --log demo.log").out.substr(0, 64);
  ASSERT_EQ(run("receipt get " + id + " --out " + g_dir + "/r.cose --log demo.log").code, 0);
  const std::vector<std::string> cmds = {
      "run " + kSeed + " approve --bogus 1",
      "compile " + kSeed + " --bogus 1",
      "call " + kSeed + " --export approve --args [] --bogus 1",
      "approve " + kSeed + " --intent " + i + " --bogus 1",
      "replay " + g_dir + "/x.replay --bogus 1",
      "wit " + kSeed + " --bogus 1",
      "bindgen --lang c " + kBudgetWit + " --out " + g_dir + "/b --bogus 1",
      "serve --bogus 1",
      "settle release " + hold + " --bogus 1 --ledger " + g_dir + "/l.db",
      "settle checkpoint --bogus 1 --ledger " + g_dir + "/l.db",
      "ledger init --bogus 1 --ledger " + g_dir + "/l.db",
      "ledger balance 1 --bogus 1 --ledger " + g_dir + "/l.db",
      "receipt verify " + g_dir + "/r.cose --bogus 1",
      "key show --bogus 1",
      "log verify --bogus 1 --log demo.log",
      "log prove --index 0 --bogus 1 --log demo.log",
  };
  for (const std::string& c : cmds) {
    Outcome r = run(c);
    EXPECT_EQ(r.code, 1) << c << "\n" << r.out << r.err;
    EXPECT_NE(r.err.find("unknown option --bogus"), std::string::npos) << c << "\n" << r.err;
  }
  // The two cases from the issue: a misspelt flag changed nothing.
  Outcome r = run("settle release " + hold + " --ammount 1 --ledger " + g_dir + "/l.db");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("unknown option --ammount"), std::string::npos) << r.err;
  r = run("receipt verify " + g_dir + "/r.cose --kye " + std::string(64, '0'));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.err.find("unknown option --kye"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("valid"), std::string::npos) << r.out;
}

TEST_F(CliStrict, DirectoryArgumentIsAOneLineErrorNamingIt) {
  const std::string d = g_dir + "/adir";
  const std::string i = intent("i.json");
  struct Case {
    std::string args, names;
  };
  const Case cases[] = {
      {"approve " + d + " --intent " + i, "CONTRACT"},
      {"approve " + kSeed + " --intent " + d, "--intent"},
      {"approve " + kSeed + " --intent " + i + " --wit " + d, "--wit"},
      {"approve " + kSeed + " --intent " + i + " --grants " + d, "--grants"},
      {"approve " + kSeed + " --intent " + i + " --replay-out " + d, "--replay-out"},
      {"approve " + kSeed + " --intent " + i + " --ledger " + d, "--ledger"},
      {"call " + d + " --wit " + kBudgetWit + " --export approve --args []", "CONTRACT"},
      {"call " + kBudget + " --wit " + d + " --export approve --args []", "--wit"},
      {"call " + kBudget + " --wit " + kBudgetWit + " --grants " + d + " --export approve --args []", "--grants"},
      {"call " + kBudget + " --wit " + kBudgetWit + " --kv " + d + " --export approve --args []", "--kv"},
      {"run " + d + " approve", "FILE.wasm"},
      {"compile " + d, "FILE.wasm"},
      {"receipt verify " + d, "FILE"},
      {"replay " + d, "PKG"},
      {"wit " + d, "COMPONENT.wasm"},
      {"bindgen --lang c " + d, "FILE.wit"},
      {"settle receipt " + std::string(64, '0') + " --out " + d + " --ledger " + g_dir + "/l.db", "--out"},
      {"ledger init --ledger " + d, "--ledger"},
      {"log verify --checkpoint " + d, "--checkpoint"},
      {"log verify --proof " + d + " --checkpoint " + d, "--checkpoint"},
  };
  for (const Case& c : cases) {
    Outcome r = run(c.args);
    EXPECT_FALSE(r.signaled) << c.args << "\n" << r.err;
    EXPECT_EQ(r.code, 1) << c.args << "\n" << r.out << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.names + ": cannot "), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find("is a directory"), std::string::npos) << c.args << "\n" << r.err;
  }
  // Nothing ran: no ledger was created by the refused approve.
  EXPECT_FALSE(std::filesystem::exists(g_dir + "/l.db"));
}

TEST_F(CliStrict, HelpOnEveryCommandAndSubcommand) {
  const std::vector<std::string> cmds = {"serve", "validate", "run", "compile", "call", "approve", "bindgen", "wit", "replay",
                                         "settle", "settle release", "settle refund", "settle checkpoint",
                                         "settle prove", "settle receipt", "receipt", "receipt verify", "receipt get",
                                         "receipt demo", "key", "key show", "key rotate", "log", "log checkpoint",
                                         "log prove", "log verify", "ledger", "ledger account create",
                                         "ledger transfer", "ledger hold", "ledger post", "ledger balance",
                                         "ledger verify"};
  for (const std::string& c : cmds) {
    for (const char* flag : {" --help", " -h"}) {
      Outcome r = run(c + flag);
      EXPECT_EQ(r.code, 0) << c << flag << "\n" << r.err;
      EXPECT_NE(r.out.find("Usage: covenant " + c), std::string::npos) << c << flag << "\n" << r.out;
      EXPECT_EQ(r.err, "") << c << flag;
    }
  }
  // Every flag with its default.
  Outcome r = run("run --help");
  for (const char* s : {"--tier", "=optimized", "--fuel", "=1000000000", "--max-memory", "--deadline-ms", "--json"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  r = run("approve --help");
  for (const char* s : {"--intent", "--ledger", "--pg-schema", "--keys-dir", "--replay-out", "--checkpoint-every",
                        "=16", "--checkpoint-dir", "--origin", "--kv"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  r = run("settle release --help");
  EXPECT_NE(r.out.find("--amount"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--pg-schema"), std::string::npos) << r.out;
  r = run("ledger hold --help");
  EXPECT_NE(r.out.find("--timeout"), std::string::npos) << r.out;
  // The usage lines list the settlement flags too.
  r = run("--help");
  EXPECT_EQ(r.code, 0);
  for (const char* s : {"--checkpoint-dir", "--origin", "--pg-schema"}) EXPECT_NE(r.out.find(s), std::string::npos) << s;
}

TEST_F(CliStrict, HelpCommandAndVersion) {
  Outcome r = run("help");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("approve CONTRACT"), std::string::npos) << r.out;
  r = run("help settle");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("Usage: covenant settle"), std::string::npos) << r.out;
  r = run("help nope");
  EXPECT_EQ(r.code, 1);
  r = run("--version");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("covenant 0.1.0"), std::string::npos) << r.out;
  for (const char* s : {"interp", "baseline", "optimized", "compiler: "}) EXPECT_NE(r.out.find(s), std::string::npos) << s;
  r = run("--version --json");
  EXPECT_EQ(r.code, 0);
  json j = json::parse(r.out);
  EXPECT_EQ(j["version"], "0.1.0");
  EXPECT_EQ(j["tiers"].size(), 4u);
  EXPECT_FALSE(j["compiler"].get<std::string>().empty());
}

TEST_F(CliStrict, FlagEqualsValueAndTypedValues) {
  const std::string i = intent("i.json");
  Outcome r = run("approve " + kSeed + " --intent=" + i + " --tier=baseline --fuel=100000000 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["trap"], nullptr);
  r = run("run " + kSeed + " approve --deadline-ms=99999999999");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("out of range"), std::string::npos) << r.err;
  r = run("ledger account create 5 --code 70000 --ledger " + g_dir + "/l.db");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("out of range"), std::string::npos) << r.err;
  r = run("approve " + kSeed + " --intent " + i + " --tier=fast");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("unknown tier \"fast\""), std::string::npos) << r.err;
}

TEST_F(CliStrict, JsonFailureIsExactlyOneObject) {
  const std::string missing = g_dir + "/missing";
  const std::vector<std::string> cmds = {
      "run " + missing + " f --json",
      "run " + kSeed + " approve --bogus --json",
      "compile " + missing + " --json",
      "approve " + kSeed + " --json",
      "approve " + kSeed + " --intent " + g_dir + "/adir --json",
      "replay " + missing + " --json",
      "wit " + missing + " --json",
      "bindgen " + kBudgetWit + " --json",
      "settle release " + std::string(32, 'a') + " --json",
      "settle release nothex --ledger " + g_dir + "/l.db --json",
      "settle release " + std::string(32, 'a') + " --ledger " + g_dir + "/l.db --json",
      "ledger balance 9 --ledger " + g_dir + "/l.db --json",
      "ledger frobnicate --ledger " + g_dir + "/l.db --json",
      "ledger transfer 1 --from 1 --to 2 --amount x --ledger " + g_dir + "/l.db --json",
      "receipt verify " + missing + " --json",
      "receipt get nothex --out " + g_dir + "/o --json",
      "receipt get " + std::string(64, '0') + " --out " + g_dir + "/o --json",  // no location
      "log checkpoint --json",                                                 // no location
      "key show --bogus --json",
      "log prove --size x --json",
      "log verify --log " + missing + " --json",
  };
  for (const std::string& c : cmds) expect_json_failure(run(c), c);
}

TEST_F(CliStrict, ExitCodeTable) {
  const std::string i = intent("i.json");
  ASSERT_EQ(run("key show --keys-dir " + g_dir + "/k1").code, 0);
  ASSERT_EQ(run("approve " + kSeed + " --intent " + i + " --keys-dir " + g_dir + "/k1 --replay-out " + g_dir +
                "/x.replay --tier interp")
                .code,
            0);
  const std::string other = json::parse(run("key show --keys-dir " + g_dir + "/k2 --json").out)["public_key"];
  ASSERT_EQ(run("receipt demo --count 1 --log demo.log").code, 0);
  const std::string id = run("receipt demo --count 1 --log demo.log").out.substr(0, 64);
  ASSERT_EQ(run("receipt get " + id + " --out " + g_dir + "/r.cose --log demo.log").code, 0);
  write(g_dir + "/bad.wasm", "not wasm");
  struct Row {
    std::string args;
    int code;
  };
  // docs/cli.md, "Exit codes".
  const Row table[] = {
      {"approve " + kSeed + " --intent " + i + " --tier interp", 0},      // ok
      {"--version", 0},                                                    // ok
      {"run --help", 0},                                                   // ok
      {"frobnicate", 1},                                                   // usage: unknown command
      {"run " + kSeed, 1},                                                 // usage: missing EXPORT
      {"run " + kSeed + " approve --tier", 1},                             // usage: missing value
      {"run " + g_dir + "/bad.wasm f", 1},                                 // load error
      {"approve " + g_dir + "/missing.wasm --intent " + i, 1},             // load error (no file)
      {"approve " + kSeed + " --intent " + i + " --fuel 10", 2},           // guest trap (out of fuel)
      {"replay " + g_dir + "/x.replay --key " + other, 2},                 // verification failed
      {"receipt verify " + g_dir + "/r.cose", 0},                          // verified
      {"receipt verify " + g_dir + "/r.cose --key " + other, 2},           // verification failed
      {"receipt verify " + g_dir + "/r.cose --key " + other + " --json", 2},
      {"validate " + kSeed, 0},                                            // valid
      {"validate " + g_dir + "/bad.wasm", 1},                              // invalid
      {"run " + kSeed + " no_such_export", 3},                             // valid module, no such export
      {"run " + kSeed + " cabi_realloc 1 2", 3},                           // arguments that do not fit
      {"run " + kSeed + " cabi_realloc 1 2 3 x", 3},
      {"diff " + kSeed + " " + kSeed, 0},                                  // compatible
      {"diff " + kSeed + " " + kBudget + " --wit-new " + kBudgetWit + " --grants-new " + budget_grants(), 2},  // breaking
      {"diff " + kSeed + " " + g_dir + "/bad.wasm", 1},                    // load error
  };
  for (const Row& row : table) {
    Outcome r = run(row.args);
    EXPECT_EQ(r.code, row.code) << row.args << "\n" << r.out << r.err;
  }
  Outcome r = run("receipt verify " + g_dir + "/r.cose --key " + other + " --json");
  json j = json::parse(r.out);
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["error"]["code"], "verification_failed") << r.out;
}

// covenant diff (docs/api.md, "Governed activation"): a renamed decision field
// is a changed export and a changed type; a grant's level change is listed;
// --json carries the same diff and its hash.
TEST_F(CliStrict, DiffShowsWhatChangesForCallers) {
  std::string wit = read_text(kBudgetWit);
  const size_t at = wit.find("    remaining: u64,");
  ASSERT_NE(at, std::string::npos);
  write(g_dir + "/renamed.wit", wit.replace(at, 19, "    left: u64,"));
  std::string grants = read_text(budget_grants());
  const size_t lv = grants.find("\"info\"");
  ASSERT_NE(lv, std::string::npos) << grants;
  write(g_dir + "/debug-grants.json", grants.replace(lv, 6, "\"debug\""));
  const std::string args = "diff " + kBudget + " " + kBudget + " --wit-old " + kBudgetWit + " --wit-new " + g_dir +
                           "/renamed.wit --grants-old " + budget_grants() + " --grants-new " + g_dir + "/debug-grants.json";
  Outcome t = run(args);
  EXPECT_EQ(t.code, 2) << t.out << t.err;
  EXPECT_NE(t.out.find("~ export budget.approve"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("left: u64"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("~ grant log"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("BREAKING"), std::string::npos) << t.out;
  Outcome j = run(args + " --json");
  EXPECT_EQ(j.code, 2);
  json d = json::parse(j.out);
  EXPECT_EQ(d["diff"]["compatible"], false);
  EXPECT_EQ(d["diff"]["types"]["changed"][0]["name"], "budget.verdict") << j.out;
  EXPECT_EQ(d["diff_hash"].get<std::string>().size(), 64u);
  EXPECT_EQ(run("diff " + kBudget + " " + kBudget + " --wit-old " + kBudgetWit + " --wit-new " + kBudgetWit +
                " --grants-old " + budget_grants() + " --grants-new " + budget_grants())
                .code,
            0);
}

TEST_F(CliStrict, KvWithoutPersistenceIsWarnedAbout) {
  const std::string base = "call " + kBudget + " --wit " + kBudgetWit + " --grants " + budget_grants() +
                           " --export approve --args '[{\"agent_id\": \"a\", \"amount\": 1}]' --json";
  Outcome r = run(base);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: " + kBudget +
                       " is granted kv but --kv was not given: its state is kept in memory and dropped at exit "
                       "(use --kv FILE, --kv memory, or --ledger)"),
            std::string::npos)
      << r.err;
  r = run(base + " --kv memory");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err.find("warning:"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(g_dir + "/memory")) << "--kv memory is not a file name";
  r = run(base + " --kv " + g_dir + "/kv.sqlite");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err.find("warning:"), std::string::npos) << r.err;
  // No kv grant: no warning.
  r = run("approve " + kSeed + " --intent " + intent("i.json"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err.find("warning:"), std::string::npos) << r.err;
}

TEST_F(CliStrict, LedgerBalanceOfAnAgent) {
  const std::string L = " --ledger " + g_dir + "/l.db";
  Outcome r = run("approve " + kSeed + " --intent " + intent("i.json", "agent-42", 300) + " --keys-dir " + g_dir +
                  "/keys --tier interp --json" + L);
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_FALSE(json::parse(r.out)["hold_id"].is_null()) << r.out;
  r = run("ledger balance --agent agent-42 --json" + L);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  json j = json::parse(r.out);
  // The id: the first 16 bytes of SHA-256("covenant/agent/" + ID).
  const std::string digest = sh("printf %s 'covenant/agent/agent-42' | sha256sum").substr(0, 32);
  EXPECT_EQ(j["id"], digest);
  EXPECT_GT(j["debits_pending"].get<uint64_t>(), 0u) << r.out;
  r = run("ledger balance --agent agent-42" + L);
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("account " + digest), std::string::npos) << r.out;
  r = run("ledger balance --agent nobody" + L);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("not found"), std::string::npos) << r.err;
  r = run("ledger balance 1 --agent agent-42" + L);
  EXPECT_EQ(r.code, 1);
}

}  // namespace

// Issue 10 A: covenant:host is built in, so bindgen needs no --deps for it; an
// import that returns nothing gets no comment about results.
TEST_F(CliStrict, BindgenResolvesBuiltInHostPackage) {
  const std::string wit = g_dir + "/hostuser.wit";
  write(wit, "package test:hostuser@0.1.0;\n\nworld hostuser {\n  import covenant:host/kv@0.1.0;\n"
             "  import covenant:host/log@0.1.0;\n  export run: func(key: string) -> bool;\n}\n");
  std::filesystem::create_directories(g_dir + "/hostuser_out");
  Outcome r = run("bindgen --lang c " + wit + " --out " + g_dir + "/hostuser_out");
  ASSERT_EQ(r.code, 0) << r.err;
  std::string header = sh("cat '" + g_dir + "/hostuser_out/'*.h");
  auto at = header.find("covenant:host/kv@0.1.0 set.");
  ASSERT_NE(at, std::string::npos) << header;
  std::string line = header.substr(at, header.find('\n', at) - at);
  EXPECT_EQ(line.find("result"), std::string::npos) << line;
  EXPECT_NE(header.find("covenant:host/kv@0.1.0 get. Strings and lists in the result"), std::string::npos) << header;
  // A foreign package that is not built in still needs --deps, and says so.
  write(wit, "package test:hostuser@0.1.0;\n\nworld hostuser {\n  import other:pkg/thing@0.1.0;\n"
             "  export run: func(key: string) -> bool;\n}\n");
  r = run("bindgen --lang c " + wit + " --out " + g_dir + "/hostuser_out");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--deps"), std::string::npos) << r.err;
}

// Issue 10 B: a mistyped --ledger path is not a fresh ledger: settle and ledger
// (except init) refuse a SQLite path that does not exist; init creates it.
TEST_F(CliStrict, MissingLedgerIsRefusedNotCreated) {
  const std::string msg = "--ledger fresh.db: no ledger there (create one with `covenant ledger init --ledger "
                          "fresh.db`, or `covenant approve --ledger` / `covenant serve`)";
  std::filesystem::remove(g_dir + "/fresh.db");
  Outcome r = run("settle checkpoint --ledger fresh.db --keys-dir " + g_dir + "/keys");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("covenant settle: " + msg), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("checkpoint of"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(g_dir + "/fresh.db"));
  r = run("settle release " + std::string(32, 'a') + " --ledger fresh.db --json");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(json::parse(r.out)["error"]["code"], "bad_file") << r.out;
  for (const char* c : {"ledger balance 1 --ledger fresh.db", "ledger verify --ledger fresh.db",
                        "ledger account create 5 --ledger fresh.db"}) {
    r = run(c);
    EXPECT_EQ(r.code, 1) << c;
    EXPECT_NE(r.err.find("covenant ledger: " + msg), std::string::npos) << c << ": " << r.err;
    EXPECT_FALSE(std::filesystem::exists(g_dir + "/fresh.db")) << c;
  }
  r = run("ledger init --ledger fresh.db");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(g_dir + "/fresh.db"));
  r = run("ledger verify --ledger fresh.db");
  EXPECT_EQ(r.code, 0) << r.err;
  r = run("settle checkpoint --ledger fresh.db --keys-dir " + g_dir + "/keys");
  EXPECT_EQ(r.code, 0) << r.err;
}

// Issue 10 C: error details name the file, the byte, the key and the shape.
TEST_F(CliStrict, ErrorDetailsNameFileOffsetAndKey) {
  const std::string i = intent("i.json");
  const std::string approve = "approve " + kSeed + " --tier interp --intent ";
  // (1) A WIT parse error names the file given, not contract.wit.
  Outcome r = run("approve " + kSeed + " --tier interp --wit " + i + " --intent " + i);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find(i + ":1:"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("contract.wit"), std::string::npos) << r.err;
  // (2) Bad JSON: byte offset and line:col; invalid UTF-8: the first invalid byte.
  write(g_dir + "/bad.json", "{\"agent_id\": \"a\",\n  \"task_type\" \"compute\"}");
  r = run(approve + g_dir + "/bad.json");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("bad.json: not valid JSON at byte 40 (line 2:23)"), std::string::npos) << r.err;
  write(g_dir + "/utf8.json", "{\"agent_id\": \"a\xff\"}");
  r = run(approve + g_dir + "/utf8.json");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("utf8.json: not valid UTF-8: invalid byte 0xff at byte 15 (line 1:16)"), std::string::npos)
      << r.err;
  r = run("call " + kSeed + " --export approve --args '[1,'");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--args: not valid JSON at byte 3 (line 1:4)"), std::string::npos) << r.err;
  write(g_dir + "/badgrants.json", "{\"capabilities\": {\"clock\": {}, }}");
  r = run(approve + i + " --grants " + g_dir + "/badgrants.json");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("not valid JSON at byte 31 (line 1:32)"), std::string::npos) << r.err;
  // (3) A u64 too large.
  write(g_dir + "/big.json", R"({"agent_id": "a", "task_type": "compute", "max_units": 18446744073709551616, "expires_at_ms": 1})");
  r = run(approve + g_dir + "/big.json");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("out of range for u64 (max 18446744073709551615)"), std::string::npos) << r.err;
  // (4) --args of the wrong shape names both accepted shapes.
  r = run("call " + kSeed + " --export approve --args '\"x\"'");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("expected a JSON array of the parameters or an object keyed by parameter name"),
            std::string::npos) << r.err;
  // (5) Not a replay package at all.
  r = run("replay " + i);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find(i + " is not a replay package (expected a CBOR replay package made by approve --replay-out "
                           "or GET /v1/receipts/{id}/replay)"),
            std::string::npos) << r.err;
  // (6) Duplicate keys are refused with their JSON path.
  write(g_dir + "/dup.json", R"({"agent_id": "a", "task_type": "compute", "max_units": 1, "max_units": 2, "expires_at_ms": 1})");
  r = run(approve + g_dir + "/dup.json");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("dup.json: duplicate key at $.max_units"), std::string::npos) << r.err;
  r = run("call " + kSeed + " --export approve --args '[{\"a\": [0, {\"b\": 1, \"b\": 2}]}]'");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--args: duplicate key at $[0].a[1].b"), std::string::npos) << r.err;
  write(g_dir + "/dupgrants.json", R"({"capabilities": {"clock": {}, "clock": {}}})");
  r = run(approve + i + " --grants " + g_dir + "/dupgrants.json");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("duplicate key at $.capabilities.clock"), std::string::npos) << r.err;
}

namespace {

// WAT text -> a module file, with wabt's wat2wasm (extra: its feature flags).
std::string wat_file(const std::string& name, const std::string& text, const std::string& extra = "") {
  write(g_dir + "/" + name + ".wat", text);
  const std::string out = g_dir + "/" + name + ".wasm";
  const std::string cmd = std::string(WAT2WASM) + " " + extra + " '" + g_dir + "/" + name + ".wat' -o '" + out + "' 2>&1";
  EXPECT_EQ(sh(cmd + "; echo rc=$?"), "rc=0\n") << name;
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// Issue 10, Output: a contract's log lines cannot pass for Covenant's own output:
// each is one line, escaped, prefixed with the contract's name and the level.
TEST_F(CliStrict, GuestOutputIsInert) {
  // "ok", a new line mimicking call's own "result:" line, a terminal escape (clear
  // screen), a right-to-left override (U+202E) and a backslash.
  const std::string wasm = wat_file("forge", R"wat((module
  (import "covenant:host/log@0.1.0" "write" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "ok\0aresult: FORGED\1b[2J\e2\80\aeevil\\")
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
  (func (export "run") (result i32)
    (call $log (i32.const 1) (i32.const 16) (i32.const 29))
    (i32.const 7)))
)wat");
  write(g_dir + "/forge.wit", "package test:forge@0.1.0;\n\nworld forge {\n  import covenant:host/log@0.1.0;\n"
                              "  export run: func() -> u32;\n}\n");
  write(g_dir + "/g.json", R"({"capabilities": {"log": {"level": "info"}}})");
  const std::string call = "call " + wasm + " --wit forge.wit --grants g.json --export run --args '[]' --tier interp";
  const std::string escaped = "ok\\nresult: FORGED\\x1b[2J\\u{202e}evil\\\\";
  Outcome r = run(call);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("result: 7\nfuel used: ", 0), 0u) << r.out;
  EXPECT_NE(r.err.find("guest forge.wasm: log info: " + escaped + "\n"), std::string::npos) << r.err;
  for (const std::string* text : {&r.out, &r.err}) {
    EXPECT_EQ(text->find("\nresult: FORGED"), std::string::npos) << *text;
    EXPECT_EQ(text->rfind("result: FORGED", 0), std::string::npos) << *text;
    EXPECT_EQ(text->find('\x1b'), std::string::npos) << *text;
    EXPECT_EQ(text->find("\xe2\x80\xae"), std::string::npos) << *text;
  }
  // Every stderr line is Covenant's or a prefixed guest line.
  std::istringstream lines(r.err);
  for (std::string line; std::getline(lines, line);)
    EXPECT_TRUE(line.rfind("guest forge.wasm: ", 0) == 0 || line.rfind("covenant", 0) == 0 ||
                line.rfind("warning: ", 0) == 0)
        << line;
  r = run(call + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  json j = json::parse(r.out);
  EXPECT_EQ(j["result"], 7);
  ASSERT_EQ(j["logs"].size(), 1u) << r.out;
  EXPECT_EQ(j["logs"][0], (json{{"contract", "forge.wasm"}, {"level", "info"}, {"message", escaped}})) << r.out;
  EXPECT_NE(r.err.find("guest forge.wasm: log info: " + escaped + "\n"), std::string::npos) << r.err;
}

// Issue 9 item 3: validate gives the engine's verdict; run tells "the engine refused
// the module" (1) from "no such function" (3).
TEST_F(CliStrict, ValidateAndRunExitThree) {
  Outcome r = run("validate " + kSeed);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, kSeed + ": valid (0 imports, 3 exported functions)\n");
  r = run("validate " + kSeed + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["valid"], true);
  EXPECT_EQ(j["exports"][1]["name"], "agent:settlement/policy@0.1.0#approve") << r.out;
  // A component: its core module, the engine's verdict.
  const std::string component = std::string(COVENANT_BINARY_DIR) + "/contracts/components/policy_c.component.wasm";
  r = run("validate " + component);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(": valid component ("), std::string::npos) << r.out;
  write(g_dir + "/bad.wasm", "not wasm");
  r = run("validate bad.wasm");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("covenant validate: bad.wasm: invalid: "), std::string::npos) << r.err;
  r = run("validate bad.wasm --json");
  EXPECT_EQ(r.code, 1);
  j = json::parse(r.out);
  EXPECT_EQ(j["valid"], false);
  EXPECT_EQ(j["error"]["code"], "invalid");
  // Outside the deterministic profile (threads): well-formed Wasm the engine
  // refuses. validate and run agree, and run says 1, not 3.
  const std::string shared = wat_file("shared", "(module (memory 1 1 shared) (func (export \"f\")))", "--enable-threads");
  r = run("validate " + shared);
  EXPECT_EQ(r.code, 1) << r.out;
  const std::string reason = r.err.substr(r.err.find("invalid: ") + 9);
  r = run("run " + shared + " f --tier interp");
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find(reason.substr(0, reason.find('\n'))), std::string::npos) << r.err << "\nvs " << reason;
  // A valid module without the export, or with arguments that do not fit: 3.
  r = run("run " + kSeed + " approve --json");
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(json::parse(r.out)["error"]["code"], "no_such_export") << r.out;
  r = run("run " + kSeed + " cabi_realloc 1 2 3 --json");
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(json::parse(r.out)["error"]["code"], "bad_arguments") << r.out;
  EXPECT_NE(r.err.find("takes 4 arguments; got 3"), std::string::npos) << r.err;
  r = run("run " + kSeed + " cabi_realloc 1 2 3 4.5");
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("is not a valid i32"), std::string::npos) << r.err;
}

// Issue 9 item 7: a one-shot call runs on the optimized tier only when its artifact
// is cached (else baseline, and says so in text mode); the JSON names the tier.
TEST_F(CliStrict, OneShotTierFollowsTheCache) {
  const std::string env = "COVENANT_CACHE_DIR='" + g_dir + "/cache'";
  const std::string i = intent("i.json");
  Outcome r = run("approve " + kSeed + " --intent " + i, env);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("covenant: tier baseline (no optimized artifact cached: `covenant compile " + kSeed +
                       "` builds it; --tier picks one)"),
            std::string::npos)
      << r.err;
  r = run("approve " + kSeed + " --intent " + i + " --json", env);
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["tier"], "baseline");
  EXPECT_EQ(j["cache_hit"], false);
  EXPECT_EQ(r.err.find("tier"), std::string::npos) << "JSON mode: nothing on stderr about it\n" << r.err;
  EXPECT_FALSE(std::filesystem::exists(g_dir + "/cache") && !std::filesystem::is_empty(g_dir + "/cache"))
      << "a one-shot baseline call compiles nothing into the cache";
  ASSERT_EQ(run("compile " + kSeed, env).code, 0);
  r = run("approve " + kSeed + " --intent " + i, env);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("covenant: tier optimized (its optimized artifact is cached; --tier picks one)"), std::string::npos)
      << r.err;
  const std::string args = " --export approve --args '[{\"agent_id\": \"a\", \"task_type\": \"compute\", \"max_units\": 1, "
                           "\"expires_at_ms\": 4102444800000}]' --json";
  for (const std::string& c : {"approve " + kSeed + " --intent " + i + " --json", "call " + kSeed + args}) {
    r = run(c, env);
    ASSERT_EQ(r.code, 0) << c << "\n" << r.err;
    j = json::parse(r.out);
    EXPECT_EQ(j["tier"], "optimized") << c;
    EXPECT_EQ(j["cache_hit"], true) << c;
  }
  // --tier wins, and nothing is said about it.
  r = run("call " + kSeed + args + " --tier interp", env);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["tier"], "interp");
  r = run("approve " + kSeed + " --intent " + i + " --tier interp", env);
  EXPECT_EQ(r.err.find("covenant: tier"), std::string::npos) << r.err;
}

// Issue 9 item 5: call and approve stop a runaway guest at a wall-clock deadline,
// 10 s unless --deadline-ms says otherwise (0 = none).
TEST_F(CliStrict, OneShotCallsHaveADefaultDeadline) {
  const std::string wasm = wat_file("spin", R"wat((module
  (memory (export "memory") 1)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
  (func (export "spin") (loop (br 0))))
)wat");
  write(g_dir + "/spin.wit", "package test:spin@0.1.0;\n\nworld spin {\n  export spin: func();\n}\n");
  // Fuel for hours on the interpreter: only the deadline can stop it.
  const std::string call = "call " + wasm + " --wit spin.wit --export spin --args '[]' --tier interp --fuel 1000000000000 --json";
  auto t0 = std::chrono::steady_clock::now();
  Outcome r = run(call + " --deadline-ms 300");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(json::parse(r.out)["trap"]["kind"], "deadline") << r.out;
  EXPECT_LT(seconds_since(t0), 8.0);
  t0 = std::chrono::steady_clock::now();
  r = run(call);
  const double took = seconds_since(t0);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(json::parse(r.out)["trap"]["kind"], "deadline") << r.out;
  EXPECT_GE(took, 9.5);
  EXPECT_LT(took, 60.0);
  r = run("call --help");
  EXPECT_NE(r.out.find("--deadline-ms"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("=10000"), std::string::npos) << r.out;
}

// Issue 10, Error details: a JSON error path is the parameter name and the field
// names as the WIT spells them, whatever spelling the JSON used.
TEST_F(CliStrict, JsonErrorPathsUseTheWitSpelling) {
  const std::string wasm = wat_file("shop", R"wat((module
  (memory (export "memory") 1)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
  (func (export "test:paths/shop@0.1.0#place") (param i32 i32 i32 i32) (result i32) (i32.const 0)))
)wat");
  write(g_dir + "/shop.wit", "package test:paths@0.1.0;\n\ninterface shop {\n"
                             "  record item { unit_price: u64, label: string }\n"
                             "  record order { buyer-id: string, line_items: list<item> }\n"
                             "  place: func(the_order: order) -> u32;\n}\n\nworld paths {\n  export shop;\n}\n");
  const std::string call = "call " + wasm + " --wit shop.wit --export shop.place --tier interp --args ";
  Outcome r = run(call + R"('[{"buyer-id": "b", "line_items": [{"unit_price": 1, "label": "a"}, {"unit-price": "x", "label": "b"}]}]')");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("the_order.line_items[1].unit_price: expected u64, got \"x\""), std::string::npos) << r.err;
  r = run(call + R"('{"the_order": {"buyer_id": 5, "line_items": []}}')");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("the_order.buyer-id: expected string"), std::string::npos) << r.err;
  r = run(call + R"('[{"buyer-id": "b", "line-items": [{"label": "a"}]}]')");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("the_order.line_items[0].unit_price: missing field (expected u64)"), std::string::npos) << r.err;
  r = run(call + R"('[{"buyer-id": "b", "line_items": []}]')");
  EXPECT_EQ(r.code, 0) << r.err;
  // The seed: tests/wit/seed.wit spells max_units; the built-in seed world (approve
  // without --wit) spells max-units.
  write(g_dir + "/ten.json", R"({"agent_id": "a", "task_type": "compute", "max_units": "ten", "expires_at_ms": 1})");
  r = run("approve " + kSeed + " --tier interp --intent ten.json --wit " + std::string(COVENANT_SOURCE_DIR) +
          "/tests/wit/seed.wit");
  EXPECT_NE(r.err.find("i.max_units: expected u64, got \"ten\""), std::string::npos) << r.err;
  r = run("approve " + kSeed + " --tier interp --intent ten.json");
  EXPECT_NE(r.err.find("i.max-units: expected u64, got \"ten\""), std::string::npos) << r.err;
}

// Issue 10, items 6 and 9: an expired intent is refused before anything is held;
// an approve load error names the file; a receipt id given as a hold id is named.
TEST_F(CliStrict, ExpiredIntentLoadErrorAndHoldIdHints) {
  write(g_dir + "/old.json", R"({"agent_id": "agent-7", "task_type": "compute", "max_units": 5, "expires_at_ms": 1767225600000})");
  const std::string L = " --ledger " + g_dir + "/l.db --keys-dir " + g_dir + "/keys";
  Outcome r = run("approve " + kSeed + " --intent old.json --tier interp" + L);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("intent expired: expires-at-ms 1767225600000 is before now"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nothing was run, signed or held"), std::string::npos) << r.err;
  r = run("ledger balance --agent agent-7 --ledger " + g_dir + "/l.db");
  EXPECT_EQ(r.code, 1) << "no account, no hold: " << r.out;
  r = run("log verify --ledger " + g_dir + "/l.db --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["tree_size"], 0) << "no receipt";
  // A module that does not load: the error names the file.
  write(g_dir + "/broken.wasm", std::string("\0asm\x01\0\0\0\x01", 9));
  r = run("approve " + g_dir + "/broken.wasm --intent " + intent("i.json") + " --tier interp");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find(g_dir + "/broken.wasm: "), std::string::npos) << r.err;
  // settle release of a receipt id says what a hold id is, and which one it means.
  r = run("approve " + kSeed + " --intent " + intent("i.json") + " --tier interp --json" + L);
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string receipt_id = json::parse(r.out)["receipt_id"];
  r = run("settle release " + receipt_id + " --ledger " + g_dir + "/l.db");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("a hold id is 32 hex digits, the hold_id that approve --ledger prints; this is a receipt id, "
                       "whose hold (if its decision made one) is " + receipt_id.substr(0, 32)),
            std::string::npos)
      << r.err;
}

// Issue 10 item 6: a release or refund of a hold past its timeout says what to do.
TEST_F(CliStrict, ExpiredHoldPointsAtLedgerExpire) {
  const std::string L = " --ledger " + g_dir + "/l.db";
  const std::string hold = std::string(31, '0') + "a";
  ASSERT_EQ(run("ledger init" + L).code, 0);
  ASSERT_EQ(run("ledger account create 1" + L).code, 0);
  ASSERT_EQ(run("ledger account create 2" + L).code, 0);
  Outcome r = run("ledger hold " + hold + " --from 1 --to 2 --amount 5 --timeout 1" + L);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  for (const char* verb : {"release", "refund"}) {
    r = run(std::string("settle ") + verb + " " + hold + L);
    EXPECT_EQ(r.code, 1) << verb;
    EXPECT_NE(r.out.find("pending_transfer_expired"), std::string::npos) << r.out;
    EXPECT_NE(r.err.find("the hold timed out; `covenant ledger expire --ledger " + g_dir + "/l.db`"), std::string::npos)
        << verb << ": " << r.err;
  }
  r = run("settle release " + hold + L + " --json");
  EXPECT_NE(json::parse(r.out)["error"]["message"].get<std::string>().find("covenant ledger expire"), std::string::npos)
      << r.out;
  EXPECT_EQ(run("ledger expire" + L).code, 0);
}
