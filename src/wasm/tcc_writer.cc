#include "wasm/tcc_writer.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cinttypes>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <map>
#include <memory>
#include <span>
#include <sstream>
#include <string_view>
#include <vector>

#include "wabt/binary-reader-ir.h"
#include "wabt/binary-reader-nop.h"
#include "wabt/binary-reader.h"
#include "wabt/cast.h"
#include "wabt/ir.h"
#include "wasm/prepare.h"
#include "wasm/wabt_util.h"

namespace covenant::wasm {
namespace {

using wabt::Expr;
using wabt::ExprList;
using wabt::ExprType;
using wabt::Index;
using wabt::Opcode;
using wabt::Type;

// The prelude: everything the unit needs, no system header. Layouts of the
// wasm_rt_* types are those of wasm-rt.h (wabt 1.0.32), which runtime.cc uses.
const char* kPrelude = R"C(
typedef unsigned char u8; typedef signed char s8;
typedef unsigned short u16; typedef short s16;
typedef unsigned int u32; typedef int s32;
typedef unsigned long long u64; typedef long long s64;
typedef float f32; typedef double f64;
typedef struct { u8* data; u32 pages, max_pages; u32 size; } wasm_rt_memory_t;
typedef struct { u32 func_type; void (*func)(void); void* module_instance; } wasm_rt_funcref_t;
typedef struct { wasm_rt_funcref_t* data; u32 max_size; u32 size; } wasm_rt_funcref_table_t;
typedef struct covenant_rt_t {
  void (*trap)(int);
  void (*allocate_memory)(wasm_rt_memory_t*, u32, u32);
  u32 (*grow_memory)(wasm_rt_memory_t*, u32);
  void (*free_memory)(wasm_rt_memory_t*);
  void (*allocate_funcref_table)(wasm_rt_funcref_table_t*, u32, u32);
  void (*free_funcref_table)(wasm_rt_funcref_table_t*);
  u32 (*grow_funcref_table)(wasm_rt_funcref_table_t*, u32, wasm_rt_funcref_t);
  void (*host_call)(void*, u32, u64*);
  void (*allocate_externref_table)(void*, u32, u32);
  void (*free_externref_table)(void*);
  u32 (*grow_externref_table)(void*, u32, void*);
} covenant_rt_t;
covenant_rt_t covenant_rt;
static void cv_trap(int c) { covenant_rt.trap(c); }
typedef union { u32 i; f32 f; } cv_u32f; typedef union { u64 i; f64 f; } cv_u64f;
static u32 cv_f32_bits(f32 v) { cv_u32f u; u.f = v; return u.i; }
static u64 cv_f64_bits(f64 v) { cv_u64f u; u.f = v; return u.i; }
static f32 cv_bits_f32(u32 b) { cv_u32f u; u.i = b; return u.f; }
static f64 cv_bits_f64(u64 b) { cv_u64f u; u.i = b; return u.f; }
float floorf(float); float ceilf(float); float truncf(float); float nearbyintf(float); float sqrtf(float);
void* memset(void*, int, unsigned long); void* memmove(void*, const void*, unsigned long);
double floor(double); double ceil(double); double trunc(double); double nearbyint(double); double sqrt(double);
)C";

// Helpers emitted only when the generated code names them (tcc compiles every
// function it is given; a smaller unit is a faster compile for small modules).
// Order matters: a helper's dependencies come before it. fmin/fmax are exact
// as wasm2c's FMIN/FMAX (a NaN result is canonicalised by the metered module);
// unsigned 64-bit conversions are done by hand (single rounding, no libtcc1);
// the saturating conversions are wasm2c's TRUNC_SAT_*.
struct Helper {
  const char* name;
  const char* deps;  // space-separated names of helpers it calls
  const char* text;
};
const Helper kHelpers[] = {
    {"cv_clz32", "", "static u32 cv_clz32(u32 x) { u32 r; if (!x) return 32; __asm__(\"bsrl %1, %0\" : \"=r\"(r) : \"r\"(x)); return 31 - r; }\n"},
    {"cv_clz64", "", "static u64 cv_clz64(u64 x) { u64 r; if (!x) return 64; __asm__(\"bsrq %1, %0\" : \"=r\"(r) : \"r\"(x)); return 63 - r; }\n"},
    {"cv_ctz32", "", "static u32 cv_ctz32(u32 x) { u32 r; if (!x) return 32; __asm__(\"bsfl %1, %0\" : \"=r\"(r) : \"r\"(x)); return r; }\n"},
    {"cv_ctz64", "", "static u64 cv_ctz64(u64 x) { u64 r; if (!x) return 64; __asm__(\"bsfq %1, %0\" : \"=r\"(r) : \"r\"(x)); return r; }\n"},
    {"cv_popcnt32", "", "static u32 cv_popcnt32(u32 x) { x = x - ((x >> 1) & 0x55555555u); x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u); return (((x + (x >> 4)) & 0x0f0f0f0fu) * 0x01010101u) >> 24; }\n"},
    {"cv_popcnt64", "cv_popcnt32", "static u64 cv_popcnt64(u64 x) { return cv_popcnt32((u32)x) + cv_popcnt32((u32)(x >> 32)); }\n"},
    {"cv_fminf", "", "static f32 cv_fminf(f32 x, f32 y) { if (x != x || y != y) return cv_bits_f32(0x7fc00000u); if (x == 0 && y == 0) return (cv_f32_bits(x) >> 31) ? x : y; return x < y ? x : y; }\n"},
    {"cv_fmaxf", "", "static f32 cv_fmaxf(f32 x, f32 y) { if (x != x || y != y) return cv_bits_f32(0x7fc00000u); if (x == 0 && y == 0) return (cv_f32_bits(x) >> 31) ? y : x; return x > y ? x : y; }\n"},
    {"cv_fmin", "", "static f64 cv_fmin(f64 x, f64 y) { if (x != x || y != y) return cv_bits_f64(0x7ff8000000000000ull); if (x == 0 && y == 0) return (cv_f64_bits(x) >> 63) ? x : y; return x < y ? x : y; }\n"},
    {"cv_fmax", "", "static f64 cv_fmax(f64 x, f64 y) { if (x != x || y != y) return cv_bits_f64(0x7ff8000000000000ull); if (x == 0 && y == 0) return (cv_f64_bits(x) >> 63) ? y : x; return x > y ? x : y; }\n"},
    {"cv_copysignf", "", "static f32 cv_copysignf(f32 x, f32 y) { return cv_bits_f32((cv_f32_bits(x) & 0x7fffffffu) | (cv_f32_bits(y) & 0x80000000u)); }\n"},
    {"cv_copysign", "", "static f64 cv_copysign(f64 x, f64 y) { return cv_bits_f64((cv_f64_bits(x) & 0x7fffffffffffffffull) | (cv_f64_bits(y) & 0x8000000000000000ull)); }\n"},
    {"cv_u64_f32", "", "static f32 cv_u64_f32(u64 x) { if (!(x >> 63)) return (f32)(s64)x; return (f32)(s64)((x >> 1) | (x & 1)) * 2.0f; }\n"},
    {"cv_u64_f64", "", "static f64 cv_u64_f64(u64 x) { if (!(x >> 63)) return (f64)(s64)x; return (f64)(s64)((x >> 1) | (x & 1)) * 2.0; }\n"},
    {"cv_f64_u64", "", "static u64 cv_f64_u64(f64 x) { if (x < 9223372036854775808.0) return (u64)(s64)x; return (u64)(s64)(x - 9223372036854775808.0) ^ 0x8000000000000000ull; }\n"},
    {"cv_f32_u64", "", "static u64 cv_f32_u64(f32 x) { if (x < 9223372036854775808.0f) return (u64)(s64)x; return (u64)(s64)(x - 9223372036854775808.0f) ^ 0x8000000000000000ull; }\n"},
    {"cv_sat_i32_f32_s", "", "static u32 cv_sat_i32_f32_s(f32 x) { if (x != x) return 0; if (!(x >= -2147483648.0f)) return 0x80000000u; if (!(x < 2147483648.0f)) return 0x7fffffffu; return (u32)(s32)x; }\n"},
    {"cv_sat_i32_f64_s", "", "static u32 cv_sat_i32_f64_s(f64 x) { if (x != x) return 0; if (!(x > -2147483649.0)) return 0x80000000u; if (!(x < 2147483648.0)) return 0x7fffffffu; return (u32)(s32)x; }\n"},
    {"cv_sat_i32_f32_u", "", "static u32 cv_sat_i32_f32_u(f32 x) { if (x != x) return 0; if (!(x > -1.0f)) return 0; if (!(x < 4294967296.0f)) return 0xffffffffu; return (u32)(s64)x; }\n"},
    {"cv_sat_i32_f64_u", "", "static u32 cv_sat_i32_f64_u(f64 x) { if (x != x) return 0; if (!(x > -1.0)) return 0; if (!(x < 4294967296.0)) return 0xffffffffu; return (u32)(s64)x; }\n"},
    {"cv_sat_i64_f32_s", "", "static u64 cv_sat_i64_f32_s(f32 x) { if (x != x) return 0; if (!(x >= -9223372036854775808.0f)) return 0x8000000000000000ull; if (!(x < 9223372036854775808.0f)) return 0x7fffffffffffffffull; return (u64)(s64)x; }\n"},
    {"cv_sat_i64_f64_s", "", "static u64 cv_sat_i64_f64_s(f64 x) { if (x != x) return 0; if (!(x >= -9223372036854775808.0)) return 0x8000000000000000ull; if (!(x < 9223372036854775808.0)) return 0x7fffffffffffffffull; return (u64)(s64)x; }\n"},
    {"cv_sat_i64_f32_u", "cv_f32_u64", "static u64 cv_sat_i64_f32_u(f32 x) { if (x != x) return 0; if (!(x > -1.0f)) return 0; if (!(x < 18446744073709551616.0f)) return 0xffffffffffffffffull; return cv_f32_u64(x); }\n"},
    {"cv_sat_i64_f64_u", "cv_f64_u64", "static u64 cv_sat_i64_f64_u(f64 x) { if (x != x) return 0; if (!(x > -1.0)) return 0; if (!(x < 18446744073709551616.0)) return 0xffffffffffffffffull; return cv_f64_u64(x); }\n"},
};


struct Unsupported {
  std::string what;
};

const char* ctype(Type t) {
  switch (t) {
    case Type::I32: return "u32";
    case Type::I64: return "u64";
    case Type::F32: return "f32";
    case Type::F64: return "f64";
    case Type::Void: return "void";
    default: throw Unsupported{"reference types"};  // the wasm2c fallback handles them
  }
}

// Float constants of the unit: (is f64, bits) -> id of its `cvk<id>` union.
using FConsts = std::map<std::pair<bool, uint64_t>, int>;


// A value on the Wasm operand stack, held as a side-effect-free C expression.
struct Val {
  enum Kind { kConst, kTemp, kExpr } kind = kExpr;
  std::string e;
  Type t = Type::I32;
  bool mem = false;   // reads memory (may trap out of bounds) or its size
  bool glob = false;  // reads a global
  uint64_t locals = 0;        // locals it reads, as a bit per (index mod 64): may over-approximate
  std::vector<int> temps;     // pooled temps it references (released when consumed)
  int depth = 0;              // expression nesting, bounded for tcc's parser
  // For comparisons: the bare C condition (no cast to u32), so that a branch
  // on it compiles to cmp + jcc instead of setcc, widen, test, jcc.
  std::string cond;
  bool atom = false;  // a bare local read: cheap and safe to use twice in one expression
  // The fused metering update `(I->g -= k)`: has a side effect, so it is
  // evaluated exactly once, before anything that follows it in Wasm order
  // (only a constant, a comparison and the `if`/`br_if` consuming it may come
  // between; anything else materialises it first).
  bool once = false;
  Index gread = wabt::kInvalidIndex;  // a bare global.get of this global
  Index rmw_g = wabt::kInvalidIndex;  // value is `g OP k`: global.set g becomes `g OP= k`
  const char* rmw_op = "";
  std::string rmw_k;
};

struct Label {
  int id;
  bool loop;
  Type result;  // Void or one type
  size_t height;
  bool used = false;
  bool function = false;
  bool is_if = false;
  bool in_else = false;
  bool then_reach = false;
};

uint32_t type_id_of(std::map<std::vector<Type>, uint32_t>& ids, const wabt::FuncSignature& sig) {
  std::vector<Type> key(sig.param_types.begin(), sig.param_types.end());
  key.push_back(Type::Void);  // separator
  key.insert(key.end(), sig.result_types.begin(), sig.result_types.end());
  auto it = ids.find(key);
  if (it != ids.end()) return it->second;
  uint32_t id = static_cast<uint32_t>(ids.size() + 1);
  ids.emplace(key, id);
  return id;
}

void append_num(std::string& o, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  o.append(buf, r.ptr);
}

void append_func_header(std::string& h, const wabt::Module& m, Index i) {
  const auto& sig = m.funcs[i]->decl.sig;
  h += "static ";
  h += ctype(sig.result_types.empty() ? Type(Type::Void) : sig.result_types[0]);
  h += " w";
  append_num(h, i);
  h += "(Inst* I";
  for (Index p = 0; p < sig.param_types.size(); ++p) {
    h += ", ";
    h += ctype(sig.param_types[p]);
    h += " l";
    append_num(h, p);
  }
  h += ")";
}

std::string func_header(const wabt::Module& m, Index i) {
  std::string h;
  append_func_header(h, m, i);
  return h;
}

// One decoded instruction (not block/loop/if/else/end).
struct Op {
  ExprType kind = ExprType::Nop;
  Opcode opcode = Opcode::Nop;
  Index index = 0;     // local, global, function, type index, branch depth, br_table default
  uint64_t imm = 0;    // constant bits, load/store offset
  Type type = Type::Void;  // constant type
  std::vector<Index> targets;  // br_table
};

class FuncWriter {
 public:
  FuncWriter(const wabt::Module& m, Index func_index, Index cvint_global, FConsts& fconsts,
             std::map<std::vector<Type>, uint32_t>& type_ids)
      : m_(m), sig_(m.funcs[func_index]->decl.sig), func_index_(func_index), cvint_(cvint_global),
        fconsts_(fconsts), type_ids_(type_ids) {
    if (sig_.result_types.size() > 1) throw Unsupported{"multi-value function results"};
    result_ = sig_.result_types.empty() ? Type(Type::Void) : sig_.result_types[0];
    local_types_.assign(sig_.param_types.begin(), sig_.param_types.end());
    Label fl{next_label_++, false, result_, 0};
    fl.function = true;
    labels_.push_back(fl);
  }

