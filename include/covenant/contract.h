// Contracts: a core Wasm module (or a component wrapping one) + a WIT world + grants, deployed on an Engine
// and called with WIT values as JSON. Capabilities (covenant:host clock,
// crypto, kv, log, random; docs/host.md) are linked deny-by-default.
// Thread-safety: a Contract may be called from any number of threads (each
// call takes a pooled instance of its own). Ownership: deploy() returns a
// unique Contract that borrows the Engine (the Engine must outlive it).
//
//   auto engine = covenant::Engine::create({}).value();
//   covenant::DeployOptions opts;                       // seed world, no grants
//   auto c = covenant::Contract::deploy(*engine, wasm, opts).value();
//   auto r = c->call_json("approve", nlohmann::json::array({intent})).value();
//   if (r.trap.kind == covenant::TrapKind::kNone) use(r.result);  // {"approved":..}
//
// A call has three outcomes: a host error (Result not ok: unknown export, JSON
// that does not match the WIT, storage I/O), a trap (CallResult::trap set:
// the guest failed, including a guest fault in the canonical ABI or a
// capability refusing a request; kv writes are discarded), or success (result
// written, kv writes committed).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "covenant/abi.h"
#include "covenant/engine.h"
#include "covenant/status.h"

namespace covenant {

namespace host {
class KvStore;  // src/host/kv_store.h
}

// ---------------------------------------------------------------------------
// Grants

// Limits on what a grants manifest may ask for (a manifest above them is refused).
inline constexpr uint64_t kKvKeysMax = 1'000'000;           // per namespace
inline constexpr uint64_t kKvBytesMax = 256ull << 20;       // per namespace, keys + values
inline constexpr uint32_t kKvKeySizeBytesMax = 512;         // one key
inline constexpr uint32_t kLogLinesMax = 10'000;            // per call
inline constexpr uint64_t kLogBytesMax = 1ull << 20;        // per call
inline constexpr uint32_t kRandomBytesPerRequestMax = 4096; // random.bytes(n)
// Host results that are strings or lists (kv.get, kv.list-keys, crypto.sha256,
// random.bytes) are placed in guest memory the guest allocates through its
// cabi_realloc, called back from inside the host function, as the canonical
// ABI lowers results: the guest owns and frees them. One result is at most:
inline constexpr uint32_t kHostResultBytesMax = 256u << 10;
static_assert(kRandomBytesPerRequestMax < kHostResultBytesMax, "one random.bytes result fits");
// One kv value, so that any stored value can be read back as one result.
inline constexpr uint32_t kKvValueSizeBytesMax = kHostResultBytesMax / 2;
// One kv.list-keys result: at most this many keys and bytes (key bytes + 8 per key).
inline constexpr uint32_t kKvListKeysMax = 1000;
inline constexpr uint32_t kKvListBytesMax = kHostResultBytesMax / 2;
static_assert(kKvListKeysMax * 8 < kKvListBytesMax, "a list of short keys is bounded by the count");

enum class LogLevel : uint8_t { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
const char* log_level_name(LogLevel level);  // "debug", ...

struct KvGrant {
  std::string ns = "default";     // [a-z0-9_-]{1,64}; keys live under deployment + namespace
  uint64_t max_keys = 1000;        // keys in the namespace after a call commits
  uint64_t max_bytes = 64 << 10;   // sum of key + value bytes in the namespace
};
struct LogGrant {
  LogLevel level = LogLevel::kInfo;  // lines below it are dropped (not counted)
  uint32_t max_lines = 100;          // per call; later lines are dropped and counted
  uint64_t max_bytes = 16 << 10;     // per call, message bytes
};

// A parsed grants manifest. Absent capability = denied.
struct Grants {
  bool clock = false;
  bool crypto = false;
  bool random = false;
  std::optional<KvGrant> kv;
  std::optional<LogGrant> log;
  // "clock", "crypto", "kv", "log", "random".
  bool allows(std::string_view capability) const;
};

// {"capabilities": {"clock": {}, "kv": {"namespace": "budget", "max_keys": 1000,
// "max_bytes": 65536}, "log": {"level": "info", "max_lines": 100, "max_bytes": 16384},
// "random": {}, "crypto": {}}}. Unknown capabilities and fields are errors;
// errors name the JSON path ("capabilities.kv.max_keys: expected ...").
Result<Grants> parse_grants(std::string_view json_text);

// ---------------------------------------------------------------------------
// The per-call record: everything a call read from outside the guest, plus
// what it wrote, so that a replay can re-run it and compare.

struct KvRead {       // a kv.get that reached the store (not served by the call's own writes)
  std::string key;    // as the contract named it (no namespace prefix)
  std::optional<std::string> value;  // bytes, or absent
  bool operator==(const KvRead&) const = default;
};
struct KvList {       // a kv.list-keys that reached the store: the stored keys under prefix
  std::string prefix;
  std::vector<std::string> keys;
  bool operator==(const KvList&) const = default;
};
struct KvWrite {      // a committed write; value absent = delete
  std::string key;
  std::optional<std::string> value;
  bool operator==(const KvWrite&) const = default;
};
struct KvUsage {      // the namespace's size before the call (the quota's baseline)
  uint64_t keys = 0;
  uint64_t bytes = 0;
  bool operator==(const KvUsage&) const = default;
};
struct LogLine {
  LogLevel level = LogLevel::kInfo;
  std::string message;
  bool operator==(const LogLine&) const = default;
};

struct CallRecord {
  std::string export_name;           // the core export that ran ("agent:settlement/policy@0.1.0#approve")
  uint64_t wall_ms = 0;              // clock.now-ms for the whole call
  uint64_t monotonic_ns = 0;         // clock.monotonic-ns for the whole call
  std::array<uint8_t, 32> random_seed{};  // ChaCha20 key of random.*
  std::optional<KvUsage> kv_usage;   // read once, if the call wrote to kv
  std::vector<KvRead> kv_reads;      // in call order, first read of each key
  std::vector<KvList> kv_lists;      // in call order
  std::vector<KvWrite> kv_writes;    // committed writes, by key order; empty on a trap
  std::vector<LogLine> logs;         // lines kept (level filter and bounds applied)
  uint32_t logs_dropped = 0;         // lines over max_lines / max_bytes
  uint64_t fuel_used = 0;
  Trap trap;
};

// Serialization of a record as JSON (bytes as hex); a replay package stores it.
nlohmann::json call_record_to_json(const CallRecord& record);
Result<CallRecord> call_record_from_json(const nlohmann::json& j);

// ---------------------------------------------------------------------------
// Deployment

struct DeployOptions {
  Tier tier = Tier::kOptimized;  // optimized: compile once (seconds, cached), fastest calls
  std::string wit;               // WIT source text; empty = the seed world (wit::seed_policy_wit())
  std::string world;             // empty: the package's only world
  Grants grants;                 // empty: nothing but pure computation
  std::string deployment = "default";  // kv namespace owner: deployments never see each other's keys
  std::string kv_path;           // SQLite file for kv; empty = in memory (lost with the Contract)
  // When set, kv lives here instead (kv_path ignored): the settlement pipeline's store,
  // whose commit() stages a call's writes for the ledger transaction (settle/pipeline.h).
  std::shared_ptr<host::KvStore> kv_store;
  InstanceLimits limits;         // per pooled instance
  // false (default): the pooled instance is reset only after a trap, so guest
  // memory and globals persist between successful calls (a warm seed approve
  // is ~2 us; a reset costs ~15 us plus page faults, docs/host.md). true: every
  // call starts from a fresh instance — no state outside kv, and a replay of a
  // guest that keeps state in memory starts from the same point.
  bool reset_every_call = false;
  std::string name = "contract";  // used in error messages
};

class Contract {
 public:
  struct Timings {
    uint64_t lower_ns = 0;    // JSON -> values -> guest memory (includes cabi_realloc calls)
    uint64_t execute_ns = 0;  // the core export (includes host calls)
    uint64_t lift_ns = 0;     // guest memory -> values -> JSON, cabi_post_*
    uint64_t total_ns = 0;    // the whole call, with reset and kv commit
  };
  struct CallResult {
    nlohmann::json result;           // results_to_json; null on a trap
    std::vector<abi::WitValue> values;  // the same results as values; empty on a trap
    uint64_t fuel_used = 0;          // export + cabi_realloc + cabi_post_*
    Trap trap;                       // kind kNone on success
    CallRecord record;
    Timings timings;
    Tier tier = Tier::kInterp;       // the code the call ran on (kAuto: baseline, then optimized)
  };

