// WIT values <-> JSON: the documented mapping of docs/abi.md ("Values as JSON").
// Thread-safety: pure functions. Ownership: values are returned by value.
//
//   auto v = covenant::abi::value_from_json(pkg, intent_type, json);   // path "intent"
//   if (!v) puts(v.status().message().c_str());   // intent.max_units: expected u64, got "ten"
//   nlohmann::json out = *covenant::abi::value_to_json(pkg, decision_type, decision);
//
// Summary: bool -> true/false; u8..u32, s8..s32 -> numbers; u64/s64 -> decimal
// strings (numbers accepted on input); f32/f64 -> numbers, "NaN"/"Infinity"/
// "-Infinity" as strings; char -> one-codepoint string; string -> string;
// list, tuple -> arrays; record -> object keyed by the field names as written
// in the WIT (input also accepts kebab-case and snake_case spellings; a missing
// option field is none); enum -> string; flags -> array of set flag names in
// declaration order; variant -> {"case": payload-or-null} (a payload-less case
// may be given as the bare string "case" on input); option<T> -> null / T, but
// option<option<T>> and deeper wrap the outer some as {"some": ...}; result ->
// {"ok": v-or-null} / {"err": v-or-null}.
#pragma once

#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "covenant/abi.h"
#include "covenant/wit.h"

namespace covenant::abi {

// JSON -> value of type t. `path` names the root in errors; empty means the
// type's own name (e.g. "intent") or "value". Errors: kInvalidArgument
// "path: expected T, got J".
Result<WitValue> value_from_json(const wit::Package& pkg, wit::TypeId t, const nlohmann::json& j,
                                 std::string_view path = {});
// Value -> JSON. Fails (kInvalidArgument) only if v does not match t.
Result<nlohmann::json> value_to_json(const wit::Package& pkg, wit::TypeId t, const WitValue& v);

// A JSON array of a function's arguments (also accepted: an object keyed by
// parameter name); error paths start with the parameter name.
Result<std::vector<WitValue>> args_from_json(const wit::Package& pkg, const wit::Function& fn, const nlohmann::json& j);
// A function's results as JSON: the single result's value, an object keyed by
// name for named results, or null for none.
Result<nlohmann::json> results_to_json(const wit::Package& pkg, const wit::Function& fn, const std::vector<WitValue>& results);

}  // namespace covenant::abi
