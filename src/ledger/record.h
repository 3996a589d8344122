// Record formats: how accounts and transfers are encoded into the opaque records the
// Storage keeps, each sealed with a checksum. Thread-safety: pure functions.
// Formats are documented in docs/ledger.md ("Record formats"); bump the version on change.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "covenant/ledger.h"

namespace covenant::ledger_internal {

inline constexpr uint8_t kRecordVersion = 1;
inline constexpr size_t kRecordChecksumBytes = 16;  // SHA-256 truncated: detects, not authenticates
inline constexpr size_t kAccountRecordBytes = 1 + 16 + 16 + 4 + 2 + 2 + 5 * 8 + kRecordChecksumBytes;
inline constexpr size_t kTransferRecordBytes =
    1 + 5 * 16 + 8 + 4 + 4 + 2 + 2 + 8 + 1 + 1 + kRecordChecksumBytes;
static_assert(kAccountRecordBytes == 97);
static_assert(kTransferRecordBytes == 127);

std::string encode_account(const Account& account);
// Checks size, version, checksum and that the record's id is `id`; the error names the row.
Result<Account> decode_account(const Id128Bytes& id, std::string_view record);

std::string encode_transfer(const Transfer& transfer);
Result<Transfer> decode_transfer(const Id128Bytes& id, std::string_view record);

// Checks a journal row on its own (entry_hash) and against its predecessor's chain.
Status check_journal_row(const JournalRow& row, const Hash32& prev_chain);

// Deadline of a live hold, or 0 when it never expires.
uint64_t hold_deadline_ns(const Transfer& hold);

}  // namespace covenant::ledger_internal
