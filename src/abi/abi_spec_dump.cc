// abi_spec_dump: writes, as JSON, random WIT packages with the layouts,
// flattenings and core signatures Covenant computes for them, and random
// values stored into guest memory by Covenant's lower path. spec_diff.py
// replays the same against the Component Model's reference definitions.py.
//   abi_spec_dump PACKAGES SEED > dump.json
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "abi/random_wit.h"
#include "covenant/abi.h"
#include "covenant/wit_json.h"

using namespace covenant;
using nlohmann::json;

namespace {

const char* core(abi::CoreType t) { return abi::core_type_name(t); }

json type_json(const wit::Package& pkg, const abi::Abi& abi, wit::TypeId id) {
  const wit::Type& t = pkg.type(id);
  json j{{"id", id}, {"kind", wit::type_kind_name(t.kind)}};
  json fields = json::array();
  for (const wit::Field& f : t.fields)
    fields.push_back({{"name", f.name.written}, {"type", f.type == wit::kNoType ? json(nullptr) : json(f.type)}});
  j["fields"] = fields;
  auto opt = [](wit::TypeId x) { return x == wit::kNoType ? json(nullptr) : json(x); };
  j["elem"] = opt(t.elem);
  j["ok"] = opt(t.ok);
  j["err"] = opt(t.err);
  const abi::Layout& l = abi.layout(id);
  j["size"] = l.size;
  j["align"] = l.align;
  if (l.flat_overflow) {
    j["flat"] = nullptr;
  } else {
    json flat = json::array();
    for (abi::CoreType c : l.flat) flat.push_back(core(c));
    j["flat"] = flat;
  }
  return j;
}

json sig_json(const abi::CoreSignature& s) {
  json p = json::array(), r = json::array();
  for (abi::CoreType c : s.params) p.push_back(core(c));
  for (abi::CoreType c : s.results) r.push_back(core(c));
  return {{"params", p}, {"results", r}};
}

}  // namespace

int main(int argc, char** argv) {
  int packages = argc > 1 ? std::atoi(argv[1]) : 50;
  uint64_t seed0 = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1;
  json out = json::array();
  for (int k = 0; k < packages; ++k) {
    uint64_t seed = seed0 + static_cast<uint64_t>(k);
    std::string src = abi::testgen::WitGen(seed).package();
    auto pkg = wit::parse_wit(src, {.strict = true});
    if (!pkg) {
      std::cerr << "seed " << seed << ": " << pkg.status().message() << "\n";
      return 1;
    }
    abi::Abi abi(*pkg);
    abi::testgen::ValueGen gen(*pkg, seed * 31);
    json p{{"seed", seed}, {"wit", src}};
    json types = json::array();
    json values = json::array();
    for (wit::TypeId id = 0; id < pkg->types.size(); ++id) {
      types.push_back(type_json(*pkg, abi, id));
      for (int v = 0; v < 2; ++v) {
        abi::BufferMemory mem(1 << 20);
        abi::CallContext cx(abi, mem);
        abi::WitValue value = gen.value(id);
        const abi::Layout& l = abi.layout(id);
        uint32_t at = mem.realloc(0, 0, l.align, static_cast<uint32_t>(l.size)).value();
        if (!cx.store(id, value, at).is_ok()) return 2;
        std::vector<abi::CoreValue> flat;
        json flat_j = nullptr;
        if (!l.flat_overflow) {  // into the same memory, so one dump serves both
          if (!cx.lower_flat(id, value, &flat).is_ok()) return 3;
          flat_j = json::array();
          for (const abi::CoreValue& c : flat) flat_j.push_back({core(c.type), std::to_string(c.bits)});
        }
        // The bump allocator's high-water mark bounds the bytes used.
        uint32_t used = mem.realloc(0, 0, 1, 0).value();
        json bytes = json::array();
        for (uint32_t i = 0; i < used; ++i) bytes.push_back(mem.data()[i]);
        values.push_back({{"type", id}, {"ptr", at}, {"memory", bytes},
                          {"json", abi::value_to_json(*pkg, id, value).value()}, {"flat", flat_j}});
      }
    }
    json funcs = json::array();
    for (const wit::Function& fn : pkg->interfaces[0].functions) {
      json params = json::array(), results = json::array();
      for (const wit::Param& q : fn.params) params.push_back(q.type);
      for (const wit::Param& q : fn.results) results.push_back(q.type);
      funcs.push_back({{"name", fn.name.kebab}, {"params", params}, {"results", results},
                       {"export", sig_json(abi.core_signature(fn, abi::Direction::kExport))},
                       {"import", sig_json(abi.core_signature(fn, abi::Direction::kImport))}});
    }
    p["types"] = types;
    p["values"] = values;
    p["functions"] = funcs;
    out.push_back(p);
  }
  std::cout << out.dump() << "\n";
  return 0;
}
