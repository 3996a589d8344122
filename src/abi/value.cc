// WitValue equality and debug printing.
#include "covenant/abi.h"

namespace covenant::abi {

bool WitValue::operator==(const WitValue& o) const {
  return kind_ == o.kind_ && has_payload_ == o.has_payload_ && case_ == o.case_ && bits_ == o.bits_ &&
         str_ == o.str_ && items_ == o.items_;
}

std::string WitValue::debug_string() const {
  using K = Kind;
  auto join = [&](const char* open, const char* close) {
    std::string s = open;
    for (size_t i = 0; i < items_.size(); ++i) s += (i ? ", " : "") + items_[i].debug_string();
    return s + close;
  };
  switch (kind_) {
    case K::kBool: return as_bool() ? "true" : "false";
    case K::kS8: case K::kS16: case K::kS32: case K::kS64:
      return std::string(wit::type_kind_name(kind_)) + "(" + std::to_string(as_signed()) + ")";
    case K::kU8: case K::kU16: case K::kU32: case K::kU64:
      return std::string(wit::type_kind_name(kind_)) + "(" + std::to_string(as_unsigned()) + ")";
    case K::kF32: return "f32(" + std::to_string(as_f32()) + ")";
    case K::kF64: return "f64(" + std::to_string(as_f64()) + ")";
    case K::kChar: return "char(U+" + std::to_string(as_char()) + ")";
    case K::kString: return "string(\"" + str_ + "\")";
    case K::kList: return join("list[", "]");
    case K::kRecord: return join("record{", "}");
    case K::kTuple: return join("tuple(", ")");
    case K::kFlags: return "flags(" + std::to_string(flag_bits()) + ")";
    case K::kEnum: return "enum(" + std::to_string(case_) + ")";
    case K::kVariant: case K::kOption: case K::kResult: {
      std::string s = wit::type_kind_name(kind_);
      s.append("#").append(std::to_string(case_));
      if (has_payload_) s.append("(").append(items_[0].debug_string()).append(")");
      return s;
    }
  }
  return "?";
}

}  // namespace covenant::abi
