// Shared helpers of the end-to-end tests of `covenant serve` (server_test.cc,
// server_fault_test.cc): the real binary runs as a child process and the tests
// talk HTTP/1.1 to it over plain POSIX sockets with a small blocking client
// (Content-Length and chunked bodies, keep-alive reuse or a fresh connection
// per request).
//
// What is here: small utilities (files, hex, u64 values as decimal strings),
// the example contracts and intents, the HTTP client (Response, Conn,
// fresh_request, streaming_exchange), child processes (Server, run_cli,
// wait_exit), and ServerHarness: a test's servers (start on port 0 reading the
// `listening on` line, SIGTERM / SIGKILL, logs) plus the API helpers (keys,
// deploy, `covenant ledger verify`).
//
// Everything is inline in namespace covenant::server_test; a test file says
// `using namespace covenant::server_test;`.
//
// Compile definitions: COVENANT_CLI (build/covenant), COVENANT_SOURCE_DIR,
// COVENANT_BINARY_DIR.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "covenant/keys.h"
#include "covenant/merkle.h"
#include "covenant/receipt.h"
#include "settle/settle.h"

#ifndef COVENANT_CLI
#error "COVENANT_CLI must name the covenant binary"
#endif
#ifndef COVENANT_SOURCE_DIR
#error "COVENANT_SOURCE_DIR must be defined"
#endif
#ifndef COVENANT_BINARY_DIR
#error "COVENANT_BINARY_DIR must be defined"
#endif

extern char** environ;

namespace covenant::server_test {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------
// Small utilities

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::string s = read_file(path);
  return std::vector<uint8_t>(s.begin(), s.end());
}

inline std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  return s.substr(i);
}

inline std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

