// Tests only: WAT text -> Wasm bytes with wabt (a GoogleTest failure on bad
// WAT), for the engine tests that write their modules inline.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "wabt/binary-writer.h"
#include "wabt/ir.h"
#include "wabt/resolve-names.h"
#include "wabt/stream.h"
#include "wabt/wast-lexer.h"
#include "wabt/wast-parser.h"

namespace covenant::wasm_test {

inline std::vector<uint8_t> wat(const std::string& text, bool multi_value = false) {
  wabt::Errors errors;
  auto lexer = wabt::WastLexer::CreateBufferLexer("test.wat", text.data(), text.size(), &errors);
  wabt::Features features;
  if (multi_value) features.enable_multi_value();
  wabt::WastParseOptions opts(features);
  std::unique_ptr<wabt::Module> m;
  if (wabt::Failed(wabt::ParseWatModule(lexer.get(), &m, &errors, &opts)) ||
      wabt::Failed(wabt::ResolveNamesModule(m.get(), &errors))) {
    ADD_FAILURE() << "bad WAT: " << (errors.empty() ? "" : errors[0].message);
    return {};
  }
  wabt::MemoryStream s;
  wabt::WriteBinaryOptions wo(features, true, false, false);
  EXPECT_TRUE(wabt::Succeeded(wabt::WriteBinaryModule(&s, m.get(), wo)));
  return s.output_buffer().data;
}

}  // namespace covenant::wasm_test
