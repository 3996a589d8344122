#include "evidence/cbor.h"

#include <algorithm>
#include <cstdio>

namespace covenant::cbor {
namespace {

Status error_at(size_t offset, std::string_view what) {
  std::string m = "cbor at byte " + std::to_string(offset) + ": ";
  m.append(what);
  return Status::invalid(std::move(m));
}

// RFC 3629 UTF-8: no overlongs, no surrogates, nothing above U+10FFFF.
bool valid_utf8(const uint8_t* s, size_t n, size_t* bad) {
  size_t i = 0;
  while (i < n) {
    const uint8_t c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      *bad = i;
      return false;
    }
    if (i + len > n) {
      *bad = i;
      return false;
    }
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xc0) != 0x80) {
        *bad = i;
        return false;
      }
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    const bool overlong = (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    if (overlong || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      *bad = i;
      return false;
    }
    i += len;
  }
  return true;
}

// Bytewise lexicographic order of encoded keys (RFC 8949 §4.2.1).
bool key_less(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end());
}

}  // namespace

Status Reader::error(std::string_view what) const { return error_at(pos_, what); }

Status Reader::read_head(Major* major, uint64_t* arg) {
  const size_t start = pos_;
  if (pos_ >= data_.size()) return error_at(start, "unexpected end of input");
  const uint8_t ib = data_[pos_];
  const uint8_t ai = ib & 31;
  *major = static_cast<Major>(ib >> 5);
  if (ai == 31) return error_at(start, "indefinite length (or break) is not deterministic CBOR");
  if (ai >= 28) return error_at(start, "reserved additional information " + std::to_string(ai));
  if (*major == Major::kSimple) {
    if (ib == kSimpleFalse || ib == kSimpleTrue || ib == kSimpleNull) {
      ++pos_;
      *arg = ai;
      return Status::ok();
    }
    if (ai >= 25) return error_at(start, "floating point is outside the receipt CBOR profile");
    return error_at(start, "simple value other than false/true/null");
  }
  uint64_t v = ai;
  if (ai < 24) {
    ++pos_;
  } else {
    const size_t n = size_t{1} << (ai - 24);  // 1, 2, 4, 8
    if (data_.size() - pos_ - 1 < n) return error_at(start, "truncated head");
    v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | data_[pos_ + 1 + i];
    if (head_size(v) != n + 1) {
      return error_at(start, "non-canonical head: argument " + std::to_string(v) + " encoded in " +
                                 std::to_string(n + 1) + " bytes");
    }
    pos_ += n + 1;
  }
  *arg = v;
  const size_t left = data_.size() - pos_;
  if ((*major == Major::kBytes || *major == Major::kText) && v > left) {
    pos_ = start;
    return error_at(start, "string length " + std::to_string(v) + " exceeds the " + std::to_string(left) +
                               " bytes that remain");
  }
  if ((*major == Major::kArray && v > left) || (*major == Major::kMap && v > left / 2)) {
    pos_ = start;
    return error_at(start, "item count " + std::to_string(v) + " cannot fit in the " + std::to_string(left) +
                               " bytes that remain");
  }
  return Status::ok();
}

Status Reader::peek(Major* major) const {
  if (pos_ >= data_.size()) return error_at(pos_, "unexpected end of input");
  *major = static_cast<Major>(data_[pos_] >> 5);
  return Status::ok();
}

static const char* major_name(Major m) {
  switch (m) {
    case Major::kUint: return "unsigned integer";
    case Major::kNint: return "negative integer";
    case Major::kBytes: return "byte string";
    case Major::kText: return "text string";
    case Major::kArray: return "array";
    case Major::kMap: return "map";
    case Major::kTag: return "tag";
    case Major::kSimple: return "simple value";
  }
  return "?";
}

Status Reader::expect(Major want, uint64_t* arg) {
  const size_t start = pos_;
  Major got;
  COVENANT_RETURN_IF_ERROR(read_head(&got, arg));
  if (got != want) {
    pos_ = start;
    return error_at(start, std::string("expected ") + major_name(want) + ", found " + major_name(got));
  }
  return Status::ok();
}

Status Reader::read_uint(uint64_t* v) { return expect(Major::kUint, v); }

Status Reader::read_int(int64_t* v) {
  const size_t start = pos_;
  Major m = Major::kUint;
  uint64_t arg;
  COVENANT_RETURN_IF_ERROR(read_head(&m, &arg));
  if ((m != Major::kUint && m != Major::kNint) || arg > static_cast<uint64_t>(INT64_MAX)) {
    pos_ = start;
    return error_at(start, "expected an integer that fits int64");
  }
  *v = m == Major::kUint ? static_cast<int64_t>(arg) : -1 - static_cast<int64_t>(arg);
  return Status::ok();
}

