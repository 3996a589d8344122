// The baseline (libtcc, in memory) and optimized (system cc, cached shared
// object) tiers. Both compile the same C: libwabt's C writer output for the
// metered module plus Covenant's glue, so an instance's struct layout is the
// same on both and the auto tier can switch code under a live instance.
#include <dlfcn.h>
#include <fcntl.h>
#include <libtcc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>

#include "wabt/apply-names.h"
#include "wabt/binary-reader-ir.h"
#include "wabt/c-writer.h"
#include "wabt/cast.h"
#include "wabt/generate-names.h"
#include "wabt/ir.h"
#include "wabt/stream.h"
#include "wabt/validator.h"
#include "wasm/cache.h"
#include "wasm/runtime.h"
#include "wasm/tcc_writer.h"
#include "wasm/tiers.h"
#include "wasm/wabt_util.h"

namespace covenant::wasm {

using ExportFn = void (*)(void*, uint64_t*);

struct CCode {
  Tier tier = Tier::kBaseline;
  // Exactly one of these owns the code.
  TCCState* tcc = nullptr;
  void* dl = nullptr;
  // Resolved entry points.
  RtTable* rt = nullptr;
  uint32_t (*instance_size)() = nullptr;
  void (*instantiate)(void*, void*) = nullptr;
  void (*free_instance)(void*) = nullptr;
  uint64_t* (*g_fuel)(void*) = nullptr;
  uint64_t* (*g_bank)(void*) = nullptr;
  uint32_t* (*g_int)(void*) = nullptr;
  uint32_t* (*g_trap)(void*) = nullptr;
  uint32_t* (*g_depth)(void*) = nullptr;
  wasm_rt_memory_t* (*memory)(void*) = nullptr;
  ExportFn start = nullptr;
  std::vector<ExportFn> exports;
  int image_fd = -1;  // memfd holding the memory image, mapped copy-on-write
  size_t image_bytes = 0;
  // Instance struct layout: 0 = wasm2c's (optimized, and the baseline
  // fallback), 1 = tcc_writer's. Code only swaps under a live instance
  // between equal layouts.
  int layout = 0;

  ~CCode();
};

namespace {

std::mutex g_tcc_mu;  // libtcc 0.9.27 keeps global state

const char* c_type(ValType t) {
  switch (t) {
    case ValType::kI32: return "u32";
    case ValType::kI64: return "u64";
    case ValType::kF32: return "f32";
    case ValType::kF64: return "f64";
  }
  return "u32";
}

std::string to_bits(ValType t, const std::string& v) {
  switch (t) {
    case ValType::kI32: return "(uint64_t)(" + v + ")";
    case ValType::kI64: return "(uint64_t)(" + v + ")";
    case ValType::kF32: return "cv_f32_bits(" + v + ")";
    case ValType::kF64: return "cv_f64_bits(" + v + ")";
  }
  return v;
}

std::string from_bits(ValType t, const std::string& s) {
  switch (t) {
    case ValType::kI32: return "(u32)(" + s + ")";
    case ValType::kI64: return "(u64)(" + s + ")";
    case ValType::kF32: return "cv_bits_f32(" + s + ")";
    case ValType::kF64: return "cv_bits_f64(" + s + ")";
  }
  return s;
}

// tcc lacks GCC's bit builtins and does not inline, so the baseline tier gets
// its own definitions and macro memory accessors (unaligned access is fine on
// x86-64; gcc keeps wasm2c's memcpy accessors, which it inlines).
const char* kTccPrelude = R"C(
#ifdef __TINYC__
static unsigned cv_clz32(unsigned x) { unsigned r; __asm__("bsrl %1, %0" : "=r"(r) : "r"(x)); return 31 - r; }
static unsigned cv_clz64(unsigned long long x) { unsigned long long r; __asm__("bsrq %1, %0" : "=r"(r) : "r"(x)); return 63 - (unsigned)r; }
static unsigned cv_ctz32(unsigned x) { unsigned r; __asm__("bsfl %1, %0" : "=r"(r) : "r"(x)); return r; }
static unsigned cv_ctz64(unsigned long long x) { unsigned long long r; __asm__("bsfq %1, %0" : "=r"(r) : "r"(x)); return (unsigned)r; }
static unsigned cv_popcnt32(unsigned x) { x = x - ((x >> 1) & 0x55555555u); x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u); return (((x + (x >> 4)) & 0x0f0f0f0fu) * 0x01010101u) >> 24; }
static unsigned cv_popcnt64(unsigned long long x) { return cv_popcnt32((unsigned)x) + cv_popcnt32((unsigned)(x >> 32)); }
#define __builtin_clz cv_clz32
#define __builtin_clzll cv_clz64
#define __builtin_ctz cv_ctz32
#define __builtin_ctzll cv_ctz64
#define __builtin_popcount cv_popcnt32
#define __builtin_popcountll cv_popcnt64
#endif
)C";

const char* kTccAccessors = R"C(
#ifdef __TINYC__
#undef i32_load
#define i32_load(m, a) (*(u32*)((m)->data + (a)))
#define i64_load(m, a) (*(u64*)((m)->data + (a)))
#define f32_load(m, a) (*(f32*)((m)->data + (a)))
#define f64_load(m, a) (*(f64*)((m)->data + (a)))
#define i32_load8_s(m, a) ((u32)(s32)*(s8*)((m)->data + (a)))
#define i64_load8_s(m, a) ((u64)(s64)*(s8*)((m)->data + (a)))
#define i32_load8_u(m, a) ((u32)*(u8*)((m)->data + (a)))
#define i64_load8_u(m, a) ((u64)*(u8*)((m)->data + (a)))
#define i32_load16_s(m, a) ((u32)(s32)*(s16*)((m)->data + (a)))
#define i64_load16_s(m, a) ((u64)(s64)*(s16*)((m)->data + (a)))
#define i32_load16_u(m, a) ((u32)*(u16*)((m)->data + (a)))
#define i64_load16_u(m, a) ((u64)*(u16*)((m)->data + (a)))
#define i64_load32_s(m, a) ((u64)(s64)*(s32*)((m)->data + (a)))
#define i64_load32_u(m, a) ((u64)*(u32*)((m)->data + (a)))
#define i32_store(m, a, v) (*(u32*)((m)->data + (a)) = (u32)(v))
#define i64_store(m, a, v) (*(u64*)((m)->data + (a)) = (u64)(v))
#define f32_store(m, a, v) (*(f32*)((m)->data + (a)) = (v))
#define f64_store(m, a, v) (*(f64*)((m)->data + (a)) = (v))
#define i32_store8(m, a, v) (*(u8*)((m)->data + (a)) = (u8)(v))
#define i32_store16(m, a, v) (*(u16*)((m)->data + (a)) = (u16)(v))
#define i64_store8(m, a, v) (*(u8*)((m)->data + (a)) = (u8)(v))
#define i64_store16(m, a, v) (*(u16*)((m)->data + (a)) = (u16)(v))
#define i64_store32(m, a, v) (*(u32*)((m)->data + (a)) = (u32)(v))
#endif
)C";

