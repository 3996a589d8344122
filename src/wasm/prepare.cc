#include "wasm/prepare.h"

#include <sodium.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <memory>

#include "wabt/binary-reader-ir.h"
#include "wabt/cast.h"
#include "wabt/binary-reader.h"
#include "wabt/binary-writer.h"
#include "wabt/ir.h"
#include "wabt/stream.h"
#include "wabt/validator.h"
#include "wasm/wabt_util.h"

namespace covenant::wasm {
namespace {

using wabt::Const;
using wabt::Expr;
using wabt::ExprList;
using wabt::ExprType;
using wabt::Index;
using wabt::Opcode;
using wabt::Type;
using wabt::Var;

const char* section_name(uint8_t id) {
  static const char* names[] = {"custom", "type",   "import", "function", "table",
                                "memory", "global", "export", "start",    "element",
                                "code",   "data",   "datacount"};
  return id < 13 ? names[id] : "unknown";
}


struct SectionMap {
  struct Section {
    uint8_t id;
    size_t start, end;  // payload range
  };
  std::vector<Section> sections;
  struct Body {
    size_t start, end;
  };
  std::vector<Body> bodies;  // code section entries, in defined-function order
  // Counts as the section headers declare them (before any entry is read).
  uint64_t imports_declared = 0;    // import section
  uint64_t functions_declared = 0;  // function section: defined functions
  uint64_t bodies_declared = 0;     // code section
  uint64_t data_bytes = 0;          // data section: sizes of the segments read
};

// Skips a constant expression (the profile's: i32/i64/f32/f64.const,
// global.get, ref.null/ref.func, extended-const add/sub/mul) up to its `end`.
// False on anything else; the validator then judges the module.
bool skip_const_expr(std::span<const uint8_t> b, size_t& pos, size_t end);

// The data segments' sizes (active and passive, as data_segment_size_bytes_max
// counts them), from their headers; best effort (a malformed section stops
// the count, and the reader reports it later).
uint64_t data_segment_bytes(std::span<const uint8_t> b, size_t pos, size_t end) {
  uint64_t total = 0;
  uint32_t count;
  if (!read_leb_u32(b, pos, count)) return total;
  for (uint32_t i = 0; i < count && pos < end; ++i) {
    uint32_t flags, mem = 0, size;
    if (!read_leb_u32(b, pos, flags) || flags > 2) return total;
    if (flags == 2 && !read_leb_u32(b, pos, mem)) return total;
    if (flags != 1 && !skip_const_expr(b, pos, end)) return total;
    if (!read_leb_u32(b, pos, size)) return total;
    total += size;
    pos += size;
  }
  return total;
}

// Best effort: a malformed module yields a partial map.
SectionMap scan_sections(std::span<const uint8_t> b) {
  SectionMap map;
  size_t pos = 8;
  while (pos < b.size()) {
    uint8_t id = b[pos++];
    uint32_t size;
    if (!read_leb_u32(b, pos, size) || pos + size > b.size()) {
      map.sections.push_back({id, pos, b.size()});
      break;
    }
    map.sections.push_back({id, pos, pos + size});
    if (id == 2 || id == 3) {
      size_t p = pos;
      uint32_t count;
      if (read_leb_u32(b, p, count)) (id == 2 ? map.imports_declared : map.functions_declared) += count;
    } else if (id == 11) {
      map.data_bytes += data_segment_bytes(b, pos, pos + size);
    } else if (id == 10) {
      size_t p = pos;
      uint32_t count;
      if (read_leb_u32(b, p, count)) {
        map.bodies_declared += count;
        // At most one entry per byte of the section: bounded by the module size.
        for (uint32_t i = 0; i < count && p < pos + size; ++i) {
          uint32_t body_size;
          if (!read_leb_u32(b, p, body_size)) break;
          map.bodies.push_back({p, std::min<size_t>(p + body_size, pos + size)});
          p += body_size;
        }
      }
    }
    pos += size;
  }
  return map;
}

bool read_leb(std::span<const uint8_t> b, size_t& pos, size_t end) {
  for (int i = 0; i < 10; ++i) {
    if (pos >= end) return false;
    if (!(b[pos++] & 0x80)) return true;
  }
  return false;
}

bool skip_const_expr(std::span<const uint8_t> b, size_t& pos, size_t end) {
  end = std::min(end, b.size());
  while (pos < end) {
    switch (b[pos++]) {
      case 0x0b: return true;  // end
      case 0x41: case 0x42: case 0x23: case 0xd2:  // i32/i64.const, global.get, ref.func
        if (!read_leb(b, pos, end)) return false;
        break;
      case 0x43: pos += 4; break;  // f32.const
      case 0x44: pos += 8; break;  // f64.const
      case 0xd0: ++pos; break;     // ref.null t
      case 0x6a: case 0x6b: case 0x6c: case 0x7c: case 0x7d: case 0x7e: break;  // extended const
      default: return false;
    }
  }
  return false;
}

// Deepest block/loop/if nesting in one function body, found by decoding
// opcodes and skipping immediates. An opcode it does not know ends the scan
// (the validator then judges the module); returns the depth seen so far.
uint32_t body_nesting(std::span<const uint8_t> b, size_t pos, size_t end) {
  end = std::min(end, b.size());  // a truncated module's last body may claim more
  uint32_t count;
  if (!read_leb_u32(b, pos, count)) return 0;  // local declarations
  for (uint32_t i = 0; i < count; ++i) {
    if (!read_leb(b, pos, end) || pos >= end) return 0;
    ++pos;  // value type
  }
  uint32_t depth = 0, max_depth = 0;
  while (pos < end) {
    uint8_t op = b[pos++];
    switch (op) {
      case 0x02: case 0x03: case 0x04:  // block, loop, if + blocktype (s33)
        if (!read_leb(b, pos, end)) return max_depth;
        max_depth = std::max(max_depth, ++depth);
        break;
      case 0x0b: if (depth) --depth; break;  // end
      case 0x0c: case 0x0d: case 0x10: case 0x20: case 0x21: case 0x22: case 0x23: case 0x24:
      case 0x25: case 0x26: case 0xd2: case 0x41: case 0x42:
        if (!read_leb(b, pos, end)) return max_depth;
        break;
      case 0x0e: {  // br_table
        uint32_t n;
        if (!read_leb_u32(b, pos, n)) return max_depth;
        for (uint64_t k = 0; k <= n; ++k)
          if (!read_leb(b, pos, end)) return max_depth;
        break;
      }
      case 0x11:  // call_indirect
        if (!read_leb(b, pos, end) || !read_leb(b, pos, end)) return max_depth;
        break;
      case 0x3f: case 0x40: case 0xd0: ++pos; break;  // memory.size/grow, ref.null
      case 0x43: pos += 4; break;
      case 0x44: pos += 8; break;
      case 0x1c: {  // typed select
        uint32_t n;
        if (!read_leb_u32(b, pos, n)) return max_depth;
        pos += n;
        break;
      }
      case 0xfc: {
        uint32_t sub;
        if (!read_leb_u32(b, pos, sub)) return max_depth;
        if (sub <= 7) break;  // saturating truncations: no immediates
        if (sub == 8 || sub == 12 || sub == 14) {  // memory.init, table.init, table.copy: two
          if (!read_leb(b, pos, end) || !read_leb(b, pos, end)) return max_depth;
        } else if (sub == 10) {
          pos += 2;
        } else if (sub <= 17) {
          if (!read_leb(b, pos, end)) return max_depth;
        } else {
          return max_depth;
        }
        break;
      }
      default:
        if (op >= 0x28 && op <= 0x3e) {  // loads and stores: memarg
          if (!read_leb(b, pos, end) || !read_leb(b, pos, end)) return max_depth;
        } else if (op > 0xc4 && op != 0xd1) {
          return max_depth;  // outside the profile; the validator will say so
        }
    }
  }
  return max_depth;
}


// ---------------------------------------------------------------------------
// The profile, checked on the raw bytes before libwabt reads them: wabt
// reports a disabled feature as corruption ("invalid section code: 12",
// "unexpected opcode: 0xfc 0xa"), and its IR has no offsets. This decoder
// knows every opcode of the profile and the prefixes of what lies outside it;
// anything it cannot decode ends its scan and is left to wabt's reader.

struct FeatureInfo {
  const char* name;   // as a user would search for it
  const char* clang;  // how to build without it
  const char* rustc;
};
const FeatureInfo kSimd = {"SIMD (v128)", "-mcpu=mvp (or -mno-simd128)",
                           "-C target-cpu=mvp (or -C target-feature=-simd128)"};
const FeatureInfo kRelaxedSimd = {"relaxed SIMD", "-mcpu=mvp (or -mno-relaxed-simd)",
                                  "-C target-cpu=mvp (or -C target-feature=-relaxed-simd)"};
const FeatureInfo kThreads = {"threads and atomics", "-mcpu=mvp without -pthread or -matomics",
                              "-C target-cpu=mvp without -C target-feature=+atomics"};
const FeatureInfo kExceptions = {"exception handling", "-fno-exceptions (or -mno-exception-handling)",
                                 "-C panic=abort"};
const FeatureInfo kTailCalls = {"tail calls", "-mcpu=mvp (or -mno-tail-call)",
                                "-C target-cpu=mvp (or -C target-feature=-tail-call)"};
const FeatureInfo kGc = {"GC and typed function references", "-mcpu=mvp", "-C target-cpu=mvp"};
const FeatureInfo kMemory64 = {"memory64", "--target=wasm32 (not wasm64)", "a wasm32 target"};
const FeatureInfo kMultiMemory = {"multi-memory", "-mcpu=mvp (or -mno-multimemory)", "-C target-cpu=mvp"};
// Features of the profile an embedder may turn off (Features).
const FeatureInfo kBulkMemory = {"bulk memory", "-mno-bulk-memory", "-C target-feature=-bulk-memory"};
const FeatureInfo kReferenceTypes = {"reference types", "-mno-reference-types",
                                     "-C target-feature=-reference-types"};
const FeatureInfo kMultiValue = {"multi-value", "-mno-multivalue", "-C target-feature=-multivalue"};
const FeatureInfo kSignExt = {"sign-extension", "-mno-sign-ext", "-C target-feature=-sign-ext"};
const FeatureInfo kSatConv = {"non-trapping float-to-int", "-mno-nontrapping-fptoint",
                              "-C target-feature=-nontrapping-fptoint"};

struct FeatureUse {
  const FeatureInfo* feature = nullptr;
  size_t offset = 0;
  long defined_func = -1;  // code section entry, or -1 outside function bodies
  std::string what;        // "opcode 0xfd 0x0c"
};

class ProfileScan {
 public:
  ProfileScan(std::span<const uint8_t> b, const Features& f) : b_(b), f_(f) {}

