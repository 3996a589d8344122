// ReceiptLog: an append-only file of receipts (COSE_Sign1 bytes) with a
// per-record hash chain, the RFC 9162 Merkle tree over its entries, and a
// receipt-id index. A stand-in store until src/ledger's SQLite/PostgreSQL
// backends carry receipts; the Merkle math (merkle.h) does not depend on it.
// Thread-safety: not thread-safe; one writer process per file.
// Ownership: open() returns a unique_ptr the caller owns; it owns the fd.
//
// File format v1 (docs/merkle-log.md "Log file"):
//   header  : 8 bytes "CVNLOG01"
//   record i: u32 little-endian entry length | entry | chain_i (32 bytes)
//   chain_i = SHA-256(0x02 || chain_{i-1} || leaf_hash_i), chain_{-1} = 32 zero bytes,
//   leaf_hash_i = SHA-256(0x00 || entry) (the RFC 9162 leaf).
// open() re-walks every record; any flipped, missing or extra byte is
// kCorruption naming the record index and its byte offset.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "covenant/merkle.h"
#include "covenant/receipt.h"

namespace covenant {

inline constexpr char kLogMagic[8] = {'C', 'V', 'N', 'L', 'O', 'G', '0', '1'};
inline constexpr size_t kLogHeaderBytes = sizeof kLogMagic;
inline constexpr size_t kLogRecordOverheadBytes = 4 + 32;  // length + chain hash
inline constexpr size_t kLogEntryBytesMax = kReceiptSizeBytesMax;

struct LogOptions {
  // fdatasync after every append: durable before acknowledged. Off only for
  // bulk tools and benchmarks, which then call sync() themselves.
  bool sync_each_append = true;
  // Create the file when it does not exist.
  bool create = true;
};

class ReceiptLog {
 public:
  static Result<std::unique_ptr<ReceiptLog>> open(const std::string& path, const LogOptions& options = {});
  ~ReceiptLog();
  ReceiptLog(const ReceiptLog&) = delete;
  ReceiptLog& operator=(const ReceiptLog&) = delete;

  // Appends one entry (a receipt's COSE_Sign1 bytes). *index gets its position.
  Status append(std::span<const uint8_t> entry, uint64_t* index = nullptr);
  Status sync();

  uint64_t size() const { return tree_.size(); }
  // Reads entry `index` back from the file and checks it against its leaf hash.
  Result<std::vector<uint8_t>> read(uint64_t index) const;
  // Index of the entry whose SHA-256 (receipt id) is `id`.
  Result<uint64_t> find(const Hash32& id) const;
  const MerkleTree& tree() const { return tree_; }
  // Receipt id of the last entry; zeros when empty (prev hash of a first receipt).
  const Hash32& last_receipt_id() const { return last_id_; }
  // Byte offset of record `index` (its length field). REQUIRES: index < size().
  uint64_t record_offset(uint64_t index) const { return offsets_[index]; }

 private:
  struct IdHash {
    size_t operator()(const Hash32& h) const {
      size_t v;
      static_assert(sizeof v <= 32);
      __builtin_memcpy(&v, h.data(), sizeof v);
      return v;
    }
  };
  ReceiptLog(std::string path, int fd, LogOptions options) : path_(std::move(path)), fd_(fd), options_(options) {}
  Status load();

  std::string path_;
  int fd_ = -1;
  LogOptions options_;
  MerkleTree tree_;
  std::vector<uint64_t> offsets_;
  std::unordered_map<Hash32, uint64_t, IdHash> ids_;
  Hash32 chain_{};
  Hash32 last_id_{};
  uint64_t end_offset_ = 0;
};

}  // namespace covenant
