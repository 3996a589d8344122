// API v1 of `covenant serve` (docs/api.md), over the settlement pipeline.
#include "server/service.h"

#include <sodium.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <thread>

#include <nlohmann/json.hpp>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "covenant/contract.h"
#include "covenant/engine.h"
#include "covenant/merkle.h"
#include "host/kv_store.h"
#include "server/openapi.h"
#include "settle/interface_diff.h"
#include "settle/jcs.h"
#include "settle/pipeline.h"

namespace covenant::server {

using json = nlohmann::json;

namespace {

// ---------------------------------------------------------------------------
// Rows (kv rows of the ledger's database, prefix 0x01).

const std::string kRow = "\x01";
std::string key_row(const std::string& id) { return kRow + "key/" + id; }
std::string keyhash_row(const std::string& h) { return kRow + "keyhash/" + h; }
std::string contract_row(const std::string& t, const std::string& n) { return kRow + "contract/" + t + "/" + n; }
std::string version_row(const std::string& t, const std::string& n, const std::string& v) {
  return kRow + "version/" + t + "/" + n + "/" + v;
}
std::string module_row(const std::string& v) { return kRow + "module/" + v; }
std::string idem_row(const std::string& t, const std::string& k) { return kRow + "idem/" + t + "/" + k; }
std::string receipt_row(const std::string& id) { return kRow + "rcpt/" + id; }
std::string executor_row(const std::string& kid) { return kRow + "executor/" + kid; }
std::string agent_key_row(const std::string& t, const std::string& agent, const std::string& kid,
                          const std::string& kind = "agent") {
  return kRow + kind + "key/" + t + "/" + agent + "/" + kid;
}
std::string mandate_row(const std::string& t, const std::string& id) { return kRow + "mandate/" + t + "/" + id; }
std::string budget_row(const std::string& t, const std::string& agent) { return settle::budget_row_key(t, agent); }
std::string nonce_row(const std::string& t, const std::string& agent, const std::string& nonce) {
  return kRow + "nonce/" + t + "/" + agent + "/" + nonce;
}

// A JSON amount: an unsigned integer as a number or a decimal string, within u64.
std::optional<uint64_t> json_u64(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (!v.is_string()) return std::nullopt;
  const std::string& t = v.get_ref<const std::string&>();
  if (t.empty() || t.size() > 20) return std::nullopt;
  uint64_t out = 0;
  for (char c : t) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (out > (UINT64_MAX - d) / 10) return std::nullopt;
    out = out * 10 + d;
  }
  return out;
}

// Signed intents (docs/api.md): the longest validity window a signature may
// claim, which bounds how long its nonce row is kept.
constexpr uint64_t kSignedIntentWindowMsMax = 24ull * 3600 * 1000;

// Agent ids, key ids and nonces in URLs and rows: printable, no '/'.
bool valid_token(const std::string& s, size_t min_len = 1) {
  if (s.size() < min_len || s.size() > 64) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == ':' || c == '@'))
      return false;
  return true;
}

uint64_t unix_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

std::string sha256_hex(std::string_view s) {
  return to_hex(sha256(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size())));
}

std::string random_hex(size_t n) {
  std::vector<uint8_t> b(n);
  randombytes_buf(b.data(), n);
  return to_hex(b);
}

bool valid_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) return false;
  return s[0] != '.';
}

// ---------------------------------------------------------------------------
// Responses

HttpResponse ok_json(int status, const json& body) {
  HttpResponse r;
  r.status = status;
  r.body = body.dump();
  r.outcome = "ok";
  return r;
}

HttpResponse err(int status, const std::string& code, const std::string& message) {
  HttpResponse r = json_error(status, code, message);
  r.outcome = code;
  // Every 503 is temporary (the ledger is unreachable, a disk is full, not ready yet).
  if (status == 503) r.headers.push_back({"Retry-After", "1"});
  return r;
}

struct ApiError {
  int status;
  std::string code;
  std::string message;
};

