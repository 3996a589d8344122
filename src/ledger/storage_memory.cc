// The in-memory backend: maps behind a mutex. Not durable; for tests and the CLI's "memory:".
#include <cstdint>
#include <map>
#include <mutex>

#include "ledger/storage_internal.h"

namespace covenant::ledger_internal {

namespace {

struct MemoryState {
  std::mutex writer;  // held by the one live write transaction
  std::mutex mu;      // guards everything below
  std::map<Id128Bytes, std::string> tables[2];
  std::map<Id128Bytes, uint64_t> deadlines;  // live holds
  std::vector<JournalRow> journal;           // journal[i].seq == i + 1
  std::map<Hash32, uint64_t> journal_keys;
  std::map<std::string, std::string> kv;  // std::string orders as unsigned bytes (memcmp)
};

// The rows of `m` with key >= lower that start with prefix, at most limit.
std::vector<KvRow> scan_kv(const std::map<std::string, std::string>& m, const std::string& prefix,
                           const std::string& lower, size_t limit) {
  std::vector<KvRow> out;
  for (auto it = m.lower_bound(lower); it != m.end() && out.size() < limit && it->first.starts_with(prefix); ++it)
    out.emplace_back(it->first, it->second);
  return out;
}

int index_of(Table t) { return t == Table::kAccounts ? 0 : 1; }

class MemoryTxn final : public StorageTxn {
 public:
  explicit MemoryTxn(MemoryState& s) : s_(s), writer_(s.writer) {}

