// HttpServer on Boost.Beast/Asio: see http.h for the contract.
//
// Shape of the implementation:
//  - io threads run one io_context: the acceptor (on its own strand) and every
//    connection (a Session, each on its own strand: all socket work and all of a
//    Session's state are touched only there);
//  - a Session reads one request at a time (idle phase: wait for the first byte
//    under idle_timeout; read phase: the whole request under read_timeout, with our
//    own timer so a 408 can still be written), then queues it to the workers and
//    reads nothing more until the response is written: memory per connection is one
//    request, and pipelined requests are answered in order;
//  - workers pop jobs, run the Handler and post the response back to the Session's
//    strand; they never touch a socket;
//  - a Session counts as a connection from accept until it is destroyed, so drain()
//    waits on that count: zero means no socket, no pending operation, no job.
// Lifetime: Sessions hold a raw pointer to the server; ~Impl joins the workers,
// stops and destroys the io_context (which destroys every pending handler and so
// every Session) before any other member goes away.
#include "server/http.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

namespace covenant::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// After a response that closes the connection we shut down our sending side and
// read (and discard) what the client still sends for at most this long / this many
// bytes, so that closing does not reset the connection before the client has read
// the response (a "lingering close").
constexpr std::chrono::milliseconds kLingerMax{1000};
constexpr size_t kLingerBytesMax = 1 << 20;
// Destructor without a prior drain(): how long requests in flight may take.
constexpr std::chrono::milliseconds kDestructorDrain{2000};
// Accept failed (EMFILE, ...): wait this long before accepting again.
constexpr std::chrono::milliseconds kAcceptRetry{50};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding; invalid escapes are kept as sent. plus_is_space: query strings.
std::string percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]);
      int lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

void split_target(std::string_view target, std::string& path, std::map<std::string, std::string>& query) {
  // Absolute form ("http://host/x?y"): keep the path and query only.
  for (std::string_view scheme : {std::string_view("http://"), std::string_view("https://")}) {
    if (target.size() >= scheme.size() && lower(target.substr(0, scheme.size())) == scheme) {
      size_t slash = target.find('/', scheme.size());
      target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
      break;
    }
  }
  size_t hash = target.find('#');
  if (hash != std::string_view::npos) target = target.substr(0, hash);
  size_t q = target.find('?');
  path = percent_decode(target.substr(0, q), false);
  if (q == std::string_view::npos) return;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      std::string key = percent_decode(pair.substr(0, eq), true);
      std::string value = eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1), true);
      query[std::move(key)] = std::move(value);  // last wins
    }
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
}