// Strict JSON: a duplicate key anywhere is an error, positions are reported.
Result<json> parse_strict(const std::string& text, const std::string& what) {
  std::vector<std::set<std::string>> keys;
  std::string dup;
  auto cb = [&](int, json::parse_event_t ev, json& parsed) -> bool {
    if (ev == json::parse_event_t::object_start) keys.emplace_back();
    else if (ev == json::parse_event_t::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (ev == json::parse_event_t::key && !keys.empty()) {
      const std::string k = parsed.get<std::string>();
      if (!keys.back().insert(k).second && dup.empty()) dup = k;
    }
    return true;
  };
  try {
    json j = json::parse(text, cb, true);
    if (!dup.empty()) return Status::invalid(what + ": duplicate key \"" + dup + "\"");
    return j;
  } catch (const json::parse_error& e) {
    return Status::invalid(what + ": not valid JSON at byte " + std::to_string(e.byte) + ": " +
                           std::string(e.what()).substr(std::string(e.what()).find(':') + 2));
  }
}

std::optional<TraceId> parse_traceparent(const std::string* tp) {
  // version "-" trace-id(32 hex) "-" parent-id(16 hex) "-" flags(2 hex)
  if (!tp || tp->size() < 55 || (*tp)[2] != '-' || (*tp)[35] != '-') return std::nullopt;
  TraceId t;
  if (!from_hex(std::string_view(*tp).substr(3, 32), t)) return std::nullopt;
  if (std::all_of(t.begin(), t.end(), [](uint8_t b) { return b == 0; })) return std::nullopt;
  return t;
}

// ---------------------------------------------------------------------------

struct Principal {
  std::string id;
  std::string tenant;
  std::string role;  // admin | deployer | caller | auditor
  bool system() const { return tenant == "system" && role == "admin"; }
};

struct Version {
  std::string version;
  std::shared_ptr<Contract> contract;
  std::string wit;
  std::string grants;
  std::vector<uint8_t> module;
  bool require_signed_intents = false;  // approvals must carry an agent's signature
  std::vector<settle::MaskRule> mask;   // fields masked in stored copies (docs/api.md, "Masking")
};

struct Deployment {
  std::mutex mu;
  std::string active;                                   // GUARDED_BY(mu)
  std::map<std::string, std::shared_ptr<Version>> versions;  // GUARDED_BY(mu)
};

struct TokenBucket {
  double tokens = 0;
  std::chrono::steady_clock::time_point last;
};

class ServiceImpl final : public Service {
 public:
  ServiceOptions opts;
  std::shared_ptr<prometheus::Registry> registry;
  std::unique_ptr<settle::Pipeline> pipeline;
  std::unique_ptr<Engine> engine;
  std::string bootstrap_path;

  std::mutex deps_mu;
  std::map<std::string, std::shared_ptr<Deployment>> deps;  // "tenant/name"

  std::mutex keys_mu;
  struct CachedKey {
    Principal p;
    std::chrono::steady_clock::time_point at;
  };
  std::map<std::string, CachedKey> key_cache;  // hash -> principal
  struct CachedRow {
    std::optional<std::string> value;
    std::chrono::steady_clock::time_point at;
  };
  // Agent key rows read by signed approvals (row key -> value), kept 2 s like API
  // keys: a revocation on another server takes effect within that; on this one at once.
  std::map<std::string, CachedRow> agent_key_cache;  // GUARDED_BY(keys_mu)

  std::mutex idem_mu;
  std::set<std::string> idem_inflight;

  std::mutex rate_mu;
  std::map<std::string, TokenBucket> buckets;

  std::mutex tree_mu;
  MerkleTree tree;  // GUARDED_BY(tree_mu): the journal's Merkle tree, grown as it grows

  std::atomic<bool> is_ready{false};
  std::atomic<bool> stopping{false};
  std::mutex bg_mu;
  std::condition_variable bg_cv;
  std::thread bg;

  // Metrics.
  prometheus::Family<prometheus::Histogram>* h_stage = nullptr;
  prometheus::Histogram* h_queue = nullptr;
  prometheus::Histogram* h_execute = nullptr;
  prometheus::Histogram* h_sign = nullptr;
  prometheus::Histogram* h_commit = nullptr;
  prometheus::Histogram* h_total = nullptr;
  prometheus::Family<prometheus::Counter>* c_decisions = nullptr;
  prometheus::Gauge* g_queue = nullptr;
  prometheus::Gauge* g_versions = nullptr;
  prometheus::Gauge* g_pooled = nullptr;
  prometheus::Gauge* g_loaded = nullptr;
  prometheus::Gauge* g_batches = nullptr;
  prometheus::Gauge* g_committed = nullptr;
  prometheus::Gauge* g_resigned = nullptr;
  prometheus::Gauge* g_commit_failures = nullptr;
  prometheus::Counter* c_kv_conflicts = nullptr;

  bool ready() const override { return is_ready.load(); }
  std::string bootstrap_key_path() const override { return bootstrap_path; }

  ~ServiceImpl() override { shutdown(); }

  void shutdown() override {
    if (stopping.exchange(true)) return;
    bg_cv.notify_all();
    if (bg.joinable()) bg.join();
    if (pipeline) {
      pipeline->close();
      auto cp = pipeline->maybe_checkpoint(1);
      if (!cp) std::fprintf(stderr, "{\"event\":\"checkpoint_failed\",\"error\":%s}\n", json(cp.status().message()).dump().c_str());
    }
  }

  Ledger& ledger() { return pipeline->ledger(); }

  // ---- setup ----

  Status init() {
    std::error_code ec;
    std::filesystem::create_directories(opts.data_dir, ec);
    if (ec) return Status::io("cannot create data directory " + opts.data_dir + ": " + ec.message());
    ::chmod(opts.data_dir.c_str(), 0700);
    settle::PipelineOptions po;
    po.ledger = opts.ledger.empty() ? opts.data_dir + "/ledger.db" : opts.ledger;
    po.pg_schema = opts.pg_schema;
    po.keys_dir = opts.data_dir + "/keys";
    po.checkpoint_dir = opts.data_dir + "/checkpoints";
    po.origin = "covenant.local/ledger";
    auto p = settle::Pipeline::open(po);
    if (!p) return p.status();
    pipeline = std::move(*p);
    EngineConfig ec2;
    ec2.cache_dir = opts.data_dir + "/cache";
    auto e = Engine::create(ec2);
    if (!e) return e.status();
    engine = std::move(*e);
    setup_metrics();

    // This executor's public key, so every key that ever signed stays listed.
    const std::string kid = to_hex(pipeline->key().kid());
    auto existing = ledger().kv_get(executor_row(kid));
    if (!existing) return existing.status();
    if (!*existing) {
      json row = {{"kid", kid}, {"public_key_hex", to_hex(pipeline->key().public_key())}, {"status", "active"},
                  {"first_seen_ms", unix_ms()}};
      COVENANT_RETURN_IF_ERROR(put_rows({}, {{executor_row(kid), row.dump()}}));
    }
    COVENANT_RETURN_IF_ERROR(bootstrap());
    COVENANT_RETURN_IF_ERROR(refresh_deployments());
    is_ready = true;
    bg = std::thread([this] { background(); });
    return Status::ok();
  }

  void setup_metrics() {
    using namespace prometheus;
    auto& hist = BuildHistogram()
                     .Name("covenant_approve_stage_seconds")
                     .Help("Time of each stage of an approval: queue (wait for the committer), execute, sign, commit, total")
                     .Register(*registry);
    h_stage = &hist;
    const Histogram::BucketBoundaries b = {0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                           0.0025,   0.005,   0.01,     0.025,   0.05,   0.1,     0.25,   1};
    h_queue = &hist.Add({{"stage", "queue"}}, b);
    h_execute = &hist.Add({{"stage", "execute"}}, b);
    h_sign = &hist.Add({{"stage", "sign"}}, b);
    h_commit = &hist.Add({{"stage", "commit"}}, b);
    h_total = &hist.Add({{"stage", "total"}}, b);
    c_decisions = &BuildCounter()
                       .Name("covenant_decisions_total")
                       .Help("Contract calls by route and outcome")
                       .Register(*registry);
    auto& g = BuildGauge().Name("covenant_pipeline").Help("Pipeline gauges").Register(*registry);
    g_queue = &g.Add({{"what", "queue_depth"}});
    g_versions = &g.Add({{"what", "active_versions"}});
    g_loaded = &g.Add({{"what", "loaded_versions"}});
    g_pooled = &g.Add({{"what", "pooled_instances"}});
    g_batches = &g.Add({{"what", "commit_batches"}});
    g_committed = &g.Add({{"what", "calls_committed"}});
    g_resigned = &g.Add({{"what", "receipts_resigned"}});
    g_commit_failures = &g.Add({{"what", "commit_failures"}});
    c_kv_conflicts = &BuildCounter()
                          .Name("covenant_kv_conflicts_total")
                          .Help("Contract runs repeated because a kv row they read changed before commit")
                          .Register(*registry)
                          .Add({});
  }

  Status put_rows(std::vector<KvExpect> expects, std::vector<KvPut> puts, std::vector<JournalAppend> journal = {},
                  LedgerReply* reply_out = nullptr) {
    Atomic a;
    a.expects = std::move(expects);
    a.puts = std::move(puts);
    a.journal = std::move(journal);
    std::vector<LedgerOperation> ops{a};
    auto r = ledger().submit(ops);
    if (!r) return Status::io("ledger unavailable: " + r.status().message());
    const LedgerReply& rep = (*r)[0];
    if (reply_out) *reply_out = rep;
    if (rep.result == LedgerResult::kv_expectation_failed)
      return Status::exists("row changed concurrently: " + a.expects[rep.failed_index].key.substr(1));
    if (rep.result != LedgerResult::ok)
      return Status::precondition(std::string("ledger refused: ") + ledger_result_name(rep.result));
    return Status::ok();
  }

  Status bootstrap() {
    const std::string path = opts.data_dir + "/admin.key";
    if (std::filesystem::exists(path)) return Status::ok();
    // Only a fresh data directory gets a bootstrap key (a second server on a shared
    // PostgreSQL gets its keys from an admin).
    if (std::filesystem::exists(opts.data_dir + "/.bootstrapped")) return Status::ok();
    // Nor a server joining a shared ledger that already has keys; of several servers
    // starting at once on an empty one, the bootstrap row lets exactly one create it.
    auto any = ledger().kv_scan(kRow + "key/", "", 1);
    if (!any) return any.status();
    std::optional<std::pair<std::string, std::string>> created;
    if (any->empty()) {
      auto k = create_key("system", "admin", "bootstrap", /*bootstrap=*/true);
      if (k.is_ok()) created = *k;
      else if (k.status().code() != Code::kAlreadyExists) return k.status();
    }
    std::ofstream(opts.data_dir + "/.bootstrapped") << "1\n";
    if (!created) return Status::ok();
    const std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return Status::io("cannot write " + tmp + ": " + std::strerror(errno));
    const std::string text = created->first + "\n";
    bool okw = ::fchmod(fd, 0600) == 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
               ::fsync(fd) == 0;
    ::close(fd);
    if (!okw || ::rename(tmp.c_str(), path.c_str()) != 0) return Status::io("cannot write " + path);
    bootstrap_path = path;
    return Status::ok();
  }

  // Returns (key, id).
  Result<std::pair<std::string, std::string>> create_key(const std::string& tenant, const std::string& role,
                                                         const std::string& by, bool bootstrap = false) {
    const std::string id = random_hex(8);
    const std::string key = "cvk_" + id + "_" + random_hex(24);
    const std::string h = sha256_hex(key);
    json row = {{"id", id}, {"tenant", tenant}, {"role", role}, {"hash", h}, {"created_ms", unix_ms()},
                {"created_by", by}, {"revoked", false}};
    std::vector<KvExpect> exp{{key_row(id), std::nullopt}};
    std::vector<KvPut> puts{{key_row(id), row.dump()}, {keyhash_row(h), id}};
    if (bootstrap) {
      exp.push_back({kRow + "bootstrap", std::nullopt});
      puts.push_back({kRow + "bootstrap", id});
    }
    COVENANT_RETURN_IF_ERROR(put_rows(exp, puts));
    return std::make_pair(key, id);
  }

  // ---- deployments ----

  std::shared_ptr<Deployment> deployment(const std::string& tenant, const std::string& name, bool create) {
    std::lock_guard<std::mutex> lock(deps_mu);
    auto it = deps.find(tenant + "/" + name);
    if (it != deps.end()) return it->second;
    if (!create) return nullptr;
    auto d = std::make_shared<Deployment>();
    deps[tenant + "/" + name] = d;
    return d;
  }

  Result<std::shared_ptr<Contract>> compile(const std::string& tenant, const std::string& name,
                                            const std::vector<uint8_t>& module, const std::string& wit,
                                            const std::string& grants_text) {
    DeployOptions d;
    d.tier = Tier::kOptimized;
    d.wit = wit;
    if (!grants_text.empty()) {
      auto g = parse_grants(grants_text);
      if (!g) return Status::invalid("grants: " + g.status().message());
      d.grants = *g;
    }
    d.deployment = tenant + "/" + name;
    d.kv_store = pipeline->kv_store();
    d.name = name;
    auto c = Contract::deploy(*engine, module, d);
    if (!c) return c.status();
    return std::shared_ptr<Contract>(std::move(*c));
  }

  // Loads a stored version (module + WIT + grants) and compiles it.
  Result<std::shared_ptr<Version>> load_version(const std::string& tenant, const std::string& name,
                                                const std::string& ver) {
    auto vrow = ledger().kv_get(version_row(tenant, name, ver));
    if (!vrow) return vrow.status();
    if (!*vrow) return Status::not_found("version " + ver + " of contract " + name + " does not exist");
    auto vj = json::parse(**vrow, nullptr, false);
    auto mrow = ledger().kv_get(module_row(ver));
    if (!mrow) return mrow.status();
    if (!*mrow) return Status::corruption("module " + ver + " is missing");
    auto v = std::make_shared<Version>();
    v->version = ver;
    v->module.assign((*mrow)->begin(), (*mrow)->end());
    v->wit = vj.value("wit", "");
    v->grants = vj.value("grants", "");
    v->require_signed_intents = vj.value("require_signed_intents", false);
    if (vj.contains("mask")) {
      auto m = settle::parse_mask(vj["mask"]);
      if (!m) return m.status();
      v->mask = std::move(*m);
    }
    auto c = compile(tenant, name, v->module, v->wit, v->grants);
    if (!c) return c.status();
    v->contract = std::move(*c);
    return v;
  }

  // Brings every deployment's active version in line with the contract rows.
  Status refresh_deployments() {
    std::string after;
    size_t active = 0, loaded = 0;
    for (;;) {
      auto rows = ledger().kv_scan(kRow + "contract/", after, 256);
      if (!rows) return rows.status();
      if (rows->empty()) break;
      for (auto& [k, v] : *rows) {
        after = k;
        const std::string rest = k.substr(kRow.size() + 9);
        const size_t slash = rest.find('/');
        if (slash == std::string::npos) continue;
        const std::string tenant = rest.substr(0, slash), name = rest.substr(slash + 1);
        auto j = json::parse(v, nullptr, false);
        if (!j.is_object() || !j.contains("active")) continue;
        const std::string want = j["active"].get<std::string>();
        auto d = deployment(tenant, name, true);
        std::shared_ptr<Version> have;
        {
          std::lock_guard<std::mutex> lock(d->mu);
          if (d->active == want) {
            active++;
            loaded += d->versions.size();
            continue;
          }
          auto it = d->versions.find(want);
          if (it != d->versions.end()) have = it->second;
        }
        if (!have) {
          auto lv = load_version(tenant, name, want);
          if (!lv) {
            std::fprintf(stderr, "{\"event\":\"load_failed\",\"tenant\":%s,\"contract\":%s,\"error\":%s}\n",
                         json(tenant).dump().c_str(), json(name).dump().c_str(), json(lv.status().message()).dump().c_str());
            continue;
          }
          have = *lv;
        }
        std::lock_guard<std::mutex> lock(d->mu);
        d->versions[want] = have;
        d->active = want;
        active++;
        loaded += d->versions.size();
      }
      if (rows->size() < 256) break;
    }
    g_versions->Set(static_cast<double>(active));
    g_loaded->Set(static_cast<double>(loaded));
    size_t pooled = 0;
    {
      std::lock_guard<std::mutex> lock(deps_mu);
      for (auto& [k, d] : deps) {
        std::lock_guard<std::mutex> dl(d->mu);
        for (auto& [v, ver] : d->versions) pooled += ver->contract->pooled_instances();
      }
    }
    g_pooled->Set(static_cast<double>(pooled));
    return Status::ok();
  }

  // ---- background: checkpoints, deployments of other servers, idempotency expiry ----

  void background() {
    auto last_cp = std::chrono::steady_clock::now();
    auto last_refresh = last_cp;
    auto last_gc = last_cp;
    std::unique_lock<std::mutex> lock(bg_mu);
    while (!stopping) {
      bg_cv.wait_for(lock, std::chrono::milliseconds(100));
      if (stopping) break;
      lock.unlock();
      const auto now = std::chrono::steady_clock::now();
      const settle::PipelineStats ps = pipeline->stats();
      g_queue->Set(static_cast<double>(ps.queue_depth));
      g_batches->Set(static_cast<double>(ps.batches));
      g_committed->Set(static_cast<double>(ps.committed));
      g_resigned->Set(static_cast<double>(ps.resigned));
      g_commit_failures->Set(static_cast<double>(ps.commit_failures));
      if (now - last_cp >= std::chrono::milliseconds(opts.checkpoint_interval_ms)) {
        last_cp = now;
        auto cp = pipeline->maybe_checkpoint(1);
        if (!cp)
          std::fprintf(stderr, "{\"event\":\"checkpoint_failed\",\"error\":%s}\n",
                       json(cp.status().message()).dump().c_str());
      }
      if (now - last_refresh >= std::chrono::milliseconds(opts.refresh_interval_ms)) {
        last_refresh = now;
        Status s = refresh_deployments();
        (void)s;  // the ledger may be down; the next round retries
      }
      if (now - last_gc >= std::chrono::seconds(60)) {
        last_gc = now;
        gc_idempotency();
      }
      lock.lock();
    }
  }

  void gc_idempotency() {
    const uint64_t cutoff = unix_ms() - opts.idempotency_ttl_s * 1000;
    std::string after;
    for (int round = 0; round < 100; ++round) {
      auto rows = ledger().kv_scan(kRow + "idem/", after, 512);
      if (!rows || rows->empty()) break;
      std::vector<KvPut> dels;
      std::vector<KvExpect> exp;
      for (auto& [k, v] : *rows) {
        after = k;
        auto j = json::parse(v, nullptr, false);
        if (j.is_object() && j.value("created_ms", uint64_t{0}) < cutoff) {
          dels.push_back({k, std::nullopt});
          exp.push_back({k, v});
        }
      }
      if (!dels.empty()) (void)put_rows(exp, dels);
      if (rows->size() < 512) break;
    }
    gc_nonces();
  }

  // A nonce row is needed until its signature expires (a minute of clock skew on top).
  void gc_nonces() {
    const uint64_t now = unix_ms();
    std::string after;
    for (int round = 0; round < 100; ++round) {
      auto rows = ledger().kv_scan(kRow + "nonce/", after, 512);
      if (!rows || rows->empty()) return;
      std::vector<KvPut> dels;
      std::vector<KvExpect> exp;
      for (auto& [k, v] : *rows) {
        after = k;
        auto j = json::parse(v, nullptr, false);
        if (j.is_object() && j.value("expires_at_ms", uint64_t{0}) + 60'000 < now) {
          dels.push_back({k, std::nullopt});
          exp.push_back({k, v});
        }
      }
      if (!dels.empty()) (void)put_rows(exp, dels);
      if (rows->size() < 512) return;
    }
  }

  // ---- auth ----

  std::variant<Principal, HttpResponse> authenticate(const HttpRequest& req) {
    const std::string* h = req.header("authorization");
    if (!h || h->rfind("Bearer ", 0) != 0)
      return err(401, "unauthenticated", "send an API key: Authorization: Bearer KEY");
    const std::string key = h->substr(7);
    const std::string hash = sha256_hex(key);
    {
      std::lock_guard<std::mutex> lock(keys_mu);
      auto it = key_cache.find(hash);
      if (it != key_cache.end() && std::chrono::steady_clock::now() - it->second.at < std::chrono::seconds(2))
        return it->second.p;
    }
    auto idrow = ledger().kv_get(keyhash_row(hash));
    if (!idrow) return err(503, "ledger_unavailable", idrow.status().message());
    if (!*idrow) return err(401, "unauthenticated", "unknown or revoked API key");
    auto krow = ledger().kv_get(key_row(**idrow));
    if (!krow) return err(503, "ledger_unavailable", krow.status().message());
    if (!*krow) return err(401, "unauthenticated", "unknown or revoked API key");
    auto j = json::parse(**krow, nullptr, false);
    if (!j.is_object() || j.value("revoked", false) || j.value("hash", "") != hash)
      return err(401, "unauthenticated", "unknown or revoked API key");
    Principal p{j["id"], j["tenant"], j["role"]};
    std::lock_guard<std::mutex> lock(keys_mu);
    key_cache[hash] = {p, std::chrono::steady_clock::now()};
    return p;
  }

  static bool role_in(const Principal& p, std::initializer_list<const char*> roles) {
    for (const char* r : roles)
      if (p.role == r) return true;
    return false;
  }

  std::optional<HttpResponse> rate_limit(const std::string& tenant) {
    if (opts.tenant_rate_per_s <= 0) return std::nullopt;
    const double burst = opts.tenant_burst > 0 ? opts.tenant_burst : std::max(1.0, opts.tenant_rate_per_s);
    std::lock_guard<std::mutex> lock(rate_mu);
    auto now = std::chrono::steady_clock::now();
    auto [it, fresh] = buckets.try_emplace(tenant);
    TokenBucket& b = it->second;
    if (fresh) {
      b.tokens = burst;
      b.last = now;
    }
    b.tokens = std::min(burst, b.tokens + std::chrono::duration<double>(now - b.last).count() * opts.tenant_rate_per_s);
    b.last = now;
    if (b.tokens < 1) {
      HttpResponse r = err(429, "rate_limited", "tenant " + tenant + " is over its request rate");
      r.headers.push_back({"Retry-After", "1"});
      return r;
    }
    b.tokens -= 1;
    return std::nullopt;
  }

  // ---- dispatch ----

  HttpResponse handle(HttpRequest& req) override {
    std::vector<std::string> seg;
    {
      std::string cur;
      for (size_t i = 1; i <= req.path.size(); ++i) {
        if (i == req.path.size() || req.path[i] == '/') {
          seg.push_back(cur);
          cur.clear();
        } else {
          cur += req.path[i];
        }
      }
      if (!seg.empty() && seg.back().empty()) seg.pop_back();
    }
    const std::string& m = req.method;
    HttpResponse r = dispatch(req, seg, m);
    return r;
  }

  HttpResponse with_route(HttpResponse r, const char* route) {
    r.route = route;
    return r;
  }

  HttpResponse dispatch(HttpRequest& req, const std::vector<std::string>& s, const std::string& m) {
    const size_t n = s.size();
    if (n == 1 && s[0] == "healthz") return with_route(ok_json(200, {{"status", "ok"}}), "/healthz");
    if (n == 1 && s[0] == "readyz") {
      if (!ready()) return with_route(err(503, "not_ready", "starting: compiling active contracts"), "/readyz");
      return with_route(ok_json(200, {{"status", "ready"}}), "/readyz");
    }
    if (n == 1 && s[0] == "metrics" && m == "GET") {
      prometheus::TextSerializer ser;
      HttpResponse r;
      r.body = ser.Serialize(registry->Collect());
      r.content_type = "text/plain; version=0.0.4";
      r.route = "/metrics";
      r.outcome = "ok";
      return r;
    }
    if (n == 0 || s[0] != "v1") return with_route(err(404, "not_found", "no route " + req.path), "");
    if (n == 2 && s[1] == "openapi.json" && m == "GET") {
      HttpResponse r;
      r.body = std::string(openapi_json());
      r.route = "/v1/openapi.json";
      r.outcome = "ok";
      return r;
    }

    const char* route = route_of(s, m);
    if (!route) {
      if (known_path(s)) return with_route(err(405, "method_not_allowed", m + " is not allowed on " + req.path), "");
      return with_route(err(404, "not_found", "no route " + m + " " + req.path), "");
    }
    auto a = authenticate(req);
    if (auto* e = std::get_if<HttpResponse>(&a)) return with_route(std::move(*e), route);
    Principal p = std::get<Principal>(a);
    if (auto rl = rate_limit(p.tenant)) {
      rl->tenant = p.tenant;
      return with_route(std::move(*rl), route);
    }

    const bool mutating = m == "POST" || m == "PUT" || m == "DELETE";
    const std::string* idem = mutating ? req.header("idempotency-key") : nullptr;
    const bool is_approve = std::string(route) == "/v1/contracts/{name}/approve" ||
                            std::string(route) == "/v1/contracts/{name}/call/{export}";
    HttpResponse r;
    if (idem && !is_approve) {
      r = with_idempotency(req, p, *idem, [&] { return route_call(req, s, m, p, route, nullptr); });
    } else {
      r = route_call(req, s, m, p, route, idem);
    }
    r.route = route;
    r.tenant = p.tenant;
    return r;
  }

  static const char* route_of(const std::vector<std::string>& s, const std::string& m) {
    const size_t n = s.size();
    if (n == 2 && s[1] == "keys" && m == "POST") return "/v1/keys";
    if (n == 3 && s[1] == "keys" && m == "DELETE") return "/v1/keys/{id}";
    if (n == 2 && s[1] == "contracts" && m == "GET") return "/v1/contracts";
    if (n == 3 && s[1] == "contracts" && m == "PUT") return "/v1/contracts/{name}";
    if (n == 3 && s[1] == "contracts" && m == "GET") return "/v1/contracts/{name}";
    if (n == 4 && s[1] == "contracts" && s[3] == "activate" && m == "POST") return "/v1/contracts/{name}/activate";
    if (n == 4 && s[1] == "contracts" && s[3] == "diff" && m == "GET") return "/v1/contracts/{name}/diff";
    if (n == 4 && s[1] == "contracts" && s[3] == "owners" && m == "PUT") return "/v1/contracts/{name}/owners";
    if (n == 4 && s[1] == "contracts" && s[3] == "freeze" && m == "POST") return "/v1/contracts/{name}/freeze";
    if (n == 4 && s[1] == "contracts" && s[3] == "approve" && m == "POST") return "/v1/contracts/{name}/approve";
    if (n == 4 && s[1] == "contracts" && s[3] == "simulate" && m == "POST") return "/v1/contracts/{name}/simulate";
    if (n == 5 && s[1] == "contracts" && s[3] == "call" && m == "POST") return "/v1/contracts/{name}/call/{export}";
    if (n == 3 && s[1] == "receipts" && m == "GET") return "/v1/receipts/{id}";
    if (n == 4 && s[1] == "receipts" && s[3] == "proof" && m == "GET") return "/v1/receipts/{id}/proof";
    if (n == 4 && s[1] == "receipts" && s[3] == "replay" && m == "GET") return "/v1/receipts/{id}/replay";
    if (n == 3 && s[1] == "checkpoints" && s[2] == "latest" && m == "GET") return "/v1/checkpoints/latest";
    if (n == 3 && s[1] == "checkpoints" && s[2] == "consistency" && m == "GET") return "/v1/checkpoints/consistency";
    if (n == 3 && s[1] == "holds" && m == "GET") return "/v1/holds/{id}";
    if (n == 4 && s[1] == "holds" && s[3] == "release" && m == "POST") return "/v1/holds/{id}/release";
    if (n == 4 && s[1] == "holds" && s[3] == "refund" && m == "POST") return "/v1/holds/{id}/refund";
    if (n == 3 && s[1] == "executor" && s[2] == "keys" && m == "GET") return "/v1/executor/keys";
    if (n == 5 && s[1] == "agents" && s[3] == "keys" && m == "PUT") return "/v1/agents/{id}/keys/{kid}";
    if (n == 5 && s[1] == "agents" && s[3] == "keys" && m == "DELETE") return "/v1/agents/{id}/keys/{kid}";
    if (n == 4 && s[1] == "agents" && s[3] == "keys" && m == "GET") return "/v1/agents/{id}/keys";
    if (n == 4 && s[1] == "agents" && s[3] == "fund" && m == "POST") return "/v1/agents/{id}/fund";
    if (n == 5 && s[1] == "users" && s[3] == "keys" && m == "PUT") return "/v1/users/{id}/keys/{kid}";
    if (n == 5 && s[1] == "users" && s[3] == "keys" && m == "DELETE") return "/v1/users/{id}/keys/{kid}";
    if (n == 4 && s[1] == "users" && s[3] == "keys" && m == "GET") return "/v1/users/{id}/keys";
    if (n == 2 && s[1] == "mandates" && m == "POST") return "/v1/mandates";
    if (n == 3 && s[1] == "mandates" && m == "GET") return "/v1/mandates/{id}";
    if (n == 4 && s[1] == "mandates" && s[3] == "revoke" && m == "POST") return "/v1/mandates/{id}/revoke";
    if (n == 4 && s[1] == "agents" && s[3] == "balance" && m == "GET") return "/v1/agents/{id}/balance";
    return nullptr;
  }

  static bool known_path(const std::vector<std::string>& s) {
    for (const char* m : {"GET", "POST", "PUT", "DELETE"})
      if (route_of(s, m)) return true;
    return false;
  }

  HttpResponse forbidden(const Principal& p, const std::string& what) {
    return err(403, "forbidden", "role " + p.role + " may not " + what);
  }

  HttpResponse route_call(HttpRequest& req, const std::vector<std::string>& s, const std::string& m,
                          const Principal& p, const std::string& route, const std::string* idem) {
    try {
      if (route == "/v1/keys") {
        if (!role_in(p, {"admin"})) return forbidden(p, "create API keys");
        return post_key(req, p);
      }
      if (route == "/v1/keys/{id}") {
        if (!role_in(p, {"admin"})) return forbidden(p, "revoke API keys");
        return delete_key(s[2], p);
      }
      if (route == "/v1/contracts") return list_contracts(p);
      if (route == "/v1/contracts/{name}" && m == "GET") return get_contract(p, s[2]);
      if (route == "/v1/contracts/{name}") {
        if (!role_in(p, {"admin", "deployer"})) return forbidden(p, "deploy contracts");
        return put_contract(req, p, s[2]);
      }
      if (route == "/v1/contracts/{name}/diff") {
        if (!role_in(p, {"admin", "deployer", "auditor"})) return forbidden(p, "read contract diffs");
        return contract_diff(req, p, s[2]);
      }
      if (route == "/v1/contracts/{name}/owners") {
        if (!role_in(p, {"admin"})) return forbidden(p, "set contract owners");
        return set_owners(req, p, s[2]);
      }
      if (route == "/v1/contracts/{name}/freeze") {
        if (!role_in(p, {"admin", "deployer"})) return forbidden(p, "freeze contracts");
        return freeze(req, p, s[2]);
      }
      if (route == "/v1/contracts/{name}/activate") {
        if (!role_in(p, {"admin", "deployer"})) return forbidden(p, "activate versions");
        return activate(req, p, s[2]);
      }
      if (route == "/v1/contracts/{name}/approve" || route == "/v1/contracts/{name}/call/{export}" ||
          route == "/v1/contracts/{name}/simulate") {
        if (!role_in(p, {"admin", "caller"})) return forbidden(p, "call contracts");
        const bool sim = route == "/v1/contracts/{name}/simulate";
        const bool approve = route == "/v1/contracts/{name}/approve";
        return call_contract(req, p, s[2], approve || sim ? "" : s[4], sim, idem);
      }
      if (route == "/v1/receipts/{id}" || route == "/v1/receipts/{id}/proof" || route == "/v1/receipts/{id}/replay") {
        if (!role_in(p, {"admin", "auditor", "caller"})) return forbidden(p, "read receipts");
        return receipt_route(req, p, s[2], route);
      }
      if (route == "/v1/checkpoints/latest") return checkpoint_latest();
      if (route == "/v1/checkpoints/consistency") return consistency(req);
      if (route == "/v1/holds/{id}") {
        if (!role_in(p, {"admin", "auditor", "caller"})) return forbidden(p, "read holds");
        return get_hold(p, s[2]);
      }
      if (route == "/v1/holds/{id}/release" || route == "/v1/holds/{id}/refund") {
        if (!role_in(p, {"admin", "caller"})) return forbidden(p, "settle holds");
        return settle_hold(req, p, s[2], route == "/v1/holds/{id}/release", idem);
      }
      if (route == "/v1/executor/keys") return executor_keys();
      if (route == "/v1/agents/{id}/keys/{kid}") {
        if (!role_in(p, {"admin"})) return forbidden(p, "manage agent keys");
        return m == "PUT" ? put_agent_key(req, p, s[2], s[4]) : revoke_agent_key(p, s[2], s[4]);
      }
      if (route == "/v1/agents/{id}/keys") {
        if (!role_in(p, {"admin", "auditor", "caller"})) return forbidden(p, "read agent keys");
        return list_agent_keys(p, s[2]);
      }
      if (route == "/v1/users/{id}/keys/{kid}") {
        if (!role_in(p, {"admin"})) return forbidden(p, "manage user keys");
        return m == "PUT" ? put_agent_key(req, p, s[2], s[4], "user") : revoke_agent_key(p, s[2], s[4], "user");
      }
      if (route == "/v1/users/{id}/keys") {
        if (!role_in(p, {"admin", "auditor", "caller"})) return forbidden(p, "read user keys");
        return list_agent_keys(p, s[2], "user");
      }
      if (route == "/v1/mandates") {
        if (!role_in(p, {"admin", "caller"})) return forbidden(p, "register mandates");
        return register_mandate(req, p);
      }
      if (route == "/v1/mandates/{id}") {
        if (!role_in(p, {"admin", "auditor", "caller"})) return forbidden(p, "read mandates");
        return get_mandate(p, s[2]);
      }
      if (route == "/v1/mandates/{id}/revoke") {
        if (!role_in(p, {"admin"})) return forbidden(p, "revoke mandates");
        return revoke_mandate(p, s[2]);
      }
      if (route == "/v1/agents/{id}/fund") {
        if (!role_in(p, {"admin"})) return forbidden(p, "fund agents");
        return fund_agent(req, p, s[2], idem);
      }
      if (route == "/v1/agents/{id}/balance") {
        if (!role_in(p, {"admin", "auditor", "caller"})) return forbidden(p, "read balances");
        return agent_balance(p, s[2]);
      }
    } catch (const std::exception& e) {
      return err(500, "internal", e.what());
    }
    return err(404, "not_found", "no route");
  }

  // ---- idempotency (ACP rules) ----

  template <class F>
  HttpResponse with_idempotency(const HttpRequest& req, const Principal& p, const std::string& key, F&& run) {
    if (key.empty() || key.size() > 255)
      return err(400, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 characters");
    const std::string fp = sha256_hex(req.method + " " + req.path + "\n" + req.body);
    const std::string row = idem_row(p.tenant, key);
    {
      std::lock_guard<std::mutex> lock(idem_mu);
      if (!idem_inflight.insert(row).second) {
        HttpResponse r = err(409, "idempotency_in_flight", "a request with this Idempotency-Key is still in flight");
        r.headers.push_back({"Retry-After", "1"});
        return r;
      }
    }
    struct Done {
      ServiceImpl* s;
      std::string row;
      ~Done() {
        std::lock_guard<std::mutex> lock(s->idem_mu);
        s->idem_inflight.erase(row);
      }
    } done{this, row};
    if (auto stored = lookup_idempotent(row, fp)) return *stored;
    HttpResponse r = run();
    if (r.status < 500) {
      json rec = {{"fingerprint", fp}, {"status", r.status}, {"body", r.body}, {"content_type", r.content_type},
                  {"created_ms", unix_ms()}};
      Status st = put_rows({{row, std::nullopt}}, {{row, rec.dump()}});
      (void)st;  // a concurrent server stored it first: its response stands
    }
    return r;
  }

  std::optional<HttpResponse> lookup_idempotent(const std::string& row, const std::string& fp) {
    auto v = ledger().kv_get(row);
    if (!v) return err(503, "ledger_unavailable", v.status().message());
    if (!*v) return std::nullopt;
    auto j = json::parse(**v, nullptr, false);
    if (!j.is_object()) return std::nullopt;
    if (unix_ms() - j.value("created_ms", uint64_t{0}) > opts.idempotency_ttl_s * 1000) return std::nullopt;
    if (j.value("fingerprint", "") != fp)
      return err(422, "idempotency_conflict", "this Idempotency-Key was used with a different request");
    HttpResponse r;
    r.status = j.value("status", 200);
    r.body = j.value("body", "");
    r.content_type = j.value("content_type", "application/json");
    if (j.contains("receipt_id")) {
      // An approval: fill in the log index from the journal.
      Hash32 id;
      if (from_hex(j["receipt_id"].get<std::string>(), id)) {
        auto jr = ledger().journal_by_key(id);
        if (jr && *jr) {
          auto body = json::parse(r.body, nullptr, false);
          body["log_index"] = (*jr)->seq - 1;
          r.body = body.dump();
        }
      }
    }
    r.headers.push_back({"Idempotent-Replayed", "true"});
    r.outcome = "replayed";
    return r;
  }

  // ---- keys ----

  HttpResponse post_key(const HttpRequest& req, const Principal& p) {
    auto body = parse_strict(req.body, "body");
    if (!body) return err(400, "invalid_json", body.status().message());
    if (!body->is_object()) return err(400, "invalid_request", "body: expected an object {\"tenant\", \"role\"}");
    for (auto& [k, v] : body->items())
      if (k != "tenant" && k != "role") return err(400, "invalid_request", "body." + k + ": unknown field");
    if (!body->contains("tenant") || !(*body)["tenant"].is_string())
      return err(400, "invalid_request", "body.tenant: expected a string");
    if (!body->contains("role") || !(*body)["role"].is_string())
      return err(400, "invalid_request", "body.role: expected a string");
    const std::string tenant = (*body)["tenant"], role = (*body)["role"];
    if (!valid_name(tenant)) return err(400, "invalid_request", "body.tenant: expected [a-z0-9._-]{1,64}");
    if (role != "admin" && role != "deployer" && role != "caller" && role != "auditor")
      return err(400, "invalid_request", "body.role: expected admin, deployer, caller or auditor");
    if (!p.system() && tenant != p.tenant) return err(403, "forbidden", "an admin of tenant " + p.tenant +
                                                                          " may create keys only for that tenant");
    auto k = create_key(tenant, role, p.id);
    if (!k) return err(503, "ledger_unavailable", k.status().message());
    return ok_json(201, {{"key", k->first}, {"id", k->second}, {"tenant", tenant}, {"role", role}});
  }

  HttpResponse delete_key(const std::string& id, const Principal& p) {
    auto row = ledger().kv_get(key_row(id));
    if (!row) return err(503, "ledger_unavailable", row.status().message());
    if (!*row) return err(404, "not_found", "no API key " + id);
    auto j = json::parse(**row, nullptr, false);
    if (!p.system() && j.value("tenant", "") != p.tenant) return err(404, "not_found", "no API key " + id);
    if (j.value("revoked", false)) return ok_json(200, {{"id", id}, {"revoked", true}});
    json nj = j;
    nj["revoked"] = true;
    nj["revoked_ms"] = unix_ms();
    Status s = put_rows({{key_row(id), **row}}, {{key_row(id), nj.dump()}, {keyhash_row(j.value("hash", "")), std::nullopt}});
    if (!s) {
      if (s.code() == Code::kAlreadyExists) return err(409, "conflict", s.message());
      return err(503, "ledger_unavailable", s.message());
    }
    std::lock_guard<std::mutex> lock(keys_mu);
    key_cache.erase(j.value("hash", ""));
    return ok_json(200, {{"id", id}, {"revoked", true}});
  }

  // ---- contracts ----

  Result<std::optional<json>> contract_json(const std::string& tenant, const std::string& name, std::string* raw) {
    auto row = ledger().kv_get(contract_row(tenant, name));
    if (!row) return row.status();
    if (!*row) return std::optional<json>();
    if (raw) *raw = **row;
    return std::optional<json>(json::parse(**row, nullptr, false));
  }

  HttpResponse list_contracts(const Principal& p) {
    json out = json::array();
    std::string after;
    const std::string prefix = kRow + "contract/" + p.tenant + "/";
    for (;;) {
      auto rows = ledger().kv_scan(prefix, after, 256);
      if (!rows) return err(503, "ledger_unavailable", rows.status().message());
      for (auto& [k, v] : *rows) {
        after = k;
        auto j = json::parse(v, nullptr, false);
        out.push_back({{"name", k.substr(prefix.size())}, {"active_version", j.value("active", "")},
                       {"versions", j.contains("versions") ? j["versions"].size() : 0}});
      }
      if (rows->size() < 256) break;
    }
    return ok_json(200, {{"contracts", out}});
  }

  HttpResponse get_contract(const Principal& p, const std::string& name) {
    auto j = contract_json(p.tenant, name, nullptr);
    if (!j) return err(503, "ledger_unavailable", j.status().message());
    if (!*j) return err(404, "not_found", "no contract " + name);
    json out = {{"name", name}, {"active_version", (**j).value("active", "")}, {"versions", (**j)["versions"]},
                {"history", (**j)["history"]}, {"frozen", (**j).value("frozen", false)}};
    if ((**j).contains("owners")) {
      out["owners"] = (**j)["owners"];
      out["threshold"] = (**j)["threshold"];
    }
    return ok_json(200, out);
  }

  HttpResponse put_contract(const HttpRequest& req, const Principal& p, const std::string& name) {
    if (!valid_name(name)) return err(400, "invalid_request", "contract name: expected [a-z0-9._-]{1,64}");
    auto body = parse_strict(req.body, "body");
    if (!body) return err(400, "invalid_json", body.status().message());
    if (!body->is_object()) return err(400, "invalid_request", "body: expected an object {\"wasm_base64\", ...}");
    for (auto& [k, v] : body->items())
      if (k != "wasm_base64" && k != "wit" && k != "grants" && k != "require_signed_intents" && k != "mask")
        return err(400, "invalid_request",
                   "body." + k + ": unknown field (expected wasm_base64, wit, grants, require_signed_intents, mask)");
    std::vector<settle::MaskRule> mask;
    if (body->contains("mask")) {
      auto m = settle::parse_mask((*body)["mask"]);
      if (!m) return err(400, "invalid_request", "body." + m.status().message());
      mask = std::move(*m);
    }
    bool require_signed = false;
    if (body->contains("require_signed_intents")) {
      if (!(*body)["require_signed_intents"].is_boolean())
        return err(400, "invalid_request", "body.require_signed_intents: expected true or false");
      require_signed = (*body)["require_signed_intents"].get<bool>();
    }
    if (!body->contains("wasm_base64") || !(*body)["wasm_base64"].is_string())
      return err(400, "invalid_request", "body.wasm_base64: expected a base64 string");
    std::vector<uint8_t> module;
    if (!base64_decode((*body)["wasm_base64"].get<std::string>(), &module))
      return err(400, "invalid_request", "body.wasm_base64: not valid base64");
    if (module.size() > opts.module_bytes_max)
      return err(413, "module_too_large", "module is " + std::to_string(module.size()) + " bytes; at most " +
                                              std::to_string(opts.module_bytes_max));
    std::string wit;
    if (body->contains("wit")) {
      if (!(*body)["wit"].is_string()) return err(400, "invalid_request", "body.wit: expected WIT source text");
      wit = (*body)["wit"];
    }
    std::string grants;
    if (body->contains("grants")) {
      if (!(*body)["grants"].is_object()) return err(400, "invalid_request", "body.grants: expected an object");
      grants = (*body)["grants"].dump();
    }
    const std::string ver = to_hex(sha256(module));
    // Compile here, never on a decision's path.
    auto c = compile(p.tenant, name, module, wit, grants);
    if (!c) return err(422, "invalid_contract", c.status().message());
    auto v = std::make_shared<Version>();
    v->version = ver;
    v->contract = *c;
    v->wit = wit;
    v->grants = grants;
    v->module = module;
    v->require_signed_intents = require_signed;
    v->mask = mask;

    for (int attempt = 0; attempt < 8; ++attempt) {
      std::string raw;
      auto cj = contract_json(p.tenant, name, &raw);
      if (!cj) return err(503, "ledger_unavailable", cj.status().message());
      json row = *cj ? **cj : json{{"active", ""}, {"versions", json::array()}, {"history", json::array()}};
      bool exists = false;
      for (auto& x : row["versions"]) exists |= x.get<std::string>() == ver;
      const bool first = row.value("active", "").empty();
      if (exists) {
        return ok_json(200, {{"name", name}, {"version", ver}, {"active", row.value("active", "") == ver}});
      }
      row["versions"].push_back(ver);
      row["history"].push_back({{"action", "deploy"}, {"version", ver}, {"by", p.id}, {"at_ms", unix_ms()}});
      std::vector<JournalAppend> journal;
      if (first) {
        row["active"] = ver;
        row["history"].push_back({{"action", "activate"}, {"version", ver}, {"by", p.id}, {"at_ms", unix_ms()}});
        journal.push_back(activation_entry(p, name, "", ver));
      }
      json vrow = {{"wit", wit}, {"grants", grants}, {"created_ms", unix_ms()}, {"by", p.id}, {"size", module.size()},
                   {"require_signed_intents", require_signed}};
      if (body->contains("mask")) vrow["mask"] = (*body)["mask"];
      std::vector<KvExpect> exp{{contract_row(p.tenant, name), *cj ? std::optional<std::string>(raw) : std::nullopt}};
      std::vector<KvPut> puts{{contract_row(p.tenant, name), row.dump()},
                              {version_row(p.tenant, name, ver), vrow.dump()},
                              {module_row(ver), std::string(module.begin(), module.end())}};
      Status s = put_rows(exp, puts, journal);
      if (s.code() == Code::kAlreadyExists) continue;  // another deploy raced: read again
      if (!s) return err(503, "ledger_unavailable", s.message());
      auto d = deployment(p.tenant, name, true);
      {
        std::lock_guard<std::mutex> lock(d->mu);
        d->versions[ver] = v;
        if (first) d->active = ver;
      }
      return ok_json(201, {{"name", name}, {"version", ver}, {"active", first}});
    }
    return err(409, "conflict", "contract " + name + " kept changing; retry");
  }

  JournalAppend activation_entry(const Principal& p, const std::string& name, const std::string& old_v,
                                 const std::string& new_v, const json& signatures = json::array(),
                                 const std::string& diff_hash = "") {
    json e = {{"type", "activation"}, {"tenant", p.tenant}, {"contract", name}, {"old", old_v}, {"new", new_v},
              {"by", p.id}, {"at_ms", unix_ms()}, {"nonce", random_hex(8)}};
    if (!signatures.empty()) {
      e["signatures"] = signatures;
      e["interface_diff"] = diff_hash;
    }
    std::string text = e.dump();
    return JournalAppend{sha256(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size())),
                         text};
  }

  // ---- governed activation (docs/api.md, "Governed activation") ----

  // A version's interface: loaded (compiled) like any version, kept in the deployment.
  Result<std::shared_ptr<Version>> version_of(const std::string& tenant, const std::string& name, const std::string& ver) {
    auto d = deployment(tenant, name, true);
    {
      std::lock_guard<std::mutex> lock(d->mu);
      if (auto it = d->versions.find(ver); it != d->versions.end()) return it->second;
    }
    auto lv = load_version(tenant, name, ver);
    if (!lv) return lv.status();
    std::lock_guard<std::mutex> lock(d->mu);
    d->versions[ver] = *lv;
    return *lv;
  }

  Result<json> diff_versions(const std::string& tenant, const std::string& name, const std::string& from,
                             const std::string& to) {
    auto a = version_of(tenant, name, from);
    if (!a) return a.status();
    auto b = version_of(tenant, name, to);
    if (!b) return b.status();
    return settle::interface_diff({&(*a)->contract->package(), &(*a)->contract->world(), (*a)->grants},
                                  {&(*b)->contract->package(), &(*b)->contract->world(), (*b)->grants});
  }

  HttpResponse contract_diff(const HttpRequest& req, const Principal& p, const std::string& name) {
    auto q = [&](const char* k) -> std::string {
      auto it = req.query.find(k);
      return it == req.query.end() ? "" : it->second;
    };
    auto cj = contract_json(p.tenant, name, nullptr);
    if (!cj) return err(503, "ledger_unavailable", cj.status().message());
    if (!*cj) return err(404, "not_found", "no contract " + name);
    const std::string from = q("from").empty() ? (**cj).value("active", "") : q("from");
    const std::string to = q("to");
    if (to.empty()) return err(400, "invalid_request", "query: expected to=<version> (and from=<version>, default the active one)");
    for (const std::string* v : {&from, &to}) {
      bool exists = false;
      for (auto& x : (**cj)["versions"]) exists |= x.get<std::string>() == *v;
      if (!exists) return err(404, "not_found", "contract " + name + " has no version " + *v);
    }
    auto d = diff_versions(p.tenant, name, from, to);
    if (!d) return err(422, "invalid_contract", d.status().message());
    return ok_json(200, {{"name", name}, {"from", from}, {"to", to}, {"diff", *d},
                         {"diff_hash", to_hex(settle::interface_diff_hash(*d))}});
  }

  // Checks owner signatures over the JCS form of `what`. Returns the refusal,
  // or nothing with *accepted = the signatures that count (one per owner).
  std::optional<HttpResponse> check_owner_signatures(const json& row, const json& body, const json& what, json* accepted) {
    *accepted = json::array();
    if (!row.contains("owners")) return std::nullopt;
    const uint64_t threshold = row.value("threshold", uint64_t{1});
    auto canon = settle::jcs_canonicalize(what);
    if (!canon) return err(500, "internal", canon.status().message());
    const json sigs = body.contains("signatures") ? body["signatures"] : json::array();
    if (!sigs.is_array()) return err(400, "invalid_request", "body.signatures: expected [{\"public_key\", \"signature\"}]");
    std::set<std::string> seen;
    for (const json& sg : sigs) {
      if (!sg.is_object() || !sg.contains("public_key") || !sg.contains("signature") || !sg["public_key"].is_string() ||
          !sg["signature"].is_string())
        return err(400, "invalid_request", "body.signatures: expected [{\"public_key\", \"signature\"}]");
      const std::string pk = sg["public_key"].get<std::string>();
      PublicKey pub{};
      if (!from_hex(pk, pub)) return err(400, "invalid_request", "body.signatures: public_key must be 64 hex digits");
      bool owner = false;
      for (const json& o : row["owners"]) owner |= o.get<std::string>() == to_hex(pub);
      if (!owner) return err(403, "not_an_owner", "key " + to_hex(pub) + " is not an owner of this contract");
      if (!seen.insert(to_hex(pub)).second)
        return err(400, "duplicate_owner_signature", "owner " + to_hex(pub) + " signed twice; each owner counts once");
      std::vector<uint8_t> sig;
      if ((!base64_decode(sg["signature"].get<std::string>(), &sig) || sig.size() != kSignatureBytes) &&
          (!from_hex(sg["signature"].get<std::string>(), &sig) || sig.size() != kSignatureBytes))
        return err(400, "invalid_request", "body.signatures: signature must be 64 bytes, base64 or hex");
      if (!ed25519_verify(pub, std::span(reinterpret_cast<const uint8_t*>(canon->data()), canon->size()), sig))
        return err(403, "owner_signature_invalid",
                   "owner " + to_hex(pub) + "'s signature does not verify over the JCS form of " + what.dump());
      accepted->push_back({{"public_key", to_hex(pub)}, {"signature", sg["signature"]}});
    }
    if (accepted->size() < threshold)
      return err(403, "owner_signatures_required",
                 std::to_string(accepted->size()) + " owner signature(s) of the " + std::to_string(threshold) +
                     " required, over the JCS form of " + what.dump());
    return std::nullopt;
  }

  HttpResponse set_owners(const HttpRequest& req, const Principal& p, const std::string& name) {
    auto body = parse_strict(req.body, "body");
    if (!body) return err(400, "invalid_json", body.status().message());
    if (!body->is_object() || !body->contains("owners") || !(*body)["owners"].is_array() || (*body)["owners"].empty())
      return err(400, "invalid_request", "body: expected {\"owners\": [\"<Ed25519 public key hex>\", ...], \"threshold\": k}");
    for (auto& [k, v] : body->items())
      if (k != "owners" && k != "threshold" && k != "signatures")
        return err(400, "invalid_request", "body." + k + ": unknown field (expected owners, threshold, signatures)");
    std::set<std::string> owners;
    for (const json& o : (*body)["owners"]) {
      PublicKey pub{};
      if (!o.is_string() || !from_hex(o.get<std::string>(), pub))
        return err(400, "invalid_request", "body.owners: each owner is an Ed25519 public key as 64 hex digits");
      if (!owners.insert(to_hex(pub)).second) return err(400, "invalid_request", "body.owners: " + to_hex(pub) + " twice");
    }
    auto th = body->contains("threshold") ? json_u64((*body)["threshold"]) : std::optional<uint64_t>(1);
    if (!th || *th == 0 || *th > owners.size())
      return err(400, "invalid_request", "body.threshold: expected 1.." + std::to_string(owners.size()));
    const json owner_list(std::vector<std::string>(owners.begin(), owners.end()));
    for (int attempt = 0; attempt < 8; ++attempt) {
      std::string raw;
      auto cj = contract_json(p.tenant, name, &raw);
      if (!cj) return err(503, "ledger_unavailable", cj.status().message());
      if (!*cj) return err(404, "not_found", "no contract " + name);
      json row = **cj;
      if (row.value("frozen", false)) return err(409, "contract_frozen", "contract " + name + " is frozen");
      // Owners already set: changing them takes the current owners' signatures.
      json accepted;
      const json what = {{"action", "set-owners"}, {"tenant", p.tenant}, {"name", name}, {"owners", owner_list},
                         {"threshold", *th}};
      if (auto refusal = check_owner_signatures(row, *body, what, &accepted)) return *refusal;
      row["owners"] = owner_list;
      row["threshold"] = *th;
      row["history"].push_back({{"action", "set-owners"}, {"owners", owner_list}, {"threshold", *th}, {"by", p.id},
                                {"at_ms", unix_ms()}, {"signatures", accepted}});
      json e = {{"type", "owners"}, {"tenant", p.tenant}, {"contract", name}, {"owners", owner_list}, {"threshold", *th},
                {"signatures", accepted}, {"by", p.id}, {"at_ms", unix_ms()}, {"nonce", random_hex(8)}};
      const std::string text = e.dump();
      Status st = put_rows({{contract_row(p.tenant, name), raw}}, {{contract_row(p.tenant, name), row.dump()}},
                           {JournalAppend{sha256(text), text}});
      if (st.code() == Code::kAlreadyExists) continue;
      if (!st) return err(503, "ledger_unavailable", st.message());
      return ok_json(200, {{"name", name}, {"owners", owner_list}, {"threshold", *th}});
    }
    return err(409, "conflict", "contract " + name + " kept changing; retry");
  }

  HttpResponse freeze(const HttpRequest& req, const Principal& p, const std::string& name) {
    json body = json::object();
    if (!req.body.empty()) {
      auto b = parse_strict(req.body, "body");
      if (!b) return err(400, "invalid_json", b.status().message());
      body = *b;
    }
    for (int attempt = 0; attempt < 8; ++attempt) {
      std::string raw;
      auto cj = contract_json(p.tenant, name, &raw);
      if (!cj) return err(503, "ledger_unavailable", cj.status().message());
      if (!*cj) return err(404, "not_found", "no contract " + name);
      json row = **cj;
      if (row.value("frozen", false)) return ok_json(200, {{"name", name}, {"frozen", true}});
      json accepted;
      if (auto refusal = check_owner_signatures(row, body, {{"action", "freeze"}, {"tenant", p.tenant}, {"name", name}}, &accepted))
        return *refusal;
      row["frozen"] = true;
      row["history"].push_back({{"action", "freeze"}, {"by", p.id}, {"at_ms", unix_ms()}, {"signatures", accepted}});
      json e = {{"type", "freeze"}, {"tenant", p.tenant}, {"contract", name}, {"signatures", accepted}, {"by", p.id},
                {"at_ms", unix_ms()}, {"nonce", random_hex(8)}};
      const std::string text = e.dump();
      Status st = put_rows({{contract_row(p.tenant, name), raw}}, {{contract_row(p.tenant, name), row.dump()}},
                           {JournalAppend{sha256(text), text}});
      if (st.code() == Code::kAlreadyExists) continue;
      if (!st) return err(503, "ledger_unavailable", st.message());
      return ok_json(200, {{"name", name}, {"frozen", true}});
    }
    return err(409, "conflict", "contract " + name + " kept changing; retry");
  }

  HttpResponse activate(const HttpRequest& req, const Principal& p, const std::string& name) {
    auto body = parse_strict(req.body, "body");
    if (!body) return err(400, "invalid_json", body.status().message());
    if (!body->is_object() || !body->contains("version") || !(*body)["version"].is_string())
      return err(400, "invalid_request", "body.version: expected a version (sha-256 hex)");
    const std::string ver = (*body)["version"];
    for (int attempt = 0; attempt < 8; ++attempt) {
      std::string raw;
      auto cj = contract_json(p.tenant, name, &raw);
      if (!cj) return err(503, "ledger_unavailable", cj.status().message());
      if (!*cj) return err(404, "not_found", "no contract " + name);
      json row = **cj;
      bool exists = false;
      for (auto& x : row["versions"]) exists |= x.get<std::string>() == ver;
      if (!exists) return err(404, "not_found", "contract " + name + " has no version " + ver);
      const std::string old = row.value("active", "");
      if (old == ver) return ok_json(200, {{"name", name}, {"version", ver}, {"active", true}, {"previous", old}});
      if (row.value("frozen", false)) return err(409, "contract_frozen", "contract " + name + " is frozen: no further activations");
      json accepted = json::array();
      std::string diff_hash;
      if (row.contains("owners")) {
        auto dj = diff_versions(p.tenant, name, old, ver);
        if (!dj) return err(422, "invalid_contract", dj.status().message());
        diff_hash = to_hex(settle::interface_diff_hash(*dj));
        const json what = {{"action", "activate"}, {"tenant", p.tenant}, {"name", name}, {"current", old},
                           {"new", ver}, {"interface_diff", diff_hash}};
        if (auto refusal = check_owner_signatures(row, *body, what, &accepted)) return *refusal;
      }
      // Compile before switching: new calls never wait for a compiler.
      auto d = deployment(p.tenant, name, true);
      std::shared_ptr<Version> v;
      {
        std::lock_guard<std::mutex> lock(d->mu);
        if (auto it = d->versions.find(ver); it != d->versions.end()) v = it->second;
      }
      if (!v) {
        auto lv = load_version(p.tenant, name, ver);
        if (!lv) return err(422, "invalid_contract", lv.status().message());
        v = *lv;
      }
      row["active"] = ver;
      json hist = {{"action", "activate"}, {"version", ver}, {"previous", old}, {"by", p.id}, {"at_ms", unix_ms()}};
      if (!accepted.empty()) {
        hist["signatures"] = accepted;
        hist["interface_diff"] = diff_hash;
      }
      row["history"].push_back(hist);
      Status s = put_rows({{contract_row(p.tenant, name), raw}}, {{contract_row(p.tenant, name), row.dump()}},
                          {activation_entry(p, name, old, ver, accepted, diff_hash)});
      if (s.code() == Code::kAlreadyExists) continue;
      if (!s) return err(503, "ledger_unavailable", s.message());
      {
        std::lock_guard<std::mutex> lock(d->mu);
        d->versions[ver] = v;
        d->active = ver;
      }
      return ok_json(200, {{"name", name}, {"version", ver}, {"active", true}, {"previous", old}});
    }
    return err(409, "conflict", "contract " + name + " kept changing; retry");
  }

  // The active version of a deployment, loading it if another server activated it.
  Result<std::shared_ptr<Version>> active_version(const std::string& tenant, const std::string& name) {
    auto d = deployment(tenant, name, false);
    if (d) {
      std::lock_guard<std::mutex> lock(d->mu);
      if (!d->active.empty()) return d->versions.at(d->active);
    }
    auto cj = contract_json(tenant, name, nullptr);
    if (!cj) return cj.status();
    if (!*cj || (**cj).value("active", "").empty()) return Status::not_found("no contract " + name);
    const std::string ver = (**cj)["active"];
    auto lv = load_version(tenant, name, ver);
    if (!lv) return lv.status();
    d = deployment(tenant, name, true);
    std::lock_guard<std::mutex> lock(d->mu);
    d->versions[ver] = *lv;
    if (d->active.empty()) d->active = ver;
    return d->versions.at(d->active);
  }

  // ---- calls ----

  HttpResponse call_contract(const HttpRequest& req, const Principal& p, const std::string& name,
                             const std::string& export_in, bool simulate, const std::string* idem) {
    const auto t0 = std::chrono::steady_clock::now();
    auto v = active_version(p.tenant, name);
    if (!v) {
      if (v.status().code() == Code::kNotFound) return err(404, "not_found", "no contract " + name);
      return err(503, "ledger_unavailable", v.status().message());
    }
    std::shared_ptr<Version> ver = *v;  // in-flight calls keep their version alive
    Contract& c = *ver->contract;
    auto body = parse_strict(req.body, "body");
    if (!body) return err(400, "invalid_json", body.status().message());
    settle::PipelineCall pc;
    std::string export_name = export_in;
    if (export_in.empty()) {
      export_name = c.find_export("policy.approve") ? "policy.approve" : "approve";
      if (!c.find_export(export_name))
        return err(422, "no_approve_export", "contract " + name + " exports no approve; use /call/{export}");
      if (!body->is_object()) return err(400, "invalid_request", "body: the intent must be a JSON object");
      pc.args = json::array({*body});
      pc.plan_escrow = true;
    } else {
      if (!c.find_export(export_name)) return err(404, "not_found", "contract " + name + " has no export " + export_name);
      if (!body->is_object() || !body->contains("args"))
        return err(400, "invalid_request", "body: expected {\"args\": [...]}");
      for (auto& [k, x] : body->items())
        if (k != "args") return err(400, "invalid_request", "body." + k + ": unknown field");
      pc.args = (*body)["args"];
      pc.plan_escrow = false;
    }
    // Signed intents: checked before anything runs. /call/{export} carries no
    // intent, so it cannot reach the approve export of a version that requires them.
    std::optional<SignedIntent> signed_intent;
    if (export_in.empty()) {
      if (auto refusal = check_signed_intent(req, p, name, *body, ver->require_signed_intents, &signed_intent))
        return *refusal;
    } else if (ver->require_signed_intents && (export_name == "approve" || export_name == "policy.approve")) {
      return err(401, "intent_signature_required", "contract " + name + " requires signed intents: call /v1/contracts/" +
                                                       name + "/approve with the Covenant-* signature headers");
    }
    // Budgets: a funded agent's holds draw on its budget account. Whether the
    // agent is funded is part of what the call read: its row is checked again
    // in the approval's transaction.
    if (export_in.empty()) {
      const json* agent_field = body->contains("agent-id") ? &(*body)["agent-id"]
                                : body->contains("agent_id") ? &(*body)["agent_id"] : nullptr;
      if (agent_field && agent_field->is_string() && valid_token(agent_field->get<std::string>())) {
        const std::string brow = budget_row(p.tenant, agent_field->get<std::string>());
        auto funded = ledger().kv_get(brow);
        if (!funded) return err(503, "ledger_unavailable", funded.status().message());
        pc.extra_expects.push_back({brow, *funded});
        if (*funded) {
          pc.escrow_debit_account = settle::budget_account_id(p.tenant, agent_field->get<std::string>());
          pc.escrow_debit_flags = kAccountDebitsMustNotExceedCredits;
        }
      }
    }
    bool has_mandate = false;
    if (export_in.empty()) {
      if (auto refusal = check_mandate(req, p, *body, signed_intent, &pc, &has_mandate)) return *refusal;
    }
    if (signed_intent) {
      pc.intent_signer = signed_intent->signer;
      if (!simulate) pc.extra_expects.push_back({nonce_row(p.tenant, signed_intent->agent, signed_intent->signer.nonce), std::nullopt});
    }
    pc.export_name = export_name;
    pc.inputs.module = ver->module;
    pc.inputs.wit = ver->wit;
    pc.inputs.grants = ver->grants;
    pc.inputs.export_name = export_name;
    pc.inputs.intent = req.body;
    pc.inputs.fuel = opts.fuel;
    pc.inputs.tier = Tier::kOptimized;
    pc.deadline_ms = opts.deadline_ms;
    pc.trace_id = parse_traceparent(req.header("traceparent"));
    pc.dry_run = simulate;

    std::string idem_key, fingerprint;
    std::unique_ptr<void, std::function<void(void*)>> inflight_guard;
    if (idem && !simulate) {
      if (idem->empty() || idem->size() > 255)
        return err(400, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 characters");
      idem_key = idem_row(p.tenant, *idem);
      fingerprint = sha256_hex(req.method + " " + req.path + "\n" + req.body);
      {
        std::lock_guard<std::mutex> lock(idem_mu);
        if (!idem_inflight.insert(idem_key).second) {
          HttpResponse r = err(409, "idempotency_in_flight", "a request with this Idempotency-Key is still in flight");
          r.headers.push_back({"Retry-After", "1"});
          return r;
        }
      }
      inflight_guard = std::unique_ptr<void, std::function<void(void*)>>(reinterpret_cast<void*>(1), [this, idem_key](void*) {
        std::lock_guard<std::mutex> lock(idem_mu);
        idem_inflight.erase(idem_key);
      });
      if (auto stored = lookup_idempotent(idem_key, fingerprint)) return *stored;
      pc.extra_expects.push_back({idem_key, std::nullopt});
    }
    // A used nonce is refused by the commit's compare-and-set (the nonce row must be
    // absent): no read before the run, so a fresh nonce costs nothing extra. A retry
    // with the same Idempotency-Key was answered from its record above.

    const std::string tenant = p.tenant, vhex = ver->version, exp_name = export_name;
    const bool approve_route = export_in.empty();
    pc.extra_puts = [&, tenant, vhex](const settle::PipelineOutcome& o) {
      std::vector<KvPut> puts;
      // One row per call: who owns it, and what a replay package needs. A hold is found
      // by its id, the first 16 bytes of its receipt's id (a prefix scan).
      json rr = {{"tenant", tenant}, {"contract", name}, {"version", vhex}, {"export", exp_name},
                 {"intent", req.body}, {"fuel", opts.fuel}, {"record", call_record_to_json(o.call.record)}};
      if (!ver->mask.empty() && approve_route) {
        // The stored copy (and every replay package made from it) carries the masked
        // intent and the list; the receipt's intent hash still binds the original.
        std::vector<std::string> masked;
        json mi = settle::apply_mask(*body, ver->mask, "intent", &masked);
        if (!masked.empty()) {
          rr["intent"] = mi.dump();
          rr["masked"] = masked;
        }
      }
      if (o.hold_id) rr["hold_id"] = *o.hold_id;
      puts.push_back({receipt_row(o.receipt_id), rr.dump()});
      if (signed_intent) {
        json nr = {{"expires_at_ms", signed_intent->expires_at_ms}, {"receipt_id", o.receipt_id}};
        puts.push_back({nonce_row(tenant, signed_intent->agent, signed_intent->signer.nonce), nr.dump()});
      }
      if (!idem_key.empty()) {
        json resp = response_body(o, vhex, approve_route, 0);
        if (!ver->mask.empty() && approve_route && resp.contains("decision")) {
          std::vector<std::string> masked;
          resp["decision"] = settle::apply_mask(resp["decision"], ver->mask, "decision", &masked);
        }
        json rec = {{"fingerprint", fingerprint}, {"status", 200}, {"body", resp.dump()},
                    {"content_type", "application/json"}, {"created_ms", unix_ms()}, {"receipt_id", o.receipt_id}};
        puts.push_back({idem_key, rec.dump()});
      }
      return puts;
    };

    auto o = pipeline->approve(c, std::move(pc));
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const char* route_label = simulate ? "simulate" : (approve_route ? "approve" : "call");
    if (!o) {
      const Status& s = o.status();
      c_decisions->Add({{"route", route_label}, {"outcome", "error"}}).Increment();
      if (s.code() == Code::kAlreadyExists && !idem_key.empty()) {
        // Another server committed this Idempotency-Key first: answer with its response.
        if (auto stored = lookup_idempotent(idem_key, fingerprint)) return *stored;
      }
      if (s.code() == Code::kAlreadyExists && signed_intent && s.message().find("nonce/") != std::string::npos)
        return err(409, "intent_nonce_replayed", "nonce " + signed_intent->signer.nonce + " of agent " +
                                                     signed_intent->agent + " was already used");
      if (s.code() == Code::kAlreadyExists && s.message().find("budget/") != std::string::npos) {
        HttpResponse r = err(409, "conflict", "the agent was funded while the call ran; retry");
        r.headers.push_back({"Retry-After", "1"});
        return r;
      }
      if (s.code() == Code::kIOError) return err(503, "ledger_unavailable", s.message());
      if (s.code() == Code::kFailedPrecondition && has_mandate && s.message().find("(transfer 1): exceeds_credits") != std::string::npos)
        return err(402, "mandate_budget_exhausted", "the mandate's budget cannot cover this approval (" + s.message() +
                                                        "); nothing was committed");
      if (s.code() == Code::kFailedPrecondition && s.message().find("exceeds_credits") != std::string::npos)
        return err(402, "insufficient_funds", "the agent's budget cannot cover this hold (" + s.message() +
                                                  "); nothing was committed");
      if (s.code() == Code::kFailedPrecondition) {
        HttpResponse r = err(409, "conflict", s.message());
        r.headers.push_back({"Retry-After", "1"});
        return r;
      }
      if (s.code() == Code::kLimitExceeded) return err(413, "too_large", s.message());
      if (s.message().rfind("intent expired", 0) == 0) return err(422, "intent_expired", s.message());
      return err(400, "invalid_arguments", s.message());
    }
    if (o->trapped()) {
      c_decisions->Add({{"route", route_label}, {"outcome", "trap"}}).Increment();
      HttpResponse r = err(422, "contract_trap", std::string(trap_kind_name(o->call.trap.kind)) + ": " + o->call.trap.message);
      auto j = json::parse(r.body);
      j["error"]["trap"] = trap_kind_name(o->call.trap.kind);
      j["error"]["fuel_used"] = o->call.fuel_used;
      r.body = j.dump();
      return r;
    }
    c_decisions->Add({{"route", route_label}, {"outcome", "ok"}}).Increment();
    if (o->attempts > 1) c_kv_conflicts->Increment(o->attempts - 1);
    h_execute->Observe(o->execute_ns / 1e9);
    if (simulate) {
      json kv_reads = json::array(), kv_writes = json::array(), logs = json::array();
      for (auto& r : o->call.record.kv_reads) kv_reads.push_back({{"key", r.key}, {"value", r.value ? json(*r.value) : json(nullptr)}});
      for (auto& w : o->call.record.kv_writes) kv_writes.push_back({{"key", w.key}, {"value", w.value ? json(*w.value) : json(nullptr)}});
      for (auto& l : o->call.record.logs) logs.push_back({{"level", log_level_name(l.level)}, {"message", l.message}});
      json holds = json::array();
      if (o->escrow)
        holds.push_back({{"agent_id", o->escrow->agent_id}, {"amount", std::to_string(o->escrow->amount)},
                         {"timeout_s", o->escrow->timeout_s}});
      return ok_json(200, {{"decision", o->call.result}, {"fuel_used", o->call.fuel_used}, {"version", vhex},
                           {"kv", {{"reads", kv_reads}, {"writes", kv_writes}}}, {"logs", logs}, {"holds", holds},
                           {"signed", false}, {"stored", false}});
    }
    h_queue->Observe(o->queue_ns / 1e9);
    h_sign->Observe(o->sign_ns / 1e9);
    h_commit->Observe(o->commit_ns / 1e9);
    h_total->Observe(total);
    json out = response_body(*o, vhex, approve_route, o->log_index);
    return ok_json(200, out);
  }

  json response_body(const settle::PipelineOutcome& o, const std::string& version, bool approve, uint64_t log_index) {
    json out;
    out[approve ? "decision" : "result"] = o.call.result;
    out["receipt_id"] = o.receipt_id;
    out["receipt"] = base64_encode(o.cose);
    out["hold_id"] = o.hold_id ? json(*o.hold_id) : json(nullptr);
    out["log_index"] = log_index;
    out["version"] = version;
    out["fuel_used"] = o.call.fuel_used;
    out["trace_id"] = to_hex(o.receipt.trace_id);
    out["executor_kid"] = to_hex(o.receipt.executor_kid);
    return out;
  }

  // ---- receipts, proofs, checkpoints ----

  Result<uint64_t> sync_tree() {
    auto n = ledger().journal_count();
    if (!n) return n.status();
    std::lock_guard<std::mutex> lock(tree_mu);
    if (tree.size() < *n) {
      Status s = ledger().journal_for_each(tree.size() + 1, [&](const JournalRow& row) {
        if (row.seq > *n) return false;
        tree.append_entry(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(row.entry.data()), row.entry.size()));
        return true;
      });
      if (!s) return s;
    }
    return tree.size();
  }

  Result<std::optional<Checkpoint>> latest_checkpoint(std::string* note) {
    std::ifstream f(pipeline->checkpoint_dir() + "/latest.txt", std::ios::binary);
    if (!f) return std::optional<Checkpoint>();
    std::string text((std::istreambuf_iterator<char>(f)), {});
    auto cp = parse_checkpoint(text);
    if (!cp) return cp.status();
    if (note) *note = text;
    return std::optional<Checkpoint>(*cp);
  }

  HttpResponse checkpoint_latest() {
    std::string note;
    auto cp = latest_checkpoint(&note);
    if (!cp) return err(500, "internal", cp.status().message());
    if (!*cp) {
      auto made = pipeline->maybe_checkpoint(1, true);
      if (!made) return err(503, "ledger_unavailable", made.status().message());
      cp = latest_checkpoint(&note);
      if (!cp || !*cp) return err(404, "not_found", "no checkpoint yet: the journal is empty");
    }
    return ok_json(200, {{"tree_size", (**cp).tree_size}, {"root", to_hex((**cp).root)}, {"origin", (**cp).origin},
                         {"note", note}, {"executor_kid", to_hex(pipeline->key().kid())},
                         {"public_key_hex", to_hex(pipeline->key().public_key())}});
  }

  HttpResponse consistency(const HttpRequest& req) {
    auto num = [&](const char* k) -> std::optional<uint64_t> {
      auto it = req.query.find(k);
      if (it == req.query.end() || it->second.empty() || it->second.size() > 19) return std::nullopt;
      for (char ch : it->second)
        if (ch < '0' || ch > '9') return std::nullopt;
      return std::stoull(it->second);
    };
    auto from = num("from"), to = num("to");
    if (!from || !to) return err(400, "invalid_request", "from and to must be tree sizes (non-negative integers)");
    auto size = sync_tree();
    if (!size) return err(503, "ledger_unavailable", size.status().message());
    if (*from > *to || *to > *size)
      return err(400, "invalid_request", "need 0 <= from <= to <= " + std::to_string(*size) + " (the journal's size)");
    std::lock_guard<std::mutex> lock(tree_mu);
    auto proof = tree.consistency_proof(*from, *to);
    if (!proof) return err(400, "invalid_request", proof.status().message());
    json path = json::array();
    for (const Hash32& h : *proof) path.push_back(to_hex(h));
    return ok_json(200, {{"from", *from}, {"to", *to}, {"from_root", *from ? json(to_hex(tree.root_at(*from).value())) : json(nullptr)},
                         {"to_root", to_hex(tree.root_at(*to).value())}, {"path", path}});
  }

  HttpResponse receipt_route(const HttpRequest& req, const Principal& p, const std::string& id, const std::string& route) {
    Hash32 key;
    if (id.size() != 64 || !from_hex(id, key)) return err(400, "invalid_request", "a receipt id is 64 hex digits");
    auto meta = ledger().kv_get(receipt_row(id));
    if (!meta) return err(503, "ledger_unavailable", meta.status().message());
    if (!*meta) return err(404, "not_found", "no receipt " + id);
    auto mj = json::parse(**meta, nullptr, false);
    if (!p.system() && mj.value("tenant", "") != p.tenant) return err(404, "not_found", "no receipt " + id);
    auto row = ledger().journal_by_key(key);
    if (!row) return err(503, "ledger_unavailable", row.status().message());
    if (!*row) return err(404, "not_found", "no receipt " + id);
    if (route == "/v1/receipts/{id}") {
      HttpResponse r;
      r.body = (*row)->entry;
      r.content_type = "application/cose";
      r.outcome = "ok";
      r.headers.push_back({"X-Log-Index", std::to_string((*row)->seq - 1)});
      return r;
    }
    if (route == "/v1/receipts/{id}/proof") {
      const uint64_t index = (*row)->seq - 1;
      std::string note;
      auto cp = latest_checkpoint(&note);
      if (!cp) return err(500, "internal", cp.status().message());
      if (!*cp || (**cp).tree_size <= index) {
        auto made = pipeline->maybe_checkpoint(1, true);
        if (!made) return err(503, "ledger_unavailable", made.status().message());
        cp = latest_checkpoint(&note);
        if (!cp || !*cp) return err(500, "internal", "no checkpoint could be cut");
      }
      auto size = sync_tree();
      if (!size) return err(503, "ledger_unavailable", size.status().message());
      const uint64_t tsize = (**cp).tree_size;
      if (tsize > *size || tsize <= index) return err(503, "not_ready", "the checkpoint does not cover this receipt yet");
      std::lock_guard<std::mutex> lock(tree_mu);
      auto proof = tree.inclusion_proof(index, tsize);
      if (!proof) return err(500, "internal", proof.status().message());
      json path = json::array();
      for (const Hash32& h : *proof) path.push_back(to_hex(h));
      return ok_json(200, {{"type", "inclusion"}, {"receipt_id", id}, {"leaf_index", index}, {"tree_size", tsize},
                           {"leaf_hash", to_hex(tree.leaf_hash(index))}, {"root", to_hex((**cp).root)}, {"path", path},
                           {"checkpoint", note}});
    }
    // replay package
    const json& cj = mj;
    const std::string ver = mj.value("version", "");
    auto vrow = ledger().kv_get(version_row(mj.value("tenant", ""), mj.value("contract", ""), ver));
    auto mrow = ledger().kv_get(module_row(ver));
    if (!vrow || !*vrow || !mrow || !*mrow) return err(404, "not_found", "the contract version of receipt " + id + " is gone");
    auto vj = json::parse(**vrow, nullptr, false);
    auto rec = call_record_from_json(cj["record"]);
    if (!rec) return err(500, "internal", rec.status().message());
    settle::CallInputs in;
    in.module.assign((*mrow)->begin(), (*mrow)->end());
    in.wit = vj.value("wit", "");
    in.grants = vj.value("grants", "");
    in.export_name = cj.value("export", "");
    in.intent = cj.value("intent", "");
    in.fuel = cj.value("fuel", opts.fuel);
    in.tier = Tier::kOptimized;
    std::span<const uint8_t> cose(reinterpret_cast<const uint8_t*>((*row)->entry.data()), (*row)->entry.size());
    auto decoded = decode_receipt(cose);
    if (!decoded) return err(500, "internal", decoded.status().message());
    auto pub = executor_public_key(to_hex(decoded->executor_kid));
    if (!pub) return err(500, "internal", "executor key " + to_hex(decoded->executor_kid) + " is unknown");
    settle::ReplayPackage pkg = settle::make_replay_package(in, *rec, cose, *pub);
    if (cj.contains("masked"))
      for (const json& m : cj["masked"]) pkg.masked.push_back(m.get<std::string>());
    auto bytes = settle::encode_replay_package(pkg);
    HttpResponse r;
    r.body.assign(bytes.begin(), bytes.end());
    r.content_type = "application/cbor";
    r.outcome = "ok";
    return r;
  }

  std::optional<PublicKey> executor_public_key(const std::string& kid) {
    auto row = ledger().kv_get(executor_row(kid));
    if (!row || !*row) return std::nullopt;
    auto j = json::parse(**row, nullptr, false);
    PublicKey pk;
    if (!from_hex(j.value("public_key_hex", ""), pk)) return std::nullopt;
    return pk;
  }

  // ---- budgets (docs/api.md, "Budgets") ----

  HttpResponse fund_agent(const HttpRequest& req, const Principal& p, const std::string& agent, const std::string* idem) {
    if (!valid_token(agent)) return err(400, "invalid_request", "agent id: expected 1-64 of [A-Za-z0-9._:@-]");
    auto body = parse_strict(req.body, "body");
    if (!body) return err(400, "invalid_json", body.status().message());
    if (!body->is_object() || !body->contains("amount"))
      return err(400, "invalid_request", "body: expected {\"amount\": N} (a number or a decimal string)");
    for (auto& [k, v] : body->items())
      if (k != "amount") return err(400, "invalid_request", "body." + k + ": unknown field (expected amount)");
    auto amount = json_u64((*body)["amount"]);
    if (!amount || *amount == 0) return err(400, "invalid_request", "body.amount: expected a positive integer within u64");
    Status st = settle::fund_agent(ledger(), p.tenant, agent, *amount, idem ? *idem : random_hex(16));
    if (st.code() == Code::kFailedPrecondition) return err(409, "ledger_refused", st.message());
    if (!st) return err(503, "ledger_unavailable", st.message());
    HttpResponse out = agent_balance(p, agent);
    if (out.status == 200) out.status = 201;
    return out;
  }

  HttpResponse agent_balance(const Principal& p, const std::string& agent) {
    if (!valid_token(agent)) return err(400, "invalid_request", "agent id: expected 1-64 of [A-Za-z0-9._:@-]");
    auto b = settle::agent_balance(ledger(), p.tenant, agent);
    if (!b) return err(503, "ledger_unavailable", b.status().message());
    if (!b->funded) return ok_json(200, {{"agent", agent}, {"funded", false}});
    return ok_json(200, {{"agent", agent},
                         {"funded", true},
                         {"account_id", b->account_id.hex()},
                         {"credits_posted", std::to_string(b->credits_posted)},
                         {"debits_posted", std::to_string(b->debits_posted)},
                         {"debits_pending", std::to_string(b->debits_pending)},
                         {"available", std::to_string(b->available)}});
  }

  // ---- agent keys and signed intents (docs/api.md, "Signed intents") ----

  HttpResponse put_agent_key(const HttpRequest& req, const Principal& p, const std::string& agent,
                             const std::string& kid, const std::string& kind = "agent") {
    if (!valid_token(agent)) return err(400, "invalid_request", "agent id: expected 1-64 of [A-Za-z0-9._:@-]");
    if (!valid_token(kid)) return err(400, "invalid_request", "kid: expected 1-64 of [A-Za-z0-9._:@-]");
    auto body = parse_strict(req.body, "body");
    if (!body) return err(400, "invalid_json", body.status().message());
    if (!body->is_object()) return err(400, "invalid_request", "body: expected {\"public_key\": \"<64 hex>\"}");
    for (auto& [k, v] : body->items())
      if (k != "public_key") return err(400, "invalid_request", "body." + k + ": unknown field (expected public_key)");
    PublicKey pub{};
    if (!body->contains("public_key") || !(*body)["public_key"].is_string() ||
        !from_hex((*body)["public_key"].get<std::string>(), pub))
      return err(400, "invalid_request", "body.public_key: expected an Ed25519 public key as 64 hex digits");
    const std::string row = agent_key_row(p.tenant, agent, kid, kind);
    for (int attempt = 0; attempt < 8; ++attempt) {
      auto have = ledger().kv_get(row);
      if (!have) return err(503, "ledger_unavailable", have.status().message());
      if (*have) {
        auto j = json::parse(**have, nullptr, false);
        if (j.value("public_key", "") != to_hex(pub))
          return err(409, "key_exists", "agent " + agent + " already has a different key " + kid + "; use a new kid to rotate");
        if (j.contains("revoked_ms")) return err(409, "key_revoked", "key " + kid + " of agent " + agent + " was revoked; use a new kid");
        return ok_json(200, agent_key_json(agent, kid, j));
      }
      json j = {{"public_key", to_hex(pub)}, {"created_ms", unix_ms()}, {"by", p.id}};
      Status st = put_rows({{row, std::nullopt}}, {{row, j.dump()}});
      if (st.code() == Code::kAlreadyExists) continue;
      if (!st) return err(503, "ledger_unavailable", st.message());
      {
        std::lock_guard<std::mutex> lock(keys_mu);
        agent_key_cache.erase(row);  // a cached "no such key" must not outlive the key's creation
      }
      return ok_json(201, agent_key_json(agent, kid, j));
    }
    return err(409, "conflict", "key row kept changing; retry");
  }

  static json agent_key_json(const std::string& agent, const std::string& kid, const json& row) {
    json out = {{"agent", agent}, {"kid", kid}, {"public_key", row.value("public_key", "")},
                {"created_ms", row.value("created_ms", uint64_t{0})}, {"status", row.contains("revoked_ms") ? "revoked" : "active"}};
    if (row.contains("revoked_ms")) out["revoked_ms"] = row["revoked_ms"];
    return out;
  }

  HttpResponse revoke_agent_key(const Principal& p, const std::string& agent, const std::string& kid,
                                const std::string& kind = "agent") {
    const std::string row = agent_key_row(p.tenant, agent, kid, kind);
    for (int attempt = 0; attempt < 8; ++attempt) {
      auto have = ledger().kv_get(row);
      if (!have) return err(503, "ledger_unavailable", have.status().message());
      if (!*have) return err(404, "not_found", "agent " + agent + " has no key " + kid);
      auto j = json::parse(**have, nullptr, false);
      if (j.contains("revoked_ms")) return ok_json(200, agent_key_json(agent, kid, j));
      j["revoked_ms"] = unix_ms();
      j["revoked_by"] = p.id;
      Status st = put_rows({{row, **have}}, {{row, j.dump()}});
      if (st.code() == Code::kAlreadyExists) continue;
      if (!st) return err(503, "ledger_unavailable", st.message());
      {
        std::lock_guard<std::mutex> lock(keys_mu);
        agent_key_cache.erase(row);
      }
      return ok_json(200, agent_key_json(agent, kid, j));
    }
    return err(409, "conflict", "key row kept changing; retry");
  }

  HttpResponse list_agent_keys(const Principal& p, const std::string& agent, const std::string& kind = "agent") {
    if (!valid_token(agent)) return err(400, "invalid_request", "agent id: expected 1-64 of [A-Za-z0-9._:@-]");
    const std::string prefix = kRow + kind + "key/" + p.tenant + "/" + agent + "/";
    auto rows = ledger().kv_scan(prefix, "", 1000);
    if (!rows) return err(503, "ledger_unavailable", rows.status().message());
    json keys = json::array();
    for (auto& [k, v] : *rows) keys.push_back(agent_key_json(agent, k.substr(prefix.size()), json::parse(v, nullptr, false)));
    return ok_json(200, {{"agent", agent}, {"keys", keys}});
  }

  Result<std::optional<std::string>> cached_row(const std::string& key) {
    const auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard<std::mutex> lock(keys_mu);
      auto it = agent_key_cache.find(key);
      if (it != agent_key_cache.end() && now - it->second.at < std::chrono::seconds(2)) return it->second.value;
    }
    auto row = ledger().kv_get(key);
    if (!row) return row.status();
    std::lock_guard<std::mutex> lock(keys_mu);
    if (agent_key_cache.size() > 100'000) agent_key_cache.clear();
    agent_key_cache[key] = {*row, now};
    return *row;
  }

  struct SignedIntent {
    Receipt::IntentSigner signer;
    std::string agent;
    uint64_t expires_at_ms = 0;
  };

  // Checks the Covenant-* signature headers of an approval against the agent's
  // registered key, before anything runs. Returns the refusal, or fills *out
  // (nothing when the request carries no signature and none is required).
  std::optional<HttpResponse> check_signed_intent(const HttpRequest& req, const Principal& p, const std::string& name,
                                                  const json& intent, bool required, std::optional<SignedIntent>* out) {
    const std::string* kid = req.header("covenant-key-id");
    const std::string* nonce = req.header("covenant-nonce");
    const std::string* nbf = req.header("covenant-not-before-ms");
    const std::string* exp = req.header("covenant-expires-at-ms");
    const std::string* sig = req.header("covenant-signature");
    const bool any = kid || nonce || nbf || exp || sig;
    if (!any) {
      if (!required) return std::nullopt;
      return err(401, "intent_signature_required",
                 "contract " + name + " requires signed intents: send Covenant-Key-Id, Covenant-Nonce, "
                 "Covenant-Not-Before-Ms, Covenant-Expires-At-Ms and Covenant-Signature");
    }
    if (!kid || !nonce || !nbf || !exp || !sig)
      return err(400, "intent_signature_incomplete",
                 "a signed intent needs all of Covenant-Key-Id, Covenant-Nonce, Covenant-Not-Before-Ms, "
                 "Covenant-Expires-At-Ms and Covenant-Signature");
    if (!valid_token(*kid)) return err(400, "intent_signature_incomplete", "Covenant-Key-Id: expected 1-64 of [A-Za-z0-9._:@-]");
    if (!valid_token(*nonce, 8)) return err(400, "intent_signature_incomplete", "Covenant-Nonce: expected 8-64 of [A-Za-z0-9._:@-]");
    auto parse_ms = [](const std::string& t, uint64_t* v) {
      if (t.empty() || t.size() > 19) return false;
      for (char c : t)
        if (c < '0' || c > '9') return false;
      *v = std::stoull(t);
      return true;
    };
    uint64_t not_before = 0, expires = 0;
    if (!parse_ms(*nbf, &not_before)) return err(400, "intent_signature_incomplete", "Covenant-Not-Before-Ms: expected Unix milliseconds");
    if (!parse_ms(*exp, &expires)) return err(400, "intent_signature_incomplete", "Covenant-Expires-At-Ms: expected Unix milliseconds");
    if (expires <= not_before || expires - not_before > kSignedIntentWindowMsMax)
      return err(422, "intent_window_invalid", "Covenant-Expires-At-Ms must be after Covenant-Not-Before-Ms, by at most 24 h");
    std::vector<uint8_t> sig_bytes;
    if (!base64_decode(*sig, &sig_bytes) || sig_bytes.size() != kSignatureBytes) {
      if (!from_hex(*sig, &sig_bytes) || sig_bytes.size() != kSignatureBytes)
        return err(400, "intent_signature_incomplete", "Covenant-Signature: expected 64 bytes, base64 or hex");
    }
    const json* agent_field = intent.contains("agent-id") ? &intent["agent-id"] : intent.contains("agent_id") ? &intent["agent_id"] : nullptr;
    if (!agent_field || !agent_field->is_string() || !valid_token(agent_field->get<std::string>()))
      return err(400, "intent_agent_missing", "a signed intent names its agent in agent-id (1-64 of [A-Za-z0-9._:@-])");
    const std::string agent = agent_field->get<std::string>();
    auto row = cached_row(agent_key_row(p.tenant, agent, *kid));
    if (!row) return err(503, "ledger_unavailable", row.status().message());
    if (!*row) return err(403, "intent_key_unknown", "agent " + agent + " has no key " + *kid + " in this tenant");
    auto kj = json::parse(**row, nullptr, false);
    PublicKey pub{};
    if (!kj.is_object() || !from_hex(kj.value("public_key", ""), pub))
      return err(500, "internal", "agent key row " + *kid + " is damaged");
    const uint64_t now = unix_ms();
    if (kj.contains("revoked_ms") && kj["revoked_ms"].get<uint64_t>() <= now)
      return err(403, "intent_key_revoked", "key " + *kid + " of agent " + agent + " was revoked");
    auto canon = settle::jcs_canonicalize(json{{"contract", name}, {"intent", intent}, {"nonce", *nonce},
                                               {"not_before_ms", not_before}, {"expires_at_ms", expires}});
    if (!canon) return err(400, "invalid_intent", "the intent has no canonical form: " + canon.status().message());
    if (!ed25519_verify(pub, std::span(reinterpret_cast<const uint8_t*>(canon->data()), canon->size()), sig_bytes))
      return err(403, "intent_signature_invalid",
                 "the signature does not verify with key " + *kid + " of agent " + agent +
                 " over the JCS form of {contract, intent, nonce, not_before_ms, expires_at_ms}");
    if (now < not_before) return err(422, "intent_not_yet_valid", "the intent is valid from " + *nbf + " ms; now is " + std::to_string(now));
    if (now >= expires) return err(422, "intent_expired", "the intent's signature expired at " + *exp + " ms; now is " + std::to_string(now));
    *out = SignedIntent{{*kid, *nonce}, agent, expires};
    return std::nullopt;
  }

  // ---- mandates (docs/api.md, "Mandates") ----

  static Id128 mandate_account_id(const std::string& tenant, const std::string& id) {
    return settle::derived_id("covenant/mandate/" + tenant + "/" + id);
  }

  HttpResponse register_mandate(const HttpRequest& req, const Principal& p) {
    auto body = parse_strict(req.body, "body");
    if (!body) return err(400, "invalid_json", body.status().message());
    if (!body->is_object() || !body->contains("mandate") || !(*body)["mandate"].is_object() || !body->contains("signature") ||
        !(*body)["signature"].is_string())
      return err(400, "invalid_request", "body: expected {\"mandate\": {...}, \"signature\": \"<user's Ed25519 signature>\"}");
    for (auto& [k, v] : body->items())
      if (k != "mandate" && k != "signature") return err(400, "invalid_request", "body." + k + ": unknown field (expected mandate, signature)");
    const json& md = (*body)["mandate"];
    static const std::set<std::string> known = {"id", "user", "user_kid", "agent", "agent_kid", "max_amount_per_intent",
                                                "budget", "not_before_ms", "expires_at_ms", "allowed_task_types", "allowed_payees"};
    for (auto& [k, v] : md.items())
      if (!known.count(k)) return err(400, "invalid_request", "mandate." + k + ": unknown field");
    for (const char* f : {"id", "user", "user_kid", "agent", "agent_kid"})
      if (!md.contains(f) || !md[f].is_string() || !valid_token(md[f].get<std::string>()))
        return err(400, "invalid_request", std::string("mandate.") + f + ": expected 1-64 of [A-Za-z0-9._:@-]");
    for (const char* f : {"max_amount_per_intent", "budget", "not_before_ms", "expires_at_ms"})
      if (!md.contains(f) || !json_u64(md[f])) return err(400, "invalid_request", std::string("mandate.") + f + ": expected an unsigned integer (number or decimal string)");
    for (const char* f : {"allowed_task_types", "allowed_payees"}) {
      if (!md.contains(f)) continue;
      if (!md[f].is_array()) return err(400, "invalid_request", std::string("mandate.") + f + ": expected a list of strings");
      for (const json& x : md[f])
        if (!x.is_string()) return err(400, "invalid_request", std::string("mandate.") + f + ": expected a list of strings");
    }
    const uint64_t budget = *json_u64(md["budget"]);
    if (budget == 0 || *json_u64(md["expires_at_ms"]) <= *json_u64(md["not_before_ms"]))
      return err(400, "invalid_request", "mandate: budget must be positive and expires_at_ms after not_before_ms");
    const std::string id = md["id"], user = md["user"], user_kid = md["user_kid"];
    // The user's signature over the JCS form of the mandate, with a key registered for the user.
    auto krow = ledger().kv_get(agent_key_row(p.tenant, user, user_kid, "user"));
    if (!krow) return err(503, "ledger_unavailable", krow.status().message());
    if (!*krow) return err(403, "mandate_key_unknown", "user " + user + " has no key " + user_kid + " in this tenant");
    auto kj = json::parse(**krow, nullptr, false);
    if (kj.contains("revoked_ms")) return err(403, "mandate_key_revoked", "key " + user_kid + " of user " + user + " was revoked");
    PublicKey pub{};
    if (!from_hex(kj.value("public_key", ""), pub)) return err(500, "internal", "user key row is damaged");
    auto canon = settle::jcs_canonicalize(md);
    if (!canon) return err(400, "invalid_request", "mandate: no canonical form: " + canon.status().message());
    std::vector<uint8_t> sig;
    const std::string sig_text = (*body)["signature"];
    if ((!base64_decode(sig_text, &sig) || sig.size() != kSignatureBytes) && (!from_hex(sig_text, &sig) || sig.size() != kSignatureBytes))
      return err(400, "invalid_request", "signature: expected 64 bytes, base64 or hex");
    if (!ed25519_verify(pub, std::span(reinterpret_cast<const uint8_t*>(canon->data()), canon->size()), sig))
      return err(403, "mandate_signature_invalid", "the signature does not verify with key " + user_kid + " of user " + user +
                                                       " over the JCS form of the mandate");
    Atomic a;
    const Id128 issuer = settle::derived_id("covenant/mandate-issuer/" + p.tenant);
    const Id128 macc = mandate_account_id(p.tenant, id);
    a.expects.push_back({mandate_row(p.tenant, id), std::nullopt});
    a.accounts.push_back(Account{.id = issuer, .ledger = settle::kEscrowLedgerId, .code = settle::kTreasuryAccountCode});
    a.accounts.push_back(Account{.id = macc, .ledger = settle::kEscrowLedgerId, .code = settle::kAgentAccountCode,
                                 .flags = kAccountDebitsMustNotExceedCredits});
    Transfer t;
    t.id = settle::derived_id("covenant/mandate-budget/" + p.tenant + "/" + id);
    t.debit_account_id = issuer;
    t.credit_account_id = macc;
    t.amount = budget;
    t.ledger = settle::kEscrowLedgerId;
    t.code = settle::kTreasuryAccountCode;
    a.transfers.push_back(t);
    json row = {{"mandate", md}, {"signature", sig_text}, {"created_ms", unix_ms()}, {"by", p.id}};
    a.puts.push_back({mandate_row(p.tenant, id), row.dump()});
    const std::string text = json{{"type", "mandate"}, {"tenant", p.tenant}, {"mandate", md}, {"signature", sig_text},
                                  {"by", p.id}, {"at_ms", unix_ms()}}.dump();
    a.journal.push_back(JournalAppend{sha256(text), text});
    std::vector<LedgerOperation> ops{a};
    auto r = ledger().submit(ops);
    if (!r) return err(503, "ledger_unavailable", r.status().message());
    if ((*r)[0].result == LedgerResult::kv_expectation_failed) return err(409, "mandate_exists", "mandate " + id + " exists");
    {
      std::lock_guard<std::mutex> lock(keys_mu);
      agent_key_cache.erase(mandate_row(p.tenant, id));
    }
    if ((*r)[0].result != LedgerResult::ok) {
      const LedgerResult why = (*r)[0].result == LedgerResult::atomic_part_refused ? (*r)[0].part_result : (*r)[0].result;
      return err(409, ledger_result_name(why), std::string("the ledger refused the mandate: ") + ledger_result_name(why));
    }
    HttpResponse out = get_mandate(p, id);
    if (out.status == 200) out.status = 201;
    return out;
  }

  // The stored mandate and its state: status active | not_yet_valid | exhausted | expired | revoked.
  struct MandateState {
    json row;
    std::string raw;
    std::string status;
    uint64_t used = 0, remaining = 0;
  };
  std::variant<MandateState, HttpResponse> mandate_state(const Principal& p, const std::string& id) {
    if (!valid_token(id)) return err(400, "invalid_request", "mandate id: expected 1-64 of [A-Za-z0-9._:@-]");
    auto row = ledger().kv_get(mandate_row(p.tenant, id));
    if (!row) return err(503, "ledger_unavailable", row.status().message());
    if (!*row) return err(404, "mandate_unknown", "no mandate " + id);
    MandateState st;
    st.raw = **row;
    st.row = json::parse(st.raw, nullptr, false);
    auto acc = ledger().lookup_account(mandate_account_id(p.tenant, id));
    if (!acc) return err(503, "ledger_unavailable", acc.status().message());
    if (*acc) {
      st.used = (*acc)->debits_posted + (*acc)->debits_pending;
      st.remaining = (*acc)->credits_posted > st.used ? (*acc)->credits_posted - st.used : 0;
    }
    const json& md = st.row["mandate"];
    const uint64_t now = unix_ms();
    if (st.row.contains("revoked_ms")) st.status = "revoked";
    else if (now >= *json_u64(md["expires_at_ms"])) st.status = "expired";
    else if (now < *json_u64(md["not_before_ms"])) st.status = "not_yet_valid";
    else if (st.remaining == 0) st.status = "exhausted";
    else st.status = "active";
    return st;
  }

  HttpResponse get_mandate(const Principal& p, const std::string& id) {
    auto v = mandate_state(p, id);
    if (auto* e = std::get_if<HttpResponse>(&v)) return *e;
    const MandateState& st = std::get<MandateState>(v);
    json out = {{"id", id}, {"mandate", st.row["mandate"]}, {"status", st.status}, {"used", std::to_string(st.used)},
                {"remaining", std::to_string(st.remaining)}};
    if (st.row.contains("revoked_ms")) out["revoked_ms"] = st.row["revoked_ms"];
    return ok_json(200, out);
  }

  HttpResponse revoke_mandate(const Principal& p, const std::string& id) {
    for (int attempt = 0; attempt < 8; ++attempt) {
      auto v = mandate_state(p, id);
      if (auto* e = std::get_if<HttpResponse>(&v)) return *e;
      MandateState st = std::get<MandateState>(v);
      if (st.row.contains("revoked_ms")) return get_mandate(p, id);
      st.row["revoked_ms"] = unix_ms();
      st.row["revoked_by"] = p.id;
      const std::string text = json{{"type", "mandate-revoked"}, {"tenant", p.tenant}, {"mandate", id}, {"by", p.id},
                                    {"at_ms", unix_ms()}}.dump();
      Status s = put_rows({{mandate_row(p.tenant, id), st.raw}}, {{mandate_row(p.tenant, id), st.row.dump()}},
                          {JournalAppend{sha256(text), text}});
      if (s.code() == Code::kAlreadyExists) continue;
      if (!s) return err(503, "ledger_unavailable", s.message());
      {
        std::lock_guard<std::mutex> lock(keys_mu);
        agent_key_cache.erase(mandate_row(p.tenant, id));
      }
      return get_mandate(p, id);
    }
    return err(409, "conflict", "mandate " + id + " kept changing; retry");
  }

  // Checks an approval against the mandate named by Covenant-Mandate before the
  // contract runs; the cumulative counter moves in the approval's transaction
  // (a transfer out of the mandate's account, which may not go below zero).
  std::optional<HttpResponse> check_mandate(const HttpRequest& req, const Principal& p, const json& intent,
                                            const std::optional<SignedIntent>& signed_intent, settle::PipelineCall* pc,
                                            bool* has_mandate) {
    const std::string* mid = req.header("covenant-mandate");
    if (!mid) return std::nullopt;
    *has_mandate = true;
    if (!signed_intent)
      return err(401, "mandate_requires_signed_intent", "an approval under a mandate must be a signed intent of the mandate's agent key");
    // The row is cached like agent keys (2 s; a revocation on this server clears it at
    // once); the cumulative budget is not read here: the commit's counter account
    // refuses an overspend (402 mandate_budget_exhausted, nothing committed).
    if (!valid_token(*mid)) return err(400, "invalid_request", "Covenant-Mandate: expected 1-64 of [A-Za-z0-9._:@-]");
    auto raw = cached_row(mandate_row(p.tenant, *mid));
    if (!raw) return err(503, "ledger_unavailable", raw.status().message());
    if (!*raw) return err(404, "mandate_unknown", "no mandate " + *mid);
    const json row = json::parse(**raw, nullptr, false);
    if (!row.is_object() || !row.contains("mandate")) return err(500, "internal", "mandate row " + *mid + " is damaged");
    const json& md = row["mandate"];
    const uint64_t now = unix_ms();
    if (row.contains("revoked_ms")) return err(403, "mandate_revoked", "mandate " + *mid + " was revoked");
    if (now >= json_u64(md["expires_at_ms"]).value_or(0)) return err(422, "mandate_expired", "mandate " + *mid + " expired");
    if (now < json_u64(md["not_before_ms"]).value_or(0))
      return err(422, "mandate_not_yet_valid", "mandate " + *mid + " is not valid yet");
    if (md.value("agent", "") != signed_intent->agent || md.value("agent_kid", "") != signed_intent->signer.kid)
      return err(403, "mandate_agent_mismatch", "mandate " + *mid + " is bound to key " + md.value("agent_kid", "") + " of agent " +
                                                    md.value("agent", ""));
    auto field = [&](const char* kebab, const char* snake) -> const json* {
      if (intent.contains(kebab)) return &intent[kebab];
      if (intent.contains(snake)) return &intent[snake];
      return nullptr;
    };
    const json* amt = field("amount", "amount");
    if (!amt) amt = field("max-units", "max_units");
    const std::optional<uint64_t> amount = amt ? json_u64(*amt) : std::nullopt;
    if (!amount) return err(400, "mandate_amount_missing", "an intent under a mandate states its amount (amount or max-units)");
    if (*amount > *json_u64(md["max_amount_per_intent"]))
      return err(403, "mandate_amount_exceeded", "amount " + std::to_string(*amount) + " is over the mandate's per-intent ceiling of " +
                                                     std::to_string(*json_u64(md["max_amount_per_intent"])));
    auto allowed = [&](const char* list, const json* value) {
      if (!md.contains(list)) return true;
      if (!value || !value->is_string()) return false;
      for (const json& x : md[list])
        if (x == *value) return true;
      return false;
    };
    if (!allowed("allowed_task_types", field("task-type", "task_type")))
      return err(403, "mandate_task_not_allowed", "the intent's task type is not among the mandate's allowed_task_types");
    if (!allowed("allowed_payees", field("payee", "payee")))
      return err(403, "mandate_payee_not_allowed", "the intent's payee is not among the mandate's allowed_payees");
    const std::string tenant = p.tenant, id = *mid;
    pc->extra_escrow = [tenant, id](const settle::EscrowPlan& plan, const Hash32& receipt_id, Atomic& a) {
      const Id128 spent = settle::derived_id("covenant/mandate-spent/" + tenant);
      a.accounts.push_back(Account{.id = mandate_account_id(tenant, id), .ledger = settle::kEscrowLedgerId,
                                   .code = settle::kAgentAccountCode, .flags = kAccountDebitsMustNotExceedCredits});
      a.accounts.push_back(Account{.id = spent, .ledger = settle::kEscrowLedgerId, .code = settle::kEscrowAccountCode});
      Transfer t;
      t.id = settle::derived_id("covenant/mandate-use/" + to_hex(receipt_id));
      t.debit_account_id = mandate_account_id(tenant, id);
      t.credit_account_id = spent;
      t.amount = plan.amount;
      t.ledger = settle::kEscrowLedgerId;
      t.code = settle::kAgentAccountCode;
      a.transfers.push_back(t);
    };
    return std::nullopt;
  }

  HttpResponse executor_keys() {
    json keys = json::array();
    auto rows = ledger().kv_scan(kRow + "executor/", "", 10000);
    if (!rows) return err(503, "ledger_unavailable", rows.status().message());
    const std::string mine = to_hex(pipeline->key().kid());
    for (auto& [k, v] : *rows) {
      auto j = json::parse(v, nullptr, false);
      keys.push_back({{"kid", j.value("kid", "")}, {"public_key_hex", j.value("public_key_hex", "")},
                      {"status", j.value("status", "active")}, {"this_executor", j.value("kid", "") == mine}});
    }
    return ok_json(200, {{"keys", keys}});
  }

  // ---- holds ----

  // The receipt row of a hold: its id is the first 16 bytes of the receipt's.
  Result<std::optional<json>> hold_meta(const Id128& hold) {
    auto rows = ledger().kv_scan(receipt_row(hold.hex()), "", 2);
    if (!rows) return rows.status();
    for (auto& [k, v] : *rows) {
      auto j = json::parse(v, nullptr, false);
      if (j.is_object() && j.value("hold_id", "") == hold.hex()) {
        j["receipt_id"] = k.substr(receipt_row("").size());
        return std::optional<json>(std::move(j));
      }
    }
    return std::optional<json>();
  }

  // Parses a hold id and finds its receipt row, as the principal's tenant sees it.
  std::optional<HttpResponse> find_hold(const Principal& p, const std::string& id, std::optional<Id128>* hid, json* mj) {
    *hid = Id128::parse(id);
    if (!*hid || id.size() != 32) return err(400, "invalid_request", "a hold id is 32 hex digits (from an approval's hold_id)");
    auto meta = hold_meta(**hid);
    if (!meta) return err(503, "ledger_unavailable", meta.status().message());
    if (!*meta || (!p.system() && (**meta).value("tenant", "") != p.tenant)) return err(404, "not_found", "no hold " + id);
    *mj = std::move(**meta);
    return std::nullopt;
  }

  HttpResponse get_hold(const Principal& p, const std::string& id) {
    std::optional<Id128> hid;
    json mj;
    if (auto e = find_hold(p, id, &hid, &mj)) return *e;
    auto t = ledger().lookup_transfer(*hid);
    if (!t) return err(503, "ledger_unavailable", t.status().message());
    if (!*t) return err(404, "not_found", "no hold " + id);
    const Transfer& tr = **t;
    return ok_json(200, {{"hold_id", hid->hex()}, {"receipt_id", mj.value("receipt_id", "")},
                         {"amount", std::to_string(tr.amount)}, {"state", hold_state_name(tr.hold_state)},
                         {"disputed", tr.disputed}, {"timeout_s", tr.timeout_s},
                         {"debit_account_id", tr.debit_account_id.hex()}, {"credit_account_id", tr.credit_account_id.hex()},
                         {"created_ns", tr.timestamp_ns}});
  }

  HttpResponse settle_hold(const HttpRequest& req, const Principal& p, const std::string& id, bool release,
                           const std::string* idem) {
    std::optional<Id128> hid;
    json mj;
    if (auto e = find_hold(p, id, &hid, &mj)) return *e;
    uint64_t amount = 0;
    if (!req.body.empty()) {
      auto body = parse_strict(req.body, "body");
      if (!body) return err(400, "invalid_json", body.status().message());
      if (!body->is_object()) return err(400, "invalid_request", "body: expected an object");
      for (auto& [k, v] : body->items()) {
        if (k != "amount" || !release) return err(400, "invalid_request", "body." + k + ": unknown field");
        auto a = json_u64(v);
        if (!a) return err(400, "invalid_request", "body.amount: expected a non-negative integer within u64 (number or decimal string)");
        amount = *a;
      }
    }
    Transfer t;
    t.id = settle::derived_id("covenant/" + std::string(release ? "release" : "refund") + "/" + hid->hex() + "/" +
                              (idem ? *idem : random_hex(16)));
    t.pending_id = *hid;
    t.flags = release ? kTransferPostPending : kTransferVoidPending;
    t.amount = amount;
    auto r = ledger().create_transfer(t);
    if (!r) return err(503, "ledger_unavailable", r.status().message());
    auto held = ledger().lookup_transfer(*hid);
    const std::string state = held && *held ? hold_state_name((*held)->hold_state) : "unknown";
    if (!ledger_result_is_success(r->result)) {
      const std::string code = ledger_result_name(r->result);
      const int status = (code == "exceeds_pending_transfer_amount" || code == "pending_transfer_has_different_amount") ? 422 : 409;
      std::string hint;
      if (code == "pending_transfer_expired") hint = " (the hold's intent expired; its funds are back with the agent)";
      return err(status, code, "the ledger refused: " + code + hint + "; hold " + hid->hex() + " is " + state);
    }
    return ok_json(200, {{"hold_id", hid->hex()}, {"transfer_id", t.id.hex()}, {"result", ledger_result_name(r->result)},
                         {"state", state}, {"amount", std::to_string(amount)}});
  }
};

}  // namespace

Result<std::unique_ptr<Service>> Service::open(const ServiceOptions& options,
                                               std::shared_ptr<prometheus::Registry> metrics) {
  if (options.data_dir.empty()) return Status::invalid("the service needs a data directory");
  auto s = std::make_unique<ServiceImpl>();
  s->opts = options;
  s->registry = metrics ? std::move(metrics) : std::make_shared<prometheus::Registry>();
  COVENANT_RETURN_IF_ERROR(s->init());
  return std::unique_ptr<Service>(std::move(s));
}

}  // namespace covenant::server
