// bench_approvals: what a funded budget and a signed intent cost per approval,
// measured against a running `covenant serve` in one run, each mode against the
// plain figure of the same run (issue 11, items 3 and 9; docs/benchmarks.md,
// "Server" > "Holds, budgets and signed intents"). scripts/bench_approvals.sh
// starts the server on a fresh data directory (or PostgreSQL schema) and runs this.
//
// Modes, all on the seed policy in C (policy_c.wasm), intent max_units 500:
//   plain          agents never funded: the seed mapping's hold on an unbounded account
//   funded         agents funded once (POST /v1/agents/{id}/fund): every hold debits the
//                  budget account (debits_must_not_exceed_credits) in the approval's commit
//   signed         a version deployed with "require_signed_intents": true; every request
//                  carries the Covenant-* headers, signed with a fresh nonce BEFORE the timed
//                  phase (client signing is not measured)
//   signed_funded  both
//   mandate        signed, and under a user-signed mandate (Covenant-Mandate) bound to the
//                  agent's key: its constraints are checked before the run and its
//                  cumulative counter moves in the approval's commit (docs/api.md, "Mandates")
// Every mode places one escrow hold per approval. Rounds run the modes in turn,
// every second round in reverse (plain, funded, ..., mandate; mandate, ...,
// funded, plain; ...: each mode's mean place is the same), so that a ledger
// that grows through the run, or the first phase after the warm-up, does not
// favour one mode.
//
// The client is one thread with epoll over N keep-alive connections (blocking
// sends of pre-built requests, like wrk); latency is from the send to the end of
// the response. Beside the HTTP figures it measures in process, in the same run:
// Ed25519 verify/s (libsodium, the server's covenant::ed25519_verify) and JCS
// canonicalizations/s of the object a signed intent is signed over.
//
// Not a test: it prints figures and exits 0 unless the setup fails.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "covenant/keys.h"
#include "covenant/merkle.h"
#include "settle/jcs.h"

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string admin_key_file;    // DATA/admin.key of the server (the bootstrap admin)
  std::string policy_wasm;       // build/contracts/examples/policy_c.wasm
  double duration_s = 5;         // per mode per round; longer = less noise, a bigger ledger
  int rounds = 2;                // modes interleaved; 1 is faster, more is fairer
  int connections = 64;          // keep-alive connections; the server's --workers should be >= this
  int agents = 8;                // distinct agents per mode; 1 makes every hold hit one account
  int server_pid = 0;            // for the server's CPU time per approval (/proc/PID/stat); 0 = skip
  std::vector<std::string> modes = {"plain", "funded", "signed", "signed_funded", "mandate"};
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "bench_approvals: %s\n", what.c_str());
  std::exit(1);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) die("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

uint64_t unix_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

// ---------------------------------------------------------------------------
// HTTP/1.1 over POSIX sockets. The server always answers with Content-Length.

int connect_to(const Options& o) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die(std::string("socket: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(o.port);
  if (::inet_pton(AF_INET, o.host.c_str(), &a.sin_addr) != 1) die("bad host " + o.host);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die(std::string("connect: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

std::string build_request(const Options& o, const std::string& method, const std::string& path, const std::string& body,
                          const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string r = method + " " + path + " HTTP/1.1\r\nHost: " + o.host + ":" + std::to_string(o.port) + "\r\n";
  for (const auto& [k, v] : headers) r += k + ": " + v + "\r\n";
  r += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  return r;
}

void send_all(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die(std::string("send: ") + std::strerror(errno));
    off += static_cast<size_t>(n);
  }
}

// If `in` holds a whole response, returns its size and sets status and body.
size_t parse_response(const std::string& in, int* status, std::string* body) {
  const size_t head_end = in.find("\r\n\r\n");
  if (head_end == std::string::npos) return 0;
  if (in.compare(0, 9, "HTTP/1.1 ") != 0) die("not an HTTP/1.1 response: " + in.substr(0, 40));
  *status = std::atoi(in.c_str() + 9);
  size_t length = 0;
  bool have_length = false;
  size_t at = in.find("\r\n") + 2;
  while (at < head_end) {
    const size_t eol = in.find("\r\n", at);
    static const char kName[] = "content-length:";
    if (eol - at > sizeof kName - 1 && strncasecmp(in.c_str() + at, kName, sizeof kName - 1) == 0) {
      length = std::strtoull(in.c_str() + at + sizeof kName - 1, nullptr, 10);
      have_length = true;
    }
    at = eol + 2;
  }
  if (!have_length) die("a response without Content-Length");
  if (in.size() < head_end + 4 + length) return 0;
  if (body) *body = in.substr(head_end + 4, length);
  return head_end + 4 + length;
}

struct Reply {
  int status = 0;
  std::string body;
  json j() const { return json::parse(body, nullptr, false); }
};

// One request on a fresh connection (the setup calls).
Reply request(const Options& o, const std::string& method, const std::string& path, const std::string& body,
              const std::string& bearer) {
  int fd = connect_to(o);
  send_all(fd, build_request(o, method, path, body, {{"Authorization", "Bearer " + bearer}}));
  std::string in;
  char buf[65536];
  Reply r;
  while (parse_response(in, &r.status, &r.body) == 0) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die(method + " " + path + ": connection closed before the response");
    in.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return r;
}

Reply expect(const Reply& r, std::initializer_list<int> ok, const std::string& what) {
  if (std::find(ok.begin(), ok.end(), r.status) == ok.end())
    die(what + ": HTTP " + std::to_string(r.status) + " " + r.body);
  return r;
}

// ---------------------------------------------------------------------------
// The load: N keep-alive connections driven from one thread.

struct PhaseResult {
  uint64_t ok = 0;        // 200s: approvals with a receipt and a hold
  uint64_t other = 0;     // anything else (counted, first body kept)
  double elapsed_s = 0;   // first send to the last response
  double server_cpu_s = 0;
  bool pool_ran_out = false;
  std::string first_error;
  std::vector<uint32_t> latency_us;
};

double server_cpu_s(int pid) {
  if (pid <= 0) return 0;
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  // Fields after the parenthesised command: state is field 3; utime and stime are 14 and 15.
  const size_t close = stat.rfind(')');
  std::vector<std::string> f;
  size_t at = close + 2;
  while (at < stat.size()) {
    size_t sp = stat.find(' ', at);
    if (sp == std::string::npos) sp = stat.size();
    f.push_back(stat.substr(at, sp - at));
    at = sp + 1;
  }
  if (f.size() < 13) die("cannot parse /proc/PID/stat");
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return (std::stod(f[11]) + std::stod(f[12])) / ticks;  // f[0] is field 3
}

// `next(c)` gives connection c's next request, or nullptr when there is none left.
template <typename Next>
PhaseResult drive(const Options& o, double duration_s, Next next) {
  struct ConnState {
    int fd = -1;
    std::string in;
    Clock::time_point sent;
    bool busy = false;
  };
  std::vector<ConnState> conns(static_cast<size_t>(o.connections));
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  for (size_t c = 0; c < conns.size(); ++c) {
    conns[c].fd = connect_to(o);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = c;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, conns[c].fd, &ev) != 0) die("epoll_ctl");
  }
  PhaseResult res;
  res.latency_us.reserve(1 << 20);
  const double cpu0 = server_cpu_s(o.server_pid);
  const Clock::time_point t0 = Clock::now();
  const Clock::time_point deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration_s));
  Clock::time_point last = t0;
  int busy = 0;
  auto issue = [&](size_t c) {
    const std::string* req = next(c);
    if (!req) {
      res.pool_ran_out = true;
      return;
    }
    conns[c].sent = Clock::now();
    conns[c].busy = true;
    ++busy;
    send_all(conns[c].fd, *req);
  };
  for (size_t c = 0; c < conns.size(); ++c) issue(c);
  std::vector<epoll_event> events(conns.size());
  char buf[65536];
  while (busy > 0) {
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 1000);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("epoll_wait");
    for (int i = 0; i < n; ++i) {
      ConnState& cs = conns[events[static_cast<size_t>(i)].data.u64];
      const ssize_t got = ::recv(cs.fd, buf, sizeof buf, 0);
      if (got <= 0) die("the server closed a keep-alive connection");
      cs.in.append(buf, static_cast<size_t>(got));
      int status = 0;
      std::string body;
      const size_t used = parse_response(cs.in, &status, &body);
      if (used == 0) continue;
      if (cs.in.size() != used) die("more than one response to one request");
      cs.in.clear();
      const Clock::time_point now = Clock::now();
      last = now;
      cs.busy = false;
      --busy;
      res.latency_us.push_back(static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::microseconds>(now - cs.sent).count()));
      if (status == 200) {
        ++res.ok;
      } else {
        if (res.other++ == 0) res.first_error = std::to_string(status) + " " + body.substr(0, 300);
      }
      if (now < deadline && !res.pool_ran_out) issue(events[static_cast<size_t>(i)].data.u64);
    }
  }
  res.elapsed_s = std::chrono::duration<double>(last - t0).count();
  res.server_cpu_s = server_cpu_s(o.server_pid) - cpu0;
  for (auto& cs : conns) ::close(cs.fd);
  ::close(ep);
  return res;
}

