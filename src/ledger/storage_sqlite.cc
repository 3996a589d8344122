// The SQLite backend: one file, WAL, synchronous=FULL. Two connections: the writer (one
// transaction at a time, BEGIN IMMEDIATE so other processes queue on the file lock) and a
// reader that sees committed data only. Every statement is prepared once and bound.
#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "ledger/storage_internal.h"

namespace covenant::ledger_internal {

namespace {

constexpr int kSchemaVersion = 1;  // PRAGMA user_version; see docs/ledger.md

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS accounts(id BLOB PRIMARY KEY, record BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS transfers(id BLOB PRIMARY KEY, record BLOB NOT NULL, deadline INTEGER) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS transfers_due ON transfers(deadline) WHERE deadline IS NOT NULL;
CREATE TABLE IF NOT EXISTS journal(seq INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE, entry BLOB NOT NULL,
                                   entry_hash BLOB NOT NULL, chain BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS kv(key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
)sql";

enum StmtId {
  kGetAccount, kGetTransfer, kPutAccount, kPutTransfer, kDueHolds, kJournalLast, kJournalByKey,
  kJournalAt, kJournalAppend, kScanAccountsFirst, kScanAccountsAfter, kScanTransfersFirst,
  kScanTransfersAfter, kJournalScan, kJournalCount, kSizeBytes, kBegin, kCommit, kRollback,
  kFlipAccount, kFlipTransfer, kFlipJournalEntry, kFlipJournalHash, kKvGet, kKvPut, kKvDelete, kKvScanBounded,
  kKvScanFrom, kStmtCount
};

constexpr const char* kSql[kStmtCount] = {
    "SELECT record FROM accounts WHERE id = ?1",
    "SELECT record FROM transfers WHERE id = ?1",
    "INSERT OR REPLACE INTO accounts(id, record) VALUES(?1, ?2)",
    "INSERT OR REPLACE INTO transfers(id, record, deadline) VALUES(?1, ?2, ?3)",
    "SELECT id FROM transfers WHERE deadline IS NOT NULL AND deadline <= ?1 ORDER BY deadline LIMIT ?2",
    "SELECT seq, key, entry, entry_hash, chain FROM journal ORDER BY seq DESC LIMIT 1",
    "SELECT seq, key, entry, entry_hash, chain FROM journal WHERE key = ?1",
    "SELECT seq, key, entry, entry_hash, chain FROM journal WHERE seq = ?1",
    "INSERT INTO journal(seq, key, entry, entry_hash, chain) VALUES(?1, ?2, ?3, ?4, ?5)",
    "SELECT id, record FROM accounts ORDER BY id LIMIT ?2",
    "SELECT id, record FROM accounts WHERE id > ?1 ORDER BY id LIMIT ?2",
    "SELECT id, record FROM transfers ORDER BY id LIMIT ?2",
    "SELECT id, record FROM transfers WHERE id > ?1 ORDER BY id LIMIT ?2",
    "SELECT seq, key, entry, entry_hash, chain FROM journal WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
    "SELECT count(*) FROM journal",
    ("SELECT (SELECT page_count FROM pragma_page_count()) - (SELECT freelist_count FROM pragma_freelist_count()),"
     " (SELECT page_size FROM pragma_page_size())"),
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    "UPDATE accounts SET record = ?2 WHERE id = ?1",
    "UPDATE transfers SET record = ?2 WHERE id = ?1",
    "UPDATE journal SET entry = ?2 WHERE seq = ?1",
    "UPDATE journal SET entry_hash = ?2 WHERE seq = ?1",
    // kv keys are always bound as blobs: BLOB comparison is memcmp, then the shorter first.
    "SELECT value FROM kv WHERE key = ?1",
    "INSERT OR REPLACE INTO kv(key, value) VALUES(?1, ?2)",
    "DELETE FROM kv WHERE key = ?1",
    "SELECT key, value FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key LIMIT ?3",
    "SELECT key, value FROM kv WHERE key >= ?1 ORDER BY key LIMIT ?3",
};

class Conn {
 public:
  ~Conn() {
    for (auto* s : stmts_) sqlite3_finalize(s);
    if (db_) sqlite3_close(db_);
  }

  Status open(const std::string& path, const StorageOptions& options, bool writer) {
    int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             nullptr);
    if (rc != SQLITE_OK) return error("open " + path, rc);
    sqlite3_busy_timeout(db_, options.busy_timeout_ms);
    // Several processes opening one fresh file at once: the switch to WAL can
    // answer SQLITE_BUSY without consulting the busy handler (another
    // connection is mid-switch). Retry it for as long as the busy timeout.
    for (int waited_ms = 0;; waited_ms += 10) {
      Status wal = exec("PRAGMA journal_mode=WAL");
      if (wal.is_ok()) break;
      const int code = sqlite3_errcode(db_) & 0xff;
      if ((code != SQLITE_BUSY && code != SQLITE_LOCKED) || waited_ms >= options.busy_timeout_ms) return wal;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    COVENANT_RETURN_IF_ERROR(exec("PRAGMA synchronous=FULL"));
    // A page cache that holds the hot b-tree pages (64 MiB, allocated as used): without
    // it every batch re-reads interior pages with pread.
    COVENANT_RETURN_IF_ERROR(exec("PRAGMA cache_size=-65536"));
    if (writer) {
      COVENANT_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
      int version = 0;
      sqlite3_stmt* s = nullptr;
      if (sqlite3_prepare_v2(db_, "PRAGMA user_version", -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        version = sqlite3_column_int(s, 0);
      sqlite3_finalize(s);
      if (version != 0 && version != kSchemaVersion) {
        (void)exec("ROLLBACK");
        return Status::unsupported(path + ": ledger schema version " + std::to_string(version) + ", this build reads " +
                                   std::to_string(kSchemaVersion));
      }
      COVENANT_RETURN_IF_ERROR(exec(kSchema));
      COVENANT_RETURN_IF_ERROR(exec("PRAGMA user_version=" + std::to_string(kSchemaVersion)));
      COVENANT_RETURN_IF_ERROR(exec("COMMIT"));
    }
    for (int i = 0; i < kStmtCount; ++i) {
      rc = sqlite3_prepare_v3(db_, kSql[i], -1, SQLITE_PREPARE_PERSISTENT, &stmts_[i], nullptr);
      if (rc != SQLITE_OK) return error(std::string("prepare ") + kSql[i], rc);
    }
    return Status::ok();
  }

  Status exec(const std::string& sql) {
    char* msg = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg);
    if (rc == SQLITE_OK) return Status::ok();
    std::string m = msg ? msg : sqlite3_errstr(rc);
    sqlite3_free(msg);
    return classify(rc, "sqlite: " + sql.substr(0, 40) + ": " + m);
  }

  Status error(const std::string& what, int rc) {
    return classify(rc, "sqlite: " + what + ": " + (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc)));
  }

  static Status classify(int rc, std::string m) {
    int primary = rc & 0xff;
    if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) return Status::corruption(std::move(m));
    if (primary == SQLITE_CONSTRAINT) return Status::precondition(std::move(m));
    return Status::io(std::move(m));
  }

  // A bound statement, reset when it goes out of scope.
  class Stmt {
   public:
    Stmt(Conn& c, StmtId id) : c_(c), s_(c.stmts_[id]) {}
    ~Stmt() {
      sqlite3_reset(s_);
      sqlite3_clear_bindings(s_);
    }
    Stmt& blob(int i, const void* p, size_t n) {
      sqlite3_bind_blob64(s_, i, p, n, SQLITE_STATIC);
      return *this;
    }
    Stmt& blob(int i, std::string_view v) { return blob(i, v.data(), v.size()); }
    template <size_t N>
    Stmt& blob(int i, const std::array<uint8_t, N>& v) { return blob(i, v.data(), N); }
    Stmt& i64(int i, int64_t v) {
      sqlite3_bind_int64(s_, i, v);
      return *this;
    }
    Stmt& null(int i) {
      sqlite3_bind_null(s_, i);
      return *this;
    }
    // true: a row; false: done. Errors go to *status.
    bool step(Status* status) {
      int rc = sqlite3_step(s_);
      if (rc == SQLITE_ROW) return true;
      if (rc != SQLITE_DONE) *status = c_.error(sqlite3_sql(s_), rc);
      return false;
    }
    Status run() {
      Status st;
      while (step(&st)) {
      }
      return st;
    }
    std::string text(int col) {
      const void* p = sqlite3_column_blob(s_, col);
      if (!p) return {};  // a zero-length blob (or NULL)
      return std::string(static_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(s_, col)));
    }
    template <size_t N>
    bool fixed(int col, std::array<uint8_t, N>* out) {
      if (static_cast<size_t>(sqlite3_column_bytes(s_, col)) != N) return false;
      std::memcpy(out->data(), sqlite3_column_blob(s_, col), N);
      return true;
    }
    int64_t col_i64(int col) { return sqlite3_column_int64(s_, col); }

   private:
    Conn& c_;
    sqlite3_stmt* s_;
  };

  Result<std::optional<std::string>> get(Table table, const Id128Bytes& id) {
    Stmt s(*this, table == Table::kAccounts ? kGetAccount : kGetTransfer);
    s.blob(1, id);
    Status st;
    if (s.step(&st)) return std::optional<std::string>(s.text(0));
    if (!st.is_ok()) return st;
    return std::optional<std::string>();
  }

  Result<std::optional<std::string>> kv_get(const std::string& key) {
    Stmt s(*this, kKvGet);
    s.blob(1, key);
    Status st;
    if (s.step(&st)) return std::optional<std::string>(s.text(0));
    if (!st.is_ok()) return st;
    return std::optional<std::string>();
  }

  // Rows with key >= lower that start with prefix, at most limit.
  Result<std::vector<KvRow>> kv_scan(const std::string& prefix, const std::string& lower, size_t limit) {
    std::vector<KvRow> out;
    if (limit == 0) return out;
    const std::optional<std::string> upper = kv_prefix_successor(prefix);
    Stmt s(*this, upper ? kKvScanBounded : kKvScanFrom);
    s.blob(1, lower);
    if (upper) s.blob(2, *upper);
    s.i64(3, static_cast<int64_t>(std::min<uint64_t>(limit, INT64_MAX)));
    Status st;
    while (s.step(&st)) out.emplace_back(s.text(0), s.text(1));
    if (!st.is_ok()) return st;
    return out;
  }

  Result<std::optional<JournalRow>> journal_one(StmtId id, const std::function<void(Stmt&)>& bind) {
    Stmt s(*this, id);
    bind(s);
    Status st;
    if (s.step(&st)) {
      JournalRow r;
      COVENANT_RETURN_IF_ERROR(read_row(s, &r));
      return std::optional<JournalRow>(std::move(r));
    }
    if (!st.is_ok()) return st;
    return std::optional<JournalRow>();
  }

  static Status read_row(Stmt& s, JournalRow* r) {
    r->seq = static_cast<uint64_t>(s.col_i64(0));
    r->entry = s.text(2);
    if (!s.fixed(1, &r->key) || !s.fixed(3, &r->entry_hash) || !s.fixed(4, &r->chain))
      return Status::corruption("journal row seq=" + std::to_string(r->seq) + ": a hash column has the wrong size");
    return Status::ok();
  }

  sqlite3* db() const { return db_; }

  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmts_[kStmtCount] = {};
};

class SqliteTxn final : public StorageTxn {
 public:
  SqliteTxn(Conn& c, std::unique_lock<std::mutex> lock, std::atomic<bool>* wal_reset_wanted)
      : c_(c), lock_(std::move(lock)), wal_reset_wanted_(wal_reset_wanted) {}
  ~SqliteTxn() override {
    if (!done_) (void)Conn::Stmt(c_, kRollback).run();
  }

