// libFuzzer target: reading arbitrary bytes as a component never crashes,
// hangs or leaks, and whatever reads yields a world the strict WIT parser
// accepts. Built with clang by CMake (target component_fuzzer), run for a
// bounded time by ctest (component_fuzz) from the example components.
#include <cstddef>
#include <cstdint>
#include <span>

#include "covenant/component.h"
#include "covenant/wit.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto c = covenant::component::read_component(std::span<const uint8_t>(data, size), "fuzz");
  if (c.is_ok()) {
    auto w = covenant::wit::parse_wit(c->wit, {.strict = true});
    if (!w.is_ok() || c->core_module.size() < 8 || c->exports.empty()) __builtin_trap();
  }
  return 0;
}