Status Reader::read_bytes(std::span<const uint8_t>* v) {
  uint64_t n;
  COVENANT_RETURN_IF_ERROR(expect(Major::kBytes, &n));
  *v = data_.subspan(pos_, n);
  pos_ += n;
  return Status::ok();
}

Status Reader::read_text(std::string_view* v) {
  uint64_t n;
  COVENANT_RETURN_IF_ERROR(expect(Major::kText, &n));
  *v = std::string_view(reinterpret_cast<const char*>(data_.data() + pos_), n);
  pos_ += n;
  return Status::ok();
}

Status Reader::read_array(uint64_t* n) { return expect(Major::kArray, n); }
Status Reader::read_map(uint64_t* n) { return expect(Major::kMap, n); }
Status Reader::read_tag(uint64_t* tag) { return expect(Major::kTag, tag); }

Status Reader::read_bool(bool* v) {
  if (pos_ < data_.size() && (data_[pos_] == kSimpleTrue || data_[pos_] == kSimpleFalse)) {
    *v = data_[pos_++] == kSimpleTrue;
    return Status::ok();
  }
  return error_at(pos_, "expected true or false");
}

Status Reader::read_null() {
  if (pos_ < data_.size() && data_[pos_] == kSimpleNull) {
    ++pos_;
    return Status::ok();
  }
  return error_at(pos_, "expected null");
}

Status Reader::skip_depth(int depth) {
  if (depth > kCborDepthMax) return error_at(pos_, "nesting deeper than " + std::to_string(kCborDepthMax));
  Major m = Major::kUint;
  uint64_t arg;
  COVENANT_RETURN_IF_ERROR(read_head(&m, &arg));
  switch (m) {
    case Major::kBytes:
    case Major::kText:
      pos_ += arg;
      return Status::ok();
    case Major::kArray:
      for (uint64_t i = 0; i < arg; ++i) COVENANT_RETURN_IF_ERROR(skip_depth(depth + 1));
      return Status::ok();
    case Major::kMap:
      for (uint64_t i = 0; i < 2 * arg; ++i) COVENANT_RETURN_IF_ERROR(skip_depth(depth + 1));
      return Status::ok();
    case Major::kTag:
      return skip_depth(depth + 1);
    default:
      return Status::ok();
  }
}

Status Reader::skip(std::span<const uint8_t>* item) {
  const size_t start = pos_;
  COVENANT_RETURN_IF_ERROR(skip_depth(0));
  if (item) *item = data_.subspan(start, pos_ - start);
  return Status::ok();
}

