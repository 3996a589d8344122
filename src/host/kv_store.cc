// KvStore backends: in memory (std::map) and SQLite (one WITHOUT ROWID table,
// WAL, a batch per transaction).
#include "host/kv_store.h"

#include <cassert>
#include <map>
#include <mutex>

#include <sqlite3.h>

namespace covenant::host {

std::optional<std::string> prefix_successor(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) prefix.pop_back();
  if (prefix.empty()) return std::nullopt;
  prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
  return prefix;
}

namespace {

class MemoryKvStore final : public KvStore {
 public:
  Result<std::optional<std::string>> get(const std::string& key) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  Result<std::vector<std::string>> list(const std::string& prefix, size_t max) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (auto it = map_.lower_bound(prefix); it != map_.end() && out.size() < max; ++it) {
      if (it->first.compare(0, prefix.size(), prefix) != 0) break;
      out.push_back(it->first);
    }
    return out;
  }
  Result<KvUsage> usage(const std::string& prefix) override {
    std::lock_guard<std::mutex> lock(mu_);
    return usage_locked(prefix);
  }
  Status commit(const std::string& prefix, const KvBatch& batch) override {
    std::lock_guard<std::mutex> lock(mu_);
    KvUsage& u = usage_locked(prefix);
    for (const auto& [k, v] : batch) {
      assert(k.compare(0, prefix.size(), prefix) == 0);
      const uint64_t name_bytes = k.size() - prefix.size();
      auto it = map_.find(k);
      if (it != map_.end()) {
        u.keys -= 1;
        u.bytes -= name_bytes + it->second.size();
      }
      if (v) {
        u.keys += 1;
        u.bytes += name_bytes + v->size();
        map_[k] = *v;
      } else if (it != map_.end()) {
        map_.erase(it);
      }
    }
    return Status::ok();
  }

 private:
  KvUsage& usage_locked(const std::string& prefix) {
    auto [it, inserted] = usage_.try_emplace(prefix);
    if (inserted) {
      for (auto m = map_.lower_bound(prefix); m != map_.end(); ++m) {
        if (m->first.compare(0, prefix.size(), prefix) != 0) break;
        it->second.keys++;
        it->second.bytes += m->first.size() - prefix.size() + m->second.size();
      }
    }
    return it->second;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::string> map_;  // GUARDED_BY(mu_)
  std::map<std::string, KvUsage> usage_;    // GUARDED_BY(mu_): per namespace prefix
};

class SqliteKvStore final : public KvStore {
 public:
  ~SqliteKvStore() override {
    for (sqlite3_stmt* s : {get_, list_, list_open_, usage_, usage_open_, put_, del_, vlen_, uget_, uput_})
      sqlite3_finalize(s);
    if (db_) sqlite3_close(db_);
  }

