// A test guest's linear memory and cabi_realloc as abi::GuestMemory, over an
// engine Instance (docs/abi.md, "Wiring it to an engine"): shared by the
// bindgen and corpus tests that drive the canonical ABI by hand.
#pragma once

#include <cstdint>

#include "covenant/abi.h"
#include "covenant/engine.h"

namespace covenant::testing_guest {

class InstanceMemory final : public abi::GuestMemory {
 public:
  InstanceMemory(Instance& inst, uint32_t realloc_index) : inst_(inst), realloc_index_(realloc_index) {}
  uint8_t* data() override { return inst_.memory().data(); }
  uint64_t size() override { return inst_.memory().size(); }
  Result<uint32_t> realloc(uint32_t op, uint32_t os, uint32_t al, uint32_t ns) override {
    Value args[] = {Value::i32(static_cast<int32_t>(op)), Value::i32(static_cast<int32_t>(os)),
                    Value::i32(static_cast<int32_t>(al)), Value::i32(static_cast<int32_t>(ns))};
    auto out = inst_.call(realloc_index_, args);
    if (!out) return out.status();
    if (!out->ok()) return Status::invalid("cabi_realloc trapped: " + out->trap.message);
    return static_cast<uint32_t>(out->results.at(0).bits);
  }

 private:
  Instance& inst_;
  uint32_t realloc_index_;
};

}  // namespace covenant::testing_guest