inline std::span<const uint8_t> as_bytes(const std::string& s) {
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

inline bool is_hex(const std::string& s, size_t n) {
  if (s.size() != n) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

inline uint64_t now_unix_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

// u64 values come back as decimal strings (docs/abi.md); accept numbers too.
inline uint64_t as_u64(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) return static_cast<uint64_t>(v.get<int64_t>());
  if (v.is_string()) return std::stoull(v.get<std::string>());
  return UINT64_MAX;
}

inline std::string tail(const std::string& text, size_t max_lines = 40) {
  size_t n = 0, at = text.size();
  while (at > 0 && n <= max_lines) {
    at = text.rfind('\n', at - 1);
    if (at == std::string::npos) {
      at = 0;
      break;
    }
    ++n;
  }
  return text.substr(at);
}

inline const std::string kPolicyC = std::string(COVENANT_BINARY_DIR) + "/contracts/examples/policy_c.wasm";
inline const std::string kPolicyRust = std::string(COVENANT_BINARY_DIR) + "/contracts/examples/policy_rust.wasm";
inline const std::string kBudgetRust = std::string(COVENANT_BINARY_DIR) + "/contracts/examples/budget_rust.wasm";
inline const std::string kBudgetWit = std::string(COVENANT_SOURCE_DIR) + "/contracts/examples/budget/budget.wit";
inline const json kBudgetGrants = json::parse(
    R"({"capabilities":{"kv":{"namespace":"budgets","max_keys":1000,"max_bytes":65536},"log":{"level":"info"},"clock":{}}})");

// The seed intent (docs/settlement.md): u64 fields as decimal strings.
inline std::string seed_intent(const std::string& agent = "agent-7", uint64_t units = 500) {
  json j = {{"agent_id", agent},
            {"task_type", "inference"},
            {"max_units", std::to_string(units)},
            {"expires_at_ms", std::to_string(now_unix_ms() + 3600 * 1000)}};
  return j.dump();
}

inline std::string budget_intent(const std::string& agent, uint64_t amount) {
  return json{{"agent-id", agent}, {"amount", std::to_string(amount)}}.dump();
}

// ---------------------------------------------------------------------------
// A blocking HTTP/1.1 client over POSIX sockets.

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Response {
  int status = 0;                              // 0: transport error (see error)
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string error;
  json j() const {
    json v = json::parse(body, nullptr, false);
    return v.is_discarded() ? json() : v;
  }
  std::string header(const std::string& name) const {
    auto it = headers.find(lower(name));
    return it == headers.end() ? std::string() : it->second;
  }
  std::string code() const {
    json v = j();
    if (v.is_object() && v.contains("error") && v["error"].is_object() && v["error"].contains("code") &&
        v["error"]["code"].is_string())
      return v["error"]["code"];
    return "";
  }
  std::string describe() const {
    if (status == 0) return "transport error: " + error;
    return "HTTP " + std::to_string(status) + " " + body.substr(0, 600);
  }
};

inline int connect_to(uint16_t port, std::string* error, int rcv_timeout_s = 30) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    *error = std::string("connect: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{rcv_timeout_s, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

inline bool send_all(int fd, const char* p, size_t n, std::string* error) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      *error = std::string("send: ") + std::strerror(errno);
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Reads one response from fd. `buf` holds bytes already read (pipelining is not
// used, so it is normally empty). Returns false on a transport error.
inline bool read_response(int fd, std::string& buf, Response* r, bool head_request = false) {
  auto fill = [&]() -> bool {
    char tmp[65536];
    for (;;) {
      ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
      if (n > 0) {
        buf.append(tmp, static_cast<size_t>(n));
        return true;
      }
      if (n == 0) {
        r->error = "connection closed by the server";
        return false;
      }
      if (errno == EINTR) continue;
      r->error = std::string("recv: ") + (errno == EAGAIN || errno == EWOULDBLOCK ? "timeout" : std::strerror(errno));
      return false;
    }
  };
  size_t end;
  while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
    if (buf.size() > (1 << 20)) {
      r->error = "response head too large";
      return false;
    }
    if (!fill()) {
      if (!buf.empty() && r->error == "connection closed by the server") r->error = "truncated response head";
      return false;
    }
  }
  std::string head = buf.substr(0, end);
  buf.erase(0, end + 4);
  std::istringstream hs(head);
  std::string line;
  std::getline(hs, line);
  if (line.rfind("HTTP/1.", 0) != 0 || line.size() < 12) {
    r->error = "bad status line: " + line;
    return false;
  }
  r->status = std::atoi(line.c_str() + 9);
  while (std::getline(hs, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t c = line.find(':');
    if (c == std::string::npos) continue;
    r->headers[lower(line.substr(0, c))] = trim(line.substr(c + 1));
  }
  if (head_request || r->status == 204 || r->status == 304 || (r->status >= 100 && r->status < 200)) return true;
  if (lower(r->header("transfer-encoding")).find("chunked") != std::string::npos) {
    for (;;) {
      size_t le;
      while ((le = buf.find("\r\n")) == std::string::npos)
        if (!fill()) return false;
      const size_t n = std::strtoull(buf.substr(0, le).c_str(), nullptr, 16);
      buf.erase(0, le + 2);
      if (n == 0) {
        // trailers until an empty line
        for (;;) {
          while ((le = buf.find("\r\n")) == std::string::npos)
            if (!fill()) return false;
          const bool empty = le == 0;
          buf.erase(0, le + 2);
          if (empty) return true;
        }
      }
      while (buf.size() < n + 2)
        if (!fill()) return false;
      r->body.append(buf, 0, n);
      buf.erase(0, n + 2);
    }
  }
  const std::string cl = r->header("content-length");
  if (!cl.empty()) {
    const size_t n = std::strtoull(cl.c_str(), nullptr, 10);
    while (buf.size() < n)
      if (!fill()) return false;
    r->body = buf.substr(0, n);
    buf.erase(0, n);
    return true;
  }
  // No length: the body runs to the end of the connection.
  for (;;) {
    char tmp[65536];
    ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n > 0) {
      buf.append(tmp, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  r->body = std::move(buf);
  buf.clear();
  return true;
}

inline std::string build_request(uint16_t port, const std::string& method, const std::string& path, const std::string& body,
                          const Headers& headers, bool close) {
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n";
  bool has_ct = false;
  for (auto& [k, v] : headers) {
    req += k + ": " + v + "\r\n";
    has_ct |= lower(k) == "content-type";
  }
  if (!body.empty() || method == "POST" || method == "PUT") {
    if (!has_ct) req += "Content-Type: application/json\r\n";
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  if (close) req += "Connection: close\r\n";
  req += "\r\n";
  req += body;
  return req;
}

// One connection; keep-alive unless the server closes it.
class Conn {
 public:
  // timeout_s bounds each send and each wait for response bytes (SO_RCVTIMEO / SO_SNDTIMEO).
  explicit Conn(uint16_t port, int timeout_s = 30) : port_(port), timeout_s_(timeout_s) {}
  ~Conn() { close(); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buf_.clear();
  }
  bool is_open() const { return fd_ >= 0; }

  Response request(const std::string& method, const std::string& path, const std::string& body = "",
                   const Headers& headers = {}) {
    Response r;
    if (fd_ < 0) {
      fd_ = connect_to(port_, &r.error, timeout_s_);
      if (fd_ < 0) return r;
    }
    const std::string req = build_request(port_, method, path, body, headers, false);
    if (!send_all(fd_, req.data(), req.size(), &r.error)) {
      close();
      return r;
    }
    if (!read_response(fd_, buf_, &r, method == "HEAD")) {
      r.status = 0;
      close();
      return r;
    }
    if (lower(r.header("connection")) == "close") close();
    return r;
  }

 private:
  uint16_t port_;
  int timeout_s_;
  int fd_ = -1;
  std::string buf_;
};

// A fresh connection for one request.
inline Response fresh_request(uint16_t port, const std::string& method, const std::string& path, const std::string& body = "",
                       const Headers& headers = {}) {
  Response r;
  int fd = connect_to(port, &r.error);
  if (fd < 0) return r;
  const std::string req = build_request(port, method, path, body, headers, true);
  std::string buf;
  if (!send_all(fd, req.data(), req.size(), &r.error) || !read_response(fd, buf, &r, method == "HEAD")) r.status = 0;
  ::close(fd);
  return r;
}

// Sends `data` in pieces, stopping as soon as the server answers (it may refuse
// a request before reading all of it: 413, 431), then reads the response.
inline Response streaming_exchange(uint16_t port, const std::string& data) {
  Response r;
  int fd = connect_to(port, &r.error);
  if (fd < 0) return r;
  size_t at = 0;
  while (at < data.size()) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 0) > 0) break;  // the server spoke (or closed) early
    const size_t n = std::min<size_t>(16384, data.size() - at);
    ssize_t w = ::send(fd, data.data() + at, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        pollfd q{fd, POLLIN | POLLOUT, 0};
        ::poll(&q, 1, 1000);
        continue;
      }
      break;  // EPIPE / ECONNRESET: read what the server said
    }
    at += static_cast<size_t>(w);
  }
  std::string buf;
  if (!read_response(fd, buf, &r)) r.status = 0;
  ::close(fd);
  return r;
}

inline Headers auth(const std::string& key) { return {{"Authorization", "Bearer " + key}}; }
inline Headers auth(const std::string& key, const Headers& more) {
  Headers h = auth(key);
  h.insert(h.end(), more.begin(), more.end());
  return h;
}

// ---------------------------------------------------------------------------
// Child processes

struct Server {
  pid_t pid = -1;
  uint16_t port = 0;
  std::string data, log;
  std::vector<std::string> args;
  int terms_sent = 0;  // SIGTERMs this test sent (more "draining" lines in the log: a signal from elsewhere)
};

struct RunResult {
  int code = -1;
  std::string out, err;
};

inline RunResult run_cli(const std::vector<std::string>& args, const std::string& err_path) {
  std::string cmd = std::string("'") + COVENANT_CLI + "'";
  for (const std::string& a : args) cmd += " '" + a + "'";  // no argument here contains a quote
  cmd += " 2>'" + err_path + "'";
  RunResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = ::pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.err = read_file(err_path);
  return r;
}

// Waits for the process to exit, at most `limit`. Returns the wait status, or
// nullopt when it is still running.
inline std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds limit) {
  const auto until = Clock::now() + limit;
  for (;;) {
    int st = 0;
    pid_t w = ::waitpid(pid, &st, WNOHANG);
    if (w == pid) return st;
    if (w < 0 && errno != EINTR) return std::nullopt;
    if (Clock::now() >= until) return std::nullopt;
    std::this_thread::sleep_for(20ms);
  }
}

// ---------------------------------------------------------------------------
// A test's servers and the API helpers. A fixture derives from it (next to
// ::testing::Test), sets dir_ in SetUp and calls kill_servers() in TearDown.

class ServerHarness {
 public:
  virtual ~ServerHarness() = default;

 protected:
  // The ledger flags of `covenant serve` and `covenant ledger` for a server's data directory.
  virtual std::vector<std::string> ledger_flags(const std::string& data) const {
    return {"--ledger", data + "/ledger.db"};
  }

  // A server of this test (not started): data directory DIR/<data_name>, log
  // DIR/<data_name>.server.log, `serve --listen 127.0.0.1:0 --data <data>` + extra args.
  Server& add_server(const std::string& data_name, const std::vector<std::string>& extra_args = {}) {
    owned_.push_back(std::make_unique<Server>());
    Server& s = *owned_.back();
    s.data = dir_ + "/" + data_name;
    s.log = dir_ + "/" + data_name + ".server.log";
    s.args = {"serve", "--listen", "127.0.0.1:0", "--data", s.data};
    s.args.insert(s.args.end(), extra_args.begin(), extra_args.end());
    servers_.push_back(&s);
    return s;
  }

  // SIGKILL every server of this test still running (TearDown).
  void kill_servers() {
    for (Server* s : servers_) {
      if (s->pid > 0) {
        ::kill(s->pid, SIGKILL);
        (void)wait_exit(s->pid, 10s);
        s->pid = -1;
      }
    }
  }

  // Starts (or restarts) a server; the port is read from its first stdout line.
  ::testing::AssertionResult start(Server& s) {
    int pfd[2];
    if (::pipe2(pfd, O_CLOEXEC) != 0) return ::testing::AssertionFailure() << "pipe: " << std::strerror(errno);
    int logfd = ::open(s.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0) return ::testing::AssertionFailure() << "open " << s.log << ": " << std::strerror(errno);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, logfd, 2);
    std::vector<std::string> argv_s = {COVENANT_CLI};
    argv_s.insert(argv_s.end(), s.args.begin(), s.args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, COVENANT_CLI, &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(pfd[1]);
    ::close(logfd);
    if (rc != 0) {
      ::close(pfd[0]);
      return ::testing::AssertionFailure() << "posix_spawn " << COVENANT_CLI << ": " << std::strerror(rc);
    }
    s.pid = pid;
    // The first line: `listening on http://HOST:PORT`.
    std::string line;
    const auto until = Clock::now() + 60s;
    bool got = false;
    while (!got && Clock::now() < until) {
      pollfd p{pfd[0], POLLIN, 0};
      int pr = ::poll(&p, 1, 200);
      if (pr > 0) {
        char c;
        ssize_t n = ::read(pfd[0], &c, 1);
        if (n == 1) {
          if (c == '\n')
            got = true;
          else
            line += c;
          continue;
        }
        if (n == 0) break;  // stdout closed: the process is gone
      }
      int st;
      if (::waitpid(pid, &st, WNOHANG) == pid) {
        s.pid = -1;
        ::close(pfd[0]);
        return ::testing::AssertionFailure() << "covenant serve exited (status " << st << ") before listening:\n"
                                             << tail(read_file(s.log));
      }
    }
    ::close(pfd[0]);
    const std::string prefix = "listening on http://127.0.0.1:";
    if (!got || line.rfind(prefix, 0) != 0)
      return ::testing::AssertionFailure() << "first stdout line was '" << line << "' (want " << prefix << "PORT)\n"
                                           << tail(read_file(s.log));
    const int port = std::atoi(line.c_str() + prefix.size());
    if (port <= 0 || port > 65535) return ::testing::AssertionFailure() << "bad port in '" << line << "'";
    s.port = static_cast<uint16_t>(port);
    // Serving: /healthz answers.
    for (int i = 0; i < 100; ++i) {
      Response h = fresh_request(s.port, "GET", "/healthz");
      if (h.status == 200) return ::testing::AssertionSuccess();
      std::this_thread::sleep_for(50ms);
    }
    return ::testing::AssertionFailure() << "/healthz never answered 200\n" << tail(read_file(s.log));
  }

  // SIGTERM; returns the wait status (nullopt: still running after `limit`).
  std::optional<int> stop(Server& s, std::chrono::milliseconds limit = 20s) {
    if (s.pid <= 0) return std::nullopt;
    s.terms_sent++;
    ::kill(s.pid, SIGTERM);
    auto st = wait_exit(s.pid, limit);
    if (st) s.pid = -1;
    return st;
  }

  void kill9(Server& s) {
    if (s.pid <= 0) return;
    ::kill(s.pid, SIGKILL);
    (void)wait_exit(s.pid, 20s);
    s.pid = -1;
  }

  std::string admin_key(const Server& s) { return trim(read_file(s.data + "/admin.key")); }

  std::string log_of(const Server& s) {
    const std::string text = read_file(s.log);
    int drains = 0;
    for (size_t at = text.find("\"event\":\"draining\""); at != std::string::npos;
         at = text.find("\"event\":\"draining\"", at + 1))
      drains++;
    std::string note;
    if (drains > s.terms_sent)
      note = "\nNOTE: the server logged " + std::to_string(drains) + " drain(s) but this test sent " +
             std::to_string(s.terms_sent) + " SIGTERM(s): another process signalled it";
    return note + "\n--- " + s.log + " (tail) ---\n" + tail(text);
  }

  // `covenant ledger verify --json` on the server's ledger (server stopped or not).
  RunResult ledger_verify(const Server& s) {
    std::vector<std::string> args = {"ledger", "verify"};
    auto lf = ledger_flags(s.data);
    args.insert(args.end(), lf.begin(), lf.end());
    args.push_back("--json");
    return run_cli(args, dir_ + "/verify.stderr");
  }

  void expect_ledger_clean(const Server& s) {
    RunResult v = ledger_verify(s);
    EXPECT_EQ(v.code, 0) << v.out << v.err;
    json j = json::parse(v.out, nullptr, false);
    ASSERT_TRUE(j.is_object()) << v.out << v.err;
    EXPECT_EQ(j.value("ok", false), true) << v.out;
  }

  // ---- API helpers ----

  struct TenantKeys {
    std::string admin, deployer, caller, auditor;
    std::map<std::string, std::string> ids;  // role -> key id
  };

  std::string create_key(const Server& s, const std::string& by, const std::string& tenant, const std::string& role,
                         std::string* id = nullptr) {
    Response r = fresh_request(s.port, "POST", "/v1/keys", json{{"tenant", tenant}, {"role", role}}.dump(), auth(by));
    EXPECT_EQ(r.status, 201) << r.describe() << log_of(s);
    json j = r.j();
    if (!j.is_object() || !j.contains("key")) return "";
    EXPECT_EQ(j.value("tenant", ""), tenant);
    EXPECT_EQ(j.value("role", ""), role);
    if (id) *id = j.value("id", "");
    return j.value("key", "");
  }

  TenantKeys tenant_keys(const Server& s, const std::string& tenant) {
    const std::string sys = admin_key(s);
    TenantKeys k;
    k.admin = create_key(s, sys, tenant, "admin", &k.ids["admin"]);
    k.deployer = create_key(s, sys, tenant, "deployer", &k.ids["deployer"]);
    k.caller = create_key(s, sys, tenant, "caller", &k.ids["caller"]);
    k.auditor = create_key(s, sys, tenant, "auditor", &k.ids["auditor"]);
    return k;
  }

  static std::string contract_body(const std::string& wasm_path, const std::string& wit = "",
                                   const json& grants = json()) {
    json b = {{"wasm_base64", covenant::base64_encode(read_bytes(wasm_path))}};
    if (!wit.empty()) b["wit"] = wit;
    if (!grants.is_null()) b["grants"] = grants;
    return b.dump();
  }

  // PUT the contract; returns the version (sha-256 hex of the module).
  std::string deploy(const Server& s, const std::string& key, const std::string& name, const std::string& wasm_path,
                     const std::string& wit = "", const json& grants = json(), bool expect_active = true) {
    Response r =
        fresh_request(s.port, "PUT", "/v1/contracts/" + name, contract_body(wasm_path, wit, grants), auth(key));
    EXPECT_EQ(r.status, 201) << r.describe() << log_of(s);
    json j = r.j();
    const std::string want = covenant::to_hex(covenant::sha256(read_bytes(wasm_path)));
    EXPECT_EQ(j.value("version", ""), want) << r.body;
    EXPECT_EQ(j.value("active", !expect_active), expect_active) << r.body;
    return j.value("version", "");
  }

  std::string dir_;
  std::vector<std::unique_ptr<Server>> owned_;
  std::vector<Server*> servers_;
};

}  // namespace covenant::server_test
