// Components: read a Component Model binary that wraps one core module — as
// made by `jco new` / `wasm-tools component new` (wit-component) from a core
// module with embedded WIT — into what Covenant deploys: the core module, the
// WIT world the component's types describe, and how each lifted export and
// lowered import is wired to the core module (canonical options included).
// Thread-safety: pure functions. Ownership: results are returned by value.
//
//   if (covenant::component::is_component(bytes)) {
//     auto c = covenant::component::read_component(bytes, "policy.wasm");
//     if (!c) print(c.status().message());  // names the section and byte offset
//     deploy(c->core_module, c->wit, c->world);
//   }
//
// What is accepted (docs/components.md): the binary format of the Component
// Model (version 0x0d), sections core module / core instance / core type
// (function types) / component / instance / alias / type / canon / import /
// export / custom. The evaluation follows index spaces and nested component
// instantiation symbolically (no code runs), so the shim component that
// wit-component uses to name exported types and the shim/fix-up core modules
// it emits for lowered imports that need the guest's memory are seen through.
// Refused with a clear error: more than one core module with code of its own,
// resources and handles, async, values and start functions, string encodings
// other than UTF-8, core module types, and any wiring that is not a lift of a
// core export or a lower of an imported function.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "covenant/status.h"
#include "covenant/wit.h"

namespace covenant::component {

inline constexpr uint32_t kNestingMax = 8;          // components within components
inline constexpr uint32_t kDefinitionsMax = 100000;  // entries across all index spaces
inline constexpr uint32_t kTypeNestingMax = wit::kTypeNestingMax;

// The preamble: "\0asm" 0x0d 0x00 0x01 0x00 (a core module has layer 0).
bool is_component(std::span<const uint8_t> bytes);

// One exported function: a `canon lift` of a core export.
struct LiftedExport {
  std::string interface;    // "agent:settlement/policy@0.1.0"; empty for a world-level function
  std::string function;     // "approve"
  std::string core_export;  // the lifted core function, by its export name in the core module
  std::string post_return;  // core export name, or empty
  std::string realloc;      // core export name, or empty
  std::string memory;       // core export name, or empty
};

// One core import of the core module: a `canon lower` of an imported function.
struct LoweredImport {
  std::string core_module;  // the core import's module and field names
  std::string core_field;
  std::string interface;    // the component import it is wired to: "covenant:host/kv@0.1.0" (empty: world-level)
  std::string function;     // "get"
  std::string signature;    // the imported function's structural type (see signature_of)
  std::string realloc;      // core export names of the options, or empty
  std::string memory;
};

struct Component {
  std::vector<uint8_t> core_module;   // the one core module, as embedded
  std::string wit;                    // a WIT package (strict grammar) holding the component's world
  std::string world;                  // its world's name ("root", as wasm-tools prints it)
  std::vector<std::string> imports;   // imported interfaces / functions, in component order
  std::vector<LiftedExport> exports;
  std::vector<LoweredImport> lowered;
  std::vector<std::string> shims;     // wit-component helper modules seen through (for diagnostics)
};

// Errors are kInvalidArgument ("NAME: component byte 0x1a3 (type section): ...")
// or kUnsupported for valid components outside what Covenant runs.
Result<Component> read_component(std::span<const uint8_t> bytes, std::string_view name = "component");

// A function's type with every named type expanded, field and case names
// kept: "func(key: string) -> option<list<u8>>", "func(lvl: enum{debug,info},
// msg: string)". Equal strings = the same component-level function type; used
// to check a component's imports against the host's own WIT.
std::string signature_of(const wit::Package& pkg, const wit::Function& fn);

}  // namespace covenant::component
