// Ledger: double-entry accounts, transfers, two-phase holds (escrow) and the receipts journal.
// Thread-safety: a Ledger is safe to share between threads; submit() may be called from many
//   threads at once and is group committed (one durable transaction per batch).
// Ownership: Ledger::open returns a Ledger the caller owns; it owns its Storage.
//
//   auto ledger = covenant::Ledger::open("ledger.db", {});
//   covenant::Account a{.id = {0, 1}, .ledger = 1, .code = 1};
//   auto r = (*ledger)->create_account(a);     // r->code == LedgerResult::ok, durable
//   covenant::Transfer t{.id = {0, 7}, .debit_account_id = {0, 1}, .credit_account_id = {0, 2},
//                        .amount = 100, .ledger = 1, .code = 1, .flags = kTransferPending,
//                        .timeout_s = 3600};
//   r = (*ledger)->create_transfer(t);          // a hold of 100 until posted/voided/expired
//
// Model (TigerBeetle-like, see docs/ledger.md): a transfer's id is its idempotency key.
// Submitting the same transfer again returns `exists` and changes nothing; reusing an id for
// a different transfer returns exists_with_different_<field>. Refused operations are not
// stored: retrying a refused transfer evaluates it afresh. Each operation is validated,
// prepared and committed in that order; LedgerResult codes are ordered by that precedence.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "covenant/status.h"
#include "covenant/storage.h"