  Result<std::optional<std::string>> get(Table table, const Id128Bytes& id) override { return c_.get(table, id); }

  Status put(Table table, const Id128Bytes& id, std::string_view record, std::optional<uint64_t> deadline_ns) override {
    if (table == Table::kAccounts) return Conn::Stmt(c_, kPutAccount).blob(1, id).blob(2, record).run();
    Conn::Stmt s(c_, kPutTransfer);
    s.blob(1, id).blob(2, record);
    if (deadline_ns) s.i64(3, static_cast<int64_t>(*deadline_ns));
    else s.null(3);
    return s.run();
  }

  Result<std::vector<Id128Bytes>> due_holds(uint64_t now_ns, size_t limit) override {
    Conn::Stmt s(c_, kDueHolds);
    s.i64(1, static_cast<int64_t>(now_ns)).i64(2, static_cast<int64_t>(limit));
    std::vector<Id128Bytes> out;
    Status st;
    while (s.step(&st)) {
      Id128Bytes id;
      if (!s.fixed(0, &id)) return Status::corruption("transfers: an id has the wrong size");
      out.push_back(id);
    }
    if (!st.is_ok()) return st;
    return out;
  }

  Result<std::optional<JournalRow>> journal_last() override {
    return c_.journal_one(kJournalLast, [](Conn::Stmt&) {});
  }
  Result<std::optional<JournalRow>> journal_by_key(const Hash32& key) override {
    return c_.journal_one(kJournalByKey, [&](Conn::Stmt& s) { s.blob(1, key); });
  }
  Status journal_append(const JournalRow& r) override {
    return Conn::Stmt(c_, kJournalAppend)
        .i64(1, static_cast<int64_t>(r.seq))
        .blob(2, r.key)
        .blob(3, r.entry)
        .blob(4, r.entry_hash)
        .blob(5, r.chain)
        .run();
  }

