// WIT value <-> JSON mapping (docs/abi.md, "Values as JSON").
#include "covenant/wit_json.h"

#include <charconv>
#include <cmath>
#include <limits>

namespace covenant::abi {

using nlohmann::json;
using wit::kNoType;
using wit::Type;
using wit::TypeId;
using wit::TypeKind;

namespace {

std::string show(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

bool name_matches(const wit::Name& n, std::string_view key) {
  if (key == n.written || key == n.kebab) return true;
  return key.find('_') != std::string_view::npos && wit::to_kebab(key) == n.kebab;
}

// Decodes exactly one UTF-8 code point filling the whole string.
bool single_code_point(const std::string& s, uint32_t* cp) {
  if (s.empty() || !is_valid_utf8(s)) return false;
  auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t len = p[0] < 0x80 ? 1 : p[0] < 0xE0 ? 2 : p[0] < 0xF0 ? 3 : 4;
  if (s.size() != len) return false;
  if (len == 1) *cp = p[0];
  else if (len == 2) *cp = (p[0] & 0x1Fu) << 6 | (p[1] & 0x3Fu);
  else if (len == 3) *cp = (p[0] & 0x0Fu) << 12 | (p[1] & 0x3Fu) << 6 | (p[2] & 0x3Fu);
  else *cp = (p[0] & 0x07u) << 18 | (p[1] & 0x3Fu) << 12 | (p[2] & 0x3Fu) << 6 | (p[3] & 0x3Fu);
  return true;
}

std::string encode_utf8(uint32_t cp) {
  std::string s;
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
  return s;
}

bool is_option(const wit::Package& pkg, TypeId t) { return t != kNoType && pkg.types[t].kind == TypeKind::kOption; }

class FromJson {
 public:
  explicit FromJson(const wit::Package& pkg) : pkg_(pkg) {}

  Result<WitValue> run(TypeId id, const json& j, const std::string& path, int depth = 0) {
    if (depth > 64) return err(path, "nesting too deep", j);
    const Type& t = pkg_.types[id];
    std::string tn = pkg_.type_to_string(id);
    switch (t.kind) {
      case TypeKind::kBool:
        if (!j.is_boolean()) return err(path, "bool", j);
        return WitValue::boolean(j.get<bool>());
      case TypeKind::kS8: case TypeKind::kS16: case TypeKind::kS32: case TypeKind::kS64: {
        int bits = t.kind == TypeKind::kS8 ? 8 : t.kind == TypeKind::kS16 ? 16 : t.kind == TypeKind::kS32 ? 32 : 64;
        int64_t v = 0;
        if (!signed_from(j, bits, &v)) return err(path, wit::type_kind_name(t.kind), j);
        if (bits == 8) return WitValue::s8(static_cast<int8_t>(v));
        if (bits == 16) return WitValue::s16(static_cast<int16_t>(v));
        if (bits == 32) return WitValue::s32(static_cast<int32_t>(v));
        return WitValue::s64(v);
      }
      case TypeKind::kU8: case TypeKind::kU16: case TypeKind::kU32: case TypeKind::kU64: {
        int bits = t.kind == TypeKind::kU8 ? 8 : t.kind == TypeKind::kU16 ? 16 : t.kind == TypeKind::kU32 ? 32 : 64;
        uint64_t v = 0;
        if (!unsigned_from(j, bits, &v)) {
          // A non-negative number too large (JSON past 2^64 arrives as a double): say so.
          const uint64_t max = bits == 64 ? UINT64_MAX : (uint64_t{1} << bits) - 1;
          const bool too_big = (j.is_number_unsigned() && j.get<uint64_t>() > max) ||
                               (j.is_number_integer() && !j.is_number_unsigned() && j.get<int64_t>() >= 0 &&
                                static_cast<uint64_t>(j.get<int64_t>()) > max) ||
                               (j.is_number_float() && j.get<double>() >= static_cast<double>(max) + 1.0);
          if (too_big)
            return Status::invalid(path + ": " + show(j) + " is out of range for " + wit::type_kind_name(t.kind) +
                                   " (max " + std::to_string(max) + ")");
          return err(path, wit::type_kind_name(t.kind), j);
        }
        if (bits == 8) return WitValue::u8(static_cast<uint8_t>(v));
        if (bits == 16) return WitValue::u16(static_cast<uint16_t>(v));
        if (bits == 32) return WitValue::u32(static_cast<uint32_t>(v));
        return WitValue::u64(v);
      }
      case TypeKind::kF32: case TypeKind::kF64: {
        double d = 0;
        if (j.is_number()) {
          d = j.get<double>();
        } else if (j.is_string() && j.get_ref<const std::string&>() == "NaN") {
          d = std::numeric_limits<double>::quiet_NaN();
        } else if (j.is_string() && j.get_ref<const std::string&>() == "Infinity") {
          d = std::numeric_limits<double>::infinity();
        } else if (j.is_string() && j.get_ref<const std::string&>() == "-Infinity") {
          d = -std::numeric_limits<double>::infinity();
        } else {
          return err(path, wit::type_kind_name(t.kind), j);
        }
        if (t.kind == TypeKind::kF64) return WitValue::f64(d);
        if (std::isfinite(d) && std::fabs(d) > static_cast<double>(std::numeric_limits<float>::max()))
          return err(path, "f32 (out of range)", j);
        return WitValue::f32(static_cast<float>(d));
      }
      case TypeKind::kChar: {
        uint32_t cp = 0;
        if (!j.is_string() || !single_code_point(j.get_ref<const std::string&>(), &cp)) return err(path, "char (one code point)", j);
        return WitValue::character(cp);
      }
      case TypeKind::kString:
        if (!j.is_string()) return err(path, "string", j);
        if (!is_valid_utf8(j.get_ref<const std::string&>())) return err(path, "UTF-8 string", j);
        return WitValue::string(j.get<std::string>());
      case TypeKind::kList: {
        if (!j.is_array()) return err(path, "array (" + tn + ")", j);
        std::vector<WitValue> items;
        items.reserve(j.size());
        for (size_t i = 0; i < j.size(); ++i) {
          Result<WitValue> v = run(t.elem, j[i], path + "[" + std::to_string(i) + "]", depth + 1);
          if (!v) return v.status();
          items.push_back(std::move(*v));
        }
        return WitValue::list(std::move(items));
      }
      case TypeKind::kTuple: {
        if (!j.is_array() || j.size() != t.fields.size())
          return err(path, "array of " + std::to_string(t.fields.size()) + " (" + tn + ")", j);
        std::vector<WitValue> items;
        for (size_t i = 0; i < j.size(); ++i) {
          Result<WitValue> v = run(t.fields[i].type, j[i], path + "[" + std::to_string(i) + "]", depth + 1);
          if (!v) return v.status();
          items.push_back(std::move(*v));
        }
        return WitValue::tuple(std::move(items));
      }
      case TypeKind::kRecord: {
        if (!j.is_object()) return err(path, "object (record " + tn + ")", j);
        std::vector<const json*> given(t.fields.size(), nullptr);
        for (auto it = j.begin(); it != j.end(); ++it) {
          size_t f = 0;
          while (f < t.fields.size() && !name_matches(t.fields[f].name, it.key())) ++f;
          if (f == t.fields.size()) return Status::invalid(path + ": unknown field \"" + it.key() + "\" in record " + tn + field_list(t));
          if (given[f] != nullptr) return Status::invalid(path + ": field " + t.fields[f].name.written + " given twice");
          given[f] = &it.value();
        }
        std::vector<WitValue> fields;
        fields.reserve(t.fields.size());
        for (size_t f = 0; f < t.fields.size(); ++f) {
          std::string fp = path + "." + t.fields[f].name.written;
          if (given[f] == nullptr) {
            if (is_option(pkg_, t.fields[f].type)) {
              fields.push_back(WitValue::none());
              continue;
            }
            return Status::invalid(fp + ": missing field (expected " + pkg_.type_to_string(t.fields[f].type) + ")");
          }
          Result<WitValue> v = run(t.fields[f].type, *given[f], fp, depth + 1);
          if (!v) return v.status();
          fields.push_back(std::move(*v));
        }
        return WitValue::record(std::move(fields));
      }
      case TypeKind::kEnum: {
        if (!j.is_string()) return err(path, "string (enum " + tn + ")", j);
        for (size_t c = 0; c < t.fields.size(); ++c)
          if (name_matches(t.fields[c].name, j.get_ref<const std::string&>())) return WitValue::enumeration(static_cast<uint32_t>(c));
        return err(path, "one of" + field_list(t), j);
      }
      case TypeKind::kFlags: {
        if (!j.is_array()) return err(path, "array of flag names (flags " + tn + ")", j);
        uint32_t bits = 0;
        for (size_t i = 0; i < j.size(); ++i) {
          size_t f = 0;
          if (j[i].is_string())
            while (f < t.fields.size() && !name_matches(t.fields[f].name, j[i].get_ref<const std::string&>())) ++f;
          if (!j[i].is_string() || f == t.fields.size())
            return err(path + "[" + std::to_string(i) + "]", "a flag of" + field_list(t), j[i]);
          if (bits & (1u << f)) return Status::invalid(path + ": flag " + t.fields[f].name.written + " given twice");
          bits |= 1u << f;
        }
        return WitValue::flags(bits);
      }
      case TypeKind::kVariant: {
        std::string key;
        const json* payload = nullptr;
        if (j.is_string()) {
          key = j.get<std::string>();
        } else if (j.is_object() && j.size() == 1) {
          key = j.begin().key();
          payload = &j.begin().value();
        } else {
          return err(path, "{\"case\": payload} (variant " + tn + ")", j);
        }
        size_t c = 0;
        while (c < t.fields.size() && !name_matches(t.fields[c].name, key)) ++c;
        if (c == t.fields.size()) return Status::invalid(path + ": unknown case \"" + key + "\" of variant " + tn + field_list(t));
        std::string cp = path + "." + t.fields[c].name.written;
        if (t.fields[c].type == kNoType) {
          if (payload != nullptr && !payload->is_null()) return err(cp, "null (case without payload)", *payload);
          return WitValue::variant(static_cast<uint32_t>(c));
        }
        if (payload == nullptr) return Status::invalid(cp + ": missing payload (expected " + pkg_.type_to_string(t.fields[c].type) + ")");
        Result<WitValue> v = run(t.fields[c].type, *payload, cp, depth + 1);
        if (!v) return v.status();
        return WitValue::variant(static_cast<uint32_t>(c), std::move(*v));
      }
      case TypeKind::kOption: {
        if (j.is_null()) return WitValue::none();
        if (is_option(pkg_, t.elem)) {
          if (!j.is_object() || j.size() != 1 || !j.contains("some"))
            return err(path, "null or {\"some\": ...} (nested " + tn + ")", j);
          Result<WitValue> v = run(t.elem, j["some"], path, depth + 1);
          if (!v) return v.status();
          return WitValue::some(std::move(*v));
        }
        Result<WitValue> v = run(t.elem, j, path, depth + 1);
        if (!v) return v.status();
        return WitValue::some(std::move(*v));
      }
      case TypeKind::kResult: {
        if (!j.is_object() || j.size() != 1) return err(path, "{\"ok\": ...} or {\"err\": ...} (" + tn + ")", j);
        const std::string& key = j.begin().key();
        bool is_ok = key == "ok";
        if (!is_ok && key != "err" && key != "error") return err(path, "{\"ok\": ...} or {\"err\": ...} (" + tn + ")", j);
        TypeId pt = is_ok ? t.ok : t.err;
        const json& p = j.begin().value();
        std::string cp = path + "." + (is_ok ? "ok" : "err");
        if (pt == kNoType) {
          if (!p.is_null()) return err(cp, "null (no payload)", p);
          return WitValue::make_case(TypeKind::kResult, is_ok ? 0 : 1);
        }
        Result<WitValue> v = run(pt, p, cp, depth + 1);
        if (!v) return v.status();
        return WitValue::make_case(TypeKind::kResult, is_ok ? 0 : 1, std::move(*v));
      }
    }
    return Status::internal("unknown type kind");
  }

 private:
  static Status err(const std::string& path, const std::string& expected, const json& got) {
    return Status::invalid(path + ": expected " + expected + ", got " + show(got));
  }
  static std::string field_list(const Type& t) {
    std::string s = " (";
    for (size_t i = 0; i < t.fields.size() && i < 12; ++i) s += (i ? ", " : "") + t.fields[i].name.written;
    if (t.fields.size() > 12) s += ", ...";
    return s + ")";
  }
  static bool parse_decimal(const std::string& s, bool allow_minus, int64_t* sv, uint64_t* uv) {
    if (s.empty() || s.size() > 21) return false;
    const char* b = s.data();
    const char* e = b + s.size();
    if (*b == '-' && !allow_minus) return false;
    if (*b == '+') return false;
    std::from_chars_result r = allow_minus ? std::from_chars(b, e, *sv) : std::from_chars(b, e, *uv);
    return r.ec == std::errc() && r.ptr == e;
  }
  static bool signed_from(const json& j, int bits, int64_t* out) {
    int64_t v = 0;
    if (j.is_number_unsigned()) {
      uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
      v = static_cast<int64_t>(u);
    } else if (j.is_number_integer()) {
      v = j.get<int64_t>();
    } else if (bits == 64 && j.is_string()) {
      uint64_t unused = 0;
      if (!parse_decimal(j.get_ref<const std::string&>(), true, &v, &unused)) return false;
    } else {
      return false;
    }
    if (bits < 64 && (v < -(int64_t{1} << (bits - 1)) || v >= (int64_t{1} << (bits - 1)))) return false;
    *out = v;
    return true;
  }
  static bool unsigned_from(const json& j, int bits, uint64_t* out) {
    uint64_t v = 0;
    if (j.is_number_unsigned()) {
      v = j.get<uint64_t>();
    } else if (j.is_number_integer()) {  // signed storage: json(41) built in C++, or a negative number
      const int64_t sv = j.get<int64_t>();
      if (sv < 0) return false;
      v = static_cast<uint64_t>(sv);
    } else if (bits == 64 && j.is_string()) {
      int64_t unused = 0;
      if (!parse_decimal(j.get_ref<const std::string&>(), false, &unused, &v)) return false;
    } else {
      return false;
    }
    if (bits < 64 && v >= (uint64_t{1} << bits)) return false;
    *out = v;
    return true;
  }

  const wit::Package& pkg_;
};

class ToJson {
 public:
  explicit ToJson(const wit::Package& pkg) : pkg_(pkg) {}

  Result<json> run(TypeId id, const WitValue& v) {
    const Type& t = pkg_.types[id];
    if (v.kind() != t.kind) return mismatch(id, v);
    switch (t.kind) {
      case TypeKind::kBool: return json(v.as_bool());
      case TypeKind::kS8: case TypeKind::kS16: case TypeKind::kS32: return json(v.as_signed());
      case TypeKind::kU8: case TypeKind::kU16: case TypeKind::kU32: return json(v.as_unsigned());
      case TypeKind::kS64: return json(std::to_string(v.as_signed()));
      case TypeKind::kU64: return json(std::to_string(v.as_unsigned()));
      case TypeKind::kF32: case TypeKind::kF64: {
        double d = t.kind == TypeKind::kF32 ? static_cast<double>(v.as_f32()) : v.as_f64();
        if (std::isnan(d)) return json("NaN");
        if (std::isinf(d)) return json(d > 0 ? "Infinity" : "-Infinity");
        return json(d);
      }
      case TypeKind::kChar:
        if (!is_valid_char(v.as_char())) return mismatch(id, v);
        return json(encode_utf8(v.as_char()));
      case TypeKind::kString: return json(v.as_string());
      case TypeKind::kList: {
        json a = json::array();
        for (const WitValue& e : v.items()) {
          Result<json> r = run(t.elem, e);
          if (!r) return r.status();
          a.push_back(std::move(*r));
        }
        return a;
      }
      case TypeKind::kTuple: case TypeKind::kRecord: {
        if (v.items().size() != t.fields.size()) return mismatch(id, v);
        json out = t.kind == TypeKind::kTuple ? json::array() : json::object();
        for (size_t i = 0; i < t.fields.size(); ++i) {
          Result<json> r = run(t.fields[i].type, v.items()[i]);
          if (!r) return r.status();
          if (t.kind == TypeKind::kTuple) out.push_back(std::move(*r));
          else out[t.fields[i].name.written] = std::move(*r);
        }
        return out;
      }
      case TypeKind::kEnum:
        if (v.case_index() >= t.fields.size()) return mismatch(id, v);
        return json(t.fields[v.case_index()].name.written);
      case TypeKind::kFlags: {
        json a = json::array();
        for (size_t f = 0; f < t.fields.size(); ++f)
          if (v.flag_bits() & (1u << f)) a.push_back(t.fields[f].name.written);
        if (t.fields.size() < 32 && (v.flag_bits() >> t.fields.size()) != 0) return mismatch(id, v);
        return a;
      }
      case TypeKind::kVariant: {
        if (v.case_index() >= t.fields.size()) return mismatch(id, v);
        const wit::Field& c = t.fields[v.case_index()];
        if ((c.type != kNoType) != (v.payload() != nullptr)) return mismatch(id, v);
        json o = json::object();
        if (c.type == kNoType) {
          o[c.name.written] = nullptr;
        } else {
          Result<json> r = run(c.type, *v.payload());
          if (!r) return r.status();
          o[c.name.written] = std::move(*r);
        }
        return o;
      }
      case TypeKind::kOption: {
        if (v.case_index() > 1 || (v.case_index() == 1) != (v.payload() != nullptr)) return mismatch(id, v);
        if (v.case_index() == 0) return json(nullptr);
        Result<json> r = run(t.elem, *v.payload());
        if (!r) return r.status();
        if (is_option(pkg_, t.elem)) return json{{"some", std::move(*r)}};
        return r;
      }
      case TypeKind::kResult: {
        if (v.case_index() > 1) return mismatch(id, v);
        TypeId pt = v.case_index() == 0 ? t.ok : t.err;
        if ((pt != kNoType) != (v.payload() != nullptr)) return mismatch(id, v);
        json p = nullptr;
        if (pt != kNoType) {
          Result<json> r = run(pt, *v.payload());
          if (!r) return r.status();
          p = std::move(*r);
        }
        return json{{v.case_index() == 0 ? "ok" : "err", std::move(p)}};
      }
    }
    return Status::internal("unknown type kind");
  }

 private:
  Status mismatch(TypeId id, const WitValue& v) {
    return Status::invalid("value " + v.debug_string().substr(0, 80) + " does not match WIT type " + pkg_.type_to_string(id));
  }
  const wit::Package& pkg_;
};

}  // namespace

Result<WitValue> value_from_json(const wit::Package& pkg, TypeId t, const json& j, std::string_view path) {
  if (t >= pkg.types.size()) return Status::invalid("bad type id");
  std::string root(path);
  if (root.empty()) root = pkg.types[t].name.written.empty() ? "value" : pkg.types[t].name.written;
  return FromJson(pkg).run(t, j, root);
}

Result<json> value_to_json(const wit::Package& pkg, TypeId t, const WitValue& v) {
  if (t >= pkg.types.size()) return Status::invalid("bad type id");
  return ToJson(pkg).run(t, v);
}

Result<std::vector<WitValue>> args_from_json(const wit::Package& pkg, const wit::Function& fn, const json& j) {
  std::vector<WitValue> out;
  if (j.is_object() && !(fn.params.size() == 1 && !j.contains(fn.params[0].name.written) && !j.contains(fn.params[0].name.kebab))) {
    for (const wit::Param& p : fn.params) {
      const json* a = nullptr;
      for (auto it = j.begin(); it != j.end(); ++it)
        if (name_matches(p.name, it.key())) a = &it.value();
      if (a == nullptr) return Status::invalid(p.name.written + ": missing argument");
      Result<WitValue> v = value_from_json(pkg, p.type, *a, p.name.written);
      if (!v) return v.status();
      out.push_back(std::move(*v));
    }
    if (j.size() != fn.params.size()) return Status::invalid(fn.name.written + ": unknown argument in " + show(j));
    return out;
  }
  if (!j.is_array())
    return Status::invalid(fn.name.written + ": expected a JSON array of the parameters or an object keyed by parameter name, got " +
                           show(j));
  if (j.size() != fn.params.size())
    return Status::invalid(fn.name.written + ": expected " + std::to_string(fn.params.size()) + " arguments, got " + std::to_string(j.size()));
  for (size_t i = 0; i < fn.params.size(); ++i) {
    Result<WitValue> v = value_from_json(pkg, fn.params[i].type, j[i], fn.params[i].name.written);
    if (!v) return v.status();
    out.push_back(std::move(*v));
  }
  return out;
}

Result<json> results_to_json(const wit::Package& pkg, const wit::Function& fn, const std::vector<WitValue>& results) {
  if (results.size() != fn.results.size()) return Status::invalid("result count mismatch");
  if (results.empty()) return json(nullptr);
  if (fn.results.size() == 1 && fn.results[0].name.written.empty()) return value_to_json(pkg, fn.results[0].type, results[0]);
  json o = json::object();
  for (size_t i = 0; i < results.size(); ++i) {
    Result<json> r = value_to_json(pkg, fn.results[i].type, results[i]);
    if (!r) return r.status();
    o[fn.results[i].name.written] = std::move(*r);
  }
  return o;
}

}  // namespace covenant::abi
