// Backend constructors behind open_storage(). Internal: include covenant/storage.h instead.
#pragma once

#include <memory>
#include <string>

#include "covenant/storage.h"

namespace covenant::ledger_internal {

std::unique_ptr<Storage> open_memory_storage();
Result<std::unique_ptr<Storage>> open_sqlite_storage(const std::string& path, const StorageOptions& options);
Result<std::unique_ptr<Storage>> open_postgres_storage(const std::string& url, const StorageOptions& options);

// Page size of the scans the ledger runs (verify, all_*).
inline constexpr size_t kScanPageRecords = 4096;

}  // namespace covenant::ledger_internal
