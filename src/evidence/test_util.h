// Shared helpers for evidence tests: a typical approval receipt and temp dirs.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "covenant/receipt.h"

namespace covenant::testing {

// The "typical approval" the 320-byte budget is measured on (docs/receipts.md).
inline Receipt typical_receipt(uint64_t seq = 0) {
  Receipt r;
  r.contract_hash.fill(0xc1);
  r.entry = "spend#approve";
  r.intent_hash.fill(0x11);
  r.decision = encode_decision({.approved = true, .reason_code = 0, .amount = 25'000});
  r.fuel_used = 48'213;
  r.state_root_before.fill(0xa0);
  r.state_root_after.fill(0xa1);
  r.time_unix_ms = 1'767'225'600'000ull + seq;  // 2026-01-01
  r.trace_id.fill(static_cast<uint8_t>(seq));
  r.prev_receipt_hash.fill(0x9e);
  r.interface_hash.emplace().fill(0x1f);
  return r;
}

// A fresh directory under the build tree, removed by the destructor.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = std::filesystem::temp_directory_path().string() + "/covenant-evidence-XXXXXX";
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace covenant::testing
