// Package lookups and printing for the resolved WIT model.
#include "covenant/wit.h"

namespace covenant::wit {

std::string_view seed_policy_wit() {
  return R"(package agent:settlement@0.1.0;

interface policy {
  record intent {
    agent-id: string,
    task-type: string,
    max-units: u64,
    expires-at-ms: u64,
  }

  record decision {
    approved: bool,
    ceiling: u64,
    reason: string,
  }

  approve: func(i: intent) -> decision;
}

world escrow {
  export policy;
}
)";
}

const char* type_kind_name(TypeKind kind) {
  switch (kind) {
    case TypeKind::kBool: return "bool";
    case TypeKind::kS8: return "s8";
    case TypeKind::kU8: return "u8";
    case TypeKind::kS16: return "s16";
    case TypeKind::kU16: return "u16";
    case TypeKind::kS32: return "s32";
    case TypeKind::kU32: return "u32";
    case TypeKind::kS64: return "s64";
    case TypeKind::kU64: return "u64";
    case TypeKind::kF32: return "f32";
    case TypeKind::kF64: return "f64";
    case TypeKind::kChar: return "char";
    case TypeKind::kString: return "string";
    case TypeKind::kList: return "list";
    case TypeKind::kRecord: return "record";
    case TypeKind::kTuple: return "tuple";
    case TypeKind::kVariant: return "variant";
    case TypeKind::kEnum: return "enum";
    case TypeKind::kFlags: return "flags";
    case TypeKind::kOption: return "option";
    case TypeKind::kResult: return "result";
  }
  return "?";
}

std::string Diagnostic::to_string() const {
  std::string s = file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": warning: " + message;
  if (!hint.empty()) s += " (hint: " + hint + ")";
  return s;
}

const Function* Interface::find_function(std::string_view name) const {
  for (const Function& f : functions)
    if (f.name.written == name || f.name.kebab == name) return &f;
  return nullptr;
}

TypeId Interface::find_type(std::string_view name) const {
  std::string kebab = to_kebab(name);
  for (const auto& [n, id] : types)
    if (n == name || to_kebab(n) == kebab) return id;
  return kNoType;
}

const Interface* Package::find_interface(std::string_view name) const {
  for (const Interface& i : interfaces)
    if (i.name.written == name || i.name.kebab == name) return &i;
  return nullptr;
}

const World* Package::find_world(std::string_view name) const {
  for (const World& w : worlds)
    if (w.name.written == name || w.name.kebab == name) return &w;
  return nullptr;
}

const Function* Package::find_function(std::string_view iface, std::string_view name) const {
  const Interface* i = find_interface(iface);
  return i == nullptr ? nullptr : i->find_function(name);
}

std::string Package::qualified_interface(const Interface& iface) const {
  std::string s = ns + ":" + name + "/" + iface.name.kebab;
  if (!version.empty()) s += "@" + version;
  return s;
}

std::string Package::type_to_string(TypeId id) const {
  if (id == kNoType) return "_";
  if (id >= types.size()) return "<bad type id>";
  const Type& t = types[id];
  if (!t.name.written.empty()) return t.name.written;
  switch (t.kind) {
    case TypeKind::kList: return "list<" + type_to_string(t.elem) + ">";
    case TypeKind::kOption: return "option<" + type_to_string(t.elem) + ">";
    case TypeKind::kTuple: {
      std::string s = "tuple<";
      for (size_t i = 0; i < t.fields.size(); ++i) s += (i ? ", " : "") + type_to_string(t.fields[i].type);
      return s + ">";
    }
    case TypeKind::kResult:
      if (t.ok == kNoType && t.err == kNoType) return "result";
      if (t.err == kNoType) return "result<" + type_to_string(t.ok) + ">";
      return "result<" + type_to_string(t.ok) + ", " + type_to_string(t.err) + ">";
    default: return type_kind_name(t.kind);
  }
}

}  // namespace covenant::wit