  Status open(const std::string& path) {
    path_ = path;
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr) !=
        SQLITE_OK)
      return error("open");
    sqlite3_busy_timeout(db_, 5000);
    COVENANT_RETURN_IF_ERROR(exec("PRAGMA journal_mode=WAL"));
    COVENANT_RETURN_IF_ERROR(exec("PRAGMA synchronous=FULL"));
    COVENANT_RETURN_IF_ERROR(exec("CREATE TABLE IF NOT EXISTS covenant_kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID"));
    COVENANT_RETURN_IF_ERROR(exec(
        "CREATE TABLE IF NOT EXISTS covenant_kv_usage (prefix BLOB PRIMARY KEY, keys INTEGER NOT NULL, "
        "bytes INTEGER NOT NULL) WITHOUT ROWID"));
    COVENANT_RETURN_IF_ERROR(prepare("SELECT v FROM covenant_kv WHERE k = ?1", &get_));
    COVENANT_RETURN_IF_ERROR(prepare("SELECT length(v) FROM covenant_kv WHERE k = ?1", &vlen_));
    COVENANT_RETURN_IF_ERROR(prepare("SELECT keys, bytes FROM covenant_kv_usage WHERE prefix = ?1", &uget_));
    COVENANT_RETURN_IF_ERROR(
        prepare("INSERT OR REPLACE INTO covenant_kv_usage (prefix, keys, bytes) VALUES (?1, ?2, ?3)", &uput_));
    COVENANT_RETURN_IF_ERROR(prepare("SELECT k FROM covenant_kv WHERE k >= ?1 AND k < ?2 ORDER BY k LIMIT ?3", &list_));
    COVENANT_RETURN_IF_ERROR(prepare("SELECT k FROM covenant_kv WHERE k >= ?1 ORDER BY k LIMIT ?2", &list_open_));
    COVENANT_RETURN_IF_ERROR(prepare(
        "SELECT count(*), coalesce(sum(length(k) + length(v)), 0) FROM covenant_kv WHERE k >= ?1 AND k < ?2", &usage_));
    COVENANT_RETURN_IF_ERROR(
        prepare("SELECT count(*), coalesce(sum(length(k) + length(v)), 0) FROM covenant_kv WHERE k >= ?1", &usage_open_));
    COVENANT_RETURN_IF_ERROR(prepare("INSERT OR REPLACE INTO covenant_kv (k, v) VALUES (?1, ?2)", &put_));
    COVENANT_RETURN_IF_ERROR(prepare("DELETE FROM covenant_kv WHERE k = ?1", &del_));
    return Status::ok();
  }

  Result<std::optional<std::string>> get(const std::string& key) override {
    std::lock_guard<std::mutex> lock(mu_);
    Reset r(get_);
    bind(get_, 1, key);
    int rc = sqlite3_step(get_);
    if (rc == SQLITE_DONE) return std::optional<std::string>();
    if (rc != SQLITE_ROW) return error("get");
    return std::optional<std::string>(column(get_, 0));
  }

  Result<std::vector<std::string>> list(const std::string& prefix, size_t max) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto end = prefix_successor(prefix);
    sqlite3_stmt* s = end ? list_ : list_open_;
    Reset r(s);
    bind(s, 1, prefix);
    if (end) bind(s, 2, *end);
    sqlite3_bind_int64(s, end ? 3 : 2, static_cast<sqlite3_int64>(max));
    std::vector<std::string> out;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) out.push_back(column(s, 0));
    if (rc != SQLITE_DONE) return error("list");
    return out;
  }

  Result<KvUsage> usage(const std::string& prefix) override {
    std::lock_guard<std::mutex> lock(mu_);
    COVENANT_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
    auto u = usage_locked(prefix);
    if (!u) {
      (void)exec("ROLLBACK");
      return u.status();
    }
    COVENANT_RETURN_IF_ERROR(exec("COMMIT"));
    return u;
  }

  Status commit(const std::string& prefix, const KvBatch& batch) override {
    std::lock_guard<std::mutex> lock(mu_);
    COVENANT_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
    Status st = commit_locked(prefix, batch);
    if (!st) {
      (void)exec("ROLLBACK");
      return st;
    }
    return exec("COMMIT");
  }

 private:
  // The counters of prefix, computed by a scan (and stored) the first time.
  // REQUIRES: inside a transaction.
  Result<KvUsage> usage_locked(const std::string& prefix) {
    {
      Reset r(uget_);
      bind(uget_, 1, prefix);
      int rc = sqlite3_step(uget_);
      if (rc == SQLITE_ROW)
        return KvUsage{static_cast<uint64_t>(sqlite3_column_int64(uget_, 0)),
                       static_cast<uint64_t>(sqlite3_column_int64(uget_, 1))};
      if (rc != SQLITE_DONE) return error("usage");
    }
    auto end = prefix_successor(prefix);
    sqlite3_stmt* s = end ? usage_ : usage_open_;
    KvUsage u;
    {
      Reset r(s);
      bind(s, 1, prefix);
      if (end) bind(s, 2, *end);
      if (sqlite3_step(s) != SQLITE_ROW) return error("usage");
      u.keys = static_cast<uint64_t>(sqlite3_column_int64(s, 0));
      u.bytes = static_cast<uint64_t>(sqlite3_column_int64(s, 1)) - u.keys * prefix.size();
    }
    COVENANT_RETURN_IF_ERROR(put_usage(prefix, u));
    return u;
  }

  Status put_usage(const std::string& prefix, const KvUsage& u) {
    Reset r(uput_);
    bind(uput_, 1, prefix);
    sqlite3_bind_int64(uput_, 2, static_cast<sqlite3_int64>(u.keys));
    sqlite3_bind_int64(uput_, 3, static_cast<sqlite3_int64>(u.bytes));
    if (sqlite3_step(uput_) != SQLITE_DONE) return error("usage update");
    return Status::ok();
  }

  Status commit_locked(const std::string& prefix, const KvBatch& batch) {
    auto usage = usage_locked(prefix);
    if (!usage) return usage.status();
    KvUsage u = *usage;
    for (const auto& [k, v] : batch) {
      assert(k.compare(0, prefix.size(), prefix) == 0);
      const uint64_t name_bytes = k.size() - prefix.size();
      {
        Reset r(vlen_);
        bind(vlen_, 1, k);
        int rc = sqlite3_step(vlen_);
        if (rc == SQLITE_ROW) {
          u.keys -= 1;
          u.bytes -= name_bytes + static_cast<uint64_t>(sqlite3_column_int64(vlen_, 0));
        } else if (rc != SQLITE_DONE) {
          return error("commit");
        }
      }
      sqlite3_stmt* s = v ? put_ : del_;
      Reset r(s);
      bind(s, 1, k);
      if (v) {
        bind(s, 2, *v);
        u.keys += 1;
        u.bytes += name_bytes + v->size();
      }
      if (sqlite3_step(s) != SQLITE_DONE) return error("commit");
    }
    return put_usage(prefix, u);
  }

  struct Reset {
    explicit Reset(sqlite3_stmt* s) : s(s) {}
    ~Reset() {
      sqlite3_reset(s);
      sqlite3_clear_bindings(s);
    }
    sqlite3_stmt* s;
  };
  static void bind(sqlite3_stmt* s, int i, const std::string& b) {
    sqlite3_bind_blob(s, i, b.data(), static_cast<int>(b.size()), SQLITE_TRANSIENT);
  }
  static std::string column(sqlite3_stmt* s, int i) {
    const void* p = sqlite3_column_blob(s, i);
    int n = sqlite3_column_bytes(s, i);
    return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
  }
  Status exec(const char* sql) {
    char* msg = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
      std::string m = msg ? msg : "unknown error";
      sqlite3_free(msg);
      return Status::io("kv store " + path_ + ": " + sql + ": " + m);
    }
    return Status::ok();
  }
  Status prepare(const char* sql, sqlite3_stmt** out) {
    if (sqlite3_prepare_v2(db_, sql, -1, out, nullptr) != SQLITE_OK) return error("prepare");
    return Status::ok();
  }
  Status error(const char* what) {
    return Status::io("kv store " + path_ + ": " + what + ": " + (db_ ? sqlite3_errmsg(db_) : "cannot open"));
  }

  std::mutex mu_;
  std::string path_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt *get_ = nullptr, *list_ = nullptr, *list_open_ = nullptr, *usage_ = nullptr, *usage_open_ = nullptr,
               *put_ = nullptr, *del_ = nullptr, *vlen_ = nullptr, *uget_ = nullptr, *uput_ = nullptr;
};

}  // namespace

std::unique_ptr<KvStore> make_memory_kv_store() { return std::make_unique<MemoryKvStore>(); }

Result<std::unique_ptr<KvStore>> open_sqlite_kv_store(const std::string& path) {
  auto s = std::make_unique<SqliteKvStore>();
  COVENANT_RETURN_IF_ERROR(s->open(path));
  return std::unique_ptr<KvStore>(std::move(s));
}

}  // namespace covenant::host
