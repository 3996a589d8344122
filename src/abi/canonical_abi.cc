// Canonical ABI lift/lower, following CanonicalABI.md's definitions (despecialize,
// alignment, elem_size, flatten, load/store, lift_flat/lower_flat) function by
// function. Every pointer and length from the guest is checked before use.
#include <algorithm>
#include <cmath>

#include "covenant/abi.h"

namespace covenant::abi {

using wit::kNoType;
using wit::Type;
using wit::TypeId;
using wit::TypeKind;

namespace {

Layout simple(uint64_t size, uint32_t align, std::vector<CoreType> flat) {
  Layout l;
  l.size = size;
  l.align = align;
  l.flat = std::move(flat);
  return l;
}

uint64_t align_to(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
constexpr uint64_t kTypeSizeMax = 1ull << 32;  // a wasm32 value never exceeds its memory

CoreType join(CoreType a, CoreType b) {
  if (a == b) return a;
  if ((a == CoreType::kI32 && b == CoreType::kF32) || (a == CoreType::kF32 && b == CoreType::kI32)) return CoreType::kI32;
  return CoreType::kI64;
}

bool is_32bit(CoreType t) { return t == CoreType::kI32 || t == CoreType::kF32; }

uint32_t canon_f32(uint32_t bits) {
  float f = std::bit_cast<float>(bits);
  return std::isnan(f) ? kCanonicalF32Nan : bits;
}
uint64_t canon_f64(uint64_t bits) {
  double d = std::bit_cast<double>(bits);
  return std::isnan(d) ? kCanonicalF64Nan : bits;
}

std::string hex32(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

const char* core_type_name(CoreType t) {
  switch (t) {
    case CoreType::kI32: return "i32";
    case CoreType::kI64: return "i64";
    case CoreType::kF32: return "f32";
    case CoreType::kF64: return "f64";
  }
  return "?";
}

const char* trap_name(Trap t) {
  switch (t) {
    case Trap::kNone: return "none";
    case Trap::kLengthTooLarge: return "length-too-large";
    case Trap::kMisaligned: return "misaligned";
    case Trap::kOutOfBounds: return "out-of-bounds";
    case Trap::kInvalidUtf8: return "invalid-utf8";
    case Trap::kInvalidChar: return "invalid-char";
    case Trap::kInvalidDiscriminant: return "invalid-discriminant";
    case Trap::kReallocFailed: return "realloc-failed";
    case Trap::kLiftBudgetExceeded: return "lift-budget-exceeded";
  }
  return "?";
}

bool is_valid_char(uint32_t cp) { return cp < 0xD800 || (cp > 0xDFFF && cp < 0x110000); }

bool is_valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    // Fast path: 8 ASCII bytes at a time.
    if (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if ((w & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
    } else if (c >= 0xC2 && c <= 0xDF) {
      if (i + 1 >= n || (p[i + 1] & 0xC0) != 0x80) return false;
      i += 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      if (i + 2 >= n) return false;
      unsigned char c1 = p[i + 1];
      if ((c1 & 0xC0) != 0x80 || (p[i + 2] & 0xC0) != 0x80) return false;
      if (c == 0xE0 && c1 < 0xA0) return false;  // overlong
      if (c == 0xED && c1 > 0x9F) return false;  // surrogate
      i += 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      if (i + 3 >= n) return false;
      unsigned char c1 = p[i + 1];
      if ((c1 & 0xC0) != 0x80 || (p[i + 2] & 0xC0) != 0x80 || (p[i + 3] & 0xC0) != 0x80) return false;
      if (c == 0xF0 && c1 < 0x90) return false;  // overlong
      if (c == 0xF4 && c1 > 0x8F) return false;  // > U+10FFFF
      i += 4;
    } else {
      return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------
// BufferMemory

Result<uint32_t> BufferMemory::realloc(uint32_t old_ptr, uint32_t old_size, uint32_t align, uint32_t new_size) {
  ++realloc_calls;
  if (realloc_hook) return realloc_hook(old_ptr, old_size, align, new_size);
  if (align == 0 || (align & (align - 1)) != 0) return Status::invalid("cabi_realloc: bad alignment");
  uint64_t p = align_to(next_, align);
  if (p + new_size > bytes_.size()) return Status::limit("cabi_realloc: out of memory");
  if (old_ptr != 0 && old_size != 0) std::memmove(bytes_.data() + p, bytes_.data() + old_ptr, std::min(old_size, new_size));
  next_ = static_cast<uint32_t>(p + new_size);
  return static_cast<uint32_t>(p);
}

// ---------------------------------------------------------------------------
// Layouts

Abi::Abi(const wit::Package& package) : pkg_(package), layouts_(package.types.size()), done_(package.types.size(), 0) {
  for (TypeId id = 0; id < pkg_.types.size(); ++id) compute(id);
}

void Abi::compute(TypeId id) {
  if (done_[id] == 2) return;
  assert(done_[id] == 0 && "WIT types are not recursive (the resolver rejects cycles)");
  done_[id] = 1;
  const Type& t = pkg_.types[id];
  Layout l;
  auto child = [&](TypeId c) -> const Layout& {
    compute(c);
    return layouts_[c];
  };
  auto append_flat = [&](const Layout& c) {
    if (l.flat_overflow || c.flat_overflow || l.flat.size() + c.flat.size() > kMaxFlatParams) {
      l.flat_overflow = true;
      l.flat.clear();
    } else {
      l.flat.insert(l.flat.end(), c.flat.begin(), c.flat.end());
    }
  };
  switch (t.kind) {
    case TypeKind::kBool: case TypeKind::kS8: case TypeKind::kU8:
      l = simple(1, 1, {CoreType::kI32}); break;
    case TypeKind::kS16: case TypeKind::kU16:
      l = simple(2, 2, {CoreType::kI32}); break;
    case TypeKind::kS32: case TypeKind::kU32: case TypeKind::kChar:
      l = simple(4, 4, {CoreType::kI32}); break;
    case TypeKind::kS64: case TypeKind::kU64:
      l = simple(8, 8, {CoreType::kI64}); break;
    case TypeKind::kF32: l = simple(4, 4, {CoreType::kF32}); break;
    case TypeKind::kF64: l = simple(8, 8, {CoreType::kF64}); break;
    case TypeKind::kString: case TypeKind::kList:
      if (t.kind == TypeKind::kList) child(t.elem);
      l = simple(8, 4, {CoreType::kI32, CoreType::kI32}); break;
    case TypeKind::kFlags: {
      size_t n = t.fields.size();
      uint32_t s = n <= 8 ? 1 : n <= 16 ? 2 : 4;
      l = simple(s, s, {CoreType::kI32});
      break;
    }
    case TypeKind::kRecord: case TypeKind::kTuple: {
      uint64_t s = 0;
      for (const wit::Field& f : t.fields) {
        const Layout& c = child(f.type);
        l.align = std::max(l.align, c.align);
        s = align_to(s, c.align);
        l.field_offsets.push_back(static_cast<uint32_t>(std::min(s, kTypeSizeMax)));
        s = std::min(s + c.size, kTypeSizeMax + 1);
        append_flat(c);
      }
      l.size = align_to(s, l.align);
      break;
    }
    case TypeKind::kVariant: case TypeKind::kEnum: case TypeKind::kOption: case TypeKind::kResult: {
      // despecialize: enum = variant of payload-less cases, option = none|some(T),
      // result = ok(T?)|error(E?)
      if (t.kind == TypeKind::kOption) l.cases = {kNoType, t.elem};
      else if (t.kind == TypeKind::kResult) l.cases = {t.ok, t.err};
      else for (const wit::Field& f : t.fields) l.cases.push_back(f.type);
      size_t n = l.cases.size();
      l.discriminant_bytes = n <= 256 ? 1 : n <= 65536 ? 2 : 4;
      uint32_t max_case_align = 1;
      uint64_t max_case_size = 0;
      std::vector<CoreType> joined;
      bool overflow = false;
      for (TypeId c : l.cases) {
        if (c == kNoType) continue;
        const Layout& cl = child(c);
        max_case_align = std::max(max_case_align, cl.align);
        max_case_size = std::max(max_case_size, cl.size);
        if (cl.flat_overflow) {
          overflow = true;
          continue;
        }
        for (size_t i = 0; i < cl.flat.size(); ++i) {
          if (i < joined.size()) joined[i] = join(joined[i], cl.flat[i]);
          else joined.push_back(cl.flat[i]);
        }
      }
      l.align = std::max(l.discriminant_bytes, max_case_align);
      l.payload_offset = static_cast<uint32_t>(align_to(l.discriminant_bytes, max_case_align));
      l.size = align_to(std::min(l.payload_offset + max_case_size, kTypeSizeMax + 1), l.align);
      if (overflow || joined.size() + 1 > kMaxFlatParams) {
        l.flat_overflow = true;
      } else {
        l.flat.push_back(CoreType::kI32);
        l.flat.insert(l.flat.end(), joined.begin(), joined.end());
      }
      break;
    }
  }
  layouts_[id] = std::move(l);
  done_[id] = 2;
}

namespace {

// The params (or results) of a function as one tuple: offsets, size, alignment.
struct TupleLayout {
  uint64_t size = 0;
  uint32_t align = 1;
  size_t flat_count = 0;
  std::vector<uint32_t> offsets;
};

TupleLayout tuple_layout(const Abi& abi, const std::vector<wit::Param>& ps) {
  TupleLayout tl;
  uint64_t s = 0;
  for (const wit::Param& p : ps) {
    const Layout& l = abi.layout(p.type);
    tl.align = std::max(tl.align, l.align);
    s = align_to(s, l.align);
    tl.offsets.push_back(static_cast<uint32_t>(std::min(s, kTypeSizeMax)));
    s = std::min(s + l.size, kTypeSizeMax + 1);
    tl.flat_count += l.flat_count();
  }
  tl.size = align_to(s, tl.align);
  return tl;
}

void append_flat(const Abi& abi, const std::vector<wit::Param>& ps, std::vector<CoreType>* out) {
  for (const wit::Param& p : ps) {
    const Layout& l = abi.layout(p.type);
    out->insert(out->end(), l.flat.begin(), l.flat.end());
  }
}

}  // namespace

CoreSignature Abi::core_signature(const wit::Function& fn, Direction dir) const {
  CoreSignature sig;
  TupleLayout pl = tuple_layout(*this, fn.params);
  TupleLayout rl = tuple_layout(*this, fn.results);
  if (pl.flat_count > kMaxFlatParams) {
    sig.params_spilled = true;
    sig.params = {CoreType::kI32};
  } else {
    append_flat(*this, fn.params, &sig.params);
  }
  if (rl.flat_count > kMaxFlatResults) {
    sig.results_spilled = true;
    if (dir == Direction::kExport) sig.results = {CoreType::kI32};
    else sig.params.push_back(CoreType::kI32);
  } else {
    append_flat(*this, fn.results, &sig.results);
  }
  return sig;
}

// ---------------------------------------------------------------------------
// Lift / lower

Status CallContext::fault(Trap t, std::string message) {
  trap_ = t;
  return Status::invalid(std::string("guest trap (") + trap_name(t) + "): " + std::move(message));
}

// Implementation helpers with access to CallContext's state.
struct CallContextImpl {
  CallContext& cx;
  const wit::Package& pkg;

  const Layout& layout(TypeId t) { return cx.abi_.layout(t); }
  std::string tname(TypeId t) { return pkg.type_to_string(t); }

  Status mismatch(TypeId t, const WitValue& v) {
    return Status::invalid("host value " + v.debug_string().substr(0, 80) + " does not match WIT type " + tname(t));
  }

  Status check_range(uint64_t ptr, uint64_t len, uint32_t align, const char* what) {
    if (align > 1 && ptr % align != 0)
      return cx.fault(Trap::kMisaligned, std::string(what) + " pointer " + hex32(ptr) + " is not " +
                                             std::to_string(align) + "-byte aligned");
    uint64_t mem = cx.mem_.size();
    if (ptr > mem || len > mem - ptr)
      return cx.fault(Trap::kOutOfBounds, std::string(what) + " at " + hex32(ptr) + " of " + std::to_string(len) +
                                              " bytes exceeds guest memory of " + std::to_string(mem) + " bytes");
    return Status::ok();
  }

  Result<uint32_t> alloc(uint32_t align, uint64_t bytes, const char* what) {
    if (bytes >= kTypeSizeMax) return Status::limit(std::string(what) + " of " + std::to_string(bytes) + " bytes does not fit wasm32");
    Result<uint32_t> r = cx.mem_.realloc(0, 0, align, static_cast<uint32_t>(bytes));
    if (!r) return cx.fault(Trap::kReallocFailed, std::string("cabi_realloc for ") + what + " failed: " + r.status().message());
    uint64_t p = *r;
    uint64_t mem = cx.mem_.size();
    if (p % align != 0)
      return cx.fault(Trap::kReallocFailed, std::string("cabi_realloc returned ") + hex32(p) + " for " + what +
                                                ", not " + std::to_string(align) + "-byte aligned");
    if (p > mem || bytes > mem - p)
      return cx.fault(Trap::kReallocFailed, std::string("cabi_realloc returned ") + hex32(p) + " for " + what + " of " +
                                                std::to_string(bytes) + " bytes, outside guest memory of " +
                                                std::to_string(mem) + " bytes");
    return static_cast<uint32_t>(p);
  }

  template <class T>
  void put(uint32_t ptr, T v) { std::memcpy(cx.mem_.data() + ptr, &v, sizeof v); }
  template <class T>
  T get(uint32_t ptr) {
    T v;
    std::memcpy(&v, cx.mem_.data() + ptr, sizeof v);
    return v;
  }

  Status budget(uint64_t bytes, const char* what) {
    cx.lifted_bytes_ += bytes;
    if (cx.lifted_bytes_ > cx.opts_.lifted_bytes_max)
      return cx.fault(Trap::kLiftBudgetExceeded, std::string(what) + " brings the lifted value to " +
                                                     std::to_string(cx.lifted_bytes_) + " bytes, over the limit of " +
                                                     std::to_string(cx.opts_.lifted_bytes_max));
    return Status::ok();
  }

  // --- lower: host -> guest -----------------------------------------------

  bool kind_ok(const Type& t, const WitValue& v) { return t.kind == v.kind(); }

  Status check_scalar(const Type& t, TypeId id, const WitValue& v) {
    if (!kind_ok(t, v)) return mismatch(id, v);
    return Status::ok();
  }

  Result<std::pair<uint32_t, uint32_t>> lower_string(const WitValue& v) {
    const std::string& s = v.as_string();
    if (s.size() > kMaxStringByteLength) return Status::limit("string of " + std::to_string(s.size()) + " bytes exceeds 2^31-1");
    if (!is_valid_utf8(s)) return Status::invalid("host string is not valid UTF-8");
    Result<uint32_t> p = alloc(1, s.size(), "string");
    if (!p) return p.status();
    if (!s.empty()) std::memcpy(cx.mem_.data() + *p, s.data(), s.size());
    return std::pair<uint32_t, uint32_t>{*p, static_cast<uint32_t>(s.size())};
  }

  Result<std::pair<uint32_t, uint32_t>> lower_list(TypeId elem, const WitValue& v) {
    const Layout& el = layout(elem);
    const auto& items = v.items();
    uint64_t bytes = static_cast<uint64_t>(items.size()) * el.size;
    if (items.size() >= kTypeSizeMax || bytes >= kTypeSizeMax)
      return Status::limit("list of " + std::to_string(items.size()) + " elements does not fit wasm32");
    Result<uint32_t> p = alloc(el.align, bytes, "list");
    if (!p) return p.status();
    for (size_t i = 0; i < items.size(); ++i)
      COVENANT_RETURN_IF_ERROR(store(elem, items[i], static_cast<uint32_t>(*p + i * el.size)));
    return std::pair<uint32_t, uint32_t>{*p, static_cast<uint32_t>(items.size())};
  }

  Status check_case(TypeId id, const Layout& l, const WitValue& v) {
    if (v.case_index() >= l.cases.size()) return Status::invalid("case index " + std::to_string(v.case_index()) + " out of range for " + tname(id));
    bool has = l.cases[v.case_index()] != kNoType;
    if (has != (v.payload() != nullptr))
      return Status::invalid(std::string("case ") + std::to_string(v.case_index()) + " of " + tname(id) +
                             (has ? " needs a payload" : " has no payload"));
    return Status::ok();
  }

  // REQUIRES: [ptr, ptr + size) is inside memory and aligned (checked by callers).
  Status store(TypeId id, const WitValue& v, uint32_t ptr) {
    const Type& t = pkg.types[id];
    if (!kind_ok(t, v)) return mismatch(id, v);
    const Layout& l = layout(id);
    switch (t.kind) {
      case TypeKind::kBool: put<uint8_t>(ptr, v.as_bool() ? 1 : 0); return Status::ok();
      case TypeKind::kS8: case TypeKind::kU8: put<uint8_t>(ptr, static_cast<uint8_t>(v.raw_bits())); return Status::ok();
      case TypeKind::kS16: case TypeKind::kU16: put<uint16_t>(ptr, static_cast<uint16_t>(v.raw_bits())); return Status::ok();
      case TypeKind::kS32: case TypeKind::kU32: put<uint32_t>(ptr, static_cast<uint32_t>(v.raw_bits())); return Status::ok();
      case TypeKind::kChar:
        if (!is_valid_char(v.as_char())) return Status::invalid("host char " + hex32(v.as_char()) + " is not a Unicode scalar value");
        put<uint32_t>(ptr, v.as_char());
        return Status::ok();
      case TypeKind::kS64: case TypeKind::kU64: put<uint64_t>(ptr, v.raw_bits()); return Status::ok();
      case TypeKind::kF32: put<uint32_t>(ptr, canon_f32(static_cast<uint32_t>(v.raw_bits()))); return Status::ok();
      case TypeKind::kF64: put<uint64_t>(ptr, canon_f64(v.raw_bits())); return Status::ok();
      case TypeKind::kString: case TypeKind::kList: {
        auto r = t.kind == TypeKind::kString ? lower_string(v) : lower_list(t.elem, v);
        if (!r) return r.status();
        put<uint32_t>(ptr, r->first);
        put<uint32_t>(ptr + 4, r->second);
        return Status::ok();
      }
      case TypeKind::kRecord: case TypeKind::kTuple:
        if (v.items().size() != t.fields.size()) return mismatch(id, v);
        for (size_t i = 0; i < t.fields.size(); ++i)
          COVENANT_RETURN_IF_ERROR(store(t.fields[i].type, v.items()[i], ptr + l.field_offsets[i]));
        return Status::ok();
      case TypeKind::kFlags: {
        uint32_t n = static_cast<uint32_t>(t.fields.size());
        if (n < 32 && (v.flag_bits() >> n) != 0) return Status::invalid("flags value sets bits beyond the " + std::to_string(n) + " flags of " + tname(id));
        if (l.size == 1) put<uint8_t>(ptr, static_cast<uint8_t>(v.flag_bits()));
        else if (l.size == 2) put<uint16_t>(ptr, static_cast<uint16_t>(v.flag_bits()));
        else put<uint32_t>(ptr, v.flag_bits());
        return Status::ok();
      }
      case TypeKind::kVariant: case TypeKind::kEnum: case TypeKind::kOption: case TypeKind::kResult: {
        COVENANT_RETURN_IF_ERROR(check_case(id, l, v));
        uint32_t c = v.case_index();
        if (l.discriminant_bytes == 1) put<uint8_t>(ptr, static_cast<uint8_t>(c));
        else if (l.discriminant_bytes == 2) put<uint16_t>(ptr, static_cast<uint16_t>(c));
        else put<uint32_t>(ptr, c);
        if (v.payload() != nullptr) return store(l.cases[c], *v.payload(), ptr + l.payload_offset);
        return Status::ok();
      }
    }
    return Status::internal("unknown type kind");
  }

  Status lower_flat(TypeId id, const WitValue& v, std::vector<CoreValue>* out) {
    const Type& t = pkg.types[id];
    if (!kind_ok(t, v)) return mismatch(id, v);
    switch (t.kind) {
      case TypeKind::kBool: out->push_back(CoreValue::i32(v.as_bool() ? 1 : 0)); return Status::ok();
      case TypeKind::kS8: case TypeKind::kS16: case TypeKind::kS32:
        out->push_back(CoreValue::i32(static_cast<uint32_t>(v.as_signed()))); return Status::ok();
      case TypeKind::kU8: out->push_back(CoreValue::i32(static_cast<uint8_t>(v.raw_bits()))); return Status::ok();
      case TypeKind::kU16: out->push_back(CoreValue::i32(static_cast<uint16_t>(v.raw_bits()))); return Status::ok();
      case TypeKind::kU32: out->push_back(CoreValue::i32(static_cast<uint32_t>(v.raw_bits()))); return Status::ok();
      case TypeKind::kChar:
        if (!is_valid_char(v.as_char())) return Status::invalid("host char " + hex32(v.as_char()) + " is not a Unicode scalar value");
        out->push_back(CoreValue::i32(v.as_char()));
        return Status::ok();
      case TypeKind::kS64: case TypeKind::kU64: out->push_back(CoreValue::i64(v.raw_bits())); return Status::ok();
      case TypeKind::kF32: out->push_back({CoreType::kF32, canon_f32(static_cast<uint32_t>(v.raw_bits()))}); return Status::ok();
      case TypeKind::kF64: out->push_back({CoreType::kF64, canon_f64(v.raw_bits())}); return Status::ok();
      case TypeKind::kString: case TypeKind::kList: {
        auto r = t.kind == TypeKind::kString ? lower_string(v) : lower_list(t.elem, v);
        if (!r) return r.status();
        out->push_back(CoreValue::i32(r->first));
        out->push_back(CoreValue::i32(r->second));
        return Status::ok();
      }
      case TypeKind::kRecord: case TypeKind::kTuple:
        if (v.items().size() != t.fields.size()) return mismatch(id, v);
        for (size_t i = 0; i < t.fields.size(); ++i) COVENANT_RETURN_IF_ERROR(lower_flat(t.fields[i].type, v.items()[i], out));
        return Status::ok();
      case TypeKind::kFlags: {
        uint32_t n = static_cast<uint32_t>(t.fields.size());
        if (n < 32 && (v.flag_bits() >> n) != 0) return Status::invalid("flags value sets bits beyond the " + std::to_string(n) + " flags of " + tname(id));
        out->push_back(CoreValue::i32(v.flag_bits()));
        return Status::ok();
      }
      case TypeKind::kVariant: case TypeKind::kEnum: case TypeKind::kOption: case TypeKind::kResult: {
        const Layout& l = layout(id);
        if (l.flat_overflow) return Status::internal("lower_flat of a type wider than 16 core values");
        COVENANT_RETURN_IF_ERROR(check_case(id, l, v));
        out->push_back(CoreValue::i32(v.case_index()));
        size_t start = out->size();
        if (v.payload() != nullptr) COVENANT_RETURN_IF_ERROR(lower_flat(l.cases[v.case_index()], *v.payload(), out));
        // coerce the payload to the joined types, then pad with zeros
        size_t joined = l.flat.size() - 1;
        for (size_t i = 0; i < joined; ++i) {
          CoreType want = l.flat[1 + i];
          if (start + i < out->size()) (*out)[start + i].type = want;  // bits already zero-extended
          else out->push_back(CoreValue{want, 0});
        }
        return Status::ok();
      }
    }
    return Status::internal("unknown type kind");
  }

  // --- lift: guest -> host ------------------------------------------------

  Result<WitValue> lift_string(uint32_t ptr, uint32_t len) {
    if (len > kMaxStringByteLength)
      return cx.fault(Trap::kLengthTooLarge, "string length " + std::to_string(len) + " exceeds 2^31-1 bytes");
    COVENANT_RETURN_IF_ERROR(check_range(ptr, len, 1, "string"));
    COVENANT_RETURN_IF_ERROR(budget(len, "string"));
    std::string_view bytes(reinterpret_cast<const char*>(cx.mem_.data()) + ptr, len);
    if (!is_valid_utf8(bytes)) return cx.fault(Trap::kInvalidUtf8, "string at " + hex32(ptr) + " of " + std::to_string(len) + " bytes is not valid UTF-8");
    return WitValue::string(std::string(bytes));
  }

  Result<WitValue> lift_list(TypeId elem, uint32_t ptr, uint32_t len) {
    const Layout& el = layout(elem);
    uint64_t bytes = static_cast<uint64_t>(len) * el.size;  // len < 2^32, size <= 2^32 + 1: no overflow
    if (bytes >= kTypeSizeMax)
      return cx.fault(Trap::kLengthTooLarge, "list of " + std::to_string(len) + " elements of " + std::to_string(el.size) + " bytes does not fit wasm32");
    COVENANT_RETURN_IF_ERROR(check_range(ptr, bytes, el.align, "list"));
    COVENANT_RETURN_IF_ERROR(budget(static_cast<uint64_t>(len) * sizeof(WitValue), "list"));
    std::vector<WitValue> items;
    items.reserve(len);
    for (uint32_t i = 0; i < len; ++i) {
      Result<WitValue> e = load(elem, static_cast<uint32_t>(ptr + i * el.size));
      if (!e) return e.status();
      items.push_back(std::move(*e));
    }
    return WitValue::list(std::move(items));
  }

  Result<WitValue> lift_char(uint32_t cp) {
    if (!is_valid_char(cp)) return cx.fault(Trap::kInvalidChar, "char " + hex32(cp) + " is not a Unicode scalar value");
    return WitValue::character(cp);
  }

  Status bad_case(TypeId id, uint32_t c, size_t n) {
    return cx.fault(Trap::kInvalidDiscriminant, "case " + std::to_string(c) + " of " + tname(id) + " is out of range (" + std::to_string(n) + " cases)");
  }

  // REQUIRES: [ptr, ptr + size) is inside memory and aligned.
  Result<WitValue> load(TypeId id, uint32_t ptr) {
    const Type& t = pkg.types[id];
    const Layout& l = layout(id);
    switch (t.kind) {
      case TypeKind::kBool: return WitValue::boolean(get<uint8_t>(ptr) != 0);
      case TypeKind::kS8: return WitValue::s8(get<int8_t>(ptr));
      case TypeKind::kU8: return WitValue::u8(get<uint8_t>(ptr));
      case TypeKind::kS16: return WitValue::s16(get<int16_t>(ptr));
      case TypeKind::kU16: return WitValue::u16(get<uint16_t>(ptr));
      case TypeKind::kS32: return WitValue::s32(get<int32_t>(ptr));
      case TypeKind::kU32: return WitValue::u32(get<uint32_t>(ptr));
      case TypeKind::kS64: return WitValue::s64(get<int64_t>(ptr));
      case TypeKind::kU64: return WitValue::u64(get<uint64_t>(ptr));
      case TypeKind::kF32: return WitValue::f32(std::bit_cast<float>(canon_f32(get<uint32_t>(ptr))));
      case TypeKind::kF64: return WitValue::f64(std::bit_cast<double>(canon_f64(get<uint64_t>(ptr))));
      case TypeKind::kChar: return lift_char(get<uint32_t>(ptr));
      case TypeKind::kString: return lift_string(get<uint32_t>(ptr), get<uint32_t>(ptr + 4));
      case TypeKind::kList: return lift_list(t.elem, get<uint32_t>(ptr), get<uint32_t>(ptr + 4));
      case TypeKind::kRecord: case TypeKind::kTuple: {
        std::vector<WitValue> fields;
        fields.reserve(t.fields.size());
        for (size_t i = 0; i < t.fields.size(); ++i) {
          Result<WitValue> f = load(t.fields[i].type, ptr + l.field_offsets[i]);
          if (!f) return f.status();
          fields.push_back(std::move(*f));
        }
        return t.kind == TypeKind::kRecord ? WitValue::record(std::move(fields)) : WitValue::tuple(std::move(fields));
      }
      case TypeKind::kFlags: {
        uint32_t bits = l.size == 1 ? get<uint8_t>(ptr) : l.size == 2 ? get<uint16_t>(ptr) : get<uint32_t>(ptr);
        return WitValue::flags(flag_mask(t, bits));
      }
      case TypeKind::kVariant: case TypeKind::kEnum: case TypeKind::kOption: case TypeKind::kResult: {
        uint32_t c = l.discriminant_bytes == 1 ? get<uint8_t>(ptr) : l.discriminant_bytes == 2 ? get<uint16_t>(ptr) : get<uint32_t>(ptr);
        if (c >= l.cases.size()) return bad_case(id, c, l.cases.size());
        if (l.cases[c] == kNoType) return WitValue::make_case(t.kind, c);
        Result<WitValue> p = load(l.cases[c], ptr + l.payload_offset);
        if (!p) return p.status();
        return WitValue::make_case(t.kind, c, std::move(*p));
      }
    }
    return Status::internal("unknown type kind");
  }

  static uint32_t flag_mask(const Type& t, uint32_t bits) {
    size_t n = t.fields.size();
    return n >= 32 ? bits : bits & ((1u << n) - 1);  // bits beyond the labels are ignored (spec)
  }

  Result<CoreValue> next(std::span<const CoreValue> flat, size_t* pos, CoreType want) {
    if (*pos >= flat.size()) return Status::invalid("too few core values: expected a " + std::string(core_type_name(want)) + " at position " + std::to_string(*pos));
    const CoreValue& v = flat[(*pos)++];
    if (v.type != want)
      return Status::invalid("core value " + std::to_string(*pos - 1) + " is " + core_type_name(v.type) + ", expected " + core_type_name(want));
    return v;
  }

  Result<WitValue> lift_flat(TypeId id, std::span<const CoreValue> flat, size_t* pos) {
    const Type& t = pkg.types[id];
    const Layout& l = layout(id);
    if (l.flat_overflow) return Status::internal("lift_flat of a type wider than 16 core values");
    switch (t.kind) {
      case TypeKind::kRecord: case TypeKind::kTuple: {
        std::vector<WitValue> fields;
        fields.reserve(t.fields.size());
        for (const wit::Field& f : t.fields) {
          Result<WitValue> v = lift_flat(f.type, flat, pos);
          if (!v) return v.status();
          fields.push_back(std::move(*v));
        }
        return t.kind == TypeKind::kRecord ? WitValue::record(std::move(fields)) : WitValue::tuple(std::move(fields));
      }
      case TypeKind::kVariant: case TypeKind::kEnum: case TypeKind::kOption: case TypeKind::kResult: {
        Result<CoreValue> d = next(flat, pos, CoreType::kI32);
        if (!d) return d.status();
        uint32_t c = d->as_i32();
        if (c >= l.cases.size()) return bad_case(id, c, l.cases.size());
        size_t joined = l.flat.size() - 1;
        if (*pos + joined > flat.size()) return Status::invalid("too few core values for " + tname(id));
        for (size_t i = 0; i < joined; ++i)
          if (flat[*pos + i].type != l.flat[1 + i])
            return Status::invalid("core value " + std::to_string(*pos + i) + " is " + core_type_name(flat[*pos + i].type) + ", expected " + core_type_name(l.flat[1 + i]));
        if (l.cases[c] == kNoType) {
          *pos += joined;
          return WitValue::make_case(t.kind, c);
        }
        {
          // un-join: reinterpret each slot as the case's own core type
          const Layout& cl = layout(l.cases[c]);
          CoreValue buf[kMaxFlatParams];
          for (size_t i = 0; i < cl.flat.size(); ++i) {
            uint64_t bits = flat[*pos + i].bits;
            buf[i] = CoreValue{cl.flat[i], is_32bit(cl.flat[i]) ? (bits & 0xffffffffu) : bits};
          }
          size_t sub = 0;
          Result<WitValue> p = lift_flat(l.cases[c], std::span<const CoreValue>(buf, cl.flat.size()), &sub);
          if (!p) return p.status();
          *pos += joined;
          return WitValue::make_case(t.kind, c, std::move(*p));
        }
      }
      default: break;
    }
    // one or two core values
    Result<CoreValue> a = next(flat, pos, l.flat[0]);
    if (!a) return a.status();
    uint64_t b = a->bits;
    switch (t.kind) {
      case TypeKind::kBool: return WitValue::boolean(static_cast<uint32_t>(b) != 0);
      case TypeKind::kS8: return WitValue::s8(static_cast<int8_t>(b));
      case TypeKind::kU8: return WitValue::u8(static_cast<uint8_t>(b));
      case TypeKind::kS16: return WitValue::s16(static_cast<int16_t>(b));
      case TypeKind::kU16: return WitValue::u16(static_cast<uint16_t>(b));
      case TypeKind::kS32: return WitValue::s32(static_cast<int32_t>(b));
      case TypeKind::kU32: return WitValue::u32(static_cast<uint32_t>(b));
      case TypeKind::kS64: return WitValue::s64(static_cast<int64_t>(b));
      case TypeKind::kU64: return WitValue::u64(b);
      case TypeKind::kF32: return WitValue::f32(std::bit_cast<float>(canon_f32(static_cast<uint32_t>(b))));
      case TypeKind::kF64: return WitValue::f64(std::bit_cast<double>(canon_f64(b)));
      case TypeKind::kChar: return lift_char(static_cast<uint32_t>(b));
      case TypeKind::kFlags: return WitValue::flags(flag_mask(t, static_cast<uint32_t>(b)));
      case TypeKind::kString: case TypeKind::kList: {
        Result<CoreValue> n = next(flat, pos, CoreType::kI32);
        if (!n) return n.status();
        return t.kind == TypeKind::kString ? lift_string(static_cast<uint32_t>(b), n->as_i32())
                                           : lift_list(t.elem, static_cast<uint32_t>(b), n->as_i32());
      }
      default: break;
    }
    return Status::internal("unknown type kind");
  }

  // --- function level -----------------------------------------------------

  Status store_tuple(const std::vector<wit::Param>& ps, const TupleLayout& tl, std::span<const WitValue> vs, uint32_t ptr) {
    for (size_t i = 0; i < ps.size(); ++i) COVENANT_RETURN_IF_ERROR(store(ps[i].type, vs[i], ptr + tl.offsets[i]));
    return Status::ok();
  }

  Result<std::vector<WitValue>> load_tuple(const std::vector<wit::Param>& ps, const TupleLayout& tl, uint32_t ptr, const char* what) {
    COVENANT_RETURN_IF_ERROR(check_range(ptr, tl.size, tl.align, what));
    std::vector<WitValue> out;
    out.reserve(ps.size());
    for (size_t i = 0; i < ps.size(); ++i) {
      Result<WitValue> v = load(ps[i].type, ptr + tl.offsets[i]);
      if (!v) return v.status();
      out.push_back(std::move(*v));
    }
    return out;
  }

  Result<std::vector<WitValue>> lift_flat_all(const std::vector<wit::Param>& ps, std::span<const CoreValue> flat) {
    std::vector<WitValue> out;
    out.reserve(ps.size());
    size_t pos = 0;
    for (const wit::Param& p : ps) {
      Result<WitValue> v = lift_flat(p.type, flat, &pos);
      if (!v) return v.status();
      out.push_back(std::move(*v));
    }
    if (pos != flat.size()) return Status::invalid("expected " + std::to_string(pos) + " core values, got " + std::to_string(flat.size()));
    return out;
  }

  Result<uint32_t> single_pointer(std::span<const CoreValue> flat, const char* what) {
    if (flat.size() != 1 || flat[0].type != CoreType::kI32)
      return Status::invalid(std::string("expected one i32 (") + what + " pointer), got " + std::to_string(flat.size()) + " core values");
    return flat[0].as_i32();
  }
};

Status CallContext::lower_params(const wit::Function& fn, std::span<const WitValue> args, std::vector<CoreValue>* flat) {
  CallContextImpl im{*this, abi_.package()};
  if (args.size() != fn.params.size())
    return Status::invalid(fn.name.written + " takes " + std::to_string(fn.params.size()) + " arguments, got " + std::to_string(args.size()));
  flat->clear();
  size_t flat_count = 0;
  for (const wit::Param& p : fn.params) flat_count += abi_.layout(p.type).flat_count();
  if (flat_count <= kMaxFlatParams) {
    for (size_t i = 0; i < args.size(); ++i) COVENANT_RETURN_IF_ERROR(im.lower_flat(fn.params[i].type, args[i], flat));
    return Status::ok();
  }
  TupleLayout tl = tuple_layout(abi_, fn.params);
  Result<uint32_t> p = im.alloc(tl.align, tl.size, "parameters");
  if (!p) return p.status();
  COVENANT_RETURN_IF_ERROR(im.store_tuple(fn.params, tl, args, *p));
  flat->push_back(CoreValue::i32(*p));
  return Status::ok();
}

Result<std::vector<WitValue>> CallContext::lift_results(const wit::Function& fn, std::span<const CoreValue> flat) {
  CallContextImpl im{*this, abi_.package()};
  TupleLayout tl = tuple_layout(abi_, fn.results);
  if (tl.flat_count <= kMaxFlatResults) return im.lift_flat_all(fn.results, flat);
  Result<uint32_t> p = im.single_pointer(flat, "results");
  if (!p) return p.status();
  return im.load_tuple(fn.results, tl, *p, "results");
}

Result<std::vector<WitValue>> CallContext::lift_params(const wit::Function& fn, std::span<const CoreValue> flat) {
  CallContextImpl im{*this, abi_.package()};
  TupleLayout pl = tuple_layout(abi_, fn.params);
  TupleLayout rl = tuple_layout(abi_, fn.results);
  if (rl.flat_count > kMaxFlatResults) {  // drop the return-area pointer
    if (flat.empty()) return Status::invalid("missing return-area pointer");
    flat = flat.first(flat.size() - 1);
  }
  if (pl.flat_count <= kMaxFlatParams) return im.lift_flat_all(fn.params, flat);
  Result<uint32_t> p = im.single_pointer(flat, "parameters");
  if (!p) return p.status();
  return im.load_tuple(fn.params, pl, *p, "parameters");
}

Status CallContext::lower_results(const wit::Function& fn, std::span<const WitValue> results,
                                  std::span<const CoreValue> flat_params, std::vector<CoreValue>* flat_results) {
  CallContextImpl im{*this, abi_.package()};
  if (results.size() != fn.results.size())
    return Status::invalid(fn.name.written + " returns " + std::to_string(fn.results.size()) + " results, got " + std::to_string(results.size()));
  flat_results->clear();
  TupleLayout rl = tuple_layout(abi_, fn.results);
  if (rl.flat_count <= kMaxFlatResults) {
    for (size_t i = 0; i < results.size(); ++i) COVENANT_RETURN_IF_ERROR(im.lower_flat(fn.results[i].type, results[i], flat_results));
    return Status::ok();
  }
  if (flat_params.empty() || flat_params.back().type != CoreType::kI32) return Status::invalid("missing return-area pointer");
  uint32_t retptr = flat_params.back().as_i32();
  COVENANT_RETURN_IF_ERROR(im.check_range(retptr, rl.size, rl.align, "return area"));
  return im.store_tuple(fn.results, rl, results, retptr);
}

Status CallContext::lower_flat(TypeId t, const WitValue& v, std::vector<CoreValue>* out) {
  return CallContextImpl{*this, abi_.package()}.lower_flat(t, v, out);
}

Result<WitValue> CallContext::lift_flat(TypeId t, std::span<const CoreValue> flat, size_t* pos) {
  return CallContextImpl{*this, abi_.package()}.lift_flat(t, flat, pos);
}

Status CallContext::store(TypeId t, const WitValue& v, uint32_t ptr) {
  CallContextImpl im{*this, abi_.package()};
  const Layout& l = abi_.layout(t);
  COVENANT_RETURN_IF_ERROR(im.check_range(ptr, l.size, l.align, "store"));
  return im.store(t, v, ptr);
}

Result<WitValue> CallContext::load(TypeId t, uint32_t ptr) {
  CallContextImpl im{*this, abi_.package()};
  const Layout& l = abi_.layout(t);
  COVENANT_RETURN_IF_ERROR(im.check_range(ptr, l.size, l.align, "load"));
  return im.load(t, ptr);
}

// ---------------------------------------------------------------------------
// Names

std::string version_compat_track(std::string_view v) {
  std::string_view core = v.substr(0, v.find('+'));
  if (core.find('-') != std::string_view::npos) return std::string(core);
  size_t d1 = core.find('.');
  size_t d2 = d1 == std::string_view::npos ? d1 : core.find('.', d1 + 1);
  if (d2 == std::string_view::npos) return std::string(core);
  std::string_view major = core.substr(0, d1), minor = core.substr(d1 + 1, d2 - d1 - 1);
  if (major != "0") return std::string(major);
  if (minor != "0") return std::string(core.substr(0, d2));
  return std::string(core);
}

std::string interface_core_name(const wit::Package& pkg, const wit::WorldItem& item, Mangling mangling) {
  if (item.inline_interface) return item.name;
  std::string name = item.interface_index < 0 ? item.name
                                              : pkg.qualified_interface(pkg.interfaces[static_cast<size_t>(item.interface_index)]);
  if (mangling == Mangling::kStandard32) {
    size_t at = name.find('@');
    if (at != std::string::npos) name = name.substr(0, at + 1) + version_compat_track(std::string_view(name).substr(at + 1));
  }
  return name;
}

std::string export_name(std::string_view iface, const wit::Function& fn, Mangling mangling) {
  if (mangling == Mangling::kStandard32) return "cm32p2|" + std::string(iface) + "|" + fn.name.kebab;
  if (iface.empty()) return fn.name.kebab;
  return std::string(iface) + "#" + fn.name.kebab;
}

std::string post_return_name(std::string_view iface, const wit::Function& fn, Mangling mangling) {
  if (mangling == Mangling::kStandard32) return export_name(iface, fn, mangling) + "_post";
  return kPostReturnPrefix + export_name(iface, fn, mangling);
}

ImportName import_name(std::string_view iface, const wit::Function& fn, Mangling mangling) {
  if (mangling == Mangling::kStandard32)
    return ImportName{iface.empty() ? std::string("cm32p2") : "cm32p2|" + std::string(iface), fn.name.kebab};
  return ImportName{iface.empty() ? std::string(kRootImportModule) : std::string(iface), fn.name.kebab};
}

const char* realloc_export_name(Mangling mangling) {
  return mangling == Mangling::kStandard32 ? "cm32p2_realloc" : kReallocExport;
}

const char* memory_export_name(Mangling mangling) {
  return mangling == Mangling::kStandard32 ? "cm32p2_memory" : "memory";
}

}  // namespace covenant::abi
