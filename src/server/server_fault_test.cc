// Fault tests of `covenant serve`: the real binary as a child process (helpers in
// server_test_util.h), driven over HTTP on 127.0.0.1 while its environment fails.
//
//   PostgresDownUnderLoad     a private PostgreSQL cluster (initdb into a temp dir, its
//                             own socket dir and port) is stopped under load and started
//                             again: 503 ledger_unavailable + Retry-After while it is
//                             down, the server stays up and recovers without a restart,
//                             every acknowledged receipt is there, `ledger verify` is ok.
//   FullDisk                  the data directory on a 6 MiB tmpfs fills up: 5xx JSON
//                             errors, no crash; space freed, approvals succeed again.
//                             Needs mount(2) (root); skipped when it is refused.
//   RateLimitAndTraceparent   per-tenant token bucket (429 rate_limited + Retry-After,
//                             other tenants unaffected); a W3C traceparent's trace id
//                             is the receipt's.
//   MetricsAndLogs            /metrics without auth has the HTTP and stage metrics; one
//                             JSON access-log line per request on stderr.
//   SlowClientsMemoryBounded  200 connections stalled mid-header are closed after
//                             read_timeout_ms, a normal client is served meanwhile, RSS
//                             does not grow without bound.
//
// Every test is bounded in time and in requests; no test judges speed beyond
// generous timeouts. Only PIDs this test started are ever signalled.
//
// Compile definitions: COVENANT_CLI (build/covenant), COVENANT_SOURCE_DIR,
// COVENANT_BINARY_DIR, HOST_TESTDATA_DIR.
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "covenant/keys.h"
#include "covenant/merkle.h"
#include "covenant/receipt.h"
#include "server/server_test_util.h"

