// Interface structure and comparison (docs/api.md, "Governed activation").
#include "settle/interface_diff.h"

#include <map>

namespace covenant::settle {

using json = nlohmann::json;

// WIT types nest at most wit::kTypeDepthMax deep; the encoder follows the
// resolved structure, which has no cycles.
void encode_wit_type(const wit::Package& pkg, wit::TypeId id, cbor::Writer& w) {
  if (id == wit::kNoType) return w.null();
  const wit::Type& t = pkg.type(id);
  w.array(5);
  w.uint(static_cast<uint64_t>(t.kind));
  w.array(t.fields.size());
  for (const wit::Field& f : t.fields) {
    w.array(2);
    w.text(f.name.kebab);
    encode_wit_type(pkg, f.type, w);
  }
  encode_wit_type(pkg, t.elem, w);
  encode_wit_type(pkg, t.ok, w);
  encode_wit_type(pkg, t.err, w);
}

void encode_wit_params(const wit::Package& pkg, const std::vector<wit::Param>& ps, cbor::Writer& w) {
  w.array(ps.size());
  for (const wit::Param& p : ps) {
    w.array(2);
    w.text(p.name.kebab);
    encode_wit_type(pkg, p.type, w);
  }
}

void encode_wit_function(const wit::Package& pkg, const wit::Function& f, cbor::Writer& w) {
  w.array(3);
  w.text(f.name.kebab);
  encode_wit_params(pkg, f.params, w);
  encode_wit_params(pkg, f.results, w);
}

void encode_world_items(const wit::Package& pkg, const std::vector<wit::WorldItem>& items, cbor::Writer& w) {
  w.array(items.size());
  for (const wit::WorldItem& it : items) {
    if (it.kind == wit::WorldItem::Kind::kFunction) {
      w.array(2);
      w.uint(1);
      encode_wit_function(pkg, it.function, w);
      continue;
    }
    w.array(3);
    w.uint(0);
    w.text(it.name);
    if (it.interface_index < 0) {
      w.null();  // a foreign interface (e.g. covenant:host/...): its name says it all
      continue;
    }
    const wit::Interface& iface = pkg.interfaces.at(static_cast<size_t>(it.interface_index));
    w.array(iface.functions.size());
    for (const wit::Function& f : iface.functions) encode_wit_function(pkg, f, w);
  }
}

namespace {

std::string signature(const wit::Package& pkg, const wit::Function& f) {
  std::string s = "func(";
  for (size_t i = 0; i < f.params.size(); ++i) {
    if (i) s += ", ";
    s += f.params[i].name.written + ": " + pkg.type_to_string(f.params[i].type);
  }
  s += ")";
  if (f.results.size() == 1 && f.results[0].name.written.empty()) {
    s += " -> " + pkg.type_to_string(f.results[0].type);
  } else if (!f.results.empty()) {
    s += " -> (";
    for (size_t i = 0; i < f.results.size(); ++i) {
      if (i) s += ", ";
      s += f.results[i].name.written + ": " + pkg.type_to_string(f.results[i].type);
    }
    s += ")";
  }
  return s;
}

// A named type spelled out one level deep: "record { approved: bool, spent: u64 }".
std::string describe_type(const wit::Package& pkg, wit::TypeId id) {
  const wit::Type& t = pkg.type(id);
  const char* kw = nullptr;
  switch (t.kind) {
    case wit::TypeKind::kRecord: kw = "record"; break;
    case wit::TypeKind::kVariant: kw = "variant"; break;
    case wit::TypeKind::kEnum: kw = "enum"; break;
    case wit::TypeKind::kFlags: kw = "flags"; break;
    default: return pkg.type_to_string(id);
  }
  std::string s = std::string(kw) + " {";
  for (size_t i = 0; i < t.fields.size(); ++i) {
    const wit::Field& f = t.fields[i];
    s += (i ? ", " : " ") + f.name.written;
    if (f.type != wit::kNoType) s += t.kind == wit::TypeKind::kRecord ? ": " + pkg.type_to_string(f.type) : "(" + pkg.type_to_string(f.type) + ")";
  }
  return s + " }";
}

struct Entry {
  std::vector<uint8_t> structure;
  std::string display;
};

// name -> (structure, display) of every function of the items.
std::map<std::string, Entry> functions_of(const wit::Package& pkg, const std::vector<wit::WorldItem>& items) {
  std::map<std::string, Entry> out;
  auto add = [&](const std::string& name, const wit::Function& f) {
    Entry e;
    cbor::Writer w(&e.structure);
    encode_wit_function(pkg, f, w);
    e.display = signature(pkg, f);
    out[name] = std::move(e);
  };
  for (const wit::WorldItem& it : items) {
    if (it.kind == wit::WorldItem::Kind::kFunction) {
      add(it.function.name.kebab, it.function);
    } else if (it.interface_index < 0) {
      out[it.name] = Entry{std::vector<uint8_t>(it.name.begin(), it.name.end()), "interface " + it.name};
    } else {
      const wit::Interface& iface = pkg.interfaces.at(static_cast<size_t>(it.interface_index));
      for (const wit::Function& f : iface.functions) add(it.name + "." + f.name.kebab, f);
    }
  }
  return out;
}

std::map<std::string, Entry> types_of(const wit::Package& pkg, const wit::World& world) {
  std::map<std::string, Entry> out;
  for (const auto* items : {&world.imports, &world.exports}) {
    for (const wit::WorldItem& it : *items) {
      if (it.kind != wit::WorldItem::Kind::kInterface || it.interface_index < 0) continue;
      const wit::Interface& iface = pkg.interfaces.at(static_cast<size_t>(it.interface_index));
      for (const auto& [name, id] : iface.types) {
        Entry e;
        cbor::Writer w(&e.structure);
        encode_wit_type(pkg, id, w);
        e.display = describe_type(pkg, id);
        out[it.name + "." + name] = std::move(e);
      }
    }
  }
  return out;
}

json compare(const std::map<std::string, Entry>& a, const std::map<std::string, Entry>& b, bool with_names) {
  json added = json::array(), removed = json::array(), changed = json::array();
  for (const auto& [name, e] : a) {
    auto it = b.find(name);
    if (it == b.end()) removed.push_back(with_names ? json(name + ": " + e.display) : json(name));
    else if (it->second.structure != e.structure) changed.push_back({{"name", name}, {"from", e.display}, {"to", it->second.display}});
  }
  for (const auto& [name, e] : b)
    if (!a.count(name)) added.push_back(with_names ? json(name + ": " + e.display) : json(name));
  return {{"added", added}, {"removed", removed}, {"changed", changed}};
}

Result<json> capabilities_of(const std::string& grants) {
  if (grants.empty()) return json::object();
  json g = json::parse(grants, nullptr, false);
  if (g.is_discarded() || !g.is_object()) return Status::invalid("grants: not a JSON object");
  if (!g.contains("capabilities")) return json::object();
  if (!g["capabilities"].is_object()) return Status::invalid("grants.capabilities: not an object");
  return g["capabilities"];
}

}  // namespace

Result<json> interface_diff(const InterfaceSide& from, const InterfaceSide& to) {
  const wit::Package& pa = *from.package;
  const wit::Package& pb = *to.package;
  json d;
  d["world"] = {{"from", from.world->name.kebab}, {"to", to.world->name.kebab}};
  d["exports"] = compare(functions_of(pa, from.world->exports), functions_of(pb, to.world->exports), true);
  d["imports"] = compare(functions_of(pa, from.world->imports), functions_of(pb, to.world->imports), true);
  d["types"] = compare(types_of(pa, *from.world), types_of(pb, *to.world), false);
  auto ca = capabilities_of(from.grants);
  if (!ca) return ca.status();
  auto cb = capabilities_of(to.grants);
  if (!cb) return cb.status();
  json added = json::array(), removed = json::array(), changed = json::array();
  for (auto& [k, v] : ca->items()) {
    if (!cb->contains(k)) removed.push_back(k);
    else if ((*cb)[k] != v) changed.push_back({{"capability", k}, {"from", v}, {"to", (*cb)[k]}});
  }
  for (auto& [k, v] : cb->items())
    if (!ca->contains(k)) added.push_back(k);
  d["grants"] = {{"added", added}, {"removed", removed}, {"changed", changed}};
  json reasons = json::array();
  for (const json& r : d["exports"]["removed"]) reasons.push_back("export removed: " + r.get<std::string>());
  for (const json& c : d["exports"]["changed"]) reasons.push_back("export changed: " + c["name"].get<std::string>());
  d["compatible"] = reasons.empty();
  d["reasons"] = reasons;
  return d;
}

Hash32 interface_diff_hash(const json& diff) {
  const std::string text = diff.dump();
  return sha256(std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

}  // namespace covenant::settle
