// libFuzzer target (clang, -DCOVENANT_FUZZ=ON): WIT text -> parse -> layouts ->
// lift every function's results from the input bytes used as guest memory.
// Any crash, hang or sanitizer report is a bug; errors are expected.
#include <cstdint>
#include <string_view>

#include "covenant/abi.h"
#include "covenant/wit.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace covenant;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto pkg = wit::parse_wit(text);
  if (!pkg) {
    // Lift against the built-in seed with the input as guest memory instead.
    pkg = wit::parse_wit(wit::seed_policy_wit());
    if (!pkg) __builtin_trap();
  }
  abi::Abi abi(*pkg);
  abi::BufferMemory mem(1 << 12);
  for (size_t i = 0; i < size && i < mem.bytes().size(); ++i) mem.bytes()[i] = data[i];
  for (const wit::Interface& iface : pkg->interfaces)
    for (const wit::Function& fn : iface.functions) {
      abi::CoreSignature sig = abi.core_signature(fn, abi::Direction::kExport);
      std::vector<abi::CoreValue> flat;
      for (size_t k = 0; k < sig.results.size(); ++k)
        flat.push_back(abi::CoreValue{sig.results[k], size > k ? data[k] * 8u : 0u});
      abi::CallContext cx(abi, mem, abi::AbiOptions{.lifted_bytes_max = 1 << 20});
      (void)cx.lift_results(fn, flat);
    }
  return 0;
}