// Distinguishes the three call_indirect failures wasm2c folds into one.
const char* kCallIndirect = R"C(
#undef CALL_INDIRECT
#define WASM_RT_TRAP_CV_TABLE_OOB ((wasm_rt_trap_t)100)
#define WASM_RT_TRAP_CV_UNINIT ((wasm_rt_trap_t)101)
#define CALL_INDIRECT(table, t, ft, x, ...)                           \
  ((LIKELY((x) < table.size) || TRAP(CV_TABLE_OOB)),                  \
   (LIKELY(table.data[x].func != NULL) || TRAP(CV_UNINIT)),           \
   (LIKELY(table.data[x].func_type == func_types[ft]) || TRAP(CALL_INDIRECT)), \
   ((t)table.data[x].func)(__VA_ARGS__))
)C";

const char* kGlueRuntime = R"C(
/* ---- Covenant glue: runtime forwarding (mirrors covenant::wasm::RtTable) ---- */
#include <stdarg.h>
typedef struct covenant_rt_t {
  void (*trap)(int);
  void (*allocate_memory)(wasm_rt_memory_t*, uint32_t, uint32_t);
  uint32_t (*grow_memory)(wasm_rt_memory_t*, uint32_t);
  void (*free_memory)(wasm_rt_memory_t*);
  void (*allocate_funcref_table)(wasm_rt_funcref_table_t*, uint32_t, uint32_t);
  void (*free_funcref_table)(wasm_rt_funcref_table_t*);
  uint32_t (*grow_funcref_table)(wasm_rt_funcref_table_t*, uint32_t, wasm_rt_funcref_t);
  void (*host_call)(void*, uint32_t, uint64_t*);
  void (*allocate_externref_table)(wasm_rt_externref_table_t*, uint32_t, uint32_t);
  void (*free_externref_table)(wasm_rt_externref_table_t*);
  uint32_t (*grow_externref_table)(wasm_rt_externref_table_t*, uint32_t, wasm_rt_externref_t);
} covenant_rt_t;
covenant_rt_t covenant_rt;
void wasm_rt_trap(wasm_rt_trap_t t) { covenant_rt.trap((int)t); abort(); }
bool wasm_rt_is_initialized(void) { return true; }
void wasm_rt_allocate_memory(wasm_rt_memory_t* m, uint32_t i, uint32_t x) { covenant_rt.allocate_memory(m, i, x); }
uint32_t wasm_rt_grow_memory(wasm_rt_memory_t* m, uint32_t d) { return covenant_rt.grow_memory(m, d); }
void wasm_rt_free_memory(wasm_rt_memory_t* m) { covenant_rt.free_memory(m); }
void wasm_rt_allocate_funcref_table(wasm_rt_funcref_table_t* t, uint32_t e, uint32_t x) { covenant_rt.allocate_funcref_table(t, e, x); }
void wasm_rt_free_funcref_table(wasm_rt_funcref_table_t* t) { covenant_rt.free_funcref_table(t); }
uint32_t wasm_rt_grow_funcref_table(wasm_rt_funcref_table_t* t, uint32_t d, wasm_rt_funcref_t i) { return covenant_rt.grow_funcref_table(t, d, i); }
void wasm_rt_allocate_externref_table(wasm_rt_externref_table_t* t, uint32_t e, uint32_t x) { covenant_rt.allocate_externref_table(t, e, x); }
void wasm_rt_free_externref_table(wasm_rt_externref_table_t* t) { covenant_rt.free_externref_table(t); }
uint32_t wasm_rt_grow_externref_table(wasm_rt_externref_table_t* t, uint32_t d, wasm_rt_externref_t i) { return covenant_rt.grow_externref_table(t, d, i); }
typedef struct { uint32_t np, nr; const int* t; } cv_functype;
/* Fixed storage sized from the module's type section: no heap, nothing to free. */
static cv_functype cv_fts[CV_MAX_FTS + 1];
static int cv_ft_slots[CV_MAX_FT_SLOTS + 1];
static uint32_t cv_nfts, cv_nslots;
uint32_t wasm_rt_register_func_type(uint32_t np, uint32_t nr, ...) {
  uint32_t n = np + nr, i;
  int t[CV_MAX_ARITY + 1];
  va_list ap;
  if (n > CV_MAX_ARITY || cv_nfts >= CV_MAX_FTS || cv_nslots + n > CV_MAX_FT_SLOTS) abort();
  va_start(ap, nr);
  for (i = 0; i < n; i++) t[i] = va_arg(ap, int);
  va_end(ap);
  for (i = 0; i < cv_nfts; i++)
    if (cv_fts[i].np == np && cv_fts[i].nr == nr && memcmp(cv_fts[i].t, t, n * sizeof(int)) == 0) return i;
  memcpy(cv_ft_slots + cv_nslots, t, n * sizeof(int));
  cv_fts[cv_nfts].np = np; cv_fts[cv_nfts].nr = nr; cv_fts[cv_nfts].t = cv_ft_slots + cv_nslots;
  cv_nslots += n;
  return cv_nfts++;
}
static inline uint64_t cv_f32_bits(f32 v) { uint32_t b; memcpy(&b, &v, 4); return b; }
static inline uint64_t cv_f64_bits(f64 v) { uint64_t b; memcpy(&b, &v, 8); return b; }
static inline f32 cv_bits_f32(uint64_t s) { uint32_t b = (uint32_t)s; f32 v; memcpy(&v, &b, 4); return v; }
static inline f64 cv_bits_f64(uint64_t s) { f64 v; memcpy(&v, &s, 8); return v; }
)C";

