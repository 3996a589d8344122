// Settlement: what turns one contract call into durable evidence — a signed
// receipt appended to the ledger's journal (the Merkle log's leaves), the
// escrow transition its decision implies, signed checkpoints — and disputes:
// replay packages that re-execute a call and confirm or refute its receipt.
// Formats and rules: docs/settlement.md, docs/replay.md.
// Thread-safety: free functions; no shared state.
// Ownership: inputs borrowed, outputs by value.
//
//   settle::CallInputs in{...};                         // what the call ran
//   auto r = settle::build_receipt(in, call.result, call.record, call.fuel_used);
//   auto pkg = settle::make_replay_package(in, call.record, cose, key.public_key());
//   auto verdict = settle::replay(*settle::decode_replay_package(bytes), Tier::kInterp);
//   // verdict->confirmed, or verdict->field ("intent_hash", "state_root_before", ...)
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "covenant/contract.h"
#include "covenant/engine.h"
#include "covenant/keys.h"
#include "covenant/ledger.h"
#include "covenant/merkle.h"
#include "covenant/receipt.h"
#include "covenant/status.h"

namespace covenant::settle {

// Everything a call ran with, as the approve CLI has it.
struct CallInputs {
  std::vector<uint8_t> module;  // the core Wasm module bytes
  std::string wit;              // WIT source text; empty = the seed world
  std::string world;            // world name; empty = the package's only world
  std::string grants;           // grants manifest JSON text; empty = no grants
  std::string export_name;      // as called ("policy.approve", "approve")
  std::string intent;           // the raw intent bytes; args = [intent as JSON]
  uint64_t fuel = 1'000'000'000;  // the call's fuel limit
  Tier tier = Tier::kOptimized;   // the tier that produced the receipt (informational)
};

// Commitments to the kv state a call saw and left (docs/settlement.md):
// before = SHA-256("covenant/kv-before/v1" || CBOR [usage, reads, lists]),
// after  = SHA-256("covenant/kv-after/v1" || before || CBOR [writes]) when the
//          call wrote anything, else before itself (the receipt then omits it).
Hash32 state_root_before(const CallRecord& record);
Hash32 state_root_after(const Hash32& before, const CallRecord& record);
// What state_root_after was for a call without writes before it became
// `before` itself: SHA-256("covenant/kv-after/v1" || before || CBOR []).
// replay accepts it for such calls, so packages made earlier still confirm.
Hash32 legacy_state_root_after_no_writes(const Hash32& before);

// The receipt's decision item: the export's results as deterministic CBOR,
// typed by the WIT: a single result as itself, several as an array, none as
// null; records, tuples and lists as arrays in declaration order; integers as
// integers (u64 too), char/flags/enum as uints, strings as text, variants,
// options and results as [case] or [case, payload]. Floats are refused
// (kInvalidArgument).
Result<std::vector<uint8_t>> decision_cbor(std::span<const abi::WitValue> results);

// Signed tree heads, one kv row per checkpointed size: prefix || u64be(size)
// -> the 32-byte root. cut_checkpoint records the root before signing and
// refuses to sign a different root for a size already signed, or any size
// below the largest signed one (a journal that lost entries).
inline constexpr std::string_view kSignedHeadKvPrefix{"\x01signed-head/", 14};

// Receipt key 12: the first 16 bytes of
//   SHA-256("covenant/interface/v1" || CBOR [world, grants])
// where world is the structure of the WIT world the call ran in (its name, and
// for every import and export the interface name, function names, parameter
// and result names and their types spelled out structurally, in kebab-case;
// docs, comments, formatting and type names excluded) and grants is the
// grants manifest re-serialised with sorted keys (null without grants).
// Renaming a record field, changing a type or granting another capability
// changes it; reformatting the WIT or the JSON does not.
Result<InterfaceHash> interface_hash(const wit::Package& package, const wit::World& world, std::string_view grants_json);

// The payload fields a call determines (contract hash, world#function, intent
// hash, decision, fuel, state roots, time = the recorded clock). trace id,
// previous receipt hash and kid are the signer's. REQUIRES: the call did not trap.
Result<Receipt> build_receipt(const Contract& contract, const CallInputs& in, std::span<const abi::WitValue> results,
                              const CallRecord& record, uint64_t fuel_used);

// ---------------------------------------------------------------------------
// Replay packages (docs/replay.md)

inline constexpr uint64_t kReplayFormatVersion = 1;
inline constexpr size_t kReplayPackageBytesMax = 256u << 20;

struct ReplayPackage {
  CallInputs call;
  CallRecord record;              // what the call read (clock, random seed, kv) and wrote
  std::vector<uint8_t> receipt;   // the COSE_Sign1 bytes
  PublicKey executor_key{};       // the signer's public key (kid must match the receipt's)
  // JSON pointers ("/intent/card") masked in call.intent before the package was
  // made (docs/api.md, "Masking"); empty: the intent is the original. Encoded as
  // the optional field "masked" (absent when empty, so older packages are unchanged).
  std::vector<std::string> masked;
};

// Masking (docs/api.md): a rule erases the value at a JSON pointer under
// "/intent" or "/decision", or replaces it with a given value.
struct MaskRule {
  std::string path;                     // "/intent/card_number", "/decision/reason"
  std::optional<nlohmann::json> replace;  // absent: erase the member
};
// Parses [{"path": "/intent/...", "replace"?: any}, ...] (or plain path strings).
Result<std::vector<MaskRule>> parse_mask(const nlohmann::json& rules);
// Applies the rules whose path starts with "/" + root ("intent" or "decision") to
// `value`; appends each path that matched to *masked. Missing paths are skipped.
nlohmann::json apply_mask(const nlohmann::json& value, const std::vector<MaskRule>& rules, std::string_view root,
                          std::vector<std::string>* masked);

ReplayPackage make_replay_package(const CallInputs& in, const CallRecord& record, std::span<const uint8_t> receipt,
                                  const PublicKey& executor_key);
std::vector<uint8_t> encode_replay_package(const ReplayPackage& pkg);
// Encodes and writes it (write-then-rename).
Status write_replay_package(const std::string& path, const ReplayPackage& pkg);
// Strict: deterministic CBOR, known version, every field present and typed.
Result<ReplayPackage> decode_replay_package(std::span<const uint8_t> bytes);

struct ReplayVerdict {
  bool confirmed = false;
  std::string field;   // refuted: the first differing field (docs/replay.md lists the order)
  std::string detail;  // refuted: what differed
  // A masked package: what the replay could not re-check (e.g. "intent_hash",
  // "decision"), with why in `detail`; confirmed then covers everything else.
  std::vector<std::string> unchecked;
};

// Verifies the receipt's signature (with `keys`, or the package's key when
// null), re-deploys the module on `tier`, re-executes the call with the
// recorded clock, random seed and kv reads, rebuilds the payload and compares
// it field by field. A host error that is not the package's fault (e.g. out of
// memory) is an error Status; everything the package decides is a verdict.
Result<ReplayVerdict> replay(const ReplayPackage& pkg, Tier tier, const KeyResolver* keys = nullptr);

// ---------------------------------------------------------------------------
// Escrow mapping (docs/settlement.md)

inline constexpr uint32_t kEscrowLedgerId = 1;
inline constexpr uint16_t kAgentAccountCode = 1;
inline constexpr uint16_t kEscrowAccountCode = 2;
inline constexpr uint16_t kTreasuryAccountCode = 3;  // a tenant's source of agent funding
// A funded agent (docs/api.md, "Budgets"): its account may not go below zero
// (kAccountDebitsMustNotExceedCredits), so every hold of every contract and
// executor of the tenant draws on one balance, atomically with the receipt.
Id128 budget_account_id(std::string_view tenant, std::string_view agent_id);
Id128 treasury_account_id(std::string_view tenant);
// The kv row that marks an agent as funded (the server checks it in every approval's
// transaction): "\x01budget/<tenant>/<agent>".
std::string budget_row_key(std::string_view tenant, std::string_view agent_id);
// Credits `amount` to the agent's budget from the tenant's treasury in one Atomic
// (creating both accounts and the row on first use). `transfer_key` makes the
// transfer id (idempotent for a repeated key). The ledger's refusal as Status
// kFailedPrecondition naming the result code.
Status fund_agent(Ledger& ledger, std::string_view tenant, std::string_view agent_id, uint64_t amount,
                  std::string_view transfer_key);
struct AgentBalance {
  bool funded = false;
  Id128 account_id;
  uint64_t credits_posted = 0, debits_posted = 0, debits_pending = 0, available = 0;
};
Result<AgentBalance> agent_balance(Ledger& ledger, std::string_view tenant, std::string_view agent_id);

// A 128-bit id: the first 16 bytes of SHA-256(text).
Id128 derived_id(std::string_view text);
Id128 agent_account_id(std::string_view agent_id);
Id128 escrow_account_id();

// A hold never times out sooner than this after it is placed, so that the
// release or refund that follows an approval has time to arrive.
inline constexpr uint32_t kHoldTimeoutMinS = 60;

// The intent's expiry ("expires-at-ms" in any spelling), if it names one (> 0).
std::optional<uint64_t> intent_expiry_ms(const nlohmann::json& intent);

struct EscrowPlan {
  bool hold = false;  // false: the decision implies no transition
  std::string agent_id;
  Id128 agent_account, escrow_account, hold_id;
  uint64_t amount = 0;
  uint32_t timeout_s = 0;
};
// An approved decision ("approved": true) on an intent with an agent id and a
// positive amount ("amount", else "max-units") holds that amount from the
// agent's account to the escrow account until the intent's "expires-at-ms"
// (timeout 0 = never when there is none; at least kHoldTimeoutMinS). Field names in any spelling
// (kebab, snake); u64 as numbers or decimal strings. hold id = first 16 bytes
// of the receipt id.
EscrowPlan plan_escrow(const nlohmann::json& intent, const nlohmann::json& result, uint64_t now_ms,
                       const Hash32& receipt_id);
// The ledger operations a plan with hold = true implies: the agent and escrow
// accounts (created on first use) and the pending transfer (the hold).
std::vector<Account> escrow_accounts(const EscrowPlan& plan);
Transfer escrow_hold(const EscrowPlan& plan);

// ---------------------------------------------------------------------------
// Ledger wiring

struct SettleOptions {
  std::string ledger;          // SQLite path or postgresql:// URL; empty = no ledger
  std::string pg_schema;       // empty = the storage default
  std::string keys_dir;        // empty = default_keys_dir()
  uint64_t checkpoint_every = 16;  // cut a checkpoint when the journal size is a multiple; 0 = never
  std::string checkpoint_dir;  // empty: <sqlite path>.checkpoints, or $COVENANT_HOME/checkpoints
  std::string origin = "covenant.local/ledger";
  std::string replay_out;      // write the replay package here; empty = none
};

struct SettleOutcome {
  std::vector<uint8_t> cose;
  std::string receipt_id;              // hex
  std::optional<uint64_t> log_index;   // Merkle leaf index (journal seq - 1) when appended
  std::optional<std::string> hold_id;  // hex, when a hold was created
  std::string checkpoint_path;         // when one was cut
};

// Signs the receipt (prev hash = the journal's last key), and with a ledger
// appends it, creates the accounts and the hold in one durable transaction,
// and cuts a checkpoint when due; writes the replay package if asked.
Result<SettleOutcome> settle_call(const SettleOptions& opts, const Contract& contract, const CallInputs& in,
                                  const Contract::CallResult& call);

Result<std::unique_ptr<Ledger>> open_ledger(const std::string& location, const std::string& pg_schema);
// The Merkle tree over the journal entries (leaf i = journal seq i + 1).
Result<MerkleTree> journal_tree(Ledger& ledger);
std::string default_checkpoint_dir(const std::string& ledger_location);

// The checkpoint frontier: <dir>/frontier, the compact range (RFC 9162 subtree
// roots, docs/merkle-log.md) of the tree the last checkpoint signed, so the
// next checkpoint hashes only the entries appended since. Binary:
//   "CVNFRNT1" | journal chain of entry <size> (32; zeros for size 0)
//   | CompactRange::serialize() | Ed25519 signature (64) by the executor key
//   over "covenant/frontier/v1\n" || everything before it.
// cut_checkpoint uses it only when all of these hold, else rebuilds from the
// journal and says why (CheckpointStats::frontier_note, and on stderr unless
// the directory has no checkpoint yet):
//   - it parses (magic, exact length, checksum) and its signature verifies
//     with the signing key's public key;
//   - its size is at most the journal's, and the journal's chain at that size
//     is the one it records (same journal prefix: not another ledger);
//   - <dir>/checkpoint-<size>.txt verifies with the same key, has that size
//     and the frontier's root.
inline constexpr const char* kFrontierFileName = "frontier";
inline constexpr std::string_view kFrontierMagic = "CVNFRNT1";
inline constexpr std::string_view kFrontierSignatureContext = "covenant/frontier/v1\n";

struct StoredFrontier {
  CompactRange range;
  Hash32 journal_chain{};  // the journal row seq = range.size(): its chain
};
std::vector<uint8_t> encode_frontier(const StoredFrontier& f, const SigningKey& key);
// Strict parse and signature check (kInvalidArgument: not a frontier file or
// truncated; kCorruption: checksum or signature fails).
Result<StoredFrontier> decode_frontier(std::span<const uint8_t> bytes, const PublicKey& key);

struct CheckpointStats {
  uint64_t tree_size = 0;
  uint64_t frontier_size = 0;  // entries covered by the stored frontier it started from (0: none used)
  uint64_t leaves_read = 0;    // journal entries read and hashed
  bool rebuilt = false;        // no usable frontier: the tree was rebuilt from the whole journal
  std::string frontier_note;   // why a stored frontier was not used ("" when it was, or none existed on a fresh dir)
  bool frontier_written = false;
};

// Signs a checkpoint of the whole journal and writes <dir>/checkpoint-<size>.txt,
// <dir>/latest.txt, then <dir>/frontier (all write-then-rename). Starts from
// the stored frontier when it checks out (above), so the cost is the entries
// appended since the last checkpoint, not the whole journal. A crash between
// the files leaves an older frontier whose checkpoint still matches (used) or
// a frontier without its checkpoint (rebuilt). Failing to write the frontier
// is reported on stderr and in stats, not an error: the checkpoint is written.
// Returns the path written.
Result<std::string> cut_checkpoint(Ledger& ledger, const SigningKey& key, const std::string& origin,
                                   const std::string& dir, uint64_t* tree_size = nullptr,
                                   CheckpointStats* stats = nullptr);

// The approve CLI's settlement flags (src/cli/contract_cmd.cc).
struct ApproveFlags {
  SettleOptions opts;
  bool enabled() const { return !opts.ledger.empty() || !opts.replay_out.empty(); }
  static bool takes(const std::string& flag);
  // Sets one flag's value; returns an error message or "".
  std::string set(const std::string& flag, const std::string& value);
  // Settles a successful call: the JSON fields to add ("receipt_id", "hold_id",
  // "log_index", "checkpoint") and the plain-text lines.
  // grants_path: the --grants file, read again into in.grants (empty: none).
  Result<nlohmann::json> apply(const Contract& contract, CallInputs in, const Contract::CallResult& call,
                               const std::string& grants_path) const;
};

}  // namespace covenant::settle
