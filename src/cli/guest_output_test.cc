// escape_guest_text (src/cli/guest_output.h): what a guest's text can become on
// a terminal. One row per case: the bytes a contract logs, what Covenant prints.
#include "cli/guest_output.h"

#include <gtest/gtest.h>

#include <string>

namespace {

using covenant::cli::escape_guest_text;
using covenant::cli::guest_name;

TEST(GuestOutput, EscapesEverythingThatCouldForgeOrMoveOutput) {
  struct Row {
    std::string in, out;
  };
  const Row rows[] = {
      {"approved a 100", "approved a 100"},
      {"ok\nresult: FORGED", "ok\\nresult: FORGED"},
      {"a\r\tb", "a\\r\\tb"},
      {"back\\slash", "back\\\\slash"},                  // an escape cannot be faked
      {"\\n", "\\\\n"},
      {std::string("nul\0x", 5), "nul\\x00x"},
      {"\x1b[2J\x07\x7f", "\\x1b[2J\\x07\\x7f"},       // terminal escape, bell, DEL
      {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x92", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x92"},  // UTF-8 kept
      {"\xc2\x85next", "\\u{0085}next"},               // C1: NEL
      {"\xe2\x80\xa8", "\\u{2028}"},                   // line separator
      {"\xe2\x80\xae" "evil", "\\u{202e}evil"},           // right-to-left override
      {"\xe2\x81\xa6x\xe2\x81\xa9", "\\u{2066}x\\u{2069}"},
      {"\xef\xbb\xbf", "\\u{feff}"},
      {"\xff", "\\xff"},                               // not UTF-8
      {"\xc0\xaf", "\\xc0\\xaf"},                      // overlong '/'
      {"\xe0\x80\xaf", "\\xe0\\x80\\xaf"},             // overlong, 3 bytes
      {"\xed\xa0\x80", "\\xed\\xa0\\x80"},             // a surrogate
      {"\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"},     // past U+10FFFF
      {"\xe2\x82", "\\xe2\\x82"},                      // truncated
      {"\xe2\x82" "a", "\\xe2\\x82a"},
  };
  for (const Row& r : rows) EXPECT_EQ(escape_guest_text(r.in), r.out) << r.in;
}

TEST(GuestOutput, ResultHasNoControlCharacterOrLineBreak) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  const std::string e = escape_guest_text(all + all);
  for (unsigned char c : e) EXPECT_TRUE(c >= 0x20 && c != 0x7f) << static_cast<int>(c);
}

TEST(GuestOutput, NameIsTheFileNameEscaped) {
  EXPECT_EQ(guest_name("/a/b/forge.wasm"), "forge.wasm");
  EXPECT_EQ(guest_name("forge.wasm"), "forge.wasm");
  EXPECT_EQ(guest_name("dir/x\ny.wasm"), "x\\ny.wasm");
}

}  // namespace