// wasm2c's name for a multi-value result struct and its fields:
// (i32 i64 f32 f64) -> struct wasm_multi_ijfd { u32 i0; u64 j1; f32 f2; f64 d3; }.
char multi_letter(ValType t) {
  switch (t) {
    case ValType::kI32: return 'i';
    case ValType::kI64: return 'j';
    case ValType::kF32: return 'f';
    case ValType::kF64: return 'd';
  }
  return 'i';
}
std::string result_c_type(const std::vector<ValType>& results) {
  if (results.empty()) return "void";
  if (results.size() == 1) return c_type(results[0]);
  std::string s = "struct wasm_multi_";
  for (ValType t : results) s += multi_letter(t);
  return s;
}
std::string multi_field(const std::vector<ValType>& results, size_t i) {
  return std::string(1, multi_letter(results[i])) + std::to_string(i);
}

// Replaces every `from` by `to` in c[begin, end) (positions of the markers).
void replace_between(std::string& c, const std::string& begin, const std::string& end, const std::string& from,
                     const std::string& to) {
  size_t b = c.find(begin);
  if (b == std::string::npos) return;
  size_t e = c.find(end, b);
  if (e == std::string::npos) return;
  for (size_t p = b; (p = c.find(from, p)) != std::string::npos && p < e;) {
    c.replace(p, from.size(), to);
    p += to.size();
    e += to.size() - from.size();
  }
}

void drop_data_drops(wabt::ExprList& list) {
  for (auto it = list.begin(); it != list.end(); ++it) {
    switch (it->type()) {
      case wabt::ExprType::DataDrop: it = list.insert(list.erase(it), std::make_unique<wabt::NopExpr>()); break;
      case wabt::ExprType::Block: drop_data_drops(wabt::cast<wabt::BlockExpr>(&*it)->block.exprs); break;
      case wabt::ExprType::Loop: drop_data_drops(wabt::cast<wabt::LoopExpr>(&*it)->block.exprs); break;
      case wabt::ExprType::If: {
        auto* iff = wabt::cast<wabt::IfExpr>(&*it);
        drop_data_drops(iff->true_.exprs);
        drop_data_drops(iff->false_);
        break;
      }
      default: break;
    }
  }
}
void drop_data_drops(wabt::Module& m) {
  for (wabt::Func* f : m.funcs) drop_data_drops(f->exprs);
}

void insert_after_line_containing(std::string& c, const std::string& needle, const std::string& text) {
  size_t p = c.find(needle);
  if (p == std::string::npos) return;
  size_t eol = c.find('\n', p);
  c.insert(eol == std::string::npos ? c.size() : eol + 1, text);
}

// Inserts text after the macro that starts at `needle` (continuation lines end in '\').
void insert_after_macro(std::string& c, const std::string& needle, const std::string& text) {
  size_t p = c.find(needle);
  if (p == std::string::npos) return;
  size_t eol;
  for (;;) {
    eol = c.find('\n', p);
    if (eol == std::string::npos || eol == 0 || c[eol - 1] != '\\') break;
    p = eol + 1;
  }
  c.insert(eol == std::string::npos ? c.size() : eol + 1, text);
}

}  // namespace