// ---------------------------------------------------------------------------
// The setup: a tenant, the two contracts, the agents (funded or not, with keys or not).

struct Agent {
  std::string id;
  covenant::SigningKey key = covenant::SigningKey::generate();
  covenant::SigningKey user_key = covenant::SigningKey::generate();  // mode mandate: the user who signs it
};

struct Tenant {
  std::string admin, deployer, caller;
};

Tenant make_tenant(const Options& o, const std::string& system_admin) {
  auto key = [&](const std::string& role) {
    Reply r = expect(request(o, "POST", "/v1/keys", json{{"tenant", "bench"}, {"role", role}}.dump(), system_admin), {201, 200},
                     "create a " + role + " key");
    return r.j().value("key", "");
  };
  return Tenant{key("admin"), key("deployer"), key("caller")};
}

std::string intent_body(const std::string& agent, uint64_t expires_at_ms) {
  return json{{"agent_id", agent}, {"task_type", "inference"}, {"max_units", "500"},
              {"expires_at_ms", std::to_string(expires_at_ms)}}
      .dump();
}

// The object a signed intent is signed over (docs/api.md, "Signed intents").
json signed_object(const std::string& contract, const json& intent, const std::string& nonce, uint64_t nb, uint64_t exp) {
  return json{{"contract", contract}, {"intent", intent}, {"nonce", nonce}, {"not_before_ms", nb}, {"expires_at_ms", exp}};
}

