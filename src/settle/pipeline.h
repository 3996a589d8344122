// The approval pipeline: decide -> receipt -> one durable commit. The server
// (`covenant serve`), the CLI's `approve --ledger` and embedders all call it;
// none of them sequences those steps itself (docs/settlement.md "Pipeline").
//
// One call:
//   1. the contract runs on a pooled instance; its kv reads see committed rows
//      of the ledger's database plus the writes of this process's calls that
//      are not committed yet (the overlay), and its writes are staged, never
//      applied;
//   2. the receipt is built, chained to this executor's previous receipt and
//      signed on the calling thread;
//   3. a committer thread puts the calls queued meanwhile into ONE ledger
//      transaction (Ledger::submit of Atomic operations): per call, its kv
//      writes with compare-and-set checks of everything it read, its receipt
//      (journal append), the executor's chain head, its escrow hold, and any
//      rows the caller adds (idempotency records, indexes) — all or nothing;
//   4. the caller gets the outcome only once that transaction is durable.
// A call whose kv reads changed before its commit (another executor, or a
// failed earlier call it read from) is run again, up to max_attempts. A
// receipt whose chain head moved (another process with the same key) is signed
// again. Checkpoints are cut after commits and never fail a committed call.
//
// Thread-safety: approve() may be called from any number of threads.
// Ownership: Pipeline owns its Ledger, KeyStore and committer thread; Contracts
// deployed with kv_store() must not outlive it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "covenant/contract.h"
#include "covenant/keys.h"
#include "covenant/ledger.h"
#include "covenant/receipt.h"
#include "covenant/status.h"
#include "settle/settle.h"

namespace covenant::settle {

// Reserved kv row prefixes (deployment kv keys start with the deployment name,
// never with 0x01).
inline constexpr std::string_view kChainRowPrefix = "\x01" "chain/";  // + kid hex -> 32-byte head receipt id
inline constexpr std::string_view kUsageRowPrefix = "\x01" "usage/";  // + kv namespace prefix -> "keys bytes"

struct PipelineOptions {
  std::string ledger;      // SQLite path or postgresql:// URL (required)
  std::string pg_schema;   // empty = the storage default
  std::string keys_dir;    // empty = default_keys_dir()
  int max_attempts = 64;   // runs of one call when its kv reads keep changing (jittered backoff between)
  size_t batch_max = 4096; // calls per durable transaction at most
  // Checkpoints (cut by maybe_checkpoint, never on the commit path).
  std::string checkpoint_dir;  // empty: default_checkpoint_dir(ledger)
  std::string origin = "covenant.local/ledger";
};

struct PipelineCall {
  std::string export_name;       // as called ("approve", "policy.approve")
  nlohmann::json args;           // JSON array (or object) of the export's parameters
  CallInputs inputs;             // module, wit, grants, intent text, fuel: what the receipt commits to
  uint64_t deadline_ms = 0;      // wall-clock limit of one run; 0 = none
  std::optional<TraceId> trace_id;  // else random
  bool dry_run = false;          // run, but sign and store nothing (simulate)
  bool plan_escrow = true;       // apply the seed escrow mapping (plan_escrow) to the decision
  // The hold's debit account instead of the seed mapping's agent account, with
  // the flags that account was created with (a funded agent's budget account).
  std::optional<Id128> escrow_debit_account;
  uint16_t escrow_debit_flags = 0;
  // When the call places a hold: more accounts and transfers for its Atomic (e.g. a
  // mandate's cumulative counter, docs/api.md "Mandates"). A refused one fails the
  // call: "ledger refused the call's escrow (transfer I): <code>", I counting the hold as 0.
  std::function<void(const EscrowPlan&, const Hash32& receipt_id, Atomic&)> extra_escrow;
  // A signed intent the caller verified before the call: its receipt names them (key 13).
  std::optional<Receipt::IntentSigner> intent_signer;
  // Rows committed in the same transaction as the call. expects are checked first;
  // one failing makes the call fail with kAlreadyExists naming the key (e.g. an
  // idempotency record another executor wrote first).
  std::vector<KvExpect> extra_expects;
  // Called with the final outcome (receipt id known) each time the call is
  // (re)signed: rows to put in the same transaction.
  std::function<std::vector<KvPut>(const struct PipelineOutcome&)> extra_puts;
};

struct PipelineOutcome {
  Contract::CallResult call;          // decision (call.result), fuel, record, trap
  bool trapped() const { return call.trap.kind != TrapKind::kNone; }
  // Set when the call did not trap and was not a dry run:
  std::vector<uint8_t> cose;
  std::string receipt_id;             // hex
  Receipt receipt;
  uint64_t log_index = 0;             // Merkle leaf index (journal seq - 1)
  std::optional<std::string> hold_id; // hex
  std::optional<EscrowPlan> escrow;   // the hold created (or, dry run, that would be)
  int attempts = 0;                   // runs of the contract
  uint64_t execute_ns = 0, sign_ns = 0, queue_ns = 0, commit_ns = 0;
};

struct PipelineStats {
  uint64_t committed = 0;       // calls committed
  uint64_t batches = 0;         // durable transactions
  uint64_t kv_conflicts = 0;    // runs repeated because a kv read changed
  uint64_t resigned = 0;        // receipts signed again (chain head moved)
  uint64_t commit_failures = 0; // transactions that failed (I/O, database down)
  size_t queue_depth = 0;
};

class Pipeline {
 public:
  static Result<std::unique_ptr<Pipeline>> open(const PipelineOptions& options);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // The kv store for contracts run through this pipeline (DeployOptions::kv_store).
  std::shared_ptr<host::KvStore> kv_store();

  // Runs the call and, unless it trapped or is a dry run, signs and commits it.
  // Errors: the contract's host errors (bad args, unknown export) as they are;
  // kIOError when the ledger transaction failed (retry with the same idempotency key);
  // kFailedPrecondition when the kv reads kept changing for max_attempts runs or the
  // ledger refused a part (e.g. a hold); kAlreadyExists when an extra expectation failed.
  Result<PipelineOutcome> approve(Contract& contract, PipelineCall call);

  // Cuts a signed checkpoint when the journal grew by at least `every` entries since
  // the last one (or `force`); returns the path, or "" when none was due. Errors are
  // the checkpoint's own: a committed call is never affected.
  Result<std::string> maybe_checkpoint(uint64_t every, bool force = false);

  Ledger& ledger();
  KeyStore& keys();
  const SigningKey& key() const;
  const PipelineOptions& options() const;
  std::string checkpoint_dir() const;
  PipelineStats stats() const;
  // Waits for queued commits, then stops the committer (also done by the destructor).
  void close();

  struct Impl;

 private:
  explicit Pipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Walks the journal and checks every executor's receipt chain: each receipt's
// previous-receipt hash is the id of the same kid's receipt before it (zeros
// for its first). Problems name the journal seq: a fork (two receipts with the
// same previous hash), a break (a previous hash that is not the kid's last
// receipt), an undecodable entry. Also: every hold of the escrow ledger is
// named by a receipt in the journal (hold id = first 16 bytes of a receipt id),
// unless its user_data says otherwise.
struct ChainReport {
  uint64_t receipts = 0;
  std::map<std::string, uint64_t> chains;  // kid hex -> receipts
  std::vector<std::string> problems;
};
Result<ChainReport> verify_chains(Ledger& ledger);

}  // namespace covenant::settle