// Methods used as a metric label; anything else is "OTHER" (bounded cardinality).
std::string method_label(std::string_view m) {
  static const char* const kKnown[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"};
  for (const char* k : kKnown) {
    if (m == k) return k;
  }
  return m.empty() ? "NONE" : "OTHER";
}

int64_t micros(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class Impl;

// What the access log and the metrics need about one request/response.
struct Exchange {
  std::string method;
  std::string path;
  std::string traceparent;
  size_t bytes_in = 0;
  Clock::time_point received{};  // request fully read (or failed)
  Clock::time_point started{};   // a worker took it; == received when no worker ran
};

struct Metrics {
  prometheus::Family<prometheus::Counter>* requests = nullptr;
  prometheus::Family<prometheus::Histogram>* duration = nullptr;
  prometheus::Histogram* queue_wait = nullptr;
  prometheus::Gauge* queue_depth = nullptr;
  prometheus::Gauge* connections = nullptr;
};

const prometheus::Histogram::BucketBoundaries& latency_buckets() {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return kBuckets;
}

class Session;

struct Job {
  std::shared_ptr<Session> session;
  HttpRequest request;
  Exchange exchange;
};

class Impl final : public HttpServer {
 public:
  Impl(const HttpOptions& options, Handler handler);
  ~Impl() override;

  Status listen();
  void run();

  uint16_t port() const override { return port_; }
  std::string host() const override { return options_.host; }
  void drain(std::chrono::milliseconds deadline) override;
  size_t queue_depth() const override {
    std::lock_guard<std::mutex> lock(queue_mu_);
    return queue_.size();
  }
  size_t connections() const override { return connections_.load(); }

  // Called by Sessions (any thread).
  const HttpOptions& options() const { return options_; }
  bool draining() const { return draining_.load(); }
  void add_session(Session* s, const std::weak_ptr<Session>& w);
  void remove_session(Session* s);
  // False when queue_max jobs are already waiting (the caller answers 429).
  bool enqueue(Job&& job);
  void record(const Exchange& ex, const HttpResponse& res, size_t bytes_out, Clock::time_point done,
              const std::string& remote);

 private:
  void do_accept();
  void on_accept(beast::error_code ec, tcp::socket socket);
  void worker_loop();
  void stop_threads();

  const HttpOptions options_;
  const Handler handler_;
  Metrics metrics_;
  uint16_t port_ = 0;

  std::atomic<bool> draining_{false};
  std::mutex drain_mu_;   // serializes drain() callers
  bool drained_ = false;  // GUARDED_BY(drain_mu_)

  // Connections: registered from construction to destruction of each Session.
  mutable std::mutex conn_mu_;
  std::condition_variable conn_cv_;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions_;  // GUARDED_BY(conn_mu_)
  std::atomic<size_t> connections_{0};

  // Work queue.
  mutable std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Job> queue_;      // GUARDED_BY(queue_mu_)
  bool workers_stop_ = false;  // GUARDED_BY(queue_mu_)
  std::vector<std::thread> workers_;

  std::mutex log_mu_;  // one access-log line at a time

  // Declared last, destroyed explicitly in ~Impl before everything above.
  std::unique_ptr<asio::io_context> ioc_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::unique_ptr<asio::steady_timer> accept_retry_;
  std::vector<std::thread> io_threads_;
};

// One connection. Every member below is touched only on the strand of stream_
// (the constructor and destructor aside).
class Session : public std::enable_shared_from_this<Session> {
 public:
  enum class State { kIdle, kReading, kHandling, kWriting, kLingering, kClosed };

  Session(tcp::socket&& socket, Impl* server)
      : server_(server), stream_(std::move(socket)), read_timer_(stream_.get_executor()) {
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec) {
      remote_ = ep.address().is_v6() ? "[" + ep.address().to_string() + "]:" + std::to_string(ep.port())
                                     : ep.address().to_string() + ":" + std::to_string(ep.port());
    }
  }
  ~Session() { server_->remove_session(this); }

  const std::string& remote() const { return remote_; }

  void start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if (self->server_->draining()) return self->close();
      self->wait_for_request(/*first=*/true);
    });
  }

  // drain(): idle connections close now, the others after their response.
  void on_drain() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if (self->state_ == State::kIdle) self->close();
    });
  }

  // After the drain deadline.
  void force_close() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->close(); });
  }

  // From a worker: the handler's answer.
  void post_response(HttpResponse res, Exchange ex) {
    asio::post(stream_.get_executor(), [self = shared_from_this(), res = std::move(res), ex = std::move(ex)]() mutable {
      if (self->state_ != State::kHandling) return;  // closed meanwhile
      self->write(std::move(res), std::move(ex), !self->keep_alive_);
    });
  }

 private:
  // Idle phase: wait for the first byte of the next request (none buffered).
  void wait_for_request(bool first) {
    if (server_->draining()) return close();  // drain() may have passed us while we wrote
    if (buffer_.size() > 0) return read_request();  // pipelined
    state_ = State::kIdle;
    // A fresh connection must start its request within read_timeout; between
    // keep-alive requests the client may stay quiet for idle_timeout.
    const auto& o = server_->options();
    stream_.expires_after(first ? std::min(o.read_timeout, o.idle_timeout) : o.idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
      if (self->state_ != State::kIdle) return;  // closed (drain) meanwhile
      if (ec || n == 0) return self->close();
      self->buffer_.commit(n);
      self->read_request();
    });
  }

  // Read phase: the whole request within read_timeout.
  void read_request() {
    state_ = State::kReading;
    stream_.expires_never();
    const auto& o = server_->options();
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(std::min<size_t>(o.max_header_bytes, UINT32_MAX)));
    parser_->body_limit(o.max_body_bytes);
    timed_out_ = false;
    uint64_t seq = ++read_seq_;
    read_timer_.expires_after(o.read_timeout);
    read_timer_.async_wait([self = shared_from_this(), seq](beast::error_code ec) {
      if (ec || self->read_seq_ != seq || self->state_ != State::kReading) return;
      self->timed_out_ = true;
      beast::error_code ignored;
      self->stream_.socket().cancel(ignored);
    });
    bhttp::async_read_header(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->on_header(ec);
    });
  }

  void on_header(beast::error_code ec) {
    if (state_ != State::kReading) return;
    if (ec) return on_read_error(ec);
    // The parser already refused a Content-Length above body_limit (413).
    const auto& req = parser_->get();
    auto expect = req.find(bhttp::field::expect);
    if (expect != req.end() && lower(expect->value()) == "100-continue" && !parser_->is_done()) {
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(stream_, asio::buffer(kContinue), [self = shared_from_this()](beast::error_code ec, size_t) {
        if (self->state_ != State::kReading) return;
        if (ec) return self->on_read_error(ec);
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    bhttp::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (self->state_ != State::kReading) return;
      if (ec) return self->on_read_error(ec);
      self->on_request();
    });
  }

  // Fill what the log knows of a request that failed to parse.
  Exchange partial_exchange() {
    Exchange ex;
    ex.received = ex.started = Clock::now();
    if (parser_ && parser_->got_some()) {
      const auto& req = parser_->get();
      ex.method = std::string(req.method_string());
      std::string path;
      std::map<std::string, std::string> ignored;
      split_target(std::string_view(req.target().data(), req.target().size()), path, ignored);
      ex.path = std::move(path);
    }
    return ex;
  }

  void on_read_error(beast::error_code ec) {
    read_timer_.cancel();
    if (timed_out_) {
      // Slow headers or body: answer 408 if the socket still takes it.
      return write(json_error(408, "request_timeout", "the request did not arrive within the read timeout"),
                   partial_exchange(), /*close_after=*/true);
    }
    if (ec == bhttp::error::body_limit) {
      return write(json_error(413, "payload_too_large",
                              "the request body exceeds " + std::to_string(server_->options().max_body_bytes) + " bytes"),
                   partial_exchange(), true);
    }
    if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow) {
      return write(json_error(431, "headers_too_large",
                              "the request header exceeds " + std::to_string(server_->options().max_header_bytes) +
                                  " bytes"),
                   partial_exchange(), true);
    }
    if (ec.category() == beast::error_code(bhttp::error::bad_method).category() &&
        ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
      return write(json_error(400, "bad_request", "malformed HTTP request: " + ec.message()), partial_exchange(), true);
    }
    // The peer went away (end of stream, reset, partial message): nobody to answer.
    close();
  }

  void on_request() {
    read_timer_.cancel();
    state_ = State::kHandling;
    auto msg = parser_->release();
    parser_.reset();
    keep_alive_ = msg.keep_alive();

    Job job;
    HttpRequest& r = job.request;
    r.method = std::string(msg.method_string());
    r.target = std::string(msg.target());
    split_target(r.target, r.path, r.query);
    for (const auto& f : msg) {
      std::string name = lower(f.name_string());
      auto [it, inserted] = r.headers.try_emplace(std::move(name), std::string(f.value()));
      if (!inserted) it->second += ", " + std::string(f.value());
    }
    r.body = std::move(msg.body());
    r.remote = remote_;
    r.received = Clock::now();
    r.started = r.received;

    Exchange& ex = job.exchange;
    ex.method = r.method;
    ex.path = r.path;
    if (const std::string* tp = r.header("traceparent")) ex.traceparent = *tp;
    ex.bytes_in = r.body.size();
    ex.received = ex.started = r.received;

    job.session = shared_from_this();
    Exchange ex_copy = ex;  // job is moved below
    if (!server_->enqueue(std::move(job))) {
      HttpResponse res = json_error(429, "overloaded", "too many requests are waiting; retry later");
      res.headers.emplace_back("Retry-After", "1");
      write(std::move(res), std::move(ex_copy), !keep_alive_);
    }
  }

  void write(HttpResponse res, Exchange ex, bool close_after) {
    read_timer_.cancel();
    if (state_ == State::kClosed) return;
    if (server_->draining()) close_after = true;
    state_ = State::kWriting;
    res_.emplace();
    auto& out = *res_;
    out.version(11);
    if (res.status < 200 || res.status > 599) res = json_error(500, "internal", "the handler returned an invalid status");
    if (res.status == 204 || res.status == 304) res.body.clear();  // no body allowed (prepare_payload would throw)
    out.result(static_cast<unsigned>(res.status));
    out.set(bhttp::field::content_type, res.content_type);
    for (const auto& [name, value] : res.headers) out.insert(name, value);
    out.body() = std::move(res.body);
    out.keep_alive(!close_after);
    out.prepare_payload();
    // Only the log and metrics need these from now on.
    res.body.clear();
    close_after_ = close_after;
    stream_.expires_after(server_->options().write_timeout);
    bhttp::async_write(stream_, out,
                       [self = shared_from_this(), res = std::move(res), ex = std::move(ex)](beast::error_code ec,
                                                                                             size_t bytes) {
                         self->server_->record(ex, res, bytes, Clock::now(), self->remote_);
                         self->res_.reset();
                         if (self->state_ != State::kWriting) return;
                         if (ec) return self->close();
                         self->stream_.expires_never();
                         if (self->close_after_) return self->linger();
                         self->wait_for_request(/*first=*/false);
                       });
  }

  // Shut down our side, then discard what the peer still sends, bounded in time and size.
  void linger() {
    state_ = State::kLingering;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return close();
    linger_bytes_ = 0;
    stream_.expires_after(std::min(kLingerMax, server_->options().read_timeout));
    linger_read();
  }

  void linger_read() {
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
      if (self->state_ != State::kLingering) return;
      self->linger_bytes_ += n;
      if (ec || self->linger_bytes_ > kLingerBytesMax) return self->close();
      self->linger_read();
    });
  }

  void close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    read_timer_.cancel();
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  Impl* const server_;
  beast::tcp_stream stream_;
  asio::steady_timer read_timer_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::response<bhttp::string_body>> res_;
  std::string remote_;
  State state_ = State::kIdle;
  uint64_t read_seq_ = 0;
  bool timed_out_ = false;
  bool keep_alive_ = true;
  bool close_after_ = false;
  size_t linger_bytes_ = 0;
};

