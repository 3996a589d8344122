// RFC 8785 JSON Canonicalization Scheme (JCS): the one byte spelling of a JSON
// value that signed intents are signed over (docs/api.md, "Signed intents").
//
//   - objects: members sorted by their names' UTF-16 code units, no
//     whitespace, no duplicate names (nlohmann::json cannot hold any);
//   - strings: UTF-8 as is, except '"' and '\\' and the control characters
//     below 0x20, escaped as \b \t \n \f \r or \u00xx (lower-case hex);
//   - numbers: integers in decimal; other numbers as ECMAScript's
//     Number.prototype.toString spells the nearest double (shortest round
//     trip, exponent from 1e21 and below 1e-6).
//
// Cross-checked against the npm `canonicalize` package (RFC 8785's reference
// implementation) in jcs_test. Thread-safety: pure function.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "covenant/status.h"

namespace covenant::settle {

// kInvalidArgument for a string that is not valid UTF-8 or an integer beyond
// the doubles' exact range (2^53), which JCS cannot spell without rounding.
Result<std::string> jcs_canonicalize(const nlohmann::json& value);

}  // namespace covenant::settle
