// Tests of the HTTP layer over real sockets on 127.0.0.1 with a tiny blocking
// POSIX client. Timeouts here are generous upper bounds, never pass/fail speeds.
#include "server/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <prometheus/registry.h>

namespace covenant::server {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A blocking client connection. Every receive waits at most 10 s.
class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }

  bool send(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  // Reads more bytes into buf_; false on EOF, error or timeout.
  bool fill() {
    char tmp[4096];
    ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  struct Response {
    int status = 0;  // 0: no (complete) response
    std::map<std::string, std::string> headers;  // lower-cased names
    std::string body;
    const std::string& h(const std::string& name) { return headers[name]; }
  };

  // Reads one response (Content-Length framed); what follows stays buffered.
  Response read_response() {
    Response r;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return r;
    }
    std::string head = buf_.substr(0, end);
    size_t line_end = head.find("\r\n");
    std::string status_line = head.substr(0, line_end);
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t next = head.find("\r\n", pos);
      if (next == std::string::npos) next = head.size();
      std::string line = head.substr(pos, next - pos);
      size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      r.headers[name] = value;
      pos = next + 2;
    }
    size_t len = r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
    while (buf_.size() < end + 4 + len) {
      if (!fill()) return r;
    }
    r.body = buf_.substr(end + 4, len);
    buf_.erase(0, end + 4 + len);
    if (status_line.size() >= 12) r.status = std::stoi(status_line.substr(9, 3));
    return r;
  }

  // True when the server closes the connection (EOF or reset) within the receive timeout.
  bool closed_by_peer() {
    for (;;) {
      char tmp[4096];
      ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }

  // Waits up to timeout for readable data or EOF.
  bool readable(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

std::string get(const std::string& target, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: t\r\n" + extra + "\r\n";
}

std::string post(const std::string& target, const std::string& body, const std::string& extra = "") {
  return "POST " + target + " HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra +
         "\r\n" + body;
}

HttpOptions quiet() {
  HttpOptions o;
  o.port = 0;
  o.access_log = false;
  return o;
}

std::unique_ptr<HttpServer> must_start(const HttpOptions& o, Handler h) {
  auto r = HttpServer::start(o, std::move(h));
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return std::move(r).value();
}

// Echoes the parsed request as JSON.
HttpResponse echo(HttpRequest& r) {
  nlohmann::json j = {{"method", r.method}, {"target", r.target}, {"path", r.path},
                      {"query", r.query},   {"headers", r.headers}, {"body", r.body},
                      {"remote", r.remote}};
  HttpResponse res;
  res.body = j.dump();
  res.route = "/echo";
  res.headers.emplace_back("X-Test", "yes");
  return res;
}

std::string error_code(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.contains("error")) return "<not a json error: " + body + ">";
  return j["error"]["code"].get<std::string>();
}

// A gate the handler waits on; the test opens it.
class Gate {
 public:
  void open() {
    std::lock_guard<std::mutex> l(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [this] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

template <class F>
bool eventually(F f, std::chrono::milliseconds timeout = 10s) {
  auto until = Clock::now() + timeout;
  while (Clock::now() < until) {
    if (f()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return f();
}

TEST(Http, EchoRoundTrip) {
  auto srv = must_start(quiet(), echo);
  ASSERT_NE(srv->port(), 0);
  EXPECT_EQ(srv->host(), "127.0.0.1");
  Client c(srv->port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send(post("/v1/a%20b/c?x=1&y=hello+w%26rld&x=2&flag", "{\"k\":1}", "X-Custom-Header: Value\r\n")));
  auto r = c.read_response();
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.h("content-type"), "application/json");
  EXPECT_EQ(r.h("x-test"), "yes");
  EXPECT_EQ(r.h("content-length"), std::to_string(r.body.size()));
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["method"], "POST");
  EXPECT_EQ(j["target"], "/v1/a%20b/c?x=1&y=hello+w%26rld&x=2&flag");
  EXPECT_EQ(j["path"], "/v1/a b/c");
  EXPECT_EQ(j["query"]["x"], "2");  // last wins
  EXPECT_EQ(j["query"]["y"], "hello w&rld");
  EXPECT_EQ(j["query"]["flag"], "");
  EXPECT_EQ(j["headers"]["x-custom-header"], "Value");
  EXPECT_EQ(j["headers"]["host"], "t");
  EXPECT_EQ(j["body"], "{\"k\":1}");
  EXPECT_EQ(j["remote"].get<std::string>().rfind("127.0.0.1:", 0), 0u);
}

TEST(Http, KeepAliveAndPipelining) {
  auto srv = must_start(quiet(), [](HttpRequest& r) {
    HttpResponse res;
    res.content_type = "text/plain";
    res.body = r.path + ":" + r.body;
    return res;
  });
  Client c(srv->port());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(c.send(post("/seq/" + std::to_string(i), "b" + std::to_string(i))));
    auto r = c.read_response();
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "/seq/" + std::to_string(i) + ":b" + std::to_string(i));
    EXPECT_NE(r.h("connection"), "close");
  }
  EXPECT_EQ(srv->connections(), 1u);
  // Pipelined: all sent at once, answered in order.
  std::string batch;
  for (int i = 0; i < 10; ++i) batch += post("/p/" + std::to_string(i), std::string(static_cast<size_t>(i) * 100, 'x'));
  ASSERT_TRUE(c.send(batch));
  for (int i = 0; i < 10; ++i) {
    auto r = c.read_response();
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "/p/" + std::to_string(i) + ":" + std::string(static_cast<size_t>(i) * 100, 'x'));
  }
  // Connection: close from the client is honoured.
  ASSERT_TRUE(c.send(get("/last", "Connection: close\r\n")));
  auto r = c.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.h("connection"), "close");
  EXPECT_TRUE(c.closed_by_peer());
}

