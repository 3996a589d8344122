// Guest binding generator: from a resolved WIT world, the guest side of the
// canonical ABI in C, C++, AssemblyScript or Rust (`covenant bindgen`).
// Thread-safety: pure functions over an immutable wit::Package. Ownership:
// generated files are returned by value.
//
// Usage:
//   auto pkg = covenant::wit::parse_wit(text, {.file_name = "policy.wit"});
//   auto files = covenant::bindgen::generate(*pkg, {.lang = Lang::kC, .world = "escrow"});
//   for (auto& f : *files) write(out_dir / f.path, f.content);
//
// Every size, alignment, offset and flattening comes from abi::Abi (the same
// code the host lifts and lowers with); the generator only spells them in the
// target language. What is generated, per exported function: the export
// trampoline with the exact core signature and wit-bindgen name
// (`agent:settlement/policy@0.1.0#approve`), lifting params from flat values
// or the spilled params tuple, lowering the result into a static return area,
// `cabi_post_*` freeing what the result allocated, and `cabi_realloc`.
// Per imported function: the core import with its module/field names and a wrapper
// `imports_<iface>_<fn>` that lowers the params (flat, or spilled into a
// params tuple) and lifts the result (from the flat value or a return area);
// strings and lists in the result are the guest's own allocations (the host
// places them with cabi_realloc, as the canonical ABI lowers results): the
// Rust and AssemblyScript bindings free them after copying them out; in C
// they are the caller's to free (`<type>_free`).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "covenant/status.h"
#include "covenant/wit.h"

namespace covenant::bindgen {

enum class Lang : uint8_t { kC, kCpp, kAssemblyScript, kRust };

// "c", "cpp" (also "c++"), "assemblyscript" (also "as"), "rust".
Result<Lang> parse_lang(std::string_view name);

struct Options {
  Lang lang = Lang::kC;
  // The world to generate for; empty: the package's only world (an error if it has several).
  std::string world;
  // Shown in the generated files' header comment.
  std::string source_name = "<input>";
  // Packages that define the foreign interfaces the world imports (e.g.
  // src/host/wit/host.wit for `import covenant:host/kv@0.1.0;`). Borrowed.
  std::vector<const wit::Package*> deps;
};

struct GeneratedFile {
  std::string path;     // relative, e.g. "escrow.h"
  std::string content;
};

// Files per language (W = the world's name, snake_case):
//   c:              W.h, W.c
//   cpp:            W.h, W.c (the C bindings) and W.hpp (C++ views over them)
//   rust:           W.rs (a module: `mod W;` in the crate root)
//   assemblyscript: W.ts (the entry file: trampolines), W_types.ts (types,
//                   ABI helpers, imports) and W.exports (core export renames
//                   for sdk/tools/wasm_rename_exports: AssemblyScript cannot
//                   spell ':' '/' '#' '@' in export names)
Result<std::vector<GeneratedFile>> generate(const wit::Package& pkg, const Options& options);

}  // namespace covenant::bindgen