  Result<std::optional<std::string>> get(Table table, const Id128Bytes& id) override {
    auto& staged = staged_[index_of(table)];
    if (auto it = staged.find(id); it != staged.end()) return std::optional<std::string>(it->second);
    std::lock_guard lock(s_.mu);
    auto& m = s_.tables[index_of(table)];
    auto it = m.find(id);
    if (it == m.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }

  Status put(Table table, const Id128Bytes& id, std::string_view record, std::optional<uint64_t> deadline_ns) override {
    staged_[index_of(table)][id] = std::string(record);
    if (table == Table::kTransfers) deadlines_[id] = deadline_ns;
    return Status::ok();
  }

  Result<std::vector<Id128Bytes>> due_holds(uint64_t now_ns, size_t limit) override {
    std::multimap<uint64_t, Id128Bytes> due;
    {
      std::lock_guard lock(s_.mu);
      for (auto& [id, d] : s_.deadlines)
        if (d <= now_ns && !deadlines_.count(id)) due.emplace(d, id);
    }
    for (auto& [id, d] : deadlines_)
      if (d && *d <= now_ns) due.emplace(*d, id);
    std::vector<Id128Bytes> out;
    for (auto& [d, id] : due) {
      if (out.size() >= limit) break;
      out.push_back(id);
    }
    return out;
  }

  Result<std::optional<JournalRow>> journal_last() override {
    if (!journal_.empty()) return std::optional<JournalRow>(journal_.back());
    std::lock_guard lock(s_.mu);
    if (s_.journal.empty()) return std::optional<JournalRow>();
    return std::optional<JournalRow>(s_.journal.back());
  }

  Result<std::optional<JournalRow>> journal_by_key(const Hash32& key) override {
    for (auto& r : journal_)
      if (r.key == key) return std::optional<JournalRow>(r);
    std::lock_guard lock(s_.mu);
    auto it = s_.journal_keys.find(key);
    if (it == s_.journal_keys.end()) return std::optional<JournalRow>();
    return std::optional<JournalRow>(s_.journal[it->second - 1]);
  }

  Status journal_append(const JournalRow& row) override {
    journal_.push_back(row);
    return Status::ok();
  }

  Result<std::optional<std::string>> kv_get(const std::string& key) override {
    if (auto it = kv_.find(key); it != kv_.end()) return it->second;
    std::lock_guard lock(s_.mu);
    auto it = s_.kv.find(key);
    if (it == s_.kv.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }

  Status kv_put(const std::string& key, std::optional<std::string> value) override {
    kv_[key] = std::move(value);
    return Status::ok();
  }

  Result<std::vector<KvRow>> kv_scan(const std::string& prefix, size_t limit) override {
    // Committed rows, enough of them that the staged deletes cannot leave fewer than limit.
    size_t deletes = 0;
    for (auto it = kv_.lower_bound(prefix); it != kv_.end() && it->first.starts_with(prefix); ++it)
      deletes += it->second ? 0 : 1;
    std::map<std::string, std::string> merged;
    {
      std::lock_guard lock(s_.mu);
      const size_t want = limit > SIZE_MAX - deletes ? SIZE_MAX : limit + deletes;
      for (auto& [k, v] : scan_kv(s_.kv, prefix, prefix, want)) merged.emplace(std::move(k), std::move(v));
    }
    for (auto it = kv_.lower_bound(prefix); it != kv_.end() && it->first.starts_with(prefix); ++it) {
      if (it->second) merged[it->first] = *it->second;
      else merged.erase(it->first);
    }
    std::vector<KvRow> out;
    for (auto& [k, v] : merged) {
      if (out.size() >= limit) break;
      out.emplace_back(k, v);
    }
    return out;
  }

  Status commit() override {
    std::lock_guard lock(s_.mu);
    for (int t = 0; t < 2; ++t)
      for (auto& [id, rec] : staged_[t]) s_.tables[t][id] = std::move(rec);
    for (auto& [id, d] : deadlines_) {
      if (d) s_.deadlines[id] = *d;
      else s_.deadlines.erase(id);
    }
    for (auto& r : journal_) {
      if (r.seq != s_.journal.size() + 1) return Status::internal("journal seq gap in memory backend");
      s_.journal_keys[r.key] = r.seq;
      s_.journal.push_back(std::move(r));
    }
    for (auto& [k, v] : kv_) {
      if (v) s_.kv[k] = std::move(*v);
      else s_.kv.erase(k);
    }
    kv_.clear();
    staged_[0].clear();
    staged_[1].clear();
    deadlines_.clear();
    journal_.clear();
    return Status::ok();
  }

 private:
  MemoryState& s_;
  std::lock_guard<std::mutex> writer_;
  std::map<Id128Bytes, std::string> staged_[2];
  std::map<Id128Bytes, std::optional<uint64_t>> deadlines_;
  std::vector<JournalRow> journal_;
  std::map<std::string, std::optional<std::string>> kv_;  // staged: nullopt = delete
};

class MemoryStorage final : public Storage {
 public:
  Result<std::unique_ptr<StorageTxn>> begin_write() override {
    return std::unique_ptr<StorageTxn>(std::make_unique<MemoryTxn>(s_));
  }

  Result<std::optional<std::string>> get(Table table, const Id128Bytes& id) override {
    std::lock_guard lock(s_.mu);
    auto& m = s_.tables[index_of(table)];
    auto it = m.find(id);
    if (it == m.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }

  Result<std::vector<KeyedRecord>> scan(Table table, const std::optional<Id128Bytes>& after, size_t limit) override {
    std::lock_guard lock(s_.mu);
    auto& m = s_.tables[index_of(table)];
    auto it = after ? m.upper_bound(*after) : m.begin();
    std::vector<KeyedRecord> out;
    for (; it != m.end() && out.size() < limit; ++it) out.push_back({it->first, it->second});
    return out;
  }

  Result<std::optional<JournalRow>> journal_at(uint64_t seq) override {
    std::lock_guard lock(s_.mu);
    if (seq == 0 || seq > s_.journal.size()) return std::optional<JournalRow>();
    return std::optional<JournalRow>(s_.journal[seq - 1]);
  }

  Result<std::optional<JournalRow>> journal_by_key(const Hash32& key) override {
    std::lock_guard lock(s_.mu);
    auto it = s_.journal_keys.find(key);
    if (it == s_.journal_keys.end()) return std::optional<JournalRow>();
    return std::optional<JournalRow>(s_.journal[it->second - 1]);
  }

  Result<std::vector<JournalRow>> journal_scan(uint64_t from_seq, size_t limit) override {
    std::lock_guard lock(s_.mu);
    std::vector<JournalRow> out;
    for (uint64_t s = std::max<uint64_t>(from_seq, 1); s <= s_.journal.size() && out.size() < limit; ++s)
      out.push_back(s_.journal[s - 1]);
    return out;
  }

  Result<uint64_t> journal_count() override {
    std::lock_guard lock(s_.mu);
    return static_cast<uint64_t>(s_.journal.size());
  }

  Result<std::optional<std::string>> kv_get(const std::string& key) override {
    std::lock_guard lock(s_.mu);
    auto it = s_.kv.find(key);
    if (it == s_.kv.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }

  Result<std::vector<KvRow>> kv_scan(const std::string& prefix, const std::string& after, size_t limit) override {
    std::lock_guard lock(s_.mu);
    return scan_kv(s_.kv, prefix, kv_scan_lower_bound(prefix, after), limit);
  }

  Result<uint64_t> size_bytes() override {
    std::lock_guard lock(s_.mu);
    uint64_t n = 0;
    for (auto& [k, v] : s_.kv) n += k.size() + v.size();
    for (auto& m : s_.tables)
      for (auto& [id, rec] : m) n += id.size() + rec.size();
    for (auto& r : s_.journal) n += 8 + 32 + r.entry.size() + 64;
    return n;
  }

  const char* backend() const override { return "memory"; }

  Status TEST_flip_byte(Table table, const Id128Bytes& id, uint64_t row, size_t offset) override {
    std::lock_guard lock(s_.mu);
    if (table == Table::kJournal) {
      if (row == 0 || row > s_.journal.size()) return Status::not_found("journal row");
      JournalRow& r = s_.journal[row - 1];
      if (offset < r.entry.size()) r.entry[offset] ^= 1;
      else r.entry_hash[(offset - r.entry.size()) % 32] ^= 1;
      return Status::ok();
    }
    auto& m = s_.tables[index_of(table)];
    auto it = m.find(id);
    if (it == m.end() || offset >= it->second.size()) return Status::not_found("record");
    it->second[offset] ^= 1;
    return Status::ok();
  }

 private:
  MemoryState s_;
};

}  // namespace

std::unique_ptr<Storage> open_memory_storage() { return std::make_unique<MemoryStorage>(); }

}  // namespace covenant::ledger_internal