namespace {

using namespace covenant::server_test;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double secs_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// VmRSS of a process in KiB (0 when unreadable).
uint64_t rss_kib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

bool alive(pid_t pid) { return pid > 0 && ::kill(pid, 0) == 0; }

// Runs a shell command, its output appended to log_path; returns the exit code (-1: signal).
int sh(const std::string& cmd, const std::string& log_path) {
  const std::string full = "(" + cmd + ") >>'" + log_path + "' 2>&1";
  const int st = std::system(full.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// ---------------------------------------------------------------------------
// A private PostgreSQL cluster, the way scripts/pg.sh makes one: initdb into a
// temp dir, listening only on a unix socket in that dir (listen_addresses=''),
// on its own port number; as root its processes run as the postgres user.

class PrivatePg {
 public:
  ~PrivatePg() { destroy(); }

  // Empty on success, else why not.
  std::string create() {
    bin_ = "/usr/lib/postgresql/15/bin";
    if (!std::filesystem::exists(bin_ + "/pg_ctl")) {
      std::string found;
      for (auto& e : std::filesystem::directory_iterator("/usr/lib/postgresql", std::filesystem::directory_options::skip_permission_denied))
        if (std::filesystem::exists(e.path() / "bin/pg_ctl")) found = (e.path() / "bin").string();
      if (found.empty()) return "PostgreSQL server binaries not found under /usr/lib/postgresql";
      bin_ = found;
    }
    char tmpl[] = "/tmp/cvfpg-XXXXXX";  // short: the socket path must fit in sun_path
    if (!::mkdtemp(tmpl)) return std::string("mkdtemp: ") + std::strerror(errno);
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0700);
    if (::getuid() == 0) {
      const passwd* pw = ::getpwnam("postgres");
      if (!pw) return "running as root but there is no postgres user (initdb refuses root)";
      if (::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) return std::string("chown: ") + std::strerror(errno);
      as_owner_ = "runuser -u postgres -- ";
      owner_ = "postgres";
    } else {
      owner_ = ::getpwuid(::getuid()) ? ::getpwuid(::getuid())->pw_name : "postgres";
    }
    // A port number of its own (it names the socket file; nothing listens on TCP).
    port_ = 20000 + static_cast<int>(::getpid() % 20000);
    log_ = dir_ + "/commands.log";
    if (sh(as_owner_ + "'" + bin_ + "/initdb' -D '" + dir_ + "/data' -U " + owner_ +
               " -A trust -E UTF8 --no-sync --no-instructions",
           log_) != 0)
      return "initdb failed:\n" + read_file(log_);
    if (!start()) return "pg_ctl start failed:\n" + read_file(log_) + read_file(dir_ + "/server.log");
    if (sh(as_owner_ + "'" + bin_ + "/createdb' -h '" + dir_ + "' -p " + std::to_string(port_) + " -U " + owner_ +
               " covenant",
           log_) != 0)
      return "createdb failed:\n" + read_file(log_);
    return "";
  }

  bool start() {
    return sh(as_owner_ + "'" + bin_ + "/pg_ctl' -D '" + dir_ + "/data' -l '" + dir_ + "/server.log' -w -t 30 -o \"" +
                  "-c listen_addresses='' -k '" + dir_ + "' -p " + std::to_string(port_) +
                  " -c fsync=on -c synchronous_commit=on -c max_connections=100\" start",
              log_) == 0;
  }

  // Fast shutdown: sessions are terminated, open transactions aborted.
  bool stop_fast() {
    return sh(as_owner_ + "'" + bin_ + "/pg_ctl' -D '" + dir_ + "/data' -m fast -w -t 30 stop", log_) == 0;
  }

  void destroy() {
    if (dir_.empty()) return;
    if (std::filesystem::exists(dir_ + "/data/postmaster.pid"))
      sh(as_owner_ + "'" + bin_ + "/pg_ctl' -D '" + dir_ + "/data' -m immediate -w -t 30 stop", log_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    dir_.clear();
  }

  std::string url() const {
    return "postgresql:///covenant?host=" + dir_ + "&port=" + std::to_string(port_) + "&user=" + owner_;
  }
  std::string server_log() const { return tail(read_file(dir_ + "/server.log"), 20); }

 private:
  std::string bin_, dir_, owner_, as_owner_, log_;
  int port_ = 0;
};

// ---------------------------------------------------------------------------

class ServerFaultTest : public ::testing::Test, public ServerHarness {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->name());
    for (char& c : name)
      if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    dir_ = ::testing::TempDir() + "/covenant_server_fault_test_" + std::to_string(::getpid()) + "_" + name;
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    for (const std::string& f : {kPolicyC})
      ASSERT_TRUE(std::filesystem::exists(f)) << f << " is missing: build the example contracts first";
    ASSERT_TRUE(std::filesystem::exists(COVENANT_CLI)) << COVENANT_CLI << " is missing";
  }

  void TearDown() override {
    kill_servers();
    if (!mounted_.empty()) {
      if (::umount2(mounted_.c_str(), 0) != 0) ::umount2(mounted_.c_str(), MNT_DETACH);
      mounted_.clear();
    }
    pg_.reset();
    if (!HasFailure())
      std::filesystem::remove_all(dir_);
    else if (!dir_.empty())
      std::fprintf(stderr, "[server_fault_test] kept %s for inspection\n", dir_.c_str());
  }

  std::vector<std::string> ledger_flags(const std::string& data) const override {
    if (!ledger_args_.empty()) return ledger_args_;
    return ServerHarness::ledger_flags(data);
  }

  std::string write_config(const json& c) {
    const std::string path = dir_ + "/config.json";
    std::ofstream(path) << c.dump() << "\n";
    return path;
  }

  // Checks that s is a JSON error {"error": {"code", "message"}}.
  static ::testing::AssertionResult is_json_error(const Response& r) {
    json j = r.j();
    if (!j.is_object() || !j.contains("error") || !j["error"].is_object() || !j["error"].contains("code") ||
        !j["error"]["code"].is_string() || !j["error"].contains("message"))
      return ::testing::AssertionFailure() << "not a JSON error: " << r.describe();
    return ::testing::AssertionSuccess();
  }

  std::vector<std::string> ledger_args_;
  std::string mounted_;
  std::unique_ptr<PrivatePg> pg_;
};

// What one approval got.
struct Seen {
  int status = 0;
  std::string code, retry_after, receipt_id, error;
  int phase_sent = 0, phase_done = 0;
  double secs = 0;
  std::string body;
};

// ---------------------------------------------------------------------------
// 1. PostgreSQL stops under load and comes back.

TEST_F(ServerFaultTest, PostgresDownUnderLoad) {
  pg_ = std::make_unique<PrivatePg>();
  const std::string why = pg_->create();
  ASSERT_EQ(why, "") << "the private PostgreSQL cluster did not start";
  const std::string url = pg_->url();
  ledger_args_ = {"--ledger", url, "--pg-schema", "s1"};
  Server& s = add_server("data", ledger_args_);
  ASSERT_TRUE(start(s));
  TenantKeys k = tenant_keys(s, "acme");
  deploy(s, k.deployer, "policy", kPolicyC);

  // Phases: 0 PostgreSQL up, 1 stopping, 2 down (stop returned), 3 starting, 4 up again (start returned).
  std::atomic<int> phase{0};
  std::atomic<bool> stop_flag{false};
  std::atomic<int> acks{0}, acks_after{0};
  std::mutex mu;
  std::vector<Seen> seen;
  constexpr int kClientTimeoutS = 15;
  constexpr int kMaxPerThread = 4000;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Conn conn(s.port, kClientTimeoutS);
      for (int i = 0; i < kMaxPerThread && !stop_flag; ++i) {
        Seen x;
        x.phase_sent = phase.load();
        const auto t0 = Clock::now();
        Response r = conn.request("POST", "/v1/contracts/policy/approve", seed_intent("agent-pg" + std::to_string(t)),
                                  auth(k.caller));
        x.secs = secs_since(t0);
        x.phase_done = phase.load();
        x.status = r.status;
        x.code = r.code();
        x.retry_after = r.header("retry-after");
        x.error = r.error;
        if (r.status == 200) {
          x.receipt_id = r.j().value("receipt_id", "");
          acks++;
          if (x.phase_sent == 4) acks_after++;
        } else {
          x.body = r.describe();
        }
        {
          std::lock_guard<std::mutex> lock(mu);
          seen.push_back(std::move(x));
        }
        if (r.status != 200) std::this_thread::sleep_for(10ms);  // bounded request count while down
      }
    });
  }
  auto join_all = [&] {
    stop_flag = true;
    for (auto& th : threads)
      if (th.joinable()) th.join();
  };

  auto until = Clock::now() + 60s;
  while (acks < 100 && Clock::now() < until) std::this_thread::sleep_for(5ms);
  if (acks < 100) {
    join_all();
    FAIL() << "only " << acks.load() << " approvals before the fault" << log_of(s);
  }
  const int acks_before = acks.load();

  phase = 1;
  const bool stopped = pg_->stop_fast();
  phase = 2;
  if (!stopped) {
    join_all();
    FAIL() << "pg_ctl stop failed: " << pg_->server_log();
  }
  // Down for 4 s: longer than the server's 2 s API key cache, so authentication hits the ledger too.
  const auto down_at = Clock::now();
  int health_down = 0, health_checks = 0;
  while (Clock::now() - down_at < 4s) {
    Response h = fresh_request(s.port, "GET", "/healthz");
    health_checks++;
    if (h.status == 200) health_down++;
    std::this_thread::sleep_for(250ms);
  }
  const bool alive_down = alive(s.pid);

  phase = 3;
  const bool restarted = pg_->start();
  phase = 4;
  const auto up_at = Clock::now();
  if (!restarted) {
    join_all();
    FAIL() << "pg_ctl start failed: " << pg_->server_log();
  }
  until = Clock::now() + 20s;
  while (acks_after < 50 && Clock::now() < until) std::this_thread::sleep_for(10ms);
  const double recover_window = secs_since(up_at);
  join_all();

  EXPECT_TRUE(alive_down) << "the server died while PostgreSQL was down" << log_of(s);
  EXPECT_EQ(health_down, health_checks) << "GET /healthz failed while PostgreSQL was down" << log_of(s);

  // Classify.
  std::vector<std::string> acked;
  std::map<std::string, int> down_by;  // "status code retry-after?" while down
  size_t down_total = 0, bad = 0, transport = 0;
  double max_secs = 0;
  for (const Seen& x : seen) {
    max_secs = std::max(max_secs, x.secs);
    if (x.status == 200) acked.push_back(x.receipt_id);
    if (x.status == 0) {
      if (++transport <= 5) ADD_FAILURE() << "transport error (phase " << x.phase_sent << "->" << x.phase_done
                                           << ", " << x.secs << " s): " << x.error;
      continue;
    }
    if (x.status != 200) {
      // Any failure: a 503 JSON error ledger_unavailable with Retry-After.
      const bool good = x.status == 503 && x.code == "ledger_unavailable" && !x.retry_after.empty();
      if (!good && ++bad <= 8)
        ADD_FAILURE() << "phase " << x.phase_sent << "->" << x.phase_done << ": want 503 ledger_unavailable with "
                      << "Retry-After, got retry-after='" << x.retry_after << "' " << x.body;
    }
    if (x.phase_sent == 2 && x.phase_done == 2) {
      down_total++;
      down_by[std::to_string(x.status) + " " + x.code + (x.retry_after.empty() ? " (no Retry-After)" : "")]++;
      EXPECT_NE(x.status, 200) << "an approval was acknowledged while PostgreSQL was down";
    }
  }
  // Recovery without a server restart: 50 approvals sent after PostgreSQL was back succeeded.
  EXPECT_GE(acks_after.load(), 50) << "approvals did not recover within " << recover_window
                                   << " s of PostgreSQL's restart (no server restart)" << log_of(s);
  std::string summary;
  for (auto& [what, n] : down_by) summary += "\n    " + std::to_string(n) + " x " + what;
  std::fprintf(stderr,
               "[server_fault_test] PostgresDownUnderLoad: %zu requests, %d acked before the stop, %zu acked in all, "
               "%zu answered while down:%s\n  recovered %d acks within %.2f s of the restart; slowest request %.2f s; "
               "healthz %d/%d while down\n",
               seen.size(), acks_before, acked.size(), down_total, summary.c_str(), acks_after.load(),
               recover_window, max_secs, health_down, health_checks);
  EXPECT_GT(down_total, 0u) << "no request was answered while PostgreSQL was down";
  EXPECT_EQ(bad, 0u) << log_of(s);
  EXPECT_EQ(transport, 0u) << log_of(s);
  EXPECT_LT(max_secs, kClientTimeoutS) << "a request hung";

  // The server is the same process, still serving.
  EXPECT_TRUE(alive(s.pid));
  EXPECT_EQ(fresh_request(s.port, "GET", "/healthz").status, 200);
  // Every acknowledged receipt is retrievable.
  {
    Conn conn(s.port);
    size_t missing = 0;
    for (const std::string& id : acked) {
      Response r = conn.request("GET", "/v1/receipts/" + id, "", auth(k.auditor));
      if (r.status != 200) {
        if (++missing <= 5) ADD_FAILURE() << "acknowledged receipt " << id << " -> " << r.describe();
        continue;
      }
      EXPECT_EQ(covenant::receipt_id_hex(as_bytes(r.body)), id);
    }
    EXPECT_EQ(missing, 0u) << "of " << acked.size() << " acknowledged receipts" << log_of(s);
  }
  auto st = stop(s);
  ASSERT_TRUE(st.has_value()) << "no exit after SIGTERM" << log_of(s);
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << "status " << *st << log_of(s);
  RunResult v = ledger_verify(s);
  EXPECT_EQ(v.code, 0) << v.out << v.err;
  json vj = json::parse(v.out, nullptr, false);
  ASSERT_TRUE(vj.is_object()) << v.out << v.err;
  EXPECT_EQ(vj.value("ok", false), true) << v.out;
}

