// The PostgreSQL backend (libpq), for ledgers shared by many executors. Two connections:
// the writer and a reader. A write transaction takes a transaction-scoped advisory lock
// keyed by the schema, so writers in every process queue for it: the ledger's
// read-validate-write step is then serializable without retries. Every statement is
// prepared once, parameters and results travel in binary.
#include <libpq-fe.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>

#include "ledger/storage_internal.h"

namespace covenant::ledger_internal {

namespace {

constexpr int kSchemaVersion = 1;
constexpr int32_t kAdvisoryLockClass = 0x436f76;  // "Cov"

struct Prepared {
  const char* name;
  const char* sql;
  int params;
};

constexpr Prepared kStatements[] = {
    {"get_account", "SELECT record FROM accounts WHERE id = $1", 1},
    {"get_transfer", "SELECT record FROM transfers WHERE id = $1", 1},
    {"put_account",
     "INSERT INTO accounts(id, record) VALUES($1, $2) ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record", 2},
    {"put_transfer",
     "INSERT INTO transfers(id, record, deadline) VALUES($1, $2, $3) "
     "ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record, deadline = EXCLUDED.deadline",
     3},
    {"due_holds", "SELECT id FROM transfers WHERE deadline IS NOT NULL AND deadline <= $1 ORDER BY deadline LIMIT $2",
     2},
    {"journal_last", "SELECT seq, key, entry, entry_hash, chain FROM journal ORDER BY seq DESC LIMIT 1", 0},
    {"journal_by_key", "SELECT seq, key, entry, entry_hash, chain FROM journal WHERE key = $1", 1},
    {"journal_at", "SELECT seq, key, entry, entry_hash, chain FROM journal WHERE seq = $1", 1},
    {"journal_append", "INSERT INTO journal(seq, key, entry, entry_hash, chain) VALUES($1, $2, $3, $4, $5)", 5},
    {"scan_accounts_first", "SELECT id, record FROM accounts ORDER BY id LIMIT $1", 1},
    {"scan_accounts_after", "SELECT id, record FROM accounts WHERE id > $1 ORDER BY id LIMIT $2", 2},
    {"scan_transfers_first", "SELECT id, record FROM transfers ORDER BY id LIMIT $1", 1},
    {"scan_transfers_after", "SELECT id, record FROM transfers WHERE id > $1 ORDER BY id LIMIT $2", 2},
    {"journal_scan", "SELECT seq, key, entry, entry_hash, chain FROM journal WHERE seq >= $1 ORDER BY seq LIMIT $2", 2},
    {"journal_count", "SELECT count(*)::int8 FROM journal", 0},
    {"size_bytes",
     "SELECT (pg_total_relation_size('accounts') + pg_total_relation_size('transfers') + "
     "pg_total_relation_size('journal') + pg_total_relation_size('kv'))::int8",
     0},
    {"lock", "SELECT pg_advisory_xact_lock($1::int4, $2::int4)", 2},
    {"flip_account", "UPDATE accounts SET record = $2 WHERE id = $1", 2},
    {"flip_transfer", "UPDATE transfers SET record = $2 WHERE id = $1", 2},
    {"flip_journal_entry", "UPDATE journal SET entry = $2 WHERE seq = $1", 2},
    {"flip_journal_hash", "UPDATE journal SET entry_hash = $2 WHERE seq = $1", 2},
    // Set-at-a-time forms: one statement per table per batch, rows as binary arrays.
    {"get_accounts_any", "SELECT id, record FROM accounts WHERE id = ANY($1::bytea[])", 1},
    {"get_transfers_any", "SELECT id, record FROM transfers WHERE id = ANY($1::bytea[])", 1},
    {"journal_by_key_any", "SELECT seq, key, entry, entry_hash, chain FROM journal WHERE key = ANY($1::bytea[])", 1},
    {"upsert_accounts",
     "INSERT INTO accounts(id, record) SELECT * FROM unnest($1::bytea[], $2::bytea[]) "
     "ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
     2},
    {"upsert_transfers",
     "INSERT INTO transfers(id, record, deadline) SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::int8[]) "
     "ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record, deadline = EXCLUDED.deadline",
     3},
    {"append_journal",
     "INSERT INTO journal(seq, key, entry, entry_hash, chain) "
     "SELECT * FROM unnest($1::int8[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[])",
     5},
    // kv rows: bytea compares bytewise (memcmp, then the shorter first), whatever the collation.
    {"kv_get", "SELECT value FROM kv WHERE key = $1::bytea", 1},
    {"kv_get_any", "SELECT key, value FROM kv WHERE key = ANY($1::bytea[])", 1},
    {"kv_scan_bounded",
     "SELECT key, value FROM kv WHERE key >= $1::bytea AND key < $2::bytea ORDER BY key LIMIT $3::int8", 3},
    {"kv_scan_from", "SELECT key, value FROM kv WHERE key >= $1::bytea ORDER BY key LIMIT $2::int8", 2},
    {"kv_upsert",
     "INSERT INTO kv(key, value) SELECT * FROM unnest($1::bytea[], $2::bytea[]) "
     "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
     2},
    {"kv_delete", "DELETE FROM kv WHERE key = ANY($1::bytea[])", 1},
};

constexpr uint32_t kByteaOid = 17;
constexpr uint32_t kInt8Oid = 20;

std::string be64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (56 - 8 * i));
  return s;
}
std::string be32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (24 - 8 * i));
  return s;
}
// A one-dimensional array in PostgreSQL's binary format: ndim, has_null, element oid,
// length, lower bound, then each element as a length (-1 = NULL) and its bytes.
std::string pg_array(uint32_t oid, const std::vector<std::optional<std::string>>& elems) {
  std::string out;
  bool has_null = false;
  size_t size = 20;
  for (const auto& e : elems) {
    has_null = has_null || !e;
    size += 4 + (e ? e->size() : 0);
  }
  out.reserve(size);
  out += be32(1);
  out += be32(has_null ? 1 : 0);
  out += be32(oid);
  out += be32(static_cast<uint32_t>(elems.size()));
  out += be32(1);
  for (const auto& e : elems) {
    out += be32(e ? static_cast<uint32_t>(e->size()) : 0xffffffffu);
    if (e) out += *e;
  }
  return out;
}