  void add_locals(Index count, Type t) {
    if (t != Type::I32 && t != Type::I64 && t != Type::F32 && t != Type::F64) throw Unsupported{"local type"};
    if (count > (1u << 20) || local_types_.size() + count > (1u << 20)) throw Unsupported{"too many locals"};
    local_types_.insert(local_types_.end(), count, t);
  }

  bool ended() const { return labels_.empty(); }

  // Appends the function's C to `out`.
  void finish(std::string& out) {
    if (!labels_.empty()) throw Unsupported{"function body ended early (internal)"};
    append_func_header(out, m_, func_index_);
    out += " {\n";
    for (size_t i = sig_.param_types.size(); i < local_types_.size(); ++i) {
      out += ctype(local_types_[i]);
      out += " l";
      append_num(out, i);
      out += " = 0;\n";
    }
    if (uses_mem_) out += "u8* M = I->mem.data;\n";
    for (size_t i = 0; i < temp_types_.size(); ++i) {
      out += ctype(temp_types_[i]);
      out += " t";
      append_num(out, i);
      out += ";\n";
    }
    for (auto& [id, t] : block_vars_) {
      out += ctype(t);
      out += " b";
      append_num(out, id);
      out += ";\n";
    }
    out += body_;
    out += "}\n";
  }

  // ---- instruction events, in Wasm order. Code after an unconditional
  // branch is skipped up to the `else`/`end` that closes its block.
  enum Ev { kEvOther, kEvConst, kEvCompare, kEvCond, kEvGlobalGet };

  bool dead() const { return dead_; }

  void on_block(Type sig, bool loop) {
    if (dead_) {
      ++skip_depth_;
      return;
    }
    pre(kEvOther);
    Type rt = block_type(sig);
    flush_all();
    int id = next_label_++;
    labels_.push_back(Label{id, loop, rt, stack_.size()});
    if (rt != Type::Void) block_vars_.emplace_back(id, rt);
    if (loop) body_ += cat({"L", std::to_string(id), ":;\n"});
  }

  void on_if(Type sig) {
    if (dead_) {
      ++skip_depth_;
      return;
    }
    pre(kEvCond);
    Type rt = block_type(sig);
    Val c = pop();
    flush_all();
    int id = next_label_++;
    Label l{id, false, rt, stack_.size()};
    l.is_if = true;
    labels_.push_back(l);
    if (rt != Type::Void) block_vars_.emplace_back(id, rt);
    line({"if (", cond(c), ") {"});
    release(c);
    once_live_ = false;
  }

  void on_else() {
    if (dead_ && skip_depth_ > 0) return;
    if (!dead_) pre(kEvOther);
    if (labels_.empty() || !labels_.back().is_if || labels_.back().in_else) throw Unsupported{"else without if"};
    Label& l = labels_.back();
    bool r1 = !dead_;
    if (r1 && l.result != Type::Void) assign_block(l.id);
    truncate(l.height);
    l.then_reach = r1;
    l.in_else = true;
    line("} else {");
    dead_ = false;
  }

  void on_end() {
    if (dead_ && skip_depth_ > 0) {
      --skip_depth_;
      return;
    }
    if (!dead_) pre(kEvOther);
    if (labels_.empty()) throw Unsupported{"end without block (internal)"};
    Label l = labels_.back();
    bool reach = !dead_;
    if (l.function) {
      if (reach) {
        if (result_ != Type::Void) {
          Val v = pop();
          line({"return ", v.e, ";"});
        } else {
          line("return;");
        }
      }
      labels_.pop_back();
      dead_ = true;
      return;
    }
    if (reach && l.result != Type::Void) assign_block(l.id);
    truncate(l.height);
    if (l.is_if) {
      bool r1 = l.in_else ? l.then_reach : reach;
      bool r2 = l.in_else ? reach : true;
      line("}");
      labels_.pop_back();
      if (l.used) body_ += cat({"E", std::to_string(l.id), ":;\n"});
      reach = r1 || r2 || l.used;
    } else {
      labels_.pop_back();
      if (!l.loop && l.used) body_ += cat({"E", std::to_string(l.id), ":;\n"});
      reach = reach || (!l.loop && l.used);
    }
    dead_ = !reach;
    if (reach && l.result != Type::Void) push(block_var(l.id, l.result));
  }

 private:
  Type block_type(Type sig) {
    if (sig.IsIndex()) throw Unsupported{"multi-value blocks"};
    if (sig == Type::Void) return Type::Void;
    if (sig != Type::I32 && sig != Type::I64 && sig != Type::F32 && sig != Type::F64)
      throw Unsupported{"block type"};
    return sig;
  }

  void assign_block(int id) {
    Val v = pop();
    line({"b", std::to_string(id), " = ", v.e, ";"});
    release(v);
  }

  // Runs before every instruction: emits a deferred `g OP= k;` unless the
  // instruction reads g back (then it becomes the once-value), and evaluates
  // pending once-values unless the instruction may consume them in place.
  // Returns true if the instruction was absorbed.
  bool pre(Ev ev, Index g = wabt::kInvalidIndex) {
    if (has_rmw_) {
      has_rmw_ = false;
      if (ev == kEvGlobalGet && g == rmw_g_) {
        Val v;
        v.t = m_.globals[g]->type;
        v.e = "(" + rmw_stmt_ + ")";
        v.glob = true;
        v.once = true;
        once_live_ = true;
        push(std::move(v));
        return true;
      }
      line({rmw_stmt_, ";"});
    }
    if (once_live_) {
      if (ev == kEvOther || ev == kEvGlobalGet) {
        flush_if([](const Val& v) { return v.once; });
        once_live_ = false;
      } else if (ev == kEvCond) {
        // Only the condition itself (the top) may stay a once-value.
        for (size_t i = 0; i + 1 < stack_.size(); ++i)
          if (stack_[i].once) materialize(stack_[i]);
      }
    }
    return false;
  }

 public:
  // ---- emission helpers private:
  // ---- emission helpers
  void line(std::string_view s) {
    body_ += s;
    body_ += '\n';
  }
  void line(std::initializer_list<std::string_view> parts) {
    for (std::string_view p : parts) body_ += p;
    body_ += '\n';
  }
  static std::string cat(std::initializer_list<std::string_view> parts) {
    size_t n = 0;
    for (std::string_view p : parts) n += p.size();
    std::string r;
    r.reserve(n);
    for (std::string_view p : parts) r += p;
    return r;
  }
  const std::string& lname(Index l) {
    if (l >= lnames_.size()) lnames_.resize(l + 1);
    if (lnames_[l].empty()) lnames_[l] = "l" + std::to_string(l);
    return lnames_[l];
  }
  const std::string& gname(Index g) {
    if (g >= gnames_.size()) gnames_.resize(g + 1);
    if (gnames_[g].empty()) gnames_[g] = "I->g" + std::to_string(g);
    return gnames_[g];
  }
  const std::string& tname(int id) {
    if (size_t(id) >= tnames_.size()) tnames_.resize(id + 1);
    if (tnames_[id].empty()) tnames_[id] = "t" + std::to_string(id);
    return tnames_[id];
  }

