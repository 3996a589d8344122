#include "settle/jcs.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <string_view>
#include <vector>

namespace covenant::settle {
namespace {

using json = nlohmann::json;

constexpr uint64_t kExactIntegerMax = uint64_t{1} << 53;

// Appends the UTF-16 code units of valid UTF-8 `s`; false if it is not valid.
bool utf16_units(std::string_view s, std::u16string* out) {
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<uint8_t>(s[i]);
    uint32_t cp;
    size_t n;
    if (b < 0x80) {
      cp = b, n = 1;
    } else if ((b & 0xe0) == 0xc0) {
      cp = b & 0x1f, n = 2;
    } else if ((b & 0xf0) == 0xe0) {
      cp = b & 0x0f, n = 3;
    } else if ((b & 0xf8) == 0xf0) {
      cp = b & 0x07, n = 4;
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    for (size_t j = 1; j < n; ++j) {
      const auto c = static_cast<uint8_t>(s[i + j]);
      if ((c & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      out->push_back(static_cast<char16_t>(0xd800 + (cp >> 10)));
      out->push_back(static_cast<char16_t>(0xdc00 + (cp & 0x3ff)));
    } else {
      out->push_back(static_cast<char16_t>(cp));
    }
    i += n;
  }
  return true;
}

Status write_string(std::string_view s, std::string* out) {
  std::u16string units;
  if (!utf16_units(s, &units)) return Status::invalid("a string is not valid UTF-8");
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\b': *out += "\\b"; break;
      case '\t': *out += "\\t"; break;
      case '\n': *out += "\\n"; break;
      case '\f': *out += "\\f"; break;
      case '\r': *out += "\\r"; break;
      default:
        if (static_cast<uint8_t>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<uint8_t>(c)));
          *out += buf;
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
  return Status::ok();
}

// ECMAScript Number::toString(10) of a finite double (ECMA-262, 6.1.6.1.20).
void write_double(double d, std::string* out) {
  if (d == 0) {  // +0 and -0 both spell "0"
    out->push_back('0');
    return;
  }
  if (d < 0) {
    out->push_back('-');
    d = -d;
  }
  char buf[64];
  // Shortest round-trip digits in scientific form: "d[.ddd]e[+-]x".
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  const std::string_view sci(buf, static_cast<size_t>(r.ptr - buf));
  const size_t e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e))
    if (c != '.') digits.push_back(c);
  const int exp10 = std::stoi(std::string(sci.substr(e + 1)));
  const int k = static_cast<int>(digits.size());
  const int n = exp10 + 1;
  if (k <= n && n <= 21) {
    *out += digits;
    out->append(static_cast<size_t>(n - k), '0');
  } else if (0 < n && n <= 21) {
    *out += digits.substr(0, static_cast<size_t>(n));
    out->push_back('.');
    *out += digits.substr(static_cast<size_t>(n));
  } else if (-6 < n && n <= 0) {
    *out += "0.";
    out->append(static_cast<size_t>(-n), '0');
    *out += digits;
  } else {
    out->push_back(digits[0]);
    if (k > 1) {
      out->push_back('.');
      *out += digits.substr(1);
    }
    out->push_back('e');
    out->push_back(n - 1 >= 0 ? '+' : '-');
    *out += std::to_string(std::abs(n - 1));
  }
}

Status write(const json& v, std::string* out, int depth) {
  if (depth > 128) return Status::invalid("nested more than 128 deep");
  switch (v.type()) {
    case json::value_t::null: *out += "null"; return Status::ok();
    case json::value_t::boolean: *out += v.get<bool>() ? "true" : "false"; return Status::ok();
    case json::value_t::number_unsigned: {
      const uint64_t u = v.get<uint64_t>();
      if (u > kExactIntegerMax) return Status::invalid("the integer " + std::to_string(u) + " is beyond 2^53, which JCS cannot spell exactly; send it as a string");
      *out += std::to_string(u);
      return Status::ok();
    }
    case json::value_t::number_integer: {
      const int64_t i = v.get<int64_t>();
      if (i < -static_cast<int64_t>(kExactIntegerMax) || i > static_cast<int64_t>(kExactIntegerMax))
        return Status::invalid("the integer " + std::to_string(i) + " is beyond 2^53, which JCS cannot spell exactly; send it as a string");
      *out += std::to_string(i);
      return Status::ok();
    }
    case json::value_t::number_float: {
      const double d = v.get<double>();
      if (!std::isfinite(d)) return Status::invalid("a number is not finite");
      write_double(d, out);
      return Status::ok();
    }
    case json::value_t::string: return write_string(v.get_ref<const std::string&>(), out);
    case json::value_t::array: {
      out->push_back('[');
      bool first = true;
      for (const json& x : v) {
        if (!first) out->push_back(',');
        first = false;
        COVENANT_RETURN_IF_ERROR(write(x, out, depth + 1));
      }
      out->push_back(']');
      return Status::ok();
    }
    case json::value_t::object: {
      std::vector<std::pair<std::u16string, const std::string*>> keys;
      for (auto it = v.begin(); it != v.end(); ++it) {
        std::u16string u;
        if (!utf16_units(it.key(), &u)) return Status::invalid("a member name is not valid UTF-8");
        keys.emplace_back(std::move(u), &it.key());
      }
      std::sort(keys.begin(), keys.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      out->push_back('{');
      bool first = true;
      for (const auto& [units, name] : keys) {
        if (!first) out->push_back(',');
        first = false;
        COVENANT_RETURN_IF_ERROR(write_string(*name, out));
        out->push_back(':');
        COVENANT_RETURN_IF_ERROR(write(v.at(*name), out, depth + 1));
      }
      out->push_back('}');
      return Status::ok();
    }
    case json::value_t::binary:
    case json::value_t::discarded: break;
  }
  return Status::invalid("not a JSON value");
}

}  // namespace

Result<std::string> jcs_canonicalize(const json& value) {
  std::string out;
  COVENANT_RETURN_IF_ERROR(write(value, &out, 0));
  return out;
}

}  // namespace covenant::settle
