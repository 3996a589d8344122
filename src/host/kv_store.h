// Storage behind the kv capability: a flat, ordered byte-string map with
// atomic batch commits. Keys passed here are full keys (deployment and
// namespace prefix already applied by the capability; see capabilities.cc).
// Thread-safety: every method may be called from any thread (internally locked).
// Ownership: the factories return owning pointers.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "covenant/contract.h"
#include "covenant/status.h"

namespace covenant::host {

using KvBatch = std::vector<std::pair<std::string, std::optional<std::string>>>;  // value absent = delete

class KvStore {
 public:
  virtual ~KvStore() = default;
  virtual Result<std::optional<std::string>> get(const std::string& key) = 0;
  // Keys starting with prefix, in byte order, at most max.
  virtual Result<std::vector<std::string>> list(const std::string& prefix, size_t max) = 0;
  // Keys under a namespace prefix and the sum of their (key - prefix) + value
  // bytes. Kept as counters beside the data (updated by commit in the same
  // transaction), so this is O(1) after the first use of a prefix.
  virtual Result<KvUsage> usage(const std::string& prefix) = 0;
  // All or nothing. REQUIRES: every key of batch starts with prefix.
  virtual Status commit(const std::string& prefix, const KvBatch& batch) = 0;
};

std::unique_ptr<KvStore> make_memory_kv_store();
// Opens (creating if needed) a SQLite file with one table covenant_kv.
Result<std::unique_ptr<KvStore>> open_sqlite_kv_store(const std::string& path);

// The smallest string greater than every string starting with prefix, or
// nullopt if there is none (prefix empty or all 0xff).
std::optional<std::string> prefix_successor(std::string prefix);

}  // namespace covenant::host