  int alloc_temp(Type t) {
    auto& fl = free_[t];
    if (!fl.empty()) {
      int id = fl.back();
      fl.pop_back();
      return id;
    }
    temp_types_.push_back(t);
    return static_cast<int>(temp_types_.size() - 1);
  }
  void release(Val& v) {
    for (int id : v.temps) free_[temp_types_[id]].push_back(id);
    v.temps.clear();
  }

  static bool reads_local(const Val& v, Index l) {
    return (v.locals >> (l & 63)) & 1;
  }

  // Evaluates v now into a temp (unless it is a constant or a temp already).
  void materialize(Val& v) {
    if (v.kind != Val::kExpr) return;
    int id = alloc_temp(v.t);
    line({tname(id), " = ", v.e, ";"});
    release(v);
    Val n;
    n.kind = Val::kTemp;
    n.e = tname(id);
    n.t = v.t;
    n.temps = {id};
    v = std::move(n);
  }

  template <class P>
  void flush_if(P pred) {
    for (Val& v : stack_)
      if (v.kind == Val::kExpr && pred(v)) materialize(v);
  }
  void flush_all() { flush_if([](const Val&) { return true; }); }
  void flush_mem() { flush_if([](const Val& v) { return v.mem; }); }
  void flush_mem_glob() { flush_if([](const Val& v) { return v.mem || v.glob; }); }