Impl::Impl(const HttpOptions& options, Handler handler)
    : options_(options), handler_(std::move(handler)), ioc_(std::make_unique<asio::io_context>()) {
  if (options_.metrics) {
    auto& reg = *options_.metrics;
    metrics_.requests = &prometheus::BuildCounter()
                             .Name("covenant_http_requests_total")
                             .Help("HTTP requests answered, by route, method and status")
                             .Register(reg);
    metrics_.duration = &prometheus::BuildHistogram()
                             .Name("covenant_http_request_duration_seconds")
                             .Help("Time from a request fully read to its response written, by route")
                             .Register(reg);
    metrics_.queue_wait = &prometheus::BuildHistogram()
                               .Name("covenant_http_queue_wait_seconds")
                               .Help("Time a request waited for a worker")
                               .Register(reg)
                               .Add({}, latency_buckets());
    metrics_.queue_depth = &prometheus::BuildGauge()
                                .Name("covenant_http_queue_depth")
                                .Help("Requests waiting for a worker")
                                .Register(reg)
                                .Add({});
    metrics_.connections = &prometheus::BuildGauge()
                                .Name("covenant_http_connections")
                                .Help("Open HTTP connections")
                                .Register(reg)
                                .Add({});
  }
}

Impl::~Impl() {
  bool drained;
  {
    std::lock_guard<std::mutex> lock(drain_mu_);
    drained = drained_;
  }
  if (!drained) drain(kDestructorDrain);
  stop_threads();  // no-op after drain(); needed if listen() failed
  // Destroys pending handlers and with them the last Sessions, which unregister
  // themselves from sessions_: that map, the mutexes and metrics are still alive.
  accept_retry_.reset();
  acceptor_.reset();
  ioc_.reset();
  assert(connections_.load() == 0);
}