  // The first use of a feature outside the profile, if any.
  FeatureUse run(const SectionMap& map) {
    for (const auto& s : map.sections) {
      if (found()) break;
      pos_ = s.start;
      end_ = std::min(s.end, b_.size());
      switch (s.id) {
        case 1: types(); break;
        case 2: imports(); break;
        case 4: tables(); break;
        case 5: memories(); break;
        case 6: globals(); break;
        case 12:
          if (!f_.bulk_memory) use(kBulkMemory, s.start, "a DataCount section");
          break;
        case 13: use(kExceptions, s.start, "a tag section"); break;
        default: break;
      }
    }
    for (size_t i = 0; i < map.bodies.size() && !found(); ++i) {
      func_ = static_cast<long>(i);
      pos_ = map.bodies[i].start;
      end_ = std::min(map.bodies[i].end, b_.size());
      body();
    }
    return use_;
  }

 private:
  bool found() const { return use_.feature != nullptr; }
  void use(const FeatureInfo& f, size_t at, std::string what) {
    if (found()) return;
    use_.feature = &f;
    use_.offset = at;
    use_.defined_func = func_;
    use_.what = std::move(what);
  }
  static std::string hex(uint32_t v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%02x", v);
    return buf;
  }
  bool u32(uint32_t& v) { return pos_ < end_ && read_leb_u32(b_.first(end_), pos_, v); }
  bool skip_leb() { return read_leb(b_, pos_, end_); }
  bool byte(uint8_t& v) {
    if (pos_ >= end_) return false;
    v = b_[pos_++];
    return true;
  }

  // A value type; false ends the scan (after naming its feature, if any).
  bool valtype() {
    size_t at = pos_;
    uint8_t t;
    if (!byte(t)) return false;
    switch (t) {
      case 0x7f: case 0x7e: case 0x7d: case 0x7c: return true;
      case 0x70: case 0x6f:
        if (!f_.reference_types) use(kReferenceTypes, at, "value type " + hex(t));
        return true;
      case 0x7b: use(kSimd, at, "value type v128"); return false;
      case 0x63: case 0x64: case 0x6e: case 0x6d: case 0x6c: case 0x6b: case 0x6a: case 0x71: case 0x72:
      case 0x73: case 0x74:
        use(kGc, at, "value type " + hex(t));
        return false;
      default: return false;
    }
  }
  bool limits(bool memory) {
    size_t at = pos_;
    uint8_t flags;
    if (!byte(flags)) return false;
    if (memory && (flags & 2)) { use(kThreads, at, "a shared memory"); return false; }
    if (flags & 4) { use(kMemory64, at, memory ? "a 64-bit memory" : "a 64-bit table"); return false; }
    if (flags > 1) return false;
    if (!skip_leb()) return false;
    return !(flags & 1) || skip_leb();
  }
  bool tabletype() {
    size_t at = pos_;
    uint8_t t;
    if (!byte(t)) return false;
    if (t == 0x63 || t == 0x64) { use(kGc, at, "a table of typed references"); return false; }
    if (t != 0x70 && t != 0x6f) return false;
    if (t == 0x6f && !f_.reference_types) use(kReferenceTypes, at, "an externref table");
    return limits(false);
  }

  void types() {
    uint32_t n;
    if (!u32(n)) return;
    for (uint32_t i = 0; i < n && !found(); ++i) {
      size_t at = pos_;
      uint8_t form;
      if (!byte(form)) return;
      if (form != 0x60) {
        if (form == 0x5e || form == 0x5f || form == 0x50 || form == 0x4f || form == 0x4e)
          use(kGc, at, "a " + std::string(form == 0x5e ? "array" : form == 0x5f ? "struct" : "recursive") +
                           " type");
        return;
      }
      uint32_t np, nr;
      if (!u32(np)) return;
      for (uint32_t k = 0; k < np; ++k)
        if (!valtype()) return;
      if (!u32(nr)) return;
      if (nr > 1 && !f_.multi_value) use(kMultiValue, at, "a function type with " + std::to_string(nr) + " results");
      for (uint32_t k = 0; k < nr; ++k)
        if (!valtype()) return;
    }
  }

  void imports() {
    uint32_t n;
    if (!u32(n)) return;
    for (uint32_t i = 0; i < n && !found(); ++i) {
      uint32_t len;
      if (!u32(len) || len > end_ - pos_) return;
      pos_ += len;
      if (!u32(len) || len > end_ - pos_) return;
      pos_ += len;
      size_t at = pos_;
      uint8_t kind;
      if (!byte(kind)) return;
      switch (kind) {
        case 0: if (!skip_leb()) return; ++func_imports; break;
        case 1: if (!tabletype()) return; break;
        case 2: if (!limits(true)) return; break;
        case 3: { uint8_t mut; if (!valtype() || !byte(mut)) return; break; }
        case 4: use(kExceptions, at, "an imported tag"); return;
        default: return;
      }
    }
  }

  void tables() {
    uint32_t n;
    if (!u32(n)) return;
    for (uint32_t i = 0; i < n && !found(); ++i) {
      if (pos_ < end_ && b_[pos_] == 0x40) { use(kGc, pos_, "a table with an initialiser"); return; }
      if (!tabletype()) return;
    }
  }

  void memories() {
    uint32_t n;
    size_t at = pos_;
    if (!u32(n)) return;
    if (n > 1) { use(kMultiMemory, at, std::to_string(n) + " memories"); return; }
    for (uint32_t i = 0; i < n; ++i)
      if (!limits(true)) return;
  }

  void globals() {
    uint32_t n;
    if (!u32(n)) return;
    for (uint32_t i = 0; i < n && !found(); ++i) {
      uint8_t mut;
      if (!valtype() || !byte(mut)) return;
      if (!instrs(/*body=*/false)) return;
    }
  }

  void body() {
    uint32_t n;
    if (!u32(n)) return;
    for (uint32_t i = 0; i < n; ++i)
      if (!skip_leb() || !valtype()) return;
    instrs(/*body=*/true);
  }

  bool blocktype() {
    size_t at = pos_;
    if (pos_ >= end_) return false;
    uint8_t t = b_[pos_];
    if (t == 0x40) { ++pos_; return true; }
    if (t >= 0x40 && !(t & 0x80)) return valtype();  // one value type
    if (!f_.multi_value) use(kMultiValue, at, "a block with a type index");
    return read_leb(b_, pos_, end_);
  }
  bool memidx(size_t at) {
    uint8_t m;
    if (!byte(m)) return false;
    if (m != 0) { use(kMultiMemory, at, "memory index " + std::to_string(m)); return false; }
    return true;
  }

  // Instructions up to the end of the body, or of one constant expression.
  bool instrs(bool in_body) {
    uint32_t depth = 0;
    while (pos_ < end_ && !found()) {
      const size_t at = pos_;
      const uint8_t op = b_[pos_++];
      auto opname = [&] { return "opcode " + hex(op); };
      switch (op) {
        case 0x00: case 0x01: case 0x0f: case 0x1a: case 0x1b: break;
        case 0x02: case 0x03: case 0x04:
          ++depth;
          if (!blocktype()) return false;
          break;
        case 0x05: break;
        case 0x0b:
          if (depth == 0) {
            if (!in_body) return true;
          } else {
            --depth;
          }
          break;
        case 0x06: case 0x07: case 0x08: case 0x09: case 0x0a: case 0x18: case 0x19: case 0x1f:
          use(kExceptions, at, opname());
          return false;
        case 0x12: case 0x13: use(kTailCalls, at, opname()); return false;
        case 0x14: case 0x15: case 0xd3: case 0xd4: case 0xd5: case 0xd6:
          use(kGc, at, opname());
          return false;
        case 0xfb: use(kGc, at, opname()); return false;
        case 0x0c: case 0x0d: case 0x10: case 0x20: case 0x21: case 0x22: case 0x23: case 0x24:
          if (!skip_leb()) return false;
          break;
        case 0x25: case 0x26: case 0xd2:
          if (!f_.reference_types) use(kReferenceTypes, at, opname());
          if (!skip_leb()) return false;
          break;
        case 0x0e: {
          uint32_t n;
          if (!u32(n)) return false;
          for (uint64_t k = 0; k <= n; ++k)
            if (!skip_leb()) return false;
          break;
        }
        case 0x11: {
          uint32_t type, table;
          if (!u32(type) || !u32(table)) return false;
          if (table != 0 && !f_.reference_types) use(kReferenceTypes, at, "call_indirect on table " + std::to_string(table));
          break;
        }
        case 0x1c: {
          if (!f_.reference_types) use(kReferenceTypes, at, "a typed select");
          uint32_t n;
          if (!u32(n)) return false;
          for (uint32_t k = 0; k < n; ++k)
            if (!valtype()) return false;
          break;
        }
        case 0x3f: case 0x40:
          if (!memidx(at)) return false;
          break;
        case 0x41: case 0x42:
          if (!skip_leb()) return false;
          break;
        case 0x43: pos_ += 4; break;
        case 0x44: pos_ += 8; break;
        case 0xd0: {
          if (!f_.reference_types) use(kReferenceTypes, at, opname());
          uint8_t t;
          if (!byte(t)) return false;
          if (t != 0x70 && t != 0x6f) { use(kGc, at, "ref.null of heap type " + hex(t)); return false; }
          break;
        }
        case 0xd1:
          if (!f_.reference_types) use(kReferenceTypes, at, opname());
          break;
        case 0xfc: {
          uint32_t sub;
          if (!u32(sub)) return false;
          if (sub <= 7) {
            if (!f_.saturating_float_to_int) use(kSatConv, at, "opcode 0xfc " + hex(sub));
            break;
          }
          if (sub > 17) return false;
          if (!f_.bulk_memory && sub <= 14) use(kBulkMemory, at, "opcode 0xfc " + hex(sub));
          if (!f_.reference_types && sub >= 15) use(kReferenceTypes, at, "opcode 0xfc " + hex(sub));
          switch (sub) {
            case 8: if (!skip_leb() || !memidx(at)) return false; data_segment_ops = true; break;
            case 9: if (!skip_leb()) return false; data_segment_ops = true; break;
            case 10: if (!memidx(at) || !memidx(at)) return false; break;
            case 11: if (!memidx(at)) return false; break;
            case 12: case 14: if (!skip_leb() || !skip_leb()) return false; break;
            default: if (!skip_leb()) return false; break;
          }
          break;
        }
        case 0xfd: {
          uint32_t sub = 0;
          u32(sub);
          if (sub >= 0x100 && sub <= 0x113)
            use(kRelaxedSimd, at, "opcode 0xfd " + hex(sub));
          else
            use(kSimd, at, "opcode 0xfd " + hex(sub));
          return false;
        }
        case 0xfe: use(kThreads, at, "opcode 0xfe (atomics)"); return false;
        default:
          if (op >= 0x28 && op <= 0x3e) {  // memarg
            uint32_t align;
            if (!u32(align)) return false;
            if (align & 0x40) { use(kMultiMemory, at, "a load or store on another memory"); return false; }
            if (!skip_leb()) return false;
          } else if (op >= 0xc0 && op <= 0xc4) {
            if (!f_.sign_extension) use(kSignExt, at, opname());
          } else if (op < 0x45 || op > 0xc4) {
            return false;  // not an opcode this decoder knows: wabt's reader judges
          }
      }
    }
    return true;
  }

