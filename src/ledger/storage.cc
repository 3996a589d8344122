#include "covenant/storage.h"

#include <algorithm>

#include "ledger/storage_internal.h"

namespace covenant {

Result<std::vector<std::optional<std::string>>> StorageTxn::get_many(Table table, const std::vector<Id128Bytes>& ids) {
  std::vector<std::optional<std::string>> out;
  out.reserve(ids.size());
  for (const Id128Bytes& id : ids) {
    auto r = get(table, id);
    if (!r.is_ok()) return r.status();
    out.push_back(std::move(r).value());
  }
  return out;
}

Result<std::vector<std::optional<JournalRow>>> StorageTxn::journal_by_keys(const std::vector<Hash32>& keys) {
  std::vector<std::optional<JournalRow>> out;
  out.reserve(keys.size());
  for (const Hash32& key : keys) {
    auto r = journal_by_key(key);
    if (!r.is_ok()) return r.status();
    out.push_back(std::move(r).value());
  }
  return out;
}

Result<std::vector<std::optional<std::string>>> StorageTxn::kv_get_many(const std::vector<std::string>& keys) {
  std::vector<std::optional<std::string>> out;
  out.reserve(keys.size());
  for (const std::string& key : keys) {
    auto r = kv_get(key);
    if (!r.is_ok()) return r.status();
    out.push_back(std::move(r).value());
  }
  return out;
}

std::optional<std::string> kv_prefix_successor(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty() && static_cast<uint8_t>(s.back()) == 0xff) s.pop_back();
  if (s.empty()) return std::nullopt;
  s.back() = static_cast<char>(static_cast<uint8_t>(s.back()) + 1);
  return s;
}

std::string kv_scan_lower_bound(const std::string& prefix, const std::string& after) {
  if (after.empty()) return prefix;
  std::string next = after;
  next.push_back('\0');  // the smallest string greater than after
  return std::max(prefix, next);  // std::string compares as unsigned bytes (memcmp)
}

bool is_postgres_location(std::string_view location) {
  return location.starts_with("postgresql://") || location.starts_with("postgres://");
}

Result<std::unique_ptr<Storage>> open_storage(const std::string& location, const StorageOptions& options) {
  if (location.empty()) return Status::invalid("ledger location is empty (a SQLite path or a postgresql:// URL)");
  if (location == "memory:") return ledger_internal::open_memory_storage();
  if (is_postgres_location(location)) return ledger_internal::open_postgres_storage(location, options);
  return ledger_internal::open_sqlite_storage(location, options);
}

}  // namespace covenant
