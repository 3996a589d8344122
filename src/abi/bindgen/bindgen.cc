// covenant bindgen: see bindgen.h. One walker over the world's exported
// functions collects the types they use (dependencies first); each language
// backend then spells, per type, its definition and the per-type helpers the
// trampolines call: lift from flat core values, load from / store to guest
// memory at abi::Layout offsets, and free what a stored value allocated.
#include "abi/bindgen/bindgen.h"

#include <algorithm>
#include <cctype>
#include <memory>
#include <set>
#include <sstream>

#include "covenant/abi.h"

namespace covenant::bindgen {
namespace {

using abi::CoreType;
using wit::TypeId;
using wit::TypeKind;

bool is_scalar(TypeKind k) { return k <= TypeKind::kChar; }
bool is_variant_like(TypeKind k) {
  return k == TypeKind::kVariant || k == TypeKind::kEnum || k == TypeKind::kOption || k == TypeKind::kResult;
}

std::string snake(std::string_view kebab) {
  std::string s;
  for (char c : kebab) s += c == '-' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string upper(std::string_view kebab) {
  std::string s;
  for (char c : kebab) s += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
std::string camel(std::string_view kebab) {
  std::string s;
  bool up = true;
  for (char c : kebab) {
    if (c == '-' || c == '_') {
      up = true;
      continue;
    }
    s += up ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
    up = false;
  }
  return s;
}
std::string lower_camel(std::string_view kebab) {
  std::string s = camel(kebab);
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}
std::string quote(std::string_view s) {  // a C/Rust/TS string literal of an ASCII name
  std::string q = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') q += '\\';
    q += c;
  }
  return q + "\"";
}

const std::set<std::string>& keywords() {
  static const std::set<std::string> k = {
      // C, C++, Rust, AssemblyScript reserved words that WIT allows as labels
      "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum", "extern",
      "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return", "short", "signed",
      "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void", "volatile", "while", "bool",
      "class", "delete", "new", "this", "throw", "try", "catch", "namespace", "template", "typename", "using",
      "virtual", "private", "public", "protected", "operator", "friend", "mut", "fn", "impl", "trait", "type",
      "match", "mod", "move", "pub", "ref", "self", "super", "crate", "loop", "where", "as", "in", "let", "use",
      "dyn", "box", "async", "await", "unsafe", "true", "false", "function", "var", "export", "import", "null",
      "interface", "package", "yield", "typeof", "instanceof", "with", "abstract", "final", "override", "macro",
      "priv", "become", "unsized", "virtual", "string", "declare", "module", "from", "of"};
  return k;
}
std::string ident(std::string s) { return keywords().count(s) ? s + "_" : s; }

std::string hex_comment_line(const std::string& prefix, const std::string& text) {
  std::string out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out += prefix + line + "\n";
  return out;
}

struct TupleLayout {
  std::vector<uint32_t> offsets;
  uint32_t size = 0;
  uint32_t align = 1;
};

uint32_t align_to(uint32_t v, uint32_t a) { return (v + a - 1) / a * a; }

struct ExportFn {
  const wit::Function* fn = nullptr;
  std::string owner;       // snake name of the interface (or the world, for world-level functions)
  std::string owner_kebab;
  std::string core_name;   // agent:settlement/policy@0.1.0#approve
  std::string post_name;   // cabi_post_...
  abi::CoreSignature sig;
  std::vector<TypeId> params;
  std::vector<TypeId> results;
  TupleLayout params_tuple;   // when params spill
  TupleLayout results_tuple;  // when results spill
  std::string module, field;  // imports: the core import's module and field
};

class Gen {
 public:
  Gen(const wit::Package& pkg, const wit::World& world, const Options& opts)
      : pkg_(pkg), abi_(pkg), world_(world), opts_(opts), w_(snake(world.name.kebab)), anon_prefix_(w_) {}
  // A dependency package's generator: only the imports the main world takes from it.
  Gen(const wit::Package& pkg, const Gen& main, std::string tag)
      : pkg_(pkg), abi_(pkg), world_(main.world_), opts_(main.opts_), w_(main.w_), tag_(std::move(tag)),
        anon_prefix_(w_ + "_" + snake(pkg.ns) + "_" + snake(pkg.name)) {}

  Status collect() {
    for (const auto& item : world_.imports) {
      if (item.kind == wit::WorldItem::Kind::kFunction) {
        add_import(item.function, "", w_);
        continue;
      }
      std::string core = abi::interface_core_name(pkg_, item);
      if (item.interface_index >= 0) {
        const auto& iface = pkg_.interfaces[static_cast<size_t>(item.interface_index)];
        for (const auto& fn : iface.functions) add_import(fn, core, snake(iface.name.kebab));
        continue;
      }
      // A foreign interface (`import covenant:host/kv@0.1.0;`): resolved in Options::deps.
      bool found = false;
      for (size_t d = 0; d < opts_.deps.size() && !found; ++d) {
        const wit::Package& dep = *opts_.deps[d];
        for (const auto& iface : dep.interfaces) {
          if (dep.qualified_interface(iface) != item.name) continue;
          found = true;
          if (iface.functions.empty()) break;
          Gen* g = dep_gen(dep, d);
          for (const auto& fn : iface.functions) g->add_import(fn, core, snake(iface.name.kebab));
          break;
        }
      }
      if (!found)
        return Status::not_found("bindgen: world " + world_.name.written + " imports " + item.name +
                                 ", which no --deps package defines (pass the WIT package that defines it with --deps DEP.wit)");
    }
    for (auto& d : deps_) d->visit_fns(d->imports_);
    visit_fns(imports_);
    for (const auto& item : world_.exports) {
      if (item.kind == wit::WorldItem::Kind::kFunction) {
        add_export(item.function, "", w_, world_.name.kebab);
      } else {
        if (item.interface_index < 0) return Status::unsupported("bindgen: exported foreign interface " + item.name);
        const auto& iface = pkg_.interfaces[static_cast<size_t>(item.interface_index)];
        std::string core = abi::interface_core_name(pkg_, item);
        for (const auto& fn : iface.functions) add_export(fn, core, snake(iface.name.kebab), iface.name.kebab);
      }
    }
    visit_fns(exports_);
    for (TypeId t : types_) {
      if (abi_.layout(t).size > 0xffffffffull) return Status::unsupported("bindgen: type " + pkg_.type_to_string(t) + " is too large for wasm32");
    }
    return Status::ok();
  }

  Result<std::vector<GeneratedFile>> run() {
    switch (opts_.lang) {
      case Lang::kC: return std::vector<GeneratedFile>{{w_ + ".h", c_header()}, {w_ + ".c", c_source()}};
      case Lang::kCpp:
        return std::vector<GeneratedFile>{{w_ + ".h", c_header()}, {w_ + ".c", c_source()}, {w_ + ".hpp", cpp_header()}};
      case Lang::kRust: return std::vector<GeneratedFile>{{w_ + ".rs", rust()}};
      case Lang::kAssemblyScript: {
        std::string renames;
        std::string ts = assemblyscript(&renames);
        return std::vector<GeneratedFile>{{w_ + ".ts", ts}, {w_ + "_types.ts", as_types()}, {w_ + ".exports", renames}};
      }
    }
    return Status::invalid("bindgen: unknown language");
  }

 private:
  const wit::Type& ty(TypeId t) const { return pkg_.type(t); }
  const abi::Layout& lay(TypeId t) const { return abi_.layout(t); }

  TupleLayout tuple_layout(const std::vector<TypeId>& ts) const {
    // The params/results tuple is a record of these types (CanonicalABI.md);
    // it has no TypeId, so its offsets come from the members' abi layouts.
    TupleLayout tl;
    uint32_t off = 0;
    for (TypeId t : ts) {
      off = align_to(off, lay(t).align);
      tl.offsets.push_back(off);
      off += static_cast<uint32_t>(lay(t).size);
      tl.align = std::max(tl.align, lay(t).align);
    }
    tl.size = align_to(off, tl.align);
    return tl;
  }

  Gen* dep_gen(const wit::Package& dep, size_t index) {
    for (auto& d : deps_)
      if (&d->pkg_ == &dep) return d.get();
    deps_.push_back(std::make_unique<Gen>(dep, *this, "d" + std::to_string(index) + "_"));
    return deps_.back().get();
  }

  // What imports and exports share: the core signature and the params/results tuples.
  ExportFn function_abi(const wit::Function& fn, const std::string& owner, abi::Direction dir) const {
    ExportFn e;
    e.fn = &fn;
    e.owner = owner;
    e.sig = abi_.core_signature(fn, dir);
    for (const auto& p : fn.params) e.params.push_back(p.type);
    for (const auto& r : fn.results) e.results.push_back(r.type);
    e.params_tuple = tuple_layout(e.params);
    e.results_tuple = tuple_layout(e.results);
    return e;
  }

  void add_import(const wit::Function& fn, const std::string& core, const std::string& owner) {
    ExportFn e = function_abi(fn, owner, abi::Direction::kImport);
    auto name = abi::import_name(core, fn);
    e.module = name.module;
    e.field = name.field;
    imports_.push_back(std::move(e));
  }

  void add_export(const wit::Function& fn, const std::string& core, const std::string& owner, const std::string& owner_kebab) {
    ExportFn e = function_abi(fn, owner, abi::Direction::kExport);
    e.owner_kebab = owner_kebab;
    e.core_name = abi::export_name(core, fn);
    e.post_name = abi::post_return_name(core, fn);
    exports_.push_back(std::move(e));
  }

  void visit_fns(const std::vector<ExportFn>& fns) {
    for (const auto& e : fns) {
      for (auto t : e.params) visit(t);
      for (auto t : e.results) visit(t);
    }
  }
  void visit(TypeId t) {
    if (t == wit::kNoType) return;
    const auto& y = ty(t);
    if (y.kind <= TypeKind::kString) return;
    if (seen_.count(t)) return;
    seen_.insert(t);
    visit(y.elem);
    visit(y.ok);
    visit(y.err);
    for (const auto& f : y.fields) visit(f.type);
    types_.push_back(t);
  }

  bool needs_free(TypeId t) const {
    if (t == wit::kNoType) return false;
    const auto& y = ty(t);
    if (y.kind == TypeKind::kString || y.kind == TypeKind::kList) return true;
    if (y.kind == TypeKind::kOption) return needs_free(y.elem);
    if (y.kind == TypeKind::kResult) return needs_free(y.ok) || needs_free(y.err);
    for (const auto& f : y.fields)
      if (needs_free(f.type)) return true;
    return false;
  }

  // Case names of a variant-like type, in discriminant order.
  std::vector<std::string> case_names(TypeId t) const {
    const auto& y = ty(t);
    if (y.kind == TypeKind::kOption) return {"none", "some"};
    if (y.kind == TypeKind::kResult) return {"ok", "err"};
    std::vector<std::string> n;
    for (const auto& f : y.fields) n.push_back(f.name.kebab);
    return n;
  }

  // Structural name of a type for generated identifiers: "intent", "list_u8", "option_string".
  std::string anon(TypeId t) const {
    if (t == wit::kNoType) return "void";
    const auto& y = ty(t);
    if (!y.name.kebab.empty()) return snake(y.name.kebab);
    switch (y.kind) {
      case TypeKind::kList: return "list_" + anon(y.elem);
      case TypeKind::kOption: return "option_" + anon(y.elem);
      case TypeKind::kResult: return "result_" + anon(y.ok) + "_" + anon(y.err);
      case TypeKind::kTuple: {
        std::string s = "tuple";
        for (const auto& f : y.fields) s += "_" + anon(f.type);
        return s;
      }
      default: return type_kind_name(y.kind);
    }
  }

  // The flat core types of a case payload, coerced from the variant's joined slots.
  // Returns expressions (in `lang`) for each payload core value.
  enum class L { kC, kRust, kAs };
  std::vector<std::string> coerce_case(L l, TypeId variant, TypeId payload, const std::vector<std::string>& args) const {
    std::vector<std::string> out;
    if (payload == wit::kNoType) return out;
    const auto& joined = lay(variant).flat;
    const auto& want = lay(payload).flat;
    for (size_t i = 0; i < want.size(); ++i) {
      CoreType have = joined[1 + i];
      const std::string& a = args[1 + i];
      CoreType w = want[i];
      if (w == have) {
        out.push_back(a);
        continue;
      }
      // Per language, the text around the joined value that makes it an i32, f32, f64 or i64.
      static const char* const kCoerce[3][4][2] = {
          {{"(int32_t)", ""}, {"__cov_f32_from_bits((uint32_t)", ")"}, {"__cov_f64_from_bits((uint64_t)", ")"}, {"(int64_t)", ""}},
          {{"(", " as i32)"}, {"f32::from_bits(", " as u32)"}, {"f64::from_bits(", " as u64)"}, {"(", " as i64)"}},
          {{"<i32>", ""}, {"reinterpret<f32>(<i32>", ")"}, {"reinterpret<f64>(", ")"}, {"<i64>", ""}},
      };
      int k = w == CoreType::kI32 ? 0 : w == CoreType::kF32 ? 1 : w == CoreType::kF64 ? 2 : 3;
      const auto& around = kCoerce[static_cast<int>(l)][k];
      out.push_back(around[0] + a + around[1]);
    }
    return out;
  }

  std::vector<std::string> slice(const std::vector<std::string>& args, size_t at, size_t n) const {
    return {args.begin() + static_cast<long>(at), args.begin() + static_cast<long>(at + n)};
  }
  static std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
    return s;
  }
  std::vector<std::string> pnames(size_t n, const char* prefix = "p") const {
    std::vector<std::string> v;
    for (size_t i = 0; i < n; ++i) v.push_back(prefix + std::to_string(i));
    return v;
  }
  // A trampoline's statements binding a0, a1, ... to its params: each loaded from
  // the spilled params tuple at `base`, or lifted from its flat core values `p`.
  // bind(type, name, value) spells the statement, load(type, address) and
  // lift(type, flat values) the value.
  template <class Bind, class Load, class Lift>
  std::vector<std::string> bind_params(const ExportFn& e, const std::vector<std::string>& p, const std::string& base, std::string* s,
                                       Bind bind, Load load, Lift lift) const {
    std::vector<std::string> args;
    size_t at = 0;
    for (size_t i = 0; i < e.params.size(); ++i) {
      TypeId t = e.params[i];
      std::string a = "a" + std::to_string(i);
      if (e.sig.params_spilled) {
        *s += bind(t, a, load(t, base + " + " + std::to_string(e.params_tuple.offsets[i])));
      } else {
        size_t k = lay(t).flat.size();
        *s += bind(t, a, lift(t, slice(p, at, k)));
        at += k;
      }
      args.push_back(a);
    }
    return args;
  }
  // One statement per result that needs freeing, at its offset in the results tuple at `base`.
  template <class Free>
  std::string free_results(const ExportFn& e, const std::string& base, const char* ind, Free free) const {
    std::string s;
    for (size_t i = 0; i < e.results.size(); ++i)
      if (needs_free(e.results[i])) s += ind + free(e.results[i], base + std::to_string(e.results_tuple.offsets[i])) + "\n";
    return s;
  }
  // Statements over a record's or tuple's fields in memory at `ptr`, one a line:
  // stmt(field type, its address, field index) for each field (with
  // `only_freed`, each one that needs freeing).
  template <class Stmt>
  std::string field_stmts(TypeId t, const char* ind, bool only_freed, Stmt stmt) const {
    const auto& y = ty(t);
    std::string s;
    for (size_t i = 0; i < y.fields.size(); ++i)
      if (!only_freed || needs_free(y.fields[i].type))
        s += ind + stmt(y.fields[i].type, "ptr + " + std::to_string(lay(t).field_offsets[i]), i) + "\n";
    return s;
  }
  // Lines over a variant-like value's cases that carry a payload (with
  // `only_freed`, a payload that needs freeing): line(case, payload type, payload address).
  template <class Line>
  std::string case_lines(TypeId t, bool only_freed, Line line) const {
    const auto& l = lay(t);
    std::string s;
    for (size_t c = 0; c < l.cases.size(); ++c) {
      TypeId p = l.cases[c];
      if (only_freed ? needs_free(p) : p != wit::kNoType) s += line(c, p, "ptr + " + std::to_string(l.payload_offset));
    }
    return s;
  }
  // The flat values of each field of a record or tuple, from the record's flat values `a`.
  std::vector<std::vector<std::string>> field_slices(TypeId t, const std::vector<std::string>& a) const {
    std::vector<std::vector<std::string>> out;
    size_t at = 0;
    for (const auto& f : ty(t).fields) {
      size_t k = lay(f.type).flat.size();
      out.push_back(slice(a, at, k));
      at += k;
    }
    return out;
  }
  // A scalar, enum or flags value: one flat core value, stored and passed by value.
  bool flat_scalar(TypeId t) const {
    auto k = ty(t).kind;
    return is_scalar(k) || k == TypeKind::kEnum || k == TypeKind::kFlags;
  }
  // The statement appending the flat values of the stored value at `ptr` to
  // `out` as raw bits: push(address, unsigned type) reads one; a compound type
  // calls its flat helper `<fn_prefix><tag>t<id>`.
  template <class Push>
  std::string flat_stmt(TypeId t, const std::string& ptr, const char* fn_prefix, Push push) const {
    const auto& y = ty(t);
    const auto& l = lay(t);
    if (flat_scalar(t)) {
      uint64_t bytes = y.kind == TypeKind::kEnum ? l.discriminant_bytes : l.size;
      return push(ptr, bytes == 1 ? "u8" : bytes == 2 ? "u16" : bytes == 4 ? "u32" : "u64");
    }
    if (y.kind == TypeKind::kString) return push(ptr, "u32") + " " + push(ptr + " + 4", "u32");
    return fn_prefix + tag_ + "t" + std::to_string(t) + "(" + ptr + ", out);";
  }
  // How Rust and AssemblyScript spell the import-side helper that appends a
  // stored compound value's flat values to `out` as raw bits; {a, b} pairs go
  // around the discriminant type, the case number and the joined slot count.
  struct FlatSpelling {
    const char* open[2];  // around the helper's name suffix (<tag>t<id>)
    const char* list;     // a list's body
    const char* ind;      // a record field's statement indentation
    const char* variant_open[2];
    const char* case_open[2];
    const char* case_close;
    const char* variant_close[2];
    std::string (Gen::*stmt)(TypeId, const std::string&) const;
  };
  std::string flat_fn(TypeId t, const FlatSpelling& sp) const {
    const auto& y = ty(t);
    const auto& l = lay(t);
    if (flat_scalar(t) || l.flat_overflow) return "";
    std::string s = sp.open[0] + tag_ + "t" + std::to_string(t) + sp.open[1];
    auto flat = [&](TypeId f, const std::string& at, size_t = 0) { return (this->*sp.stmt)(f, at); };
    switch (y.kind) {
      case TypeKind::kList: s += sp.list; break;
      case TypeKind::kRecord:
      case TypeKind::kTuple: s += field_stmts(t, sp.ind, false, flat); break;
      default:
        s += sp.variant_open[0] + std::string(wasm_uint(l.discriminant_bytes)) + sp.variant_open[1];
        s += case_lines(t, false, [&](size_t c, TypeId p, const std::string& at) {
          return sp.case_open[0] + std::to_string(c) + sp.case_open[1] + flat(p, at) + sp.case_close;
        });
        s += sp.variant_close[0] + std::to_string(l.flat.size() - 1) + sp.variant_close[1];
    }
    return s + "}\n";
  }
  bool any_needs_free(const std::vector<TypeId>& ts) const {
    for (auto t : ts)
      if (needs_free(t)) return true;
    return false;
  }
  std::string header_comment(const char* c) const {
    return std::string(c) + " Generated by `covenant bindgen` from " + opts_.source_name + ", world " +
           world_.name.written + ". Do not edit: regenerate.\n";
  }

  // ===================================================================== C
  static const char* c_core(CoreType t) {
    switch (t) {
      case CoreType::kI32: return "int32_t";
      case CoreType::kI64: return "int64_t";
      case CoreType::kF32: return "float";
      case CoreType::kF64: return "double";
    }
    return "?";
  }
  std::string c_name(TypeId t) const {
    const auto& y = ty(t);
    switch (y.kind) {
      case TypeKind::kBool: return "bool";
      case TypeKind::kS8: return "int8_t";
      case TypeKind::kU8: return "uint8_t";
      case TypeKind::kS16: return "int16_t";
      case TypeKind::kU16: return "uint16_t";
      case TypeKind::kS32: return "int32_t";
      case TypeKind::kU32: return "uint32_t";
      case TypeKind::kS64: return "int64_t";
      case TypeKind::kU64: return "uint64_t";
      case TypeKind::kF32: return "float";
      case TypeKind::kF64: return "double";
      case TypeKind::kChar: return "uint32_t";
      case TypeKind::kString: return w_ + "_string_t";
      default: break;
    }
    if (!y.name.kebab.empty()) return snake(y.interface.empty() ? w_ : y.interface) + "_" + snake(y.name.kebab) + "_t";
    return anon_prefix_ + "_" + anon(t) + "_t";
  }
  static std::string strip_t(const std::string& n) { return n.substr(0, n.size() - 2); }
  static const char* c_uint(uint32_t bytes) {
    return bytes == 1 ? "uint8_t" : bytes == 2 ? "uint16_t" : "uint32_t";
  }

  std::string c_typedef(TypeId t) const {
    const auto& y = ty(t);
    const auto& l = lay(t);
    std::string n = c_name(t);
    std::string up = upper(strip_t(n));
    std::string s = hex_comment_line("// ", y.docs);
    switch (y.kind) {
      case TypeKind::kList: s += "typedef struct " + n + " {\n  " + c_name(y.elem) + " *ptr;\n  size_t len;\n} " + n + ";\n"; break;
      case TypeKind::kRecord:
      case TypeKind::kTuple:
        s += "typedef struct " + n + " {\n";
        for (size_t i = 0; i < y.fields.size(); ++i) {
          s += hex_comment_line("  // ", y.fields[i].docs);
          s += "  " + c_name(y.fields[i].type) + " " + c_field(t, i) + ";\n";
        }
        s += "} " + n + ";\n";
        break;
      case TypeKind::kEnum:
        s += "typedef " + std::string(c_uint(l.discriminant_bytes)) + " " + n + ";\n";
        for (size_t i = 0; i < y.fields.size(); ++i) s += "#define " + up + "_" + upper(y.fields[i].name.kebab) + " " + std::to_string(i) + "\n";
        break;
      case TypeKind::kFlags:
        s += "typedef " + std::string(c_uint(static_cast<uint32_t>(l.size))) + " " + n + ";\n";
        for (size_t i = 0; i < y.fields.size(); ++i)
          s += "#define " + up + "_" + upper(y.fields[i].name.kebab) + " ((" + n + ")1u << " + std::to_string(i) + ")\n";
        break;
      case TypeKind::kVariant: {
        s += "typedef struct " + n + " {\n  " + c_uint(l.discriminant_bytes) + " tag;\n";
        std::string u;
        for (size_t i = 0; i < y.fields.size(); ++i)
          if (y.fields[i].type != wit::kNoType) u += "    " + c_name(y.fields[i].type) + " " + ident(snake(y.fields[i].name.kebab)) + ";\n";
        if (!u.empty()) s += "  union {\n" + u + "  } val;\n";
        s += "} " + n + ";\n";
        for (size_t i = 0; i < y.fields.size(); ++i) s += "#define " + up + "_" + upper(y.fields[i].name.kebab) + " " + std::to_string(i) + "\n";
        break;
      }
      case TypeKind::kOption: s += "typedef struct " + n + " {\n  bool is_some;\n  " + c_name(y.elem) + " val;\n} " + n + ";\n"; break;
      case TypeKind::kResult: {
        s += "typedef struct " + n + " {\n  bool is_err;\n";
        std::string u;
        if (y.ok != wit::kNoType) u += "    " + c_name(y.ok) + " ok;\n";
        if (y.err != wit::kNoType) u += "    " + c_name(y.err) + " err;\n";
        if (!u.empty()) s += "  union {\n" + u + "  } val;\n";
        s += "} " + n + ";\n";
        break;
      }
      default: break;
    }
    return s;
  }
  std::string c_field(TypeId t, size_t i) const {
    const auto& y = ty(t);
    if (y.kind == TypeKind::kTuple) return "f" + std::to_string(i);
    return ident(snake(y.fields[i].name.kebab));
  }
  bool c_has_union(TypeId t) const {
    const auto& y = ty(t);
    if (y.kind == TypeKind::kVariant) {
      for (const auto& f : y.fields)
        if (f.type != wit::kNoType) return true;
      return false;
    }
    if (y.kind == TypeKind::kOption) return true;
    if (y.kind == TypeKind::kResult) return y.ok != wit::kNoType || y.err != wit::kNoType;
    return false;
  }
  // The C layout must be the canonical one: the compiler proves it.
  std::string c_asserts(TypeId t) const {
    const auto& y = ty(t);
    const auto& l = lay(t);
    std::string n = c_name(t);
    std::string s = "_Static_assert(sizeof(" + n + ") == " + std::to_string(l.size) + " && _Alignof(" + n +
                    ") == " + std::to_string(l.align) + ", \"canonical ABI layout of " + pkg_.type_to_string(t) + "\");\n";
    if (y.kind == TypeKind::kRecord || y.kind == TypeKind::kTuple) {
      for (size_t i = 0; i < y.fields.size(); ++i)
        s += "_Static_assert(offsetof(" + n + ", " + c_field(t, i) + ") == " + std::to_string(l.field_offsets[i]) + ", \"field offset\");\n";
    }
    if (is_variant_like(y.kind) && c_has_union(t)) {
      s += "_Static_assert(offsetof(" + n + ", val) == " + std::to_string(l.payload_offset) + ", \"payload offset\");\n";
    }
    return s;
  }

  std::string c_lift_expr(TypeId t, const std::vector<std::string>& a) const {
    const auto& y = ty(t);
    switch (y.kind) {
      case TypeKind::kBool: return "(" + a[0] + " != 0)";
      case TypeKind::kF32:
      case TypeKind::kF64: return a[0];
      case TypeKind::kString: return "__cov_lift_string(" + join(a) + ")";
      default:
        if (is_scalar(y.kind) || y.kind == TypeKind::kEnum || y.kind == TypeKind::kFlags) return "(" + c_name(t) + ")" + a[0];
        return "__cov_lift_" + tag_ + "t" + std::to_string(t) + "(" + join(a) + ")";
    }
  }
  std::string c_lift_fn(TypeId t) const {
    const auto& y = ty(t);
    const auto& l = lay(t);
    // A type past the flat limit only ever travels in memory: no flat lift.
    if (y.kind == TypeKind::kEnum || y.kind == TypeKind::kFlags || l.flat_overflow) return "";
    auto a = pnames(l.flat.size());
    std::string params;
    for (size_t i = 0; i < a.size(); ++i) params += (i ? ", " : "") + std::string(c_core(l.flat[i])) + " " + a[i];
    std::string n = c_name(t);
    std::string s = "__attribute__((unused)) static " + n + " __cov_lift_" + tag_ + "t" + std::to_string(t) + "(" + params + ") {\n  " + n +
                    " r;\n  __builtin_memset(&r, 0, sizeof r);\n";
    switch (y.kind) {
      case TypeKind::kList:
        s += "  r.ptr = (" + c_name(y.elem) + " *)(uintptr_t)(uint32_t)p0;\n  r.len = (size_t)(uint32_t)p1;\n";
        break;
      case TypeKind::kRecord:
      case TypeKind::kTuple: {
        auto flat = field_slices(t, a);
        for (size_t i = 0; i < y.fields.size(); ++i) s += "  r." + c_field(t, i) + " = " + c_lift_expr(y.fields[i].type, flat[i]) + ";\n";
        break;
      }
      default: {  // variant-like
        std::string tagf = y.kind == TypeKind::kOption ? "is_some" : y.kind == TypeKind::kResult ? "is_err" : "tag";
        std::string tagt = (y.kind == TypeKind::kOption || y.kind == TypeKind::kResult) ? "bool" : c_uint(l.discriminant_bytes);
        s += "  switch (p0) {\n";
        for (size_t c = 0; c < l.cases.size(); ++c) {
          s += "    case " + std::to_string(c) + ":\n      r." + tagf + " = " + (tagt == "bool" ? (c ? "true" : "false") : "(" + tagt + ")" + std::to_string(c)) + ";\n";
          TypeId p = l.cases[c];
          if (p != wit::kNoType) {
            std::string member = y.kind == TypeKind::kOption ? "val"
                                 : y.kind == TypeKind::kResult ? (c ? "val.err" : "val.ok")
                                                               : "val." + ident(snake(y.fields[c].name.kebab));
            s += "      r." + member + " = " + c_lift_expr(p, coerce_case(L::kC, t, p, a)) + ";\n";
          }
          s += "      break;\n";
        }
        s += "    default:\n      __builtin_trap();\n  }\n";
        for (size_t i = 1; i < a.size(); ++i) s += "  (void)" + a[i] + ";\n";
        break;
      }
    }
    return s + "  return r;\n}\n";
  }
  std::string c_free_call(TypeId t, const std::string& ptr) const {
    if (ty(t).kind == TypeKind::kString) return w_ + "_string_free(" + ptr + ");";
    return strip_t(c_name(t)) + "_free(" + ptr + ");";
  }
  std::string c_free_fn(TypeId t) const {
    if (!needs_free(t)) return "";
    const auto& y = ty(t);
    const auto& l = lay(t);
    std::string n = c_name(t);
    std::string s = "void " + strip_t(n) + "_free(" + n + " *v) {\n";
    switch (y.kind) {
      case TypeKind::kList:
        if (needs_free(y.elem)) s += "  for (size_t i = 0; i < v->len; i++) " + c_free_call(y.elem, "&v->ptr[i]") + "\n";
        s += "  " + w_ + "_free(v->ptr);\n";
        break;
      case TypeKind::kRecord:
      case TypeKind::kTuple:
        for (size_t i = 0; i < y.fields.size(); ++i)
          if (needs_free(y.fields[i].type)) s += "  " + c_free_call(y.fields[i].type, "&v->" + c_field(t, i)) + "\n";
        break;
      case TypeKind::kOption: s += "  if (v->is_some) " + c_free_call(y.elem, "&v->val") + "\n"; break;
      case TypeKind::kResult:
        if (needs_free(y.ok)) s += "  if (!v->is_err) " + c_free_call(y.ok, "&v->val.ok") + "\n";
        if (needs_free(y.err)) s += "  if (v->is_err) " + c_free_call(y.err, "&v->val.err") + "\n";
        break;
      case TypeKind::kVariant:
        s += "  switch (v->tag) {\n";
        for (size_t c = 0; c < l.cases.size(); ++c)
          if (needs_free(l.cases[c]))
            s += "    case " + std::to_string(c) + ": " + c_free_call(l.cases[c], "&v->val." + ident(snake(y.fields[c].name.kebab))) + " break;\n";
        s += "    default: break;\n  }\n";
        break;
      default: break;
    }
    return s + "}\n";
  }

  // ---- C imports: lowering host-bound values to flat core values
  std::string c_scalar_core(TypeId t, const std::string& v) const {
    const auto& y = ty(t);
    if (y.kind == TypeKind::kBool) return "(int32_t)(" + v + " ? 1 : 0)";
    if (y.kind == TypeKind::kF32 || y.kind == TypeKind::kF64) return v;
    if (y.kind == TypeKind::kS64 || y.kind == TypeKind::kU64) return "(int64_t)" + v;
    return "(int32_t)" + v;
  }
  bool c_is_flat_scalar(TypeId t) const { return flat_scalar(t); }
  // Statements storing the flat values of `v` (an lvalue of type t) into the out lvalues.
  std::string c_lower_stmts(TypeId t, const std::string& v, const std::vector<std::string>& outs, const std::string& ind) const {
    if (c_is_flat_scalar(t)) return ind + outs[0] + " = " + c_scalar_core(t, v) + ";\n";
    std::string args;
    for (const auto& o : outs) args += ", &" + o;
    if (ty(t).kind == TypeKind::kString) return ind + "__cov_lower_string(&" + v + args + ");\n";
    return ind + "__cov_lower_" + tag_ + "t" + std::to_string(t) + "(&" + v + args + ");\n";
  }
  std::string c_lower_fn(TypeId t) const {
    const auto& y = ty(t);
    const auto& l = lay(t);
    if (c_is_flat_scalar(t) || l.flat_overflow) return "";
    std::string n = c_name(t);
    auto o = pnames(l.flat.size(), "o");
    std::string params;
    std::vector<std::string> outs;
    for (size_t i = 0; i < o.size(); ++i) {
      params += ", " + std::string(c_core(l.flat[i])) + " *" + o[i];
      outs.push_back("*" + o[i]);
    }
    std::string s = "__attribute__((unused)) static void __cov_lower_" + tag_ + "t" + std::to_string(t) + "(const " + n + " *v" + params + ") {\n";
    switch (y.kind) {
      case TypeKind::kList: s += "  *o0 = (int32_t)(uintptr_t)v->ptr;\n  *o1 = (int32_t)v->len;\n"; break;
      case TypeKind::kRecord:
      case TypeKind::kTuple: {
        auto flat = field_slices(t, outs);
        for (size_t i = 0; i < y.fields.size(); ++i) s += c_lower_stmts(y.fields[i].type, "v->" + c_field(t, i), flat[i], "  ");
        break;
      }
      default: {  // variant-like: discriminant, then the case's values coerced into the joined slots
        for (const auto& x : outs) s += "  " + x + " = 0;\n";
        std::string tagf = y.kind == TypeKind::kOption ? "is_some" : y.kind == TypeKind::kResult ? "is_err" : "tag";
        s += "  *o0 = (int32_t)v->" + tagf + ";\n  switch (*o0) {\n";
        for (size_t c = 0; c < l.cases.size(); ++c) {
          TypeId p = l.cases[c];
          if (p == wit::kNoType) continue;
          std::string member = y.kind == TypeKind::kOption ? "val" : y.kind == TypeKind::kResult ? (c ? "val.err" : "val.ok")
                                                                   : "val." + ident(snake(y.fields[c].name.kebab));
          const auto& pf = lay(p).flat;
          s += "    case " + std::to_string(c) + ": {\n";
          std::vector<std::string> tmps;
          for (size_t i = 0; i < pf.size(); ++i) {
            tmps.push_back("t" + std::to_string(i));
            s += "      " + std::string(c_core(pf[i])) + " t" + std::to_string(i) + ";\n";
          }
          s += c_lower_stmts(p, "v->" + member, tmps, "      ");
          for (size_t i = 0; i < pf.size(); ++i) {
            CoreType have = l.flat[1 + i], want = pf[i];
            std::string x = tmps[i];
            if (have != want) {
              if (want == CoreType::kI32) x = "(int64_t)(uint32_t)" + x;
              else if (want == CoreType::kF32) x = have == CoreType::kI32 ? "(int32_t)__cov_f32_bits(" + x + ")" : "(int64_t)__cov_f32_bits(" + x + ")";
              else if (want == CoreType::kF64) x = "(int64_t)__cov_f64_bits(" + x + ")";
            }
            s += "      " + outs[1 + i] + " = " + x + ";\n";
          }
          s += "      break;\n    }\n";
        }
        s += "    default:\n      break;\n  }\n";
      }
    }
    return s + "}\n";
  }
  std::string c_import_fn(const ExportFn& e) const { return "imports_" + e.owner + "_" + snake(e.fn->name.kebab); }
  std::string c_import_result_type(const ExportFn& e) const {
    if (e.results.empty()) return "void";
    if (e.results.size() == 1) return c_name(e.results[0]);
    return "imports_" + e.owner + "_" + snake(e.fn->name.kebab) + "_results_t";
  }
  std::string c_import_proto(const ExportFn& e) const {
    std::string s = hex_comment_line("// ", e.fn->docs);
    if (e.results.empty())
      s += "// Import " + e.module + " " + e.field + ". Returns nothing.\n";
    else
      s += "// Import " + e.module + " " + e.field + ". Strings and lists in the result are the guest's own\n"
           "// (the host places them with cabi_realloc): free them as any allocation.\n";
    s += c_import_result_type(e) + " " + c_import_fn(e) + "(";
    for (size_t i = 0; i < e.params.size(); ++i) s += (i ? ", " : "") + c_name(e.params[i]) + " " + ident(snake(e.fn->params[i].name.kebab));
    if (e.params.empty()) s += "void";
    return s + ")";
  }
  std::string c_import_results_typedef(const ExportFn& e) const {
    if (e.results.size() < 2) return "";
    std::string n = c_import_result_type(e);
    std::string s = "typedef struct " + n + " {\n";
    for (size_t i = 0; i < e.results.size(); ++i) s += "  " + c_name(e.results[i]) + " " + ident(snake(e.fn->results[i].name.kebab)) + ";\n";
    return s + "} " + n + ";\n";
  }
  std::string c_import_def(const ExportFn& e, size_t idx) const {
    const auto& sig = e.sig;
    std::string id = tag_ + std::to_string(idx);
    std::string core_params;
    for (size_t i = 0; i < sig.params.size(); ++i) core_params += (i ? ", " : "") + std::string(c_core(sig.params[i]));
    if (core_params.empty()) core_params = "void";
    std::string ret = sig.results.empty() ? "void" : c_core(sig.results[0]);
    std::string s = "__attribute__((import_module(" + quote(e.module) + "), import_name(" + quote(e.field) + ")))\nextern " + ret +
                    " __cov_import_" + id + "(" + core_params + ");\n";
    s += c_import_proto(e) + " {\n";
    std::vector<std::string> args;
    if (sig.params_spilled) {
      s += "  static _Alignas(" + std::to_string(e.params_tuple.align) + ") uint8_t in[" + std::to_string(std::max<uint32_t>(e.params_tuple.size, 1)) + "];\n";
      for (size_t i = 0; i < e.params.size(); ++i)
        s += "  memcpy(in + " + std::to_string(e.params_tuple.offsets[i]) + ", &" + ident(snake(e.fn->params[i].name.kebab)) + ", sizeof(" +
             c_name(e.params[i]) + "));\n";
      args.push_back("(int32_t)(uintptr_t)in");
    } else {
      size_t at = 0;
      for (size_t i = 0; i < e.params.size(); ++i) {
        const auto& f = lay(e.params[i]).flat;
        std::vector<std::string> outs;
        for (size_t k = 0; k < f.size(); ++k) {
          std::string v = "p" + std::to_string(at + k);
          s += "  " + std::string(c_core(f[k])) + " " + v + ";\n";
          outs.push_back(v);
          args.push_back(v);
        }
        s += c_lower_stmts(e.params[i], ident(snake(e.fn->params[i].name.kebab)), outs, "  ");
        at += f.size();
      }
    }
    std::string rt = c_import_result_type(e);
    if (sig.results_spilled) {
      s += "  _Alignas(" + std::to_string(e.results_tuple.align) + ") uint8_t ret_area[" + std::to_string(std::max<uint32_t>(e.results_tuple.size, 1)) + "];\n";
      args.push_back("(int32_t)(uintptr_t)ret_area");
      s += "  __cov_import_" + id + "(" + join(args) + ");\n  " + rt + " r;\n  memcpy(&r, ret_area, sizeof r);\n  return r;\n";
    } else if (!sig.results.empty()) {
      s += "  " + ret + " x = __cov_import_" + id + "(" + join(args) + ");\n  return " + c_lift_expr(e.results[0], {"x"}) + ";\n";
    } else {
      s += "  __cov_import_" + id + "(" + join(args) + ");\n";
    }
    return s + "}\n\n";
  }

  // Structurally equal anonymous types (two `list<u8>`) have distinct TypeIds
  // but one name: each named definition is emitted once.
  std::vector<TypeId> distinct(std::string (Gen::*name)(TypeId) const) const {
    std::vector<TypeId> out;
    std::set<std::string> names;
    for (TypeId t : types_)
      if (names.insert((this->*name)(t)).second) out.push_back(t);
    return out;
  }
  std::vector<TypeId> c_distinct() const { return distinct(&Gen::c_name); }
  std::vector<TypeId> as_distinct() const { return distinct(&Gen::as_name); }

  // Header and source pieces of a dependency package's imports.
  std::string c_header_types() const {
    std::string s;
    for (TypeId t : c_distinct()) s += c_typedef(t) + "\n";
    return s;
  }
  std::string c_header_imports() const {
    std::string s;
    for (const auto& e : imports_) s += c_import_results_typedef(e) + c_import_proto(e) + ";\n\n";
    return s;
  }
  std::string c_header_frees() const {
    std::string s;
    for (TypeId t : c_distinct())
      if (needs_free(t)) s += "void " + strip_t(c_name(t)) + "_free(" + c_name(t) + " *v);\n";
    return s;
  }
  std::string c_source_helpers() const {
    std::string s;
    for (TypeId t : c_distinct()) s += c_asserts(t) + c_free_fn(t);
    for (TypeId t : types_) s += c_lift_fn(t) + (imports_.empty() ? "" : c_lower_fn(t));
    return s;
  }
  std::string c_source_imports() const {
    std::string s;
    for (size_t i = 0; i < imports_.size(); ++i) s += c_import_def(imports_[i], i);
    return s;
  }

  std::string c_user_fn(const ExportFn& e) const { return "exports_" + e.owner + "_" + snake(e.fn->name.kebab); }
  std::string c_result_type(const ExportFn& e) const {
    if (e.results.empty()) return "void";
    if (e.results.size() == 1) return c_name(e.results[0]);
    return e.owner + "_" + snake(e.fn->name.kebab) + "_results_t";
  }
  std::string c_user_proto(const ExportFn& e) const {
    std::string s = hex_comment_line("// ", e.fn->docs);
    s += "// Implemented by the contract. As with wit-bindgen, the contract owns the params (free\n"
         "// them with the *_free functions, or return them inside the result); the result is\n"
         "// owned by the bindings and freed in cabi_post_*: allocate its strings and lists with\n"
         "// " + w_ + "_malloc or " + w_ + "_string_dup, or point them at static data (never freed).\n";
    s += c_result_type(e) + " " + c_user_fn(e) + "(";
    for (size_t i = 0; i < e.params.size(); ++i)
      s += (i ? ", " : "") + c_name(e.params[i]) + " " + ident(snake(e.fn->params[i].name.kebab));
    if (e.params.empty()) s += "void";
    return s + ");\n";
  }

  std::string c_header() const {
    std::string g = upper(w_) + "_BINDINGS_H";
    std::string s = header_comment("//");
    s += "// Guest side of the canonical ABI for freestanding wasm32 C (clang --target=wasm32\n"
         "// -nostdlib -ffreestanding): no libc needed. Types mirror the canonical memory\n"
         "// layout, which the .c checks with _Static_assert against Covenant's abi::Layout.\n";
    s += "#ifndef " + g + "\n#define " + g + "\n\n#include <stdbool.h>\n#include <stddef.h>\n#include <stdint.h>\n\n";
    s += "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n";
    s += "typedef struct " + w_ + "_string_t {\n  uint8_t *ptr;  // UTF-8, not NUL-terminated\n  size_t len;\n} " + w_ + "_string_t;\n\n";
    for (const auto& d : deps_) s += d->c_header_types();
    for (TypeId t : c_distinct()) s += c_typedef(t) + "\n";
    for (const auto& e : exports_) {
      if (e.results.size() > 1) {
        std::string n = c_result_type(e);
        s += "typedef struct " + n + " {\n";
        for (size_t i = 0; i < e.results.size(); ++i) s += "  " + c_name(e.results[i]) + " " + ident(snake(e.fn->results[i].name.kebab)) + ";\n";
        s += "} " + n + ";\n\n";
      }
    }
    s += "// Allocator (bump with a free list over linear memory past __heap_base). Freeing a\n"
         "// pointer that the allocator did not hand out (static data, NULL) does nothing.\n";
    s += "void *" + w_ + "_malloc(size_t size);\nvoid " + w_ + "_free(void *ptr);\n";
    s += "void *cabi_realloc(void *old_ptr, size_t old_size, size_t align, size_t new_size);\n";
    s += "// Points *ret at a NUL-terminated string without copying (static data).\nvoid " + w_ + "_string_set(" + w_ +
         "_string_t *ret, const char *s);\n";
    s += "// Copies a NUL-terminated string into memory from " + w_ + "_malloc.\nvoid " + w_ + "_string_dup(" + w_ +
         "_string_t *ret, const char *s);\n";
    s += "// Frees the strings and lists a value owns (not the value itself).\nvoid " + w_ + "_string_free(" + w_ + "_string_t *s);\n";
    for (const auto& d : deps_) s += d->c_header_frees();
    s += c_header_frees() + "\n";
    for (const auto& d : deps_) s += d->c_header_imports();
    s += c_header_imports();
    for (const auto& e : exports_) s += c_user_proto(e) + "\n";
    s += "#ifdef __cplusplus\n}\n#endif\n\n#endif  // " + g + "\n";
    return s;
  }

  std::string c_source() const {
    std::string s = header_comment("//");
    s += "#include \"" + w_ + ".h\"\n\n";
    s += R"(// Freestanding: the compiler may call these for struct copies.
__attribute__((weak)) void *memcpy(void *dst, const void *src, size_t n) {
  uint8_t *d = (uint8_t *)dst;
  const uint8_t *s = (const uint8_t *)src;
  while (n--) *d++ = *s++;
  return dst;
}
__attribute__((weak)) void *memset(void *dst, int c, size_t n) {
  uint8_t *d = (uint8_t *)dst;
  while (n--) *d++ = (uint8_t)c;
  return dst;
}

// ---- allocator: blocks of 8-byte-aligned payloads with a size header; freed
// blocks go to a first-fit free list, the top block is given back to the bump.
extern uint8_t __heap_base;
static uintptr_t __cov_heap_top;
typedef struct __cov_block { uint32_t size; uint32_t next; } __cov_block;  // header before each payload
static uint32_t __cov_free_head;  // payload address of the first free block, 0 = none

static __cov_block *__cov_header(uintptr_t payload) { return (__cov_block *)(payload - sizeof(__cov_block)); }

static uintptr_t __cov_bump(uint32_t size) {
  if (__cov_heap_top == 0) __cov_heap_top = ((uintptr_t)&__heap_base + 7u) & ~(uintptr_t)7u;
  uintptr_t payload = __cov_heap_top + sizeof(__cov_block);
  uintptr_t end = payload + size;
  uintptr_t have = (uintptr_t)__builtin_wasm_memory_size(0) * 65536u;
  if (end > have) {
    uintptr_t pages = (end - have + 65535u) / 65536u;
    if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) __builtin_trap();
  }
  __cov_header(payload)->size = size;
  __cov_header(payload)->next = 0;
  __cov_heap_top = end;
  return payload;
}

void *)" + w_ + R"(_malloc(size_t size) {
  uint32_t n = (uint32_t)((size + 7u) & ~(size_t)7u);
  if (n == 0) n = 8;
  uint32_t *link = &__cov_free_head;
  while (*link != 0) {
    __cov_block *h = __cov_header(*link);
    if (h->size >= n && h->size <= 2 * n) {
      uint32_t p = *link;
      *link = h->next;
      h->next = 0;
      return (void *)(uintptr_t)p;
    }
    link = &h->next;
  }
  return (void *)__cov_bump(n);
}

void )" + w_ + R"(_free(void *ptr) {
  uintptr_t p = (uintptr_t)ptr;
  if (p < (uintptr_t)&__heap_base + sizeof(__cov_block) || p >= __cov_heap_top || (p & 7u) != 0) return;
  __cov_block *h = __cov_header(p);
  if (p + h->size == __cov_heap_top) {
    __cov_heap_top = p - sizeof(__cov_block);
    return;
  }
  h->next = __cov_free_head;
  __cov_free_head = (uint32_t)p;
}

void *cabi_realloc(void *old_ptr, size_t old_size, size_t align, size_t new_size) __attribute__((export_name("cabi_realloc")));
void *cabi_realloc(void *old_ptr, size_t old_size, size_t align, size_t new_size) {
  if (align > 8) __builtin_trap();  // the canonical ABI never asks for more
  if (new_size == 0) return (void *)align;
  uintptr_t old = (uintptr_t)old_ptr;
  if (old != 0 && old_size != 0 && old > (uintptr_t)&__heap_base && old < __cov_heap_top) {
    __cov_block *h = __cov_header(old);
    if (new_size <= h->size) return old_ptr;
    if (old + h->size == __cov_heap_top) {  // the top block grows in place
      __cov_heap_top = old - sizeof(__cov_block);
      uintptr_t again = __cov_bump((uint32_t)((new_size + 7u) & ~(size_t)7u));
      (void)again;  // == old: the same header, now larger
      return old_ptr;
    }
  }
  void *p = )" + w_ + R"(_malloc(new_size);
  if (old != 0 && old_size != 0) {
    memcpy(p, old_ptr, old_size < new_size ? old_size : new_size);
    )" + w_ + R"(_free(old_ptr);
  }
  return p;
}

void )" + w_ + R"(_string_set()" + w_ + R"(_string_t *ret, const char *s) {
  size_t n = 0;
  while (s[n] != 0) n++;
  ret->ptr = (uint8_t *)s;
  ret->len = n;
}

void )" + w_ + R"(_string_dup()" + w_ + R"(_string_t *ret, const char *s) {
  size_t n = 0;
  while (s[n] != 0) n++;
  ret->ptr = (uint8_t *))" + w_ + R"(_malloc(n);
  memcpy(ret->ptr, s, n);
  ret->len = n;
}

__attribute__((unused)) static float __cov_f32_from_bits(uint32_t b) {
  union { uint32_t b; float f; } u = {b};
  return u.f;
}
__attribute__((unused)) static uint32_t __cov_f32_bits(float f) {
  union { float f; uint32_t b; } u = {f};
  return u.b;
}
__attribute__((unused)) static uint64_t __cov_f64_bits(double f) {
  union { double f; uint64_t b; } u = {f};
  return u.b;
}
__attribute__((unused)) static void __cov_lower_string(const )" + w_ + R"(_string_t *s, int32_t *p, int32_t *n) {
  *p = (int32_t)(uintptr_t)s->ptr;
  *n = (int32_t)s->len;
}
__attribute__((unused)) static double __cov_f64_from_bits(uint64_t b) {
  union { uint64_t b; double f; } u = {b};
  return u.f;
}
__attribute__((unused)) static )" + w_ + R"(_string_t __cov_lift_string(int32_t p, int32_t n) {
  )" + w_ + R"(_string_t s;
  s.ptr = (uint8_t *)(uintptr_t)(uint32_t)p;
  s.len = (size_t)(uint32_t)n;
  return s;
}
void )" + w_ + R"(_string_free()" + w_ + R"(_string_t *s) { )" + w_ + R"(_free(s->ptr); }

// ---- layout checks: the C types are the canonical memory layout.
_Static_assert(sizeof()" + w_ + R"(_string_t) == 8 && _Alignof()" + w_ + R"(_string_t) == 4, "string is a pointer and a length");
)";
    s += "\n// ---- per type: layout checks, lifting flat core values, freeing, lowering\n";
    for (const auto& d : deps_) s += d->c_source_helpers();
    s += c_source_helpers();
    if (!imports_.empty() || !deps_.empty()) {
      s += "\n// ---- imports\n";
      for (const auto& d : deps_) s += d->c_source_imports();
      s += c_source_imports();
    }
    s += "\n// ---- export trampolines\n";
    for (size_t i = 0; i < exports_.size(); ++i) s += c_trampoline(exports_[i], i);
    return s;
  }