  Result<std::optional<std::string>> kv_get(const std::string& key) override { return c_.kv_get(key); }
  Status kv_put(const std::string& key, std::optional<std::string> value) override {
    if (!value) return Conn::Stmt(c_, kKvDelete).blob(1, key).run();
    return Conn::Stmt(c_, kKvPut).blob(1, key).blob(2, *value).run();
  }
  Result<std::vector<KvRow>> kv_scan(const std::string& prefix, size_t limit) override {
    return c_.kv_scan(prefix, prefix, limit);
  }

  Status commit() override {
    Status st = Conn::Stmt(c_, kCommit).run();
    if (st.is_ok()) done_ = true;
    // The background checkpointer has copied most of the WAL already; a checkpoint here,
    // between two write transactions, finishes it, so the next write restarts the WAL
    // from its beginning (the WAL stays bounded without stalling the writer).
    if (st.is_ok() && wal_reset_wanted_ && wal_reset_wanted_->exchange(false)) {
      int log = 0, done = 0;
      sqlite3_wal_checkpoint_v2(c_.db(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    }
    return st;
  }

 private:
  Conn& c_;
  std::unique_lock<std::mutex> lock_;
  std::atomic<bool>* wal_reset_wanted_;
  bool done_ = false;
};

class SqliteStorage final : public Storage {
 public:
  ~SqliteStorage() override {
    {
      std::lock_guard lock(checkpoint_mu_);
      stop_ = true;
    }
    checkpoint_cv_.notify_all();
    if (checkpointer_.joinable()) checkpointer_.join();
  }

  Status open(const std::string& path, const StorageOptions& options) {
    path_ = path;
    COVENANT_RETURN_IF_ERROR(writer_.open(path, options, true));
    COVENANT_RETURN_IF_ERROR(reader_.open(path, options, false));
    // WAL checkpoints copy committed pages into the database file. Left to SQLite they
    // run inside a commit every 1000 pages (a third of a busy writer's time); here a
    // thread of its own runs them (PASSIVE: never blocks the writer or readers).
    COVENANT_RETURN_IF_ERROR(writer_.exec("PRAGMA wal_autocheckpoint=0"));
    checkpointer_ = std::thread([this] { run_checkpointer(); });
    return Status::ok();
  }

  static constexpr int kWalFramesMax = 8192;  // 32 MiB of 4 KiB pages

  void run_checkpointer() {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
      if (db) sqlite3_close(db);
      return;
    }
    sqlite3_busy_timeout(db, 1000);
    // A connection learns the file is in WAL mode when it first reads it.
    sqlite3_exec(db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
    std::unique_lock lock(checkpoint_mu_);
    while (!stop_) {
      checkpoint_cv_.wait_for(lock, std::chrono::milliseconds(50));
      if (stop_) break;
      lock.unlock();
      int log = 0, done = 0;
      sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
      // The WAL restarts from its beginning only when a checkpoint finished and the writer
      // saw it; under steady load that may never happen from this thread. Past
      // kWalFramesMax frames the writer is asked to finish one after its next commit.
      if (log > kWalFramesMax) wal_reset_wanted_ = true;
      // Far past it (the writer is not committing, or readers pin the WAL): wait for the
      // writer and truncate.
      if (log > 4 * kWalFramesMax) sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
      lock.lock();
    }
    lock.unlock();
    int log = 0, done = 0;
    sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    sqlite3_close(db);
  }

  Result<std::unique_ptr<StorageTxn>> begin_write() override {
    std::unique_lock lock(write_mu_);
    COVENANT_RETURN_IF_ERROR(Conn::Stmt(writer_, kBegin).run());
    return std::unique_ptr<StorageTxn>(std::make_unique<SqliteTxn>(writer_, std::move(lock), &wal_reset_wanted_));
  }

  Result<std::optional<std::string>> get(Table table, const Id128Bytes& id) override {
    std::lock_guard lock(read_mu_);
    return reader_.get(table, id);
  }

  Result<std::vector<KeyedRecord>> scan(Table table, const std::optional<Id128Bytes>& after, size_t limit) override {
    std::lock_guard lock(read_mu_);
    StmtId id = table == Table::kAccounts ? (after ? kScanAccountsAfter : kScanAccountsFirst)
                                          : (after ? kScanTransfersAfter : kScanTransfersFirst);
    Conn::Stmt s(reader_, id);
    if (after) s.blob(1, *after);
    s.i64(2, static_cast<int64_t>(limit));
    std::vector<KeyedRecord> out;
    Status st;
    while (s.step(&st)) {
      KeyedRecord r;
      if (!s.fixed(0, &r.id)) return Status::corruption(std::string(table_name(table)) + ": an id has the wrong size");
      r.record = s.text(1);
      out.push_back(std::move(r));
    }
    if (!st.is_ok()) return st;
    return out;
  }

  Result<std::optional<JournalRow>> journal_at(uint64_t seq) override {
    std::lock_guard lock(read_mu_);
    return reader_.journal_one(kJournalAt, [&](Conn::Stmt& s) { s.i64(1, static_cast<int64_t>(seq)); });
  }

  Result<std::optional<JournalRow>> journal_by_key(const Hash32& key) override {
    std::lock_guard lock(read_mu_);
    return reader_.journal_one(kJournalByKey, [&](Conn::Stmt& s) { s.blob(1, key); });
  }

  Result<std::vector<JournalRow>> journal_scan(uint64_t from_seq, size_t limit) override {
    std::lock_guard lock(read_mu_);
    Conn::Stmt s(reader_, kJournalScan);
    s.i64(1, static_cast<int64_t>(from_seq)).i64(2, static_cast<int64_t>(limit));
    std::vector<JournalRow> out;
    Status st;
    while (s.step(&st)) {
      JournalRow r;
      COVENANT_RETURN_IF_ERROR(Conn::read_row(s, &r));
      out.push_back(std::move(r));
    }
    if (!st.is_ok()) return st;
    return out;
  }

  Result<uint64_t> journal_count() override {
    std::lock_guard lock(read_mu_);
    Conn::Stmt s(reader_, kJournalCount);
    Status st;
    if (!s.step(&st)) return st.is_ok() ? Status::internal("count returned no row") : st;
    return static_cast<uint64_t>(s.col_i64(0));
  }

  Result<std::optional<std::string>> kv_get(const std::string& key) override {
    std::lock_guard lock(read_mu_);
    return reader_.kv_get(key);
  }

  Result<std::vector<KvRow>> kv_scan(const std::string& prefix, const std::string& after, size_t limit) override {
    std::lock_guard lock(read_mu_);
    return reader_.kv_scan(prefix, kv_scan_lower_bound(prefix, after), limit);
  }

  Result<uint64_t> size_bytes() override {
    std::lock_guard lock(read_mu_);
    Conn::Stmt s(reader_, kSizeBytes);
    Status st;
    if (!s.step(&st)) return st.is_ok() ? Status::internal("size returned no row") : st;
    return static_cast<uint64_t>(s.col_i64(0) * s.col_i64(1));
  }

  const char* backend() const override { return "sqlite"; }

  Status TEST_flip_byte(Table table, const Id128Bytes& id, uint64_t row, size_t offset) override {
    std::lock_guard wlock(write_mu_);
    if (table == Table::kJournal) {
      auto r = writer_.journal_one(kJournalAt, [&](Conn::Stmt& s) { s.i64(1, static_cast<int64_t>(row)); });
      if (!r.is_ok()) return r.status();
      if (!r.value()) return Status::not_found("journal row");
      JournalRow j = *r.value();
      if (offset < j.entry.size()) {
        j.entry[offset] ^= 1;
        return Conn::Stmt(writer_, kFlipJournalEntry).i64(1, static_cast<int64_t>(row)).blob(2, j.entry).run();
      }
      j.entry_hash[(offset - j.entry.size()) % 32] ^= 1;
      return Conn::Stmt(writer_, kFlipJournalHash).i64(1, static_cast<int64_t>(row)).blob(2, j.entry_hash).run();
    }
    auto r = writer_.get(table, id);
    if (!r.is_ok()) return r.status();
    if (!r.value() || offset >= r.value()->size()) return Status::not_found("record");
    std::string rec = *r.value();
    rec[offset] ^= 1;
    return Conn::Stmt(writer_, table == Table::kAccounts ? kFlipAccount : kFlipTransfer).blob(1, id).blob(2, rec).run();
  }

 private:
  std::string path_;
  std::mutex write_mu_;  // one write transaction at a time on writer_
  Conn writer_;
  std::mutex read_mu_;  // guards reader_
  Conn reader_;
  std::mutex checkpoint_mu_;
  std::condition_variable checkpoint_cv_;
  bool stop_ = false;  // GUARDED_BY(checkpoint_mu_)
  std::atomic<bool> wal_reset_wanted_{false};
  std::thread checkpointer_;
};

}  // namespace

Result<std::unique_ptr<Storage>> open_sqlite_storage(const std::string& path, const StorageOptions& options) {
  auto s = std::make_unique<SqliteStorage>();
  COVENANT_RETURN_IF_ERROR(s->open(path, options));
  return std::unique_ptr<Storage>(std::move(s));
}

}  // namespace covenant::ledger_internal