  // Loads (engine), checks every import against the grants (deny by default:
  // the error names the import and the missing grant), resolves the WIT world
  // and checks that each exported function has the core export the canonical
  // ABI requires. A component binary (covenant/component.h) deploys its one
  // core module with the world read from its types; opts.wit must then be
  // empty, and its lifts and lowers must match what Covenant does.
  static Result<std::unique_ptr<Contract>> deploy(Engine& engine, std::span<const uint8_t> wasm,
                                                  const DeployOptions& opts);
  ~Contract();
  Contract(const Contract&) = delete;
  Contract& operator=(const Contract&) = delete;

  // export_name: the WIT function name as written ("approve"), qualified by
  // its interface ("policy.approve") or the core name
  // ("agent:settlement/policy@0.1.0#approve"). args: a JSON array of the
  // parameters (or an object keyed by parameter name).
  Result<CallResult> call_json(std::string_view export_name, const nlohmann::json& args,
                               const CallOptions& opts = {});
  // The same with values (no JSON on either side; CallResult::result stays null).
  Result<CallResult> call(std::string_view export_name, std::span<const abi::WitValue> args,
                          const CallOptions& opts = {});
  // Re-runs a recorded call: clock, random seed and kv reads come from the
  // record (a read the record does not hold is a host error: the replay
  // diverged); nothing is committed. The result's record holds the writes the
  // call would have committed, for comparison.
  Result<CallResult> replay_json(std::string_view export_name, const nlohmann::json& args, const CallRecord& record,
                                 const CallOptions& opts = {});

  const wit::Package& package() const;
  const wit::World& world() const;
  // The function an export name resolves to, or nullptr.
  const wit::Function* find_export(std::string_view export_name) const;
  Module& module();
  // Idle instances in the pool now (metrics).
  size_t pooled_instances() const;
  // The kv store key prefix of this deployment's namespace ("" without a kv grant):
  // deployment NUL namespace NUL. Store keys are this prefix + the contract's key.
  const std::string& kv_prefix() const;
  // The whole kv namespace of this deployment (tests, tooling).
  Result<std::map<std::string, std::string>> kv_dump();

  struct Impl;

 private:
  explicit Contract(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The covenant:host package (src/host/wit/host.wit) as WIT text.
std::string_view host_wit();

}  // namespace covenant