  Val pop() {
    if (stack_.empty()) throw Unsupported{"operand stack underflow (internal)"};
    Val v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  void push(Val v) {
    if (v.kind == Val::kExpr && (v.depth > 24 || v.e.size() > 1500)) {
      stack_.push_back(std::move(v));
      materialize(stack_.back());
      return;
    }
    stack_.push_back(std::move(v));
  }

  static Val combine(Type t, std::string e, std::initializer_list<const Val*> parts) {
    Val r;
    r.t = t;
    r.e = std::move(e);
    for (const Val* p : parts) {
      r.mem |= p->mem;
      r.glob |= p->glob;
      r.locals |= p->locals;
      r.once |= p->once;
      r.temps.insert(r.temps.end(), p->temps.begin(), p->temps.end());
      r.depth = std::max(r.depth, p->depth + 1);
    }
    return r;
  }

  Val konst(Type t, const std::string& e) {
    Val v;
    v.kind = Val::kConst;
    v.t = t;
    v.e = e;
    return v;
  }

  std::string fconst(bool f64, uint64_t bits) {
    auto [it, added] = fconsts_.emplace(std::make_pair(f64, bits), static_cast<int>(fconsts_.size()));
    (void)added;
    return "cvk" + std::to_string(it->second) + ".f";
  }

  Val constant(Type t, uint64_t bits) {
    char buf[64];
    switch (t) {
      case Type::I32: {
        auto r = std::to_chars(buf, buf + 40, static_cast<uint32_t>(bits));
        *r.ptr++ = 'u';
        return konst(Type::I32, std::string(buf, r.ptr));
      }
      case Type::I64: {
        auto r = std::to_chars(buf, buf + 40, bits);
        std::memcpy(r.ptr, "ull", 3);
        return konst(Type::I64, std::string(buf, r.ptr + 3));
      }
      case Type::F32: return konst(Type::F32, fconst(false, bits & 0xffffffffu));
      case Type::F64: return konst(Type::F64, fconst(true, bits));
      default: throw Unsupported{"constant of a non-numeric type"};
    }
  }

  Type local_type(Index l) const {
    if (l >= local_types_.size()) throw Unsupported{"local index"};
    return local_types_[l];
  }
  Index global(Index g) const {
    if (g >= m_.globals.size()) throw Unsupported{"global index"};
    return g;
  }

  static std::string cond(const Val& c) { return c.cond.empty() ? c.e : c.cond; }

  // A value usable twice in one expression without re-evaluating work.
  Val& simple(Val& v) {
    if (v.kind == Val::kExpr && !v.atom) materialize(v);
    return v;
  }

  Label& target(Index depth) {
    if (depth >= labels_.size()) throw Unsupported{"branch depth out of range (internal)"};
    return labels_[labels_.size() - 1 - depth];
  }

  // Emits the jump to `l` (value already assigned).
  std::string jump(Label& l, const Val* v) {
    l.used = true;
    if (l.function) return v ? "return " + v->e + ";" : "return;";
    std::string s;
    if (v && !l.loop) s = "b" + std::to_string(l.id) + " = " + v->e + "; ";
    s += l.loop ? "goto L" + std::to_string(l.id) + ";" : "goto E" + std::to_string(l.id) + ";";
    return s;
  }

  Val block_var(int id, Type t) {
    Val v;
    v.kind = Val::kTemp;
    v.t = t;
    v.e = "b" + std::to_string(id);
    return v;
  }

  void truncate(size_t h) {
    while (stack_.size() > h) stack_.pop_back();  // unreachable leftovers: temps leak, harmless
  }

  std::string addr(const Val& a, uint64_t offset) {
    uses_mem_ = true;
    if (!offset) return cat({"(M + ", a.e, ")"});
    return cat({"(M + ", a.e, " + ", std::to_string(offset), "ull)"});
  }

  void load(Opcode opcode, uint64_t offset) {
    Val a = pop();
    std::string p = addr(a, offset);
    const char* pre = "";
    Type t;
    switch (opcode) {
      case Opcode::I32Load: t = Type::I32; pre = "*(u32*)"; break;
      case Opcode::I64Load: t = Type::I64; pre = "*(u64*)"; break;
      case Opcode::F32Load: t = Type::F32; pre = "*(f32*)"; break;
      case Opcode::F64Load: t = Type::F64; pre = "*(f64*)"; break;
      case Opcode::I32Load8S: t = Type::I32; pre = "(u32)(s32)*(s8*)"; break;
      case Opcode::I32Load8U: t = Type::I32; pre = "(u32)*(u8*)"; break;
      case Opcode::I32Load16S: t = Type::I32; pre = "(u32)(s32)*(s16*)"; break;
      case Opcode::I32Load16U: t = Type::I32; pre = "(u32)*(u16*)"; break;
      case Opcode::I64Load8S: t = Type::I64; pre = "(u64)(s64)*(s8*)"; break;
      case Opcode::I64Load8U: t = Type::I64; pre = "(u64)*(u8*)"; break;
      case Opcode::I64Load16S: t = Type::I64; pre = "(u64)(s64)*(s16*)"; break;
      case Opcode::I64Load16U: t = Type::I64; pre = "(u64)*(u16*)"; break;
      case Opcode::I64Load32S: t = Type::I64; pre = "(u64)(s64)*(s32*)"; break;
      case Opcode::I64Load32U: t = Type::I64; pre = "(u64)*(u32*)"; break;
      default: throw Unsupported{std::string("load ") + opcode.GetName()};
    }
    Val r = combine(t, cat({"(", pre, p, ")"}), {&a});
    r.mem = true;
    push(std::move(r));
  }

  void store(Opcode opcode, uint64_t offset) {
    Val v = pop();
    Val a = pop();
    flush_mem();  // earlier loads first (their traps), and they must see the old contents
    std::string p = addr(a, offset);
    const char* pre = "";
    const char* cast = "";
    switch (opcode) {
      case Opcode::I32Store: pre = "*(u32*)"; break;
      case Opcode::I64Store: pre = "*(u64*)"; break;
      case Opcode::F32Store: pre = "*(f32*)"; break;
      case Opcode::F64Store: pre = "*(f64*)"; break;
      case Opcode::I32Store8: case Opcode::I64Store8: pre = "*(u8*)"; cast = "(u8)"; break;
      case Opcode::I32Store16: case Opcode::I64Store16: pre = "*(u16*)"; cast = "(u16)"; break;
      case Opcode::I64Store32: pre = "*(u32*)"; cast = "(u32)"; break;
      default: throw Unsupported{std::string("store ") + opcode.GetName()};
    }
    // Wasm evaluates the address and value before the store; an out-of-bounds
    // value load and an out-of-bounds store give the same trap.
    line({pre, p, " = ", cast, v.e, ";"});
    release(v);
    release(a);
  }

  void binary(Opcode op) {
    Val b = pop();
    Val a = pop();
    const char* o = nullptr;
    Type t = Type::I32;
    bool sgn = false;
    int kind = 0;  // 0 arith, 1 compare (result i32)
    switch (op) {
      case Opcode::I32Add: o = "+"; break;
      case Opcode::I32Sub: o = "-"; break;
      case Opcode::I32Mul: o = "*"; break;
      case Opcode::I32And: o = "&"; break;
      case Opcode::I32Or: o = "|"; break;
      case Opcode::I32Xor: o = "^"; break;
      case Opcode::I64Add: o = "+"; t = Type::I64; break;
      case Opcode::I64Sub: o = "-"; t = Type::I64; break;
      case Opcode::I64Mul: o = "*"; t = Type::I64; break;
      case Opcode::I64And: o = "&"; t = Type::I64; break;
      case Opcode::I64Or: o = "|"; t = Type::I64; break;
      case Opcode::I64Xor: o = "^"; t = Type::I64; break;
      case Opcode::F32Add: o = "+"; t = Type::F32; break;
      case Opcode::F32Sub: o = "-"; t = Type::F32; break;
      case Opcode::F32Mul: o = "*"; t = Type::F32; break;
      case Opcode::F32Div: o = "/"; t = Type::F32; break;
      case Opcode::F64Add: o = "+"; t = Type::F64; break;
      case Opcode::F64Sub: o = "-"; t = Type::F64; break;
      case Opcode::F64Mul: o = "*"; t = Type::F64; break;
      case Opcode::F64Div: o = "/"; t = Type::F64; break;
      case Opcode::I32Eq: case Opcode::I64Eq: case Opcode::F32Eq: case Opcode::F64Eq: o = "=="; kind = 1; break;
      case Opcode::I32Ne: case Opcode::I64Ne: case Opcode::F32Ne: case Opcode::F64Ne: o = "!="; kind = 1; break;
      case Opcode::I32LtU: case Opcode::I64LtU: case Opcode::F32Lt: case Opcode::F64Lt: o = "<"; kind = 1; break;
      case Opcode::I32GtU: case Opcode::I64GtU: case Opcode::F32Gt: case Opcode::F64Gt: o = ">"; kind = 1; break;
      case Opcode::I32LeU: case Opcode::I64LeU: case Opcode::F32Le: case Opcode::F64Le: o = "<="; kind = 1; break;
      case Opcode::I32GeU: case Opcode::I64GeU: case Opcode::F32Ge: case Opcode::F64Ge: o = ">="; kind = 1; break;
      case Opcode::I32LtS: case Opcode::I64LtS: o = "<"; kind = 1; sgn = true; break;
      case Opcode::I32GtS: case Opcode::I64GtS: o = ">"; kind = 1; sgn = true; break;
      case Opcode::I32LeS: case Opcode::I64LeS: o = "<="; kind = 1; sgn = true; break;
      case Opcode::I32GeS: case Opcode::I64GeS: o = ">="; kind = 1; sgn = true; break;
      default: break;
    }
    if (o) {
      std::string e;
      if (kind == 1) {
        const char* c = !sgn ? "" : a.t == Type::I64 ? "(s64)" : "(s32)";
        std::string bare = cat({"(", c, a.e, " ", o, " ", c, b.e, ")"});
        e = cat({"(u32)", bare});
        t = Type::I32;
        Val r = combine(t, e, {&a, &b});
        r.cond = bare;
        push(std::move(r));
        return;
      } else if (t == Type::I32 || t == Type::I64) {
        // Every i32 value is a u32 (unsigned int) and every i64 a u64 in the
        // C: their arithmetic neither promotes nor overflows, no cast needed.
        e = cat({"(", a.e, " ", o, " ", b.e, ")"});
        Val r = combine(t, e, {&a, &b});
        if (a.gread != wabt::kInvalidIndex && b.kind == Val::kConst && (o[0] == '+' || o[0] == '-')) {
          r.rmw_g = a.gread;
          r.rmw_op = o;
          r.rmw_k = b.e;
        }
        push(std::move(r));
        return;
      } else {
        e = cat({"(", a.e, " ", o, " ", b.e, ")"});
      }
      push(combine(t, e, {&a, &b}));
      return;
    }
    bool w64 = a.t == Type::I64;
    const char* ut = w64 ? "u64" : "u32";
    const char* st = w64 ? "s64" : "s32";
    std::string mask = w64 ? "63" : "31";
    unsigned bits = w64 ? 64 : 32;
    // A constant shift count, masked here (tcc folds little).
    int kshift = -1;
    if (b.kind == Val::kConst && (a.t == Type::I32 || a.t == Type::I64))
      kshift = static_cast<int>(std::strtoull(b.e.c_str(), nullptr, 10) & (bits - 1));
    auto cnt = [&](const Val& v) { return kshift >= 0 ? std::to_string(kshift) : "(" + v.e + " & " + mask + ")"; };
    switch (op) {
      case Opcode::I32Shl: case Opcode::I64Shl:
        push(combine(a.t, cat({"(", a.e, " << ", cnt(b), ")"}), {&a, &b}));
        return;
      case Opcode::I32ShrU: case Opcode::I64ShrU:
        push(combine(a.t, "(" + a.e + " >> " + cnt(b) + ")", {&a, &b}));
        return;
      case Opcode::I32ShrS: case Opcode::I64ShrS:
        push(combine(a.t, std::string("(") + ut + ")((" + st + ")" + a.e + " >> " + cnt(b) + ")", {&a, &b}));
        return;
      case Opcode::I32Rotl: case Opcode::I64Rotl:
      case Opcode::I32Rotr: case Opcode::I64Rotr: {
        bool left = op == Opcode::I32Rotl || op == Opcode::I64Rotl;
        // Both operands appear twice: make them cheap first (in Wasm order).
        stack_.push_back(std::move(a));
        stack_.push_back(std::move(b));
        simple(stack_[stack_.size() - 2]);
        simple(stack_.back());
        b = pop();
        a = pop();
        std::string n = cnt(b);
        std::string m = kshift >= 0 ? std::to_string((bits - kshift) & (bits - 1))
                                    : "((" + std::string(w64 ? "64" : "32") + " - " + n + ") & " + mask + ")";
        std::string e = left ? "(" + std::string(ut) + ")((" + a.e + " << " + n + ") | (" + a.e + " >> " + m + "))"
                             : "(" + std::string(ut) + ")((" + a.e + " >> " + n + ") | (" + a.e + " << " + m + "))";
        push(combine(a.t, e, {&a, &b}));
        return;
      }
      case Opcode::I32DivS: case Opcode::I64DivS: case Opcode::I32RemS: case Opcode::I64RemS:
      case Opcode::I32DivU: case Opcode::I64DivU: case Opcode::I32RemU: case Opcode::I64RemU: {
        bool is_signed = op == Opcode::I32DivS || op == Opcode::I64DivS || op == Opcode::I32RemS || op == Opcode::I64RemS;
        bool rem = op == Opcode::I32RemS || op == Opcode::I64RemS || op == Opcode::I32RemU || op == Opcode::I64RemU;
        const char* o2 = rem ? "%" : "/";
        // A constant divisor other than 0 and -1 cannot trap: plain expression.
        if (b.kind == Val::kConst) {
          uint64_t d = std::strtoull(b.e.c_str(), nullptr, 10);
          uint64_t minus1 = w64 ? ~0ull : 0xffffffffull;
          if (d != 0 && d != minus1) {
            std::string e = is_signed ? std::string("(") + ut + ")((" + st + ")" + a.e + " " + o2 + " (" + st + ")" + b.e + ")"
                                      : std::string("(") + ut + ")(" + a.e + " " + o2 + " " + b.e + ")";
            push(combine(a.t, e, {&a, &b}));
            return;
          }
        }
        stack_.push_back(std::move(a));
        stack_.push_back(std::move(b));
        flush_mem();  // earlier loads trap first
        simple(stack_[stack_.size() - 2]);
        simple(stack_.back());
        b = pop();
        a = pop();
        line("if (" + b.e + " == 0) cv_trap(3);");
        std::string min = w64 ? "0x8000000000000000ull" : "0x80000000u";
        std::string m1 = w64 ? "0xffffffffffffffffull" : "0xffffffffu";
        int id = alloc_temp(a.t);
        std::string tn = "t" + std::to_string(id);
        if (is_signed && !rem) {
          line("if (" + a.e + " == " + min + " && " + b.e + " == " + m1 + ") cv_trap(2);");
          line(tn + " = (" + ut + ")((" + st + ")" + a.e + " / (" + st + ")" + b.e + ");");
        } else if (is_signed) {
          line(tn + " = (" + b.e + " == " + m1 + ") ? 0 : (" + ut + ")((" + st + ")" + a.e + " % (" + st + ")" + b.e + ");");
        } else {
          line(tn + " = " + a.e + " " + o2 + " " + b.e + ";");
        }
        release(a);
        release(b);
        Val r;
        r.kind = Val::kTemp;
        r.t = a.t;
        r.e = tn;
        r.temps = {id};
        push(std::move(r));
        return;
      }
      case Opcode::F32Min: push(combine(Type::F32, "cv_fminf(" + a.e + ", " + b.e + ")", {&a, &b})); return;
      case Opcode::F32Max: push(combine(Type::F32, "cv_fmaxf(" + a.e + ", " + b.e + ")", {&a, &b})); return;
      case Opcode::F64Min: push(combine(Type::F64, "cv_fmin(" + a.e + ", " + b.e + ")", {&a, &b})); return;
      case Opcode::F64Max: push(combine(Type::F64, "cv_fmax(" + a.e + ", " + b.e + ")", {&a, &b})); return;
      case Opcode::F32Copysign: push(combine(Type::F32, "cv_copysignf(" + a.e + ", " + b.e + ")", {&a, &b})); return;
      case Opcode::F64Copysign: push(combine(Type::F64, "cv_copysign(" + a.e + ", " + b.e + ")", {&a, &b})); return;
      default: throw Unsupported{std::string("binary ") + op.GetName()};
    }
  }

  void unary(Opcode op) {
    Val a = pop();
    std::string f;
    Type t = a.t;
    switch (op) {
      case Opcode::I32Eqz: case Opcode::I64Eqz: {
        Val r = combine(Type::I32, "(u32)(" + a.e + " == 0)", {&a});
        r.cond = a.cond.empty() ? "(" + a.e + " == 0)" : "(!" + a.cond + ")";
        push(std::move(r));
        return;
      }
      case Opcode::I32Clz: f = "cv_clz32"; break;
      case Opcode::I32Ctz: f = "cv_ctz32"; break;
      case Opcode::I32Popcnt: f = "cv_popcnt32"; break;
      case Opcode::I64Clz: f = "cv_clz64"; break;
      case Opcode::I64Ctz: f = "cv_ctz64"; break;
      case Opcode::I64Popcnt: f = "cv_popcnt64"; break;
      case Opcode::F32Ceil: f = "ceilf"; break;
      case Opcode::F32Floor: f = "floorf"; break;
      case Opcode::F32Trunc: f = "truncf"; break;
      case Opcode::F32Nearest: f = "nearbyintf"; break;
      case Opcode::F32Sqrt: f = "sqrtf"; break;
      case Opcode::F64Ceil: f = "ceil"; break;
      case Opcode::F64Floor: f = "floor"; break;
      case Opcode::F64Trunc: f = "trunc"; break;
      case Opcode::F64Nearest: f = "nearbyint"; break;
      case Opcode::F64Sqrt: f = "sqrt"; break;
      case Opcode::F32Neg: push(combine(t, "cv_bits_f32(cv_f32_bits(" + a.e + ") ^ 0x80000000u)", {&a})); return;
      case Opcode::F32Abs: push(combine(t, "cv_bits_f32(cv_f32_bits(" + a.e + ") & 0x7fffffffu)", {&a})); return;
      case Opcode::F64Neg: push(combine(t, "cv_bits_f64(cv_f64_bits(" + a.e + ") ^ 0x8000000000000000ull)", {&a})); return;
      case Opcode::F64Abs: push(combine(t, "cv_bits_f64(cv_f64_bits(" + a.e + ") & 0x7fffffffffffffffull)", {&a})); return;
      case Opcode::I32Extend8S: push(combine(t, "(u32)(s32)(s8)" + a.e, {&a})); return;
      case Opcode::I32Extend16S: push(combine(t, "(u32)(s32)(s16)" + a.e, {&a})); return;
      case Opcode::I64Extend8S: push(combine(t, "(u64)(s64)(s8)" + a.e, {&a})); return;
      case Opcode::I64Extend16S: push(combine(t, "(u64)(s64)(s16)" + a.e, {&a})); return;
      case Opcode::I64Extend32S: push(combine(t, "(u64)(s64)(s32)" + a.e, {&a})); return;
      default: throw Unsupported{std::string("unary ") + op.GetName()};
    }
    push(combine(t, f + "(" + a.e + ")", {&a}));
  }

  // Trapping float -> int truncation (wasm2c's TRUNC_S / TRUNC_U bounds).
  void trunc_trapping(Opcode op) {
    bool f64 = op == Opcode::I32TruncF64S || op == Opcode::I32TruncF64U || op == Opcode::I64TruncF64S ||
               op == Opcode::I64TruncF64U;
    bool i64 = op == Opcode::I64TruncF32S || op == Opcode::I64TruncF32U || op == Opcode::I64TruncF64S ||
               op == Opcode::I64TruncF64U;
    bool sgn = op == Opcode::I32TruncF32S || op == Opcode::I32TruncF64S || op == Opcode::I64TruncF32S ||
               op == Opcode::I64TruncF64S;
    flush_mem();
    Val& top = simple(stack_.back());
    (void)top;
    Val a = pop();
    auto K = [&](double d) {
      uint64_t bits;
      if (f64) {
        std::memcpy(&bits, &d, 8);
      } else {
        float fl = static_cast<float>(d);
        uint32_t b32;
        std::memcpy(&b32, &fl, 4);
        bits = b32;
      }
      return fconst(f64, bits);
    };
    std::string lo_ok, hi;
    if (sgn) {
      if (!i64 && f64) lo_ok = a.e + " > " + K(-2147483649.0);
      else lo_ok = a.e + " >= " + K(i64 ? -9223372036854775808.0 : -2147483648.0);
      hi = K(i64 ? 9223372036854775808.0 : 2147483648.0);
    } else {
      lo_ok = a.e + " > " + K(-1.0);
      hi = K(i64 ? 18446744073709551616.0 : 4294967296.0);
    }
    line("if (" + a.e + " != " + a.e + ") cv_trap(4);");
    line("if (!(" + lo_ok + " && " + a.e + " < " + hi + ")) cv_trap(2);");
    Type rt = i64 ? Type::I64 : Type::I32;
    std::string conv;
    if (sgn) conv = i64 ? "(u64)(s64)" + a.e : "(u32)(s32)" + a.e;
    else if (!i64) conv = "(u32)(s64)" + a.e;
    else conv = std::string(f64 ? "cv_f64_u64(" : "cv_f32_u64(") + a.e + ")";
    int id = alloc_temp(rt);
    line("t" + std::to_string(id) + " = " + conv + ";");
    release(a);
    Val r;
    r.kind = Val::kTemp;
    r.t = rt;
    r.e = "t" + std::to_string(id);
    r.temps = {id};
    push(std::move(r));
  }

  void convert(Opcode op) {
    switch (op) {
      case Opcode::I32TruncF32S: case Opcode::I32TruncF32U: case Opcode::I32TruncF64S: case Opcode::I32TruncF64U:
      case Opcode::I64TruncF32S: case Opcode::I64TruncF32U: case Opcode::I64TruncF64S: case Opcode::I64TruncF64U:
        trunc_trapping(op);
        return;
      case Opcode::I32Eqz: case Opcode::I64Eqz:  // wabt files eqz under Convert
        unary(op);
        return;
      default: break;
    }
    Val a = pop();
    std::string e;
    Type t;
    switch (op) {
      case Opcode::I32WrapI64: t = Type::I32; e = "(u32)" + a.e; break;
      case Opcode::I64ExtendI32S: t = Type::I64; e = "(u64)(s64)(s32)" + a.e; break;
      case Opcode::I64ExtendI32U: t = Type::I64; e = "(u64)" + a.e; break;
      case Opcode::I32TruncSatF32S: t = Type::I32; e = "cv_sat_i32_f32_s(" + a.e + ")"; break;
      case Opcode::I32TruncSatF32U: t = Type::I32; e = "cv_sat_i32_f32_u(" + a.e + ")"; break;
      case Opcode::I32TruncSatF64S: t = Type::I32; e = "cv_sat_i32_f64_s(" + a.e + ")"; break;
      case Opcode::I32TruncSatF64U: t = Type::I32; e = "cv_sat_i32_f64_u(" + a.e + ")"; break;
      case Opcode::I64TruncSatF32S: t = Type::I64; e = "cv_sat_i64_f32_s(" + a.e + ")"; break;
      case Opcode::I64TruncSatF32U: t = Type::I64; e = "cv_sat_i64_f32_u(" + a.e + ")"; break;
      case Opcode::I64TruncSatF64S: t = Type::I64; e = "cv_sat_i64_f64_s(" + a.e + ")"; break;
      case Opcode::I64TruncSatF64U: t = Type::I64; e = "cv_sat_i64_f64_u(" + a.e + ")"; break;
      case Opcode::F32ConvertI32S: t = Type::F32; e = "(f32)(s32)" + a.e; break;
      case Opcode::F32ConvertI32U: t = Type::F32; e = "(f32)(s64)(u64)" + a.e; break;
      case Opcode::F32ConvertI64S: t = Type::F32; e = "(f32)(s64)" + a.e; break;
      case Opcode::F32ConvertI64U: t = Type::F32; e = "cv_u64_f32(" + a.e + ")"; break;
      case Opcode::F64ConvertI32S: t = Type::F64; e = "(f64)(s32)" + a.e; break;
      case Opcode::F64ConvertI32U: t = Type::F64; e = "(f64)(s64)(u64)" + a.e; break;
      case Opcode::F64ConvertI64S: t = Type::F64; e = "(f64)(s64)" + a.e; break;
      case Opcode::F64ConvertI64U: t = Type::F64; e = "cv_u64_f64(" + a.e + ")"; break;
      case Opcode::F32DemoteF64: t = Type::F32; e = "(f32)" + a.e; break;
      case Opcode::F64PromoteF32: t = Type::F64; e = "(f64)" + a.e; break;
      case Opcode::I32ReinterpretF32: t = Type::I32; e = "cv_f32_bits(" + a.e + ")"; break;
      case Opcode::I64ReinterpretF64: t = Type::I64; e = "cv_f64_bits(" + a.e + ")"; break;
      case Opcode::F32ReinterpretI32: t = Type::F32; e = "cv_bits_f32(" + a.e + ")"; break;
      case Opcode::F64ReinterpretI64: t = Type::F64; e = "cv_bits_f64(" + a.e + ")"; break;
      default: throw Unsupported{std::string("conversion ") + op.GetName()};
    }
    push(combine(t, "(" + e + ")", {&a}));
  }

  // Pops the arguments of a call with `sig` and returns "I, a0, a1...".
  std::string call_args(const wabt::FuncSignature& sig) {
    std::vector<Val> args(sig.param_types.size());
    for (size_t i = args.size(); i-- > 0;) args[i] = pop();
    std::string s = "I";
    for (Val& v : args) {
      s += ", " + v.e;
      release(v);
    }
    return s;
  }

  void finish_call(const wabt::FuncSignature& sig, const std::string& call) {
    if (sig.result_types.size() > 1) throw Unsupported{"multi-value calls"};
    if (sig.result_types.empty()) {
      line(call + ";");
      return;
    }
    Type rt = sig.result_types[0];
    int id = alloc_temp(rt);
    line("t" + std::to_string(id) + " = " + call + ";");
    Val r;
    r.kind = Val::kTemp;
    r.t = rt;
    r.e = "t" + std::to_string(id);
    r.temps = {id};
    push(std::move(r));
  }

  // One instruction (not block/loop/if/else/end). Sets dead_ after an
  // unconditional transfer.
  void on(const Op& o) {
    if (dead_) return;
    Ev ev = o.kind == ExprType::Const ? kEvConst
            : o.kind == ExprType::Compare || (o.kind == ExprType::Convert && (o.opcode == Opcode::I32Eqz || o.opcode == Opcode::I64Eqz)) ? kEvCompare
            : o.kind == ExprType::BrIf ? kEvCond
            : o.kind == ExprType::GlobalGet ? kEvGlobalGet
                                            : kEvOther;
    if (pre(ev, o.index)) return;
    if (!expr(o)) dead_ = true;
  }

 private:
  bool expr(const Op& o) {
    switch (o.kind) {
      case ExprType::Nop: return true;
      case ExprType::Unreachable:
        flush_mem();
        line("cv_trap(5);");
        return false;
      case ExprType::Const: push(constant(o.type, o.imm)); return true;
      case ExprType::LocalGet: {
        Index l = o.index;
        Val v;
        v.t = local_type(l);
        v.e = lname(l);
        v.locals = 1ull << (l & 63);
        v.atom = true;
        push(std::move(v));
        return true;
      }
      case ExprType::LocalSet:
      case ExprType::LocalTee: {
        bool tee = o.kind == ExprType::LocalTee;
        Index l = o.index;
        local_type(l);
        Val v = pop();
        flush_if([&](const Val& x) { return reads_local(x, l); });
        line({lname(l), " = ", v.e, ";"});
        release(v);
        if (tee) {
          Val r;
          r.t = local_type(l);
          r.e = lname(l);
          r.locals = 1ull << (l & 63);
          r.atom = true;
          push(std::move(r));
        }
        return true;
      }
      case ExprType::GlobalGet: {
        Index g = global(o.index);
        Val v;
        v.t = m_.globals[g]->type;
        v.e = g == cvint_ ? "(*(volatile u32*)&" + gname(g) + ")" : gname(g);
        v.glob = true;
        if (g != cvint_) v.gread = g;
        push(std::move(v));
        return true;
      }
      case ExprType::GlobalSet: {
        Index g = global(o.index);
        Val v = pop();
        flush_mem_glob();
        if (v.rmw_g == g) {
          // Deferred: fused with a following global.get g (see pre()).
          has_rmw_ = true;
          rmw_g_ = g;
          rmw_stmt_ = cat({gname(g), " ", v.rmw_op, "= ", v.rmw_k});
        } else {
          line({gname(g), " = ", v.e, ";"});
        }
        release(v);
        return true;
      }
      case ExprType::Drop: {
        Val v = pop();
        if (v.mem || v.once) materialize(v);  // its load still runs (and may trap)
        release(v);
        return true;
      }
      case ExprType::Select: {
        Val c = pop();
        Val b = pop();
        Val a = pop();
        // C evaluates one arm only; Wasm evaluates both (a load may trap).
        if (a.mem || b.mem) {
          stack_.push_back(std::move(a));
          stack_.push_back(std::move(b));
          stack_.push_back(std::move(c));
          flush_mem();
          c = pop();
          b = pop();
          a = pop();
        }
        push(combine(a.t, "(" + cond(c) + " ? " + a.e + " : " + b.e + ")", {&a, &b, &c}));
        return true;
      }
      case ExprType::Load: load(o.opcode, o.imm); return true;
      case ExprType::Store: store(o.opcode, o.imm); return true;
      case ExprType::Binary: binary(o.opcode); return true;
      case ExprType::Compare: binary(o.opcode); return true;
      case ExprType::Unary: unary(o.opcode); return true;
      case ExprType::Convert: convert(o.opcode); return true;
      case ExprType::MemorySize: {
        uses_mem_ = true;
        Val v;
        v.t = Type::I32;
        v.e = "I->mem.pages";
        v.mem = true;
        push(std::move(v));
        return true;
      }
      case ExprType::MemoryFill:
      case ExprType::MemoryCopy: {
        // Both bounds are checked before a byte moves (a trapping operation
        // writes nothing); memories never move, so M stays valid. Operands
        // are evaluated in order into block locals.
        Val n = pop();
        Val v = pop();
        Val d = pop();
        flush_mem_glob();
        uses_mem_ = true;
        const bool fill = o.kind == ExprType::MemoryFill;
        line({"{ u32 cd = ", d.e, "; u32 cv = ", v.e, "; u32 cn = ", n.e, ";"});
        line("  u64 lim = (u64)I->mem.pages << 16;");
        if (fill) {
          line("  if ((u64)cd + cn > lim) cv_trap(1);");
          line("  memset(M + cd, (int)cv, cn); }");
        } else {
          line("  if ((u64)cv + cn > lim || (u64)cd + cn > lim) cv_trap(1);");
          line("  memmove(M + cd, M + cv, cn); }");
        }
        release(n);
        release(v);
        release(d);
        return true;
      }
      case ExprType::MemoryGrow: {
        Val d = pop();
        flush_mem_glob();
        int id = alloc_temp(Type::I32);
        line("t" + std::to_string(id) + " = covenant_rt.grow_memory(&I->mem, " + d.e + ");");
        release(d);
        Val r;
        r.kind = Val::kTemp;
        r.t = Type::I32;
        r.e = "t" + std::to_string(id);
        r.temps = {id};
        push(std::move(r));
        return true;
      }
      case ExprType::Call: {
        Index fi = o.index;
        if (fi >= m_.funcs.size()) throw Unsupported{"call index"};
        const auto& sig = m_.funcs[fi]->decl.sig;
        flush_mem_glob();
        std::string args = call_args(sig);
        finish_call(sig, "w" + std::to_string(fi) + "(" + args + ")");
        return true;
      }
      case ExprType::CallIndirect: {
        const wabt::FuncType* ft =
            o.index < m_.types.size() ? wabt::dyn_cast<wabt::FuncType>(m_.types[o.index]) : nullptr;
        if (!ft || m_.tables.empty()) throw Unsupported{"call_indirect type"};
        const wabt::FuncSignature& sig = ft->sig;
        if (sig.result_types.size() > 1) throw Unsupported{"multi-value calls"};
        flush_mem_glob();
        Val x = pop();
        // The callee index is evaluated once, after the arguments.
        stack_.push_back(std::move(x));
        simple(stack_.back());
        x = pop();
        uint32_t tid = type_id(sig);
        std::string args = call_args(sig);
        std::string fp = "((" + std::string(ctype(sig.result_types.empty() ? Type(Type::Void) : sig.result_types[0])) +
                         " (*)(Inst*";
        for (Type p : sig.param_types) fp += std::string(", ") + ctype(p);
        fp += "))I->tab.data[" + x.e + "].func)";
        line("if (" + x.e + " >= I->tab.size) cv_trap(100);");
        line("if (!I->tab.data[" + x.e + "].func) cv_trap(101);");
        line("if (I->tab.data[" + x.e + "].func_type != " + std::to_string(tid) + "u) cv_trap(6);");
        finish_call(sig, fp + "(" + args + ")");
        release(x);
        return true;
      }
      case ExprType::Br: {
        Label& l = target(o.index);
        flush_mem();
        if (!l.loop && l.result != Type::Void) {
          Val v = pop();
          line(jump(l, &v));
        } else {
          line(jump(l, nullptr));
        }
        return false;
      }
      case ExprType::BrIf: {
        Label& l = target(o.index);
        Val c = pop();
        flush_mem();
        if (!l.loop && l.result != Type::Void) {
          Val& v = simple(stack_.back());
          line("if (" + cond(c) + ") { " + jump(l, &v) + " }");
        } else {
          line("if (" + cond(c) + ") { " + jump(l, nullptr) + " }");
        }
        release(c);
        once_live_ = false;
        return true;
      }
      case ExprType::BrTable: {
        Val x = pop();
        flush_mem();
        Label& dl = target(o.index);
        const Val* v = nullptr;
        if (!dl.loop && dl.result != Type::Void) v = &simple(stack_.back());
        line("switch (" + x.e + ") {");
        for (size_t i = 0; i < o.targets.size(); ++i) {
          Label& l = target(o.targets[i]);
          line("case " + std::to_string(i) + "u: " + jump(l, l.loop ? nullptr : v));
        }
        line("default: " + jump(dl, dl.loop ? nullptr : v));
        line("}");
        return false;
      }
      case ExprType::Return: {
        flush_mem();
        if (result_ != Type::Void) {
          Val v = pop();
          line("return " + v.e + ";");
        } else {
          line("return;");
        }
        return false;
      }
      default: throw Unsupported{std::string("instruction ") + wabt::GetExprTypeName(o.kind)};
    }
  }

  uint32_t type_id(const wabt::FuncSignature& sig) { return type_id_of(type_ids_, sig); }

 private:
  const wabt::Module& m_;
  const wabt::FuncSignature& sig_;
  std::vector<Type> local_types_;
  Index func_index_;
  Index cvint_;
  FConsts& fconsts_;
  std::map<std::vector<Type>, uint32_t>& type_ids_;
  Type result_ = Type::Void;
  std::vector<Val> stack_;
  std::vector<Label> labels_;
  int next_label_ = 0;
  std::string body_;
  std::vector<std::string> lnames_, tnames_, gnames_;
  std::vector<Type> temp_types_;
  std::map<Type, std::vector<int>> free_;
  std::vector<std::pair<int, Type>> block_vars_;
  bool uses_mem_ = false;
  bool dead_ = false;
  int skip_depth_ = 0;
  bool once_live_ = false;
  bool has_rmw_ = false;
  Index rmw_g_ = wabt::kInvalidIndex;
  std::string rmw_stmt_;
};

std::string to_bits(Type t, const std::string& v) {
  switch (t) {
    case Type::F32: return "(u64)cv_f32_bits(" + v + ")";
    case Type::F64: return "cv_f64_bits(" + v + ")";
    default: return "(u64)(" + v + ")";
  }
}

std::string from_bits(Type t, const std::string& s) {
  switch (t) {
    case Type::I32: return "(u32)(" + s + ")";
    case Type::I64: return "(u64)(" + s + ")";
    case Type::F32: return "cv_bits_f32((u32)(" + s + "))";
    case Type::F64: return "cv_bits_f64(" + s + ")";
    default: return s;
  }
}


void write_leb(std::vector<uint8_t>& o, uint32_t v) {
  do {
    uint8_t byte = v & 0x7f;
    v >>= 7;
    o.push_back(byte | (v ? 0x80 : 0));
  } while (v);
}

// The module with every function body replaced by an empty one: wabt's IR
// (an allocation per instruction, as costly to free as to build) is only
// wanted for the module-level sections; bodies are translated while decoding.
bool strip_bodies(std::span<const uint8_t> in, std::vector<uint8_t>& out) {
  if (in.size() < 8) return false;
  out.assign(in.begin(), in.begin() + 8);
  size_t pos = 8;
  while (pos < in.size()) {
    size_t start = pos;
    uint8_t id = in[pos++];
    uint32_t size;
    if (!read_leb_u32(in, pos, size) || pos + size > in.size()) return false;
    if (id == 10) {
      size_t p = pos;
      uint32_t count;
      if (!read_leb_u32(in.subspan(0, pos + size), p, count)) return false;
      std::vector<uint8_t> payload;
      write_leb(payload, count);
      for (uint32_t i = 0; i < count; ++i) payload.insert(payload.end(), {0x02, 0x00, 0x0b});
      out.push_back(10);
      write_leb(out, static_cast<uint32_t>(payload.size()));
      out.insert(out.end(), payload.begin(), payload.end());
    } else {
      out.insert(out.end(), in.begin() + start, in.begin() + pos + size);
    }
    pos += size;
  }
  return true;
}

// Decodes the function bodies and feeds each instruction to a FuncWriter.
class BodyTranslator : public wabt::BinaryReaderNop {
 public:
  BodyTranslator(const wabt::Module& m, Index cvint, FConsts& fconsts, std::map<std::vector<Type>, uint32_t>& type_ids,
                 std::string& funcs)
      : m_(m), cvint_(cvint), fconsts_(fconsts), type_ids_(type_ids), funcs_(funcs) {}