Status Impl::listen() {
  beast::error_code ec;
  tcp::resolver resolver(*ioc_);
  auto results = resolver.resolve(options_.host, std::to_string(options_.port),
                                  tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return Status::invalid("cannot resolve listen host '" + options_.host + "': " + ec.message());
  }
  tcp::endpoint endpoint = results.begin()->endpoint();
  acceptor_ = std::make_unique<tcp::acceptor>(asio::make_strand(*ioc_));
  accept_retry_ = std::make_unique<asio::steady_timer>(acceptor_->get_executor());
  const std::string where = options_.host + ":" + std::to_string(options_.port);
  if (acceptor_->open(endpoint.protocol(), ec)) return Status::io("cannot open a socket for " + where + ": " + ec.message());
  if (acceptor_->set_option(asio::socket_base::reuse_address(true), ec)) {
    return Status::io("cannot set SO_REUSEADDR on " + where + ": " + ec.message());
  }
  if (acceptor_->bind(endpoint, ec)) return Status::io("cannot bind " + where + ": " + ec.message());
  if (acceptor_->listen(asio::socket_base::max_listen_connections, ec)) {
    return Status::io("cannot listen on " + where + ": " + ec.message());
  }
  port_ = acceptor_->local_endpoint(ec).port();
  if (ec) return Status::io("cannot read the bound address of " + where + ": " + ec.message());
  return Status::ok();
}