std::string sign_b64(const covenant::SigningKey& key, const json& what) {
  auto canon = covenant::settle::jcs_canonicalize(what);
  if (!canon) die("jcs: " + canon.status().message());
  uint8_t sig[covenant::kSignatureBytes];
  key.sign(std::span(reinterpret_cast<const uint8_t*>(canon->data()), canon->size()), sig);
  return covenant::base64_encode(std::span<const uint8_t>(sig, sizeof sig));
}

// ---------------------------------------------------------------------------
// In-process references.

struct Refs {
  double verify_per_s = 0, jcs_per_s = 0, sign_per_s = 0;
  size_t signed_bytes = 0;
};

template <typename F>
double per_second(double seconds, F f) {
  const Clock::time_point t0 = Clock::now();
  uint64_t n = 0;
  while (Clock::now() - t0 < std::chrono::duration<double>(seconds))
    for (int i = 0; i < 100; ++i, ++n) f(n);
  return static_cast<double>(n) / std::chrono::duration<double>(Clock::now() - t0).count();
}

Refs measure_refs() {
  Refs r;
  const covenant::SigningKey key = covenant::SigningKey::generate();
  const uint64_t now = unix_ms();
  const json intent = json::parse(intent_body("signed-0", now + 86'400'000));
  const json what = signed_object("signed", intent, "bench-signed-r0-000000", now - 60'000, now + 3'600'000);
  auto canon = covenant::settle::jcs_canonicalize(what);
  if (!canon) die("jcs: " + canon.status().message());
  r.signed_bytes = canon->size();
  const auto msg = std::span(reinterpret_cast<const uint8_t*>(canon->data()), canon->size());
  uint8_t sig[covenant::kSignatureBytes];
  key.sign(msg, sig);
  volatile size_t sink = 0;
  r.jcs_per_s = per_second(2, [&](uint64_t) { sink = sink + covenant::settle::jcs_canonicalize(what)->size(); });
  r.verify_per_s = per_second(2, [&](uint64_t) {
    if (!covenant::ed25519_verify(key.public_key(), msg, std::span<const uint8_t>(sig, sizeof sig))) die("verify failed");
  });
  r.sign_per_s = per_second(1, [&](uint64_t) { key.sign(msg, sig); });
  return r;
}

// ---------------------------------------------------------------------------

void parse_args(int argc, char** argv, Options* o) {
  auto usage = [] {
    die("usage: bench_approvals --url http://127.0.0.1:PORT --admin-key FILE --policy policy_c.wasm [--duration S] "
        "[--rounds R] [--connections N] [--agents A] [--server-pid PID] [--modes plain,funded,signed,signed_funded,mandate]");
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage();
    const std::string v = argv[++i];
    if (a == "--url") {
      const std::string p = "http://";
      if (v.rfind(p, 0) != 0 || v.find(':', p.size()) == std::string::npos) usage();
      const size_t colon = v.find(':', p.size());
      o->host = v.substr(p.size(), colon - p.size());
      o->port = static_cast<uint16_t>(std::stoi(v.substr(colon + 1)));
    } else if (a == "--admin-key") {
      o->admin_key_file = v;
    } else if (a == "--policy") {
      o->policy_wasm = v;
    } else if (a == "--duration") {
      o->duration_s = std::stod(v);
    } else if (a == "--rounds") {
      o->rounds = std::stoi(v);
    } else if (a == "--connections") {
      o->connections = std::stoi(v);
    } else if (a == "--agents") {
      o->agents = std::stoi(v);
    } else if (a == "--server-pid") {
      o->server_pid = std::stoi(v);
    } else if (a == "--modes") {
      o->modes.clear();
      size_t at = 0;
      while (at <= v.size()) {
        size_t comma = v.find(',', at);
        if (comma == std::string::npos) comma = v.size();
        o->modes.push_back(v.substr(at, comma - at));
        at = comma + 1;
      }
    } else {
      usage();
    }
  }
  if (o->port == 0 || o->admin_key_file.empty() || o->policy_wasm.empty()) usage();
  if (o->duration_s <= 0 || o->rounds < 1 || o->connections < 1 || o->agents < 1) usage();
  for (const std::string& m : o->modes)
    if (m != "plain" && m != "funded" && m != "signed" && m != "signed_funded" && m != "mandate") die("unknown mode " + m);
  if (o->modes.empty() || o->modes[0] != "plain") die("--modes must start with plain (the baseline)");
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

double percentile_ms(std::vector<uint32_t>& v, double p) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k] / 1000.0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  parse_args(argc, argv, &o);

  std::printf("== references (in process, one core, same run)\n");
  const Refs refs = measure_refs();
  std::printf("   Ed25519 verify/s (libsodium):                   %8.0f  (%.1f us each, over the %zu-byte JCS form)\n",
              refs.verify_per_s, 1e6 / refs.verify_per_s, refs.signed_bytes);
  std::printf("   JCS canonicalizations/s of a signed intent:     %8.0f  (%.1f us each)\n", refs.jcs_per_s,
              1e6 / refs.jcs_per_s);
  std::printf("   Ed25519 sign/s (the client's side, not timed):  %8.0f\n", refs.sign_per_s);
  std::fflush(stdout);

  // Setup: one tenant; "plain" (policy_c) and "signed" (the same module, signatures required).
  const std::string system_admin = trim(read_file(o.admin_key_file));
  const Tenant t = make_tenant(o, system_admin);
  const std::string wasm = read_file(o.policy_wasm);
  const std::string b64 = covenant::base64_encode(std::span(reinterpret_cast<const uint8_t*>(wasm.data()), wasm.size()));
  expect(request(o, "PUT", "/v1/contracts/plain", json{{"wasm_base64", b64}}.dump(), t.deployer), {201}, "deploy plain");
  expect(request(o, "PUT", "/v1/contracts/signed", json{{"wasm_base64", b64}, {"require_signed_intents", true}}.dump(),
                 t.deployer),
         {201}, "deploy signed");

  // Agents per mode. Budgets are far beyond what a run can hold (500 per approval).
  const std::string budget = "1000000000000000";
  std::map<std::string, std::vector<Agent>> agents;
  for (const std::string& mode : o.modes) {
    auto& list = agents[mode];
    for (int i = 0; i < o.agents; ++i) {
      list.push_back(Agent{.id = mode + "-" + std::to_string(i)});
      const Agent& a = list.back();
      if (mode == "funded" || mode == "signed_funded")
        expect(request(o, "POST", "/v1/agents/" + a.id + "/fund", json{{"amount", budget}}.dump(), t.admin), {201},
               "fund " + a.id);
      if (mode == "signed" || mode == "signed_funded" || mode == "mandate")
        expect(request(o, "PUT", "/v1/agents/" + a.id + "/keys/k1",
                       json{{"public_key", covenant::to_hex(a.key.public_key())}}.dump(), t.admin),
               {201}, "register the key of " + a.id);
      if (mode == "mandate") {
        // A user's key, and a mandate for this agent's key with every kind of constraint;
        // its budget and per-intent ceiling are far beyond what the run uses.
        const std::string user = "user-" + std::to_string(i);
        expect(request(o, "PUT", "/v1/users/" + user + "/keys/u1",
                       json{{"public_key", covenant::to_hex(a.user_key.public_key())}}.dump(), t.admin),
               {201}, "register the key of " + user);
        const uint64_t now = unix_ms();
        const json md = {{"id", "m-" + std::to_string(i)}, {"user", user}, {"user_kid", "u1"}, {"agent", a.id},
                         {"agent_kid", "k1"}, {"max_amount_per_intent", "1000"}, {"budget", budget},
                         {"not_before_ms", now - 60'000}, {"expires_at_ms", now + 86'400'000},
                         {"allowed_task_types", json::array({"inference"})}};
        expect(request(o, "POST", "/v1/mandates", json{{"mandate", md}, {"signature", sign_b64(a.user_key, md)}}.dump(),
                       t.admin),
               {201}, "register mandate m-" + std::to_string(i));
      }
    }
  }
  // A check that the modes are what they say: funded agents are funded, plain ones are not.
  for (const std::string& mode : o.modes) {
    Reply b = expect(request(o, "GET", "/v1/agents/" + agents[mode][0].id + "/balance", "", t.caller), {200}, "balance");
    const bool funded = b.j().value("funded", false);
    if (funded != (mode == "funded" || mode == "signed_funded")) die("agent of mode " + mode + ": " + b.body);
  }

  const uint64_t intent_expiry_ms = unix_ms() + 86'400'000;
  const std::vector<std::pair<std::string, std::string>> auth = {{"Authorization", "Bearer " + t.caller}};
  // Unsigned modes: one fixed request per connection (its agent is connection % agents).
  auto fixed_requests = [&](const std::string& mode) {
    std::vector<std::string> reqs;
    for (int c = 0; c < o.connections; ++c)
      reqs.push_back(build_request(o, "POST", "/v1/contracts/plain/approve",
                                   intent_body(agents[mode][static_cast<size_t>(c % o.agents)].id, intent_expiry_ms), auth));
    return reqs;
  };
  // Signed modes: `count` requests, each signed now with its own nonce; agents in turn.
  auto signed_requests = [&](const std::string& mode, int round, size_t count) {
    std::vector<std::string> reqs;
    reqs.reserve(count);
    const uint64_t now = unix_ms();
    for (size_t i = 0; i < count; ++i) {
      const size_t ai = i % static_cast<size_t>(o.agents);
      const Agent& a = agents[mode][ai];
      const std::string body = intent_body(a.id, intent_expiry_ms);
      const std::string nonce = "bench-" + mode + "-r" + std::to_string(round) + "-" + std::to_string(i);
      const uint64_t nb = now - 60'000, exp = now + 3'600'000;
      auto h = auth;
      h.push_back({"Covenant-Key-Id", "k1"});
      h.push_back({"Covenant-Nonce", nonce});
      h.push_back({"Covenant-Not-Before-Ms", std::to_string(nb)});
      h.push_back({"Covenant-Expires-At-Ms", std::to_string(exp)});
      h.push_back({"Covenant-Signature", sign_b64(a.key, signed_object("signed", json::parse(body), nonce, nb, exp))});
      if (mode == "mandate") h.push_back({"Covenant-Mandate", "m-" + std::to_string(ai)});
      reqs.push_back(build_request(o, "POST", "/v1/contracts/signed/approve", body, h));
    }
    return reqs;
  };
  auto run_mode = [&](const std::string& mode, int round, double seconds, size_t pool_size) {
    if (mode == "plain" || mode == "funded") {
      const std::vector<std::string> reqs = fixed_requests(mode);
      return drive(o, seconds, [&](size_t c) { return &reqs[c]; });
    }
    const std::vector<std::string> reqs = signed_requests(mode, round, pool_size);
    size_t next = 0;
    return drive(o, seconds, [&](size_t) { return next < reqs.size() ? &reqs[next++] : nullptr; });
  };

  // Warm-up (not counted): both contracts, and the rate that sizes the signed pools.
  std::printf("== warm-up: 2 s plain, 1 s signed (not counted)\n");
  std::fflush(stdout);
  PhaseResult warm = run_mode("plain", -1, 2, 0);
  const double warm_rate = static_cast<double>(warm.ok) / std::max(warm.elapsed_s, 1e-3);
  if (warm.ok == 0) die("warm-up: no approval succeeded: " + warm.first_error);
  const size_t pool = static_cast<size_t>(warm_rate * o.duration_s * 2) + static_cast<size_t>(o.connections) * 4 + 1000;
  if (std::find(o.modes.begin(), o.modes.end(), "signed") != o.modes.end()) {
    PhaseResult w = run_mode("signed", -1, 1, static_cast<size_t>(warm_rate) + 1000);
    if (w.ok == 0) die("warm-up: no signed approval succeeded: " + w.first_error);
  }

  std::printf("== %d round(s) x %s s per mode, %d keep-alive connections, %d agents per mode, max_units 500\n", o.rounds,
              json(o.duration_s).dump().c_str(), o.connections, o.agents);
  std::map<std::string, PhaseResult> total;
  for (int round = 0; round < o.rounds; ++round) {
    for (size_t k = 0; k < o.modes.size(); ++k) {
      const std::string& mode = o.modes[round % 2 == 0 ? k : o.modes.size() - 1 - k];
      PhaseResult r = run_mode(mode, round, o.duration_s, pool);
      std::printf("   round %d %-14s %8.0f approvals/s  (%llu in %.2f s%s%s)\n", round + 1, mode.c_str(),
                  static_cast<double>(r.ok) / std::max(r.elapsed_s, 1e-3), static_cast<unsigned long long>(r.ok),
                  r.elapsed_s, r.other ? ", non-200s" : "", r.pool_ran_out ? ", signed pool used up" : "");
      std::fflush(stdout);
      PhaseResult& a = total[mode];
      a.ok += r.ok;
      a.other += r.other;
      a.elapsed_s += r.elapsed_s;
      a.server_cpu_s += r.server_cpu_s;
      a.pool_ran_out |= r.pool_ran_out;
      if (a.first_error.empty()) a.first_error = r.first_error;
      a.latency_us.insert(a.latency_us.end(), r.latency_us.begin(), r.latency_us.end());
    }
  }

  std::printf("== totals per mode\n");
  std::printf("   %-14s %12s %9s %9s %9s %10s %s\n", "mode", "approvals/s", "p50 ms", "p99 ms", "non-200", "vs plain",
              o.server_pid ? "server CPU us/approval" : "");
  const double plain_rate = static_cast<double>(total["plain"].ok) / std::max(total["plain"].elapsed_s, 1e-3);
  const double plain_cpu_us = total["plain"].ok ? total["plain"].server_cpu_s * 1e6 / static_cast<double>(total["plain"].ok) : 0;
  json out = {{"refs", {{"ed25519_verify_per_s", refs.verify_per_s}, {"jcs_per_s", refs.jcs_per_s},
                        {"ed25519_sign_per_s", refs.sign_per_s}, {"signed_bytes", refs.signed_bytes}}},
              {"connections", o.connections}, {"agents", o.agents}, {"rounds", o.rounds}, {"duration_s", o.duration_s}};
  for (const std::string& mode : o.modes) {
    PhaseResult& a = total[mode];
    const double rate = static_cast<double>(a.ok) / std::max(a.elapsed_s, 1e-3);
    const double cpu_us = a.ok ? a.server_cpu_s * 1e6 / static_cast<double>(a.ok) : 0;
    const double p50 = percentile_ms(a.latency_us, 50), p99 = percentile_ms(a.latency_us, 99);
    char cpu[64] = "";
    if (o.server_pid) std::snprintf(cpu, sizeof cpu, "%.0f (%+.0f)", cpu_us, cpu_us - plain_cpu_us);
    std::printf("   %-14s %12.0f %9.1f %9.1f %9llu %9.2fx %s\n", mode.c_str(), rate, p50, p99,
                static_cast<unsigned long long>(a.other), rate / plain_rate, cpu);
    if (a.other) std::printf("      first non-200: %s\n", a.first_error.c_str());
    out["modes"][mode] = {{"approvals_per_s", rate}, {"p50_ms", p50}, {"p99_ms", p99}, {"non_200", a.other},
                          {"ratio_to_plain", rate / plain_rate}, {"approvals", a.ok}};
    if (o.server_pid) out["modes"][mode]["server_cpu_us_per_approval"] = cpu_us;
  }
  if (total.count("signed")) {
    const double signed_rate = static_cast<double>(total["signed"].ok) / std::max(total["signed"].elapsed_s, 1e-3);
    std::printf("   signed vs plain: %+.1f us of wall time per approval at saturation; one verify is %.1f us, one JCS %.1f us\n",
                1e6 / signed_rate - 1e6 / plain_rate, 1e6 / refs.verify_per_s, 1e6 / refs.jcs_per_s);
  }
  if (total.count("signed") && total.count("mandate")) {
    auto rate_of = [&](const std::string& m) { return static_cast<double>(total[m].ok) / std::max(total[m].elapsed_s, 1e-3); };
    std::printf("   mandate vs signed: %+.1f us of wall time per approval at saturation (%.2fx)\n",
                1e6 / rate_of("mandate") - 1e6 / rate_of("signed"), rate_of("mandate") / rate_of("signed"));
  }
  std::printf("json %s\n", out.dump().c_str());
  return 0;
}