// ---------------------------------------------------------------------------
// 2. The data directory's disk fills up, then space comes back.

TEST_F(ServerFaultTest, FullDisk) {
  const std::string disk = dir_ + "/disk";
  std::filesystem::create_directories(disk);
  if (::mount("tmpfs", disk.c_str(), "tmpfs", 0, "size=6m") != 0) {
    const int e = errno;
    if (e == EPERM || e == EACCES) GTEST_SKIP() << "cannot mount a tmpfs (" << std::strerror(e) << "): needs root";
    FAIL() << "mount tmpfs on " << disk << ": " << std::strerror(e);
  }
  mounted_ = disk;
  // 2 MiB of filler, deleted later to free space.
  const std::string filler = disk + "/filler";
  {
    std::ofstream f(filler, std::ios::binary);
    std::string mib(1 << 20, 'f');
    f << mib << mib;
    f.flush();
    ASSERT_TRUE(f.good()) << "writing the filler file";
  }
  Server& s = add_server("data");
  s.data = disk + "/data";  // on the tmpfs; the server log stays outside it
  s.args = {"serve", "--listen", "127.0.0.1:0", "--data", s.data};
  ASSERT_TRUE(start(s));
  TenantKeys k = tenant_keys(s, "acme");
  deploy(s, k.deployer, "policy", kPolicyC);

  std::mutex mu;
  std::vector<Seen> seen;
  std::vector<std::string> acked;
  std::atomic<int> failures{0};
  std::atomic<bool> stop_flag{false};
  constexpr int kMaxPerThread = 20000;
  const auto t_fill = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Conn conn(s.port, 15);
      for (int i = 0; i < kMaxPerThread && !stop_flag; ++i) {
        if (secs_since(t_fill) > 180) break;
        Response r = conn.request("POST", "/v1/contracts/policy/approve", seed_intent("agent-disk" + std::to_string(t)),
                                  auth(k.caller));
        Seen x;
        x.status = r.status;
        x.code = r.code();
        x.retry_after = r.header("retry-after");
        x.error = r.error;
        x.body = r.body.substr(0, 600);
        std::lock_guard<std::mutex> lock(mu);
        if (r.status == 200) {
          acked.push_back(r.j().value("receipt_id", ""));
        } else {
          // After the disk is full: another 40 answers in all, then stop.
          if (++failures >= 40) stop_flag = true;
        }
        seen.push_back(std::move(x));
        if (r.status == 0) break;
      }
    });
  }
  for (auto& th : threads) th.join();
  const double fill_s = secs_since(t_fill);
  // What filled the disk (for the record).
  std::string usage;
  {
    std::map<std::string, uintmax_t> sizes;
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(disk, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file()) continue;
      std::string rel = std::filesystem::relative(it->path(), disk).string();
      const size_t slash = rel.find('/', rel.find('/') + 1);
      if (rel.rfind("data/", 0) == 0 && slash != std::string::npos) rel = rel.substr(0, slash) + "/*";
      sizes[rel] += it->file_size();
    }
    for (auto& [f, n] : sizes) usage += " " + f + "=" + std::to_string(n / 1024) + "K";
  }
  ASSERT_GT(failures.load(), 0) << "the disk never filled (" << seen.size() << " approvals in " << fill_s << " s)"
                                << log_of(s);
  size_t bad = 0;
  std::map<std::string, int> by;
  std::string example;
  for (const Seen& x : seen) {
    if (x.status == 200) continue;
    Response r;
    r.status = x.status;
    r.body = x.body;
    const json ej = r.j();
    std::string msg;
    if (ej.is_object() && ej.contains("error") && ej["error"].is_object()) msg = lower(ej["error"].value("message", ""));
    by[std::to_string(x.status) + " " + x.code]++;
    if (example.empty()) example = x.body;
    const bool good =
        is_json_error(r) &&
        ((x.status == 503 && x.code == "ledger_unavailable") ||
         (x.status == 500 && (msg.find("disk") != std::string::npos || msg.find("full") != std::string::npos)));
    if (!good && ++bad <= 8) ADD_FAILURE() << "while the disk was full: " << r.describe() << " " << x.error;
  }
  std::string summary;
  for (auto& [what, n] : by) summary += "\n    " + std::to_string(n) + " x " + what;
  std::fprintf(stderr,
               "[server_fault_test] FullDisk: %zu approvals acked in %.2f s before the disk filled; failures:%s\n"
               "  e.g. %s\n  on the tmpfs when full:%s\n",
               acked.size(), fill_s, summary.c_str(), example.c_str(), usage.c_str());
  EXPECT_EQ(bad, 0u) << log_of(s);
  EXPECT_TRUE(alive(s.pid)) << "the server died when the disk filled" << log_of(s);
  EXPECT_EQ(fresh_request(s.port, "GET", "/healthz").status, 200) << log_of(s);

  // Free space: approvals succeed again without a restart.
  ASSERT_TRUE(std::filesystem::remove(filler));
  {
    Conn conn(s.port, 15);
    const auto t0 = Clock::now();
    int ok = 0, tries = 0;
    Response last;
    while (ok < 20 && secs_since(t0) < 20 && tries < 2000) {
      tries++;
      last = conn.request("POST", "/v1/contracts/policy/approve", seed_intent("agent-freed"), auth(k.caller));
      if (last.status == 200) {
        ok++;
        acked.push_back(last.j().value("receipt_id", ""));
      } else {
        ok = 0;  // 20 in a row
        std::this_thread::sleep_for(50ms);
      }
    }
    std::fprintf(stderr, "[server_fault_test] FullDisk: after freeing 2 MiB, %d approvals in a row after %d tries (%.2f s)\n",
                 ok, tries, secs_since(t0));
    EXPECT_EQ(ok, 20) << "approvals did not succeed again after space was freed (the server was not restarted); last: "
                      << last.describe() << log_of(s);
  }
  // Every acknowledged receipt is there.
  {
    Conn conn(s.port);
    size_t missing = 0;
    for (const std::string& id : acked) {
      Response r = conn.request("GET", "/v1/receipts/" + id, "", auth(k.auditor));
      if (r.status != 200) {
        if (++missing <= 5) ADD_FAILURE() << "acknowledged receipt " << id << " -> " << r.describe();
        continue;
      }
      EXPECT_EQ(covenant::receipt_id_hex(as_bytes(r.body)), id);
    }
    EXPECT_EQ(missing, 0u) << "of " << acked.size() << " acknowledged receipts" << log_of(s);
  }
  auto st = stop(s);
  ASSERT_TRUE(st.has_value()) << "no exit after SIGTERM" << log_of(s);
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << "status " << *st << log_of(s);
  expect_ledger_clean(s);
  // And it starts again on that data directory, no repair needed.
  ASSERT_TRUE(start(s));
  Response again = fresh_request(s.port, "POST", "/v1/contracts/policy/approve", seed_intent(), auth(k.caller));
  EXPECT_EQ(again.status, 200) << again.describe() << log_of(s);
  auto st2 = stop(s);
  ASSERT_TRUE(st2.has_value()) << log_of(s);
  EXPECT_TRUE(WIFEXITED(*st2) && WEXITSTATUS(*st2) == 0) << *st2 << log_of(s);
  expect_ledger_clean(s);
}

