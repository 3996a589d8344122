// Storage: the one interface the ledger persists through (in the spirit of LevelDB's Env).
// Thread-safety: a Storage is safe to share between threads. A StorageTxn belongs to the one
//   thread that began it; begin_write() is exclusive among all writers of the same store,
//   in this process and (SQLite file lock, PostgreSQL advisory lock) in every other one.
// Ownership: open_storage() returns a Storage the caller owns; begin_write() returns a
//   StorageTxn the caller owns and must not outlive its Storage.
//
// The storage knows nothing of balances or holds: it keeps opaque records keyed by a
// 16-byte id (accounts, transfers), the append-only journal rows and the kv rows (an
// ordered map of byte strings). Checksums and hash
// chains are computed and checked by the ledger (src/ledger/record.h), so every backend
// gets the same corruption detection. Backends: "memory:", a SQLite file path, and a
// "postgresql://" / "postgres://" URL (see docs/ledger.md).
//
//   auto storage = covenant::open_storage("/var/lib/covenant/ledger.db", {});
//   auto txn = (*storage)->begin_write();
//   ... (*txn)->put_account(id, record); (*txn)->commit();  // durable when ok
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "covenant/status.h"

namespace covenant {

using Id128Bytes = std::array<uint8_t, 16>;  // big-endian: sorts like the number
using Hash32 = std::array<uint8_t, 32>;

// One journal row. seq starts at 1 and has no gaps. entry_hash = SHA-256(entry);
// chain = SHA-256(previous chain || u64be(seq) || key || entry_hash), the genesis chain
// being 32 zero bytes. See docs/ledger.md "Journal format".
struct JournalRow {
  uint64_t seq = 0;
  Hash32 key{};
  std::string entry;
  Hash32 entry_hash{};
  Hash32 chain{};
};

// A stored account or transfer record: its id and the encoded bytes.
struct KeyedRecord {
  Id128Bytes id{};
  std::string record;
};

// A kv row: key and value are arbitrary bytes (NUL included). Keys sort in unsigned byte
// order (memcmp, then the shorter first) in every backend.
using KvRow = std::pair<std::string, std::string>;

enum class Table { kAccounts, kTransfers, kJournal };
const char* table_name(Table table);

// One write transaction. Reads see this transaction's own writes. Destroying it without
// commit() rolls everything back. REQUIRES: used by one thread.
class StorageTxn {
 public:
  virtual ~StorageTxn() = default;
  StorageTxn() = default;
  StorageTxn(const StorageTxn&) = delete;
  StorageTxn& operator=(const StorageTxn&) = delete;

  virtual Result<std::optional<std::string>> get(Table table, const Id128Bytes& id) = 0;
  // The same for many ids at once (one round trip where the backend can: PostgreSQL
  // pipelines them). Result i answers ids[i]. The default calls get() for each.
  virtual Result<std::vector<std::optional<std::string>>> get_many(Table table, const std::vector<Id128Bytes>& ids);
  // Inserts or replaces. A backend may defer the write (PostgreSQL sends writes pipelined
  // at commit) but reads through this transaction always see it. For transfers, `deadline_ns` indexes a live hold for expiry
  // (nullopt once the hold is resolved); it is an index hint, never trusted on its own.
  virtual Status put(Table table, const Id128Bytes& id, std::string_view record,
                     std::optional<uint64_t> deadline_ns) = 0;
  // Live holds whose deadline is <= now_ns, oldest first, at most `limit`.
  virtual Result<std::vector<Id128Bytes>> due_holds(uint64_t now_ns, size_t limit) = 0;

  virtual Result<std::optional<JournalRow>> journal_last() = 0;
  virtual Result<std::optional<JournalRow>> journal_by_key(const Hash32& key) = 0;
  // Answer i: the row whose key is keys[i], if any. The default calls journal_by_key().
  virtual Result<std::vector<std::optional<JournalRow>>> journal_by_keys(const std::vector<Hash32>& keys);
  // REQUIRES: row.seq == journal_last().seq + 1.
  virtual Status journal_append(const JournalRow& row) = 0;