Result<std::string> generate_c(const PreparedModule& prep, const Features& features) {
  wabt::Module m;
  wabt::Errors errors;
  wabt::Features wf = metered_features(features);
  wabt::ReadBinaryOptions ropts(wf, nullptr, false, true, false);
  if (wabt::Failed(wabt::ReadBinaryIr("metered", prep.metered.data(), prep.metered.size(), ropts, &errors, &m)))
    return Status::internal("the metered module does not re-read");
  if (wabt::Failed(wabt::ValidateModule(&m, &errors, wabt::ValidateOptions(wf))))
    return Status::internal("the metered module does not validate: " +
                            (errors.empty() ? std::string() : errors[0].message));
  // wabt 1.0.32's ApplyNames resolves every segment's memory or table index,
  // even a passive segment's, and fails on a module without one (bulk.wast).
  // Without a memory no memory.init can exist, so data segments are
  // unobservable: they go, and data.drop becomes a nop (fuel was charged in
  // the metered module already). Without a table, elem segments get an
  // unused empty one to name.
  if (m.memories.empty() && !m.data_segments.empty()) {
    drop_data_drops(m);
    for (auto it = m.fields.begin(); it != m.fields.end();)
      it = it->type() == wabt::ModuleFieldType::DataSegment ? m.fields.erase(it) : std::next(it);
    m.data_segments.clear();
  }
  if (m.tables.empty() && !m.elem_segments.empty()) {
    auto tf = std::make_unique<wabt::TableModuleField>();
    tf->table.elem_type = wabt::Type::FuncRef;
    m.AppendField(std::move(tf));
  }
  if (wabt::Failed(wabt::GenerateNames(&m)) || wabt::Failed(wabt::ApplyNames(&m)))
    return Status::internal("could not name the metered module");
  wabt::MemoryStream c_stream, h_stream;
  wabt::WriteCOptions copts;
  copts.module_name = "m";
  if (wabt::Failed(wabt::WriteC(&c_stream, &h_stream, "m.h", &m, copts)))
    return Status::internal("the C writer failed");
  const auto& cb = c_stream.output_buffer().data;
  const auto& hb = h_stream.output_buffer().data;
  std::string header(hb.begin(), hb.end());
  std::string c(cb.begin(), cb.end());

  // Inline the header so the unit compiles from one string (tcc) or file (cc).
  size_t inc = c.find("#include \"m.h\"");
  if (inc == std::string::npos) return Status::internal("unexpected C writer output (no m.h include)");
  c.replace(inc, std::strlen("#include \"m.h\""), header);
  c.insert(0, std::string("#define NDEBUG 1\n") + kTccPrelude);
  insert_after_macro(c, "#define CALL_INDIRECT(", kCallIndirect);
  // Out-of-bounds table operations are table traps on every tier (wasm2c
  // reports them as memory traps); its helpers sit between these markers.
  replace_between(c, "static inline void funcref_table_init(", "DEFINE_TABLE_FILL(externref)", "TRAP(OOB)",
                  "TRAP(CV_TABLE_OOB)");
  // Bulk-memory range checks against the page count: wasm_rt_memory_t::size
  // is a u32 that cannot say 4 GiB.
  {
    const std::string from = "offset + (uint64_t)len > mem->size";
    size_t p = c.find(from);
    if (p == std::string::npos) return Status::internal("unexpected C writer output (no RANGE_CHECK)");
    c.replace(p, from.size(), "offset + (uint64_t)len > (uint64_t)mem->pages * 65536");
  }
  insert_after_line_containing(c, "DEFINE_STORE(i64_store32,", kTccAccessors);

  // The deadline watchdog writes cvint from another thread; without volatile,
  // gcc hoists the read out of a guest loop and the deadline never fires.
  for (size_t p = 0; (p = c.find("instance->w2c_cvint", p)) != std::string::npos;) {
    std::string rep = "(*(volatile u32*)&instance->w2c_cvint)";
    c.replace(p, std::strlen("instance->w2c_cvint"), rep);
    p += rep.size();
  }

  size_t n_types = 0, slots = 0, arity = 0;
  for (const wabt::TypeEntry* te : m.types) {
    if (const auto* ft = wabt::dyn_cast<wabt::FuncType>(te)) {
      size_t a = ft->sig.param_types.size() + ft->sig.result_types.size();
      ++n_types;
      slots += a;
      arity = std::max(arity, a);
    }
  }
  std::ostringstream g;
  g << "#define CV_MAX_FTS " << n_types + 1 << "\n#define CV_MAX_FT_SLOTS " << slots + 1
    << "\n#define CV_MAX_ARITY " << arity + 1 << "\n";
  g << kGlueRuntime;
  bool has_imports = !prep.imports.empty();
  for (size_t k = 0; k < prep.imports.size(); ++k) {
    const FuncType& t = prep.imports[k].type;
    size_t slots = std::max<size_t>({t.params.size(), t.results.size(), 1});
    g << result_c_type(t.results) << " Z_hZ_i" << k << "(struct Z_h_instance_t* ctx";
    for (size_t i = 0; i < t.params.size(); ++i) g << ", " << c_type(t.params[i]) << " a" << i;
    g << ") {\n  uint64_t s[" << slots << "];\n";
    for (size_t i = 0; i < t.params.size(); ++i) g << "  s[" << i << "] = " << to_bits(t.params[i], "a" + std::to_string(i)) << ";\n";
    g << "  covenant_rt.host_call(ctx, " << k << ", s);\n";
    if (t.results.size() == 1) g << "  return " << from_bits(t.results[0], "s[0]") << ";\n";
    if (t.results.size() > 1) {
      g << "  " << result_c_type(t.results) << " r;\n";
      for (size_t i = 0; i < t.results.size(); ++i)
        g << "  r." << multi_field(t.results, i) << " = " << from_bits(t.results[i], "s[" + std::to_string(i) + "]") << ";\n";
      g << "  return r;\n";
    }
    g << "}\n";
  }
  for (size_t k = 0; k < prep.exports.size(); ++k) {
    const FuncType& t = prep.exports[k].type;
    g << "static void cv_call_" << k << "(void* inst, uint64_t* s) {\n  ";
    if (!t.results.empty()) g << result_c_type(t.results) << " r = ";
    g << "Z_mZ_e" << k << "((Z_m_instance_t*)inst";
    for (size_t i = 0; i < t.params.size(); ++i) g << ", " << from_bits(t.params[i], "s[" + std::to_string(i) + "]");
    g << ");\n";
    if (t.results.size() == 1) g << "  s[0] = " << to_bits(t.results[0], "r") << ";\n";
    for (size_t i = 0; t.results.size() > 1 && i < t.results.size(); ++i)
      g << "  s[" << i << "] = " << to_bits(t.results[i], "r." + multi_field(t.results, i)) << ";\n";
    g << "}\n";
  }
  g << "void (*const covenant_exports[])(void*, uint64_t*) = {";
  for (size_t k = 0; k < prep.exports.size(); ++k) g << "cv_call_" << k << ", ";
  g << "0};\n";
  g << "uint32_t covenant_instance_size(void) { return (uint32_t)sizeof(Z_m_instance_t); }\n";
  g << "void covenant_init(void) { Z_m_init_module(); }\n";
  g << "void covenant_instantiate(void* inst, void* ctx) { Z_m_instantiate((Z_m_instance_t*)inst"
    << (has_imports ? ", (struct Z_h_instance_t*)ctx" : "") << "); }\n";
  g << "void covenant_free(void* inst) { Z_m_free((Z_m_instance_t*)inst); }\n";
  g << "u64* covenant_g_fuel(void* i) { return Z_mZ_cvfuel((Z_m_instance_t*)i); }\n";
  g << "u64* covenant_g_bank(void* i) { return Z_mZ_cvbank((Z_m_instance_t*)i); }\n";
  g << "u32* covenant_g_int(void* i) { return Z_mZ_cvint((Z_m_instance_t*)i); }\n";
  g << "u32* covenant_g_trap(void* i) { return Z_mZ_cvtrap((Z_m_instance_t*)i); }\n";
  g << "u32* covenant_g_depth(void* i) { return Z_mZ_cvdepth((Z_m_instance_t*)i); }\n";
  g << "wasm_rt_memory_t* covenant_memory(void* i) { "
    << (prep.memory.present ? "return Z_mZ_cvmem((Z_m_instance_t*)i);" : "(void)i; return 0;") << " }\n";
  g << "void covenant_start(void* i, uint64_t* s) { (void)s; "
    << (prep.has_start ? "Z_mZ_cvstart((Z_m_instance_t*)i);" : "(void)i;") << " }\n";
  c += g.str();
  return c;
}

Tier code_tier(const CCode& code) { return code.tier; }

CCode::~CCode() {
  if (tcc) {
    std::lock_guard<std::mutex> lock(g_tcc_mu);
    tcc_delete(tcc);
  }
  // dlopen'd code is never unloaded: instances of other Module objects may
  // share the same handle (dlopen dedups by inode), and unloading is rarely
  // worth the risk of a dangling function pointer.
  if (image_fd >= 0) close(image_fd);
}