TEST(Http, ExpectContinueAndHttp10) {
  auto srv = must_start(quiet(), echo);
  Client c(srv->port());
  ASSERT_TRUE(c.send("POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  EXPECT_EQ(c.read_response().status, 100);
  ASSERT_TRUE(c.send("hello"));
  auto r = c.read_response();
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(nlohmann::json::parse(r.body)["body"], "hello");

  // HTTP/1.0 without keep-alive: answered, then closed.
  Client old(srv->port());
  ASSERT_TRUE(old.send("GET /old HTTP/1.0\r\n\r\n"));
  EXPECT_EQ(old.read_response().status, 200);
  EXPECT_TRUE(old.closed_by_peer());
}

TEST(Http, ContentLengthAboveLimitIs413WithoutReadingTheBody) {
  std::atomic<int> calls{0};
  HttpOptions o = quiet();
  o.max_body_bytes = 1024;
  auto srv = must_start(o, [&](HttpRequest& r) {
    ++calls;
    return echo(r);
  });
  Client c(srv->port());
  ASSERT_TRUE(c.send("POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\n"));  // body never sent
  auto r = c.read_response();
  ASSERT_EQ(r.status, 413);
  EXPECT_EQ(error_code(r.body), "payload_too_large");
  EXPECT_EQ(r.h("connection"), "close");
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_EQ(calls.load(), 0);

  // At the limit is fine.
  Client ok(srv->port());
  ASSERT_TRUE(ok.send(post("/ok", std::string(1024, 'a'))));
  EXPECT_EQ(ok.read_response().status, 200);
}

TEST(Http, ChunkedBodyAboveLimitIs413) {
  HttpOptions o = quiet();
  o.max_body_bytes = 1000;
  auto srv = must_start(o, echo);
  Client c(srv->port());
  std::string chunk(600, 'z');
  ASSERT_TRUE(c.send("POST /chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "258\r\n" + chunk + "\r\n258\r\n" + chunk + "\r\n0\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_EQ(r.status, 413);
  EXPECT_EQ(error_code(r.body), "payload_too_large");
  EXPECT_TRUE(c.closed_by_peer());

  // A small chunked body is reassembled.
  Client ok(srv->port());
  ASSERT_TRUE(ok.send("POST /chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
  auto good = ok.read_response();
  ASSERT_EQ(good.status, 200);
  EXPECT_EQ(nlohmann::json::parse(good.body)["body"], "abcde");
}

TEST(Http, HugeHeadersAre431) {
  HttpOptions o = quiet();
  o.max_header_bytes = 2048;
  auto srv = must_start(o, echo);
  Client c(srv->port());
  ASSERT_TRUE(c.send(get("/h", "X-Big: " + std::string(8192, 'h') + "\r\n")));
  auto r = c.read_response();
  ASSERT_EQ(r.status, 431);
  EXPECT_EQ(error_code(r.body), "headers_too_large");
  EXPECT_TRUE(c.closed_by_peer());
}

TEST(Http, MalformedRequestsAre400AndClose) {
  auto srv = must_start(quiet(), echo);
  for (const std::string& bad : {std::string("THIS IS NOT HTTP\r\n\r\n"),
                                 std::string("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n"),
                                 std::string("GET / HTTP/9.9\r\nHost: t\r\n\r\n"),
                                 std::string("GET / HTTP/1.1\r\nBad Header Name: x\r\n\r\n")}) {
    Client c(srv->port());
    ASSERT_TRUE(c.send(bad));
    auto r = c.read_response();
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_EQ(error_code(r.body), "bad_request") << bad;
    EXPECT_TRUE(c.closed_by_peer()) << bad;
  }
}

TEST(Http, SlowClientIsCutAfterReadTimeout) {
  HttpOptions o = quiet();
  o.read_timeout = 300ms;
  auto srv = must_start(o, echo);
  Client c(srv->port());
  // One byte every 50 ms, never finishing the request, until the server answers.
  std::string req = post("/slow", std::string(1000, 's'));
  auto start = Clock::now();
  bool answered = false;
  for (size_t i = 0; i < req.size() && Clock::now() - start < 10s; ++i) {
    if (!c.send(req.substr(i, 1))) break;
    if (c.readable(50ms)) {
      answered = true;
      break;
    }
  }
  EXPECT_TRUE(answered);
  auto r = c.read_response();
  EXPECT_EQ(r.status, 408);
  EXPECT_EQ(error_code(r.body), "request_timeout");
  EXPECT_TRUE(c.closed_by_peer());
  // The connection goes away on the server side too.
  EXPECT_TRUE(eventually([&] { return srv->connections() == 0; }));
}

TEST(Http, IdleKeepAliveConnectionIsClosed) {
  HttpOptions o = quiet();
  o.idle_timeout = 200ms;
  auto srv = must_start(o, echo);
  Client c(srv->port());
  ASSERT_TRUE(c.send(get("/once")));
  EXPECT_EQ(c.read_response().status, 200);
  EXPECT_TRUE(c.closed_by_peer());  // within the client's 10 s receive timeout
  EXPECT_TRUE(eventually([&] { return srv->connections() == 0; }));
}

TEST(Http, FullQueueIs429) {
  HttpOptions o = quiet();
  o.workers = 1;
  o.queue_max = 1;
  Gate gate;
  std::atomic<int> entered{0};
  auto srv = must_start(o, [&](HttpRequest& r) {
    ++entered;
    gate.wait();
    return echo(r);
  });
  Client running(srv->port());
  ASSERT_TRUE(running.send(get("/1")));
  ASSERT_TRUE(eventually([&] { return entered.load() == 1; }));
  Client queued(srv->port());
  ASSERT_TRUE(queued.send(get("/2")));
  ASSERT_TRUE(eventually([&] { return srv->queue_depth() == 1; }));

  Client rejected(srv->port());
  ASSERT_TRUE(rejected.send(get("/3")));
  auto r = rejected.read_response();
  ASSERT_EQ(r.status, 429);
  EXPECT_EQ(r.h("retry-after"), "1");
  EXPECT_EQ(error_code(r.body), "overloaded");
  EXPECT_EQ(entered.load(), 1);

  gate.open();
  EXPECT_EQ(running.read_response().status, 200);
  EXPECT_EQ(queued.read_response().status, 200);
  EXPECT_EQ(entered.load(), 2);
  // The rejected connection stays usable.
  ASSERT_TRUE(rejected.send(get("/4")));
  EXPECT_EQ(rejected.read_response().status, 200);
}

TEST(Http, ManyClientsOnSeveralThreads) {
  auto registry = std::make_shared<prometheus::Registry>();
  HttpOptions o = quiet();
  o.io_threads = 3;
  o.workers = 4;
  o.metrics = registry;
  auto srv = must_start(o, echo);
  constexpr int kClients = 8, kRequests = 25;
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&, t] {
      Client c(srv->port());
      for (int i = 0; i < kRequests; ++i) {
        std::string body = std::to_string(t) + "/" + std::to_string(i);
        if (!c.send(post("/m", body))) return;
        auto r = c.read_response();
        if (r.status == 200 && nlohmann::json::parse(r.body)["body"] == body) ++ok;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), kClients * kRequests);
  srv->drain(10s);
  EXPECT_EQ(srv->connections(), 0u);
}

TEST(Http, HandlerExceptionIs500) {
  auto srv = must_start(quiet(), [](HttpRequest&) -> HttpResponse { throw std::runtime_error("boom"); });
  Client c(srv->port());
  ASSERT_TRUE(c.send(get("/x")));
  auto r = c.read_response();
  ASSERT_EQ(r.status, 500);
  EXPECT_EQ(error_code(r.body), "internal");
  // The connection survives.
  ASSERT_TRUE(c.send(get("/y")));
  EXPECT_EQ(c.read_response().status, 500);
}

TEST(Http, DrainFinishesInFlightAndRefusesNewConnections) {
  HttpOptions o = quiet();
  Gate gate;
  std::atomic<int> entered{0};
  auto srv = must_start(o, [&](HttpRequest& r) {
    ++entered;
    gate.wait();
    return echo(r);
  });
  const uint16_t port = srv->port();
  Client idle(port);  // keep-alive, no request: closed by drain
  Client busy(port);
  ASSERT_TRUE(busy.send(get("/inflight")));
  ASSERT_TRUE(eventually([&] { return entered.load() == 1; }));

  auto drained = std::async(std::launch::async, [&] { srv->drain(30s); });
  // New connections are refused once the acceptor is closed.
  EXPECT_TRUE(eventually([&] { return !Client(port).connected(); }));
  EXPECT_TRUE(idle.closed_by_peer());
  EXPECT_EQ(drained.wait_for(50ms), std::future_status::timeout);  // still waiting for /inflight

  gate.open();
  auto r = busy.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.h("connection"), "close");
  EXPECT_TRUE(busy.closed_by_peer());
  EXPECT_EQ(drained.wait_for(20s), std::future_status::ready);
  EXPECT_EQ(srv->connections(), 0u);
  srv->drain(1s);  // a second drain is a no-op
  srv.reset();
}

TEST(Http, DrainDeadlineCutsStuckRequests) {
  Gate gate;
  auto srv = must_start(quiet(), [&](HttpRequest& r) {
    gate.wait();
    return echo(r);
  });
  Client busy(srv->port());
  ASSERT_TRUE(busy.send(get("/stuck")));
  ASSERT_TRUE(eventually([&] { return srv->connections() == 1; }));
  std::thread opener([&] {
    std::this_thread::sleep_for(300ms);
    gate.open();  // the worker must finish before drain can join it
  });
  srv->drain(100ms);
  opener.join();
  srv.reset();
}

TEST(Http, DestructorShutsDownWithOpenConnections) {
  auto srv = must_start(quiet(), echo);
  Client a(srv->port());
  Client b(srv->port());
  ASSERT_TRUE(a.send(get("/a")));
  EXPECT_EQ(a.read_response().status, 200);
  ASSERT_TRUE(b.send("GET /partial HTTP/1.1\r\nHo"));  // half a request
  ASSERT_TRUE(eventually([&] { return srv->connections() == 2; }));
  srv.reset();
  EXPECT_TRUE(a.closed_by_peer());
  EXPECT_TRUE(b.closed_by_peer());
}

TEST(Http, MaxConnectionsClosesNewOnes) {
  HttpOptions o = quiet();
  o.max_connections = 1;
  auto srv = must_start(o, echo);
  Client first(srv->port());
  ASSERT_TRUE(first.send(get("/1")));
  EXPECT_EQ(first.read_response().status, 200);
  Client second(srv->port());
  EXPECT_TRUE(second.closed_by_peer());
  // The first one is unaffected.
  ASSERT_TRUE(first.send(get("/2")));
  EXPECT_EQ(first.read_response().status, 200);
}

TEST(Http, BindErrors) {
  auto srv = must_start(quiet(), echo);
  HttpOptions o = quiet();
  o.port = srv->port();
  auto again = HttpServer::start(o, echo);
  ASSERT_FALSE(again.is_ok());
  EXPECT_EQ(again.status().code(), Code::kIOError);
  EXPECT_NE(again.status().message().find("cannot bind"), std::string::npos) << again.status().message();

  o = quiet();
  o.host = "not a host name!";
  auto bad = HttpServer::start(o, echo);
  EXPECT_FALSE(bad.is_ok());
}

TEST(Http, MetricsAreRecorded) {
  auto registry = std::make_shared<prometheus::Registry>();
  HttpOptions o = quiet();
  o.metrics = registry;
  auto srv = must_start(o, [](HttpRequest& r) {
    HttpResponse res = echo(r);
    if (r.path == "/nope") res.route.clear();
    return res;
  });
  Client c(srv->port());
  for (const char* path : {"/a", "/b", "/nope"}) {
    ASSERT_TRUE(c.send(get(path)));
    ASSERT_EQ(c.read_response().status, 200);
  }
  srv->drain(10s);  // every response written and recorded

  std::map<std::string, prometheus::MetricFamily> families;
  for (auto& f : registry->Collect()) families[f.name] = f;
  for (const char* name : {"covenant_http_requests_total", "covenant_http_request_duration_seconds",
                           "covenant_http_queue_wait_seconds", "covenant_http_queue_depth",
                           "covenant_http_connections"}) {
    EXPECT_TRUE(families.count(name)) << name;
  }
  auto count = [&](const std::string& route) {
    double total = 0;
    for (const auto& m : families["covenant_http_requests_total"].metric) {
      std::map<std::string, std::string> labels;
      for (const auto& l : m.label) labels[l.name] = l.value;
      if (labels["route"] == route && labels["method"] == "GET" && labels["status"] == "200") total += m.counter.value;
    }
    return total;
  };
  EXPECT_EQ(count("/echo"), 2);
  EXPECT_EQ(count("unmatched"), 1);
  ASSERT_EQ(families["covenant_http_queue_wait_seconds"].metric.size(), 1u);
  EXPECT_EQ(families["covenant_http_queue_wait_seconds"].metric[0].histogram.sample_count, 3u);
  EXPECT_EQ(families["covenant_http_connections"].metric[0].gauge.value, 0);

  // A second server may share the registry.
  auto second = HttpServer::start(o, echo);
  EXPECT_TRUE(second.is_ok()) << second.status().to_string();
}

TEST(Http, AccessLogLine) {
  HttpOptions o = quiet();
  o.access_log = true;
  auto srv = must_start(o, [](HttpRequest& r) {
    HttpResponse res = echo(r);
    res.tenant = "acme";
    res.outcome = "ok";
    return res;
  });
  testing::internal::CaptureStderr();
  {
    Client c(srv->port());
    ASSERT_TRUE(c.send(post("/logged?q=1", "12345", "traceparent: 00-abc-def-01\r\n")));
    ASSERT_EQ(c.read_response().status, 200);
  }
  srv->drain(10s);
  std::string err = testing::internal::GetCapturedStderr();
  size_t start = err.find("{\"");
  ASSERT_NE(start, std::string::npos) << err;
  auto line = nlohmann::json::parse(err.substr(start, err.find('\n', start) - start));
  EXPECT_EQ(line["method"], "POST");
  EXPECT_EQ(line["path"], "/logged");
  EXPECT_EQ(line["route"], "/echo");
  EXPECT_EQ(line["status"], 200);
  EXPECT_EQ(line["tenant"], "acme");
  EXPECT_EQ(line["outcome"], "ok");
  EXPECT_EQ(line["bytes_in"], 5);
  EXPECT_GT(line["bytes_out"].get<int64_t>(), 0);
  EXPECT_GE(line["queue_us"].get<int64_t>(), 0);
  EXPECT_GE(line["total_us"].get<int64_t>(), line["queue_us"].get<int64_t>());
  EXPECT_EQ(line["traceparent"], "00-abc-def-01");
  EXPECT_GT(line["ts"].get<int64_t>(), 1'600'000'000'000);
  EXPECT_EQ(line["remote"].get<std::string>().rfind("127.0.0.1:", 0), 0u);
}

TEST(Http, JsonErrorShape) {
  HttpResponse r = json_error(404, "not_found", "no \"such\" thing");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.content_type, "application/json");
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["error"]["code"], "not_found");
  EXPECT_EQ(j["error"]["message"], "no \"such\" thing");
}

}  // namespace
}  // namespace covenant::server