void Impl::run() {
  work_.emplace(asio::make_work_guard(*ioc_));
  do_accept();
  size_t n_io = std::max<size_t>(1, options_.io_threads);
  for (size_t i = 0; i < n_io; ++i) io_threads_.emplace_back([this] { ioc_->run(); });
  size_t n_workers = std::max<size_t>(1, options_.workers);
  for (size_t i = 0; i < n_workers; ++i)
    workers_.emplace_back([this] {
      if (options_.worker_runner) options_.worker_runner([this] { worker_loop(); });
      else worker_loop();
    });
}

void Impl::do_accept() {
  acceptor_->async_accept(asio::make_strand(*ioc_),
                          [this](beast::error_code ec, tcp::socket socket) { on_accept(ec, std::move(socket)); });
}

void Impl::on_accept(beast::error_code ec, tcp::socket socket) {
  if (!acceptor_->is_open() || ec == asio::error::operation_aborted) return;
  if (ec) {
    // Out of descriptors and the like: try again shortly rather than spin.
    accept_retry_->expires_after(kAcceptRetry);
    accept_retry_->async_wait([this](beast::error_code ec) {
      if (!ec && acceptor_->is_open()) do_accept();
    });
    return;
  }
  if (draining_.load() || connections_.load() >= options_.max_connections) {
    beast::error_code ignored;
    socket.close(ignored);  // refused at once
  } else {
    auto session = std::make_shared<Session>(std::move(socket), this);
    add_session(session.get(), session);
    session->start();
  }
  do_accept();
}

void Impl::add_session(Session* s, const std::weak_ptr<Session>& w) {
  {
    std::lock_guard<std::mutex> lock(conn_mu_);
    sessions_.emplace(s, w);
    size_t n = connections_.fetch_add(1) + 1;
    if (metrics_.connections) metrics_.connections->Set(static_cast<double>(n));
  }
}

void Impl::remove_session(Session* s) {
  {
    std::lock_guard<std::mutex> lock(conn_mu_);
    sessions_.erase(s);
    size_t n = connections_.fetch_sub(1) - 1;
    if (metrics_.connections) metrics_.connections->Set(static_cast<double>(n));
  }
  conn_cv_.notify_all();
}

bool Impl::enqueue(Job&& job) {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    if (workers_stop_ || queue_.size() >= options_.queue_max) return false;
    queue_.push_back(std::move(job));
    if (metrics_.queue_depth) metrics_.queue_depth->Set(static_cast<double>(queue_.size()));
  }
  queue_cv_.notify_one();
  return true;
}

void Impl::worker_loop() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(queue_mu_);
      queue_cv_.wait(lock, [this] { return workers_stop_ || !queue_.empty(); });
      if (workers_stop_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      if (metrics_.queue_depth) metrics_.queue_depth->Set(static_cast<double>(queue_.size()));
    }
    job.request.started = Clock::now();
    job.exchange.started = job.request.started;
    if (metrics_.queue_wait) {
      metrics_.queue_wait->Observe(std::chrono::duration<double>(job.request.started - job.request.received).count());
    }
    HttpResponse res;
    try {
      res = handler_(job.request);
    } catch (const std::exception& e) {
      res = json_error(500, "internal", std::string("the handler failed: ") + e.what());
    } catch (...) {
      res = json_error(500, "internal", "the handler failed");
    }
    job.session->post_response(std::move(res), std::move(job.exchange));
  }
}