namespace {

template <class F>
Status resolve_symbols(CCode& code, F&& lookup, size_t n_exports) {
  auto need = [&](const char* name, auto*& out) -> Status {
    void* p = lookup(name);
    if (!p) return Status::internal(std::string("compiled module lacks symbol ") + name);
    out = reinterpret_cast<std::remove_reference_t<decltype(out)>>(p);
    return Status::ok();
  };
  COVENANT_RETURN_IF_ERROR(need("covenant_rt", code.rt));
  COVENANT_RETURN_IF_ERROR(need("covenant_instance_size", code.instance_size));
  COVENANT_RETURN_IF_ERROR(need("covenant_instantiate", code.instantiate));
  COVENANT_RETURN_IF_ERROR(need("covenant_free", code.free_instance));
  COVENANT_RETURN_IF_ERROR(need("covenant_g_fuel", code.g_fuel));
  COVENANT_RETURN_IF_ERROR(need("covenant_g_bank", code.g_bank));
  COVENANT_RETURN_IF_ERROR(need("covenant_g_int", code.g_int));
  COVENANT_RETURN_IF_ERROR(need("covenant_g_trap", code.g_trap));
  COVENANT_RETURN_IF_ERROR(need("covenant_g_depth", code.g_depth));
  COVENANT_RETURN_IF_ERROR(need("covenant_memory", code.memory));
  COVENANT_RETURN_IF_ERROR(need("covenant_start", code.start));
  void (*init)() = nullptr;
  COVENANT_RETURN_IF_ERROR(need("covenant_init", init));
  ExportFn const* table = nullptr;
  COVENANT_RETURN_IF_ERROR(need("covenant_exports", table));
  code.exports.assign(table, table + n_exports);
  *code.rt = rt_table();
  init();
  return Status::ok();
}

Status attach_image(CCode& code, const PreparedModule& prep) {
  if (prep.memory_image.empty()) return Status::ok();
  size_t bytes = (prep.memory_image.size() + 4095) & ~size_t(4095);
  int fd = memfd_create("covenant-image", MFD_CLOEXEC);
  if (fd < 0) return Status::io(std::string("memfd_create: ") + std::strerror(errno));
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0 ||
      pwrite(fd, prep.memory_image.data(), prep.memory_image.size(), 0) !=
          static_cast<ssize_t>(prep.memory_image.size())) {
    close(fd);
    return Status::io(std::string("writing the memory image: ") + std::strerror(errno));
  }
  code.image_fd = fd;
  code.image_bytes = bytes;
  return Status::ok();
}

uint64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Result<std::shared_ptr<CCode>> compile_baseline(const PreparedModule& prep, const EngineConfig& config,
                                                uint64_t* compile_us) {
  uint64_t t0 = now_us();
  // Covenant's own translator (C shaped for tcc, no system headers); wasm2c's
  // output is the fallback for what it refuses (multi-value, bulk memory).
  // COVENANT_BASELINE_WASM2C=1 forces the fallback (to test it on any corpus).
  int layout = 1;
  static const bool force_wasm2c = std::getenv("COVENANT_BASELINE_WASM2C") != nullptr;
  auto c = force_wasm2c ? Result<std::string>(Status::unsupported("forced by COVENANT_BASELINE_WASM2C"))
                        : generate_tcc_c(prep, config.features);
  if (!c && c.status().code() == Code::kUnsupported) {
    layout = 0;
    if (std::getenv("COVENANT_DUMP_BASELINE_C")) std::fprintf(stderr, "covenant: baseline falls back to wasm2c: %s\n", c.status().message().c_str());
    c = generate_c(prep, config.features);
  }
  if (!c) return c.status();
  if (const char* dump = std::getenv("COVENANT_DUMP_BASELINE_C")) {  // debugging aid
    if (FILE* f = std::fopen(dump, "w")) {
      std::fwrite(c->data(), 1, c->size(), f);
      std::fclose(f);
    }
  }
  auto code = std::make_shared<CCode>();
  code->tier = Tier::kBaseline;
  code->layout = layout;
  std::string errors;
  {
    std::lock_guard<std::mutex> lock(g_tcc_mu);
    TCCState* s = tcc_new();
    if (!s) return Status::internal("tcc_new failed");
    code->tcc = s;
    tcc_set_error_func(s, &errors, [](void* opaque, const char* msg) {
      auto* e = static_cast<std::string*>(opaque);
      if (e->size() < 4096) {
        *e += msg;
        *e += "\n";
      }
    });
    tcc_set_lib_path(s, COVENANT_TCC_LIB_DIR);
    if (layout == 1) {
      // Self-contained unit: no headers, no libc/libtcc1; libm entry points
      // are handed over directly.
      tcc_set_options(s, "-w -nostdinc -nostdlib");
    } else {
      tcc_set_options(s, "-w");
      tcc_add_sysinclude_path(s, COVENANT_WASM_RT_INCLUDE);
    }
    tcc_set_output_type(s, TCC_OUTPUT_MEMORY);
    if (layout == 1) {
      tcc_add_symbol(s, "floorf", reinterpret_cast<const void*>(static_cast<float (*)(float)>(&::floorf)));
      tcc_add_symbol(s, "ceilf", reinterpret_cast<const void*>(static_cast<float (*)(float)>(&::ceilf)));
      tcc_add_symbol(s, "truncf", reinterpret_cast<const void*>(static_cast<float (*)(float)>(&::truncf)));
      tcc_add_symbol(s, "nearbyintf", reinterpret_cast<const void*>(static_cast<float (*)(float)>(&::nearbyintf)));
      tcc_add_symbol(s, "sqrtf", reinterpret_cast<const void*>(static_cast<float (*)(float)>(&::sqrtf)));
      tcc_add_symbol(s, "floor", reinterpret_cast<const void*>(static_cast<double (*)(double)>(&::floor)));
      tcc_add_symbol(s, "ceil", reinterpret_cast<const void*>(static_cast<double (*)(double)>(&::ceil)));
      tcc_add_symbol(s, "trunc", reinterpret_cast<const void*>(static_cast<double (*)(double)>(&::trunc)));
      tcc_add_symbol(s, "nearbyint", reinterpret_cast<const void*>(static_cast<double (*)(double)>(&::nearbyint)));
      tcc_add_symbol(s, "sqrt", reinterpret_cast<const void*>(static_cast<double (*)(double)>(&::sqrt)));
      tcc_add_symbol(s, "memset", reinterpret_cast<const void*>(&::memset));
      tcc_add_symbol(s, "memmove", reinterpret_cast<const void*>(&::memmove));
    }
    if (tcc_compile_string(s, c->c_str()) < 0 || tcc_relocate(s, TCC_RELOCATE_AUTO) < 0)
      return Status::internal("tcc could not compile the generated C: " + errors);
  }
  COVENANT_RETURN_IF_ERROR(resolve_symbols(
      *code, [&](const char* name) { return tcc_get_symbol(code->tcc, name); }, prep.exports.size()));
  COVENANT_RETURN_IF_ERROR(attach_image(*code, prep));
  if (compile_us) *compile_us = now_us() - t0;
  return code;
}

