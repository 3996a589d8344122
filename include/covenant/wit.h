// WIT: parse a WIT package (interfaces, worlds, types, functions) into a resolved
// type model that the canonical ABI (covenant/abi.h) and the JSON mapping
// (covenant/wit_json.h) work on.
// Thread-safety: a parsed Package is immutable and may be shared by any number of
// threads. Ownership: parse_wit() returns a Package by value; TypeIds index into
// Package::types and stay valid as long as the Package lives.
//
// Usage:
//   auto pkg = covenant::wit::parse_wit(text, {.file_name = "policy.wit"});
//   if (!pkg) { print(pkg.status().message()); }
//   const covenant::wit::Function* approve = pkg->find_function("policy", "approve");
//
// Grammar: the Component Model's WIT.md. Supported: package header, interfaces,
// worlds (import/export of interfaces, inline interfaces and functions), `use`
// (within the package), type aliases, record, enum, flags, variant, option,
// result (all four forms), list, tuple, string, char, bool, s8..s64, u8..u64,
// f32/f64, functions with named params and a single or named results, doc
// comments (`///`, `/** */`) and gates (`@since(..)`, `@unstable(..)`,
// `@deprecated(..)`, skipped). Not supported (clean error): resources, handles,
// async, stream/future/error-context, map, `include`, nested packages,
// foreign-package `use`. Named results `-> (a: T, ..)` (pre-0.2 WIT) are accepted.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "covenant/status.h"

namespace covenant::wit {

// Limits on parser input: garbage or hostile WIT must fail cleanly and fast.
inline constexpr size_t kWitSourceBytesMax = 1u << 20;  // interfaces are small; 1 MiB
inline constexpr uint32_t kTypeNestingMax = 32;          // list<list<...>> depth; bounds recursion
inline constexpr uint32_t kTypeDepthMax = 64;            // through named types too; bounds lift/lower stack
inline constexpr uint32_t kFlagsMax = 32;                // CanonicalABI.md: 0 < n <= 32
inline constexpr uint32_t kCasesMax = 1u << 16;          // variant/enum cases
inline constexpr uint32_t kFieldsMax = 1u << 12;         // record/tuple fields, params
static_assert(kFlagsMax <= 32, "flags are one i32 in the canonical ABI");
static_assert(kTypeNestingMax < kTypeDepthMax, "an expression nests within the depth bound");

using TypeId = uint32_t;
inline constexpr TypeId kNoType = 0xffffffffu;

enum class TypeKind : uint8_t {
  kBool, kS8, kU8, kS16, kU16, kS32, kU32, kS64, kU64, kF32, kF64, kChar, kString,
  kList, kRecord, kTuple, kVariant, kEnum, kFlags, kOption, kResult,
};
const char* type_kind_name(TypeKind kind);

// A name as written in the source (after `%` unescaping) and its canonical
// kebab-case spelling (equal unless lenient mode accepted a snake_case name).
struct Name {
  std::string written;
  std::string kebab;
  bool operator==(const Name&) const = default;
};

struct Field {  // record field, tuple element (empty name), variant/enum case, flag
  Name name;
  TypeId type = kNoType;  // kNoType: a case without payload, an enum case, a flag
  std::string docs;
};

struct Type {
  TypeKind kind = TypeKind::kBool;
  Name name;                  // empty for anonymous types (list<u8>, tuple<..>, ...)
  std::string interface;      // owning interface or world of a named type
  std::string docs;
  std::vector<Field> fields;  // record fields, tuple elements, variant/enum cases, flags
  TypeId elem = kNoType;      // list / option element
  TypeId ok = kNoType;        // result ok payload (kNoType: none)
  TypeId err = kNoType;       // result err payload (kNoType: none)
};

struct Param {
  Name name;        // empty for the single unnamed result `-> T`
  TypeId type = kNoType;
};

struct Function {
  Name name;
  std::vector<Param> params;
  std::vector<Param> results;  // 0 (no result), 1 unnamed, or named results
  std::string docs;
};

struct Interface {
  Name name;
  std::string docs;
  std::vector<std::pair<std::string, TypeId>> types;  // by written name, incl. `use`d names
  std::vector<Function> functions;
  const Function* find_function(std::string_view name) const;  // written or kebab
  TypeId find_type(std::string_view name) const;                // written or kebab
};

struct WorldItem {
  enum class Kind : uint8_t { kInterface, kFunction };
  Kind kind = Kind::kInterface;
  // kInterface: the interface name as used in core names: `iface` for the
  // package's own (resolved to interface_index), `ns:pkg/iface@ver` if foreign,
  // or the plain name of an inline `import name: interface {..}`.
  std::string name;
  int interface_index = -1;  // into Package::interfaces; -1 if foreign (not resolved)
  bool inline_interface = false;  // `import name: interface {..}`
  Function function;         // kFunction
};

struct World {
  Name name;
  std::string docs;
  std::vector<WorldItem> imports;
  std::vector<WorldItem> exports;
  std::vector<std::pair<std::string, TypeId>> types;
};

struct Diagnostic {
  std::string file;
  uint32_t line = 0;
  uint32_t column = 0;
  std::string message;
  std::string hint;
  std::string to_string() const;  // "file:line:col: warning: message (hint: ...)"
};

struct Package {
  std::string ns;       // "agent"
  std::string name;     // "settlement"
  std::string version;  // "0.1.0" or empty
  std::vector<Type> types;  // indexed by TypeId; ids 0..12 are the primitives in TypeKind order
  std::vector<Interface> interfaces;
  std::vector<World> worlds;
  std::vector<Diagnostic> warnings;

  const Type& type(TypeId id) const { return types.at(id); }
  const Interface* find_interface(std::string_view name) const;
  const World* find_world(std::string_view name) const;
  // The function `name` of interface `iface`, or nullptr.
  const Function* find_function(std::string_view iface, std::string_view name) const;
  // "agent:settlement/policy@0.1.0" — the qualified name of one of this
  // package's interfaces as wit-bindgen uses it in core import/export names.
  std::string qualified_interface(const Interface& iface) const;
  // A human spelling of a type: "u64", "list<string>", "intent".
  std::string type_to_string(TypeId id) const;
};

struct ParseOptions {
  std::string file_name = "<input>";  // used in diagnostics
  // strict: identifiers must follow the WIT grammar (kebab-case). Lenient (the
  // default) also accepts snake_case names such as the seed article's
  // `agent_id`, with a warning naming the kebab-case spelling.
  bool strict = false;
};

// Parses and resolves one WIT package. Errors are Code::kInvalidArgument with
// "file:line:col: message\n  hint: ..." in the message.
Result<Package> parse_wit(std::string_view source, const ParseOptions& options = {});

// The seed article's `agent:settlement@0.1.0` package (interface `policy`,
// world `escrow`) in its valid kebab-case spelling: built in for core modules
// deployed without a WIT file.
std::string_view seed_policy_wit();

// True if `s` is a valid WIT label (kebab-case words or ACRONYMS).
bool is_kebab_label(std::string_view s);
// "agent_id" -> "agent-id".
std::string to_kebab(std::string_view s);
// "agent-id" -> "agent_id".
std::string to_snake(std::string_view s);

}  // namespace covenant::wit
