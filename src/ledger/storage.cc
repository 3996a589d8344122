#include "covenant/storage.h"

#include "ledger/storage_internal.h"

namespace covenant {

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
