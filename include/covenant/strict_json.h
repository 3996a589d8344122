// Strict JSON for inputs people write (an intent, call args, a grants manifest):
// invalid UTF-8 is reported at the offset of its first invalid byte, a syntax
// error at its byte offset and line:col, and a duplicate key anywhere (which
// nlohmann would silently resolve last-wins) is refused with its JSON path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "covenant/status.h"

namespace covenant {

// The offset of the first byte that is not part of well-formed UTF-8, or npos.
inline size_t first_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) len = 3, lo = 0xA0;
    else if (c == 0xED) len = 3, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF) len = 3;
    else if (c == 0xF0) len = 4, lo = 0x90;
    else if (c == 0xF4) len = 4, hi = 0x8F;
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else return i;
    for (size_t k = 1; k < len; ++k) {
      if (i + k >= n) return i + k;
      const unsigned char b = p[i + k];
      if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return i + k;
    }
    i += len;
  }
  return std::string_view::npos;
}

// "line L:col C" (1-based) of a byte offset.
inline std::string json_line_col(std::string_view s, size_t offset) {
  size_t line = 1, col = 1;
  for (size_t i = 0; i < offset && i < s.size(); ++i) {
    if (s[i] == '\n') ++line, col = 1;
    else ++col;
  }
  return "line " + std::to_string(line) + ":" + std::to_string(col);
}

// Parses `text`; errors start with `what: `.
inline Result<nlohmann::json> parse_json_strict(std::string_view text, const std::string& what) {
  using json = nlohmann::json;
  if (size_t bad = first_invalid_utf8(text); bad != std::string_view::npos)
    return Status::invalid(what + ": not valid UTF-8: invalid byte 0x" +
                           [&] {
                             static const char* kHex = "0123456789abcdef";
                             const auto b = static_cast<unsigned char>(bad < text.size() ? text[bad] : 0);
                             return bad < text.size() ? std::string{kHex[b >> 4], kHex[b & 15]} : std::string("(end)");
                           }() +
                           " at byte " + std::to_string(bad) + " (" + json_line_col(text, bad) + ")");
  struct Frame {
    bool object = false;
    std::set<std::string> keys;
    std::string key;
    size_t next_index = 0, index = 0;
  };
  std::vector<Frame> stack;
  std::string dup_path;
  // The path of the innermost open object or array (each enclosing frame's current key or index).
  auto path_to_parent = [&] {
    std::string p = "$";
    for (size_t i = 0; i + 1 < stack.size(); ++i)
      p += stack[i].object ? "." + stack[i].key : "[" + std::to_string(stack[i].index) + "]";
    return p;
  };
  auto cb = [&](int, json::parse_event_t ev, json& parsed) -> bool {
    switch (ev) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (!stack.empty() && !stack.back().object) stack.back().index = stack.back().next_index++;
        stack.push_back(Frame{.object = ev == json::parse_event_t::object_start});
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!stack.empty()) stack.pop_back();
        break;
      case json::parse_event_t::key:
        if (!stack.empty()) {
          std::string k = parsed.get<std::string>();
          if (!stack.back().keys.insert(k).second && dup_path.empty()) {
            // The path of the object holding the key, then the key.
            dup_path = path_to_parent() + "." + k;
          }
          stack.back().key = std::move(k);
        }
        break;
      case json::parse_event_t::value:
        if (!stack.empty() && !stack.back().object) stack.back().next_index++;
        break;
    }
    return true;
  };
  try {
    json j = json::parse(text.begin(), text.end(), cb, true);
    if (!dup_path.empty()) return Status::invalid(what + ": duplicate key at " + dup_path);
    return j;
  } catch (const json::parse_error& e) {
    const size_t at = e.byte > 0 ? e.byte - 1 : 0;
    std::string detail = e.what();
    if (auto colon = detail.find(": "); colon != std::string::npos) detail = detail.substr(colon + 2);
    return Status::invalid(what + ": not valid JSON at byte " + std::to_string(at) + " (" + json_line_col(text, at) +
                           "): " + detail);
  }
}

}  // namespace covenant