  std::string c_trampoline(const ExportFn& e, size_t idx) const {
    const auto& sig = e.sig;
    std::string id = std::to_string(idx);
    auto p = pnames(sig.params.size());
    std::string params;
    for (size_t i = 0; i < p.size(); ++i) params += (i ? ", " : "") + std::string(c_core(sig.params[i])) + " " + p[i];
    if (params.empty()) params = "void";
    std::string ret = sig.results.empty() ? "void" : c_core(sig.results[0]);
    std::string s = "// " + e.core_name + "\n";
    if (sig.results_spilled) {
      s += "static _Alignas(" + std::to_string(e.results_tuple.align) + ") uint8_t __cov_ret_area_" + id + "[" +
           std::to_string(std::max<uint32_t>(e.results_tuple.size, 1)) + "];\n";
    }
    s += "__attribute__((export_name(" + quote(e.core_name) + ")))\n" + ret + " __cov_export_" + id + "(" + params + ");\n";
    s += ret + " __cov_export_" + id + "(" + params + ") {\n";
    if (sig.params_spilled) s += "  const uint8_t *in = (const uint8_t *)(uintptr_t)(uint32_t)p0;\n";
    auto args = bind_params(
        e, p, "in", &s,
        [&](TypeId t, const std::string& a, const std::string& v) { return "  " + c_name(t) + " " + a + " = " + v + ";\n"; },
        [&](TypeId t, const std::string& at) { return "*(const " + c_name(t) + " *)(" + at + ")"; },
        [&](TypeId t, const std::vector<std::string>& flat) { return c_lift_expr(t, flat); });
    std::string call = c_user_fn(e) + "(" + join(args) + ")";
    std::string rt = c_result_type(e);
    if (e.results.empty()) s += "  " + call + ";\n";
    else s += "  " + rt + " r = " + call + ";\n";
    if (sig.params_spilled) s += "  " + w_ + "_free((void *)in);\n";
    if (sig.results_spilled) {
      s += "  memcpy(__cov_ret_area_" + id + ", &r, sizeof r);\n  return (int32_t)(uintptr_t)__cov_ret_area_" + id + ";\n";
    } else if (!sig.results.empty()) {
      // One core value: its bits are the value's bytes, zero-extended (the
      // host truncates integers to the type's width when it lifts).
      CoreType c = sig.results[0];
      if (c == CoreType::kF32 || c == CoreType::kF64) {
        s += "  " + ret + " out;\n  memcpy(&out, &r, sizeof out);\n  return out;\n";
      } else {
        s += "  uint64_t bits = 0;\n  memcpy(&bits, &r, sizeof r);\n  return (" + ret + ")bits;\n";
      }
    }
    s += "}\n";
    if (sig.results_spilled && needs_free(e.results.size() == 1 ? e.results[0] : wit::kNoType)) {
      s += "__attribute__((export_name(" + quote(e.post_name) + ")))\nvoid __cov_post_" + id + "(int32_t p0);\n";
      s += "void __cov_post_" + id + "(int32_t p0) {\n  " + c_free_call(e.results[0], "(" + rt + " *)(uintptr_t)(uint32_t)p0") + "\n}\n";
    } else if (sig.results_spilled && e.results.size() > 1) {
      std::string frees;
      for (size_t i = 0; i < e.results.size(); ++i)
        if (needs_free(e.results[i]))
          frees += "  " + c_free_call(e.results[i], "&r->" + ident(snake(e.fn->results[i].name.kebab))) + "\n";
      if (!frees.empty()) {
        s += "__attribute__((export_name(" + quote(e.post_name) + ")))\nvoid __cov_post_" + id + "(int32_t p0);\n";
        s += "void __cov_post_" + id + "(int32_t p0) {\n  " + rt + " *r = (" + rt + " *)(uintptr_t)(uint32_t)p0;\n" + frees + "}\n";
      }
    }
    return s + "\n";
  }