// ---------------------------------------------------------------------------
// 3. Per-tenant rate limit; the traceparent's trace id ends up in the receipt.

TEST_F(ServerFaultTest, RateLimitAndTraceparent) {
  const std::string config = write_config({{"tenant_rate_per_s", 5}, {"tenant_burst", 5}});
  Server& s = add_server("data", {"--config", config});
  ASSERT_TRUE(start(s));
  // Setup requests spend tokens too (one bucket per tenant, the system admin's included):
  // pace them.
  TenantKeys a = tenant_keys(s, "acme");
  std::this_thread::sleep_for(1200ms);
  TenantKeys b = tenant_keys(s, "beta");
  std::this_thread::sleep_for(1200ms);
  deploy(s, a.deployer, "policy", kPolicyC);
  deploy(s, b.deployer, "policy", kPolicyC);
  std::this_thread::sleep_for(1500ms);  // both buckets full again

  Conn conn(s.port);
  int ok = 0, limited = 0, other = 0;
  for (int i = 0; i < 20; ++i) {
    Response r = conn.request("POST", "/v1/contracts/policy/approve", seed_intent(), auth(a.caller));
    if (r.status == 200) {
      ok++;
    } else if (r.status == 429) {
      limited++;
      EXPECT_EQ(r.code(), "rate_limited") << r.describe();
      EXPECT_FALSE(r.header("retry-after").empty()) << "429 without Retry-After";
      EXPECT_TRUE(is_json_error(r));
    } else {
      other++;
      ADD_FAILURE() << r.describe();
    }
  }
  // The other tenant is unaffected: its bucket is full.
  int b_ok = 0;
  for (int i = 0; i < 3; ++i) {
    Response r = conn.request("POST", "/v1/contracts/policy/approve", seed_intent(), auth(b.caller));
    EXPECT_EQ(r.status, 200) << "tenant beta was limited by acme's traffic: " << r.describe();
    b_ok += r.status == 200;
  }
  std::fprintf(stderr, "[server_fault_test] RateLimit: acme 20 quick approvals: %d ok, %d limited; beta %d/3 ok\n", ok,
               limited, b_ok);
  EXPECT_GE(ok, 1);
  EXPECT_GE(limited, 1) << "no 429 from 20 quick requests at 5/s with a burst of 5";
  EXPECT_LE(ok, 10) << "the limit of 5/s (burst 5) let " << ok << " of 20 quick requests through";
  EXPECT_EQ(other, 0);

  // traceparent.
  std::this_thread::sleep_for(1200ms);
  const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  Response r = conn.request("POST", "/v1/contracts/policy/approve", seed_intent(),
                            auth(b.caller, {{"traceparent", "00-" + trace + "-00f067aa0ba902b7-01"}}));
  ASSERT_EQ(r.status, 200) << r.describe() << log_of(s);
  json j = r.j();
  EXPECT_EQ(j.value("trace_id", ""), trace) << r.body;
  std::vector<uint8_t> cose;
  ASSERT_TRUE(covenant::base64_decode(j.value("receipt", ""), &cose)) << r.body;
  auto rc = covenant::decode_receipt(cose);
  ASSERT_TRUE(rc.is_ok()) << rc.status().to_string();
  EXPECT_EQ(covenant::to_hex(rc->trace_id), trace);
  // The stored receipt too.
  Response g = conn.request("GET", "/v1/receipts/" + j.value("receipt_id", ""), "", auth(b.auditor));
  ASSERT_EQ(g.status, 200) << g.describe();
  auto rc2 = covenant::decode_receipt(as_bytes(g.body));
  ASSERT_TRUE(rc2.is_ok()) << rc2.status().to_string();
  EXPECT_EQ(covenant::to_hex(rc2->trace_id), trace);
  // Without a traceparent the trace id is random (not this one, not zero).
  std::this_thread::sleep_for(300ms);
  Response plain = conn.request("POST", "/v1/contracts/policy/approve", seed_intent(), auth(b.caller));
  ASSERT_EQ(plain.status, 200) << plain.describe();
  EXPECT_NE(plain.j().value("trace_id", ""), trace);
  EXPECT_NE(plain.j().value("trace_id", ""), std::string(32, '0'));
  // The access log line of the traced request names it.
  EXPECT_NE(read_file(s.log).find("\"traceparent\":\"00-" + trace), std::string::npos) << log_of(s);
}