Result<std::shared_ptr<CCode>> compile_optimized(const PreparedModule& prep, const EngineConfig& config,
                                                 const std::function<void(std::string_view)>& progress,
                                                 uint64_t* compile_us, bool* cache_hit) {
  uint64_t t0 = now_us();
  ArtifactCache cache(config);
  std::string key = cache.key(prep.metered, "optimized");
  std::string path = cache.path_for(key);
  auto fd = cache.read_verified(path);
  if (!fd) {
    if (fd.status().code() == Code::kCorruption) {
      // Reported, removed, rebuilt: never loaded.
      std::string msg = "warning: " + fd.status().message() + "; rebuilding";
      if (progress) progress(msg);
      else std::fprintf(stderr, "covenant: %s\n", msg.c_str());
    } else if (fd.status().code() != Code::kNotFound) {
      return fd.status();
    }
  }
  if (cache_hit) *cache_hit = fd.is_ok();
  if (!fd) {
    auto c = generate_c(prep, config.features);
    if (!c) return c.status();
    auto built = cache.build(key, *c, progress);
    if (!built) return built.status();
    fd = cache.read_verified(path);
    if (!fd) return fd.status();
  }
  // Load exactly the bytes that were verified.
  auto loaded = cache.load(*fd);
  if (!loaded) return loaded.status();
  void* dl = *loaded;
  auto code = std::make_shared<CCode>();
  code->tier = Tier::kOptimized;
  code->dl = dl;
  COVENANT_RETURN_IF_ERROR(
      resolve_symbols(*code, [&](const char* name) { return dlsym(dl, name); }, prep.exports.size()));
  COVENANT_RETURN_IF_ERROR(attach_image(*code, prep));
  if (compile_us) *compile_us = now_us() - t0;
  return code;
}

// ---------------------------------------------------------------------------
// Instances

namespace {

class CInstance;
TrapKind nested_call(CInstance* inst, uint32_t index, uint64_t* slots);

class CHostCall final : public HostCall {
 public:
  CHostCall(CInstance* inst, wasm_rt_memory_t* mem) : inst_(inst), mem_(mem) {}
  std::span<uint8_t> memory() override {
    if (!mem_) return {};
    return {mem_->data, size_t(mem_->pages) * kWasmPageBytes};
  }
  TrapKind call_export(uint32_t export_index, uint64_t* slots) override {
    return nested_call(inst_, export_index, slots);
  }

 private:
  CInstance* inst_;
  wasm_rt_memory_t* mem_;
};

class CInstance final : public Instance {
 public:
  CInstance(std::shared_ptr<ModuleImpl> module, std::vector<Linker::Entry> imports, void* user_data,
            InstanceLimits limits)
      : module_(std::move(module)), imports_(std::move(imports)), user_data_(user_data), limits_(limits) {}

  ~CInstance() override { teardown(); }

  Status setup() {
    generation_ = module_->slot->generation.load(std::memory_order_acquire);
    code_ = module_->slot->get();
    stack_needed_ = required_stack_bytes(module_->prep->call_depth_max);
    inst_ = std::calloc(1, code_->instance_size());
    if (!inst_) return Status::io("out of memory allocating an instance");
    ThreadState& ts = thread_state();
    ts.memory_pages_cap = static_cast<uint32_t>(
        std::min<uint64_t>(limits_.memory_bytes_max / kWasmPageBytes, 65536));
    ts.table_elements_cap = limits_.table_elements_max;
    if (module_->prep->memory.present && module_->prep->memory.initial_pages > ts.memory_pages_cap)
      return Status::limit("the module's initial memory (" +
                           std::to_string(uint64_t(module_->prep->memory.initial_pages) * kWasmPageBytes) +
                           " bytes) exceeds the instance limit memory_bytes_max (" +
                           std::to_string(limits_.memory_bytes_max) + ")");
    ensure_signal_handling();
    sigjmp_buf* const outer_jmp = t_guest.jmp;  // instantiated from a host function: restore its pad
    const int outer_in_guest = t_guest.in_guest;
    const uintptr_t outer_lo = t_guest.mem_lo, outer_hi = t_guest.mem_hi;
    sigjmp_buf jb;
    t_guest.jmp = &jb;
    t_guest.mem_lo = t_guest.mem_hi = 0;
    int code = sigsetjmp(jb, 0);
    if (code == 0) {
      t_guest.in_guest = 1;
      code_->instantiate(inst_, this);
    }
    t_guest.in_guest = outer_in_guest;
    t_guest.jmp = outer_jmp;
    t_guest.mem_lo = outer_lo;
    t_guest.mem_hi = outer_hi;
    if (code != 0) {
      std::free(inst_);
      inst_ = nullptr;
      return Status::io("instantiation failed (out of memory or address space)");
    }
    instantiated_ = true;
    fuel_ = code_->g_fuel(inst_);
    bank_ = code_->g_bank(inst_);
    int_ = code_->g_int(inst_);
    trap_ = code_->g_trap(inst_);
    depth_ = code_->g_depth(inst_);
    mem_ = code_->memory(inst_);
    if (mem_) {
      mem_lo_ = reinterpret_cast<uintptr_t>(mem_->data);
      mem_hi_ = mem_lo_ + kReservationBytes;
    }
    if (code_->image_fd >= 0 && mem_) {
      void* p = mmap(mem_->data, code_->image_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED,
                     code_->image_fd, 0);
      if (p == MAP_FAILED) return Status::io(std::string("mapping the memory image: ") + std::strerror(errno));
      image_mapped_ = code_->image_bytes;
    }
    if (module_->prep->has_start) {
      // The start function runs like any call, metered, with the default fuel.
      uint64_t used = 0;
      uint64_t slot[1] = {0};
      TrapKind k = run(true, slot, CallOptions{}.fuel, &used, 0);
      if (k != TrapKind::kNone)
        return Status::invalid(std::string("the start function trapped: ") + trap_kind_name(k));
    }
    return Status::ok();
  }