template <size_t N>
std::string_view view(const std::array<uint8_t, N>& a) {
  return {reinterpret_cast<const char*>(a.data()), N};
}

// A parameter: binary bytes, or SQL NULL.
struct Param {
  Param(std::string_view b) : bytes(b) {}  // NOLINT
  Param(const std::string& b) : bytes(b) {}  // NOLINT: the temporary outlives the call
  Param(std::nullptr_t) : null(true) {}   // NOLINT
  std::string_view bytes;
  bool null = false;
};

class Res {
 public:
  explicit Res(PGresult* r) : r_(r) {}
  ~Res() { PQclear(r_); }
  Res(const Res&) = delete;
  Res(Res&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  PGresult* get() const { return r_; }
  int rows() const { return PQntuples(r_); }
  std::string_view bytes(int row, int col) const {
    return {PQgetvalue(r_, row, col), static_cast<size_t>(PQgetlength(r_, row, col))};
  }
  uint64_t u64(int row, int col) const {
    std::string_view b = bytes(row, col);
    uint64_t v = 0;
    for (char c : b) v = (v << 8) | static_cast<uint8_t>(c);
    return v;
  }
  template <size_t N>
  bool fixed(int row, int col, std::array<uint8_t, N>* out) const {
    std::string_view b = bytes(row, col);
    if (b.size() != N) return false;
    std::memcpy(out->data(), b.data(), N);
    return true;
  }

 private:
  PGresult* r_;
};

class Conn {
 public:
  ~Conn() {
    if (pg_) PQfinish(pg_);
  }

  // Connects again when the connection was lost (server restarted, network cut): a
  // fresh connection with the schema set and the statements prepared.
  Status ensure() {
    if (pg_ && PQstatus(pg_) == CONNECTION_OK) return Status::ok();
    if (url_.empty()) return Status::io("postgresql: not connected");
    return open(url_, schema_);
  }