  std::string error;
  size_t bodies = 0;

  using R = wabt::Result;
  // A refusal is reported through `error` (and the wasm2c fallback), not on stderr.
  bool OnError(const wabt::Error&) override { return true; }
  R BeginFunctionBody(Index index, wabt::Offset) override {
    return guard([&] {
      if (index < m_.num_func_imports || index >= m_.funcs.size()) throw Unsupported{"function body index"};
      w_ = std::make_unique<FuncWriter>(m_, index, cvint_, fconsts_, type_ids_);
    });
  }
  R OnLocalDecl(Index, Index count, Type type) override {
    return guard([&] { w_->add_locals(count, type); });
  }
  R EndFunctionBody(Index) override {
    return guard([&] {
      w_->finish(funcs_);
      w_.reset();
      ++bodies;
    });
  }
  R OnBlockExpr(Type sig) override { return body([&] { w_->on_block(sig, false); }); }
  R OnLoopExpr(Type sig) override { return body([&] { w_->on_block(sig, true); }); }
  R OnIfExpr(Type sig) override { return body([&] { w_->on_if(sig); }); }
  R OnElseExpr() override { return body([&] { w_->on_else(); }); }
  R OnEndExpr() override { return body([&] { w_->on_end(); }); }

  R OnBinaryExpr(Opcode op) override { return opc(ExprType::Binary, op); }
  R OnCompareExpr(Opcode op) override { return opc(ExprType::Compare, op); }
  R OnConvertExpr(Opcode op) override { return opc(ExprType::Convert, op); }
  R OnUnaryExpr(Opcode op) override { return opc(ExprType::Unary, op); }
  R OnNopExpr() override { return simple(ExprType::Nop); }
  R OnUnreachableExpr() override { return simple(ExprType::Unreachable); }
  R OnDropExpr() override { return simple(ExprType::Drop); }
  R OnReturnExpr() override { return simple(ExprType::Return); }
  R OnSelectExpr(Index result_count, Type* result_types) override {
    if (result_count > 1) return fail("select with several results");
    for (Index i = 0; i < result_count; ++i)
      if (result_types[i] != Type::I32 && result_types[i] != Type::I64 && result_types[i] != Type::F32 &&
          result_types[i] != Type::F64)
        return fail("select on references");
    return simple(ExprType::Select);
  }
  R OnMemorySizeExpr(Index) override { return simple(ExprType::MemorySize); }
  R OnMemoryGrowExpr(Index) override { return simple(ExprType::MemoryGrow); }
  R OnLocalGetExpr(Index i) override { return indexed(ExprType::LocalGet, i); }
  R OnLocalSetExpr(Index i) override { return indexed(ExprType::LocalSet, i); }
  R OnLocalTeeExpr(Index i) override { return indexed(ExprType::LocalTee, i); }
  R OnGlobalGetExpr(Index i) override { return indexed(ExprType::GlobalGet, i); }
  R OnGlobalSetExpr(Index i) override { return indexed(ExprType::GlobalSet, i); }
  R OnCallExpr(Index i) override { return indexed(ExprType::Call, i); }
  R OnCallIndirectExpr(Index sig, Index table) override {
    if (table != 0) return fail("call_indirect on another table");
    return indexed(ExprType::CallIndirect, sig);
  }
  R OnBrExpr(Index d) override { return indexed(ExprType::Br, d); }
  R OnBrIfExpr(Index d) override { return indexed(ExprType::BrIf, d); }
  R OnBrTableExpr(Index n, Index* targets, Index def) override {
    op_ = Op{};
    op_.kind = ExprType::BrTable;
    op_.index = def;
    op_.targets.assign(targets, targets + n);
    return run();
  }
  R OnI32ConstExpr(uint32_t v) override { return konst(Type::I32, v); }
  R OnI64ConstExpr(uint64_t v) override { return konst(Type::I64, v); }
  R OnF32ConstExpr(uint32_t v) override { return konst(Type::F32, v); }
  R OnF64ConstExpr(uint64_t v) override { return konst(Type::F64, v); }
  R OnLoadExpr(Opcode op, Index memidx, wabt::Address, wabt::Address offset) override {
    if (memidx != 0) return fail("multi-memory");
    op_ = Op{};
    op_.kind = ExprType::Load;
    op_.opcode = op;
    op_.imm = offset;
    return run();
  }
  R OnStoreExpr(Opcode op, Index memidx, wabt::Address, wabt::Address offset) override {
    if (memidx != 0) return fail("multi-memory");
    op_ = Op{};
    op_.kind = ExprType::Store;
    op_.opcode = op;
    op_.imm = offset;
    return run();
  }
  // Everything else the profile admits (passive segments, table operations,
  // references, multi-value) goes to the wasm2c fallback.
  R OnMemoryCopyExpr(Index dst, Index src) override {
    return dst || src ? fail("multi-memory") : simple(ExprType::MemoryCopy);
  }
  R OnMemoryFillExpr(Index mem) override { return mem ? fail("multi-memory") : simple(ExprType::MemoryFill); }
  R OnMemoryInitExpr(Index, Index) override { return fail("memory.init"); }
  R OnDataDropExpr(Index) override { return fail("data.drop"); }
  R OnTableCopyExpr(Index, Index) override { return fail("table.copy"); }
  R OnElemDropExpr(Index) override { return fail("elem.drop"); }
  R OnTableInitExpr(Index, Index) override { return fail("table.init"); }
  R OnTableGetExpr(Index) override { return fail("table.get"); }
  R OnTableSetExpr(Index) override { return fail("table.set"); }
  R OnTableGrowExpr(Index) override { return fail("table.grow"); }
  R OnTableSizeExpr(Index) override { return fail("table.size"); }
  R OnTableFillExpr(Index) override { return fail("table.fill"); }
  R OnRefFuncExpr(Index) override { return in_body() ? fail("ref.func") : R(R::Ok); }
  R OnRefNullExpr(Type) override { return in_body() ? fail("ref.null") : R(R::Ok); }
  R OnRefIsNullExpr() override { return fail("ref.is_null"); }
  R OnReturnCallExpr(Index) override { return fail("return_call"); }
  R OnReturnCallIndirectExpr(Index, Index) override { return fail("return_call_indirect"); }
  R OnCallRefExpr() override { return fail("call_ref"); }
  R OnTryExpr(Type) override { return fail("exceptions"); }
  R OnThrowExpr(Index) override { return fail("exceptions"); }
  R OnRethrowExpr(Index) override { return fail("exceptions"); }
  R OnDelegateExpr(Index) override { return fail("exceptions"); }
  R OnCatchExpr(Index) override { return fail("exceptions"); }
  R OnCatchAllExpr() override { return fail("exceptions"); }
  R OnTernaryExpr(Opcode) override { return fail("SIMD"); }
  R OnV128ConstExpr(v128) override { return fail("SIMD"); }
  R OnSimdLaneOpExpr(Opcode, uint64_t) override { return fail("SIMD"); }
  R OnSimdShuffleOpExpr(Opcode, v128) override { return fail("SIMD"); }
  R OnLoadSplatExpr(Opcode, Index, wabt::Address, wabt::Address) override { return fail("SIMD"); }
  R OnLoadZeroExpr(Opcode, Index, wabt::Address, wabt::Address) override { return fail("SIMD"); }
  R OnAtomicLoadExpr(Opcode, Index, wabt::Address, wabt::Address) override { return fail("atomics"); }
  R OnAtomicStoreExpr(Opcode, Index, wabt::Address, wabt::Address) override { return fail("atomics"); }
  R OnAtomicRmwExpr(Opcode, Index, wabt::Address, wabt::Address) override { return fail("atomics"); }
  R OnAtomicRmwCmpxchgExpr(Opcode, Index, wabt::Address, wabt::Address) override { return fail("atomics"); }
  R OnAtomicWaitExpr(Opcode, Index, wabt::Address, wabt::Address) override { return fail("atomics"); }
  R OnAtomicFenceExpr(uint32_t) override { return fail("atomics"); }
  R OnAtomicNotifyExpr(Opcode, Index, wabt::Address, wabt::Address) override { return fail("atomics"); }