namespace covenant {

// A 128-bit id. Zero is "none"; all-ones is reserved (TigerBeetle's int_max).
struct Id128 {
  uint64_t hi = 0;
  uint64_t lo = 0;
  friend auto operator<=>(const Id128&, const Id128&) = default;
  bool is_zero() const { return hi == 0 && lo == 0; }
  bool is_max() const { return hi == ~0ull && lo == ~0ull; }
  Id128Bytes bytes() const;
  static Id128 from_bytes(const Id128Bytes& b);
  std::string hex() const;  // 32 lowercase hex digits
  // Accepts decimal (< 2^64) or 32 hex digits ("0x" optional).
  static std::optional<Id128> parse(std::string_view text);
};

// Result codes: stable, numbered, never reused, ordered by the precedence in which the checks
// run for each kind of operation. Documented in docs/ledger.md; ledger_test checks numbering.
#define COVENANT_LEDGER_RESULTS(X)                            \
  X(ok, 0)                                                    \
  X(id_must_not_be_zero, 1)                                   \
  X(id_must_not_be_int_max, 2)                                \
  X(flags_are_mutually_exclusive, 3)                          \
  X(reserved_flag, 4)                                         \
  X(ledger_must_not_be_zero, 5)                               \
  X(code_must_not_be_zero, 6)                                 \
  X(balances_must_be_zero, 7)                                 \
  X(account_exists_with_different_flags, 10)                  \
  X(account_exists_with_different_ledger, 11)                 \
  X(account_exists_with_different_code, 12)                   \
  X(account_exists_with_different_user_data, 13)              \
  X(account_exists, 14)                                       \
  X(pending_id_must_be_zero, 20)                              \
  X(pending_id_must_not_be_zero, 21)                          \
  X(pending_id_must_be_different, 22)                         \
  X(timeout_reserved_for_pending_transfer, 23)                \
  X(debit_account_id_must_not_be_zero, 24)                    \
  X(credit_account_id_must_not_be_zero, 25)                   \
  X(accounts_must_be_different, 26)                           \
  X(amount_must_not_be_zero, 27)                              \
  X(amount_must_be_zero, 28)                                  \
  X(exists_with_different_flags, 40)                          \
  X(exists_with_different_pending_id, 41)                     \
  X(exists_with_different_debit_account_id, 42)               \
  X(exists_with_different_credit_account_id, 43)              \
  X(exists_with_different_amount, 44)                         \
  X(exists_with_different_timeout, 45)                        \
  X(exists_with_different_ledger, 46)                         \
  X(exists_with_different_code, 47)                           \
  X(exists_with_different_user_data, 48)                      \
  X(exists, 49)                                               \
  X(debit_account_not_found, 50)                              \
  X(credit_account_not_found, 51)                             \
  X(accounts_must_have_the_same_ledger, 52)                   \
  X(transfer_must_have_the_same_ledger_as_accounts, 53)       \
  X(pending_transfer_not_found, 54)                           \
  X(pending_transfer_not_pending, 55)                         \
  X(pending_transfer_has_different_debit_account_id, 56)      \
  X(pending_transfer_has_different_credit_account_id, 57)     \
  X(pending_transfer_has_different_ledger, 58)                \
  X(pending_transfer_has_different_code, 59)                  \
  X(exceeds_pending_transfer_amount, 60)                      \
  X(pending_transfer_has_different_amount, 61)                \
  X(pending_transfer_already_posted, 62)                      \
  X(pending_transfer_already_voided, 63)                      \
  X(pending_transfer_disputed, 64)                            \
  X(pending_transfer_expired, 65)                             \
  X(pending_transfer_not_disputed, 66)                        \
  X(overflows_debits_pending, 70)                             \
  X(overflows_credits_pending, 71)                            \
  X(overflows_debits_posted, 72)                              \
  X(overflows_credits_posted, 73)                             \
  X(overflows_timeout, 74)                                    \
  X(exceeds_credits, 75)                                      \
  X(exceeds_debits, 76)                                       \
  X(journal_key_must_not_be_zero, 80)                         \
  X(journal_entry_must_not_be_empty, 81)                      \
  X(journal_entry_too_large, 82)                              \
  X(journal_exists_with_different_entry, 83)                  \
  X(journal_exists, 84)                                       \
  X(kv_key_must_not_be_empty, 90)                             \
  X(kv_key_too_large, 91)                                     \
  X(kv_value_too_large, 92)                                   \
  X(kv_expectation_failed, 93)                                \
  X(atomic_part_refused, 94)

enum class LedgerResult : uint16_t {
#define COVENANT_LEDGER_RESULT_ENUM(name, number) name = number,
  COVENANT_LEDGER_RESULTS(COVENANT_LEDGER_RESULT_ENUM)
#undef COVENANT_LEDGER_RESULT_ENUM
};
const char* ledger_result_name(LedgerResult result);
// True for ok and for the idempotent replays (exists, account_exists, journal_exists):
// the caller's intent is recorded.
bool ledger_result_is_success(LedgerResult result);

// Account flags.
inline constexpr uint16_t kAccountDebitsMustNotExceedCredits = 1u << 0;
inline constexpr uint16_t kAccountCreditsMustNotExceedDebits = 1u << 1;
inline constexpr uint16_t kAccountFlagsKnown = 0b11;

struct Account {
  Id128 id;
  Id128 user_data;
  uint32_t ledger = 0;  // the currency/asset: transfers only move value within one ledger
  uint16_t code = 0;    // the account type, chosen by the application
  uint16_t flags = 0;
  uint64_t debits_pending = 0;  // set by the ledger; must be zero on create
  uint64_t debits_posted = 0;
  uint64_t credits_pending = 0;
  uint64_t credits_posted = 0;
  uint64_t timestamp_ns = 0;  // set by the ledger when created
  friend bool operator==(const Account&, const Account&) = default;
};

// Transfer flags: at most one of them. None = a plain transfer, posted at once.
inline constexpr uint16_t kTransferPending = 1u << 0;   // a hold (escrow) until its timeout
inline constexpr uint16_t kTransferPostPending = 1u << 1;  // release pending_id (amount 0 = all)
inline constexpr uint16_t kTransferVoidPending = 1u << 2;  // refund pending_id
inline constexpr uint16_t kTransferDisputePending = 1u << 3;  // freeze pending_id
inline constexpr uint16_t kTransferResolvePending = 1u << 4;  // unfreeze pending_id
inline constexpr uint16_t kTransferFlagsKnown = 0b11111;

// The state of a hold (a transfer with kTransferPending); kNone for every other transfer.
enum class HoldState : uint8_t { kNone = 0, kPending = 1, kPosted = 2, kVoided = 3, kExpired = 4 };
const char* hold_state_name(HoldState state);

struct Transfer {
  Id128 id;
  Id128 debit_account_id;   // post/void/dispute/resolve: 0 = the hold's
  Id128 credit_account_id;  // post/void/dispute/resolve: 0 = the hold's
  uint64_t amount = 0;      // post: 0 = the whole hold; void: 0 or the hold's amount
  Id128 pending_id;         // the hold a post/void/dispute/resolve refers to
  Id128 user_data;
  uint32_t timeout_s = 0;   // holds only: expires this long after creation; 0 = never
  uint32_t ledger = 0;      // post/void/dispute/resolve: 0 = the hold's
  uint16_t code = 0;        // post/void/dispute/resolve: 0 = the hold's
  uint16_t flags = 0;
  uint64_t timestamp_ns = 0;          // set by the ledger
  HoldState hold_state = HoldState::kNone;  // set by the ledger (holds only)
  bool disputed = false;                    // set by the ledger (holds only)
  friend bool operator==(const Transfer&, const Transfer&) = default;
};

// Journal: the append-only receipts log. key is the entry's 32-byte id (e.g. a receipt hash),
// unique: appending the same key and bytes again returns journal_exists with the original seq.
struct JournalAppend {
  Hash32 key{};
  std::string entry;
};
inline constexpr size_t kJournalEntrySizeBytesMax = 64 * 1024;  // receipts are ~320 bytes

// Releases live holds whose deadline has passed (at most `limit` per operation).
struct ExpireHolds {
  size_t limit = 1024;
};

// kv rows: an ordered map of byte strings kept in the ledger's own database, so that
// contract kv state, executor chain heads and service records commit in the same
// transaction as the journal and the holds (docs/ledger.md "kv rows").
inline constexpr size_t kKvRowKeyBytesMax = 1024;
inline constexpr size_t kKvRowValueBytesMax = 1u << 20;
// The journal's high-water mark, written by the ledger in the same transaction
// as every journal append: 8-byte big-endian seq || 32-byte chain of the last
// entry. A journal whose tail was cut (rows deleted by hand, a restored old
// file under a newer head) is refused on open with the missing range.
inline constexpr std::string_view kJournalHeadKvKey{"\x01journal/head", 14};

// The row `key` must hold exactly `value` (nullopt: the row must be absent).
struct KvExpect {
  std::string key;
  std::optional<std::string> value;
};
// The keys starting with `prefix`, in byte order, at most `limit` of them, must be
// exactly `keys`.
struct KvRangeExpect {
  std::string prefix;
  size_t limit = 0;
  std::vector<std::string> keys;
};
// Sets the row (nullopt: deletes it; deleting an absent row is fine).
struct KvPut {
  std::string key;
  std::optional<std::string> value;
};

// All or nothing: every expectation is checked against the state as of the operations
// before it (in this batch too), then the puts, the journal appends, the accounts and the
// transfers are applied in that order. If an expectation fails (kv_expectation_failed,
// LedgerReply::failed_index = its index in expects, then range_expects continuing the
// count) or any part is refused (atomic_part_refused; LedgerReply::part_result = the
// refused part's own code, failed_index = its index among journal, accounts, transfers
// counted in that order), nothing of the operation is applied. Accounts and transfers that
// already exist identically (account_exists, exists) and journal_exists count as success.
// Used by the settlement pipeline: one call's kv writes, receipt and hold commit together.
struct Atomic {
  std::vector<KvExpect> expects;
  std::vector<KvRangeExpect> range_expects;
  std::vector<KvPut> puts;
  std::vector<JournalAppend> journal;
  std::vector<Account> accounts;
  std::vector<Transfer> transfers;
};

using LedgerOperation = std::variant<Account, Transfer, JournalAppend, ExpireHolds, Atomic>;

struct LedgerReply {
  LedgerResult result = LedgerResult::ok;
  uint64_t timestamp_ns = 0;  // of the recorded object (the original one on a replay)
  uint64_t journal_seq = 0;   // JournalAppend (Atomic: its first journal append): the entry's sequence number
  uint64_t expired_count = 0; // ExpireHolds: holds released
  uint32_t failed_index = 0;  // Atomic: which expectation or part failed (see Atomic)
  LedgerResult part_result = LedgerResult::ok;  // Atomic: the refused part's own code
};

struct LedgerOptions {
  StorageOptions storage;
  // Operations per durable transaction at most. Bigger batches amortise the fsync further
  // but make every submitter in the batch wait for all of it.
  size_t batch_operations_max = 8192;
  // Nanoseconds since the epoch; tests inject a fake clock. Timestamps the ledger assigns
  // are strictly increasing within a process.
  std::function<uint64_t()> clock_ns;
  // Verify the whole journal hash chain on open (O(entries)); the tail is always checked.
  bool verify_journal_on_open = false;
  // Check the journal tail (last row against its predecessor) on open and refuse to open a
  // damaged one. `covenant ledger verify` turns this off so it can report the damage.
  bool check_journal_tail_on_open = true;
};

struct VerifyReport {
  uint64_t accounts = 0;
  uint64_t transfers = 0;
  uint64_t holds_live = 0;
  uint64_t journal_entries = 0;
  Hash32 journal_head{};                // chain of the last entry
  std::vector<std::string> problems;    // each names the table and row
  bool ok() const { return problems.empty(); }
};

// Counters since open, for tests and metrics.
struct LedgerStats {
  uint64_t batches_committed = 0;     // durable transactions
  uint64_t operations_committed = 0;  // operations in them (refused ones included)
  uint64_t batches_failed = 0;
  uint64_t requests_queued = 0;  // now: submits waiting for the committer to take them
};

class Ledger {
 public:
  static Result<std::unique_ptr<Ledger>> open(const std::string& location, LedgerOptions options);
  static Result<std::unique_ptr<Ledger>> open(std::unique_ptr<Storage> storage, LedgerOptions options);
  virtual ~Ledger() = default;
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  // Applies the operations in order, each independently (one refused does not undo the
  // others), within one durable transaction shared with other submitters' operations: a
  // crash keeps all of this call's recorded operations or none of them.
  // Returns one reply per operation once that transaction is durable. An error Status means
  // the outcome is unknown (e.g. I/O error): retry with the same ids, which is safe.
  virtual Result<std::vector<LedgerReply>> submit(std::span<const LedgerOperation> operations) = 0;
  Result<LedgerReply> create_account(const Account& account);
  Result<LedgerReply> create_transfer(const Transfer& transfer);
  Result<LedgerReply> append(const Hash32& key, std::string entry);
  Result<LedgerReply> expire_holds(size_t limit = 1024);

