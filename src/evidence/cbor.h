// Deterministic CBOR (RFC 8949 §4.2.1 core deterministic encoding): a writer
// that can only produce preferred (shortest) heads, and a strict reader.
// Thread-safety: Writer and Reader are single-owner values; no shared state.
// Ownership: Writer appends to a caller-owned vector; Reader borrows its bytes.
//
// The profile is the one receipts need: unsigned/negative integers, byte and
// text strings, arrays, maps, tags, false/true/null. It refuses, with the byte
// offset in the message:
//  - indefinite lengths (additional info 31) and reserved info 28..30;
//  - any head longer than the shortest form of its argument;
//  - map keys not in strictly increasing bytewise order of their encodings
//    (this also refuses duplicate keys);
//  - floating point and simple values other than false/true/null (a
//    deterministic float encoding is a whole profile of its own; receipts
//    carry amounts as integers);
//  - text that is not UTF-8; lengths larger than the bytes that remain;
//  - nesting deeper than kCborDepthMax; bytes after the top-level item.
//
// Usage:
//   std::vector<uint8_t> buf;
//   cbor::Writer w(&buf);
//   w.map(1); w.uint(1); w.text("hi");
//   COVENANT_RETURN_IF_ERROR(cbor::validate(buf));
//   cbor::Reader r(buf); uint64_t n; COVENANT_RETURN_IF_ERROR(r.read_map(&n));
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "covenant/status.h"

namespace covenant::cbor {

// Nesting deeper than this is refused: receipts nest 3 levels; 16 leaves room
// for generic decision values while bounding the validator's recursion.
inline constexpr int kCborDepthMax = 16;

enum class Major : uint8_t {
  kUint = 0,
  kNint = 1,
  kBytes = 2,
  kText = 3,
  kArray = 4,
  kMap = 5,
  kTag = 6,
  kSimple = 7,
};

inline constexpr uint8_t kSimpleFalse = 0xf4;
inline constexpr uint8_t kSimpleTrue = 0xf5;
inline constexpr uint8_t kSimpleNull = 0xf6;

// Bytes a head with argument `arg` takes in preferred encoding.
constexpr size_t head_size(uint64_t arg) {
  return arg < 24 ? 1 : arg <= 0xff ? 2 : arg <= 0xffff ? 3 : arg <= 0xffffffffu ? 5 : 9;
}

// Appends deterministic CBOR to a vector. Map keys are the caller's job: write
// them in increasing order of their encodings (small uints ascending is that).
class Writer {
 public:
  explicit Writer(std::vector<uint8_t>* out) : out_(out) {}

  void head(Major major, uint64_t arg) {
    uint8_t b[9];
    const uint8_t m = static_cast<uint8_t>(static_cast<uint8_t>(major) << 5);
    size_t n;
    if (arg < 24) {
      b[0] = static_cast<uint8_t>(m | arg);
      n = 1;
    } else if (arg <= 0xff) {
      b[0] = m | 24;
      b[1] = static_cast<uint8_t>(arg);
      n = 2;
    } else if (arg <= 0xffff) {
      b[0] = m | 25;
      b[1] = static_cast<uint8_t>(arg >> 8);
      b[2] = static_cast<uint8_t>(arg);
      n = 3;
    } else if (arg <= 0xffffffffu) {
      b[0] = m | 26;
      for (int i = 0; i < 4; ++i) b[1 + i] = static_cast<uint8_t>(arg >> (24 - 8 * i));
      n = 5;
    } else {
      b[0] = m | 27;
      for (int i = 0; i < 8; ++i) b[1 + i] = static_cast<uint8_t>(arg >> (56 - 8 * i));
      n = 9;
    }
    append(b, n);
  }
  void uint(uint64_t v) { head(Major::kUint, v); }
  void int64(int64_t v) {
    if (v >= 0) head(Major::kUint, static_cast<uint64_t>(v));
    else head(Major::kNint, ~static_cast<uint64_t>(v));  // -1 - v
  }
  void bytes(std::span<const uint8_t> b) {
    head(Major::kBytes, b.size());
    append(b.data(), b.size());
  }
  void text(std::string_view s) {
    head(Major::kText, s.size());
    append(s.data(), s.size());
  }
  void array(uint64_t n) { head(Major::kArray, n); }
  void map(uint64_t n) { head(Major::kMap, n); }
  void tag(uint64_t t) { head(Major::kTag, t); }
  void boolean(bool v) { out_->push_back(v ? kSimpleTrue : kSimpleFalse); }
  void null() { out_->push_back(kSimpleNull); }
  // Appends one already-encoded item. REQUIRES: validate(item) is ok.
  void raw(std::span<const uint8_t> item) { append(item.data(), item.size()); }

 private:
  // resize + memcpy rather than insert: one growth check, and it avoids a
  // GCC 12 -Warray-bounds false positive in vector::insert.
  void append(const void* p, size_t n) {
    if (n == 0) return;
    const size_t old = out_->size();
    out_->resize(old + n);
    std::memcpy(out_->data() + old, p, n);
  }
  std::vector<uint8_t>* out_;
};

// Ok iff `data` is exactly one well-formed item in the deterministic profile
// above, with nothing after it. The message names the byte offset.
Status validate(std::span<const uint8_t> data);

// Pull reader. Every read checks the head is well-formed and shortest-form and
// that the item fits in the remaining bytes; it does not check map key order or
// UTF-8 (validate() does: run it first on untrusted input).
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> data) : data_(data) {}

  size_t offset() const { return pos_; }
  bool at_end() const { return pos_ == data_.size(); }

  // The major type of the next item, without consuming it.
  Status peek(Major* major) const;
  Status read_uint(uint64_t* v);
  Status read_int(int64_t* v);  // uint or nint that fits int64
  Status read_bytes(std::span<const uint8_t>* v);
  Status read_text(std::string_view* v);
  Status read_array(uint64_t* n);
  Status read_map(uint64_t* n);
  Status read_tag(uint64_t* tag);
  Status read_bool(bool* v);
  Status read_null();
  // Consumes one whole item (recursively) and returns its bytes.
  Status skip(std::span<const uint8_t>* item = nullptr);
  // An error at the current offset, for callers checking field shapes.
  Status error(std::string_view what) const;

 private:
  Status read_head(Major* major, uint64_t* arg);
  Status expect(Major want, uint64_t* arg);
  Status skip_depth(int depth);

  std::span<const uint8_t> data_;
  size_t pos_ = 0;
};

// RFC 8949 §8 diagnostic notation of one item (e.g. `{1: h'00ff', 2: "x"}`),
// for printing decisions and receipts. Validates first.
Result<std::string> diagnostic(std::span<const uint8_t> item);

}  // namespace covenant::cbor