  Module& module() override { return *module_; }

  Result<CallOutcome> call(uint32_t index, std::span<const Value> args, const CallOptions& options) override {
    if (index >= module_->prep->exports.size()) return Status::invalid("no export with index " + std::to_string(index));
    const FuncType& t = module_->prep->exports[index].type;
    if (args.size() != t.params.size())
      return Status::invalid("export \"" + module_->prep->exports[index].name + "\" takes " +
                             std::to_string(t.params.size()) + " arguments, got " + std::to_string(args.size()));
    uint64_t slots[64];
    std::vector<uint64_t> big;
    uint64_t* s = slots;
    size_t n = std::max<size_t>({t.params.size(), t.results.size(), 1});
    if (n > 64) {
      big.resize(n);
      s = big.data();
    }
    for (size_t i = 0; i < args.size(); ++i) {
      if (args[i].type != t.params[i])
        return Status::invalid("argument " + std::to_string(i) + " of \"" + module_->prep->exports[index].name +
                               "\" must be " + valtype_name(t.params[i]) + ", got " + valtype_name(args[i].type));
      s[i] = args[i].bits;
    }
    COVENANT_RETURN_IF_ERROR(check_call_fuel(options.fuel));
    CallOutcome out;
    TrapKind k = run(false, s, options.fuel, &out.fuel_used, options.deadline_ms, index);
    out.trap.kind = k;
    if (k == TrapKind::kNone) {
      for (size_t i = 0; i < t.results.size(); ++i) {
        uint64_t b = s[i];
        if (t.results[i] == ValType::kI32 || t.results[i] == ValType::kF32) b &= 0xffffffffu;
        out.results.push_back({t.results[i], b});
      }
    } else {
      out.trap.message = trap_message(k);
    }
    return out;
  }

  TrapKind call_raw(uint32_t index, uint64_t* slots, uint64_t fuel, uint64_t* fuel_used) override {
    return run(false, slots, fuel, fuel_used, 0, index);
  }

  std::span<uint8_t> memory() override {
    if (!mem_) return {};
    return {mem_->data, size_t(mem_->pages) * kWasmPageBytes};
  }

  Status reset() override {
    teardown();
    return setup();
  }

  Tier tier() const override {
    const_cast<CInstance*>(this)->maybe_upgrade();
    return code_->tier;
  }

  void host_call(uint32_t k, uint64_t* slots) {
    if (invoke_host(k, slots)) rt_trap_host();
  }

  // A call into this instance from one of its host functions: same globals
  // (fuel, depth, deadline flag), its own trap landing pad.
  TrapKind nested(uint32_t index, uint64_t* slots) {
    if (index >= code_->exports.size()) {
      nested_trap_ = TrapKind::kHost;
      nested_message_ = "call_export: no export with index " + std::to_string(index);
      return nested_trap_;
    }
    GuestTls& g = t_guest;
    sigjmp_buf* outer = g.jmp;
    const int outer_in_guest = g.in_guest;
    sigjmp_buf jb;
    g.jmp = &jb;
    int code = sigsetjmp(jb, 0);
    if (code == 0) {
      g.in_guest = 1;
      code_->exports[index](inst_, slots);
    }
    g.in_guest = outer_in_guest;
    g.jmp = outer;
    if (code == 0) return TrapKind::kNone;
    const TrapKind k = classify_rt_trap(code, *trap_);
    if (nested_trap_ == TrapKind::kNone) {  // the innermost trap is the call's
      nested_trap_ = k;
      nested_message_ = trap_message(k);
    }
    return k;
  }

 private:
  [[noreturn]] static void rt_trap_host() { rt_table().trap(kRtHost); __builtin_unreachable(); }

  // Returns true if the host function trapped (message in host_message_).
  bool invoke_host(uint32_t k, uint64_t* slots) {
    const Linker::Entry* e = &imports_[k];
    const FuncType& t = e->type;
    Value args[16], results[16];
    std::vector<Value> big_args, big_results;
    Value* a = args;
    Value* r = results;
    if (t.params.size() > 16) { big_args.resize(t.params.size()); a = big_args.data(); }
    if (t.results.size() > 16) { big_results.resize(t.results.size()); r = big_results.data(); }
    for (size_t i = 0; i < t.params.size(); ++i) {
      uint64_t b = slots[i];
      if (t.params[i] == ValType::kI32 || t.params[i] == ValType::kF32) b &= 0xffffffffu;
      a[i] = {t.params[i], b};
    }
    for (size_t i = 0; i < t.results.size(); ++i) r[i] = {t.results[i], 0};
    CHostCall hc(this, mem_);
    hc.user_data = user_data_;
    HostResult res;
    try {
      res = e->fn(hc, std::span<const Value>(a, t.params.size()), std::span<Value>(r, t.results.size()));
    } catch (const std::exception& ex) {
      res = HostResult::trap(std::string("host function threw: ") + ex.what());
    } catch (...) {
      res = HostResult::trap("host function threw");
    }
    if (nested_trap_ != TrapKind::kNone) return true;  // a nested call trapped: so does this call
    if (res.trapped) {
      // Kept on the instance, not the thread: a call may run on a helper thread.
      host_message_ = e->module + "." + e->field + ": " + res.message;
      return true;
    }
    for (size_t i = 0; i < t.results.size(); ++i) slots[i] = r[i].bits;
    return false;
  }

  std::string trap_message(TrapKind k) const {
    switch (k) {
      case TrapKind::kHost: return host_message_;
      case TrapKind::kOutOfFuel: return "out of fuel";
      case TrapKind::kDeadline: return "deadline exceeded";
      case TrapKind::kStackExhausted: return "call stack exhausted (call_depth_max " + std::to_string(module_->prep->call_depth_max) + ")";
      case TrapKind::kUnreachable: return "unreachable executed";
      case TrapKind::kMemoryOutOfBounds: return "out of bounds memory access";
      case TrapKind::kTableOutOfBounds: return "undefined table index";
      case TrapKind::kIntegerDivideByZero: return "integer divide by zero";
      case TrapKind::kIntegerOverflow: return "integer overflow";
      case TrapKind::kInvalidConversion: return "invalid conversion to integer";
      case TrapKind::kIndirectCallTypeMismatch: return "indirect call signature mismatch";
      case TrapKind::kUninitializedElement: return "uninitialized table element";
      case TrapKind::kNone: return "";
    }
    return "";
  }