  std::span<const uint8_t> b_;
  const Features& f_;
  size_t pos_ = 0, end_ = 0;
  long func_ = -1;
  FeatureUse use_;

 public:
  uint32_t func_imports = 0;
  bool data_segment_ops = false;  // memory.init or data.drop seen: data segments keep their indices
};

Status feature_error(std::span<const uint8_t> bytes, const FeatureUse& u, uint32_t func_imports) {
  std::string where;
  if (u.defined_func >= 0) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "function %ld (defined function %ld, section 'code', offset 0x%zx)",
                  u.defined_func + long(func_imports), u.defined_func, u.offset);
    where = buf;
  } else {
    where = describe_offset(bytes, u.offset);
  }
  return Status::unsupported("the module uses " + std::string(u.feature->name) + " (" + u.what + ") at " + where +
                             ", which is outside this engine's Wasm profile; build without it: clang " +
                             u.feature->clang + ", rustc " + u.feature->rustc);
}

}  // namespace

bool read_leb_u32(std::span<const uint8_t> b, size_t& pos, uint32_t& out) {
  uint64_t result = 0;
  for (int shift = 0; shift < 35; shift += 7) {
    if (pos >= b.size()) return false;
    uint8_t byte = b[pos++];
    result |= uint64_t(byte & 0x7f) << shift;
    if (!(byte & 0x80)) {
      if (result > 0xffffffffu) return false;
      out = static_cast<uint32_t>(result);
      return true;
    }
  }
  return false;
}

std::string describe_offset(std::span<const uint8_t> bytes, uint64_t offset) {
  char buf[160];
  if (offset < 8) {
    std::snprintf(buf, sizeof buf, "module header, offset 0x%llx", (unsigned long long)offset);
    return buf;
  }
  SectionMap map = scan_sections(bytes);
  for (const auto& s : map.sections) {
    if (offset + 1 < s.start || offset > s.end) continue;
    if (s.id == 10) {
      for (size_t i = 0; i < map.bodies.size(); ++i) {
        if (offset >= map.bodies[i].start && offset <= map.bodies[i].end) {
          std::snprintf(buf, sizeof buf, "section 'code', defined function %zu, offset 0x%llx", i,
                        (unsigned long long)offset);
          return buf;
        }
      }
    }
    std::snprintf(buf, sizeof buf, "section '%s', offset 0x%llx", section_name(s.id),
                  (unsigned long long)offset);
    return buf;
  }
  std::snprintf(buf, sizeof buf, "offset 0x%llx", (unsigned long long)offset);
  return buf;
}

namespace {

std::string format_errors(std::span<const uint8_t> bytes, const wabt::Errors& errors,
                          const char* what) {
  std::string out;
  for (const auto& e : errors) {
    if (!out.empty()) out += "; ";
    out += what;
    out += " at ";
    out += describe_offset(bytes, e.loc.offset == size_t(-1) ? 0 : e.loc.offset);
    out += ": ";
    out += e.message;
  }
  if (out.empty()) out = std::string(what) + " failed";
  return out;
}

ValType to_valtype(Type t) {
  switch (t) {
    case Type::I32: return ValType::kI32;
    case Type::I64: return ValType::kI64;
    case Type::F32: return ValType::kF32;
    default: return ValType::kF64;
  }
}

FuncType to_functype(const wabt::FuncSignature& sig) {
  FuncType ft;
  for (Type t : sig.param_types) ft.params.push_back(to_valtype(t));
  for (Type t : sig.result_types) ft.results.push_back(to_valtype(t));
  return ft;
}

bool is_float(Type t) { return t == Type::F32 || t == Type::F64; }

// Host-facing signatures carry numbers only (Value has no reference type).
bool numeric_signature(const wabt::FuncSignature& sig) {
  auto numeric = [](Type t) { return t == Type::I32 || t == Type::I64 || t == Type::F32 || t == Type::F64; };
  return std::all_of(sig.param_types.begin(), sig.param_types.end(), numeric) &&
         std::all_of(sig.result_types.begin(), sig.result_types.end(), numeric);
}

// Ops whose NaN results have unspecified payloads (Wasm spec: "nondeterministic
// NaN"); their results are canonicalised so every tier produces the same bits.
int nan_producing_width(Opcode op) {
  switch (op) {
    case Opcode::F32Add: case Opcode::F32Sub: case Opcode::F32Mul: case Opcode::F32Div:
    case Opcode::F32Min: case Opcode::F32Max: case Opcode::F32Sqrt: case Opcode::F32Ceil:
    case Opcode::F32Floor: case Opcode::F32Trunc: case Opcode::F32Nearest:
    case Opcode::F32DemoteF64:
      return 32;
    case Opcode::F64Add: case Opcode::F64Sub: case Opcode::F64Mul: case Opcode::F64Div:
    case Opcode::F64Min: case Opcode::F64Max: case Opcode::F64Sqrt: case Opcode::F64Ceil:
    case Opcode::F64Floor: case Opcode::F64Trunc: case Opcode::F64Nearest:
    case Opcode::F64PromoteF32:
      return 64;
    default:
      return 0;
  }
}

template <class T, class... A>
std::unique_ptr<Expr> mk(A&&... a) {
  return std::make_unique<T>(std::forward<A>(a)...);
}
Var idx(Index i) { return Var(i, wabt::Location()); }

class Instrumenter {
 public:
  Instrumenter(wabt::Module& m, uint32_t depth_max, bool canon, bool metering)
      : m_(m), depth_max_(depth_max), canon_(canon), metering_(metering) {}

  void run() {
    Index first_defined = m_.num_func_imports;
    Index defined_end = static_cast<Index>(m_.funcs.size());
    add_globals();
    add_slow_func();
    for (Index i = first_defined; i < defined_end; ++i) {
      wabt::Func* f = m_.funcs[i];
      f32_scratch_ = f64_scratch_ = wabt::kInvalidIndex;
      func_ = f;
      // A function that calls nothing cannot deepen the stack past itself, so
      // only calling frames are counted: at most one leaf frame sits beyond
      // call_depth_max, on every tier alike.
      bulk_tmp_ = grow_tmp_ = wabt::kInvalidIndex;
      if (metering_) meter_function(f->exprs);
      if (metering_) charge_bulk(f->exprs);
      if (canon_) canonicalize_list(f->exprs);
    }
    if (metering_) thread_depth(first_defined, defined_end);
  }

  // The function the host calls for defined function `f` (an export, the
  // start function): with depth threading, a wrapper of f's own signature
  // that passes the current depth (the cvdepth global) on.
  Index host_entry(Index f) {
    if (!metering_ || f < m_.num_func_imports || f >= defined_end_) return f;
    auto it = host_entries_.find(f);
    if (it != host_entries_.end()) return it->second;
    const wabt::FuncSignature sig = original_sigs_.at(f);
    ExprList body;
    for (Index i = 0; i < sig.param_types.size(); ++i) body.push_back(mk<wabt::LocalGetExpr>(idx(i)));
    body.push_back(mk<wabt::GlobalGetExpr>(idx(g_depth)));
    body.push_back(mk<wabt::CallExpr>(idx(f)));
    Index w = add_func(sig.param_types, sig.result_types, std::move(body));
    host_entries_[f] = w;
    return w;
  }

  Index g_fuel, g_bank, g_int, g_trap, g_depth;

 private:
  Index add_global(Type t) {
    auto gf = std::make_unique<wabt::GlobalModuleField>();
    gf->global.type = t;
    gf->global.mutable_ = true;
    if (t == Type::I64)
      gf->global.init_expr.push_back(mk<wabt::ConstExpr>(Const::I64(0)));
    else
      gf->global.init_expr.push_back(mk<wabt::ConstExpr>(Const::I32(0)));
    Index i = static_cast<Index>(m_.globals.size());
    m_.AppendField(std::move(gf));
    return i;
  }

