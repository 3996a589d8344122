#include "covenant/receipt_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "evidence/test_util.h"

namespace covenant {
namespace {

SigningKey key() {
  std::array<uint8_t, 32> seed;
  seed.fill(3);
  return SigningKey::from_seed(seed);
}

// Appends `n` chained receipts; returns their COSE bytes.
std::vector<std::vector<uint8_t>> fill(ReceiptLog& log, int n) {
  std::vector<std::vector<uint8_t>> out;
  const SigningKey k = key();
  for (int i = 0; i < n; ++i) {
    Receipt r = testing::typical_receipt(static_cast<uint64_t>(i));
    r.prev_receipt_hash = log.last_receipt_id();
    std::vector<uint8_t> cose;
    EXPECT_TRUE(sign_receipt(r, k, &cose).is_ok());
    EXPECT_TRUE(log.append(cose).is_ok());
    out.push_back(cose);
  }
  return out;
}

void flip_byte(const std::string& path, uint64_t offset) {
  const int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  uint8_t b;
  ASSERT_EQ(::pread(fd, &b, 1, static_cast<off_t>(offset)), 1);
  b ^= 0x20;
  ASSERT_EQ(::pwrite(fd, &b, 1, static_cast<off_t>(offset)), 1);
  ::close(fd);
}

TEST(ReceiptLog, AppendReopenFindRead) {
  testing::TempDir tmp;
  const std::string path = tmp.path() + "/log";
  std::vector<std::vector<uint8_t>> receipts;
  Hash32 root;
  {
    auto log = ReceiptLog::open(path);
    ASSERT_TRUE(log.is_ok()) << log.status().to_string();
    receipts = fill(**log, 20);
    root = (*log)->tree().root();
  }
  auto log = ReceiptLog::open(path, {.create = false});
  ASSERT_TRUE(log.is_ok()) << log.status().to_string();
  EXPECT_EQ((*log)->size(), 20u);
  EXPECT_EQ((*log)->tree().root(), root);
  for (size_t i = 0; i < receipts.size(); ++i) {
    auto idx = (*log)->find(receipt_id(receipts[i]));
    ASSERT_TRUE(idx.is_ok());
    EXPECT_EQ(*idx, i);
    auto bytes = (*log)->read(i);
    ASSERT_TRUE(bytes.is_ok());
    EXPECT_EQ(*bytes, receipts[i]);
  }
  // The chain of previous-receipt hashes links each receipt to the one before.
  auto r5 = decode_receipt(receipts[5]);
  ASSERT_TRUE(r5.is_ok());
  EXPECT_EQ(r5->prev_receipt_hash, receipt_id(receipts[4]));
  EXPECT_EQ((*log)->find(Hash32{}).status().code(), Code::kNotFound);
}

TEST(ReceiptLog, MissingFileWithoutCreate) {
  testing::TempDir tmp;
  EXPECT_EQ(ReceiptLog::open(tmp.path() + "/nope", {.create = false}).status().code(), Code::kNotFound);
}

// A flipped byte anywhere in the file is reported as corruption naming the
// record and its offset; never silently used.
TEST(ReceiptLog, EveryFlippedByteIsDetectedWithItsRecord) {
  testing::TempDir tmp;
  const std::string path = tmp.path() + "/log";
  std::vector<uint64_t> offsets;
  {
    auto log = ReceiptLog::open(path, {.sync_each_append = false});
    ASSERT_TRUE(log.is_ok());
    fill(**log, 3);
    for (uint64_t i = 0; i < 3; ++i) offsets.push_back((*log)->record_offset(i));
  }
  const uint64_t size = std::filesystem::file_size(path);
  for (uint64_t off = 0; off < size; ++off) {
    flip_byte(path, off);
    auto log = ReceiptLog::open(path, {.create = false});
    ASSERT_FALSE(log.is_ok()) << "flip at " << off << " went unnoticed";
    EXPECT_EQ(log.status().code(), Code::kCorruption);
    if (off >= kLogHeaderBytes) {
      uint64_t rec = 0;
      while (rec + 1 < offsets.size() && offsets[rec + 1] <= off) ++rec;
      const std::string want = "record " + std::to_string(rec) + " at byte " + std::to_string(offsets[rec]);
      EXPECT_NE(log.status().message().find(want), std::string::npos) << off << ": " << log.status().message();
    }
    flip_byte(path, off);  // restore
  }
  EXPECT_TRUE(ReceiptLog::open(path).is_ok());
}

TEST(ReceiptLog, TornTailIsReported) {
  testing::TempDir tmp;
  const std::string path = tmp.path() + "/log";
  uint64_t last;
  {
    auto log = ReceiptLog::open(path);
    ASSERT_TRUE(log.is_ok());
    fill(**log, 2);
    last = (*log)->record_offset(1);
  }
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 10);
  auto log = ReceiptLog::open(path);
  ASSERT_FALSE(log.is_ok());
  EXPECT_NE(log.status().message().find("record 1 at byte " + std::to_string(last)), std::string::npos)
      << log.status().message();
}

}  // namespace
}  // namespace covenant