  Status open(const std::string& url, const std::string& schema) {
    url_ = url;
    schema_ = schema;
    if (pg_) PQfinish(pg_);
    pg_ = PQconnectdb(url.c_str());
    if (PQstatus(pg_) != CONNECTION_OK) return Status::io("postgresql: connect: " + std::string(PQerrorMessage(pg_)));
    COVENANT_RETURN_IF_ERROR(exec("SET client_min_messages TO warning"));
    char* quoted = PQescapeIdentifier(pg_, schema.c_str(), schema.size());
    if (!quoted) return Status::invalid("postgresql: schema name: " + std::string(PQerrorMessage(pg_)));
    std::string q = quoted;
    PQfreemem(quoted);
    // Session advisory lock: two processes creating the same schema at once would collide.
    COVENANT_RETURN_IF_ERROR(exec("SELECT pg_advisory_lock(" + std::to_string(kAdvisoryLockClass) + ", 0)"));
    Status st = exec("CREATE SCHEMA IF NOT EXISTS " + q + "; SET search_path TO " + q + R"sql(;
      CREATE TABLE IF NOT EXISTS meta(k text PRIMARY KEY, v int8 NOT NULL);
      INSERT INTO meta VALUES('schema_version', )sql" + std::to_string(kSchemaVersion) + R"sql() ON CONFLICT DO NOTHING;
      CREATE TABLE IF NOT EXISTS accounts(id bytea PRIMARY KEY, record bytea NOT NULL);
      CREATE TABLE IF NOT EXISTS transfers(id bytea PRIMARY KEY, record bytea NOT NULL, deadline int8);
      CREATE INDEX IF NOT EXISTS transfers_due ON transfers(deadline) WHERE deadline IS NOT NULL;
      CREATE TABLE IF NOT EXISTS journal(seq int8 PRIMARY KEY, key bytea NOT NULL UNIQUE, entry bytea NOT NULL,
                                         entry_hash bytea NOT NULL, chain bytea NOT NULL);
      CREATE TABLE IF NOT EXISTS kv(key bytea PRIMARY KEY, value bytea NOT NULL);)sql");
    Status unlock = exec("SELECT pg_advisory_unlock(" + std::to_string(kAdvisoryLockClass) + ", 0)");
    COVENANT_RETURN_IF_ERROR(st);
    COVENANT_RETURN_IF_ERROR(unlock);
    {
      Res r(PQexecParams(pg_, "SELECT v FROM meta WHERE k = 'schema_version'", 0, nullptr, nullptr, nullptr, nullptr, 0));
      if (PQresultStatus(r.get()) != PGRES_TUPLES_OK || r.rows() != 1)
        return Status::io("postgresql: reading schema version: " + std::string(PQerrorMessage(pg_)));
      if (std::string(r.bytes(0, 0)) != std::to_string(kSchemaVersion))
        return Status::unsupported("postgresql: ledger schema version " + std::string(r.bytes(0, 0)));
    }
    for (const Prepared& p : kStatements) {
      Res r(PQprepare(pg_, p.name, p.sql, p.params, nullptr));
      if (PQresultStatus(r.get()) != PGRES_COMMAND_OK)
        return Status::io("postgresql: prepare " + std::string(p.name) + ": " + PQerrorMessage(pg_));
    }
    lock_objid_ = static_cast<int32_t>(fnv1a(schema));
    return Status::ok();
  }

  Status exec(const std::string& sql) {
    Res r(PQexec(pg_, sql.c_str()));
    ExecStatusType s = PQresultStatus(r.get());
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
      return Status::io("postgresql: " + sql.substr(0, 40) + ": " + PQerrorMessage(pg_));
    return Status::ok();
  }

  Result<Res> run(const char* name, std::initializer_list<Param> params) {
    const char* values[8];
    int lengths[8];
    int formats[8];
    int n = 0;
    for (const Param& p : params) {
      values[n] = p.null ? nullptr : p.bytes.data();
      lengths[n] = static_cast<int>(p.bytes.size());
      formats[n] = 1;
      ++n;
    }
    Res r(PQexecPrepared(pg_, name, n, values, lengths, formats, 1));
    ExecStatusType s = PQresultStatus(r.get());
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
      std::string m = "postgresql: " + std::string(name) + ": " + PQerrorMessage(pg_);
      const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
      if (state && std::string_view(state).starts_with("23")) return Status::precondition(m);
      if (state && std::string_view(state) == "XX001") return Status::corruption(m);
      return Status::io(m);
    }
    return r;
  }