  void add_globals() {
    g_fuel = add_global(Type::I64);
    g_bank = add_global(Type::I64);
    g_int = add_global(Type::I32);
    g_trap = add_global(Type::I32);
    g_depth = add_global(Type::I32);
  }

 public:
  Index find_or_add_type(const wabt::TypeVector& params, const wabt::TypeVector& results) {
    for (Index i = 0; i < m_.types.size(); ++i) {
      auto* ft = wabt::dyn_cast<wabt::FuncType>(m_.types[i]);
      if (ft && ft->sig.param_types == params && ft->sig.result_types == results) return i;
    }
    auto tf = std::make_unique<wabt::TypeModuleField>();
    auto ft = std::make_unique<wabt::FuncType>();
    ft->sig.param_types = params;
    ft->sig.result_types = results;
    tf->type = std::move(ft);
    Index i = static_cast<Index>(m_.types.size());
    m_.AppendField(std::move(tf));
    return i;
  }

 private:
  void trap_with(ExprList& out, uint32_t reason) {
    out.push_back(mk<wabt::ConstExpr>(Const::I32(reason)));
    out.push_back(mk<wabt::GlobalSetExpr>(idx(g_trap)));
    out.push_back(mk<wabt::UnreachableExpr>());
  }

  void add_slow_func() {
    auto ff = std::make_unique<wabt::FuncModuleField>();
    wabt::Func& f = ff->func;
    f.decl.has_func_type = true;
    f.decl.type_var = idx(find_or_add_type({}, {}));
    f.local_types.AppendDecl(Type::I64, 2);  // t = bank + fuel, s = next slice
    const Index t = 0, s = 1;
    const uint64_t slice = kFuelSliceUnits;
    ExprList& e = f.exprs;
    {  // deadline: the watchdog set cvint
      e.push_back(mk<wabt::GlobalGetExpr>(idx(g_int)));
      auto iff = std::make_unique<wabt::IfExpr>();
      trap_with(iff->true_.exprs, kReasonDeadline);
      e.push_back(std::move(iff));
    }
    e.push_back(mk<wabt::GlobalGetExpr>(idx(g_bank)));
    e.push_back(mk<wabt::GlobalGetExpr>(idx(g_fuel)));
    e.push_back(mk<wabt::BinaryExpr>(Opcode::I64Add));
    e.push_back(mk<wabt::LocalSetExpr>(idx(t)));
    {  // out of fuel: nothing left in the bank either
      e.push_back(mk<wabt::LocalGetExpr>(idx(t)));
      e.push_back(mk<wabt::ConstExpr>(Const::I64(0)));
      e.push_back(mk<wabt::CompareExpr>(Opcode::I64LtS));
      auto iff = std::make_unique<wabt::IfExpr>();
      trap_with(iff->true_.exprs, kReasonFuel);
      e.push_back(std::move(iff));
    }
    // s = t < slice ? t : slice
    e.push_back(mk<wabt::LocalGetExpr>(idx(t)));
    e.push_back(mk<wabt::ConstExpr>(Const::I64(slice)));
    e.push_back(mk<wabt::LocalGetExpr>(idx(t)));
    e.push_back(mk<wabt::ConstExpr>(Const::I64(slice)));
    e.push_back(mk<wabt::CompareExpr>(Opcode::I64LtS));
    e.push_back(mk<wabt::SelectExpr>(wabt::TypeVector{}));
    e.push_back(mk<wabt::LocalTeeExpr>(idx(s)));
    e.push_back(mk<wabt::GlobalSetExpr>(idx(g_fuel)));
    e.push_back(mk<wabt::LocalGetExpr>(idx(t)));
    e.push_back(mk<wabt::LocalGetExpr>(idx(s)));
    e.push_back(mk<wabt::BinaryExpr>(Opcode::I64Sub));
    e.push_back(mk<wabt::GlobalSetExpr>(idx(g_bank)));
    slow_ = static_cast<Index>(m_.funcs.size());
    m_.AppendField(std::move(ff));
  }

  void insert_charge(ExprList& list, ExprList::iterator pos, uint64_t cost) {
    list.insert(pos, mk<wabt::GlobalGetExpr>(idx(g_fuel)));
    list.insert(pos, mk<wabt::ConstExpr>(Const::I64(cost)));
    list.insert(pos, mk<wabt::BinaryExpr>(Opcode::I64Sub));
    list.insert(pos, mk<wabt::GlobalSetExpr>(idx(g_fuel)));
    list.insert(pos, mk<wabt::GlobalGetExpr>(idx(g_fuel)));
    list.insert(pos, mk<wabt::ConstExpr>(Const::I64(0)));
    list.insert(pos, mk<wabt::CompareExpr>(Opcode::I64LtS));
    auto iff = std::make_unique<wabt::IfExpr>();
    iff->true_.exprs.push_back(mk<wabt::CallExpr>(idx(slow_)));
    list.insert(pos, std::move(iff));
  }

  // Cost model: fuel is charged only where control can come back to — at
  // function entry and at the top of every loop body — and each charge is the
  // instruction count of the longest path from there to the next charge point
  // (a block costs its body, an if the dearer of its arms, a loop 1 because its
  // body pays for itself per iteration). Every instruction runs at most once
  // per charge (only loop labels branch backwards), so fuel bounds the work
  // done; it may over-count a path that leaves early, identically on every
  // tier. Few charge points keep the overhead low (docs/engine.md).
  uint64_t path_cost(ExprList& list) {
    uint64_t cost = 0;
    for (auto& e : list) {
      ++cost;
      switch (e.type()) {
        case ExprType::Block: cost += path_cost(wabt::cast<wabt::BlockExpr>(&e)->block.exprs); break;
        case ExprType::If: {
          auto* iff = wabt::cast<wabt::IfExpr>(&e);
          cost += std::max(path_cost(iff->true_.exprs), path_cost(iff->false_));
          break;
        }
        case ExprType::Loop: {
          ExprList& body = wabt::cast<wabt::LoopExpr>(&e)->block.exprs;
          uint64_t c = path_cost(body);
          if (c) insert_charge(body, body.begin(), c);
          break;
        }
        default: break;
      }
    }
    return cost;
  }

  void meter_function(ExprList& body) {
    uint64_t c = path_cost(body);
    if (c) insert_charge(body, body.begin(), c);
  }

  // Bulk memory and table operations also pay for what they move, from their
  // length operand (on top of the stack) just before they run: memory.copy,
  // memory.fill and memory.init one unit per 8 bytes or part of it
  // (kBulkBytesPerFuelUnit), table.copy, table.init, table.fill and table.grow
  // one unit per element. The charge is made even if the operation then traps
  // out of bounds, like the instruction's own unit. In the Wasm, so every tier
  // charges the same.
  void charge_bulk(ExprList& list) {
    for (auto it = list.begin(); it != list.end(); ++it) {
      bool bytes = false;
      if (it->type() == ExprType::TableGrow) {
        charge_table_grow(list, it);
        continue;
      }
      switch (it->type()) {
        case ExprType::Block: charge_bulk(wabt::cast<wabt::BlockExpr>(&*it)->block.exprs); continue;
        case ExprType::Loop: charge_bulk(wabt::cast<wabt::LoopExpr>(&*it)->block.exprs); continue;
        case ExprType::If: {
          auto* iff = wabt::cast<wabt::IfExpr>(&*it);
          charge_bulk(iff->true_.exprs);
          charge_bulk(iff->false_);
          continue;
        }
        case ExprType::MemoryCopy: case ExprType::MemoryFill: case ExprType::MemoryInit: bytes = true; break;
        case ExprType::TableCopy: case ExprType::TableInit: case ExprType::TableFill: break;
        default: continue;
      }
      list.insert(it, mk<wabt::LocalTeeExpr>(idx(bulk_local())));
      list.insert(it, mk<wabt::GlobalGetExpr>(idx(g_fuel)));
      list.insert(it, mk<wabt::LocalGetExpr>(idx(bulk_tmp_)));
      list.insert(it, mk<wabt::ConvertExpr>(Opcode::I64ExtendI32U));
      if (bytes) {
        static_assert(kBulkBytesPerFuelUnit == 8);
        list.insert(it, mk<wabt::ConstExpr>(Const::I64(7)));
        list.insert(it, mk<wabt::BinaryExpr>(Opcode::I64Add));
        list.insert(it, mk<wabt::ConstExpr>(Const::I64(3)));
        list.insert(it, mk<wabt::BinaryExpr>(Opcode::I64ShrU));
      }
      list.insert(it, mk<wabt::BinaryExpr>(Opcode::I64Sub));
      list.insert(it, mk<wabt::GlobalSetExpr>(idx(g_fuel)));
      list.insert(it, mk<wabt::GlobalGetExpr>(idx(g_fuel)));
      list.insert(it, mk<wabt::ConstExpr>(Const::I64(0)));
      list.insert(it, mk<wabt::CompareExpr>(Opcode::I64LtS));
      auto iff = std::make_unique<wabt::IfExpr>();
      iff->true_.exprs.push_back(mk<wabt::CallExpr>(idx(slow_)));
      list.insert(it, std::move(iff));
    }
  }