 private:
  bool in_body() const { return w_ != nullptr; }
  R fail(const char* what) {
    if (error.empty()) error = what;
    return R::Error;
  }
  template <class F>
  R guard(F&& f) {
    try {
      f();
      return R::Ok;
    } catch (const Unsupported& u) {
      if (error.empty()) error = u.what;
      return R::Error;
    }
  }
  // Instruction callbacks also fire for constant expressions outside bodies.
  template <class F>
  R body(F&& f) {
    if (!w_) return R::Ok;
    return guard(f);
  }
  R run() {
    return body([&] { w_->on(op_); });
  }
  R opc(ExprType k, Opcode op) {
    op_ = Op{};
    op_.kind = k;
    op_.opcode = op;
    return run();
  }
  R simple(ExprType k) {
    op_ = Op{};
    op_.kind = k;
    return run();
  }
  R indexed(ExprType k, Index i) {
    op_ = Op{};
    op_.kind = k;
    op_.index = i;
    return run();
  }
  R konst(Type t, uint64_t bits) {
    op_ = Op{};
    op_.kind = ExprType::Const;
    op_.type = t;
    op_.imm = bits;
    return run();
  }

  const wabt::Module& m_;
  Index cvint_;
  FConsts& fconsts_;
  std::map<std::vector<Type>, uint32_t>& type_ids_;
  std::string& funcs_;
  std::unique_ptr<FuncWriter> w_;
  Op op_;
};

}  // namespace

Result<std::string> generate_tcc_c(const PreparedModule& prep, const Features& features) {
  wabt::Module m;
  wabt::Errors errors;
  wabt::Features wf = metered_features(features);
  wabt::ReadBinaryOptions ropts(wf, nullptr, false, true, false);
  std::vector<uint8_t> stripped;
  if (!strip_bodies(prep.metered, stripped) ||
      wabt::Failed(wabt::ReadBinaryIr("metered", stripped.data(), stripped.size(), ropts, &errors, &m)))
    return Status::internal("the metered module does not re-read");
  // No second validation: prepare_module validated the user's module and
  // wrote the metered one (the reader still checks its structure), and the
  // writer checks operand-stack use as it goes.
  if (m.memories.size() > 1 || m.tables.size() > 1) return Status::unsupported("tcc writer: multiple memories/tables");
  if (!m.data_segments.empty()) return Status::unsupported("tcc writer: data segments in the metered module");

  // Reserved exports of the metered module.
  std::map<std::pair<int, std::string>, Index> exports_by_name;
  for (const wabt::Export* ex : m.exports)
    exports_by_name.emplace(std::make_pair(static_cast<int>(ex->kind), ex->name), ex->var.index());
  auto export_index = [&](const std::string& name, wabt::ExternalKind kind) -> Index {
    auto it = exports_by_name.find(std::make_pair(static_cast<int>(kind), name));
    return it == exports_by_name.end() ? wabt::kInvalidIndex : it->second;
  };
  Index g_fuel = export_index(kFuelGlobal, wabt::ExternalKind::Global);
  Index g_bank = export_index(kBankGlobal, wabt::ExternalKind::Global);
  Index g_int = export_index(kInterruptGlobal, wabt::ExternalKind::Global);
  Index g_trap = export_index(kTrapGlobal, wabt::ExternalKind::Global);
  Index g_depth = export_index(kDepthGlobal, wabt::ExternalKind::Global);
  if (g_fuel == wabt::kInvalidIndex || g_bank == wabt::kInvalidIndex || g_int == wabt::kInvalidIndex ||
      g_trap == wabt::kInvalidIndex || g_depth == wabt::kInvalidIndex)
    return Status::internal("the metered module lacks its metering globals");
  Index start = export_index(kStartExport, wabt::ExternalKind::Func);

  FConsts fconsts;
  std::map<std::vector<Type>, uint32_t> type_ids;
  std::ostringstream out;

  // Instance struct.
  out << "typedef struct Inst {\n  void* ctx;\n  wasm_rt_memory_t mem;\n  wasm_rt_funcref_table_t tab;\n";
  for (Index g = 0; g < m.globals.size(); ++g) {
    Type t = m.globals[g]->type;
    if (t != Type::I32 && t != Type::I64 && t != Type::F32 && t != Type::F64)
      return Status::unsupported("tcc writer: non-numeric global");
    out << "  " << ctype(t) << " g" << g << ";\n";
  }
  out << "} Inst;\n";

  std::ostringstream protos;
  std::string funcs;
  try {
    // Imports: trampolines with the same C signature as defined functions.
    for (Index i = 0; i < m.num_func_imports; ++i) {
      const auto& sig = m.funcs[i]->decl.sig;
      if (sig.result_types.size() > 1) return Status::unsupported("multi-value imports are not supported by the C tiers");
      Type rt = sig.result_types.empty() ? Type(Type::Void) : sig.result_types[0];
      size_t slots = std::max<size_t>({sig.param_types.size(), sig.result_types.size(), 1});
      std::ostringstream h;
      h << "static " << ctype(rt) << " w" << i << "(Inst* I";
      for (Index p = 0; p < sig.param_types.size(); ++p) h << ", " << ctype(sig.param_types[p]) << " l" << p;
      h << ")";
      protos << h.str() << ";\n";
      std::ostringstream f;
      f << h.str() << " {\n  u64 s[" << slots << "];\n";
      for (Index p = 0; p < sig.param_types.size(); ++p)
        f << "  s[" << p << "] = " << to_bits(sig.param_types[p], "l" + std::to_string(p)) << ";\n";
      // Import k of the metered module is h.i<k>, the k-th user import.
      f << "  covenant_rt.host_call(I->ctx, " << i << "u, s);\n";
      if (rt != Type::Void) f << "  return " << from_bits(rt, "s[0]") << ";\n";
      f << "}\n";
      funcs += f.str();
    }
    for (Index i = m.num_func_imports; i < m.funcs.size(); ++i) {
      if (m.funcs[i]->decl.sig.result_types.size() > 1) throw Unsupported{"multi-value function results"};
      for (Type t : m.funcs[i]->decl.sig.param_types)
        if (t != Type::I32 && t != Type::I64 && t != Type::F32 && t != Type::F64)
          throw Unsupported{"reference-typed parameters"};
      for (Type t : m.funcs[i]->decl.sig.result_types)
        if (t != Type::I32 && t != Type::I64 && t != Type::F32 && t != Type::F64)
          throw Unsupported{"reference-typed results"};
      protos << func_header(m, i) << ";\n";
    }
  } catch (const Unsupported& u) {
    return Status::unsupported("tcc writer: " + u.what);
  }
  {
    BodyTranslator bt(m, g_int, fconsts, type_ids, funcs);
    wabt::Result r = wabt::ReadBinary(prep.metered.data(), prep.metered.size(), &bt, ropts);
    if (!bt.error.empty()) return Status::unsupported("tcc writer: " + bt.error);
    if (wabt::Failed(r) || bt.bodies != m.funcs.size() - m.num_func_imports)
      return Status::internal("the metered module's code does not re-read");
  }

  // Float constants as bit patterns (exact; NaN payloads kept).
  for (auto& [key, id] : fconsts) {
    auto [f64, bits] = key;
    if (f64)
      out << "static const cv_u64f cvk" << id << " = {" << bits << "ull};\n";
    else
      out << "static const cv_u32f cvk" << id << " = {" << static_cast<uint32_t>(bits) << "u};\n";
  }
  out << protos.str() << funcs;

  // Glue (the contract resolve_symbols expects).
  std::ostringstream g;
  for (size_t k = 0; k < prep.exports.size(); ++k) {
    Index fi = export_index("e" + std::to_string(k), wabt::ExternalKind::Func);
    if (fi == wabt::kInvalidIndex) return Status::internal("the metered module lacks export e" + std::to_string(k));
    const auto& sig = m.funcs[fi]->decl.sig;
    if (sig.result_types.size() > 1) return Status::unsupported("multi-value exports are not supported by the C tiers");
    g << "static void cv_call_" << k << "(void* inst, u64* s) {\n  ";
    if (!sig.result_types.empty()) g << ctype(sig.result_types[0]) << " r = ";
    g << "w" << fi << "((Inst*)inst";
    for (size_t i = 0; i < sig.param_types.size(); ++i)
      g << ", " << from_bits(sig.param_types[i], "s[" + std::to_string(i) + "]");
    g << ");\n";
    if (!sig.result_types.empty()) g << "  s[0] = " << to_bits(sig.result_types[0], "r") << ";\n";
    g << "}\n";
  }
  g << "void (*const covenant_exports[])(void*, u64*) = {";
  for (size_t k = 0; k < prep.exports.size(); ++k) g << "cv_call_" << k << ", ";
  g << "0};\n";
  g << "u32 covenant_instance_size(void) { return (u32)sizeof(Inst); }\n";
  g << "void covenant_init(void) {}\n";
  g << "void covenant_instantiate(void* inst, void* ctx) {\n  Inst* I = (Inst*)inst;\n  I->ctx = ctx;\n";
  for (Index gi = 0; gi < m.globals.size(); ++gi) {
    const wabt::Global* gl = m.globals[gi];
    if (gl->init_expr.size() != 1 || gl->init_expr.front().type() != ExprType::Const)
      return Status::unsupported("tcc writer: non-constant global initialiser");
    const wabt::Const& c = wabt::cast<wabt::ConstExpr>(&gl->init_expr.front())->const_;
    switch (c.type()) {
      case Type::I32: g << "  I->g" << gi << " = " << c.u32() << "u;\n"; break;
      case Type::I64: g << "  I->g" << gi << " = " << c.u64() << "ull;\n"; break;
      case Type::F32: g << "  I->g" << gi << " = cv_bits_f32(" << c.f32_bits() << "u);\n"; break;
      case Type::F64: g << "  I->g" << gi << " = cv_bits_f64(" << c.f64_bits() << "ull);\n"; break;
      default: return Status::unsupported("tcc writer: global initialiser type");
    }
  }
  if (!m.memories.empty()) {
    const auto& lim = m.memories[0]->page_limits;
    g << "  covenant_rt.allocate_memory(&I->mem, " << lim.initial << "u, " << (lim.has_max ? lim.max : 65536)
      << "u);\n";
  }
  if (!m.tables.empty()) {
    const auto& lim = m.tables[0]->elem_limits;
    if (m.tables[0]->elem_type != Type::FuncRef) return Status::unsupported("tcc writer: non-funcref table");
    g << "  covenant_rt.allocate_funcref_table(&I->tab, " << lim.initial << "u, "
      << (lim.has_max ? lim.max : 0xffffffffull) << "u);\n";
  }
  for (const wabt::ElemSegment* seg : m.elem_segments) {
    if (seg->kind != wabt::SegmentKind::Active) {
      if (seg->kind == wabt::SegmentKind::Declared) continue;
      return Status::unsupported("tcc writer: passive element segment");
    }
    if (seg->offset.size() != 1 || seg->offset.front().type() != ExprType::Const)
      return Status::unsupported("tcc writer: non-constant element offset");
    uint32_t off = wabt::cast<wabt::ConstExpr>(&seg->offset.front())->const_.u32();
    uint32_t k = off;
    for (const ExprList& el : seg->elem_exprs) {
      if (el.size() != 1) return Status::unsupported("tcc writer: element expression");
      const Expr& e = el.front();
      if (e.type() == ExprType::RefFunc) {
        Index fi = m.GetFuncIndex(wabt::cast<wabt::RefFuncExpr>(&e)->var);
        uint32_t tid = type_id_of(type_ids, m.funcs[fi]->decl.sig);
        g << "  I->tab.data[" << k << "].func_type = " << tid << "u; I->tab.data[" << k
          << "].func = (void (*)(void))w" << fi << "; I->tab.data[" << k << "].module_instance = I;\n";
      } else if (e.type() != ExprType::RefNull) {
        return Status::unsupported("tcc writer: element expression");
      }
      ++k;
    }
  }
  g << "}\n";
  g << "void covenant_free(void* inst) {\n  Inst* I = (Inst*)inst;\n";
  if (!m.memories.empty()) g << "  covenant_rt.free_memory(&I->mem);\n";
  if (!m.tables.empty()) g << "  covenant_rt.free_funcref_table(&I->tab);\n";
  g << "}\n";
  g << "u64* covenant_g_fuel(void* i) { return &((Inst*)i)->g" << g_fuel << "; }\n";
  g << "u64* covenant_g_bank(void* i) { return &((Inst*)i)->g" << g_bank << "; }\n";
  g << "u32* covenant_g_int(void* i) { return &((Inst*)i)->g" << g_int << "; }\n";
  g << "u32* covenant_g_trap(void* i) { return &((Inst*)i)->g" << g_trap << "; }\n";
  g << "u32* covenant_g_depth(void* i) { return &((Inst*)i)->g" << g_depth << "; }\n";
  g << "wasm_rt_memory_t* covenant_memory(void* i) { "
    << (m.memories.empty() ? "(void)i; return 0;" : "return &((Inst*)i)->mem;") << " }\n";
  g << "void covenant_start(void* i, u64* s) { (void)s; ";
  if (start != wabt::kInvalidIndex) g << "w" << start << "((Inst*)i);";
  else g << "(void)i;";
  g << " }\n";
  out << g.str();
  std::string code = out.str();

  // The prelude plus the helpers the code names (and their dependencies).
  constexpr size_t kN = sizeof(kHelpers) / sizeof(kHelpers[0]);
  bool need[kN] = {};
  {
    // One pass over the code: every identifier starting with cv_ that names a helper.
    std::map<std::string_view, size_t> by_name;
    for (size_t i = 0; i < kN; ++i) by_name.emplace(kHelpers[i].name, i);
    for (size_t p = code.find("cv_"); p != std::string::npos; p = code.find("cv_", p + 3)) {
      size_t e = p + 3;
      while (e < code.size() && (std::isalnum(static_cast<unsigned char>(code[e])) || code[e] == '_')) ++e;
      auto it = by_name.find(std::string_view(code).substr(p, e - p));
      if (it != by_name.end()) need[it->second] = true;
    }
  }
  for (size_t i = kN; i-- > 0;) {
    if (!need[i]) continue;
    std::istringstream deps(kHelpers[i].deps);
    for (std::string d; deps >> d;)
      for (size_t j = 0; j < i; ++j)
        if (d == kHelpers[j].name) need[j] = true;
  }
  std::string unit = kPrelude;
  for (size_t i = 0; i < kN; ++i)
    if (need[i]) unit += kHelpers[i].text;
  unit += code;
  return unit;
}

}  // namespace covenant::wasm