  // One statement of a pipeline: owned binary parameters (nullopt = SQL NULL).
  struct Query {
    const char* name;
    std::vector<std::optional<std::string>> params;
  };

  // Sends the queries back to back and reads all results: one round trip instead of one per
  // query. Chunked so neither side's socket buffer can fill while the other waits.
  Result<std::vector<Res>> pipeline(const std::vector<Query>& queries) {
    constexpr size_t kChunk = 256;
    std::vector<Res> out;
    out.reserve(queries.size());
    for (size_t base = 0; base < queries.size(); base += kChunk) {
      const size_t end = std::min(queries.size(), base + kChunk);
      if (PQenterPipelineMode(pg_) != 1) return Status::io("postgresql: pipeline: " + std::string(PQerrorMessage(pg_)));
      Status st;
      size_t sent = 0;
      for (size_t i = base; i < end; ++i) {
        const Query& q = queries[i];
        const char* values[8];
        int lengths[8];
        int formats[8];
        int n = 0;
        for (const auto& p : q.params) {
          values[n] = p ? p->data() : nullptr;
          lengths[n] = p ? static_cast<int>(p->size()) : 0;
          formats[n] = 1;
          ++n;
        }
        if (PQsendQueryPrepared(pg_, q.name, n, values, lengths, formats, 1) != 1) {
          st = Status::io("postgresql: send " + std::string(q.name) + ": " + PQerrorMessage(pg_));
          break;
        }
        ++sent;
      }
      if (PQpipelineSync(pg_) != 1 && st.is_ok()) st = Status::io("postgresql: sync: " + std::string(PQerrorMessage(pg_)));
      for (size_t i = 0; i < sent; ++i) {
        Res r(PQgetResult(pg_));
        ExecStatusType rs = PQresultStatus(r.get());
        if (st.is_ok() && rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK) {
          const char* msg = PQresultErrorMessage(r.get());
          st = Status::io("postgresql: " + std::string(queries[base + i].name) + " (pipelined): " + (msg ? msg : ""));
        }
        while (PGresult* extra = PQgetResult(pg_)) PQclear(extra);  // the NULL that ends each query
        out.push_back(std::move(r));
      }
      for (;;) {  // up to and including the sync point
        PGresult* r = PQgetResult(pg_);
        if (!r) {
          if (PQstatus(pg_) != CONNECTION_OK) return Status::io("postgresql: connection lost in a pipeline");
          continue;
        }
        bool sync = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
        PQclear(r);
        if (sync) break;
      }
      if (PQexitPipelineMode(pg_) != 1 && st.is_ok()) st = Status::io("postgresql: exit pipeline: " + std::string(PQerrorMessage(pg_)));
      COVENANT_RETURN_IF_ERROR(st);
    }
    return out;
  }

  Result<std::optional<std::string>> get(Table table, const Id128Bytes& id) {
    auto r = run(table == Table::kAccounts ? "get_account" : "get_transfer", {view(id)});
    if (!r.is_ok()) return r.status();
    if (r->rows() == 0) return std::optional<std::string>();
    return std::optional<std::string>(std::string(r->bytes(0, 0)));
  }

  static Status read_row(const Res& r, int i, JournalRow* row) {
    row->seq = r.u64(i, 0);
    row->entry = std::string(r.bytes(i, 2));
    if (!r.fixed(i, 1, &row->key) || !r.fixed(i, 3, &row->entry_hash) || !r.fixed(i, 4, &row->chain))
      return Status::corruption("journal row seq=" + std::to_string(row->seq) + ": a hash column has the wrong size");
    return Status::ok();
  }

  Result<std::optional<JournalRow>> journal_one(const char* name, std::initializer_list<Param> params) {
    auto r = run(name, params);
    if (!r.is_ok()) return r.status();
    if (r->rows() == 0) return std::optional<JournalRow>();
    JournalRow row;
    COVENANT_RETURN_IF_ERROR(read_row(*r, 0, &row));
    return std::optional<JournalRow>(std::move(row));
  }