  // Lookups return committed state; a record failing its checksum is a kCorruption status
  // naming the table and row, never a value.
  virtual Result<std::optional<Account>> lookup_account(const Id128& id) = 0;
  virtual Result<std::optional<Transfer>> lookup_transfer(const Id128& id) = 0;
  virtual Result<std::optional<JournalRow>> journal_at(uint64_t seq) = 0;
  virtual Result<std::optional<JournalRow>> journal_by_key(const Hash32& key) = 0;
  virtual Result<uint64_t> journal_count() = 0;
  // Calls fn for each entry with seq >= from_seq in order, verified; stops when fn is false.
  virtual Status journal_for_each(uint64_t from_seq, const std::function<bool(const JournalRow&)>& fn) = 0;
  // kv rows (committed state). kv_scan: rows whose key starts with prefix and is > after
  // (all from the first when after is empty), ascending by key, at most limit.
  virtual Result<std::optional<std::string>> kv_get(const std::string& key) = 0;
  virtual Result<std::vector<std::pair<std::string, std::string>>> kv_scan(const std::string& prefix,
                                                                           const std::string& after, size_t limit) = 0;
  // All accounts / transfers, verified, ascending by id.
  virtual Result<std::vector<Account>> all_accounts() = 0;
  virtual Result<std::vector<Transfer>> all_transfers() = 0;

  // Walks everything: record checksums, the journal hash chain, and the books (balances
  // recomputed from transfers, debits == credits, flag limits, each hold resolved at most
  // once). Returns the report; problems name table and row.
  virtual Result<VerifyReport> verify() = 0;

  virtual Storage& storage() = 0;
  virtual LedgerStats stats() = 0;

 protected:
  Ledger() = default;
};

// The journal chain step: SHA-256(prev_chain || u64be(seq) || key || entry_hash).
Hash32 journal_chain_next(const Hash32& prev_chain, uint64_t seq, const Hash32& key, const Hash32& entry_hash);
Hash32 sha256(std::string_view bytes);
std::string hex(std::span<const uint8_t> bytes);

}  // namespace covenant