void Impl::record(const Exchange& ex, const HttpResponse& res, size_t bytes_out, Clock::time_point done,
                  const std::string& remote) {
  const std::string route = res.route.empty() ? "unmatched" : res.route;
  if (metrics_.requests) {
    metrics_.requests
        ->Add({{"route", route}, {"method", method_label(ex.method)}, {"status", std::to_string(res.status)}})
        .Increment();
    metrics_.duration->Add({{"route", route}}, latency_buckets())
        .Observe(std::chrono::duration<double>(done - ex.received).count());
  }
  if (!options_.access_log) return;
  std::string outcome = res.outcome;
  if (outcome.empty()) outcome = res.status < 400 ? "ok" : "http_" + std::to_string(res.status);
  nlohmann::json line = {
      {"ts", unix_ms_now()},
      {"remote", remote},
      {"method", ex.method},
      {"path", ex.path},
      {"route", route},
      {"status", res.status},
      {"tenant", res.tenant},
      {"outcome", outcome},
      {"bytes_in", ex.bytes_in},
      {"bytes_out", bytes_out},
      {"queue_us", micros(ex.started - ex.received)},
      {"total_us", micros(done - ex.received)},
  };
  if (!ex.traceparent.empty()) line["traceparent"] = ex.traceparent;
  // Invalid UTF-8 in a path must not throw: replace it.
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::lock_guard<std::mutex> lock(log_mu_);
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
}

void Impl::drain(std::chrono::milliseconds deadline) {
  std::lock_guard<std::mutex> drain_lock(drain_mu_);
  if (drained_) return;
  drained_ = true;
  const auto until = Clock::now() + deadline;
  draining_.store(true);
  if (!work_) return;  // never ran

  // Stop accepting; wait until the acceptor is closed so that new connections are refused.
  std::promise<void> closed;
  asio::post(acceptor_->get_executor(), [this, &closed] {
    beast::error_code ignored;
    acceptor_->close(ignored);
    accept_retry_->cancel();
    closed.set_value();
  });
  closed.get_future().wait();

  auto snapshot = [this] {
    std::vector<std::shared_ptr<Session>> live;
    std::lock_guard<std::mutex> lock(conn_mu_);
    for (auto& [ptr, weak] : sessions_) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
    return live;
  };
  for (auto& s : snapshot()) s->on_drain();

  {
    std::unique_lock<std::mutex> lock(conn_mu_);
    conn_cv_.wait_until(lock, until, [this] { return connections_.load() == 0; });
  }
  // Past the deadline: cut whatever remains.
  for (auto& s : snapshot()) s->force_close();
  stop_threads();
}

void Impl::stop_threads() {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    workers_stop_ = true;
  }
  queue_cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  work_.reset();
  if (ioc_) ioc_->stop();
  for (auto& t : io_threads_) t.join();
  io_threads_.clear();
  // Jobs never run (only past a drain deadline): their Sessions go now that no
  // thread touches sockets any more.
  std::deque<Job> dropped;
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    dropped.swap(queue_);
  }
  dropped.clear();
}

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::start(const HttpOptions& options, Handler handler) {
  if (!handler) return Status::invalid("HttpServer::start: no handler");
  if (options.queue_max == 0) return Status::invalid("HttpServer::start: queue_max must be at least 1");
  std::unique_ptr<Impl> impl;
  try {
    impl = std::make_unique<Impl>(options, std::move(handler));
  } catch (const std::exception& e) {
    // prometheus-cpp refuses a family name already registered with another type.
    return Status::invalid(std::string("HttpServer::start: cannot register metrics: ") + e.what());
  }
  Status st = impl->listen();
  if (!st.is_ok()) return st;
  impl->run();
  return std::unique_ptr<HttpServer>(std::move(impl));
}

HttpResponse json_error(int status, std::string code, std::string message) {
  HttpResponse res;
  res.status = status;
  res.content_type = "application/json";
  nlohmann::json body = {{"error", {{"code", code}, {"message", std::move(message)}}}};
  res.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  res.outcome = std::move(code);
  return res;
}

}  // namespace covenant::server
