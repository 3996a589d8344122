// covenant serve: the approval pipeline as a long-running HTTP server
// (src/server, docs/api.md). This file only parses flags and a config file,
// wires the service to the HTTP front end, and handles SIGTERM/SIGINT.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>
#include <prometheus/registry.h>

#include "cli/args.h"
#include "cli/command.h"
#include "covenant/engine.h"
#include "server/http.h"
#include "server/service.h"

namespace covenant::cli {
namespace {

using json = nlohmann::json;

constexpr const char* kServeUsage =
    "serve [--listen HOST:PORT] [--data DIR] [--ledger PATH|postgresql://URL] [--pg-schema S] [--config FILE] "
    "[--workers N]";

constexpr const char* kServeFooter = R"(
The first line on stdout is `listening on http://HOST:PORT`. On first start with an empty data
directory a bootstrap admin API key is written to DIR/admin.key (mode 0600). SIGTERM or SIGINT
drains: stop accepting, finish in-flight requests, flush the last commit, exit 0. Routes, roles,
limits and config keys: docs/api.md.)";

int sfail(const std::string& m) {
  std::fprintf(stderr, "covenant serve: %s\n", m.c_str());
  return kExitError;
}

bool parse_u64(const std::string& s, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  *out = std::stoull(s);
  return true;
}

int serve_command(int argc, char** argv) {
  std::string listen = "127.0.0.1:8480", data = "covenant-data", ledger, pg_schema, config;
  std::optional<std::string> listen_flag, data_flag, ledger_flag, schema_flag, workers_flag;
  CLI::App app("covenant serve: the approval pipeline as an HTTP/JSON server (docs/api.md).", "covenant serve");
  configure(app);
  app.footer(kServeFooter);
  auto opt = [&](const char* name, std::optional<std::string>& out, const char* type, const char* desc, const char* def) {
    app.add_option_function<std::string>(name, [&out](const std::string& v) { out = v; }, desc)
        ->type_name(type)
        ->default_str(def);
  };
  opt("--listen", listen_flag, "HOST:PORT", "address to listen on (port 0 picks a free port)", "127.0.0.1:8480");
  opt("--data", data_flag, "DIR",
      "data directory: executor keys, artifact cache, checkpoints, admin.key, and the SQLite ledger", "./covenant-data");
  opt("--ledger", ledger_flag, "L", "the ledger: a SQLite path, or postgresql://... to share one with other servers",
      "DIR/ledger.db");
  opt("--pg-schema", schema_flag, "S", "PostgreSQL schema", "covenant");
  app.add_option("--config", config,
                 "JSON config: {\"listen\", \"data\", \"ledger\", \"pg_schema\", \"workers\", \"queue_max\", "
                 "\"max_connections\", \"max_body_bytes\", \"max_header_bytes\", \"read_timeout_ms\", \"fuel\", "
                 "\"deadline_ms\", \"idempotency_ttl_s\", \"tenant_rate_per_s\", \"tenant_burst\", "
                 "\"checkpoint_interval_ms\", \"drain_timeout_ms\", \"access_log\"}; flags override it")
      ->type_name("FILE");
  opt("--workers", workers_flag, "N", "threads running requests (1-4096; approvals wait for their group commit)", "64");
  if (auto code = parse(app, to_vector(argc, argv), Reporter{"serve", false}, kServeUsage)) return *code;
  if (std::string e = first_error({
          [&] { return config.empty() ? "" : check_input_file("--config", config); },
          [&] { return data_flag ? check_dir("--data", *data_flag, true) : ""; },
          [&] { return ledger_flag ? check_ledger("--ledger", *ledger_flag) : ""; },
      });
      !e.empty())
    return sfail(e);

  server::ServiceOptions so;
  server::HttpOptions ho;
  ho.workers = 64;
  uint64_t drain_ms = 10'000;
  if (!config.empty()) {
    std::ifstream f(config, std::ios::binary);
    if (!f) return sfail("cannot read config " + config);
    std::string text((std::istreambuf_iterator<char>(f)), {});
    json c = json::parse(text, nullptr, false);
    if (c.is_discarded() || !c.is_object()) return sfail(config + ": not a JSON object");
    for (auto& [k, v] : c.items()) {
      auto num = [&](auto* out) -> bool {
        if (!v.is_number_unsigned()) return false;
        *out = v.get<std::remove_pointer_t<decltype(out)>>();
        return true;
      };
      bool ok = true;
      if (k == "listen" && v.is_string()) listen = v;
      else if (k == "data" && v.is_string()) data = v;
      else if (k == "ledger" && v.is_string()) ledger = v;
      else if (k == "pg_schema" && v.is_string()) pg_schema = v;
      else if (k == "workers") ok = num(&ho.workers);
      else if (k == "queue_max") ok = num(&ho.queue_max);
      else if (k == "max_connections") ok = num(&ho.max_connections);
      else if (k == "max_body_bytes") ok = num(&ho.max_body_bytes);
      else if (k == "max_header_bytes") ok = num(&ho.max_header_bytes);
      else if (k == "read_timeout_ms") {
        uint64_t ms = 0;
        ok = num(&ms);
        ho.read_timeout = std::chrono::milliseconds(ms);
      } else if (k == "fuel") ok = num(&so.fuel);
      else if (k == "deadline_ms") ok = num(&so.deadline_ms);
      else if (k == "idempotency_ttl_s") ok = num(&so.idempotency_ttl_s);
      else if (k == "tenant_rate_per_s" && v.is_number()) so.tenant_rate_per_s = v.get<double>();
      else if (k == "tenant_burst" && v.is_number()) so.tenant_burst = v.get<double>();
      else if (k == "checkpoint_interval_ms") ok = num(&so.checkpoint_interval_ms);
      else if (k == "drain_timeout_ms") ok = num(&drain_ms);
      else if (k == "access_log" && v.is_boolean()) ho.access_log = v.get<bool>();
      else return sfail(config + ": unknown or mistyped key \"" + k + "\"");
      if (!ok) return sfail(config + ": \"" + k + "\" must be a non-negative integer");
    }
  }
  if (listen_flag) listen = *listen_flag;
  if (data_flag) data = *data_flag;
  if (ledger_flag) ledger = *ledger_flag;
  if (schema_flag) pg_schema = *schema_flag;
  if (workers_flag) {
    uint64_t w = 0;
    if (!parse_u64(*workers_flag, &w) || w == 0 || w > 4096) return sfail("--workers needs an integer from 1 to 4096");
    ho.workers = w;
  }
  const size_t colon = listen.rfind(':');
  uint64_t port = 0;
  if (colon == std::string::npos || !parse_u64(listen.substr(colon + 1), &port) || port > 65535)
    return sfail("--listen needs HOST:PORT (port 0-65535), got '" + listen + "'");
  ho.host = listen.substr(0, colon);
  if (ho.host.size() > 2 && ho.host.front() == '[' && ho.host.back() == ']') ho.host = ho.host.substr(1, ho.host.size() - 2);
  ho.port = static_cast<uint16_t>(port);
  so.data_dir = data;
  so.ledger = ledger;
  so.pg_schema = pg_schema;

  // Signals are taken by sigwait on this thread only: block them before any thread starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto registry = std::make_shared<prometheus::Registry>();
  ho.metrics = registry;
  // Guest calls recurse on the native stack: run each worker on a big stack (reserved,
  // committed only as used) so no call hops to a helper thread.
  ho.worker_runner = [](const std::function<void()>& loop) {
    run_with_big_stack([&] {
      // Workers run requests in parallel; the group commit is one thread all of them
      // wait for. Under load the scheduler would share the cores evenly among the many
      // runnable workers and starve the committer: give workers a lower priority.
      setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 5);
      loop();
      return 0;
    });
  };
  auto service = server::Service::open(so, registry);
  if (!service) return sfail(service.status().message());
  server::Service* svc = service->get();
  auto http = server::HttpServer::start(ho, [svc](server::HttpRequest& r) { return svc->handle(r); });
  if (!http) return sfail(http.status().message());
  std::string shown = (*http)->host();
  if (shown.find(':') != std::string::npos) shown = "[" + shown + "]";
  std::printf("listening on http://%s:%u\n", shown.c_str(), (unsigned)(*http)->port());
  std::fflush(stdout);
  if (!(*service)->bootstrap_key_path().empty())
    std::fprintf(stderr, "{\"event\":\"bootstrap\",\"admin_key_file\":%s}\n",
                 json((*service)->bootstrap_key_path()).dump().c_str());

  int sig = 0;
  sigwait(&sigs, &sig);
  std::fprintf(stderr, "{\"event\":\"draining\",\"signal\":%d}\n", sig);
  (*http)->drain(std::chrono::milliseconds(drain_ms));
  (*service)->shutdown();
  std::fprintf(stderr, "{\"event\":\"stopped\"}\n");
  return kExitOk;
}

}  // namespace

COVENANT_COMMAND("serve", kServeUsage, serve_command);

}  // namespace covenant::cli
