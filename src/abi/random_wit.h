// Random WIT packages and random values, shared by the property tests and
// the spec differential tool (abi_spec_dump). Internal: not API.
// Thread-safety: one generator per thread. Deterministic for a given seed.
#pragma once

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "covenant/abi.h"

namespace covenant::abi::testgen {

using wit::TypeId;
using wit::TypeKind;

class WitGen {
 public:
  explicit WitGen(uint64_t seed) : rng_(seed) {}

  std::string package() {
    std::string s = "package prop:gen@0.0.1;\ninterface t {\n";
    int decls = 2 + pick(6);
    for (int d = 0; d < decls; ++d) s += decl(d);
    int funcs = 1 + pick(3);
    for (int f = 0; f < funcs; ++f) {
      s += "  f" + std::to_string(f) + ": func(";
      int params = pick(4) == 0 ? 17 + pick(3) : pick(5);  // sometimes past MAX_FLAT_PARAMS
      for (int p = 0; p < params; ++p) s += (p ? ", " : "") + std::string("p") + std::to_string(p) + ": " + type(2);
      s += ")";
      int r = pick(4);
      if (r == 1) s += " -> " + type(2);
      if (r == 2) s += " -> (x: " + type(1) + ", y: " + type(1) + ")";
      if (r == 3) s += " -> " + type(0);
      s += ";\n";
    }
    return s + "}\n";
  }

 private:
  int pick(int n) { return static_cast<int>(rng_() % static_cast<uint64_t>(n)); }

  std::string decl(int d) {
    std::string name = "n" + std::to_string(d);
    std::string s;
    switch (pick(5)) {
      case 0: {
        s = "  record " + name + " { ";
        int n = 1 + pick(5);
        for (int i = 0; i < n; ++i) s += "f" + std::to_string(i) + ": " + type(2) + ", ";
        s += "}\n";
        break;
      }
      case 1: {
        s = "  variant " + name + " { ";
        int n = 1 + pick(5);
        for (int i = 0; i < n; ++i) s += "c" + std::to_string(i) + (pick(3) ? "(" + type(2) + ")" : "") + ", ";
        s += "}\n";
        break;
      }
      case 2: {
        s = "  enum " + name + " { ";
        int n = 1 + (pick(8) == 0 ? 300 : pick(6));  // sometimes a 2-byte discriminant
        for (int i = 0; i < n; ++i) s += "e" + std::to_string(i) + ", ";
        s += "}\n";
        break;
      }
      case 3: {
        s = "  flags " + name + " { ";
        int n = 1 + pick(32);
        for (int i = 0; i < n; ++i) s += "g" + std::to_string(i) + ", ";
        s += "}\n";
        break;
      }
      default: s = "  type " + name + " = " + type(2) + ";\n"; break;
    }
    named_.push_back(name);
    return s;
  }

  std::string type(int depth) {
    static const char* prims[] = {"bool", "s8", "u8", "s16", "u16", "s32", "u32", "s64", "u64",
                                  "f32", "f64", "char", "string"};
    int k = depth <= 0 ? 0 : pick(10);
    switch (k) {
      case 1: return "list<" + type(depth - 1) + ">";
      case 2: return "option<" + type(depth - 1) + ">";
      case 3: {
        switch (pick(4)) {
          case 0: return "result";
          case 1: return "result<" + type(depth - 1) + ">";
          case 2: return "result<_, " + type(depth - 1) + ">";
          default: return "result<" + type(depth - 1) + ", " + type(depth - 1) + ">";
        }
      }
      case 4: {
        std::string s = "tuple<";
        int n = 1 + pick(4);
        for (int i = 0; i < n; ++i) s += (i ? ", " : "") + type(depth - 1);
        return s + ">";
      }
      case 5:
      case 6:
        if (!named_.empty()) return named_[static_cast<size_t>(pick(static_cast<int>(named_.size())))];
        [[fallthrough]];
      default: return prims[pick(13)];
    }
  }

  std::mt19937_64 rng_;
  std::vector<std::string> named_;
};

class ValueGen {
 public:
  ValueGen(const wit::Package& pkg, uint64_t seed) : pkg_(pkg), rng_(seed) {}