  // =================================================================== C++
  std::string cpp_header() const {
    std::string ns = w_;
    std::string s = header_comment("//");
    s += "// C++ views over the C bindings in " + w_ + ".h, for freestanding wasm32 C++\n"
         "// (-fno-exceptions -fno-rtti, no standard library): string and list views,\n"
         "// C++ names for the WIT types. The contract implements the extern \"C\"\n"
         "// exports_* functions declared in " + w_ + ".h; compile " + w_ + ".c beside it.\n";
    s += "#pragma once\n\n#include \"" + w_ + ".h\"\n\nnamespace " + ns + " {\n\n";
    s += R"(// A borrowed UTF-8 string (no NUL terminator).
class StringView {
 public:
  constexpr StringView() = default;
  constexpr StringView(const char *data, size_t size) : data_(data), size_(size) {}
  template <size_t N>
  constexpr StringView(const char (&lit)[N]) : data_(lit), size_(N - 1) {}  // NOLINT: literals convert
  constexpr const char *data() const { return data_; }
  constexpr size_t size() const { return size_; }
  constexpr bool empty() const { return size_ == 0; }
  constexpr char operator[](size_t i) const { return data_[i]; }
  constexpr bool operator==(StringView o) const {
    if (size_ != o.size_) return false;
    for (size_t i = 0; i < size_; ++i)
      if (data_[i] != o.data_[i]) return false;
    return true;
  }
  constexpr bool starts_with(StringView p) const { return size_ >= p.size_ && StringView(data_, p.size_) == p; }

 private:
  const char *data_ = "";
  size_t size_ = 0;
};

// A borrowed list.
template <class T>
class Span {
 public:
  constexpr Span(const T *data, size_t size) : data_(data), size_(size) {}
  constexpr const T *begin() const { return data_; }
  constexpr const T *end() const { return data_ + size_; }
  constexpr size_t size() const { return size_; }
  constexpr const T &operator[](size_t i) const { return data_[i]; }

 private:
  const T *data_;
  size_t size_;
};

)";
    s += "using String = " + w_ + "_string_t;\n";
    s += "inline StringView view(const String &s) { return StringView(reinterpret_cast<const char *>(s.ptr), s.len); }\n";
    s += "// A string result pointing at static data (not copied, never freed).\n";
    s += "inline String borrow(StringView v) { return String{reinterpret_cast<uint8_t *>(const_cast<char *>(v.data())), v.size()}; }\n";
    s += "// A string result copied into the guest heap (freed after the host read it).\n";
    s += "inline String copy(StringView v) {\n  String s{static_cast<uint8_t *>(" + w_ +
         "_malloc(v.size())), v.size()};\n  for (size_t i = 0; i < v.size(); ++i) s.ptr[i] = static_cast<uint8_t>(v[i]);\n  return s;\n}\n\n";
    for (TypeId t : c_distinct()) {
      const auto& y = ty(t);
      if (!y.name.kebab.empty()) s += "using " + camel(y.name.kebab) + " = " + c_name(t) + ";\n";
      if (y.kind == TypeKind::kList)
        s += "inline Span<" + c_name(y.elem) + "> view(const " + c_name(t) + " &l) { return {l.ptr, l.len}; }\n";
    }
    s += "\n}  // namespace " + ns + "\n";
    return s;
  }

  // ============================================ Rust and AssemblyScript
  // Both spell core types and the integer/float scalars the same way.
  static const char* wasm_core(CoreType t) {
    switch (t) {
      case CoreType::kI32: return "i32";
      case CoreType::kI64: return "i64";
      case CoreType::kF32: return "f32";
      case CoreType::kF64: return "f64";
    }
    return "?";
  }
  // bool, the integers and the floats; nullptr for any other kind.
  static const char* wasm_scalar(TypeKind k) {
    switch (k) {
      case TypeKind::kBool: return "bool";
      case TypeKind::kS8: return "i8";
      case TypeKind::kU8: return "u8";
      case TypeKind::kS16: return "i16";
      case TypeKind::kU16: return "u16";
      case TypeKind::kS32: return "i32";
      case TypeKind::kU32: return "u32";
      case TypeKind::kS64: return "i64";
      case TypeKind::kU64: return "u64";
      case TypeKind::kF32: return "f32";
      case TypeKind::kF64: return "f64";
      default: return nullptr;
    }
  }
  // The name of no type, a scalar, a char or a string: `none`, the scalar's, `chr`
  // or `str`; "" for any other kind.
  std::string wasm_leaf_name(TypeId t, const char* none, const char* chr, const char* str) const {
    if (t == wit::kNoType) return none;
    auto k = ty(t).kind;
    if (const char* n = wasm_scalar(k)) return n;
    return k == TypeKind::kChar ? chr : k == TypeKind::kString ? str : "";
  }
  // The unsigned integer of a discriminant or flags value of `bytes` bytes.
  static const char* wasm_uint(uint64_t bytes) { return bytes == 1 ? "u8" : bytes == 2 ? "u16" : "u32"; }

  // ================================================================== Rust
  static const char* rs_core(CoreType t) { return wasm_core(t); }
  std::string rs_name(TypeId t) const {
    if (std::string n = wasm_leaf_name(t, "()", "char", "String"); !n.empty()) return n;
    const auto& y = ty(t);
    if (!y.name.kebab.empty()) return camel(y.name.kebab);
    return rs_name_anon(t, "?");
  }
  std::string rs_typedef(TypeId t) const {
    const auto& y = ty(t);
    if (y.name.kebab.empty()) return "";
    std::string n = camel(y.name.kebab);
    std::string s = hex_comment_line("/// ", y.docs);
    switch (y.kind) {
      case TypeKind::kRecord:
        s += "#[derive(Clone, Debug, PartialEq)]\npub struct " + n + " {\n";
        for (const auto& f : y.fields) s += hex_comment_line("    /// ", f.docs) + "    pub " + ident(snake(f.name.kebab)) + ": " + rs_name(f.type) + ",\n";
        return s + "}\n";
      case TypeKind::kEnum:
        s += "#[derive(Clone, Copy, Debug, PartialEq, Eq)]\npub enum " + n + " {\n";
        for (const auto& f : y.fields) s += "    " + camel(f.name.kebab) + ",\n";
        return s + "}\n";
      case TypeKind::kFlags: {
        std::string u = wasm_uint(lay(t).size);
        s += "pub type " + n + " = " + u + ";\n";
        for (size_t i = 0; i < y.fields.size(); ++i)
          s += "pub const " + upper(y.name.kebab) + "_" + upper(y.fields[i].name.kebab) + ": " + n + " = 1 << " + std::to_string(i) + ";\n";
        return s;
      }
      case TypeKind::kVariant:
        s += "#[derive(Clone, Debug, PartialEq)]\npub enum " + n + " {\n";
        for (const auto& f : y.fields)
          s += "    " + camel(f.name.kebab) + (f.type == wit::kNoType ? "" : "(" + rs_name(f.type) + ")") + ",\n";
        return s + "}\n";
      default:  // a named alias of an anonymous type
        return s + "pub type " + n + " = " + rs_name_anon(t, "()") + ";\n";
    }
  }
  // The structural spelling of a list, option, result or tuple; `other` for any other kind.
  std::string rs_name_anon(TypeId t, const char* other) const {
    const auto& y = ty(t);
    switch (y.kind) {
      case TypeKind::kList: return "Vec<" + rs_name(y.elem) + ">";
      case TypeKind::kOption: return "Option<" + rs_name(y.elem) + ">";
      case TypeKind::kResult: return "Result<" + rs_name(y.ok) + ", " + rs_name(y.err) + ">";
      case TypeKind::kTuple: {
        std::string s = "(";
        for (const auto& f : y.fields) s += rs_name(f.type) + ", ";
        return s + ")";
      }
      default: return other;
    }
  }
  std::string rs_lift_expr(TypeId t, const std::vector<std::string>& a) const {
    const auto& y = ty(t);
    switch (y.kind) {
      case TypeKind::kBool: return "(" + a[0] + " != 0)";
      case TypeKind::kF32:
      case TypeKind::kF64: return a[0];
      case TypeKind::kChar: return "_rt::char_lift(" + a[0] + " as u32)";
      case TypeKind::kString: return "_rt::string_lift(" + join(a) + ")";
      case TypeKind::kFlags: return "(" + a[0] + " as " + rs_name(t) + ")";
      default:
        if (is_scalar(y.kind)) return "(" + a[0] + " as " + rs_name(t) + ")";
        return "lift_" + tag_ + "t" + std::to_string(t) + "(" + join(a) + ")";
    }
  }
  std::string rs_case_ctor(TypeId t, size_t c, const std::string& payload) const {
    const auto& y = ty(t);
    if (y.kind == TypeKind::kOption) return c ? "Some(" + payload + ")" : "None";
    if (y.kind == TypeKind::kResult) return std::string(c ? "Err(" : "Ok(") + (payload.empty() ? "()" : payload) + ")";
    std::string n = camel(y.name.kebab.empty() ? "" : y.name.kebab) + "::" + camel(y.fields[c].name.kebab);
    return payload.empty() ? n : n + "(" + payload + ")";
  }
  std::string rs_case_pat(TypeId t, size_t c, bool bind) const {
    const auto& y = ty(t);
    bool has = lay(t).cases[c] != wit::kNoType;
    std::string b = has ? (bind ? "(x)" : "(_)") : "";
    if (y.kind == TypeKind::kOption) return c ? "Some" + b : "None";
    if (y.kind == TypeKind::kResult) return std::string(c ? "Err" : "Ok") + (has ? b : "(_)");
    return camel(y.name.kebab) + "::" + camel(y.fields[c].name.kebab) + b;
  }
  // The body's tail expression building a record or tuple from its field values.
  std::string rs_construct(TypeId t, const std::vector<std::string>& fs) const {
    const auto& y = ty(t);
    if (y.kind == TypeKind::kTuple) return "    (" + join(fs) + ",)\n";
    std::string s = "    " + rs_name(t) + " {\n";
    for (size_t i = 0; i < fs.size(); ++i) s += "        " + ident(snake(y.fields[i].name.kebab)) + ": " + fs[i] + ",\n";
    return s + "    }\n";
  }
  std::string rs_helpers(TypeId t) const {
    const auto& y = ty(t);
    const auto& l = lay(t);
    std::string n = rs_name(t);
    std::string id = std::to_string(t);
    std::string s;
    // lift from flat core values (a type past the flat limit only travels in memory)
    if (!l.flat_overflow) {
      auto a = pnames(l.flat.size());
      std::string params;
      for (size_t i = 0; i < a.size(); ++i) params += (i ? ", " : "") + a[i] + ": " + rs_core(l.flat[i]);
      s += "#[allow(unused_variables)]\nunsafe fn lift_" + tag_ + "t" + id + "(" + params + ") -> " + n + " {\n";
      switch (y.kind) {
        case TypeKind::kList:
          s += "    let base = p0 as u32 as usize;\n    let len = p1 as u32 as usize;\n    let mut v = Vec::with_capacity(len);\n";
          s += "    for i in 0..len {\n        v.push(" + rs_load_expr(y.elem, "base + i * " + std::to_string(lay(y.elem).size)) + ");\n    }\n";
          s += "    _rt::dealloc(base, len * " + std::to_string(lay(y.elem).size) + ", " + std::to_string(lay(y.elem).align) + ");\n    v\n";
          break;
        case TypeKind::kRecord:
        case TypeKind::kTuple: {
          std::vector<std::string> fs;
          auto flat = field_slices(t, a);
          for (size_t i = 0; i < y.fields.size(); ++i) fs.push_back(rs_lift_expr(y.fields[i].type, flat[i]));
          s += rs_construct(t, fs);
          break;
        }
        case TypeKind::kEnum:
          s += "    match p0 {\n";
          for (size_t c = 0; c < y.fields.size(); ++c) s += "        " + std::to_string(c) + " => " + n + "::" + camel(y.fields[c].name.kebab) + ",\n";
          s += "        _ => _rt::trap(),\n    }\n";
          break;
        case TypeKind::kFlags: s += "    p0 as " + n + "\n"; break;
        default: {
          s += "    match p0 {\n";
          for (size_t c = 0; c < l.cases.size(); ++c) {
            TypeId p = l.cases[c];
            std::string payload = p == wit::kNoType ? "" : rs_lift_expr(p, coerce_case(L::kRust, t, p, a));
            s += "        " + std::to_string(c) + " => " + rs_case_ctor(t, c, payload) + ",\n";
          }
          s += "        _ => _rt::trap(),\n    }\n";
        }
      }
      s += "}\n";
    }
    // load (take ownership of what the host stored) from memory
    {
      s += "#[allow(unused_variables)]\nunsafe fn load_" + tag_ + "t" + id + "(ptr: usize) -> " + n + " {\n";
      switch (y.kind) {
        case TypeKind::kList:
          s += "    lift_" + tag_ + "t" + id + "(*(ptr as *const i32), *((ptr + 4) as *const i32))\n";
          break;
        case TypeKind::kRecord:
        case TypeKind::kTuple: {
          std::vector<std::string> fs;
          for (size_t i = 0; i < y.fields.size(); ++i)
            fs.push_back(rs_load_expr(y.fields[i].type, "ptr + " + std::to_string(l.field_offsets[i])));
          s += rs_construct(t, fs);
          break;
        }
        case TypeKind::kFlags: s += "    *(ptr as *const " + n + ")\n"; break;
        default: {
          std::string d = wasm_uint(l.discriminant_bytes);
          s += "    match *(ptr as *const " + d + ") {\n";
          for (size_t c = 0; c < l.cases.size(); ++c) {
            TypeId p = l.cases[c];
            std::string payload = p == wit::kNoType ? "" : rs_load_expr(p, "ptr + " + std::to_string(l.payload_offset));
            if (y.kind == TypeKind::kEnum) payload = "";
            s += "        " + std::to_string(c) + " => " +
                 (y.kind == TypeKind::kEnum ? n + "::" + camel(y.fields[c].name.kebab) : rs_case_ctor(t, c, payload)) + ",\n";
          }
          s += "        _ => _rt::trap(),\n    }\n";
        }
      }
      s += "}\n";
    }
    // store into memory (allocating strings and lists with cabi_realloc)
    {
      s += "#[allow(unused_variables)]\nunsafe fn store_" + tag_ + "t" + id + "(ptr: usize, v: &" + n + ") {\n";
      switch (y.kind) {
        case TypeKind::kList: {
          std::string es = std::to_string(lay(y.elem).size);
          s += "    let buf = _rt::alloc(v.len() * " + es + ", " + std::to_string(lay(y.elem).align) + ");\n";
          s += "    for (i, e) in v.iter().enumerate() {\n        " + rs_store_stmt(y.elem, "buf + i * " + es, "e") + "\n    }\n";
          s += "    *(ptr as *mut i32) = buf as i32;\n    *((ptr + 4) as *mut i32) = v.len() as i32;\n";
          break;
        }
        case TypeKind::kRecord:
        case TypeKind::kTuple:
          s += field_stmts(t, "    ", false, [&](TypeId f, const std::string& at, size_t i) {
            return rs_store_stmt(f, at, "&v." + (y.kind == TypeKind::kTuple ? std::to_string(i) : ident(snake(y.fields[i].name.kebab))));
          });
          break;
        case TypeKind::kFlags: s += "    *(ptr as *mut " + n + ") = *v;\n"; break;
        default: {
          std::string d = wasm_uint(l.discriminant_bytes);
          s += "    match v {\n";
          for (size_t c = 0; c < l.cases.size(); ++c) {
            TypeId p = l.cases[c];
            s += "        " + (y.kind == TypeKind::kEnum ? n + "::" + camel(y.fields[c].name.kebab) : rs_case_pat(t, c, true)) + " => {\n";
            s += "            *(ptr as *mut " + d + ") = " + std::to_string(c) + ";\n";
            if (p != wit::kNoType && y.kind != TypeKind::kEnum)
              s += "            " + rs_store_stmt(p, "ptr + " + std::to_string(l.payload_offset), "x") + "\n";
            s += "        }\n";
          }
          s += "    }\n";
        }
      }
      s += "}\n";
    }
    // free what store allocated
    if (needs_free(t)) {
      auto free = [&](TypeId f, const std::string& at, size_t = 0) { return rs_free_stmt(f, at); };
      s += "#[allow(unused_variables)]\nunsafe fn free_" + tag_ + "t" + id + "(ptr: usize) {\n";
      switch (y.kind) {
        case TypeKind::kList: {
          std::string es = std::to_string(lay(y.elem).size);
          s += "    let buf = *(ptr as *const i32) as u32 as usize;\n    let len = *((ptr + 4) as *const i32) as u32 as usize;\n";
          if (needs_free(y.elem)) s += "    for i in 0..len {\n        " + rs_free_stmt(y.elem, "buf + i * " + es) + "\n    }\n";
          s += "    _rt::dealloc(buf, len * " + es + ", " + std::to_string(lay(y.elem).align) + ");\n";
          break;
        }
        case TypeKind::kRecord:
        case TypeKind::kTuple: s += field_stmts(t, "    ", true, free); break;
        default:
          s += "    match *(ptr as *const " + std::string(wasm_uint(l.discriminant_bytes)) + ") {\n";
          s += case_lines(t, true, [&](size_t c, TypeId p, const std::string& at) { return "        " + std::to_string(c) + " => { " + free(p, at) + " }\n"; });
          s += "        _ => {}\n    }\n";
      }
      s += "}\n";
    }
    return s;
  }
  std::string rs_load_expr(TypeId t, const std::string& ptr) const {
    const auto& y = ty(t);
    switch (y.kind) {
      case TypeKind::kBool: return "(*((" + ptr + ") as *const u8) != 0)";
      case TypeKind::kChar: return "_rt::char_lift(*((" + ptr + ") as *const u32))";
      case TypeKind::kString: return "_rt::string_lift(*((" + ptr + ") as *const i32), *((" + ptr + " + 4) as *const i32))";
      default:
        if (is_scalar(y.kind)) return "*((" + ptr + ") as *const " + rs_name(t) + ")";
        return "load_" + tag_ + "t" + std::to_string(t) + "(" + ptr + ")";
    }
  }
  std::string rs_store_stmt(TypeId t, const std::string& ptr, const std::string& v) const {
    const auto& y = ty(t);
    switch (y.kind) {
      case TypeKind::kBool: return "*((" + ptr + ") as *mut u8) = *" + v + " as u8;";
      case TypeKind::kChar: return "*((" + ptr + ") as *mut u32) = *" + v + " as u32;";
      case TypeKind::kString: return "_rt::string_store(" + ptr + ", " + v + ");";
      default:
        if (is_scalar(y.kind)) return "*((" + ptr + ") as *mut " + rs_name(t) + ") = *" + v + ";";
        return "store_" + tag_ + "t" + std::to_string(t) + "(" + ptr + ", " + v + ");";
    }
  }
  std::string rs_free_stmt(TypeId t, const std::string& ptr) const {
    if (ty(t).kind == TypeKind::kString) return "_rt::string_free(" + ptr + ");";
    return "free_" + tag_ + "t" + std::to_string(t) + "(" + ptr + ");";
  }

  std::string rust() const {
    std::string s = header_comment("//");
    s += "// Guest side of the canonical ABI for Rust on wasm32-unknown-unknown (std, no crates).\n"
         "// In the crate root: `mod " + w_ + ";`, a `pub struct Component;` and one `impl " + w_ +
         "::<Interface>Guest for Component` per exported interface.\n";
    s += "#![allow(dead_code, unused_imports, unused_unsafe, unused_parens, unused_mut, unused_variables, clippy::all)]\n\n";
    s += R"(mod _rt {
    use std::alloc::{alloc as sys_alloc, dealloc as sys_dealloc, realloc as sys_realloc, Layout};

    pub fn trap() -> ! {
        core::arch::wasm32::unreachable()
    }
    pub unsafe fn alloc(size: usize, align: usize) -> usize {
        if size == 0 {
            return align;
        }
        let p = sys_alloc(Layout::from_size_align_unchecked(size, align));
        if p.is_null() {
            trap();
        }
        p as usize
    }
    // Import results are the guest's own: the host places them with
    // cabi_realloc, and lifting them frees what it copied out.
    pub unsafe fn dealloc(ptr: usize, size: usize, align: usize) {
        if size != 0 {
            sys_dealloc(ptr as *mut u8, Layout::from_size_align_unchecked(size, align));
        }
    }
    // Takes a string the host stored (UTF-8 already checked by the host).
    pub unsafe fn string_lift(ptr: i32, len: i32) -> String {
        let (p, n) = (ptr as u32 as usize, len as u32 as usize);
        let s = if n == 0 { String::new() } else { String::from_utf8_unchecked(core::slice::from_raw_parts(p as *const u8, n).to_vec()) };
        dealloc(p, n, 1);
        s
    }
    pub unsafe fn string_store(ptr: usize, s: &String) {
        let buf = alloc(s.len(), 1);
        core::ptr::copy_nonoverlapping(s.as_ptr(), buf as *mut u8, s.len());
        *(ptr as *mut i32) = buf as i32;
        *((ptr + 4) as *mut i32) = s.len() as i32;
    }
    pub unsafe fn string_free(ptr: usize) {
        dealloc(*(ptr as *const i32) as u32 as usize, *((ptr + 4) as *const i32) as u32 as usize, 1);
    }
    pub fn char_lift(c: u32) -> char {
        match char::from_u32(c) {
            Some(c) => c,
            None => trap(),
        }
    }

    #[no_mangle]
    pub unsafe extern "C" fn cabi_realloc(old: *mut u8, old_size: usize, align: usize, new_size: usize) -> *mut u8 {
        if new_size == 0 {
            return align as *mut u8;
        }
        let p = if old_size == 0 {
            sys_alloc(Layout::from_size_align_unchecked(new_size, align))
        } else {
            sys_realloc(old, Layout::from_size_align_unchecked(old_size, align), new_size)
        };
        if p.is_null() {
            trap();
        }
        p
    }
}

)";
    for (const auto& d : deps_)
      for (TypeId t : d->types_) s += d->rs_typedef(t);
    for (TypeId t : types_) s += rs_typedef(t);
    s += "\n";
    // one trait per owner
    std::vector<std::string> owners;
    for (const auto& e : exports_)
      if (std::find(owners.begin(), owners.end(), e.owner_kebab) == owners.end()) owners.push_back(e.owner_kebab);
    for (const auto& o : owners) {
      s += "/// Implemented by `crate::Component` for the exported `" + o + "`.\npub trait " + camel(o) + "Guest {\n";
      for (const auto& e : exports_) {
        if (e.owner_kebab != o) continue;
        s += hex_comment_line("    /// ", e.fn->docs) + "    fn " + ident(snake(e.fn->name.kebab)) + "(";
        for (size_t i = 0; i < e.params.size(); ++i) s += (i ? ", " : "") + ident(snake(e.fn->params[i].name.kebab)) + ": " + rs_name(e.params[i]);
        s += ")" + rs_ret(e) + ";\n";
      }
      s += "}\n\n";
    }
    for (const auto& d : deps_)
      for (TypeId t : d->types_) s += d->rs_helpers(t) + d->rs_flat_fn(t);
    for (TypeId t : types_) s += rs_helpers(t) + (imports_.empty() ? "" : rs_flat_fn(t));
    s += "\n";
    for (const auto& d : deps_)
      for (size_t i = 0; i < d->imports_.size(); ++i) s += d->rs_import(d->imports_[i], i);
    for (size_t i = 0; i < imports_.size(); ++i) s += rs_import(imports_[i], i);
    for (size_t i = 0; i < exports_.size(); ++i) s += rs_trampoline(exports_[i], i);
    return s;
  }

  // ---- Rust imports: a value is stored into guest memory (store_t*), its flat
  // values are read back as raw bits (so variant joins are only zero
  // extension), the import is called, then the stored copy is freed.
  std::string rs_flat_stmt(TypeId t, const std::string& ptr) const {
    return flat_stmt(t, ptr, "flat_", [](const std::string& at, const char* u) {
      return "out.push(*((" + at + ") as *const " + u + ") as u64);";
    });
  }
  std::string rs_flat_fn(TypeId t) const {
    static const FlatSpelling kRust = {
        "#[allow(unused_variables)]\nunsafe fn flat_", "(ptr: usize, out: &mut Vec<u64>) {\n",
        "    out.push(*(ptr as *const u32) as u64);\n    out.push(*((ptr + 4) as *const u32) as u64);\n", "    ",
        {"    let d = *(ptr as *const ", ") as u64;\n    out.push(d);\n    let start = out.len();\n    match d {\n"},
        {"        ", " => { "}, " }\n",
        {"        _ => {}\n    }\n    while out.len() < start + ", " {\n        out.push(0);\n    }\n"}, &Gen::rs_flat_stmt};
    return flat_fn(t, kRust);
  }
  static std::string rs_from_bits(CoreType c, const std::string& b) {
    switch (c) {
      case CoreType::kI32: return b + " as u32 as i32";
      case CoreType::kI64: return b + " as i64";
      case CoreType::kF32: return "f32::from_bits(" + b + " as u32)";
      case CoreType::kF64: return "f64::from_bits(" + b + ")";
    }
    return b;
  }
  bool rs_by_value(TypeId t) const { return flat_scalar(t); }
  std::string rs_import(const ExportFn& e, size_t idx) const {
    const auto& sig = e.sig;
    std::string id = tag_ + std::to_string(idx);
    std::string core_params;
    for (size_t i = 0; i < sig.params.size(); ++i) core_params += (i ? ", " : "") + std::string("p") + std::to_string(i) + ": " + rs_core(sig.params[i]);
    std::string s = "#[link(wasm_import_module = " + quote(e.module) + ")]\nextern \"C\" {\n    #[link_name = " + quote(e.field) + "]\n    fn __cov_import_" +
                    id + "(" + core_params + ")" + (sig.results.empty() ? "" : std::string(" -> ") + rs_core(sig.results[0])) + ";\n}\n";
    s += hex_comment_line("/// ", e.fn->docs);
    s += "/// Import " + e.module + " " + e.field + ".\npub fn imports_" + e.owner + "_" + snake(e.fn->name.kebab) + "(";
    std::vector<std::string> pn;
    for (size_t i = 0; i < e.params.size(); ++i) {
      pn.push_back(ident(snake(e.fn->params[i].name.kebab)));
      s += (i ? ", " : "") + pn[i] + ": " + (rs_by_value(e.params[i]) ? "" : "&") + rs_name(e.params[i]);
    }
    std::string ret = e.results.empty() ? "" : e.results.size() == 1 ? rs_name(e.results[0]) : "";
    if (e.results.size() > 1) {
      ret = "(";
      for (auto r : e.results) ret += rs_name(r) + ", ";
      ret += ")";
    }
    s += ")" + (ret.empty() ? "" : " -> " + ret) + " {\n    unsafe {\n        let mut bits: Vec<u64> = Vec::new();\n";
    auto arg = [&](size_t i) { return rs_by_value(e.params[i]) ? "&" + pn[i] : pn[i]; };
    std::string frees;
    if (sig.params_spilled) {
      s += "        let inp = _rt::alloc(" + std::to_string(e.params_tuple.size) + ", " + std::to_string(e.params_tuple.align) + ");\n";
      for (size_t i = 0; i < e.params.size(); ++i) {
        std::string at = "inp + " + std::to_string(e.params_tuple.offsets[i]);
        s += "        " + rs_store_stmt(e.params[i], at, arg(i)) + "\n";
        if (needs_free(e.params[i])) frees += "        " + rs_free_stmt(e.params[i], at) + "\n";
      }
      s += "        bits.push(inp as u64);\n";
      frees += "        _rt::dealloc(inp, " + std::to_string(e.params_tuple.size) + ", " + std::to_string(e.params_tuple.align) + ");\n";
    } else {
      for (size_t i = 0; i < e.params.size(); ++i) {
        std::string sc = "s" + std::to_string(i);
        const auto& l = lay(e.params[i]);
        s += "        let " + sc + " = _rt::alloc(" + std::to_string(l.size) + ", " + std::to_string(l.align) + ");\n";
        s += "        " + rs_store_stmt(e.params[i], sc, arg(i)) + "\n";
        s += "        { let out = &mut bits; " + rs_flat_stmt(e.params[i], sc) + " }\n";
        if (needs_free(e.params[i])) frees += "        " + rs_free_stmt(e.params[i], sc) + "\n";
        frees += "        _rt::dealloc(" + sc + ", " + std::to_string(l.size) + ", " + std::to_string(l.align) + ");\n";
      }
    }
    if (sig.results_spilled) {
      s += "        let ret = _rt::alloc(" + std::to_string(e.results_tuple.size) + ", " + std::to_string(e.results_tuple.align) + ");\n";
      s += "        bits.push(ret as u64);\n";
    }
    std::vector<std::string> cargs;
    for (size_t i = 0; i < sig.params.size(); ++i) cargs.push_back(rs_from_bits(sig.params[i], "bits[" + std::to_string(i) + "]"));
    s += "        " + std::string(sig.results.empty() ? "" : "let r = ") + "__cov_import_" + id + "(" + join(cargs) + ");\n";
    s += frees;
    if (sig.results_spilled) {
      std::vector<std::string> loads;
      for (size_t i = 0; i < e.results.size(); ++i)
        loads.push_back(rs_load_expr(e.results[i], "ret + " + std::to_string(e.results_tuple.offsets[i])));
      s += "        let v = " + (e.results.size() == 1 ? loads[0] : "(" + join(loads) + ",)") + ";\n";
      s += "        _rt::dealloc(ret, " + std::to_string(e.results_tuple.size) + ", " + std::to_string(e.results_tuple.align) + ");\n        v\n";
    } else if (!sig.results.empty()) {
      s += "        " + rs_lift_expr(e.results[0], {"r"}) + "\n";
    }
    return s + "    }\n}\n\n";
  }
  std::string rs_ret(const ExportFn& e) const {
    if (e.results.empty()) return "";
    if (e.results.size() == 1) return " -> " + rs_name(e.results[0]);
    std::string s = " -> (";
    for (auto r : e.results) s += rs_name(r) + ", ";
    return s + ")";
  }
  std::string rs_trampoline(const ExportFn& e, size_t idx) const {
    const auto& sig = e.sig;
    std::string id = std::to_string(idx);
    auto p = pnames(sig.params.size());
    std::string params;
    for (size_t i = 0; i < p.size(); ++i) params += (i ? ", " : "") + p[i] + ": " + rs_core(sig.params[i]);
    std::string s;
    if (sig.results_spilled)
      s += "#[repr(C, align(" + std::to_string(e.results_tuple.align) + "))]\nstruct RetArea" + id + "([u8; " +
           std::to_string(std::max<uint32_t>(e.results_tuple.size, 1)) + "]);\nstatic mut RET_AREA_" + id + ": RetArea" + id + " = RetArea" + id +
           "([0; " + std::to_string(std::max<uint32_t>(e.results_tuple.size, 1)) + "]);\n";
    s += "#[export_name = " + quote(e.core_name) + "]\n#[allow(unused_variables)]\npub unsafe extern \"C\" fn __cov_export_" + id + "(" + params + ")" +
         (sig.results.empty() ? "" : std::string(" -> ") + rs_core(sig.results[0])) + " {\n";
    if (sig.params_spilled) s += "    let base = p0 as u32 as usize;\n";
    auto args = bind_params(
        e, p, "base", &s, [](TypeId, const std::string& a, const std::string& v) { return "    let " + a + " = " + v + ";\n"; },
        [&](TypeId t, const std::string& at) { return rs_load_expr(t, at); },
        [&](TypeId t, const std::vector<std::string>& flat) { return rs_lift_expr(t, flat); });
    if (sig.params_spilled)
      s += "    _rt::dealloc(base, " + std::to_string(e.params_tuple.size) + ", " + std::to_string(e.params_tuple.align) + ");\n";
    s += "    let r = <crate::Component as " + camel(e.owner_kebab) + "Guest>::" + ident(snake(e.fn->name.kebab)) + "(" + join(args) + ");\n";
    if (sig.results_spilled) {
      s += "    let ret = core::ptr::addr_of_mut!(RET_AREA_" + id + ") as usize;\n";
      if (e.results.size() == 1) {
        s += "    " + rs_store_stmt(e.results[0], "ret", "&r") + "\n";
      } else {
        for (size_t i = 0; i < e.results.size(); ++i)
          s += "    " + rs_store_stmt(e.results[i], "ret + " + std::to_string(e.results_tuple.offsets[i]), "&r." + std::to_string(i)) + "\n";
      }
      s += "    ret as i32\n";
    } else if (!sig.results.empty()) {
      // One core value: store the value, read its bytes back zero-extended
      // (the host truncates integers to the type's width when it lifts).
      TypeId rt = e.results[0];
      s += "    let mut scratch = [0u64; 1];\n    let sp = scratch.as_mut_ptr() as usize;\n";
      s += "    " + rs_store_stmt(rt, "sp", "&r") + "\n";
      CoreType c = sig.results[0];
      if (c == CoreType::kF32) s += "    *(sp as *const f32)\n";
      else if (c == CoreType::kF64) s += "    *(sp as *const f64)\n";
      else if (c == CoreType::kI32) s += "    *(sp as *const u32) as i32\n";
      else s += "    *(sp as *const i64)\n";
    }
    s += "}\n";
    if (sig.results_spilled && any_needs_free(e.results)) {
      s += "#[export_name = " + quote(e.post_name) + "]\npub unsafe extern \"C\" fn __cov_post_" + id + "(p0: i32) {\n    let ret = p0 as u32 as usize;\n";
      s += free_results(e, "ret + ", "    ", [&](TypeId t, const std::string& at) { return rs_free_stmt(t, at); });
      s += "}\n";
    }
    return s + "\n";
  }

  // ======================================================== AssemblyScript
  static const char* as_core(CoreType t) { return wasm_core(t); }
  std::string as_name(TypeId t) const {
    if (std::string n = wasm_leaf_name(t, "u8", "u32", "string"); !n.empty()) return n;
    const auto& y = ty(t);
    if (y.kind == TypeKind::kList) return "Array<" + as_name(y.elem) + ">";
    if (!y.name.kebab.empty()) return as_prefix_ + camel(y.name.kebab);
    return as_prefix_ + camel(anon(t));
  }
  std::string as_default(TypeId t) const {
    if (t == wit::kNoType) return "0";
    const auto& y = ty(t);
    if (y.kind == TypeKind::kBool) return "false";
    if (y.kind == TypeKind::kString) return "\"\"";
    if (y.kind == TypeKind::kEnum) return "<" + as_name(t) + ">0";
    if (is_scalar(y.kind) || y.kind == TypeKind::kFlags) return "0";
    if (y.kind == TypeKind::kList) return "new " + as_name(t) + "()";
    return "new " + as_name(t) + "()";
  }
  std::string as_member(TypeId t, size_t c) const {  // the field holding case c's payload
    const auto& y = ty(t);
    if (y.kind == TypeKind::kOption) return "value";
    if (y.kind == TypeKind::kResult) return c ? "err" : "ok";
    return lower_camel(y.fields[c].name.kebab);
  }
  std::string as_field(TypeId t, size_t i) const {  // a record's or tuple's field i
    return ty(t).kind == TypeKind::kTuple ? "f" + std::to_string(i) : lower_camel(ty(t).fields[i].name.kebab);
  }
  std::string as_tagfield(TypeId t) const {
    const auto& y = ty(t);
    return y.kind == TypeKind::kOption ? "isSome" : y.kind == TypeKind::kResult ? "isErr" : "tag";
  }
  std::string as_typedef(TypeId t) const {
    const auto& y = ty(t);
    const auto& l = lay(t);
    std::string n = as_name(t);
    std::string s = hex_comment_line("// ", y.docs);
    switch (y.kind) {
      case TypeKind::kList: return "";
      case TypeKind::kRecord:
        s += "export class " + n + " {\n";
        for (const auto& f : y.fields) s += "  " + lower_camel(f.name.kebab) + ": " + as_name(f.type) + " = " + as_default(f.type) + ";\n";
        return s + "}\n";
      case TypeKind::kTuple:
        s += "export class " + n + " {\n";
        for (size_t i = 0; i < y.fields.size(); ++i) s += "  f" + std::to_string(i) + ": " + as_name(y.fields[i].type) + " = " + as_default(y.fields[i].type) + ";\n";
        return s + "}\n";
      case TypeKind::kEnum:
        s += "export enum " + n + " {\n";
        for (size_t i = 0; i < y.fields.size(); ++i) s += "  " + camel(y.fields[i].name.kebab) + " = " + std::to_string(i) + ",\n";
        return s + "}\n";
      case TypeKind::kFlags: {
        std::string u = wasm_uint(l.size);
        s += "export type " + n + " = " + u + ";\n";
        for (size_t i = 0; i < y.fields.size(); ++i)
          s += "export const " + upper(anon(t)) + "_" + upper(y.fields[i].name.kebab) + ": " + u + " = " + std::to_string(1u << i) + ";\n";
        return s;
      }
      default: {
        std::string d = (y.kind == TypeKind::kOption || y.kind == TypeKind::kResult) ? "bool" : wasm_uint(l.discriminant_bytes);
        s += "export class " + n + " {\n  " + as_tagfield(t) + ": " + d + " = " + (d == "bool" ? "false" : "0") + ";\n";
        for (size_t c = 0; c < l.cases.size(); ++c)
          if (l.cases[c] != wit::kNoType) s += "  " + as_member(t, c) + ": " + as_name(l.cases[c]) + " = " + as_default(l.cases[c]) + ";\n";
        if (y.kind == TypeKind::kVariant)
          for (size_t c = 0; c < y.fields.size(); ++c) s += "  static readonly " + upper(y.fields[c].name.kebab) + ": " + d + " = " + std::to_string(c) + ";\n";
        return s + "}\n";
      }
    }
  }
  std::string as_lift_expr(TypeId t, const std::vector<std::string>& a) const {
    const auto& y = ty(t);
    switch (y.kind) {
      case TypeKind::kBool: return "(" + a[0] + " != 0)";
      case TypeKind::kF32:
      case TypeKind::kF64: return a[0];
      case TypeKind::kString: return as_fn_ + "__cov_string_lift(" + join(a) + ")";
      case TypeKind::kEnum: return "<" + as_name(t) + ">" + a[0];
      default:
        if (is_scalar(y.kind) || y.kind == TypeKind::kFlags) return "<" + as_name(t) + ">" + a[0];
        return as_fn_ + "__cov_lift_" + tag_ + "t" + std::to_string(t) + "(" + join(a) + ")";
    }
  }
  std::string as_load_expr(TypeId t, const std::string& ptr) const {
    const auto& y = ty(t);
    switch (y.kind) {
      case TypeKind::kBool: return "(load<u8>(" + ptr + ") != 0)";
      case TypeKind::kString: return as_fn_ + "__cov_string_lift(load<i32>(" + ptr + "), load<i32>(" + ptr + " + 4))";
      case TypeKind::kEnum: {
        uint32_t d = lay(t).discriminant_bytes;
        return "<" + as_name(t) + ">load<" + wasm_uint(d) + ">(" + ptr + ")";
      }
      default:
        if (is_scalar(y.kind) || y.kind == TypeKind::kFlags) return "load<" + as_name(t) + ">(" + ptr + ")";
        return as_fn_ + "__cov_load_" + tag_ + "t" + std::to_string(t) + "(" + ptr + ")";
    }
  }
  std::string as_store_stmt(TypeId t, const std::string& ptr, const std::string& v) const {
    const auto& y = ty(t);
    switch (y.kind) {
      case TypeKind::kBool: return "store<u8>(" + ptr + ", " + v + " ? 1 : 0);";
      case TypeKind::kString: return as_fn_ + "__cov_string_store(" + ptr + ", " + v + ");";
      case TypeKind::kEnum: {
        uint32_t d = lay(t).discriminant_bytes;
        std::string u = wasm_uint(d);
        return "store<" + u + ">(" + ptr + ", <" + u + ">" + v + ");";
      }
      default:
        if (is_scalar(y.kind) || y.kind == TypeKind::kFlags) return "store<" + as_name(t) + ">(" + ptr + ", " + v + ");";
        return as_fn_ + "__cov_store_" + tag_ + "t" + std::to_string(t) + "(" + ptr + ", " + v + ");";
    }
  }
  std::string as_free_stmt(TypeId t, const std::string& ptr) const {
    if (ty(t).kind == TypeKind::kString) return as_fn_ + "__cov_free(load<i32>(" + ptr + "));";
    return as_fn_ + "__cov_free_" + tag_ + "t" + std::to_string(t) + "(" + ptr + ");";
  }
  std::string as_helpers(TypeId t) const {
    const auto& y = ty(t);
    const auto& l = lay(t);
    if (y.kind == TypeKind::kEnum || y.kind == TypeKind::kFlags) return "";
    std::string n = as_name(t);
    std::string id = std::to_string(t);
    std::string s;
    auto a = pnames(l.flat.size());
    std::string params;
    for (size_t i = 0; i < a.size(); ++i) params += (i ? ", " : "") + a[i] + ": " + as_core(l.flat[i]);
    if (!l.flat_overflow) {  // a type past the flat limit only travels in memory
    s += "export function __cov_lift_" + tag_ + "t" + id + "(" + params + "): " + n + " {\n";
    switch (y.kind) {
      case TypeKind::kList: {
        std::string es = std::to_string(lay(y.elem).size);
        s += "  const base = <usize><u32>p0;\n  const len = <i32>p1;\n  const v = new " + n + "(len);\n";
        s += "  for (let i = 0; i < len; i++) v[i] = " + as_load_expr(y.elem, "base + <usize>i * " + es) + ";\n";
        s += "  __cov_free(p0);\n  return v;\n";
        break;
      }
      case TypeKind::kRecord:
      case TypeKind::kTuple: {
        s += "  const r = new " + n + "();\n";
        auto flat = field_slices(t, a);
        for (size_t i = 0; i < y.fields.size(); ++i) s += "  r." + as_field(t, i) + " = " + as_lift_expr(y.fields[i].type, flat[i]) + ";\n";
        s += "  return r;\n";
        break;
      }
      default: {
        s += "  const r = new " + n + "();\n";
        bool boolean = y.kind == TypeKind::kOption || y.kind == TypeKind::kResult;
        s += "  if (<u32>p0 >= " + std::to_string(l.cases.size()) + ") unreachable();\n";
        s += "  r." + as_tagfield(t) + " = " + (boolean ? "p0 != 0" : "<" + std::string(wasm_uint(l.discriminant_bytes)) + ">p0") + ";\n";
        for (size_t c = 0; c < l.cases.size(); ++c) {
          TypeId p = l.cases[c];
          if (p == wit::kNoType) continue;
          s += "  if (p0 == " + std::to_string(c) + ") r." + as_member(t, c) + " = " + as_lift_expr(p, coerce_case(L::kAs, t, p, a)) + ";\n";
        }
        s += "  return r;\n";
      }
    }
    s += "}\n";
    }
    s += "export function __cov_load_" + tag_ + "t" + id + "(ptr: usize): " + n + " {\n";
    switch (y.kind) {
      case TypeKind::kList: s += "  return " + as_fn_ + "__cov_lift_" + tag_ + "t" + id + "(load<i32>(ptr), load<i32>(ptr + 4));\n"; break;
      case TypeKind::kRecord:
      case TypeKind::kTuple:
        s += "  const r = new " + n + "();\n";
        s += field_stmts(t, "  ", false, [&](TypeId f, const std::string& at, size_t i) { return "r." + as_field(t, i) + " = " + as_load_expr(f, at) + ";"; });
        s += "  return r;\n";
        break;
      default: {
        std::string d = wasm_uint(l.discriminant_bytes);
        bool boolean = y.kind == TypeKind::kOption || y.kind == TypeKind::kResult;
        s += "  const r = new " + n + "();\n  const tag = load<" + d + ">(ptr);\n  if (<u32>tag >= " + std::to_string(l.cases.size()) + ") unreachable();\n";
        s += "  r." + as_tagfield(t) + " = " + (boolean ? "tag != 0" : "tag") + ";\n";
        s += case_lines(t, false, [&](size_t c, TypeId p, const std::string& at) {
          return "  if (tag == " + std::to_string(c) + ") r." + as_member(t, c) + " = " + as_load_expr(p, at) + ";\n";
        });
        s += "  return r;\n";
      }
    }
    s += "}\n";
    s += "export function __cov_store_" + tag_ + "t" + id + "(ptr: usize, v: " + n + "): void {\n";
    switch (y.kind) {
      case TypeKind::kList: {
        std::string es = std::to_string(lay(y.elem).size);
        s += "  const buf = __cov_alloc(<usize>v.length * " + es + ");\n";
        s += "  for (let i = 0; i < v.length; i++) " + as_store_stmt(y.elem, "buf + <usize>i * " + es, "v[i]") + "\n";
        s += "  store<i32>(ptr, <i32>buf);\n  store<i32>(ptr + 4, v.length);\n";
        break;
      }
      case TypeKind::kRecord:
      case TypeKind::kTuple:
        s += field_stmts(t, "  ", false, [&](TypeId f, const std::string& at, size_t i) { return as_store_stmt(f, at, "v." + as_field(t, i)); });
        break;
      default: {
        std::string d = wasm_uint(l.discriminant_bytes);
        bool boolean = y.kind == TypeKind::kOption || y.kind == TypeKind::kResult;
        s += "  const tag = " + std::string(boolean ? "<u32>(v." + as_tagfield(t) + " ? 1 : 0)" : "<u32>v.tag") + ";\n";
        s += "  store<" + d + ">(ptr, <" + d + ">tag);\n";
        s += case_lines(t, false, [&](size_t c, TypeId p, const std::string& at) {
          return "  if (tag == " + std::to_string(c) + ") " + as_store_stmt(p, at, "v." + as_member(t, c)) + "\n";
        });
      }
    }
    s += "}\n";
    if (needs_free(t)) {
      auto free = [&](TypeId f, const std::string& at, size_t = 0) { return as_free_stmt(f, at); };
      s += "export function __cov_free_" + tag_ + "t" + id + "(ptr: usize): void {\n";
      switch (y.kind) {
        case TypeKind::kList:
          if (needs_free(y.elem))
            s += "  const buf = <usize><u32>load<i32>(ptr);\n  for (let i = 0; i < load<i32>(ptr + 4); i++) " +
                 as_free_stmt(y.elem, "buf + <usize>i * " + std::to_string(lay(y.elem).size)) + "\n";
          s += "  __cov_free(load<i32>(ptr));\n";
          break;
        case TypeKind::kRecord:
        case TypeKind::kTuple: s += field_stmts(t, "  ", true, free); break;
        default:
          s += "  const tag = load<" + std::string(wasm_uint(l.discriminant_bytes)) + ">(ptr);\n";
          s += case_lines(t, true, [&](size_t c, TypeId p, const std::string& at) { return "  if (tag == " + std::to_string(c) + ") " + free(p, at) + "\n"; });
      }
      s += "}\n";
    }
    return s;
  }

  std::string assemblyscript(std::string* renames) const {
    as_prefix_ = "T.";  // the entry file imports the types and helpers as T
    as_fn_ = "T.";
    std::string s = header_comment("//");
    s += "// Guest side of the canonical ABI for AssemblyScript (asc --runtime stub). This file\n"
         "// is the compiler's entry: its exports are the module's. AssemblyScript cannot\n"
         "// spell ':' '/' '#' '@' in export names, so the trampolines export placeholder\n"
         "// names and " + w_ + ".exports maps them to the wit-bindgen names\n"
         "// (sdk/tools/wasm_rename_exports rewrites the export section after asc).\n"
         "// The contract implements the imported functions in ./" + w_ + "_impl.ts.\n\n";
    std::vector<std::string> user;
    for (const auto& e : exports_) user.push_back(lower_camel(e.owner_kebab + "-" + e.fn->name.kebab));
    s += "import { " + join(user) + " } from \"./" + w_ + "_impl\";\n";
    s += "import * as T from \"./" + w_ + "_types\";\n\n";
    s += R"(// ---- memory: heap.alloc of the stub runtime (16-byte aligned); free gives back the top block.
export function cabi_realloc(oldPtr: usize, oldSize: usize, align: usize, newSize: usize): usize {
  if (align > 16) unreachable();
  if (newSize == 0) return align;
  if (oldPtr == 0 || oldSize == 0) return heap.alloc(newSize);
  return heap.realloc(oldPtr, newSize);
}
)";
    for (size_t i = 0; i < exports_.size(); ++i) s += as_trampoline(exports_[i], i, user[i], renames);
    return s;
  }
  std::string as_types() const {
    as_prefix_ = "";
    as_fn_ = "";
    for (auto& d : deps_) d->as_prefix_ = d->as_fn_ = "";
    std::string s = header_comment("//");
    s += "// The WIT types of world " + world_.name.written + " for AssemblyScript, the canonical ABI helpers the\n"
         "// entry file (" + w_ + ".ts) calls, and the imported functions; the contract imports from here.\n\n";
    s += R"(// ---- memory: heap.alloc of the stub runtime (16-byte aligned); free gives back the top block.
export function __cov_alloc(size: usize): usize {
  return size == 0 ? 8 : heap.alloc(size);
}
// Import results are the guest's own: the host places them with cabi_realloc,
// and lifting them frees what it copied out.
export function __cov_free(ptr: i32): void {
  if (<usize><u32>ptr >= __heap_base && <usize><u32>ptr > 16) heap.free(<usize><u32>ptr);
}
// Takes a string the host stored (UTF-8 already checked by the host).
export function __cov_string_lift(ptr: i32, len: i32): string {
  const s = String.UTF8.decodeUnsafe(<usize><u32>ptr, <usize><u32>len);
  if (len != 0) __cov_free(ptr);
  return s;
}
export function __cov_string_store(ptr: usize, s: string): void {
  const n = String.UTF8.byteLength(s);
  const buf = __cov_alloc(<usize>n);
  String.UTF8.encodeUnsafe(changetype<usize>(s), s.length, buf);
  store<i32>(ptr, <i32>buf);
  store<i32>(ptr + 4, n);
}

)";
    for (const auto& d : deps_)
      for (TypeId t : d->as_distinct()) s += d->as_typedef(t);
    for (TypeId t : as_distinct()) s += as_typedef(t);
    for (const auto& e : imports_) s += as_results_class_def(e, as_import_results_class(e));
    for (const auto& e : exports_) s += as_results_class_def(e, as_results_class(e));
    s += "\n// ---- canonical ABI helpers, per type\n";
    for (const auto& d : deps_)
      for (TypeId t : d->types_) s += d->as_helpers(t) + d->as_flat_fn(t);
    for (TypeId t : types_) s += as_helpers(t) + (imports_.empty() ? "" : as_flat_fn(t));
    if (!imports_.empty() || !deps_.empty()) s += "\n// ---- imports\n";
    for (const auto& d : deps_)
      for (size_t i = 0; i < d->imports_.size(); ++i) s += d->as_import(d->imports_[i], i);
    for (size_t i = 0; i < imports_.size(); ++i) s += as_import(imports_[i], i);
    return s;
  }
  // ---- AssemblyScript imports: as in Rust, params are stored into guest
  // memory and their flat values read back as raw bits.
  std::string as_flat_stmt(TypeId t, const std::string& ptr) const {
    return flat_stmt(t, ptr, "__cov_flat_", [](const std::string& at, const char* u) {
      return "out.push(<u64>load<" + std::string(u) + ">(" + at + "));";
    });
  }
  std::string as_flat_fn(TypeId t) const {
    static const FlatSpelling kAs = {
        "export function __cov_flat_", "(ptr: usize, out: Array<u64>): void {\n",
        "  out.push(<u64>load<u32>(ptr));\n  out.push(<u64>load<u32>(ptr + 4));\n", "  ",
        {"  const d = <u32>load<", ">(ptr);\n  out.push(<u64>d);\n  const start = out.length;\n"},
        {"  if (d == ", ") { "}, " }\n",
        {"  while (out.length < start + ", ") out.push(0);\n"}, &Gen::as_flat_stmt};
    return flat_fn(t, kAs);
  }
  static std::string as_from_bits(CoreType c, const std::string& b) {
    switch (c) {
      case CoreType::kI32: return "<i32>" + b;
      case CoreType::kI64: return "<i64>" + b;
      case CoreType::kF32: return "reinterpret<f32>(<i32>" + b + ")";
      case CoreType::kF64: return "reinterpret<f64>(" + b + ")";
    }
    return b;
  }
  std::string as_import(const ExportFn& e, size_t idx) const {
    const auto& sig = e.sig;
    std::string id = tag_ + std::to_string(idx);
    std::string core_params;
    for (size_t i = 0; i < sig.params.size(); ++i) core_params += (i ? ", " : "") + std::string("p") + std::to_string(i) + ": " + as_core(sig.params[i]);
    std::string s = "@external(" + quote(e.module) + ", " + quote(e.field) + ")\ndeclare function __cov_import_" + id + "(" + core_params + "): " +
                    (sig.results.empty() ? "void" : as_core(sig.results[0])) + ";\n";
    s += hex_comment_line("// ", e.fn->docs);
    std::string ret = e.results.empty() ? "void" : e.results.size() == 1 ? as_name(e.results[0]) : as_import_results_class(e);
    s += "// Import " + e.module + " " + e.field + ".\nexport function " + lower_camel("imports-" + e.owner + "-" + e.fn->name.kebab) + "(";
    std::vector<std::string> pn;
    for (size_t i = 0; i < e.params.size(); ++i) {
      pn.push_back(lower_camel(e.fn->params[i].name.kebab) + "_");
      s += (i ? ", " : "") + pn[i] + ": " + as_name(e.params[i]);
    }
    s += "): " + ret + " {\n  const bits = new Array<u64>();\n";
    std::string frees;
    if (sig.params_spilled) {
      s += "  const inp = __cov_alloc(" + std::to_string(e.params_tuple.size) + ");\n";
      for (size_t i = 0; i < e.params.size(); ++i) {
        std::string at = "inp + " + std::to_string(e.params_tuple.offsets[i]);
        s += "  " + as_store_stmt(e.params[i], at, pn[i]) + "\n";
        if (needs_free(e.params[i])) frees += "  " + as_free_stmt(e.params[i], at) + "\n";
      }
      s += "  bits.push(<u64>inp);\n";
      frees += "  __cov_free(<i32>inp);\n";
    } else {
      for (size_t i = 0; i < e.params.size(); ++i) {
        std::string sc = "s" + std::to_string(i);
        s += "  const " + sc + " = __cov_alloc(" + std::to_string(lay(e.params[i]).size) + ");\n";
        s += "  " + as_store_stmt(e.params[i], sc, pn[i]) + "\n";
        s += "  { const out = bits; " + as_flat_stmt(e.params[i], sc) + " }\n";
        if (needs_free(e.params[i])) frees += "  " + as_free_stmt(e.params[i], sc) + "\n";
        frees += "  __cov_free(<i32>" + sc + ");\n";
      }
    }
    if (sig.results_spilled) s += "  const ret = __cov_alloc(" + std::to_string(e.results_tuple.size) + ");\n  bits.push(<u64>ret);\n";
    std::vector<std::string> cargs;
    for (size_t i = 0; i < sig.params.size(); ++i) cargs.push_back(as_from_bits(sig.params[i], "bits[" + std::to_string(i) + "]"));
    s += "  " + std::string(sig.results.empty() ? "" : "const r = ") + "__cov_import_" + id + "(" + join(cargs) + ");\n" + frees;
    if (sig.results_spilled) {
      if (e.results.size() == 1) {
        s += "  const v = " + as_load_expr(e.results[0], "ret") + ";\n";
      } else {
        s += "  const v = new " + ret + "();\n";
        for (size_t i = 0; i < e.results.size(); ++i)
          s += "  v." + lower_camel(e.fn->results[i].name.kebab) + " = " + as_load_expr(e.results[i], "ret + " + std::to_string(e.results_tuple.offsets[i])) + ";\n";
      }
      s += "  __cov_free(<i32>ret);\n  return v;\n";
    } else if (!sig.results.empty()) {
      s += "  return " + as_lift_expr(e.results[0], {"r"}) + ";\n";
    }
    return s + "}\n\n";
  }
  // The class holding a function's several results; "" for one result or none.
  std::string as_results_class_def(const ExportFn& e, const std::string& name) const {
    if (e.results.size() < 2) return "";
    std::string s = "export class " + name + " {\n";
    for (size_t i = 0; i < e.results.size(); ++i)
      s += "  " + lower_camel(e.fn->results[i].name.kebab) + ": " + as_name(e.results[i]) + " = " + as_default(e.results[i]) + ";\n";
    return s + "}\n";
  }
  std::string as_import_results_class(const ExportFn& e) const { return camel("imports-" + e.owner + "-" + e.fn->name.kebab) + "Results"; }
  std::string as_results_class(const ExportFn& e) const { return camel(e.owner_kebab + "-" + e.fn->name.kebab) + "Results"; }
  std::string as_trampoline(const ExportFn& e, size_t idx, const std::string& user, std::string* renames) const {
    const auto& sig = e.sig;
    std::string id = std::to_string(idx);
    std::string placeholder = "__cov_export_" + id + "_" + snake(e.fn->name.kebab);
    *renames += placeholder + " " + e.core_name + "\n";
    auto p = pnames(sig.params.size());
    std::string params;
    for (size_t i = 0; i < p.size(); ++i) params += (i ? ", " : "") + p[i] + ": " + as_core(sig.params[i]);
    std::string s = "// " + e.core_name + "\n";
    if (sig.results_spilled) s += "const __cov_ret_area_" + id + " = memory.data(" + std::to_string(std::max<uint32_t>(e.results_tuple.size, 1)) + ", " + std::to_string(e.results_tuple.align) + ");\n";
    s += "export function " + placeholder + "(" + params + "): " + (sig.results.empty() ? "void" : as_core(sig.results[0])) + " {\n";
    if (sig.params_spilled) s += "  const base = <usize><u32>p0;\n";
    auto args = bind_params(
        e, p, "base", &s, [](TypeId, const std::string& a, const std::string& v) { return "  const " + a + " = " + v + ";\n"; },
        [&](TypeId t, const std::string& at) { return as_load_expr(t, at); },
        [&](TypeId t, const std::vector<std::string>& flat) { return as_lift_expr(t, flat); });
    if (sig.params_spilled) s += "  " + as_fn_ + "__cov_free(p0);\n";
    s += std::string("  ") + (e.results.empty() ? "" : "const r = ") + user + "(" + join(args) + ");\n";
    if (sig.results_spilled) {
      if (e.results.size() == 1) {
        s += "  " + as_store_stmt(e.results[0], "__cov_ret_area_" + id, "r") + "\n";
      } else {
        for (size_t i = 0; i < e.results.size(); ++i)
          s += "  " + as_store_stmt(e.results[i], "__cov_ret_area_" + id + " + " + std::to_string(e.results_tuple.offsets[i]),
                                    "r." + lower_camel(e.fn->results[i].name.kebab)) + "\n";
      }
      s += "  return <i32>__cov_ret_area_" + id + ";\n";
    } else if (!sig.results.empty()) {
      s += "  const sp = memory.data(8, 8);\n  store<u64>(sp, 0);\n  " + as_store_stmt(e.results[0], "sp", "r") + "\n";
      CoreType c = sig.results[0];
      s += std::string("  return load<") + (c == CoreType::kF32 ? "f32" : c == CoreType::kF64 ? "f64" : c == CoreType::kI32 ? "i32" : "i64") + ">(sp);\n";
    }
    s += "}\n";
    if (sig.results_spilled && any_needs_free(e.results)) {
      std::string post = "__cov_post_" + id + "_" + snake(e.fn->name.kebab);
      *renames += post + " " + e.post_name + "\n";
      s += "export function " + post + "(p0: i32): void {\n";
      s += free_results(e, "<usize><u32>p0 + ", "  ", [&](TypeId t, const std::string& at) { return as_free_stmt(t, at); });
      s += "}\n";
    }
    return s + "\n";
  }

  const wit::Package& pkg_;
  abi::Abi abi_;
  const wit::World& world_;
  Options opts_;
  std::string w_;
  std::vector<ExportFn> exports_;
  std::vector<TypeId> types_;
  std::set<TypeId> seen_;
  mutable std::string as_prefix_;
  mutable std::string as_fn_;  // "T." where the helpers live in the imported types file
  std::string tag_;          // prefix of per-type helper names ("" main, "d0_" a dependency)
  std::string anon_prefix_;  // prefix of anonymous C type names
  std::vector<ExportFn> imports_;
  std::vector<std::unique_ptr<Gen>> deps_;
};

}  // namespace

Result<Lang> parse_lang(std::string_view name) {
  if (name == "c") return Lang::kC;
  if (name == "cpp" || name == "c++") return Lang::kCpp;
  if (name == "assemblyscript" || name == "as") return Lang::kAssemblyScript;
  if (name == "rust") return Lang::kRust;
  return Status::invalid("unknown language \"" + std::string(name) + "\" (expected c, cpp, assemblyscript or rust)");
}

Result<std::vector<GeneratedFile>> generate(const wit::Package& pkg, const Options& options) {
  const wit::World* world = nullptr;
  if (options.world.empty()) {
    if (pkg.worlds.size() != 1)
      return Status::invalid("bindgen: the package has " + std::to_string(pkg.worlds.size()) + " worlds; pick one with --world");
    world = &pkg.worlds[0];
  } else {
    world = pkg.find_world(options.world);
    if (!world) return Status::not_found("bindgen: no world \"" + options.world + "\" in the package");
  }
  Gen gen(pkg, *world, options);
  if (Status s = gen.collect(); !s.is_ok()) return s;
  return gen.run();
}

}  // namespace covenant::bindgen
