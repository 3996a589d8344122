// HTTP/1.1 front end of `covenant serve`: Boost.Beast/Asio accepting
// connections, parsing requests with size limits, and handing each request to
// a bounded worker pool that runs the service's handler. It knows nothing of
// contracts or ledgers: the service (service.h) gives it one Handler.
// Thread-safety: HttpServer's methods may be called from any thread.
// Ownership: start() returns a server the caller owns; it owns its threads.
//
//   HttpOptions o; o.port = 0;
//   auto srv = HttpServer::start(o, [](const HttpRequest& r) { return HttpResponse{200, ...}; }).value();
//   std::cout << "listening on http://127.0.0.1:" << srv->port() << "\n";
//   ... srv->drain(std::chrono::seconds(10));   // SIGTERM: stop accepting, finish in-flight
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "covenant/status.h"

namespace prometheus {
class Registry;
}

namespace covenant::server {

struct HttpRequest {
  std::string method;                          // "GET", "POST", ...
  std::string target;                          // as sent: "/v1/x?a=b"
  std::string path;                            // percent-decoded path without the query: "/v1/x"
  std::map<std::string, std::string> query;    // decoded query parameters (last wins)
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string remote;                          // "ip:port" of the peer
  std::chrono::steady_clock::time_point received;  // when the request was fully read
  std::chrono::steady_clock::time_point started;   // when a worker took it (queue wait = started - received)
  const std::string* header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? nullptr : &it->second;
  }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  // For metrics and the access log: the route template ("/v1/contracts/{name}/approve"),
  // the tenant and a stable outcome ("ok", or the error code). Not sent.
  std::string route;
  std::string tenant;
  std::string outcome;
};

using Handler = std::function<HttpResponse(HttpRequest&)>;

struct HttpOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;                   // 0: the kernel picks a free port
  size_t io_threads = 1;               // Asio threads: accept, read, write
  size_t workers = 2;                  // threads running the handler
  size_t queue_max = 4096;             // requests waiting for a worker; beyond: 429 + Retry-After
  size_t max_connections = 4096;       // beyond: new connections are closed at once
  size_t max_header_bytes = 16 << 10;  // beyond: 431
  size_t max_body_bytes = 4 << 20;     // beyond: 413 (Content-Length checked before reading the body)
  std::chrono::milliseconds read_timeout{10'000};   // a request must arrive whole within this (slow clients)
  std::chrono::milliseconds idle_timeout{60'000};   // keep-alive connection with no request
  std::chrono::milliseconds write_timeout{10'000};
  bool access_log = true;              // one JSON line per request on stderr
  std::shared_ptr<prometheus::Registry> metrics;  // when set, HTTP metrics are added to it
  // When set, each worker thread runs its loop through this (e.g. on a big stack, so that
  // guest calls never hop to a helper thread: covenant::run_with_big_stack).
  std::function<void(const std::function<void()>&)> worker_runner;
};

class HttpServer {
 public:
  // Binds and listens (errors: address in use, bad host), then serves on its own threads.
  static Result<std::unique_ptr<HttpServer>> start(const HttpOptions& options, Handler handler);
  virtual ~HttpServer() = default;
  virtual uint16_t port() const = 0;
  virtual std::string host() const = 0;
  // Stops accepting, answers requests already queued or running, closes idle keep-alive
  // connections, and returns when every connection is closed or the deadline passed.
  virtual void drain(std::chrono::milliseconds deadline) = 0;
  virtual size_t queue_depth() const = 0;
  virtual size_t connections() const = 0;
};

// Helpers for handlers.
// JSON error body {"error": {"code": code, "message": message}}.
HttpResponse json_error(int status, std::string code, std::string message);

}  // namespace covenant::server