  // table.grow adds and fills elements only when it succeeds: it pays one
  // unit per element right after, unless it returned -1 (a refused grow of
  // 2^32 - 1 elements costs its one unit, as the spec's table_grow.wast
  // expects it to return -1 rather than exhaust any budget).
  void charge_table_grow(ExprList& list, ExprList::iterator it) {
    const Index n = bulk_local();
    if (grow_tmp_ == wabt::kInvalidIndex) {
      grow_tmp_ = func_->GetNumParamsAndLocals();
      func_->local_types.AppendDecl(Type::I32, 1);
    }
    list.insert(it, mk<wabt::LocalTeeExpr>(idx(n)));
    auto after = std::next(it);
    list.insert(after, mk<wabt::LocalTeeExpr>(idx(grow_tmp_)));
    list.insert(after, mk<wabt::LocalGetExpr>(idx(grow_tmp_)));
    list.insert(after, mk<wabt::ConstExpr>(Const::I32(0xffffffffu)));
    list.insert(after, mk<wabt::CompareExpr>(Opcode::I32Ne));
    auto grown = std::make_unique<wabt::IfExpr>();
    ExprList& e = grown->true_.exprs;
    e.push_back(mk<wabt::GlobalGetExpr>(idx(g_fuel)));
    e.push_back(mk<wabt::LocalGetExpr>(idx(n)));
    e.push_back(mk<wabt::ConvertExpr>(Opcode::I64ExtendI32U));
    e.push_back(mk<wabt::BinaryExpr>(Opcode::I64Sub));
    e.push_back(mk<wabt::GlobalSetExpr>(idx(g_fuel)));
    e.push_back(mk<wabt::GlobalGetExpr>(idx(g_fuel)));
    e.push_back(mk<wabt::ConstExpr>(Const::I64(0)));
    e.push_back(mk<wabt::CompareExpr>(Opcode::I64LtS));
    auto slow = std::make_unique<wabt::IfExpr>();
    slow->true_.exprs.push_back(mk<wabt::CallExpr>(idx(slow_)));
    e.push_back(std::move(slow));
    list.insert(after, std::move(grown));
  }

  Index bulk_local() {
    if (bulk_tmp_ == wabt::kInvalidIndex) {
      bulk_tmp_ = func_->GetNumParamsAndLocals();
      func_->local_types.AppendDecl(Type::I32, 1);
    }
    return bulk_tmp_;
  }

  static bool has_calls(const ExprList& list) {
    for (const auto& e : list) {
      switch (e.type()) {
        case ExprType::Call: case ExprType::CallIndirect: case ExprType::ReturnCall:
        case ExprType::ReturnCallIndirect: return true;
        case ExprType::Block: if (has_calls(wabt::cast<wabt::BlockExpr>(&e)->block.exprs)) return true; break;
        case ExprType::Loop: if (has_calls(wabt::cast<wabt::LoopExpr>(&e)->block.exprs)) return true; break;
        case ExprType::If: {
          auto* iff = wabt::cast<wabt::IfExpr>(&e);
          if (has_calls(iff->true_.exprs) || has_calls(iff->false_)) return true;
          break;
        }
        default: break;
      }
    }
    return false;
  }

  Index scratch(int width) {
    Index& s = width == 32 ? f32_scratch_ : f64_scratch_;
    if (s == wabt::kInvalidIndex) {
      s = func_->GetNumParamsAndLocals();
      func_->local_types.AppendDecl(width == 32 ? Type::F32 : Type::F64, 1);
    }
    return s;
  }

  void canonicalize_list(ExprList& list) {
    for (auto it = list.begin(); it != list.end(); ++it) {
      int width = 0;
      switch (it->type()) {
        case ExprType::Block: canonicalize_list(wabt::cast<wabt::BlockExpr>(&*it)->block.exprs); break;
        case ExprType::Loop: canonicalize_list(wabt::cast<wabt::LoopExpr>(&*it)->block.exprs); break;
        case ExprType::If: {
          auto* iff = wabt::cast<wabt::IfExpr>(&*it);
          canonicalize_list(iff->true_.exprs);
          canonicalize_list(iff->false_);
          break;
        }
        case ExprType::Binary: width = nan_producing_width(wabt::cast<wabt::BinaryExpr>(&*it)->opcode); break;
        case ExprType::Unary: {
          Opcode op = wabt::cast<wabt::UnaryExpr>(&*it)->opcode;
          if (rewrite_sign_op(list, it, op)) continue;
          width = nan_producing_width(op);
          break;
        }
        case ExprType::Convert: width = nan_producing_width(wabt::cast<wabt::ConvertExpr>(&*it)->opcode); break;
        default: break;
      }
      if (!width) continue;
      // v -> (v == v) ? v : canonical NaN
      Index s = scratch(width);
      auto pos = std::next(it);
      list.insert(pos, mk<wabt::LocalSetExpr>(idx(s)));
      list.insert(pos, mk<wabt::LocalGetExpr>(idx(s)));
      list.insert(pos, width == 32 ? mk<wabt::ConstExpr>(Const::F32(0x7fc00000u))
                                   : mk<wabt::ConstExpr>(Const::F64(0x7ff8000000000000ull)));
      list.insert(pos, mk<wabt::LocalGetExpr>(idx(s)));
      list.insert(pos, mk<wabt::LocalGetExpr>(idx(s)));
      list.insert(pos, mk<wabt::CompareExpr>(width == 32 ? Opcode::F32Eq : Opcode::F64Eq));
      list.insert(pos, mk<wabt::SelectExpr>(wabt::TypeVector{}));
      it = std::prev(pos);
    }
  }

  // neg and abs are sign-bit operations in Wasm, but a C compiler may emit them
  // as arithmetic (tcc computes -x as 0 - x, which keeps a NaN's sign). Doing
  // them on the bits makes every tier agree. `it` is left on the last new expr.
  bool rewrite_sign_op(ExprList& list, ExprList::iterator& it, Opcode op) {
    bool f32 = op == Opcode::F32Neg || op == Opcode::F32Abs;
    bool neg = op == Opcode::F32Neg || op == Opcode::F64Neg;
    if (!f32 && op != Opcode::F64Neg && op != Opcode::F64Abs) return false;
    auto pos = list.erase(it);
    list.insert(pos, mk<wabt::ConvertExpr>(f32 ? Opcode::I32ReinterpretF32 : Opcode::I64ReinterpretF64));
    if (f32)
      list.insert(pos, mk<wabt::ConstExpr>(Const::I32(neg ? 0x80000000u : 0x7fffffffu)));
    else
      list.insert(pos, mk<wabt::ConstExpr>(Const::I64(neg ? 0x8000000000000000ull : 0x7fffffffffffffffull)));
    list.insert(pos, mk<wabt::BinaryExpr>(neg ? (f32 ? Opcode::I32Xor : Opcode::I64Xor)
                                              : (f32 ? Opcode::I32And : Opcode::I64And)));
    list.insert(pos, mk<wabt::ConvertExpr>(f32 ? Opcode::F32ReinterpretI32 : Opcode::F64ReinterpretI64));
    it = std::prev(pos);
    return true;
  }

  // What a frame of f counts against call_depth_max: one unit, plus one per
  // kFrameSlotsPerDepthUnit of its params and locals (those of the metered
  // function, so every tier counts the same). A native frame holds them, so a
  // frame of 10,000 i64 locals (80 KB) counts 157 units, not 1, and the
  // depth budget bounds native stack use whatever a frame's size
  // (required_stack_bytes gives each unit 1 KiB). The operand stack is not
  // counted yet (docs/engine.md, Pipeline 3, "Frame size").
  static uint32_t frame_depth_units(const wabt::Func& f) {
    return 1 + static_cast<uint32_t>(f.GetNumParamsAndLocals() / kFrameSlotsPerDepthUnit);
  }

  // Call depth travels as an extra last i32 parameter of every defined
  // function ($d: the calling frames above it), so counting costs an add and
  // a compare per call instead of a global's load and store on entry and exit.
  // A function that calls checks $d + frame_depth_units against call_depth_max and passes it
  // on; leaves ignore it (one leaf frame may sit past the limit, on every tier
  // alike). Before a call to an import, cvdepth is that sum, so that a host
  // function calling back into the instance (HostCall::call_export) continues
  // from there; the host's entry points are wrappers that pass cvdepth on.
  // Imports placed in tables get wrappers of the extended type.
  void thread_depth(Index first, Index end) {
    defined_end_ = end;
    for (Index i = first; i < end; ++i) original_sigs_[i] = m_.funcs[i]->decl.sig;
    for (Index i = first; i < end; ++i) {
      wabt::Func& f = *m_.funcs[i];
      const Index nparams = f.GetNumParams();
      shift_locals(f, f.exprs, nparams);
      f.decl.sig.param_types.push_back(Type::I32);
      f.decl.has_func_type = true;
      f.decl.type_var = idx(find_or_add_type(f.decl.sig.param_types, f.decl.sig.result_types));
      if (!has_calls(f.exprs)) continue;
      const Index d = nparams;
      const Index dd = f.GetNumParamsAndLocals();
      f.local_types.AppendDecl(Type::I32, 1);
      func_ = &f;
      ci_tmp_ = wabt::kInvalidIndex;
      thread_calls(f.exprs, dd);
      ExprList check;
      check.push_back(mk<wabt::LocalGetExpr>(idx(d)));
      check.push_back(mk<wabt::ConstExpr>(Const::I32(frame_depth_units(f))));
      check.push_back(mk<wabt::BinaryExpr>(Opcode::I32Add));
      check.push_back(mk<wabt::LocalTeeExpr>(idx(dd)));
      check.push_back(mk<wabt::ConstExpr>(Const::I32(depth_max_)));
      check.push_back(mk<wabt::CompareExpr>(Opcode::I32GtU));
      auto iff = std::make_unique<wabt::IfExpr>();
      trap_with(iff->true_.exprs, kReasonDepth);
      check.push_back(std::move(iff));
      f.exprs.splice(f.exprs.begin(), check);
    }
    // Imports as references (in tables, globals, ref.func): call_indirect
    // passes the depth, so they are wrapped.
    std::set<Index> unused;
    for (wabt::ElemSegment* seg : m_.elem_segments)
      for (ExprList& entry : seg->elem_exprs) wrap_import_refs(entry, unused);
    for (wabt::Global* g : m_.globals) wrap_import_refs(g->init_expr, unused);
    std::set<Index> body_refs;
    for (Index i = first; i < end; ++i) wrap_import_refs(m_.funcs[i]->exprs, body_refs);
    if (!body_refs.empty()) {
      // ref.func in a body needs its function declared: an import's wrapper
      // is new, and a function declared by its export no longer is once the
      // export names its host entry wrapper. One declarative segment
      // declares them all.
      auto ef = std::make_unique<wabt::ElemSegmentModuleField>();
      ef->elem_segment.kind = wabt::SegmentKind::Declared;
      ef->elem_segment.elem_type = Type::FuncRef;
      for (Index f : body_refs) {
        ExprList e;
        e.push_back(mk<wabt::RefFuncExpr>(idx(f)));
        ef->elem_segment.elem_exprs.push_back(std::move(e));
      }
      m_.AppendField(std::move(ef));
    }
    for (wabt::Export* ex : m_.exports)
      if (ex->kind == wabt::ExternalKind::Func) ex->var = idx(host_entry(m_.GetFuncIndex(ex->var)));
  }

