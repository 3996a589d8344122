#include "covenant/receipt_log.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>

namespace covenant {
namespace {

std::string errno_text() { return std::strerror(errno); }

Hash32 chain_next(const Hash32& prev, const Hash32& leaf) {
  uint8_t buf[65];
  buf[0] = 0x02;
  std::memcpy(buf + 1, prev.data(), 32);
  std::memcpy(buf + 33, leaf.data(), 32);
  Hash32 h;
  crypto_hash_sha256(h.data(), buf, sizeof buf);
  return h;
}

Status pread_all(int fd, uint8_t* buf, size_t n, uint64_t offset) {
  while (n > 0) {
    const ssize_t got = ::pread(fd, buf, n, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return Status::io("read failed at offset " + std::to_string(offset) + ": " + (got == 0 ? "end of file" : errno_text()));
    buf += got;
    n -= static_cast<size_t>(got);
    offset += static_cast<uint64_t>(got);
  }
  return Status::ok();
}

Status pwrite_all(int fd, const uint8_t* buf, size_t n, uint64_t offset) {
  while (n > 0) {
    const ssize_t put = ::pwrite(fd, buf, n, static_cast<off_t>(offset));
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) return Status::io("write failed at offset " + std::to_string(offset) + ": " + errno_text());
    buf += put;
    n -= static_cast<size_t>(put);
    offset += static_cast<uint64_t>(put);
  }
  return Status::ok();
}

}  // namespace

Result<std::unique_ptr<ReceiptLog>> ReceiptLog::open(const std::string& path, const LogOptions& options) {
  const int flags = O_RDWR | O_CLOEXEC | (options.create ? O_CREAT : 0);
  const int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) {
    if (errno == ENOENT) return Status::not_found("no log file at " + path);
    return Status::io("cannot open " + path + ": " + errno_text());
  }
  std::unique_ptr<ReceiptLog> log(new ReceiptLog(path, fd, options));
  COVENANT_RETURN_IF_ERROR(log->load());
  return log;
}

ReceiptLog::~ReceiptLog() {
  if (fd_ >= 0) ::close(fd_);
}

Status ReceiptLog::load() {
  struct stat sb;
  if (::fstat(fd_, &sb) != 0) return Status::io("cannot stat " + path_ + ": " + errno_text());
  const uint64_t file_size = static_cast<uint64_t>(sb.st_size);
  if (file_size == 0) {
    COVENANT_RETURN_IF_ERROR(pwrite_all(fd_, reinterpret_cast<const uint8_t*>(kLogMagic), kLogHeaderBytes, 0));
    end_offset_ = kLogHeaderBytes;
    return options_.sync_each_append ? sync() : Status::ok();
  }
  std::vector<uint8_t> data(file_size);
  COVENANT_RETURN_IF_ERROR(pread_all(fd_, data.data(), data.size(), 0));
  if (file_size < kLogHeaderBytes || std::memcmp(data.data(), kLogMagic, kLogHeaderBytes) != 0) {
    return Status::corruption(path_ + " at byte 0: not a Covenant log (bad magic)");
  }
  uint64_t pos = kLogHeaderBytes;
  Hash32 chain{};
  while (pos < file_size) {
    const uint64_t index = offsets_.size();
    auto where = [&](uint64_t at) {
      return path_ + ": record " + std::to_string(index) + " at byte " + std::to_string(at) + ": ";
    };
    if (file_size - pos < 4) return Status::corruption(where(pos) + "truncated length field (torn write?)");
    uint32_t len;
    std::memcpy(&len, data.data() + pos, 4);  // little-endian hosts only; asserted at build
    if (len > kLogEntryBytesMax) {
      return Status::corruption(where(pos) + "entry length " + std::to_string(len) + " exceeds the 64 KiB limit");
    }
    if (file_size - pos - 4 < uint64_t{len} + 32) {
      return Status::corruption(where(pos) + "record runs past the end of the file (torn write or bad length)");
    }
    const auto entry = std::span<const uint8_t>(data.data() + pos + 4, len);
    const Hash32 leaf = merkle_leaf_hash(entry);
    chain = chain_next(chain, leaf);
    if (std::memcmp(chain.data(), data.data() + pos + 4 + len, 32) != 0) {
      return Status::corruption(where(pos) + "hash chain mismatch: a byte of this record (or its length) was changed");
    }
    offsets_.push_back(pos);
    tree_.append_leaf_hash(leaf);
    last_id_ = sha256(entry);
    ids_.emplace(last_id_, index);
    pos += 4 + len + 32;
  }
  chain_ = chain;
  end_offset_ = pos;
  return Status::ok();
}

Status ReceiptLog::append(std::span<const uint8_t> entry, uint64_t* index) {
  static_assert(std::endian::native == std::endian::little, "the log format is little-endian");
  if (entry.size() > kLogEntryBytesMax) return Status::limit("log entry larger than 64 KiB");
  thread_local std::vector<uint8_t> rec;
  rec.resize(4 + entry.size() + 32);
  const uint32_t len = static_cast<uint32_t>(entry.size());
  std::memcpy(rec.data(), &len, 4);
  std::memcpy(rec.data() + 4, entry.data(), entry.size());
  const Hash32 leaf = merkle_leaf_hash(entry);
  const Hash32 chain = chain_next(chain_, leaf);
  std::memcpy(rec.data() + 4 + entry.size(), chain.data(), 32);
  COVENANT_RETURN_IF_ERROR(pwrite_all(fd_, rec.data(), rec.size(), end_offset_));
  if (options_.sync_each_append) COVENANT_RETURN_IF_ERROR(sync());
  const uint64_t i = offsets_.size();
  offsets_.push_back(end_offset_);
  end_offset_ += rec.size();
  chain_ = chain;
  tree_.append_leaf_hash(leaf);
  last_id_ = sha256(entry);
  ids_.emplace(last_id_, i);
  if (index) *index = i;
  return Status::ok();
}

Status ReceiptLog::sync() {
  if (::fdatasync(fd_) != 0) return Status::io("fdatasync " + path_ + ": " + errno_text());
  return Status::ok();
}

Result<std::vector<uint8_t>> ReceiptLog::read(uint64_t index) const {
  if (index >= size()) return Status::not_found("log has no entry " + std::to_string(index));
  const uint64_t off = offsets_[index];
  uint32_t len;
  COVENANT_RETURN_IF_ERROR(pread_all(fd_, reinterpret_cast<uint8_t*>(&len), 4, off));
  if (len > kLogEntryBytesMax) return Status::corruption(path_ + ": record " + std::to_string(index) + " at byte " + std::to_string(off) + ": length changed on disk");
  std::vector<uint8_t> entry(len);
  COVENANT_RETURN_IF_ERROR(pread_all(fd_, entry.data(), len, off + 4));
  if (merkle_leaf_hash(entry) != tree_.leaf_hash(index)) {
    return Status::corruption(path_ + ": record " + std::to_string(index) + " at byte " + std::to_string(off) +
                              ": changed on disk since it was opened");
  }
  return entry;
}

Result<uint64_t> ReceiptLog::find(const Hash32& id) const {
  auto it = ids_.find(id);
  if (it == ids_.end()) return Status::not_found("no receipt with id " + to_hex(id) + " in " + path_);
  return it->second;
}

}  // namespace covenant
