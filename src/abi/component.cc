// Component binary reader (include/covenant/component.h; docs/components.md).
//
// Decoding and evaluation happen in one pass, in definition order, as the
// binary format allows (every index refers backwards). Each definition adds a
// symbolic object to its index space: a core function is "export N of core
// instance I" or "lower F with options"; a component function is "lift core
// function C with options at type T" or "function F of import I"; a nested
// component is kept as bytes and evaluated when instantiated, with its imports
// bound to the instantiation's arguments. At the end the top-level exports
// and the core module's imports are followed to their lifts and lowers.
#include "covenant/component.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>

namespace covenant::component {
namespace {

// ---------------------------------------------------------------------------
// Errors: thrown inside this file, turned into a Status at the boundary.

struct DecodeError {
  size_t offset;
  std::string message;
  bool unsupported;
};

[[noreturn]] void fail(size_t offset, std::string message) { throw DecodeError{offset, std::move(message), false}; }
[[noreturn]] void unsupported(size_t offset, std::string message) {
  throw DecodeError{offset, std::move(message), true};
}

std::string hex(size_t v) {
  static const char* d = "0123456789abcdef";
  std::string s;
  do {
    s.insert(s.begin(), d[v & 15]);
    v >>= 4;
  } while (v);
  return "0x" + s;
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    const size_t n = (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : 0;
    if (n == 0 || i + n >= s.size()) return false;  // bad lead byte, or truncated
    uint32_t cp = c & (0x3f >> n);
    for (size_t k = 1; k <= n; ++k) {
      const auto b = static_cast<uint8_t>(s[i + k]);
      if ((b >> 6) != 2) return false;
      cp = (cp << 6) | (b & 0x3f);
    }
    static const uint32_t kMin[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

// A bounds-checked cursor over [begin, end) of the whole binary; offsets in
// errors are absolute.
class Cursor {
 public:
  Cursor(const uint8_t* base, size_t begin, size_t end) : base_(base), pos_(begin), end_(end) {}
  size_t pos() const { return pos_; }
  size_t end() const { return end_; }
  bool done() const { return pos_ >= end_; }
  size_t remaining() const { return end_ - pos_; }

  uint8_t u8(const char* what) {
    if (pos_ >= end_) fail(pos_, std::string("unexpected end while reading ") + what);
    return base_[pos_++];
  }
  uint32_t u32(const char* what) {
    const size_t at = pos_;
    uint64_t r = 0;
    for (int shift = 0;; shift += 7) {
      const uint8_t b = u8(what);
      if (shift == 28 && (b & 0x70) != 0) fail(at, std::string(what) + ": LEB128 u32 out of range");
      r |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) break;
      if (shift == 28) fail(at, std::string(what) + ": LEB128 u32 longer than 5 bytes");
    }
    return static_cast<uint32_t>(r);
  }
  int64_t s33(const char* what) {
    const size_t at = pos_;
    int64_t r = 0;
    int shift = 0;
    uint8_t b = 0;
    do {
      if (shift > 28) fail(at, std::string(what) + ": LEB128 s33 longer than 5 bytes");
      b = u8(what);
      r |= static_cast<int64_t>(b & 0x7f) << shift;
      shift += 7;
    } while (b & 0x80);
    if (shift < 64 && (b & 0x40)) r |= -(static_cast<int64_t>(1) << shift);
    return r;
  }
  // A count of entries each at least `min_bytes` long: bounded by what is left.
  uint32_t count(const char* what, size_t min_bytes = 1) {
    const size_t at = pos_;
    const uint32_t n = u32(what);
    if (static_cast<uint64_t>(n) * min_bytes > remaining())
      fail(at, std::string(what) + ": " + std::to_string(n) + " entries cannot fit in the " +
                   std::to_string(remaining()) + " bytes left");
    return n;
  }
  std::string name(const char* what) {
    const size_t at = pos_;
    const uint32_t n = u32(what);
    if (n > remaining()) fail(at, std::string(what) + ": name of " + std::to_string(n) + " bytes runs past the end");
    std::string s(reinterpret_cast<const char*>(base_ + pos_), n);
    pos_ += n;
    if (!valid_utf8(s)) fail(at, std::string(what) + ": name is not valid UTF-8");
    return s;
  }
  void skip(size_t n, const char* what) {
    if (n > remaining()) fail(pos_, std::string(what) + " runs past the end");
    pos_ += n;
  }
  const uint8_t* at(size_t off) const { return base_ + off; }

 private:
  const uint8_t* base_;
  size_t pos_;
  size_t end_;
};

// ---------------------------------------------------------------------------
// Core modules: only what the wiring needs (imports, exports) and enough to
// recognize wit-component's shim and fix-up modules.

struct CoreModule {
  size_t begin = 0, end = 0;  // absolute byte range of the module (preamble included)
  struct Import {
    std::string module, field;
    uint8_t kind = 0;  // 0 func, 1 table, 2 memory, 3 global, 4 tag
  };
  std::vector<Import> imports;
  std::vector<std::pair<std::string, std::pair<uint8_t, uint32_t>>> exports;  // name -> (kind, index)
  uint32_t defined_funcs = 0;
  uint32_t imported_funcs = 0;
  bool has_code_or_data = false;     // function bodies, data, start, globals, memories
  bool has_other = false;            // sections a shim/fix-up never has
  // shim: for each defined function, the table slot its body calls (or -1)
  std::vector<int64_t> trampoline_slot;
  // fix-up: the active element segment on table 0: slot -> function index
  std::map<uint32_t, uint32_t> elem;
  bool elem_ok = true;
};

CoreModule parse_core_module(const uint8_t* base, size_t begin, size_t end) {
  CoreModule m;
  m.begin = begin;
  m.end = end;
  Cursor c(base, begin, end);
  if (end - begin < 8 || std::memcmp(base + begin, "\0asm\x01\0\0\0", 8) != 0)
    fail(begin, "core module section does not hold a core module (bad preamble)");
  c.skip(8, "core module preamble");
  std::vector<uint32_t> func_types;
  while (!c.done()) {
    const size_t sec_at = c.pos();
    const uint8_t id = c.u8("core section id");
    const uint32_t size = c.u32("core section size");
    if (size > c.remaining()) fail(sec_at, "core section " + std::to_string(id) + " runs past the module's end");
    Cursor s(base, c.pos(), c.pos() + size);
    c.skip(size, "core section");
    switch (id) {
      case 2: {  // imports
        uint32_t n = s.count("core import count", 3);
        for (uint32_t i = 0; i < n; ++i) {
          CoreModule::Import imp;
          imp.module = s.name("core import module");
          imp.field = s.name("core import field");
          imp.kind = s.u8("core import kind");
          switch (imp.kind) {
            case 0: s.u32("core import type"); ++m.imported_funcs; break;
            case 1: {  // table: reftype limits
              s.u8("table reftype");
              uint8_t f = s.u8("table limits");
              s.u32("table min");
              if (f & 1) s.u32("table max");
              break;
            }
            case 2: {
              uint8_t f = s.u8("memory limits");
              s.u32("memory min");
              if (f & 1) s.u32("memory max");
              break;
            }
            case 3: s.u8("global type"); s.u8("global mutability"); break;
            default: fail(s.pos(), "core import kind " + std::to_string(imp.kind) + " is not supported");
          }
          m.imports.push_back(std::move(imp));
        }
        break;
      }
      case 3: {  // function type indices
        uint32_t n = s.count("core function count");
        for (uint32_t i = 0; i < n; ++i) func_types.push_back(s.u32("core function type"));
        m.defined_funcs = n;
        break;
      }
      case 7: {  // exports
        uint32_t n = s.count("core export count", 3);
        for (uint32_t i = 0; i < n; ++i) {
          const size_t eat = s.pos();
          std::string nm = s.name("core export name");
          uint8_t kind = s.u8("core export kind");
          uint32_t idx = s.u32("core export index");
          if (kind == 0 && uint64_t(idx) >= uint64_t(m.imported_funcs) + func_types.size())
            fail(eat, "core export \"" + nm + "\" names function " + std::to_string(idx) + ", which the module does not have");
          m.exports.emplace_back(std::move(nm), std::make_pair(kind, idx));
        }
        break;
      }
      case 9: {  // elements: only the fix-up's form is understood
        uint32_t n = s.count("element segment count");
        for (uint32_t i = 0; i < n; ++i) {
          uint32_t flags = s.u32("element flags");
          if (flags != 0) { m.elem_ok = false; break; }
          // offset expression: i32.const k end
          if (s.u8("element offset") != 0x41) { m.elem_ok = false; break; }
          int64_t off = s.s33("element offset");
          if (s.u8("element offset end") != 0x0b || off < 0) { m.elem_ok = false; break; }
          uint32_t k = s.count("element function count");
          for (uint32_t j = 0; j < k; ++j) m.elem[static_cast<uint32_t>(off) + j] = s.u32("element function");
        }
        break;
      }
      case 10: {  // code: recognize `local.get 0..n-1; i32.const k; call_indirect t 0; end`
        m.has_code_or_data = true;
        uint32_t n = s.count("code count");
        for (uint32_t i = 0; i < n; ++i) {
          uint32_t body = s.u32("code body size");
          if (body > s.remaining()) fail(s.pos(), "code body runs past its section");
          Cursor b(base, s.pos(), s.pos() + body);
          s.skip(body, "code body");
          int64_t slot = -1;
          if (b.u32("local declarations") == 0) {
            uint32_t next_local = 0;
            uint8_t op = b.done() ? 0 : b.u8("opcode");
            while (op == 0x20 && !b.done()) {
              if (b.u32("local index") != next_local++) break;
              op = b.u8("opcode");
            }
            if (op == 0x41) {
              int64_t k = b.s33("i32.const");
              if (!b.done() && b.u8("opcode") == 0x11) {
                b.u32("call_indirect type");
                if (!b.done() && b.u8("table") == 0 && !b.done() && b.u8("opcode") == 0x0b && b.done() && k >= 0)
                  slot = k;
              }
            }
          }
          m.trampoline_slot.push_back(slot);
        }
        break;
      }
      case 0: case 1: case 4: break;  // custom, types, tables
      case 5: case 6: case 8: case 11: case 12: m.has_code_or_data = true; break;
      default: m.has_other = true; break;
    }
  }
  if (m.trampoline_slot.size() < m.defined_funcs) m.trampoline_slot.resize(m.defined_funcs, -1);
  return m;
}

// ---------------------------------------------------------------------------
// The symbolic model.

struct VType;
using VT = std::shared_ptr<const VType>;
struct Item;

enum class VKind : uint8_t {
  kPrim, kRecord, kVariant, kList, kTuple, kFlags, kEnum, kOption, kResult,  // value types
  kFunc, kInstance, kComponent,                                               // other deftypes
};

struct ExternDesc;

struct VType {
  VKind kind = VKind::kPrim;
  wit::TypeKind prim = wit::TypeKind::kBool;
  std::vector<std::pair<std::string, VT>> fields;   // record fields, cases (null: no payload), tuple, labels, params
  VT elem, ok, err;                                 // list/option element; result payloads (null: none)
  std::vector<VT> results;                          // func: 0 or 1 unnamed result
  std::vector<std::pair<std::string, std::shared_ptr<ExternDesc>>> exports;  // instance/component types
  std::vector<std::pair<std::string, std::shared_ptr<ExternDesc>>> imports;  // component types
  std::string name;  // a type exported or imported under a name
  VT base;                      // the definition a named type refers to
  uint32_t depth = 0;           // nesting of value types (bounds every recursion over them)
  bool is_value() const { return kind != VKind::kFunc && kind != VKind::kInstance && kind != VKind::kComponent; }
};

struct ExternDesc {  // the type of an import/export in an instance or component type
  enum class Kind : uint8_t { kFunc, kType, kInstance, kComponent, kCoreModule } kind = Kind::kFunc;
  VT type;
};

struct CoreInstance;
struct Func;

struct CanonOpts {
  uint8_t encoding = 0;  // 0 utf8, 1 utf16, 2 latin1+utf16
  bool has_encoding = false;
  std::shared_ptr<const struct CoreRef> memory;
  std::shared_ptr<const struct CoreFunc> realloc, post_return;
};

struct CoreRef {  // a core memory/table/global: an export of a core instance
  std::shared_ptr<const CoreInstance> inst;
  std::string name;
};

struct CoreFunc {
  bool lowered = false;
  std::shared_ptr<const CoreInstance> inst;  // !lowered: export `name` of inst
  std::string name;
  std::shared_ptr<const Func> func;          // lowered: canon lower func opts
  CanonOpts opts;
  size_t at = 0;
};

struct CoreExport {  // one inline export of a synthesized core instance
  uint8_t sort = 0;
  std::shared_ptr<const CoreFunc> func;
  std::shared_ptr<const CoreRef> ref;
};

struct CoreInstance {
  int module = -1;  // >= 0: instantiated module, index into Reader::modules_
  std::vector<std::pair<std::string, std::shared_ptr<const CoreInstance>>> args;
  std::vector<std::pair<std::string, CoreExport>> exports;  // module < 0: inline exports
  size_t at = 0;
};

struct Func {
  bool lifted = false;
  std::shared_ptr<const CoreFunc> core;  // lifted
  CanonOpts opts;
  std::string iface, name;                // imported: function `name` of import `iface`
  VT type;                                // a kFunc type
  size_t at = 0;
};

struct Instance;
struct ComponentDef;

struct Item {
  enum class Sort : uint8_t { kNone, kFunc, kType, kInstance, kComponent, kCoreModule } sort = Sort::kNone;
  std::shared_ptr<const Func> func;
  VT type;
  std::shared_ptr<const Instance> inst;
  std::shared_ptr<const ComponentDef> comp;
  int core_module = -1;
};

struct Instance {
  std::string import_name;  // an imported instance
  std::vector<std::pair<std::string, Item>> exports;
  const Item* find(std::string_view n) const {
    for (auto& [k, v] : exports)
      if (k == n) return &v;
    return nullptr;
  }
};

struct ComponentDef {
  size_t begin = 0, end = 0;  // body (after the preamble)
  int depth = 0;
};

struct Scope {
  Scope* parent = nullptr;
  int depth = 0;
  std::vector<VT> types;
  std::vector<std::shared_ptr<const Func>> funcs;
  std::vector<std::shared_ptr<const CoreFunc>> core_funcs;
  std::vector<std::shared_ptr<const CoreRef>> core_tables, core_memories, core_globals;
  std::vector<int> core_modules;
  std::vector<std::shared_ptr<const CoreInstance>> core_instances;
  std::vector<std::shared_ptr<const ComponentDef>> components;
  std::vector<std::shared_ptr<const Instance>> instances;
  uint32_t core_types = 0;
  // imports bound by the instantiation (nested components), in order
  const std::vector<std::pair<std::string, Item>>* args = nullptr;
  std::vector<std::pair<std::string, Item>> imports;  // top level: what was imported
  std::vector<std::pair<std::string, Item>> exports;
};

const char* sort_name(Item::Sort s) {
  switch (s) {
    case Item::Sort::kFunc: return "func";
    case Item::Sort::kType: return "type";
    case Item::Sort::kInstance: return "instance";
    case Item::Sort::kComponent: return "component";
    case Item::Sort::kCoreModule: return "core module";
    default: return "?";
  }
}

VT prim(wit::TypeKind k) {
  auto t = std::make_shared<VType>();
  t->kind = VKind::kPrim;
  t->prim = k;
  return t;
}

VT named(const VT& t, std::string n) {
  auto c = std::make_shared<VType>(*t);
  c->name = std::move(n);
  c->base = t->base ? t->base : t;
  return c;
}

// ---------------------------------------------------------------------------
// The reader.

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> bytes) : base_(bytes.data()), size_(bytes.size()) {}

  Component read() {
    if (!is_component(std::span(base_, size_))) fail(0, "not a component (bad preamble)");
    Scope top;
    read_body(top, 8, size_);
    return finish(top);
  }

 private:
  const uint8_t* base_;
  size_t size_;
  std::vector<CoreModule> modules_;
  uint32_t definitions_ = 0;
  std::vector<std::vector<VT>*> type_stack_;  // enclosing type index spaces (outer aliases)
  // the core instances instantiated, by module
  std::vector<std::shared_ptr<const CoreInstance>> instantiations_;

  void count_definition(size_t at) {
    if (++definitions_ > kDefinitionsMax)
      unsupported(at, "more than " + std::to_string(kDefinitionsMax) + " definitions");
  }

  template <typename T>
  static const T& index(const std::vector<T>& v, uint32_t i, size_t at, const char* what) {
    if (i >= v.size())
      fail(at, std::string(what) + " index " + std::to_string(i) + " out of range (" + std::to_string(v.size()) +
                   " defined)");
    return v[i];
  }

  // ---- sections

  void read_body(Scope& sc, size_t begin, size_t end) {
    type_stack_.push_back(&sc.types);
    Cursor c(base_, begin, end);
    while (!c.done()) {
      const size_t sec_at = c.pos();
      const uint8_t id = c.u8("section id");
      const uint32_t size = c.u32("section size");
      if (size > c.remaining()) fail(sec_at, "section " + std::to_string(id) + " runs past the end");
      Cursor s(base_, c.pos(), c.pos() + size);
      c.skip(size, "section");
      switch (id) {
        case 0: s.name("custom section name"); s.skip(s.remaining(), "custom section"); break;
        case 1: {
          count_definition(sec_at);
          modules_.push_back(parse_core_module(base_, s.pos(), s.end()));
          sc.core_modules.push_back(static_cast<int>(modules_.size() - 1));
          s.skip(s.remaining(), "core module");
          break;
        }
        case 2: for (uint32_t n = s.count("core instance count", 2); n; --n) core_instance(sc, s); break;
        case 3: for (uint32_t n = s.count("core type count", 2); n; --n) core_type(sc, s); break;
        case 4: {
          count_definition(sec_at);
          if (sc.depth + 1 >= static_cast<int>(kNestingMax))
            unsupported(sec_at, "components nested deeper than " + std::to_string(kNestingMax));
          if (s.remaining() < 8 || std::memcmp(base_ + s.pos(), "\0asm\x0d\0\x01\0", 8) != 0)
            fail(s.pos(), "nested component has a bad preamble");
          auto d = std::make_shared<ComponentDef>();
          d->begin = s.pos() + 8;
          d->end = s.end();
          d->depth = sc.depth + 1;
          sc.components.push_back(d);
          s.skip(s.remaining(), "component");
          break;
        }
        case 5: for (uint32_t n = s.count("instance count", 2); n; --n) instance(sc, s); break;
        case 6: for (uint32_t n = s.count("alias count", 3); n; --n) alias(sc, s); break;
        case 7: for (uint32_t n = s.count("type count", 1); n; --n) {
            count_definition(s.pos());
            sc.types.push_back(deftype(s, 0));
          }
          break;
        case 8: for (uint32_t n = s.count("canon count", 3); n; --n) canon(sc, s); break;
        case 9: unsupported(sec_at, "start functions (values) are not supported");
        case 10: for (uint32_t n = s.count("import count", 3); n; --n) import(sc, s); break;
        case 11: for (uint32_t n = s.count("export count", 4); n; --n) export_(sc, s); break;
        case 12: unsupported(sec_at, "value definitions are not supported");
        default: fail(sec_at, "unknown section id " + std::to_string(id));
      }
      if (!s.done()) fail(s.pos(), "section " + std::to_string(id) + " has " + std::to_string(s.remaining()) +
                                       " unread bytes at its end");
    }
    type_stack_.pop_back();
  }

  void core_type(Scope& sc, Cursor& s) {
    const size_t at = s.pos();
    count_definition(at);
    const uint8_t form = s.u8("core type form");
    if (form != 0x60) unsupported(at, "core type form " + hex(form) + " (module types, GC types) is not supported");
    for (int part = 0; part < 2; ++part)
      for (uint32_t n = s.count("core function type arity"); n; --n) {
        uint8_t v = s.u8("core value type");
        if (v != 0x7f && v != 0x7e && v != 0x7d && v != 0x7c) unsupported(at, "core value type " + hex(v));
      }
    ++sc.core_types;
  }

  // core:sortidx (sort byte already read when `sort` >= 0)
  CoreExport core_sortidx(Scope& sc, Cursor& s, int sort = -1) {
    const size_t at = s.pos();
    CoreExport e;
    e.sort = sort >= 0 ? static_cast<uint8_t>(sort) : s.u8("core sort");
    const uint32_t i = s.u32("core index");
    switch (e.sort) {
      case 0x00: e.func = index(sc.core_funcs, i, at, "core func"); break;
      case 0x01: e.ref = index(sc.core_tables, i, at, "core table"); break;
      case 0x02: e.ref = index(sc.core_memories, i, at, "core memory"); break;
      case 0x03: e.ref = index(sc.core_globals, i, at, "core global"); break;
      default: unsupported(at, "core sort " + hex(e.sort) + " in an instance");
    }
    return e;
  }

  void core_instance(Scope& sc, Cursor& s) {
    const size_t at = s.pos();
    count_definition(at);
    auto ci = std::make_shared<CoreInstance>();
    ci->at = at;
    const uint8_t form = s.u8("core instance form");
    if (form == 0x00) {
      const uint32_t m = s.u32("core module index");
      ci->module = index(sc.core_modules, m, at, "core module");
      for (uint32_t n = s.count("instantiate arguments", 3); n; --n) {
        std::string nm = s.name("argument name");
        const size_t sat = s.pos();
        if (s.u8("argument sort") != 0x12) unsupported(sat, "core instantiate argument that is not an instance");
        ci->args.emplace_back(std::move(nm), index(sc.core_instances, s.u32("core instance index"), sat, "core instance"));
      }
      instantiations_.push_back(ci);
    } else if (form == 0x01) {
      for (uint32_t n = s.count("core instance exports", 3); n; --n) {
        std::string nm = s.name("core export name");
        ci->exports.emplace_back(std::move(nm), core_sortidx(sc, s));
      }
    } else {
      fail(at, "core instance form " + hex(form));
    }
    sc.core_instances.push_back(ci);
  }

  // sort: 0x00 coresort | 0x01 func | 0x02 value | 0x03 type | 0x04 component | 0x05 instance.
  // Returns (sort, coresort).
  std::pair<uint8_t, uint8_t> sort(Cursor& s) {
    const uint8_t a = s.u8("sort");
    if (a == 0x00) return {0, s.u8("core sort")};
    if (a > 0x05) fail(s.pos() - 1, "unknown sort " + hex(a));
    return {a, 0};
  }

  Item item_at(Scope& sc, uint8_t srt, uint32_t i, size_t at) {
    Item it;
    switch (srt) {
      case 0x01: it.sort = Item::Sort::kFunc; it.func = index(sc.funcs, i, at, "func"); break;
      case 0x03: it.sort = Item::Sort::kType; it.type = index(sc.types, i, at, "type"); break;
      case 0x04: it.sort = Item::Sort::kComponent; it.comp = index(sc.components, i, at, "component"); break;
      case 0x05: it.sort = Item::Sort::kInstance; it.inst = index(sc.instances, i, at, "instance"); break;
      case 0x02: unsupported(at, "values are not supported");
      default: fail(at, "bad sort");
    }
    return it;
  }

  void add_item(Scope& sc, const Item& it) {
    switch (it.sort) {
      case Item::Sort::kFunc: sc.funcs.push_back(it.func); break;
      case Item::Sort::kType: sc.types.push_back(it.type); break;
      case Item::Sort::kInstance: sc.instances.push_back(it.inst); break;
      case Item::Sort::kComponent: sc.components.push_back(it.comp); break;
      case Item::Sort::kCoreModule: sc.core_modules.push_back(it.core_module); break;
      default: break;
    }
  }

  void instance(Scope& sc, Cursor& s) {
    const size_t at = s.pos();
    count_definition(at);
    const uint8_t form = s.u8("instance form");
    auto inst = std::make_shared<Instance>();
    if (form == 0x00) {
      const auto& comp = index(sc.components, s.u32("component index"), at, "component");
      std::vector<std::pair<std::string, Item>> args;
      for (uint32_t n = s.count("instantiate arguments", 3); n; --n) {
        std::string nm = s.name("argument name");
        const size_t sat = s.pos();
        auto [srt, cs] = sort(s);
        if (srt == 0x00) {
          if (cs != 0x11) unsupported(sat, "core argument other than a module to a component");
          Item it;
          it.sort = Item::Sort::kCoreModule;
          it.core_module = index(sc.core_modules, s.u32("core module index"), sat, "core module");
          args.emplace_back(std::move(nm), it);
        } else {
          args.emplace_back(std::move(nm), item_at(sc, srt, s.u32("index"), sat));
        }
      }
      Scope inner;
      inner.parent = &sc;
      inner.depth = comp->depth;
      inner.args = &args;
      read_body(inner, comp->begin, comp->end);
      for (auto& [nm, _] : args) {
        bool used = false;
        for (auto& [k, v] : inner.imports) used |= k == nm;
        if (!used) fail(at, "instantiation argument \"" + nm + "\" matches no import of the component");
      }
      inst->exports = std::move(inner.exports);
    } else if (form == 0x01) {
      for (uint32_t n = s.count("instance exports", 3); n; --n) {
        std::string nm = export_name(s);
        const size_t sat = s.pos();
        auto [srt, cs] = sort(s);
        if (srt == 0x00) unsupported(sat, "core items in a component instance");
        Item it = item_at(sc, srt, s.u32("index"), sat);
        if (it.sort == Item::Sort::kType) it.type = named(it.type, nm);
        inst->exports.emplace_back(std::move(nm), it);
      }
    } else {
      fail(at, "instance form " + hex(form));
    }
    sc.instances.push_back(inst);
  }

  void alias(Scope& sc, Cursor& s) {
    const size_t at = s.pos();
    count_definition(at);
    auto [srt, cs] = sort(s);
    const uint8_t target = s.u8("alias target");
    if (target == 0x00) {  // export of a component instance
      const auto& inst = index(sc.instances, s.u32("instance index"), at, "instance");
      std::string nm = s.name("alias export name");
      const Item* it = inst->find(nm);
      if (!it) fail(at, "instance has no export \"" + nm + "\"");
      static const Item::Sort want[] = {Item::Sort::kNone, Item::Sort::kFunc, Item::Sort::kNone,
                                        Item::Sort::kType, Item::Sort::kComponent, Item::Sort::kInstance};
      if (srt == 0x00 || srt == 0x02 || it->sort != want[srt])
        fail(at, "export \"" + nm + "\" is a " + sort_name(it->sort) + ", not the aliased sort");
      add_item(sc, *it);
    } else if (target == 0x01) {  // export of a core instance
      if (srt != 0x00) fail(at, "core export alias of a non-core sort");
      const auto& ci = index(sc.core_instances, s.u32("core instance index"), at, "core instance");
      std::string nm = s.name("alias core export name");
      check_core_export(*ci, nm, cs, at);
      if (cs == 0x00) {
        auto f = std::make_shared<CoreFunc>();
        f->inst = ci;
        f->name = nm;
        f->at = at;
        sc.core_funcs.push_back(f);
      } else {
        auto r = std::make_shared<CoreRef>(CoreRef{ci, nm});
        if (cs == 0x01) sc.core_tables.push_back(r);
        else if (cs == 0x02) sc.core_memories.push_back(r);
        else if (cs == 0x03) sc.core_globals.push_back(r);
        else unsupported(at, "alias of core sort " + hex(cs));
      }
    } else if (target == 0x02) {  // outer
      const uint32_t ct = s.u32("outer count");
      const uint32_t i = s.u32("outer index");
      Scope* o = &sc;
      for (uint32_t k = 0; k < ct && o; ++k) o = o->parent;
      if (!o) fail(at, "outer alias reaches past the outermost component");
      if (srt == 0x03) sc.types.push_back(index(o->types, i, at, "outer type"));
      else if (srt == 0x04) sc.components.push_back(index(o->components, i, at, "outer component"));
      else if (srt == 0x00 && cs == 0x11) sc.core_modules.push_back(index(o->core_modules, i, at, "outer core module"));
      else fail(at, "outer alias of a sort other than type, component or core module");
    } else {
      fail(at, "alias target " + hex(target));
    }
  }

  // A core export must exist: on an instantiated module, as an export of the
  // module; on a synthesized instance, as one of its inline exports.
  void check_core_export(const CoreInstance& ci, const std::string& nm, uint8_t cs, size_t at) {
    if (ci.module >= 0) {
      for (auto& [k, v] : modules_[ci.module].exports)
        if (k == nm) {
          if (v.first != cs) fail(at, "core export \"" + nm + "\" has another sort");
          return;
        }
      fail(at, "core module has no export \"" + nm + "\"");
    }
    for (auto& [k, v] : ci.exports)
      if (k == nm) {
        if (v.sort != cs) fail(at, "core export \"" + nm + "\" has another sort");
        return;
      }
    fail(at, "core instance has no export \"" + nm + "\"");
  }

  CanonOpts canon_opts(Scope& sc, Cursor& s) {
    CanonOpts o;
    std::set<uint8_t> seen;
    for (uint32_t n = s.count("canonical options"); n; --n) {
      const size_t at = s.pos();
      const uint8_t opt = s.u8("canonical option");
      const uint8_t group = opt <= 2 ? 0 : opt;
      if (!seen.insert(group).second) fail(at, "duplicate or conflicting canonical option " + hex(opt));
      switch (opt) {
        case 0x00: case 0x01: case 0x02: o.encoding = opt; o.has_encoding = true; break;
        case 0x03: o.memory = index(sc.core_memories, s.u32("memory index"), at, "core memory"); break;
        case 0x04: o.realloc = index(sc.core_funcs, s.u32("realloc index"), at, "core func"); break;
        case 0x05: o.post_return = index(sc.core_funcs, s.u32("post-return index"), at, "core func"); break;
        default: unsupported(at, "canonical option " + hex(opt) + " (async, callback, ...) is not supported");
      }
    }
    return o;
  }

  void canon(Scope& sc, Cursor& s) {
    const size_t at = s.pos();
    count_definition(at);
    const uint8_t op = s.u8("canon opcode");
    if (op == 0x00) {
      if (s.u8("lift sort") != 0x00) fail(at, "canon lift of a non-function");
      auto f = std::make_shared<Func>();
      f->lifted = true;
      f->at = at;
      f->core = index(sc.core_funcs, s.u32("core func index"), at, "core func");
      f->opts = canon_opts(sc, s);
      f->type = index(sc.types, s.u32("type index"), at, "type");
      if (f->type->kind != VKind::kFunc) fail(at, "canon lift at a type that is not a function type");
      sc.funcs.push_back(f);
    } else if (op == 0x01) {
      if (s.u8("lower sort") != 0x00) fail(at, "canon lower of a non-function");
      auto cf = std::make_shared<CoreFunc>();
      cf->lowered = true;
      cf->at = at;
      cf->func = index(sc.funcs, s.u32("func index"), at, "func");
      cf->opts = canon_opts(sc, s);
      sc.core_funcs.push_back(cf);
    } else {
      unsupported(at, "canon " + hex(op) + " (resources, async, threads) is not supported");
    }
  }

  // A plain kebab-case label, or an interface name ns:pkg/iface[@semver].
  static bool valid_extern_name(std::string_view n) {
    const size_t colon = n.find(':');
    if (colon == std::string_view::npos) return wit::is_kebab_label(n);
    const size_t slash = n.find('/', colon);
    if (slash == std::string_view::npos) return false;
    const size_t at = n.find('@', slash);
    const std::string_view iface = n.substr(slash + 1, at == std::string_view::npos ? std::string_view::npos : at - slash - 1);
    const std::string_view ns = n.substr(0, colon), pkg = n.substr(colon + 1, slash - colon - 1);
    if (!wit::is_kebab_label(ns) || !wit::is_kebab_label(pkg) || !wit::is_kebab_label(iface)) return false;
    // WIT cannot spell a keyword in a package path (`covenant:func/clock`).
    if (keyword(ns) || keyword(pkg) || keyword(iface)) return false;
    if (at == std::string_view::npos) return true;
    // semver: N.N.N, then optional -pre / +build of [0-9A-Za-z.-]
    std::string_view v = n.substr(at + 1);
    size_t i = 0;
    for (int part = 0; part < 3; ++part) {
      const size_t b = i;
      while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i;
      if (i == b || (i - b > 1 && v[b] == '0')) return false;
      if (part < 2 && (i >= v.size() || v[i++] != '.')) return false;
    }
    if (i < v.size() && v[i] != '-' && v[i] != '+') return false;
    for (; i < v.size(); ++i)
      if (!std::isalnum(static_cast<unsigned char>(v[i])) && v[i] != '.' && v[i] != '-' && v[i] != '+') return false;
    return true;
  }

  std::string export_name(Cursor& s) {
    const size_t at = s.pos();
    const uint8_t form = s.u8("name form");
    if (form > 0x02) fail(at, "unknown name form " + hex(form));
    std::string nm = s.name("extern name");
    if (!valid_extern_name(nm))
      unsupported(at, "import/export name \"" + nm +
                          "\" is neither a kebab-case label nor an interface name ns:pkg/iface@version that WIT can spell");
    if (form == 0x02)
      for (uint32_t n = s.count("name attributes", 2); n; --n) {
        const uint8_t a = s.u8("name attribute");
        if (a > 0x02) fail(s.pos() - 1, "unknown name attribute " + hex(a));
        s.name("name attribute value");
      }
    return nm;
  }

  // externtype, as a description (for type declarators) in type scope `types`.
  std::shared_ptr<ExternDesc> externdesc(Cursor& s, const std::vector<VT>& types, std::string_view nm,
                                         std::vector<VT>* define_in) {
    const size_t at = s.pos();
    auto d = std::make_shared<ExternDesc>();
    const uint8_t k = s.u8("extern type");
    switch (k) {
      case 0x00:
        if (s.u8("core sort") != 0x11) fail(at, "core extern type other than a module");
        s.u32("core type index");
        d->kind = ExternDesc::Kind::kCoreModule;
        unsupported(at, "core module imports/exports are not supported");
      case 0x01:
        d->kind = ExternDesc::Kind::kFunc;
        d->type = index(types, s.u32("type index"), at, "type");
        if (d->type->kind != VKind::kFunc) fail(at, "func extern type refers to a non-function type");
        break;
      case 0x02: unsupported(at, "value imports/exports are not supported");
      case 0x03: {
        const uint8_t b = s.u8("type bound");
        if (b == 0x01) unsupported(at, "resource types are not supported (\"" + std::string(nm) + "\")");
        if (b != 0x00) fail(at, "type bound " + hex(b));
        d->kind = ExternDesc::Kind::kType;
        d->type = named(index(types, s.u32("type index"), at, "type"), std::string(nm));
        if (define_in) define_in->push_back(d->type);
        break;
      }
      case 0x04: case 0x05:
        d->kind = k == 0x04 ? ExternDesc::Kind::kComponent : ExternDesc::Kind::kInstance;
        d->type = index(types, s.u32("type index"), at, "type");
        if (d->type->kind != (k == 0x04 ? VKind::kComponent : VKind::kInstance))
          fail(at, "extern type refers to a type of another kind");
        break;
      default: fail(at, "extern type " + hex(k));
    }
    return d;
  }

  VT valtype(Cursor& s, const std::vector<VT>& types, uint32_t depth) {
    const size_t at = s.pos();
    const int64_t v = s.s33("value type");
    if (v >= 0) {
      const VT& t = index(types, static_cast<uint32_t>(v), at, "type");
      if (!t->is_value()) fail(at, "type index " + std::to_string(v) + " is not a value type");
      return t;
    }
    if (v < -64) fail(at, "malformed value type");
    return primtype(static_cast<uint8_t>(v & 0x7f), at);
  }

  static VT primtype(uint8_t b, size_t at) {
    if (b < 0x73 || b > 0x7f) fail(at, "unknown primitive value type " + hex(b));
    static const wit::TypeKind k[] = {
        wit::TypeKind::kString, wit::TypeKind::kChar, wit::TypeKind::kF64, wit::TypeKind::kF32,
        wit::TypeKind::kU64,    wit::TypeKind::kS64,  wit::TypeKind::kU32, wit::TypeKind::kS32,
        wit::TypeKind::kU16,    wit::TypeKind::kS16,  wit::TypeKind::kU8,  wit::TypeKind::kS8,
        wit::TypeKind::kBool};
    return prim(k[b - 0x73]);
  }

  std::string label(Cursor& s, const char* what) {
    const size_t at = s.pos();
    std::string l = s.name(what);
    if (!wit::is_kebab_label(l)) fail(at, std::string(what) + " \"" + l + "\" is not a kebab-case WIT label");
    return l;
  }

  // deftype in the innermost type scope (types = type_stack_.back()).
  VT deftype(Cursor& s, uint32_t depth) {
    const size_t at = s.pos();
    if (depth > kTypeNestingMax) unsupported(at, "type declarations nested deeper than " + std::to_string(kTypeNestingMax));
    const std::vector<VT>& types = *type_stack_.back();
    auto t = std::make_shared<VType>();
    const uint8_t b = s.u8("type form");
    auto labels = [&](const char* what, bool with_type) {
      std::set<std::string> seen;
      for (uint32_t n = s.count(what); n; --n) {
        const size_t lat = s.pos();
        std::string l = label(s, what);
        if (!seen.insert(l).second) fail(lat, std::string(what) + " \"" + l + "\" appears twice");
        VT ft;
        if (with_type) ft = valtype(s, types, depth + 1);
        t->fields.emplace_back(std::move(l), std::move(ft));
      }
      if (t->fields.empty()) fail(at, std::string(what) + " list is empty");
    };
    auto opt_valtype = [&]() -> VT {
      const uint8_t p = s.u8("optional type");
      if (p == 0x00) return nullptr;
      if (p != 0x01) fail(s.pos() - 1, "optional type flag " + hex(p));
      return valtype(s, types, depth + 1);
    };
    switch (b) {
      case 0x72: t->kind = VKind::kRecord; labels("record field", true); break;
      case 0x71: {
        t->kind = VKind::kVariant;
        std::set<std::string> seen;
        for (uint32_t n = s.count("variant case", 3); n; --n) {
          const size_t lat = s.pos();
          std::string l = label(s, "variant case");
          if (!seen.insert(l).second) fail(lat, "variant case \"" + l + "\" appears twice");
          VT ct = opt_valtype();
          if (s.u8("case refines") != 0x00) unsupported(lat, "variant case refinement");
          t->fields.emplace_back(std::move(l), std::move(ct));
        }
        if (t->fields.empty()) fail(at, "variant has no cases");
        break;
      }
      case 0x70: t->kind = VKind::kList; t->elem = valtype(s, types, depth + 1); break;
      case 0x67: unsupported(at, "fixed-length lists are not supported");
      case 0x6f: {
        t->kind = VKind::kTuple;
        for (uint32_t n = s.count("tuple element"); n; --n) t->fields.emplace_back("", valtype(s, types, depth + 1));
        if (t->fields.empty()) fail(at, "tuple has no elements");
        break;
      }
      case 0x6e:
        t->kind = VKind::kFlags;
        labels("flag", false);
        if (t->fields.size() > wit::kFlagsMax) fail(at, "flags with more than 32 labels");
        break;
      case 0x6d: t->kind = VKind::kEnum; labels("enum case", false); break;
      case 0x6b: t->kind = VKind::kOption; t->elem = valtype(s, types, depth + 1); break;
      case 0x6a: t->kind = VKind::kResult; t->ok = opt_valtype(); t->err = opt_valtype(); break;
      case 0x69: case 0x68: case 0x3f: unsupported(at, "resources and handles (own/borrow) are not supported");
      case 0x66: case 0x65: case 0x64: unsupported(at, "stream, future and error-context types are not supported");
      case 0x63: unsupported(at, "map types are not supported");
      case 0x43: unsupported(at, "async functions are not supported");
      case 0x40: {
        t->kind = VKind::kFunc;
        std::set<std::string> seen;
        for (uint32_t n = s.count("function parameter", 2); n; --n) {
          const size_t lat = s.pos();
          std::string l = label(s, "parameter name");
          if (!seen.insert(l).second) fail(lat, "parameter \"" + l + "\" appears twice");
          t->fields.emplace_back(std::move(l), valtype(s, types, depth + 1));
        }
        const uint8_t r = s.u8("result list");
        if (r == 0x00) t->results.push_back(valtype(s, types, depth + 1));
        else if (r == 0x01) {
          if (s.u8("empty result list") != 0x00) unsupported(s.pos() - 1, "named function results are not supported");
        } else fail(s.pos() - 1, "result list form " + hex(r));
        break;
      }
      case 0x41: case 0x42: {
        t->kind = b == 0x42 ? VKind::kInstance : VKind::kComponent;
        std::vector<VT> inner;
        type_stack_.push_back(&inner);
        for (uint32_t n = s.count("declarations"); n; --n) {
          const size_t dat = s.pos();
          count_definition(dat);
          const uint8_t d = s.u8("declaration");
          switch (d) {
            case 0x00: unsupported(dat, "core types in instance or component types");
            case 0x01: inner.push_back(deftype(s, depth + 1)); break;
            case 0x02: {  // alias: outer type aliases (and instance exports in component types)
              auto [srt, cs] = sort(s);
              (void)cs;
              const uint8_t target = s.u8("alias target");
              if (target == 0x02 && srt == 0x03) {
                const uint32_t ct = s.u32("outer count");
                const uint32_t i = s.u32("outer index");
                if (ct >= type_stack_.size()) fail(dat, "outer alias reaches past the outermost scope");
                inner.push_back(index(*type_stack_[type_stack_.size() - 1 - ct], i, dat, "outer type"));
              } else {
                unsupported(dat, "alias declaration other than an outer type alias");
              }
              break;
            }
            case 0x03: case 0x04: {
              if (d == 0x03 && b == 0x42) fail(dat, "import declaration in an instance type");
              std::string nm = export_name(s);
              auto ed = externdesc(s, inner, nm, &inner);
              (d == 0x03 ? t->imports : t->exports).emplace_back(std::move(nm), std::move(ed));
              break;
            }
            default: fail(dat, "declaration form " + hex(d));
          }
        }
        type_stack_.pop_back();
        break;
      }
      default:
        if (b >= 0x73 && b <= 0x7f) return primtype(b, at);
        fail(at, "unknown type form " + hex(b));
    }
    uint32_t d = 0;
    for (auto& [l, ft] : t->fields) if (ft) d = std::max(d, ft->depth);
    for (const VT* p : {&t->elem, &t->ok, &t->err}) if (*p) d = std::max(d, (*p)->depth);
    for (auto& r : t->results) d = std::max(d, r->depth);
    t->depth = d + 1;
    if (t->depth > wit::kTypeDepthMax)
      unsupported(at, "value types nested deeper than " + std::to_string(wit::kTypeDepthMax));
    return t;
  }

  // An item of an imported instance type: funcs become imported functions.
  Item item_from_desc(const ExternDesc& d, const std::string& iface, const std::string& nm, size_t at) {
    Item it;
    switch (d.kind) {
      case ExternDesc::Kind::kFunc: {
        auto f = std::make_shared<Func>();
        f->iface = iface;
        f->name = nm;
        f->type = d.type;
        f->at = at;
        it.sort = Item::Sort::kFunc;
        it.func = f;
        break;
      }
      case ExternDesc::Kind::kType: it.sort = Item::Sort::kType; it.type = d.type; break;
      case ExternDesc::Kind::kInstance: {
        auto inst = std::make_shared<Instance>();
        inst->import_name = iface + "/" + nm;
        for (auto& [k, v] : d.type->exports) inst->exports.emplace_back(k, item_from_desc(*v, inst->import_name, k, at));
        it.sort = Item::Sort::kInstance;
        it.inst = inst;
        break;
      }
      default: unsupported(at, "imports of components and modules are not supported");
    }
    return it;
  }

  void import(Scope& sc, Cursor& s) {
    const size_t at = s.pos();
    count_definition(at);
    std::string nm = export_name(s);
    for (auto& [k, v] : sc.imports)
      if (k == nm) fail(at, "import \"" + nm + "\" appears twice");
    auto d = externdesc(s, sc.types, nm, nullptr);
    Item it;
    if (sc.args) {  // a nested component: bound to an instantiation argument
      const Item* arg = nullptr;
      for (auto& [k, v] : *sc.args)
        if (k == nm) arg = &v;
      if (!arg) fail(at, "nested component imports \"" + nm + "\", which its instantiation does not supply");
      it = *arg;
      if (d->kind == ExternDesc::Kind::kType) {
        if (it.sort != Item::Sort::kType) fail(at, "argument \"" + nm + "\" is not a type");
        it.type = named(it.type, nm);
      } else if (d->kind == ExternDesc::Kind::kFunc) {
        if (it.sort != Item::Sort::kFunc) fail(at, "argument \"" + nm + "\" is not a function");
      } else if (d->kind == ExternDesc::Kind::kInstance) {
        if (it.sort != Item::Sort::kInstance) fail(at, "argument \"" + nm + "\" is not an instance");
      } else {
        unsupported(at, "nested imports of components");
      }
    } else {
      if (d->kind == ExternDesc::Kind::kType) unsupported(at, "type imports at the top level (\"" + nm + "\")");
      if (d->kind == ExternDesc::Kind::kInstance) {
        auto inst = std::make_shared<Instance>();
        inst->import_name = nm;
        for (auto& [k, v] : d->type->exports) inst->exports.emplace_back(k, item_from_desc(*v, nm, k, at));
        it.sort = Item::Sort::kInstance;
        it.inst = inst;
      } else {
        it = item_from_desc(*d, "", nm, at);
      }
    }
    sc.imports.emplace_back(nm, it);
    add_item(sc, it);
  }

  void export_(Scope& sc, Cursor& s) {
    const size_t at = s.pos();
    count_definition(at);
    std::string nm = export_name(s);
    for (auto& [k, v] : sc.exports)
      if (k == nm) fail(at, "export \"" + nm + "\" appears twice");
    const size_t sat = s.pos();
    auto [srt, cs] = sort(s);
    if (srt == 0x00) unsupported(sat, "exports of core items (\"" + nm + "\")");
    Item it = item_at(sc, srt, s.u32("export index"), sat);
    const uint8_t has_type = s.u8("export type flag");
    if (has_type == 0x01) {
      auto d = externdesc(s, sc.types, nm, nullptr);
      if (d->kind == ExternDesc::Kind::kFunc && it.sort == Item::Sort::kFunc) {
        auto f = std::make_shared<Func>(*it.func);
        f->type = d->type;  // the ascribed type names the exported types
        it.func = f;
      } else if (d->kind == ExternDesc::Kind::kType && it.sort == Item::Sort::kType) {
        it.type = d->type;
      }
    } else if (has_type != 0x00) {
      fail(sat, "export type flag " + hex(has_type));
    }
    if (it.sort == Item::Sort::kType) it.type = named(it.type, nm);
    sc.exports.emplace_back(nm, it);
    add_item(sc, it);  // an export defines a new index
  }

  // ---- the end: follow the wiring

  struct Main {
    int module = -1;
    std::shared_ptr<const CoreInstance> inst;
  };

  enum class Role { kMain, kShim, kFixup };

  Role role(const CoreModule& m) const {
    bool shim = m.imports.empty() && !m.has_other && m.defined_funcs > 0;
    for (auto& [k, v] : m.exports) shim &= (v.first == 0 || (v.first == 1 && k == "$imports"));
    for (int64_t slot : m.trampoline_slot) shim &= slot >= 0;
    if (shim) return Role::kShim;
    bool fixup = m.defined_funcs == 0 && !m.has_other && m.elem_ok && !m.elem.empty() && m.exports.empty();
    for (auto& imp : m.imports)
      fixup &= (imp.module == "actual" && imp.kind == 0) || (imp.module == "shim" && imp.kind == 1);
    return fixup ? Role::kFixup : Role::kMain;
  }

  // shim slot -> the core function the fix-up put there
  std::map<std::pair<const CoreInstance*, uint32_t>, std::shared_ptr<const CoreFunc>> slots_;

  void fill_slots(std::vector<std::string>* shims) {
    for (const auto& ci : instantiations_) {
      const CoreModule& m = modules_[ci->module];
      const Role r = role(m);
      if (r == Role::kShim) shims->push_back("shim module (" + std::to_string(m.defined_funcs) + " trampolines)");
      if (r != Role::kFixup) continue;
      shims->push_back("fix-up module (" + std::to_string(m.elem.size()) + " table entries)");
      const CoreInstance* actual = nullptr;
      const CoreInstance* shim = nullptr;
      for (auto& [k, v] : ci->args) {
        if (k == "actual") actual = v.get();
        if (k == "shim") shim = v.get();
      }
      if (!actual || !shim || shim->module < 0 || role(modules_[shim->module]) != Role::kShim)
        unsupported(ci->at, "a fix-up module not wired to a shim module as wit-component does");
      for (auto& [slot, fn] : m.elem) {
        if (fn >= m.imports.size() || m.imports[fn].kind != 0)
          fail(ci->at, "fix-up element refers to function " + std::to_string(fn) + ", not an import");
        const std::string& field = m.imports[fn].field;
        std::shared_ptr<const CoreFunc> target;
        for (auto& [k, v] : actual->exports)
          if (k == field && v.sort == 0) target = v.func;
        if (!target) fail(ci->at, "fix-up imports actual \"" + field + "\", which its argument does not export");
        slots_[{shim, slot}] = target;
      }
    }
  }

  // Follows a core function to a main-module export or a lower.
  std::shared_ptr<const CoreFunc> resolve(std::shared_ptr<const CoreFunc> f, size_t at, int depth = 0) {
    if (depth > 16) fail(at, "core function wiring loops");
    if (f->lowered) return f;
    const CoreInstance& ci = *f->inst;
    if (ci.module < 0) {
      for (auto& [k, v] : ci.exports)
        if (k == f->name && v.sort == 0) return resolve(v.func, at, depth + 1);
      fail(f->at, "core instance has no function \"" + f->name + "\"");
    }
    const CoreModule& m = modules_[ci.module];
    if (role(m) == Role::kShim) {
      uint32_t idx = 0;
      bool found = false;
      for (auto& [k, v] : m.exports)
        if (k == f->name && v.first == 0) { idx = v.second; found = true; }
      if (!found || idx < m.imported_funcs || idx - m.imported_funcs >= m.trampoline_slot.size())
        fail(f->at, "shim export \"" + f->name + "\" is not one of its trampolines");
      const int64_t slot = m.trampoline_slot[idx - m.imported_funcs];
      auto it = slots_.find({&ci, static_cast<uint32_t>(slot)});
      if (it == slots_.end()) fail(f->at, "shim slot " + std::to_string(slot) + " is never filled by a fix-up module");
      return resolve(it->second, at, depth + 1);
    }
    return f;  // an export of the main module
  }

  std::string main_export(const Main& mn, const std::shared_ptr<const CoreFunc>& f, const char* what, size_t at) {
    auto r = resolve(f, at);
    if (r->lowered || r->inst != mn.inst)
      unsupported(at, std::string(what) + " is not a function exported by the core module");
    return r->name;
  }
  std::string main_memory(const Main& mn, const std::shared_ptr<const CoreRef>& m, size_t at) {
    const CoreRef* r = m.get();
    for (int k = 0; k < 16 && r->inst->module < 0; ++k) {
      const CoreRef* next = nullptr;
      for (auto& [nm, v] : r->inst->exports)
        if (nm == r->name && v.sort == 2) next = v.ref.get();
      if (!next) fail(at, "memory option refers to a missing memory export");
      r = next;
    }
    if (r->inst != mn.inst) unsupported(at, "the memory option is not the core module's exported memory");
    return r->name;
  }

  void check_encoding(const CanonOpts& o, size_t at) {
    if (o.encoding != 0) unsupported(at, o.encoding == 1 ? "string-encoding=utf16 is not supported (only utf8)"
                                                         : "string-encoding=latin1+utf16 is not supported (only utf8)");
  }

  Component finish(Scope& top) {
    Component out;
    fill_slots(&out.shims);
    Main mn;
    for (const auto& ci : instantiations_) {
      if (role(modules_[ci->module]) != Role::kMain) continue;
      if (mn.inst)
        unsupported(ci->at, "the component instantiates more than one core module with code of its own; Covenant "
                            "runs components that wrap exactly one");
      mn.inst = ci;
      mn.module = ci->module;
    }
    if (!mn.inst) unsupported(8, "the component instantiates no core module");
    const CoreModule& m = modules_[mn.module];
    out.core_module.assign(base_ + m.begin, base_ + m.end);

    // Imports of the core module: each must be a lower of an imported function.
    for (const auto& imp : m.imports) {
      const CoreInstance* arg = nullptr;
      for (auto& [k, v] : mn.inst->args)
        if (k == imp.module) arg = v.get();
      const std::string what = "core import \"" + imp.module + "\" \"" + imp.field + "\"";
      if (!arg) fail(mn.inst->at, what + " is not supplied by the instantiation");
      if (imp.kind != 0) unsupported(mn.inst->at, what + " is not a function (imported memories/tables are not supported)");
      std::shared_ptr<const CoreFunc> f;
      if (arg->module >= 0) unsupported(mn.inst->at, what + " comes from another core module's exports");
      for (auto& [k, v] : arg->exports)
        if (k == imp.field && v.sort == 0) f = v.func;
      if (!f) fail(mn.inst->at, what + " is not exported by the instance that supplies it");
      auto r = resolve(f, mn.inst->at);
      if (!r->lowered) unsupported(mn.inst->at, what + " is wired to a core function, not to a lowered import");
      check_encoding(r->opts, r->at);
      const Func& fn = *r->func;
      if (fn.lifted) unsupported(r->at, what + " lowers a lifted function of the component itself");
      LoweredImport li;
      li.core_module = imp.module;
      li.core_field = imp.field;
      li.interface = fn.iface;
      li.function = fn.name;
      li.signature = signature(fn.type);
      if (r->opts.realloc) li.realloc = main_export(mn, r->opts.realloc, "the realloc option", r->at);
      if (r->opts.memory) li.memory = main_memory(mn, r->opts.memory, r->at);
      out.lowered.push_back(std::move(li));
    }

    // Exports.
    struct Iface {
      std::string name;
      const Instance* inst;
    };
    std::vector<Iface> ifaces;
    std::vector<std::pair<std::string, const Func*>> world_funcs;
    for (auto& [nm, it] : top.exports) {
      if (it.sort == Item::Sort::kInstance) {
        ifaces.push_back({nm, it.inst.get()});
        for (auto& [fname, fit] : it.inst->exports) {
          if (fit.sort == Item::Sort::kFunc) out.exports.push_back(lifted(mn, nm, fname, *fit.func));
          else if (fit.sort != Item::Sort::kType)
            unsupported(8, "export \"" + nm + "\" holds a " + sort_name(fit.sort) + " \"" + fname + "\"");
        }
      } else if (it.sort == Item::Sort::kFunc) {
        world_funcs.emplace_back(nm, it.func.get());
        out.exports.push_back(lifted(mn, "", nm, *it.func));
      } else if (it.sort != Item::Sort::kType) {
        unsupported(8, std::string("top-level export \"") + nm + "\" is a " + sort_name(it.sort));
      }
    }
    if (out.exports.empty()) fail(8, "the component exports no functions");
    out.world = "root";
    out.wit = wit_text(top, ifaces, world_funcs, &out.imports);
    return out;
  }

  LiftedExport lifted(const Main& mn, const std::string& iface, const std::string& fname, const Func& f) {
    if (!f.lifted)
      unsupported(f.at, "export \"" + (iface.empty() ? "" : iface + "#") + fname +
                            "\" re-exports an imported function instead of lifting a core function");
    check_encoding(f.opts, f.at);
    LiftedExport e;
    e.interface = iface;
    e.function = fname;
    e.core_export = main_export(mn, f.core, "the lifted function", f.at);
    if (f.opts.post_return) e.post_return = main_export(mn, f.opts.post_return, "the post-return option", f.at);
    if (f.opts.realloc) e.realloc = main_export(mn, f.opts.realloc, "the realloc option", f.at);
    if (f.opts.memory) e.memory = main_memory(mn, f.opts.memory, f.at);
    return e;
  }

  // ---- WIT text

  static bool keyword(std::string_view s) {
    static const std::set<std::string_view> k = {
        "as", "async", "bool", "borrow", "char", "constructor", "enum", "export", "f32", "f64", "flags", "float32",
        "float64", "from", "func", "future", "import", "include", "interface", "list", "own", "package", "record",
        "resource", "result", "s16", "s32", "s64", "s8", "static", "stream", "string", "tuple", "type", "u16", "u32",
        "u64", "u8", "use", "variant", "with", "world", "option", "error-context", "map", "_"};
    return k.count(s) != 0;
  }
  static std::string id(std::string_view s) { return (keyword(s) ? "%" : "") + std::string(s); }

  // Structural spelling, names expanded (signatures of imports).
  static std::string structural(const VT& t) {
    switch (t->kind) {
      case VKind::kPrim: return wit::type_kind_name(t->prim);
      case VKind::kList: return "list<" + structural(t->elem) + ">";
      case VKind::kOption: return "option<" + structural(t->elem) + ">";
      case VKind::kResult:
        return "result<" + (t->ok ? structural(t->ok) : "_") + "," + (t->err ? structural(t->err) : "_") + ">";
      case VKind::kTuple: {
        std::string s = "tuple<";
        for (size_t i = 0; i < t->fields.size(); ++i) s += (i ? "," : "") + structural(t->fields[i].second);
        return s + ">";
      }
      case VKind::kRecord: case VKind::kVariant: case VKind::kEnum: case VKind::kFlags: {
        std::string s = t->kind == VKind::kRecord ? "record{" : t->kind == VKind::kVariant ? "variant{"
                        : t->kind == VKind::kEnum ? "enum{" : "flags{";
        for (size_t i = 0; i < t->fields.size(); ++i) {
          s += (i ? "," : "") + t->fields[i].first;
          if (t->fields[i].second) s += (t->kind == VKind::kRecord ? ":" : "(") + structural(t->fields[i].second) +
                                        (t->kind == VKind::kRecord ? "" : ")");
        }
        return s + "}";
      }
      default: return "?";
    }
  }

 public:
  static std::string signature(const VT& f) {
    std::string s = "func(";
    for (size_t i = 0; i < f->fields.size(); ++i) s += (i ? ", " : "") + f->fields[i].first + ": " + structural(f->fields[i].second);
    s += ")";
    if (!f->results.empty()) s += " -> " + structural(f->results[0]);
    return s;
  }

 private:
  // Names of the types an interface defines: by the named copy and its base.
  using Names = std::map<const VType*, std::string>;

  std::string ref(const VType* t, const Names& names, const std::string& where) {
    auto it = names.find(t);
    if (it == names.end() && t->base) it = names.find(t->base.get());
    if (it != names.end()) return id(it->second);
    switch (t->kind) {
      case VKind::kPrim: return wit::type_kind_name(t->prim);
      case VKind::kList: return "list<" + ref(t->elem.get(), names, where) + ">";
      case VKind::kOption: return "option<" + ref(t->elem.get(), names, where) + ">";
      case VKind::kResult:
        if (!t->ok && !t->err) return "result";
        if (!t->err) return "result<" + ref(t->ok.get(), names, where) + ">";
        return "result<" + (t->ok ? ref(t->ok.get(), names, where) : "_") + ", " + ref(t->err.get(), names, where) + ">";
      case VKind::kTuple: {
        std::string s = "tuple<";
        for (size_t i = 0; i < t->fields.size(); ++i) s += (i ? ", " : "") + ref(t->fields[i].second.get(), names, where);
        return s + ">";
      }
      default: {
        static const char* kinds[] = {"", "record", "variant", "", "", "flags", "enum"};
        const auto k = static_cast<size_t>(t->kind);
        unsupported(8, where + " uses " + (t->name.empty() ? std::string("an unnamed ") : "type \"" + t->name + "\", a ") +
                           (k < 7 ? kinds[k] : "type") +
                           " not defined in the same interface (WIT `use` across interfaces is not supported)");
      }
    }
  }

  std::string func_text(const std::string& nm, const VT& f, const Names& names, const std::string& where) {
    std::string s = id(nm) + ": func(";
    for (size_t i = 0; i < f->fields.size(); ++i)
      s += (i ? ", " : "") + id(f->fields[i].first) + ": " + ref(f->fields[i].second.get(), names, where);
    s += ")";
    if (!f->results.empty()) s += " -> " + ref(f->results[0].get(), names, where);
    return s + ";\n";
  }

  std::string typedef_text(const std::string& nm, const VT& t, const Names& names, const std::string& where) {
    const VType* d = t->base ? t->base.get() : t.get();
    std::string s;
    auto body = [&](const char* kw, bool typed, bool parens) {
      s = std::string(kw) + " " + id(nm) + " {\n";
      for (auto& [l, ft] : d->fields) {
        s += "    " + id(l);
        if (typed && ft) s += parens ? "(" + ref(ft.get(), names, where) + ")" : ": " + ref(ft.get(), names, where);
        s += ",\n";
      }
      s += "  }\n";
    };
    switch (d->kind) {
      case VKind::kRecord: body("record", true, false); break;
      case VKind::kVariant: body("variant", true, true); break;
      case VKind::kEnum: body("enum", false, false); break;
      case VKind::kFlags: body("flags", false, false); break;
      default: {  // an alias: spell the definition, not the name being defined
        Names without = names;
        for (auto i = without.begin(); i != without.end();) i = i->second == nm ? without.erase(i) : std::next(i);
        s = "type " + id(nm) + " = " + ref(d, without, where) + ";\n";
      }
    }
    return s;
  }

  // ns:pkg/iface@ver -> (ns:pkg@ver, iface)
  static bool split_interface(const std::string& full, std::string* pkg, std::string* iface) {
    const size_t colon = full.find(':');
    const size_t slash = full.find('/');
    if (colon == std::string::npos || slash == std::string::npos || slash < colon) return false;
    const size_t at = full.find('@', slash);
    *iface = full.substr(slash + 1, at == std::string::npos ? std::string::npos : at - slash - 1);
    *pkg = full.substr(0, slash) + (at == std::string::npos ? "" : full.substr(at));
    return true;
  }

  template <typename IfaceList>
  std::string wit_text(const Scope& top, const IfaceList& ifaces,
                       const std::vector<std::pair<std::string, const Func*>>& world_funcs,
                       std::vector<std::string>* imports) {
    std::string package;
    std::string body;
    std::string world_items;
    const Names none;
    for (auto& [nm, it] : top.imports) {
      imports->push_back(nm);
      if (it.sort == Item::Sort::kInstance) {
        std::string p, i;
        if (!split_interface(nm, &p, &i))
          unsupported(8, "import \"" + nm + "\" is an unnamed (inline) interface; Covenant grants named host interfaces");
        world_items += "  import " + nm + ";\n";
      } else if (it.sort == Item::Sort::kFunc) {
        world_items += "  import " + func_text(nm, it.func->type, none, "import \"" + nm + "\"");
      }
    }
    for (const auto& x : ifaces) {
      std::string p, iname;
      const bool qualified = split_interface(x.name, &p, &iname);
      if (qualified) {
        if (!package.empty() && package != p)
          unsupported(8, "the component exports interfaces of two packages (" + package + ", " + p +
                             "); Covenant's WIT model holds one package");
        package = p;
      } else {
        iname = x.name;
      }
      if (!wit::is_kebab_label(iname) || keyword(iname))
        unsupported(8, "export \"" + x.name + "\" cannot be written as a WIT interface name");
      Names names;
      std::string defs;
      for (auto& [k, v] : x.inst->exports)
        if (v.sort == Item::Sort::kType) {
          names[v.type.get()] = k;
          if (v.type->base) names.emplace(v.type->base.get(), k);
        }
      const std::string where = "export \"" + x.name + "\"";
      for (auto& [k, v] : x.inst->exports) {
        if (v.sort == Item::Sort::kType) defs += "  " + typedef_text(k, v.type, names, where);
        if (v.sort == Item::Sort::kFunc) defs += "  " + func_text(k, v.func->type, names, where + " function \"" + k + "\"");
      }
      if (qualified) {
        body += "interface " + id(iname) + " {\n" + defs + "}\n\n";
        world_items += "  export " + id(iname) + ";\n";
      } else {
        std::string indented;
        for (size_t i = 0; i < defs.size(); ++i) {
          indented += defs[i];
          if (defs[i] == '\n' && i + 1 < defs.size()) indented += "  ";
        }
        world_items += "  export " + id(iname) + ": interface {\n  " + indented + "  }\n";
      }
    }
    for (auto& [nm, f] : world_funcs) world_items += "  export " + func_text(nm, f->type, none, "export \"" + nm + "\"");
    if (package.empty()) package = "root:component";
    return "package " + package + ";\n\n" + body + "world root {\n" + world_items + "}\n";
  }
};

std::string pkg_structural(const wit::Package& pkg, wit::TypeId id, uint32_t depth) {
  const wit::Type& t = pkg.type(id);
  if (depth > wit::kTypeDepthMax) return "?";
  auto sub = [&](wit::TypeId x) { return pkg_structural(pkg, x, depth + 1); };
  switch (t.kind) {
    case wit::TypeKind::kList: return "list<" + sub(t.elem) + ">";
    case wit::TypeKind::kOption: return "option<" + sub(t.elem) + ">";
    case wit::TypeKind::kResult:
      return "result<" + (t.ok != wit::kNoType ? sub(t.ok) : "_") + "," + (t.err != wit::kNoType ? sub(t.err) : "_") + ">";
    case wit::TypeKind::kTuple: {
      std::string s = "tuple<";
      for (size_t i = 0; i < t.fields.size(); ++i) s += (i ? "," : "") + sub(t.fields[i].type);
      return s + ">";
    }
    case wit::TypeKind::kRecord: case wit::TypeKind::kVariant: case wit::TypeKind::kEnum: case wit::TypeKind::kFlags: {
      const bool rec = t.kind == wit::TypeKind::kRecord;
      std::string s = std::string(wit::type_kind_name(t.kind)) + "{";
      for (size_t i = 0; i < t.fields.size(); ++i) {
        s += (i ? "," : "") + t.fields[i].name.kebab;
        if (t.fields[i].type != wit::kNoType) s += (rec ? ":" : "(") + sub(t.fields[i].type) + (rec ? "" : ")");
      }
      return s + "}";
    }
    default:
      if (!t.name.kebab.empty() && t.elem != wit::kNoType) return sub(t.elem);  // alias
      return wit::type_kind_name(t.kind);
  }
}

}  // namespace

bool is_component(std::span<const uint8_t> b) {
  static const uint8_t kPreamble[8] = {0, 'a', 's', 'm', 0x0d, 0x00, 0x01, 0x00};
  return b.size() >= 8 && std::memcmp(b.data(), kPreamble, 8) == 0;
}

Result<Component> read_component(std::span<const uint8_t> bytes, std::string_view name) {
  static const uint8_t kMagic[4] = {0, 'a', 's', 'm'};
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), kMagic, 4) == 0 && bytes[6] == 0x01 && bytes[7] == 0x00 &&
      !(bytes[4] == 0x0d && bytes[5] == 0x00))
    return Status::unsupported(std::string(name) + ": component binary version " + std::to_string(bytes[4]) +
                               " (Covenant reads version 13, 0x0d)");
  try {
    Reader r(bytes);
    return r.read();
  } catch (const DecodeError& e) {
    std::string msg = std::string(name) + ": component byte " + hex(e.offset) + ": " + e.message;
    return e.unsupported ? Status::unsupported(msg) : Status::invalid(msg);
  }
}

std::string signature_of(const wit::Package& pkg, const wit::Function& fn) {
  std::string s = "func(";
  for (size_t i = 0; i < fn.params.size(); ++i)
    s += (i ? ", " : "") + fn.params[i].name.kebab + ": " + pkg_structural(pkg, fn.params[i].type, 0);
  s += ")";
  if (!fn.results.empty()) s += " -> " + pkg_structural(pkg, fn.results[0].type, 0);
  return s;
}

}  // namespace covenant::component