  // Replaces references to imports by their wrappers; adds every function
  // referenced to `refs`.
  void wrap_import_refs(ExprList& list, std::set<Index>& refs) {
    for (Expr& e : list) {
      switch (e.type()) {
        case ExprType::RefFunc: {
          auto* rf = wabt::cast<wabt::RefFuncExpr>(&e);
          Index t = m_.GetFuncIndex(rf->var);
          if (t < m_.num_func_imports) {
            t = import_in_table(t);
            rf->var = idx(t);
          }
          refs.insert(t);
          break;
        }
        case ExprType::Block: wrap_import_refs(wabt::cast<wabt::BlockExpr>(&e)->block.exprs, refs); break;
        case ExprType::Loop: wrap_import_refs(wabt::cast<wabt::LoopExpr>(&e)->block.exprs, refs); break;
        case ExprType::If: {
          auto* iff = wabt::cast<wabt::IfExpr>(&e);
          wrap_import_refs(iff->true_.exprs, refs);
          wrap_import_refs(iff->false_, refs);
          break;
        }
        default: break;
      }
    }
  }

  // Locals after the parameters move up by one: the depth parameter comes first.
  void shift_locals(wabt::Func& f, ExprList& list, Index nparams) {
    for (Expr& e : list) {
      switch (e.type()) {
        case ExprType::LocalGet: shift(f, wabt::cast<wabt::LocalGetExpr>(&e)->var, nparams); break;
        case ExprType::LocalSet: shift(f, wabt::cast<wabt::LocalSetExpr>(&e)->var, nparams); break;
        case ExprType::LocalTee: shift(f, wabt::cast<wabt::LocalTeeExpr>(&e)->var, nparams); break;
        case ExprType::Block: shift_locals(f, wabt::cast<wabt::BlockExpr>(&e)->block.exprs, nparams); break;
        case ExprType::Loop: shift_locals(f, wabt::cast<wabt::LoopExpr>(&e)->block.exprs, nparams); break;
        case ExprType::If: {
          auto* iff = wabt::cast<wabt::IfExpr>(&e);
          shift_locals(f, iff->true_.exprs, nparams);
          shift_locals(f, iff->false_, nparams);
          break;
        }
        default: break;
      }
    }
  }

  static void shift(const wabt::Func& f, Var& var, Index nparams) {
    const Index i = f.GetLocalIndex(var);
    if (i >= nparams) var = idx(i + 1);
  }

  void thread_calls(ExprList& list, Index dd) {
    for (auto it = list.begin(); it != list.end(); ++it) {
      switch (it->type()) {
        case ExprType::Block: thread_calls(wabt::cast<wabt::BlockExpr>(&*it)->block.exprs, dd); break;
        case ExprType::Loop: thread_calls(wabt::cast<wabt::LoopExpr>(&*it)->block.exprs, dd); break;
        case ExprType::If: {
          auto* iff = wabt::cast<wabt::IfExpr>(&*it);
          thread_calls(iff->true_.exprs, dd);
          thread_calls(iff->false_, dd);
          break;
        }
        case ExprType::Call: {
          const Index t = m_.GetFuncIndex(wabt::cast<wabt::CallExpr>(&*it)->var);
          if (t == slow_) break;
          if (t < m_.num_func_imports) {
            list.insert(it, mk<wabt::LocalGetExpr>(idx(dd)));
            list.insert(it, mk<wabt::GlobalSetExpr>(idx(g_depth)));
          } else {
            list.insert(it, mk<wabt::LocalGetExpr>(idx(dd)));
          }
          break;
        }
        case ExprType::CallIndirect: {
          auto* ci = wabt::cast<wabt::CallIndirectExpr>(&*it);
          const wabt::FuncType* ft = m_.GetFuncType(ci->decl.type_var);
          wabt::FuncSignature sig = ft ? ft->sig : ci->decl.sig;
          sig.param_types.push_back(Type::I32);
          ci->decl.sig = sig;
          ci->decl.has_func_type = true;
          ci->decl.type_var = idx(find_or_add_type(sig.param_types, sig.result_types));
          // The table index is on top of the stack: the depth goes under it.
          if (ci_tmp_ == wabt::kInvalidIndex) {
            ci_tmp_ = func_->GetNumParamsAndLocals();
            func_->local_types.AppendDecl(Type::I32, 1);
          }
          list.insert(it, mk<wabt::LocalSetExpr>(idx(ci_tmp_)));
          list.insert(it, mk<wabt::LocalGetExpr>(idx(dd)));
          list.insert(it, mk<wabt::LocalGetExpr>(idx(ci_tmp_)));
          break;
        }
        default: break;
      }
    }
  }

  // A wrapper of import t's signature plus the depth: cvdepth = $d, call t.
  Index import_in_table(Index t) {
    auto it = import_wrappers_.find(t);
    if (it != import_wrappers_.end()) return it->second;
    const wabt::FuncSignature& sig = m_.funcs[t]->decl.sig;
    wabt::TypeVector params = sig.param_types;
    params.push_back(Type::I32);
    ExprList body;
    body.push_back(mk<wabt::LocalGetExpr>(idx(static_cast<Index>(sig.param_types.size()))));
    body.push_back(mk<wabt::GlobalSetExpr>(idx(g_depth)));
    for (Index i = 0; i < sig.param_types.size(); ++i) body.push_back(mk<wabt::LocalGetExpr>(idx(i)));
    body.push_back(mk<wabt::CallExpr>(idx(t)));
    Index w = add_func(params, sig.result_types, std::move(body));
    import_wrappers_[t] = w;
    return w;
  }

  Index add_func(const wabt::TypeVector& params, const wabt::TypeVector& results, ExprList body) {
    auto ff = std::make_unique<wabt::FuncModuleField>();
    wabt::Func& f = ff->func;
    f.decl.has_func_type = true;
    f.decl.type_var = idx(find_or_add_type(params, results));
    f.decl.sig.param_types = params;
    f.decl.sig.result_types = results;
    f.exprs = std::move(body);
    Index i = static_cast<Index>(m_.funcs.size());
    m_.AppendField(std::move(ff));
    return i;
  }

  wabt::Module& m_;
  uint32_t depth_max_;
  bool canon_;
  bool metering_;
  Index slow_ = 0;
  Index defined_end_ = 0;
  Index ci_tmp_ = wabt::kInvalidIndex;  // the function's scratch local for call_indirect's table index
  Index bulk_tmp_ = wabt::kInvalidIndex;  // the function's scratch local for a bulk operation's length
  Index grow_tmp_ = wabt::kInvalidIndex;  // and for table.grow's result
  std::map<Index, wabt::FuncSignature> original_sigs_;  // defined functions, before the depth parameter
  std::map<Index, Index> host_entries_;                 // defined function -> its host entry wrapper
  std::map<Index, Index> import_wrappers_;              // import -> its wrapper for tables
  wabt::Func* func_ = nullptr;
  Index f32_scratch_ = wabt::kInvalidIndex, f64_scratch_ = wabt::kInvalidIndex;
};

// Extended constant expressions (i32/i64 add, sub, mul; global.get of an
// earlier constant global) are folded into one constant, so every tier (and
// wasm2c 1.0.32, which writes one-instruction initialisers only) sees a
// plain `*.const`. Returns false for anything else (ref.func, ref.null,
// floats are left as they are).
bool fold_const(ExprList& init, const std::vector<std::optional<Const>>& globals) {
  if (init.size() == 1) return init.front().type() == ExprType::Const;
  std::vector<Const> stack;
  for (const Expr& e : init) {
    switch (e.type()) {
      case ExprType::Const: stack.push_back(wabt::cast<wabt::ConstExpr>(&e)->const_); break;
      case ExprType::GlobalGet: {
        const Var& v = wabt::cast<wabt::GlobalGetExpr>(&e)->var;
        if (!v.is_index() || v.index() >= globals.size() || !globals[v.index()]) return false;
        stack.push_back(*globals[v.index()]);
        break;
      }
      case ExprType::Binary: {
        if (stack.size() < 2) return false;
        Const b = stack.back();
        stack.pop_back();
        Const a = stack.back();
        stack.pop_back();
        const Opcode op = wabt::cast<wabt::BinaryExpr>(&e)->opcode;
        if (a.type() == Type::I32 && b.type() == Type::I32) {
          uint32_t x = a.u32(), y = b.u32();
          if (op == Opcode::I32Add) stack.push_back(Const::I32(x + y));
          else if (op == Opcode::I32Sub) stack.push_back(Const::I32(x - y));
          else if (op == Opcode::I32Mul) stack.push_back(Const::I32(x * y));
          else return false;
        } else if (a.type() == Type::I64 && b.type() == Type::I64) {
          uint64_t x = a.u64(), y = b.u64();
          if (op == Opcode::I64Add) stack.push_back(Const::I64(x + y));
          else if (op == Opcode::I64Sub) stack.push_back(Const::I64(x - y));
          else if (op == Opcode::I64Mul) stack.push_back(Const::I64(x * y));
          else return false;
        } else {
          return false;
        }
        break;
      }
      default: return false;
    }
  }
  if (stack.size() != 1) return false;
  init.clear();
  init.push_back(mk<wabt::ConstExpr>(stack.back()));
  return true;
}

bool const_offset(const ExprList& init, uint64_t& out) {
  if (init.size() != 1) return false;
  const Expr& e = init.front();
  if (e.type() != ExprType::Const) return false;
  const Const& c = wabt::cast<wabt::ConstExpr>(&e)->const_;
  if (c.type() != Type::I32) return false;
  out = c.u32();
  return true;
}

bool uses_floats(const ExprList& list) {
  for (const Expr& e : list) {
    switch (e.type()) {
      case ExprType::Block: if (uses_floats(wabt::cast<wabt::BlockExpr>(&e)->block.exprs)) return true; break;
      case ExprType::Loop: if (uses_floats(wabt::cast<wabt::LoopExpr>(&e)->block.exprs)) return true; break;
      case ExprType::If: {
        auto* iff = wabt::cast<wabt::IfExpr>(&e);
        if (uses_floats(iff->true_.exprs) || uses_floats(iff->false_)) return true;
        break;
      }
      case ExprType::Binary: case ExprType::Unary: case ExprType::Convert: case ExprType::Compare:
      case ExprType::Load: case ExprType::Store: {
        Opcode op = e.type() == ExprType::Load || e.type() == ExprType::Store
                        ? static_cast<const wabt::LoadExpr&>(e).opcode
                        : static_cast<const wabt::BinaryExpr&>(e).opcode;
        if (is_float(op.GetResultType()) || is_float(op.GetParamType1()) ||
            is_float(op.GetParamType2()))
          return true;
        break;
      }
      case ExprType::Const:
        if (is_float(wabt::cast<wabt::ConstExpr>(&e)->const_.type())) return true;
        break;
      default: break;
    }
  }
  return false;
}

}  // namespace