// ---------------------------------------------------------------------------
// 4. /metrics and the access log.

TEST_F(ServerFaultTest, MetricsAndLogs) {
  Server& s = add_server("data");
  ASSERT_TRUE(start(s));
  TenantKeys k = tenant_keys(s, "acme");
  deploy(s, k.deployer, "policy", kPolicyC);

  // Access-log lines: JSON objects with a "route" on stderr.
  auto access_lines = [&] {
    std::vector<json> out;
    std::istringstream in(read_file(s.log));
    std::string line;
    while (std::getline(in, line)) {
      json j = json::parse(line, nullptr, false);
      if (j.is_object() && j.contains("route") && j.contains("status")) out.push_back(j);
    }
    return out;
  };
  // Settle: every request so far logged (a line is written once its response is sent).
  size_t before = access_lines().size();
  for (int stable = 0, i = 0; stable < 4 && i < 40; ++i) {
    std::this_thread::sleep_for(50ms);
    const size_t n = access_lines().size();
    stable = n == before ? stable + 1 : 0;
    before = n;
  }

  // A known set of requests, one at a time.
  std::multiset<std::pair<std::string, int>> want;
  Conn conn(s.port);
  for (int i = 0; i < 6; ++i) {
    Response r = conn.request("POST", "/v1/contracts/policy/approve", seed_intent(), auth(k.caller));
    ASSERT_EQ(r.status, 200) << r.describe();
    want.insert({"/v1/contracts/{name}/approve", 200});
  }
  EXPECT_EQ(conn.request("GET", "/v1/contracts/policy", "", auth(k.caller)).status, 200);
  want.insert({"/v1/contracts/{name}", 200});
  EXPECT_EQ(conn.request("GET", "/v1/contracts/nope", "", auth(k.caller)).status, 404);
  want.insert({"/v1/contracts/{name}", 404});
  EXPECT_EQ(conn.request("GET", "/v1/contracts", "").status, 401);
  want.insert({"/v1/contracts", 401});
  EXPECT_EQ(conn.request("GET", "/healthz").status, 200);
  want.insert({"/healthz", 200});
  Response m = conn.request("GET", "/metrics");  // no auth
  ASSERT_EQ(m.status, 200) << m.describe();
  want.insert({"/metrics", 200});

  for (const std::string& needle :
       {std::string("covenant_http_requests_total"), std::string("covenant_approve_stage_seconds"),
        std::string("stage=\"commit\""), std::string("stage=\"sign\""), std::string("stage=\"execute\""),
        std::string("stage=\"queue\""), std::string("covenant_pipeline{what=\"queue_depth\"}")}) {
    EXPECT_NE(m.body.find(needle), std::string::npos) << "/metrics lacks " << needle << "\n" << m.body.substr(0, 3000);
  }
  // The approvals are counted by route and status.
  EXPECT_NE(m.body.find("route=\"/v1/contracts/{name}/approve\""), std::string::npos) << m.body.substr(0, 3000);
  {
    // The commit stage histogram has observations.
    std::istringstream in(m.body);
    std::string line;
    double commit_count = -1;
    while (std::getline(in, line))
      if (line.rfind("covenant_approve_stage_seconds_count", 0) == 0 && line.find("stage=\"commit\"") != std::string::npos)
        commit_count = std::atof(line.substr(line.rfind(' ') + 1).c_str());
    EXPECT_GE(commit_count, 6) << "covenant_approve_stage_seconds_count{stage=\"commit\"}";
  }

  // One access-log line per request, with route and status.
  std::vector<json> lines;
  for (int i = 0; i < 100; ++i) {
    lines = access_lines();
    if (lines.size() >= before + want.size()) break;
    std::this_thread::sleep_for(50ms);
  }
  std::this_thread::sleep_for(300ms);
  lines = access_lines();
  ASSERT_EQ(lines.size(), before + want.size()) << "access-log lines for " << want.size() << " requests" << log_of(s);
  std::multiset<std::pair<std::string, int>> got;
  for (size_t i = before; i < lines.size(); ++i) {
    const json& l = lines[i];
    got.insert({l.value("route", ""), l.value("status", 0)});
    EXPECT_TRUE(l.contains("method") && l.contains("path") && l.contains("total_us")) << l.dump();
  }
  EXPECT_EQ(got, want) << log_of(s);
}

