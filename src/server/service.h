// The service behind `covenant serve`: API v1 (docs/api.md) over the
// settlement pipeline — tenants and API keys, the registry of deployments and
// versions with governed activation, approvals, receipts and proofs, holds,
// idempotency, rate limits and metrics. It keeps its records as kv rows of
// the ledger's database (prefix 0x01), so several servers on one PostgreSQL
// share tenants, keys, deployments and idempotency records.
// Thread-safety: handle() may be called from any number of threads.
// Ownership: Service owns the pipeline, the engine and its background thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "covenant/status.h"
#include "server/http.h"

namespace prometheus {
class Registry;
}

namespace covenant::server {

struct ServiceOptions {
  std::string data_dir;            // required: keys/, cache/, checkpoints/, admin.key, ledger.db
  std::string ledger;              // empty: <data_dir>/ledger.db; else a SQLite path or postgresql:// URL
  std::string pg_schema;           // empty: the storage default
  uint64_t fuel = 100'000'000;     // per call
  uint32_t deadline_ms = 2'000;    // per call, wall clock
  uint64_t idempotency_ttl_s = 24 * 3600;
  double tenant_rate_per_s = 0;    // per tenant request rate; 0 = unlimited
  double tenant_burst = 0;         // bucket size; 0 = max(1, rate)
  uint64_t checkpoint_interval_ms = 1'000;  // cut a checkpoint this often when the journal grew
  uint64_t refresh_interval_ms = 500;       // re-read deployments written by other servers
  size_t module_bytes_max = 1u << 20;       // one stored module
};

class Service {
 public:
  static Result<std::unique_ptr<Service>> open(const ServiceOptions& options,
                                               std::shared_ptr<prometheus::Registry> metrics);
  virtual ~Service() = default;
  virtual HttpResponse handle(HttpRequest& request) = 0;
  // Ready: the ledger is open and every active version is compiled.
  virtual bool ready() const = 0;
  // The bootstrap admin key written on first start ("" when the data directory had one).
  virtual std::string bootstrap_key_path() const = 0;
  // Stops the background thread, waits for queued commits, cuts a last checkpoint.
  virtual void shutdown() = 0;
};

}  // namespace covenant::server