  WitValue value(TypeId id, int depth = 0) {
    const wit::Type& t = pkg_.type(id);
    switch (t.kind) {
      case TypeKind::kBool: return WitValue::boolean(rng_() & 1);
      case TypeKind::kS8: return WitValue::s8(static_cast<int8_t>(edge()));
      case TypeKind::kU8: return WitValue::u8(static_cast<uint8_t>(edge()));
      case TypeKind::kS16: return WitValue::s16(static_cast<int16_t>(edge()));
      case TypeKind::kU16: return WitValue::u16(static_cast<uint16_t>(edge()));
      case TypeKind::kS32: return WitValue::s32(static_cast<int32_t>(edge()));
      case TypeKind::kU32: return WitValue::u32(static_cast<uint32_t>(edge()));
      case TypeKind::kS64: return WitValue::s64(static_cast<int64_t>(edge()));
      case TypeKind::kU64: return WitValue::u64(edge());
      case TypeKind::kF32: {
        uint32_t b = static_cast<uint32_t>(rng_());
        float f = std::bit_cast<float>(b);
        return WitValue::f32(std::isnan(f) ? std::bit_cast<float>(kCanonicalF32Nan) : f);
      }
      case TypeKind::kF64: {
        double d = std::bit_cast<double>(static_cast<uint64_t>(rng_()));
        return WitValue::f64(std::isnan(d) ? std::bit_cast<double>(kCanonicalF64Nan) : d);
      }
      case TypeKind::kChar: return WitValue::character(code_point());
      case TypeKind::kString: return WitValue::string(str());
      case TypeKind::kList: {
        std::vector<WitValue> items;
        size_t n = depth > 3 ? 0 : rng_() % 5;
        for (size_t i = 0; i < n; ++i) items.push_back(value(t.elem, depth + 1));
        return WitValue::list(std::move(items));
      }
      case TypeKind::kRecord: case TypeKind::kTuple: {
        std::vector<WitValue> items;
        for (const wit::Field& f : t.fields) items.push_back(value(f.type, depth + 1));
        return t.kind == TypeKind::kRecord ? WitValue::record(std::move(items)) : WitValue::tuple(std::move(items));
      }
      case TypeKind::kVariant: {
        uint32_t c = static_cast<uint32_t>(rng_() % t.fields.size());
        if (t.fields[c].type == wit::kNoType) return WitValue::variant(c);
        return WitValue::variant(c, value(t.fields[c].type, depth + 1));
      }
      case TypeKind::kEnum: return WitValue::enumeration(static_cast<uint32_t>(rng_() % t.fields.size()));
      case TypeKind::kFlags: {
        size_t n = t.fields.size();
        uint32_t mask = n >= 32 ? ~0u : (1u << n) - 1;
        return WitValue::flags(static_cast<uint32_t>(rng_()) & mask);
      }
      case TypeKind::kOption: return (rng_() & 1) ? WitValue::some(value(t.elem, depth + 1)) : WitValue::none();
      case TypeKind::kResult: {
        bool ok = rng_() & 1;
        TypeId p = ok ? t.ok : t.err;
        if (p == wit::kNoType) return WitValue::make_case(TypeKind::kResult, ok ? 0 : 1);
        return WitValue::make_case(TypeKind::kResult, ok ? 0 : 1, value(p, depth + 1));
      }
    }
    return WitValue::boolean(false);
  }

 private:
  uint64_t edge() {
    static const uint64_t e[] = {0, 1, ~0ull, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0x7fffffff, 0x80000000ull, 0x7fffffffffffffffull};
    return (rng_() & 3) == 0 ? e[rng_() % std::size(e)] : rng_();
  }
  uint32_t code_point() {
    for (;;) {
      uint32_t ranges[] = {0x80, 0x800, 0x10000, 0x110000};
      uint32_t cp = static_cast<uint32_t>(rng_() % ranges[rng_() % 4]);
      if (is_valid_char(cp)) return cp;
    }
  }
  std::string str() {
    std::string s;
    size_t n = rng_() % 12;
    for (size_t i = 0; i < n; ++i) {
      uint32_t cp = code_point();
      if (cp < 0x80) {
        s += static_cast<char>(cp);
      } else if (cp < 0x800) {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
      } else if (cp < 0x10000) {
        s += static_cast<char>(0xE0 | (cp >> 12));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (cp & 0x3F));
      } else {
        s += static_cast<char>(0xF0 | (cp >> 18));
        s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (cp & 0x3F));
      }
    }
    return s;
  }

  const wit::Package& pkg_;
  std::mt19937_64 rng_;
};

}  // namespace covenant::abi::testgen
