// Guest output made inert. A contract's log lines are untrusted text: printed
// raw, a guest could end a line and print one that looks like Covenant's own
// ("\nresult: FORGED"), move the cursor with escape sequences, or reorder text
// with bidi controls. The CLI prints them escaped, one line each, prefixed with
// the contract's name and the level (docs/cli.md, "Guest output").
// Thread-safety: pure functions. Ownership: returns new strings.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace covenant::cli {

// Printable ASCII and valid UTF-8 stay as they are; a backslash becomes "\\";
// \n, \r, \t become those two-character escapes; other C0 controls and DEL
// become \xNN; a byte that does not start or continue valid UTF-8 becomes
// \xNN; C1 controls (U+0080..U+009F), line/paragraph separators, bidi and
// zero-width formatting controls become \u{XXXX}. The result has no control
// character and no line break, and is valid UTF-8.
inline std::string escape_guest_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  char buf[16];
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\\') {
      out += "\\\\";
      ++i;
      continue;
    }
    if (c == '\n' || c == '\r' || c == '\t') {
      out += c == '\n' ? "\\n" : c == '\r' ? "\\r" : "\\t";
      ++i;
      continue;
    }
    if (c < 0x20 || c == 0x7f) {
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
      ++i;
      continue;
    }
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    // A UTF-8 sequence: its length, the first byte's bits, and the allowed range
    // of the second byte (no overlongs, no surrogates, nothing past U+10FFFF).
    size_t len = 0;
    uint32_t cp = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0Fu;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07u;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    bool valid = len != 0 && i + len <= s.size();
    for (size_t k = 1; valid && k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) valid = false;
      cp = cp << 6 | (b & 0x3Fu);
    }
    if (!valid) {
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
      ++i;
      continue;
    }
    const bool control = (cp >= 0x80 && cp <= 0x9F) || cp == 0x061C || cp == 0x200B || cp == 0x200E ||
                         cp == 0x200F || cp == 0x2028 || cp == 0x2029 || (cp >= 0x202A && cp <= 0x202E) ||
                         (cp >= 0x2066 && cp <= 0x2069) || cp == 0xFEFF;
    if (control) {
      std::snprintf(buf, sizeof buf, "\\u{%04x}", static_cast<unsigned>(cp));
      out += buf;
    } else {
      out.append(s.substr(i, len));
    }
    i += len;
  }
  return out;
}

// The name a contract's output is prefixed with: its file name without the folders.
inline std::string guest_name(std::string_view path) {
  const size_t slash = path.find_last_of('/');
  return escape_guest_text(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

}  // namespace covenant::cli