  Result<std::optional<std::string>> kv_get(const std::string& key) {
    auto r = run("kv_get", {key});
    if (!r.is_ok()) return r.status();
    if (r->rows() == 0) return std::optional<std::string>();
    return std::optional<std::string>(std::string(r->bytes(0, 0)));
  }

  // Rows with key >= lower that start with prefix, at most limit.
  Result<std::vector<KvRow>> kv_scan(const std::string& prefix, const std::string& lower, size_t limit) {
    std::vector<KvRow> out;
    if (limit == 0) return out;
    const std::string n = be64(std::min<uint64_t>(limit, INT64_MAX));
    const std::optional<std::string> upper = kv_prefix_successor(prefix);
    auto r = upper ? run("kv_scan_bounded", {lower, *upper, n}) : run("kv_scan_from", {lower, n});
    if (!r.is_ok()) return r.status();
    out.reserve(static_cast<size_t>(r->rows()));
    for (int i = 0; i < r->rows(); ++i) out.emplace_back(std::string(r->bytes(i, 0)), std::string(r->bytes(i, 1)));
    return out;
  }

  static uint32_t fnv1a(const std::string& s) {
    uint32_t h = 2166136261u;
    for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
    return h;
  }

  PGconn* pg_ = nullptr;
  std::string url_, schema_;
  int32_t lock_objid_ = 0;
};

class PgTxn final : public StorageTxn {
 public:
  PgTxn(Conn& c, std::unique_lock<std::mutex> lock) : c_(c), lock_(std::move(lock)) {}
  ~PgTxn() override {
    if (!done_) (void)c_.exec("ROLLBACK");
  }

  Status begin() {
    COVENANT_RETURN_IF_ERROR(c_.exec("BEGIN"));
    auto r = c_.run("lock", {be32(static_cast<uint32_t>(kAdvisoryLockClass)), be32(static_cast<uint32_t>(c_.lock_objid_))});
    return r.status();
  }

  Result<std::optional<std::string>> get(Table table, const Id128Bytes& id) override {
    COVENANT_RETURN_IF_ERROR(flush_writes());
    return c_.get(table, id);
  }

  Result<std::vector<std::optional<std::string>>> get_many(Table table, const std::vector<Id128Bytes>& ids) override {
    COVENANT_RETURN_IF_ERROR(flush_writes());
    std::vector<std::optional<std::string>> elems;
    elems.reserve(ids.size());
    for (const Id128Bytes& id : ids) elems.emplace_back(std::string(view(id)));
    auto r = c_.run(table == Table::kAccounts ? "get_accounts_any" : "get_transfers_any", {pg_array(kByteaOid, elems)});
    if (!r.is_ok()) return r.status();
    std::map<Id128Bytes, std::string> found;
    for (int i = 0; i < r->rows(); ++i) {
      Id128Bytes id;
      if (!r->fixed(i, 0, &id)) return Status::corruption(std::string(table_name(table)) + ": an id has the wrong size");
      found[id] = std::string(r->bytes(i, 1));
    }
    std::vector<std::optional<std::string>> out(ids.size());
    for (size_t i = 0; i < ids.size(); ++i)
      if (auto it = found.find(ids[i]); it != found.end()) out[i] = it->second;
    return out;
  }

  Result<std::vector<std::optional<JournalRow>>> journal_by_keys(const std::vector<Hash32>& keys) override {
    COVENANT_RETURN_IF_ERROR(flush_writes());
    std::vector<std::optional<std::string>> elems;
    elems.reserve(keys.size());
    for (const Hash32& k : keys) elems.emplace_back(std::string(view(k)));
    auto r = c_.run("journal_by_key_any", {pg_array(kByteaOid, elems)});
    if (!r.is_ok()) return r.status();
    std::map<Hash32, JournalRow> found;
    for (int i = 0; i < r->rows(); ++i) {
      JournalRow row;
      COVENANT_RETURN_IF_ERROR(Conn::read_row(*r, i, &row));
      found[row.key] = std::move(row);
    }
    std::vector<std::optional<JournalRow>> out(keys.size());
    for (size_t i = 0; i < keys.size(); ++i)
      if (auto it = found.find(keys[i]); it != found.end()) out[i] = it->second;
    return out;
  }