wabt::Features wabt_features(const Features& f) {
  wabt::Features w;
  w.set_exceptions_enabled(false);
  w.set_mutable_globals_enabled(f.mutable_globals);
  w.set_sat_float_to_int_enabled(f.saturating_float_to_int);
  w.set_sign_extension_enabled(f.sign_extension);
  w.set_simd_enabled(false);
  w.set_threads_enabled(false);
  w.set_function_references_enabled(false);
  w.set_multi_value_enabled(f.multi_value);
  w.set_tail_call_enabled(false);
  w.set_bulk_memory_enabled(f.bulk_memory);
  w.set_reference_types_enabled(f.reference_types);
  w.set_annotations_enabled(false);
  w.set_code_metadata_enabled(false);
  w.set_gc_enabled(false);
  w.set_memory64_enabled(false);
  w.set_multi_memory_enabled(false);
  w.set_extended_const_enabled(f.extended_const);
  w.set_relaxed_simd_enabled(false);
  return w;
}

wabt::Features metered_features(const Features& f) {
  wabt::Features w = wabt_features(f);
  w.set_mutable_globals_enabled(true);  // the metering globals are exported
  return w;
}

Result<PreparedModule> prepare_module(std::span<const uint8_t> bytes, const LoadLimits& limits,
                                      const Features& features, bool metering) {
  char buf[256];
  if (bytes.size() > limits.module_size_bytes_max) {
    std::snprintf(buf, sizeof buf, "module is %zu bytes, over the limit of %llu (module_size_bytes_max)",
                  bytes.size(), (unsigned long long)limits.module_size_bytes_max);
    return Status::limit(buf);
  }
  if (bytes.size() < 8 || bytes[0] != 0 || bytes[1] != 'a' || bytes[2] != 's' || bytes[3] != 'm')
    return Status::invalid("not a Wasm module: missing the \\0asm magic at offset 0");
  if (bytes[4] != 1 || bytes[5] != 0 || bytes[6] != 0 || bytes[7] != 0) {
    if (bytes[4] == 0x0d && bytes[6] == 1)
      return Status::unsupported(
          "this is a component (layer 1), not a core module; components are loaded through the "
          "interface layer");
    return Status::invalid("unsupported Wasm binary version at offset 4");
  }

  // One scan of the section table serves the nesting bound here and the body
  // size limits below.
  SectionMap map = scan_sections(bytes);
  // Limits that bound what libwabt would allocate, from the section headers,
  // before it builds any IR: a 10 MB function body was parsed (840 MB, 2 s)
  // before its size was refused. The same limits are checked again on the IR
  // below (counting imported functions too).
  {
    auto over = [&](const char* what, uint64_t have, uint64_t max, const char* name) {
      std::snprintf(buf, sizeof buf, "%s: %llu is over the limit of %llu (%s)", what,
                    (unsigned long long)have, (unsigned long long)max, name);
      return Status::limit(buf);
    };
    if (map.functions_declared > limits.functions_max)
      return over("number of functions (function section)", map.functions_declared, limits.functions_max,
                  "functions_max");
    if (map.bodies_declared > limits.functions_max)
      return over("number of function bodies (code section)", map.bodies_declared, limits.functions_max,
                  "functions_max");
    if (map.imports_declared > limits.imports_max)
      return over("number of imports (import section)", map.imports_declared, limits.imports_max, "imports_max");
    if (map.data_bytes > limits.data_segment_size_bytes_max)
      return over("data segment bytes (data section)", map.data_bytes, limits.data_segment_size_bytes_max,
                  "data_segment_size_bytes_max");
    for (size_t d = 0; d < map.bodies.size(); ++d) {
      size_t sz = map.bodies[d].end - map.bodies[d].start;
      if (sz > limits.function_body_size_bytes_max) {
        std::snprintf(buf, sizeof buf,
                      "defined function %zu body is %zu bytes (section 'code', offset 0x%zx), over the limit of %u "
                      "(function_body_size_bytes_max)",
                      d, sz, map.bodies[d].start, limits.function_body_size_bytes_max);
        return Status::limit(buf);
      }
    }
  }
  // Bound nesting before libwabt builds (recursive) IR from it.
  {
    const SectionMap& pre = map;
    for (size_t i = 0; i < pre.bodies.size(); ++i) {
      uint32_t depth = body_nesting(bytes, pre.bodies[i].start, pre.bodies[i].end);
      if (depth > limits.block_nesting_max) {
        std::snprintf(buf, sizeof buf,
                      "defined function %zu nests blocks %u deep (section 'code', offset 0x%zx), over the limit "
                      "of %u (block_nesting_max)",
                      i, depth, pre.bodies[i].start, limits.block_nesting_max);
        return Status::limit(buf);
      }
    }
  }

  // The profile: a feature outside it is named, with where and how to build
  // without it, before wabt's reader would call the module malformed.
  ProfileScan scan(bytes, features);
  const FeatureUse use = scan.run(map);
  if (use.feature) return feature_error(bytes, use, scan.func_imports);

  wabt::Features wf = wabt_features(features);
  wabt::Module m;
  wabt::Errors errors;
  wabt::ReadBinaryOptions ropts(wf, nullptr, /*read_debug_names=*/false,
                                /*stop_on_first_error=*/true,
                                /*fail_on_custom_section_error=*/false);
  if (wabt::Failed(wabt::ReadBinaryIr("module", bytes.data(), bytes.size(), ropts, &errors, &m)))
    return Status::invalid(format_errors(bytes, errors, "malformed module"));
  wabt::ValidateOptions vopts(wf);
  if (wabt::Failed(wabt::ValidateModule(&m, &errors, vopts)))
    return Status::invalid(format_errors(bytes, errors, "invalid module"));

  // Static limits.
  auto over = [&](const char* what, uint64_t have, uint64_t max, const char* name) {
    std::snprintf(buf, sizeof buf, "%s: %llu is over the limit of %llu (%s)", what,
                  (unsigned long long)have, (unsigned long long)max, name);
    return Status::limit(buf);
  };
  if (m.funcs.size() > limits.functions_max)
    return over("number of functions", m.funcs.size(), limits.functions_max, "functions_max");
  if (m.imports.size() > limits.imports_max)
    return over("number of imports", m.imports.size(), limits.imports_max, "imports_max");
  if (m.exports.size() > limits.exports_max)
    return over("number of exports", m.exports.size(), limits.exports_max, "exports_max");
  for (size_t i = m.num_func_imports; i < m.funcs.size(); ++i) {
    const wabt::Func* f = m.funcs[i];
    if (f->GetNumLocals() > limits.locals_per_function_max) {
      std::snprintf(buf, sizeof buf, "function %zu declares %u locals, over the limit of %u (locals_per_function_max)",
                    i, f->GetNumLocals(), limits.locals_per_function_max);
      return Status::limit(buf);
    }
    size_t d = i - m.num_func_imports;
    if (d < map.bodies.size()) {
      size_t sz = map.bodies[d].end - map.bodies[d].start;
      if (sz > limits.function_body_size_bytes_max) {
        std::snprintf(buf, sizeof buf,
                      "function %zu body is %zu bytes (section 'code', offset 0x%zx), over the limit of %u "
                      "(function_body_size_bytes_max)",
                      i, sz, map.bodies[d].start, limits.function_body_size_bytes_max);
        return Status::limit(buf);
      }
    }
  }

  // Constant initialisers (extended const) become single constants.
  std::vector<std::optional<Const>> global_values;
  for (wabt::Global* g : m.globals) {
    std::optional<Const> v;
    if (fold_const(g->init_expr, global_values) && !g->mutable_)
      v = wabt::cast<wabt::ConstExpr>(&g->init_expr.front())->const_;
    global_values.push_back(v);
  }
  for (wabt::ElemSegment* seg : m.elem_segments)
    if (seg->kind == wabt::SegmentKind::Active) fold_const(seg->offset, global_values);
  for (wabt::DataSegment* seg : m.data_segments)
    if (seg->kind == wabt::SegmentKind::Active) fold_const(seg->offset, global_values);

  PreparedModule out;
  out.call_depth_max = limits.call_depth_max;
  {
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, bytes.data(), bytes.size());
    static const char* hex = "0123456789abcdef";
    for (unsigned char c : h) {
      out.hash_hex += hex[c >> 4];
      out.hash_hex += hex[c & 15];
    }
  }

  // Imports: functions only; renamed h.iN.
  uint32_t import_no = 0;
  for (wabt::Import* imp : m.imports) {
    if (imp->kind() != wabt::ExternalKind::Func) {
      std::snprintf(buf, sizeof buf,
                    "import \"%s\" \"%s\" is a %s; Covenant contracts may import functions only (export "
                    "the memory and tables instead)",
                    imp->module_name.c_str(), imp->field_name.c_str(),
                    wabt::GetKindName(imp->kind()));
      return Status::unsupported(buf);
    }
    auto* fi = wabt::cast<wabt::FuncImport>(imp);
    const wabt::FuncSignature& sig =
        fi->func.decl.has_func_type ? m.GetFuncType(fi->func.decl.type_var)->sig : fi->func.decl.sig;
    if (!numeric_signature(sig)) {
      std::snprintf(buf, sizeof buf,
                    "import \"%s\" \"%s\" takes or returns a reference (funcref/externref); host functions "
                    "take and return numbers only",
                    imp->module_name.c_str(), imp->field_name.c_str());
      return Status::unsupported(buf);
    }
    out.imports.push_back({imp->module_name, imp->field_name, to_functype(sig)});
    imp->module_name = kImportModule;
    imp->field_name = "i" + std::to_string(import_no++);
  }

  // Profile: floats.
  if (!features.floats) {
    for (size_t i = m.num_func_imports; i < m.funcs.size(); ++i) {
      const wabt::Func* f = m.funcs[i];
      bool sig_float = false;
      for (Type t : f->decl.sig.param_types) sig_float |= is_float(t);
      for (Type t : f->decl.sig.result_types) sig_float |= is_float(t);
      for (auto t : f->local_types) sig_float |= is_float(t);
      if (sig_float || uses_floats(f->exprs)) {
        std::snprintf(buf, sizeof buf, "function %zu uses floating point, which this engine's profile refuses (Features::floats)", i);
        return Status::unsupported(buf);
      }
    }
  }

  // Memory and tables.
  if (!m.memories.empty()) {
    const wabt::Memory* mem = m.memories[0];
    out.memory.present = true;
    out.memory.initial_pages = static_cast<uint32_t>(mem->page_limits.initial);
    out.memory.max_pages = mem->page_limits.has_max ? static_cast<uint32_t>(mem->page_limits.max) : 65536;
    if (mem->page_limits.is_shared) return Status::unsupported("shared memory is outside the deterministic profile");
    if (out.memory.initial_pages > limits.memory_initial_pages_max)
      return over("memory initial pages", out.memory.initial_pages, limits.memory_initial_pages_max,
                  "memory_initial_pages_max");
    if (mem->page_limits.has_max && out.memory.max_pages > limits.memory_max_pages_max)
      return over("memory maximum pages", out.memory.max_pages, limits.memory_max_pages_max,
                  "memory_max_pages_max");
    out.memory.max_pages = std::min<uint32_t>(out.memory.max_pages, limits.memory_max_pages_max);
  }
  // Tables: each within the limits; active element segments must fit theirs.
  std::vector<uint64_t> table_sizes;
  for (const wabt::Table* t : m.tables) {
    table_sizes.push_back(t->elem_limits.initial);
    if (t->elem_limits.initial > limits.table_initial_elements_max)
      return over("table initial elements", t->elem_limits.initial, limits.table_initial_elements_max,
                  "table_initial_elements_max");
    if (t->elem_limits.has_max && t->elem_limits.max > limits.table_max_elements_max)
      return over("table maximum elements", t->elem_limits.max, limits.table_max_elements_max,
                  "table_max_elements_max");
  }
  for (size_t i = 0; i < m.elem_segments.size(); ++i) {
    const wabt::ElemSegment* seg = m.elem_segments[i];
    if (seg->kind != wabt::SegmentKind::Active) continue;
    uint64_t off;
    if (!const_offset(seg->offset, off))
      return Status::unsupported("element segment " + std::to_string(i) + " has a non-constant offset");
    const Index ti = m.GetTableIndex(seg->table_var);
    const uint64_t table_size = ti < table_sizes.size() ? table_sizes[ti] : 0;
    if (off + seg->elem_exprs.size() > table_size) {
      std::snprintf(buf, sizeof buf,
                    "element segment %zu does not fit the table: [%llu, %llu) > %llu elements (the module "
                    "cannot be instantiated)",
                    i, (unsigned long long)off, (unsigned long long)(off + seg->elem_exprs.size()),
                    (unsigned long long)table_size);
      return Status::invalid(buf);
    }
  }

  // Active data segments become the memory image. Passive ones stay in the
  // module for memory.init; if any do (or the code names a segment), every
  // segment keeps its index, an active one as an empty passive segment: after
  // instantiation an active segment is dropped, and a dropped segment behaves
  // exactly as an empty one (memory.init of 0 bytes at 0 succeeds, anything
  // else traps; data.drop does nothing).
  uint64_t data_total = 0;
  for (size_t i = 0; i < m.data_segments.size(); ++i) {
    const wabt::DataSegment* seg = m.data_segments[i];
    data_total += seg->data.size();
    if (data_total > limits.data_segment_size_bytes_max)
      return over("data segment bytes", data_total, limits.data_segment_size_bytes_max,
                  "data_segment_size_bytes_max");
    if (seg->kind != wabt::SegmentKind::Active) continue;
    uint64_t off;
    if (!const_offset(seg->offset, off))
      return Status::unsupported("data segment " + std::to_string(i) + " has a non-constant offset");
    uint64_t mem_bytes = uint64_t(out.memory.initial_pages) * kWasmPageBytes;
    if (off + seg->data.size() > mem_bytes) {
      std::snprintf(buf, sizeof buf,
                    "data segment %zu does not fit the memory: [%llu, %llu) > %llu bytes (the module "
                    "cannot be instantiated)",
                    i, (unsigned long long)off, (unsigned long long)(off + seg->data.size()),
                    (unsigned long long)mem_bytes);
      return Status::invalid(buf);
    }
    if (off + seg->data.size() > out.memory_image.size()) out.memory_image.resize(off + seg->data.size());
    std::copy(seg->data.begin(), seg->data.end(), out.memory_image.begin() + off);
  }
  while (!out.memory_image.empty() && out.memory_image.back() == 0) out.memory_image.pop_back();

  // Exports: user function exports become e0..eN, everything else xN.
  uint32_t other_no = 0;
  for (wabt::Export* ex : m.exports) {
    const wabt::Func* f = ex->kind == wabt::ExternalKind::Func ? m.GetFunc(ex->var) : nullptr;
    // An export taking or returning a reference stays in the module but is
    // not offered to the host (Value carries numbers only): like a table or
    // global export, the host cannot call it.
    if (f && numeric_signature(f->decl.sig)) {
      out.exports.push_back({ex->name, to_functype(f->decl.sig)});
      ex->name = "e" + std::to_string(out.exports.size() - 1);
    } else {
      ex->name = "x" + std::to_string(other_no++);
    }
  }

  // Remove data segments and the start function from the module itself.
  Index start_func = wabt::kInvalidIndex;
  if (!m.starts.empty()) start_func = m.GetFuncIndex(*m.starts[0]);
  const bool keep_segments = scan.data_segment_ops || std::any_of(m.data_segments.begin(), m.data_segments.end(),
                                                                  [](const wabt::DataSegment* s) {
                                                                    return s->kind != wabt::SegmentKind::Active;
                                                                  });
  for (auto it = m.fields.begin(); it != m.fields.end();) {
    if ((it->type() == wabt::ModuleFieldType::DataSegment && !keep_segments) ||
        it->type() == wabt::ModuleFieldType::Start)
      it = m.fields.erase(it);
    else
      ++it;
  }
  if (keep_segments) {
    for (wabt::DataSegment* seg : m.data_segments) {
      if (seg->kind != wabt::SegmentKind::Active) continue;
      seg->kind = wabt::SegmentKind::Passive;
      seg->offset.clear();
      seg->data.clear();
    }
  } else {
    m.data_segments.clear();
  }
  m.starts.clear();

  Instrumenter ins(m, limits.call_depth_max, features.floats, metering);
  ins.run();

  auto add_export = [&](const char* name, wabt::ExternalKind kind, Index i) {
    auto ef = std::make_unique<wabt::ExportModuleField>();
    ef->export_.name = name;
    ef->export_.kind = kind;
    ef->export_.var = idx(i);
    m.AppendField(std::move(ef));
  };
  add_export(kFuelGlobal, wabt::ExternalKind::Global, ins.g_fuel);
  add_export(kBankGlobal, wabt::ExternalKind::Global, ins.g_bank);
  add_export(kInterruptGlobal, wabt::ExternalKind::Global, ins.g_int);
  add_export(kTrapGlobal, wabt::ExternalKind::Global, ins.g_trap);
  add_export(kDepthGlobal, wabt::ExternalKind::Global, ins.g_depth);
  if (out.memory.present) add_export(kMemoryExport, wabt::ExternalKind::Memory, 0);
  if (start_func != wabt::kInvalidIndex) {
    add_export(kStartExport, wabt::ExternalKind::Func, ins.host_entry(start_func));
    out.has_start = true;
  }

  wabt::MemoryStream stream;
  wabt::WriteBinaryOptions wopts(metered_features(features), /*canonicalize_lebs=*/true,
                                 /*relocatable=*/false, /*write_debug_names=*/false);
  if (wabt::Failed(wabt::WriteBinaryModule(&stream, &m, wopts)))
    return Status::internal("could not write the metered module");
  out.metered = std::move(stream.output_buffer().data);
  return out;
}

}  // namespace covenant::wasm
