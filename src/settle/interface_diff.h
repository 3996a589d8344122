// The interface of a contract version as a structure that can be hashed and
// compared: the WIT world (names and types of every import and export, spelled
// out structurally; docs, comments, formatting and type names do not count)
// and its grants. Receipt key 12 hashes it (settle::interface_hash); `covenant
// diff` and GET /v1/contracts/{name}/diff compare two of them, and governed
// activation signs the hash of that comparison (docs/api.md).
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "covenant/keys.h"
#include "covenant/status.h"
#include "covenant/wit.h"
#include "evidence/cbor.h"

namespace covenant::settle {

// Structural CBOR encodings (the pieces of the interface hash).
void encode_wit_type(const wit::Package& pkg, wit::TypeId id, cbor::Writer& w);
void encode_wit_function(const wit::Package& pkg, const wit::Function& f, cbor::Writer& w);
void encode_world_items(const wit::Package& pkg, const std::vector<wit::WorldItem>& items, cbor::Writer& w);

struct InterfaceSide {
  const wit::Package* package = nullptr;
  const wit::World* world = nullptr;
  std::string grants;  // manifest JSON text; empty: no grants
};

// What changed from `from` to `to`:
//   {"world": {"from","to"},
//    "exports": {"added": [sig...], "removed": [sig...], "changed": [{"name","from","to"}]},
//    "imports": {... the same ...},
//    "types": {"added","removed","changed"} (named types of the package's own interfaces),
//    "grants": {"added": [cap...], "removed": [...], "changed": [{"capability","from","to"}]},
//    "compatible": bool,        // callers of `from` keep working against `to`
//    "reasons": ["export policy.approve changed", ...]}
// Functions are named "<interface>.<function>" (or "<function>" for a world-level
// function) and shown as WIT signatures. An added export is compatible; a
// removed or changed export is not. Import and grant changes do not break
// callers (they are the capabilities the version asks for) and are listed.
Result<nlohmann::json> interface_diff(const InterfaceSide& from, const InterfaceSide& to);

// SHA-256 of the diff's compact JSON (nlohmann sorts object keys): what owners sign.
Hash32 interface_diff_hash(const nlohmann::json& diff);

}  // namespace covenant::settle