// ---------------------------------------------------------------------------
// 5. Slow clients: 200 half-sent request heads.

TEST_F(ServerFaultTest, SlowClientsMemoryBounded) {
  const std::string config = write_config({{"read_timeout_ms", 1000}});
  Server& s = add_server("data", {"--config", config});
  ASSERT_TRUE(start(s));
  TenantKeys k = tenant_keys(s, "acme");
  deploy(s, k.deployer, "policy", kPolicyC);
  {
    Conn conn(s.port);
    for (int i = 0; i < 50; ++i)
      ASSERT_EQ(conn.request("POST", "/v1/contracts/policy/approve", seed_intent(), auth(k.caller)).status, 200);
  }
  std::this_thread::sleep_for(300ms);
  const uint64_t rss_before = rss_kib(s.pid);
  ASSERT_GT(rss_before, 0u);

  constexpr int kSlow = 200;
  const std::string half = "POST /v1/contracts/policy/approve HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bea";
  std::vector<int> fds;
  for (int i = 0; i < kSlow; ++i) {
    std::string err;
    int fd = connect_to(s.port, &err, 5);
    if (fd < 0) {
      ADD_FAILURE() << "slow connection " << i << ": " << err;
      break;
    }
    std::string e2;
    if (!send_all(fd, half.data(), half.size(), &e2)) ADD_FAILURE() << e2;
    fds.push_back(fd);
  }
  const auto t_attack = Clock::now();
  // A normal client is served meanwhile.
  Response h = fresh_request(s.port, "GET", "/healthz");
  EXPECT_EQ(h.status, 200) << h.describe();
  Response a = fresh_request(s.port, "POST", "/v1/contracts/policy/approve", seed_intent(), auth(k.caller));
  EXPECT_EQ(a.status, 200) << a.describe() << log_of(s);
  const double normal_s = secs_since(t_attack);
  const uint64_t rss_during = rss_kib(s.pid);

  // After the read timeout each is answered (408) and closed; wait at most 15 s.
  std::vector<bool> closed(fds.size(), false);
  size_t n_closed = 0, n_408 = 0;
  const auto until = Clock::now() + 15s;
  while (n_closed < fds.size() && Clock::now() < until) {
    std::vector<pollfd> ps;
    std::vector<size_t> idx;
    for (size_t i = 0; i < fds.size(); ++i)
      if (!closed[i]) {
        ps.push_back({fds[i], POLLIN, 0});
        idx.push_back(i);
      }
    if (::poll(ps.data(), ps.size(), 200) <= 0) continue;
    for (size_t j = 0; j < ps.size(); ++j) {
      if (!(ps[j].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t n = ::recv(fds[idx[j]], buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        if (std::string(buf, static_cast<size_t>(n)).rfind("HTTP/1.1 408", 0) == 0) n_408++;
        continue;  // the close follows
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        closed[idx[j]] = true;
        n_closed++;
      }
    }
  }
  const double close_s = secs_since(t_attack);
  for (int fd : fds) ::close(fd);
  std::this_thread::sleep_for(500ms);
  const uint64_t rss_after = rss_kib(s.pid);
  std::fprintf(stderr,
               "[server_fault_test] SlowClients: %zu stalled connections, %zu closed by the server (%zu with a 408) "
               "within %.2f s; normal client served in %.3f s; VmRSS %llu KiB before, %llu during, %llu after\n",
               fds.size(), n_closed, n_408, close_s, normal_s, (unsigned long long)rss_before,
               (unsigned long long)rss_during, (unsigned long long)rss_after);
  EXPECT_EQ(fds.size(), static_cast<size_t>(kSlow));
  EXPECT_EQ(n_closed, fds.size()) << "stalled connections still open " << close_s << " s after the attack began";
  EXPECT_LT(rss_after, 2 * rss_before + 50 * 1024) << "VmRSS grew from " << rss_before << " KiB to " << rss_after;
  EXPECT_TRUE(alive(s.pid));
  Response after = fresh_request(s.port, "POST", "/v1/contracts/policy/approve", seed_intent(), auth(k.caller));
  EXPECT_EQ(after.status, 200) << after.describe() << log_of(s);
  auto st = stop(s);
  ASSERT_TRUE(st.has_value()) << log_of(s);
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << *st << log_of(s);
}

}  // namespace