  Status put(Table table, const Id128Bytes& id, std::string_view record, std::optional<uint64_t> deadline_ns) override {
    // Last write per id wins: one statement must not touch a row twice.
    if (table == Table::kAccounts) accounts_[id] = std::string(record);
    else transfers_[id] = {std::string(record), deadline_ns};
    return Status::ok();
  }

  Result<std::vector<Id128Bytes>> due_holds(uint64_t now_ns, size_t limit) override {
    COVENANT_RETURN_IF_ERROR(flush_writes());
    auto r = c_.run("due_holds", {be64(now_ns), be64(limit)});
    if (!r.is_ok()) return r.status();
    std::vector<Id128Bytes> out(static_cast<size_t>(r->rows()));
    for (int i = 0; i < r->rows(); ++i)
      if (!r->fixed(i, 0, &out[static_cast<size_t>(i)])) return Status::corruption("transfers: an id has the wrong size");
    return out;
  }

  Result<std::optional<JournalRow>> journal_last() override {
    COVENANT_RETURN_IF_ERROR(flush_writes());
    return c_.journal_one("journal_last", {});
  }
  Result<std::optional<JournalRow>> journal_by_key(const Hash32& key) override {
    COVENANT_RETURN_IF_ERROR(flush_writes());
    return c_.journal_one("journal_by_key", {view(key)});
  }
  Status journal_append(const JournalRow& r) override {
    journal_.push_back(r);
    return Status::ok();
  }

  Result<std::optional<std::string>> kv_get(const std::string& key) override {
    COVENANT_RETURN_IF_ERROR(flush_writes());
    return c_.kv_get(key);
  }

  Result<std::vector<std::optional<std::string>>> kv_get_many(const std::vector<std::string>& keys) override {
    COVENANT_RETURN_IF_ERROR(flush_writes());
    std::vector<std::optional<std::string>> elems(keys.begin(), keys.end());
    auto r = c_.run("kv_get_any", {pg_array(kByteaOid, elems)});
    if (!r.is_ok()) return r.status();
    std::map<std::string, std::string, std::less<>> found;
    for (int i = 0; i < r->rows(); ++i) found.emplace(std::string(r->bytes(i, 0)), std::string(r->bytes(i, 1)));
    std::vector<std::optional<std::string>> out(keys.size());
    for (size_t i = 0; i < keys.size(); ++i)
      if (auto it = found.find(keys[i]); it != found.end()) out[i] = it->second;
    return out;
  }

  Status kv_put(const std::string& key, std::optional<std::string> value) override {
    kv_[key] = std::move(value);  // last write per key wins
    return Status::ok();
  }

  Result<std::vector<KvRow>> kv_scan(const std::string& prefix, size_t limit) override {
    COVENANT_RETURN_IF_ERROR(flush_writes());
    return c_.kv_scan(prefix, prefix, limit);
  }

  Status commit() override {
    Status flushed = flush_writes();
    if (!flushed.is_ok()) return flushed;  // the destructor rolls back
    Status st = c_.exec("COMMIT");
    done_ = true;  // a failed COMMIT has ended the transaction as well
    return st;
  }