namespace {

// Recursive strict validation; `r` is positioned at the item.
Status validate_item(Reader& r, std::span<const uint8_t> data, int depth) {
  if (depth > kCborDepthMax) return r.error("nesting deeper than " + std::to_string(kCborDepthMax));
  Major m = Major::kUint;
  COVENANT_RETURN_IF_ERROR(r.peek(&m));
  const size_t start = r.offset();
  switch (m) {
    case Major::kUint:
    case Major::kNint: {
      std::span<const uint8_t> item;
      return r.skip(&item);
    }
    case Major::kBytes: {
      std::span<const uint8_t> b;
      return r.read_bytes(&b);
    }
    case Major::kText: {
      std::string_view s;
      COVENANT_RETURN_IF_ERROR(r.read_text(&s));
      size_t bad = 0;
      if (!valid_utf8(reinterpret_cast<const uint8_t*>(s.data()), s.size(), &bad)) {
        return error_at(r.offset() - s.size() + bad, "text string is not valid UTF-8");
      }
      return Status::ok();
    }
    case Major::kArray: {
      uint64_t n;
      COVENANT_RETURN_IF_ERROR(r.read_array(&n));
      for (uint64_t i = 0; i < n; ++i) COVENANT_RETURN_IF_ERROR(validate_item(r, data, depth + 1));
      return Status::ok();
    }
    case Major::kMap: {
      uint64_t n;
      COVENANT_RETURN_IF_ERROR(r.read_map(&n));
      std::span<const uint8_t> prev;
      for (uint64_t i = 0; i < n; ++i) {
        const size_t key_start = r.offset();
        COVENANT_RETURN_IF_ERROR(validate_item(r, data, depth + 1));
        std::span<const uint8_t> key = data.subspan(key_start, r.offset() - key_start);
        if (i > 0 && !key_less(prev, key)) {
          return error_at(key_start, std::equal(prev.begin(), prev.end(), key.begin(), key.end())
                                         ? "duplicate map key"
                                         : "map keys not in deterministic (bytewise) order");
        }
        prev = key;
        COVENANT_RETURN_IF_ERROR(validate_item(r, data, depth + 1));
      }
      return Status::ok();
    }
    case Major::kTag: {
      uint64_t t;
      COVENANT_RETURN_IF_ERROR(r.read_tag(&t));
      return validate_item(r, data, depth + 1);
    }
    case Major::kSimple: {
      std::span<const uint8_t> item;
      return r.skip(&item);
    }
  }
  return error_at(start, "unknown major type");
}

void append_hex(std::string* out, std::span<const uint8_t> b) {
  static const char* kHex = "0123456789abcdef";
  for (uint8_t c : b) {
    out->push_back(kHex[c >> 4]);
    out->push_back(kHex[c & 15]);
  }
}

Status diag_item(Reader& r, std::string* out) {
  Major m = Major::kUint;
  COVENANT_RETURN_IF_ERROR(r.peek(&m));
  switch (m) {
    case Major::kUint:
    case Major::kNint: {
      // uint64 beyond int64 still prints exactly.
      if (m == Major::kUint) {
        uint64_t v;
        COVENANT_RETURN_IF_ERROR(r.read_uint(&v));
        out->append(std::to_string(v));
      } else {
        std::span<const uint8_t> item;
        COVENANT_RETURN_IF_ERROR(r.skip(&item));
        uint64_t arg = item[0] & 31;
        if (arg >= 24) {
          arg = 0;
          for (size_t i = 1; i < item.size(); ++i) arg = (arg << 8) | item[i];
        }
        // The value is -1 - arg; print it without overflowing int64.
        out->push_back('-');
        out->append(arg == UINT64_MAX ? std::string("18446744073709551616") : std::to_string(arg + 1));
      }
      return Status::ok();
    }
    case Major::kBytes: {
      std::span<const uint8_t> b;
      COVENANT_RETURN_IF_ERROR(r.read_bytes(&b));
      out->append("h'");
      append_hex(out, b);
      out->push_back('\'');
      return Status::ok();
    }
    case Major::kText: {
      std::string_view s;
      COVENANT_RETURN_IF_ERROR(r.read_text(&s));
      out->push_back('"');
      for (char c : s) {
        if (c == '"' || c == '\\') {
          out->push_back('\\');
          out->push_back(c);
        } else if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(c);
        }
      }
      out->push_back('"');
      return Status::ok();
    }
    case Major::kArray:
    case Major::kMap: {
      uint64_t n;
      const bool is_map = m == Major::kMap;
      COVENANT_RETURN_IF_ERROR(is_map ? r.read_map(&n) : r.read_array(&n));
      out->push_back(is_map ? '{' : '[');
      for (uint64_t i = 0; i < n; ++i) {
        if (i) out->append(", ");
        COVENANT_RETURN_IF_ERROR(diag_item(r, out));
        if (is_map) {
          out->append(": ");
          COVENANT_RETURN_IF_ERROR(diag_item(r, out));
        }
      }
      out->push_back(is_map ? '}' : ']');
      return Status::ok();
    }
    case Major::kTag: {
      uint64_t t;
      COVENANT_RETURN_IF_ERROR(r.read_tag(&t));
      out->append(std::to_string(t) + "(");
      COVENANT_RETURN_IF_ERROR(diag_item(r, out));
      out->push_back(')');
      return Status::ok();
    }
    case Major::kSimple: {
      bool b = false;
      if (r.read_bool(&b).is_ok()) {
        out->append(b ? "true" : "false");
        return Status::ok();
      }
      COVENANT_RETURN_IF_ERROR(r.read_null());
      out->append("null");
      return Status::ok();
    }
  }
  return r.error("unknown major type");
}

}  // namespace

Status validate(std::span<const uint8_t> data) {
  if (data.empty()) return error_at(0, "empty input");
  Reader r(data);
  COVENANT_RETURN_IF_ERROR(validate_item(r, data, 0));
  if (!r.at_end()) {
    return error_at(r.offset(), std::to_string(data.size() - r.offset()) + " trailing bytes after the item");
  }
  return Status::ok();
}

Result<std::string> diagnostic(std::span<const uint8_t> item) {
  COVENANT_RETURN_IF_ERROR(validate(item));
  Reader r(item);
  std::string out;
  COVENANT_RETURN_IF_ERROR(diag_item(r, &out));
  return out;
}

}  // namespace covenant::cbor