  // kv rows. Reads see this transaction's own writes (deferred ones included).
  virtual Result<std::optional<std::string>> kv_get(const std::string& key) = 0;
  // Answer i: the value of keys[i], if any. The default calls kv_get() for each.
  virtual Result<std::vector<std::optional<std::string>>> kv_get_many(const std::vector<std::string>& keys);
  // Sets the row; nullopt deletes it (deleting an absent row is fine). May be deferred.
  virtual Status kv_put(const std::string& key, std::optional<std::string> value) = 0;
  // The rows whose key starts with prefix (all rows when it is empty), ascending, <= limit.
  virtual Result<std::vector<KvRow>> kv_scan(const std::string& prefix, size_t limit) = 0;

  // Durable when it returns ok (SQLite synchronous=FULL in WAL mode; PostgreSQL
  // synchronous_commit). On error nothing of this transaction is visible.
  virtual Status commit() = 0;
};

// Reads (all but begin_write) see committed data only and may run on any thread.
class Storage {
 public:
  virtual ~Storage() = default;
  Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  virtual Result<std::unique_ptr<StorageTxn>> begin_write() = 0;

  virtual Result<std::optional<std::string>> get(Table table, const Id128Bytes& id) = 0;
  // Records with id > after (or from the first when after is nullopt), ascending, <= limit.
  virtual Result<std::vector<KeyedRecord>> scan(Table table, const std::optional<Id128Bytes>& after,
                                                size_t limit) = 0;
  virtual Result<std::optional<JournalRow>> journal_at(uint64_t seq) = 0;
  virtual Result<std::optional<JournalRow>> journal_by_key(const Hash32& key) = 0;
  // Rows with seq >= from_seq, ascending, at most limit.
  virtual Result<std::vector<JournalRow>> journal_scan(uint64_t from_seq, size_t limit) = 0;
  virtual Result<uint64_t> journal_count() = 0;
  virtual Result<std::optional<std::string>> kv_get(const std::string& key) = 0;
  // The rows whose key starts with prefix and is > after (no bound when after is empty),
  // ascending, at most limit.
  virtual Result<std::vector<KvRow>> kv_scan(const std::string& prefix, const std::string& after, size_t limit) = 0;
  // Bytes the store occupies (files, or relation sizes), for the benchmarks.
  virtual Result<uint64_t> size_bytes() = 0;
  // "sqlite", "postgresql" or "memory".
  virtual const char* backend() const = 0;

  // Test hook: flips one bit of byte `offset` of a stored value (a record; for the journal,
  // the row with seq == `row` and `offset` into its entry bytes, or into the entry_hash when
  // offset >= entry size), bypassing every check, as a disk or an operator would.
  virtual Status TEST_flip_byte(Table table, const Id128Bytes& id, uint64_t row, size_t offset) = 0;
};

struct StorageOptions {
  // PostgreSQL: the schema the tables live in, created when missing. Lets one database host
  // several ledgers (the tests use one schema per test). [a-z0-9_], at most 48 characters.
  std::string pg_schema = "covenant";
  // SQLite: how long a writer waits for another process holding the write lock.
  int busy_timeout_ms = 10'000;
};

// location: "memory:" (a fresh in-memory store), "postgresql://..." / "postgres://..."
// (libpq connection URL), anything else is a SQLite file path (created when missing).
Result<std::unique_ptr<Storage>> open_storage(const std::string& location, const StorageOptions& options);

bool is_postgres_location(std::string_view location);

// The smallest byte string greater than every string that starts with prefix: prefix with
// its trailing 0xff bytes dropped and the last byte then incremented. nullopt when there is
// none (prefix empty or all 0xff): the range is unbounded above.
std::optional<std::string> kv_prefix_successor(std::string_view prefix);
// The first key a scan of (prefix, after) may return: max(prefix, after + "\0").
std::string kv_scan_lower_bound(const std::string& prefix, const std::string& after);

}  // namespace covenant