 private:
  // Sends the deferred writes: one statement per table, pipelined into one round trip.
  Status flush_writes() {
    std::vector<Conn::Query> qs;
    if (!accounts_.empty()) {
      std::vector<std::optional<std::string>> ids, recs;
      for (auto& [id, rec] : accounts_) {
        ids.emplace_back(std::string(view(id)));
        recs.emplace_back(std::move(rec));
      }
      qs.push_back({"upsert_accounts", {pg_array(kByteaOid, ids), pg_array(kByteaOid, recs)}});
    }
    if (!transfers_.empty()) {
      std::vector<std::optional<std::string>> ids, recs, deadlines;
      for (auto& [id, v] : transfers_) {
        ids.emplace_back(std::string(view(id)));
        recs.emplace_back(std::move(v.first));
        deadlines.emplace_back(v.second ? std::optional<std::string>(be64(*v.second)) : std::nullopt);
      }
      qs.push_back({"upsert_transfers",
                    {pg_array(kByteaOid, ids), pg_array(kByteaOid, recs), pg_array(kInt8Oid, deadlines)}});
    }
    if (!journal_.empty()) {
      std::vector<std::optional<std::string>> seqs, keys, entries, hashes, chains;
      for (const JournalRow& r : journal_) {
        seqs.emplace_back(be64(r.seq));
        keys.emplace_back(std::string(view(r.key)));
        entries.emplace_back(r.entry);
        hashes.emplace_back(std::string(view(r.entry_hash)));
        chains.emplace_back(std::string(view(r.chain)));
      }
      qs.push_back({"append_journal",
                    {pg_array(kInt8Oid, seqs), pg_array(kByteaOid, keys), pg_array(kByteaOid, entries),
                     pg_array(kByteaOid, hashes), pg_array(kByteaOid, chains)}});
    }
    if (!kv_.empty()) {
      std::vector<std::optional<std::string>> put_keys, values, delete_keys;
      for (auto& [k, v] : kv_) {
        if (v) {
          put_keys.emplace_back(k);
          values.emplace_back(std::move(v));
        } else {
          delete_keys.emplace_back(k);
        }
      }
      if (!put_keys.empty()) qs.push_back({"kv_upsert", {pg_array(kByteaOid, put_keys), pg_array(kByteaOid, values)}});
      if (!delete_keys.empty()) qs.push_back({"kv_delete", {pg_array(kByteaOid, delete_keys)}});
    }
    accounts_.clear();
    transfers_.clear();
    journal_.clear();
    kv_.clear();
    if (qs.empty()) return Status::ok();
    return c_.pipeline(qs).status();
  }

  Conn& c_;
  std::unique_lock<std::mutex> lock_;
  bool done_ = false;
  // Deferred writes, sent by flush_writes().
  std::map<Id128Bytes, std::string> accounts_;
  std::map<Id128Bytes, std::pair<std::string, std::optional<uint64_t>>> transfers_;
  std::vector<JournalRow> journal_;
  std::map<std::string, std::optional<std::string>> kv_;  // nullopt = delete
};

class PgStorage final : public Storage {
 public:
  Status open(const std::string& url, const StorageOptions& options) {
    const std::string& s = options.pg_schema;
    bool ok = !s.empty() && s.size() <= 48;
    for (char c : s) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
    if (!ok) return Status::invalid("postgresql: schema name must be 1-48 of [a-z0-9_]: '" + s + "'");
    COVENANT_RETURN_IF_ERROR(writer_.open(url, s));
    return reader_.open(url, s);
  }

  Result<std::unique_ptr<StorageTxn>> begin_write() override {
    std::unique_lock lock(write_mu_);
    COVENANT_RETURN_IF_ERROR(writer_.ensure());
    auto txn = std::make_unique<PgTxn>(writer_, std::move(lock));
    COVENANT_RETURN_IF_ERROR(txn->begin());
    return std::unique_ptr<StorageTxn>(std::move(txn));
  }

  Result<std::optional<std::string>> get(Table table, const Id128Bytes& id) override {
    std::lock_guard lock(read_mu_);
    COVENANT_RETURN_IF_ERROR(reader_.ensure());
    return reader_.get(table, id);
  }

  Result<std::vector<KeyedRecord>> scan(Table table, const std::optional<Id128Bytes>& after, size_t limit) override {
    std::lock_guard lock(read_mu_);
    COVENANT_RETURN_IF_ERROR(reader_.ensure());
    bool acc = table == Table::kAccounts;
    auto r = after ? reader_.run(acc ? "scan_accounts_after" : "scan_transfers_after", {view(*after), be64(limit)})
                   : reader_.run(acc ? "scan_accounts_first" : "scan_transfers_first", {be64(limit)});
    if (!r.is_ok()) return r.status();
    std::vector<KeyedRecord> out(static_cast<size_t>(r->rows()));
    for (int i = 0; i < r->rows(); ++i) {
      auto& k = out[static_cast<size_t>(i)];
      if (!r->fixed(i, 0, &k.id)) return Status::corruption(std::string(table_name(table)) + ": an id has the wrong size");
      k.record = std::string(r->bytes(i, 1));
    }
    return out;
  }