  void maybe_upgrade() {
    uint32_t g = module_->slot->generation.load(std::memory_order_acquire);
    if (g == generation_) return;
    generation_ = g;
    // Same struct layout: the new code runs on this instance's state. Code of
    // another layout (tcc_writer's baseline -> wasm2c's optimized) only serves
    // new instances; this one keeps its code.
    std::shared_ptr<CCode> next = module_->slot->get();
    if (next->layout == code_->layout) code_ = std::move(next);
  }

  TrapKind run(bool start, uint64_t* slots, uint64_t fuel, uint64_t* fuel_used, uint32_t deadline_ms,
               uint32_t index = 0) {
    fuel = std::min(fuel, kCallFuelMax);  // call_raw's cap; call() refused larger budgets
    GuestTls& g = t_guest;
    if (__builtin_expect(!g.altstack_ready, 0)) ensure_signal_handling();
    char here;
    if (__builtin_expect(reinterpret_cast<uintptr_t>(&here) - g.stack_lo < stack_needed_, 0)) {
      TrapKind k = TrapKind::kNone;
      run_on_big_stack([&] { k = run_here(start, slots, fuel, fuel_used, deadline_ms, index); },
                       stack_needed_ + (8u << 20));
      return k;
    }
    return run_here(start, slots, fuel, fuel_used, deadline_ms, index);
  }

  TrapKind run_here(bool start, uint64_t* slots, uint64_t fuel, uint64_t* fuel_used, uint32_t deadline_ms,
                    uint32_t index) {
    GuestTls& g = t_guest;
    if (__builtin_expect(!g.altstack_ready, 0)) ensure_signal_handling();
    maybe_upgrade();
    uint64_t first = fuel < kFuelSliceUnits ? fuel : kFuelSliceUnits;
    *fuel_ = first;
    *bank_ = fuel - first;
    *int_ = 0;
    *trap_ = 0;
    *depth_ = 0;
    nested_trap_ = TrapKind::kNone;
    std::unique_ptr<DeadlineToken> deadline;
    if (deadline_ms) {
      uint32_t* flag = int_;
      deadline = std::make_unique<DeadlineToken>(deadline_ms, [flag] { __atomic_store_n(flag, 1u, __ATOMIC_RELAXED); });
    }
    ExportFn fn = start ? code_->start : code_->exports[index];
    // A host function of another instance may call this one: its landing pad and
    // memory bounds are restored on return, or its guest's next trap finds none.
    sigjmp_buf* const outer_jmp = g.jmp;
    const int outer_in_guest = g.in_guest;
    const uintptr_t outer_lo = g.mem_lo, outer_hi = g.mem_hi;
    sigjmp_buf jb;
    g.jmp = &jb;
    g.mem_lo = mem_lo_;
    g.mem_hi = mem_hi_;
    int code = sigsetjmp(jb, 0);
    if (code == 0) {
      g.in_guest = 1;
      fn(inst_, slots);
    }
    g.in_guest = outer_in_guest;
    g.jmp = outer_jmp;
    g.mem_lo = outer_lo;
    g.mem_hi = outer_hi;
    TrapKind k = code == 0 ? TrapKind::kNone : classify_rt_trap(code, *trap_);
    if (k != TrapKind::kNone && nested_trap_ != TrapKind::kNone) {
      k = nested_trap_;
      host_message_ = nested_message_;  // what trap_message() reports for kHost
    }
    nested_trap_ = TrapKind::kNone;
    int64_t remaining = static_cast<int64_t>(*fuel_ + *bank_);
    *fuel_used = fuel_used_after(fuel, remaining, k);
    return k;
  }

  void teardown() {
    if (!inst_) return;
    if (image_mapped_ && mem_) {
      // Replace the copy-on-write image with fresh zero pages before the memory
      // goes back to the pool.
      mmap(mem_->data, image_mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      image_mapped_ = 0;
    }
    if (instantiated_) code_->free_instance(inst_);
    instantiated_ = false;
    std::free(inst_);
    inst_ = nullptr;
    mem_ = nullptr;
  }

  std::shared_ptr<ModuleImpl> module_;
  std::vector<Linker::Entry> imports_;  // copies: the Linker need not outlive us
  void* user_data_;
  InstanceLimits limits_;
  std::shared_ptr<CCode> code_;
  uint32_t generation_ = 0;
  void* inst_ = nullptr;
  bool instantiated_ = false;
  uint64_t* fuel_ = nullptr;
  uint64_t* bank_ = nullptr;
  uint32_t* int_ = nullptr;
  uint32_t* trap_ = nullptr;
  uint32_t* depth_ = nullptr;
  wasm_rt_memory_t* mem_ = nullptr;
  uintptr_t mem_lo_ = 0, mem_hi_ = 0;
  size_t image_mapped_ = 0;
  size_t stack_needed_ = 0;
  std::string host_message_;
  TrapKind nested_trap_ = TrapKind::kNone;  // the first trap inside a nested call of this call
  std::string nested_message_;
};

TrapKind nested_call(CInstance* inst, uint32_t index, uint64_t* slots) { return inst->nested(index, slots); }

}  // namespace

void rt_host_call(void* ctx, uint32_t import_index, uint64_t* slots) {
  static_cast<CInstance*>(ctx)->host_call(import_index, slots);
}

Result<std::unique_ptr<Instance>> instantiate_c(std::shared_ptr<ModuleImpl> module, const Linker& linker,
                                                const InstanceLimits& limits) {
  auto imports = resolve_imports(*module->prep, linker);
  if (!imports) return imports.status();
  auto inst = std::make_unique<CInstance>(module, std::move(*imports), linker.user_data, limits);
  COVENANT_RETURN_IF_ERROR(inst->setup());
  return std::unique_ptr<Instance>(std::move(inst));
}

}  // namespace covenant::wasm