  Result<std::optional<JournalRow>> journal_at(uint64_t seq) override {
    std::lock_guard lock(read_mu_);
    COVENANT_RETURN_IF_ERROR(reader_.ensure());
    return reader_.journal_one("journal_at", {be64(seq)});
  }

  Result<std::optional<JournalRow>> journal_by_key(const Hash32& key) override {
    std::lock_guard lock(read_mu_);
    COVENANT_RETURN_IF_ERROR(reader_.ensure());
    return reader_.journal_one("journal_by_key", {view(key)});
  }

  Result<std::vector<JournalRow>> journal_scan(uint64_t from_seq, size_t limit) override {
    std::lock_guard lock(read_mu_);
    COVENANT_RETURN_IF_ERROR(reader_.ensure());
    auto r = reader_.run("journal_scan", {be64(from_seq), be64(limit)});
    if (!r.is_ok()) return r.status();
    std::vector<JournalRow> out(static_cast<size_t>(r->rows()));
    for (int i = 0; i < r->rows(); ++i) COVENANT_RETURN_IF_ERROR(Conn::read_row(*r, i, &out[static_cast<size_t>(i)]));
    return out;
  }

  Result<uint64_t> journal_count() override {
    std::lock_guard lock(read_mu_);
    COVENANT_RETURN_IF_ERROR(reader_.ensure());
    auto r = reader_.run("journal_count", {});
    if (!r.is_ok()) return r.status();
    return r->u64(0, 0);
  }

  Result<std::optional<std::string>> kv_get(const std::string& key) override {
    std::lock_guard lock(read_mu_);
    COVENANT_RETURN_IF_ERROR(reader_.ensure());
    return reader_.kv_get(key);
  }

  Result<std::vector<KvRow>> kv_scan(const std::string& prefix, const std::string& after, size_t limit) override {
    std::lock_guard lock(read_mu_);
    COVENANT_RETURN_IF_ERROR(reader_.ensure());
    return reader_.kv_scan(prefix, kv_scan_lower_bound(prefix, after), limit);
  }

  Result<uint64_t> size_bytes() override {
    std::lock_guard lock(read_mu_);
    COVENANT_RETURN_IF_ERROR(reader_.ensure());
    auto r = reader_.run("size_bytes", {});
    if (!r.is_ok()) return r.status();
    return r->u64(0, 0);
  }

  const char* backend() const override { return "postgresql"; }

  Status TEST_flip_byte(Table table, const Id128Bytes& id, uint64_t row, size_t offset) override {
    std::lock_guard lock(write_mu_);
    if (table == Table::kJournal) {
      auto r = writer_.journal_one("journal_at", {be64(row)});
      if (!r.is_ok()) return r.status();
      if (!r.value()) return Status::not_found("journal row");
      JournalRow j = *r.value();
      if (offset < j.entry.size()) {
        j.entry[offset] ^= 1;
        return writer_.run("flip_journal_entry", {be64(row), j.entry}).status();
      }
      j.entry_hash[(offset - j.entry.size()) % 32] ^= 1;
      return writer_.run("flip_journal_hash", {be64(row), view(j.entry_hash)}).status();
    }
    auto r = writer_.get(table, id);
    if (!r.is_ok()) return r.status();
    if (!r.value() || offset >= r.value()->size()) return Status::not_found("record");
    std::string rec = *r.value();
    rec[offset] ^= 1;
    return writer_.run(table == Table::kAccounts ? "flip_account" : "flip_transfer", {view(id), rec}).status();
  }

 private:
  std::mutex write_mu_;
  Conn writer_;
  std::mutex read_mu_;
  Conn reader_;
};

}  // namespace

Result<std::unique_ptr<Storage>> open_postgres_storage(const std::string& url, const StorageOptions& options) {
  auto s = std::make_unique<PgStorage>();
  COVENANT_RETURN_IF_ERROR(s->open(url, options));
  return std::unique_ptr<Storage>(std::move(s));
}

}  // namespace covenant::ledger_internal
