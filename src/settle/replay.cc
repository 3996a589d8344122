// Replay packages and replay (docs/replay.md).
#include <algorithm>
#include <functional>
#include <map>

#include "evidence/cbor.h"
#include "settle/settle.h"

namespace covenant::settle {

using json = nlohmann::json;

namespace {

constexpr std::string_view kFormat = "covenant-replay";

std::span<const uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Deterministic order of text map keys: by encoded bytes (length first for
// keys shorter than 24 bytes, then bytewise).
bool key_less(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return a.size() < b.size();
  return a < b;
}

ReplayVerdict refuted(std::string field, std::string detail) { return {false, std::move(field), std::move(detail)}; }

}  // namespace

Result<std::vector<MaskRule>> parse_mask(const json& rules) {
  if (!rules.is_array()) return Status::invalid("mask: expected a list of {\"path\", \"replace\"?}");
  std::vector<MaskRule> out;
  for (size_t i = 0; i < rules.size(); ++i) {
    const json& r = rules[i];
    MaskRule m;
    if (r.is_string()) {
      m.path = r.get<std::string>();
    } else if (r.is_object() && r.contains("path") && r["path"].is_string()) {
      for (auto& [k, v] : r.items())
        if (k != "path" && k != "replace") return Status::invalid("mask[" + std::to_string(i) + "]." + k + ": unknown field");
      m.path = r["path"].get<std::string>();
      if (r.contains("replace")) m.replace = r["replace"];
    } else {
      return Status::invalid("mask[" + std::to_string(i) + "]: expected a JSON pointer or {\"path\", \"replace\"?}");
    }
    if (m.path.rfind("/intent/", 0) != 0 && m.path.rfind("/decision/", 0) != 0)
      return Status::invalid("mask[" + std::to_string(i) + "].path: must start with /intent/ or /decision/");
    try {
      (void)json::json_pointer(m.path);
    } catch (const std::exception& e) {
      return Status::invalid("mask[" + std::to_string(i) + "].path: " + e.what());
    }
    out.push_back(std::move(m));
  }
  return out;
}

json apply_mask(const json& value, const std::vector<MaskRule>& rules, std::string_view root,
                std::vector<std::string>* masked) {
  json out = value;
  const std::string prefix = "/" + std::string(root);
  for (const MaskRule& m : rules) {
    if (m.path.rfind(prefix + "/", 0) != 0) continue;
    const json::json_pointer ptr(m.path.substr(prefix.size()));
    if (!out.contains(ptr)) continue;
    if (m.replace) {
      out[ptr] = *m.replace;
    } else {
      const json::json_pointer parent = ptr.parent_pointer();
      json& container = out[parent];
      if (container.is_object()) container.erase(ptr.back());
      else if (container.is_array()) container.erase(static_cast<size_t>(std::stoul(ptr.back())));
    }
    masked->push_back(m.path);
  }
  return out;
}

ReplayPackage make_replay_package(const CallInputs& in, const CallRecord& record, std::span<const uint8_t> receipt,
                                  const PublicKey& executor_key) {
  ReplayPackage p;
  p.call = in;
  p.record = record;
  p.receipt.assign(receipt.begin(), receipt.end());
  p.executor_key = executor_key;
  return p;
}

std::vector<uint8_t> encode_replay_package(const ReplayPackage& p) {
  using Field = std::pair<std::string, std::function<void(cbor::Writer&)>>;
  const std::string record = call_record_to_json(p.record).dump();
  std::vector<Field> fields = {
      {"format", [&](cbor::Writer& w) { w.text(kFormat); }},
      {"version", [&](cbor::Writer& w) { w.uint(kReplayFormatVersion); }},
      {"module", [&](cbor::Writer& w) { w.bytes(p.call.module); }},
      {"wit", [&](cbor::Writer& w) { w.text(p.call.wit); }},
      {"world", [&](cbor::Writer& w) { w.text(p.call.world); }},
      {"grants", [&](cbor::Writer& w) { w.text(p.call.grants); }},
      {"export", [&](cbor::Writer& w) { w.text(p.call.export_name); }},
      {"intent", [&](cbor::Writer& w) { w.bytes(as_bytes(p.call.intent)); }},
      {"fuel", [&](cbor::Writer& w) { w.uint(p.call.fuel); }},
      {"tier", [&](cbor::Writer& w) { w.text(tier_name(p.call.tier)); }},
      {"record", [&](cbor::Writer& w) { w.text(record); }},
      {"receipt", [&](cbor::Writer& w) { w.bytes(p.receipt); }},
      {"executor_key", [&](cbor::Writer& w) { w.bytes(p.executor_key); }},
  };
  if (!p.masked.empty()) {
    fields.push_back({"masked", [&](cbor::Writer& w) {
                        w.array(p.masked.size());
                        for (const std::string& m : p.masked) w.text(m);
                      }});
  }
  std::sort(fields.begin(), fields.end(), [](const Field& a, const Field& b) { return key_less(a.first, b.first); });
  std::vector<uint8_t> out;
  out.reserve(p.call.module.size() + p.receipt.size() + record.size() + p.call.intent.size() + p.call.wit.size() + 512);
  cbor::Writer w(&out);
  w.map(fields.size());
  for (const Field& f : fields) {
    w.text(f.first);
    f.second(w);
  }
  return out;
}

Result<ReplayPackage> decode_replay_package(std::span<const uint8_t> bytes) {
  if (bytes.size() > kReplayPackageBytesMax) return Status::invalid("replay package larger than 256 MiB");
  if (Status st = cbor::validate(bytes); !st) return Status::invalid("replay package: " + st.message());
  cbor::Reader r(bytes);
  uint64_t n = 0;
  COVENANT_RETURN_IF_ERROR(r.read_map(&n));
  ReplayPackage p;
  std::map<std::string, bool> seen;
  std::string_view text;
  std::span<const uint8_t> blob;
  auto read_text = [&](std::string* out) -> Status {
    COVENANT_RETURN_IF_ERROR(r.read_text(&text));
    out->assign(text);
    return Status::ok();
  };
  for (uint64_t i = 0; i < n; ++i) {
    std::string key;
    COVENANT_RETURN_IF_ERROR(read_text(&key));
    if (seen.count(key)) return Status::invalid("replay package: duplicate field " + key);
    seen[key] = true;
    Status st;
    if (key == "format") {
      std::string f;
      st = read_text(&f);
      if (st && f != kFormat) return Status::invalid("replay package: format is \"" + f + "\", not covenant-replay");
    } else if (key == "version") {
      uint64_t v = 0;
      st = r.read_uint(&v);
      if (st && v != kReplayFormatVersion)
        return Status::unsupported("replay package version " + std::to_string(v) + " (this build reads 1)");
    } else if (key == "module") {
      st = r.read_bytes(&blob);
      p.call.module.assign(blob.begin(), blob.end());
    } else if (key == "wit") {
      st = read_text(&p.call.wit);
    } else if (key == "world") {
      st = read_text(&p.call.world);
    } else if (key == "grants") {
      st = read_text(&p.call.grants);
    } else if (key == "export") {
      st = read_text(&p.call.export_name);
    } else if (key == "intent") {
      st = r.read_bytes(&blob);
      p.call.intent.assign(reinterpret_cast<const char*>(blob.data()), blob.size());
    } else if (key == "fuel") {
      st = r.read_uint(&p.call.fuel);
    } else if (key == "tier") {
      std::string t;
      st = read_text(&t);
      auto tier = parse_tier(t);
      if (st && !tier) return Status::invalid("replay package: unknown tier " + t);
      if (tier) p.call.tier = *tier;
    } else if (key == "record") {
      std::string rec;
      st = read_text(&rec);
      if (st) {
        json j = json::parse(rec, nullptr, false);
        if (j.is_discarded()) return Status::invalid("replay package: record is not JSON");
        auto cr = call_record_from_json(j);
        if (!cr) return Status::invalid("replay package: " + cr.status().message());
        p.record = std::move(*cr);
      }
    } else if (key == "receipt") {
      st = r.read_bytes(&blob);
      p.receipt.assign(blob.begin(), blob.end());
    } else if (key == "executor_key") {
      st = r.read_bytes(&blob);
      if (st && blob.size() != kPublicKeyBytes) return Status::invalid("replay package: executor_key must be 32 bytes");
      if (st) std::copy(blob.begin(), blob.end(), p.executor_key.begin());
    } else if (key == "masked") {
      uint64_t count = 0;
      st = r.read_array(&count);
      for (uint64_t j = 0; st && j < count; ++j) {
        std::string m;
        st = read_text(&m);
        if (st) p.masked.push_back(std::move(m));
      }
      if (st && p.masked.empty()) return Status::invalid("replay package: masked is empty (omit the field)");
    } else {
      return Status::invalid("replay package: unknown field " + key);
    }
    if (!st) return Status::invalid("replay package: field " + key + ": " + st.message());
  }
  for (const char* k : {"format", "version", "module", "wit", "world", "grants", "export", "intent", "fuel", "tier",
                        "record", "receipt", "executor_key"}) {
    if (!seen.count(k)) return Status::invalid(std::string("replay package: missing field ") + k);
  }
  return p;
}

Result<ReplayVerdict> replay(const ReplayPackage& pkg, Tier tier, const KeyResolver* keys) {
  // 1. The receipt must be signed by the key it names.
  PinnedKey own(pkg.executor_key);
  auto signed_r = verify_receipt(pkg.receipt, keys ? *keys : static_cast<const KeyResolver&>(own));
  if (!signed_r) return refuted("signature", signed_r.status().message());
  const Receipt& want = *signed_r;

  // 2. Inputs the package holds directly.
  if (sha256(std::span<const uint8_t>(pkg.call.module)) != want.contract_hash)
    return refuted("contract_hash", "the module's SHA-256 is not the receipt's contract hash");
  const bool masked = !pkg.masked.empty();
  std::string masked_list;
  for (const std::string& m : pkg.masked) masked_list += (masked_list.empty() ? "" : ", ") + m;
  ReplayVerdict partial{true, "", "", {}};
  if (masked) {
    // The receipt's intent hash binds the original intent, which the package does not hold.
    partial.unchecked.push_back("intent_hash");
    partial.detail = "masked: " + masked_list;
  } else if (sha256(as_bytes(pkg.call.intent)) != want.intent_hash) {
    return refuted("intent_hash", "the intent's SHA-256 is not the receipt's intent hash");
  }

  // 3. Re-deploy with the recorded environment and re-execute.
  auto engine = Engine::create({});
  if (!engine) return engine.status();
  DeployOptions opts;
  opts.tier = tier;
  opts.wit = pkg.call.wit;
  opts.world = pkg.call.world;
  opts.reset_every_call = true;
  opts.name = "replay";
  if (!pkg.call.grants.empty()) {
    auto g = parse_grants(pkg.call.grants);
    if (!g) return refuted("grants", g.status().message());
    opts.grants = *g;
  }
  auto contract = Contract::deploy(**engine, pkg.call.module, opts);
  if (!contract) return refuted("entry", "the module does not deploy with the package's world: " + contract.status().message());
  json intent = json::parse(pkg.call.intent, nullptr, false);
  if (intent.is_discarded()) return refuted("intent_hash", "the intent is not JSON");
  CallOptions co;
  co.fuel = pkg.call.fuel;
  auto call = (*contract)->replay_json(pkg.call.export_name, json::array({intent}), pkg.record, co);
  // With masked inputs a run that differs says nothing against the receipt: what
  // the masked fields fed is reported as not re-checked, never as refuted.
  auto unverifiable = [&](const std::string& why) {
    partial.unchecked.insert(partial.unchecked.end(), {"decision", "fuel_used", "state_root_before", "state_root_after"});
    partial.detail += "; the run with the masked intent " + why;
    return partial;
  };
  if (!call) {
    if (masked) return unverifiable("does not run: " + call.status().message());
    if (call.status().code() == Code::kFailedPrecondition)
      return refuted("state_root_before", call.status().message());
    return refuted("entry", "the call does not run: " + call.status().message());
  }
  if (call->trap.kind != TrapKind::kNone) {
    if (masked) return unverifiable(std::string("traps: ") + trap_kind_name(call->trap.kind));
    return refuted("decision", std::string("the replayed call traps: ") + trap_kind_name(call->trap.kind) + ": " +
                                   call->trap.message);
  }
  auto got = build_receipt(**contract, pkg.call, call->values, call->record, call->fuel_used);
  if (!got) return masked ? unverifiable(got.status().message()) : refuted("decision", got.status().message());
  if (masked) got->intent_hash = want.intent_hash;  // listed as unchecked above

  // 4. Field by field: what went in, then what came out.
  if (got->contract_hash != want.contract_hash) return refuted("contract_hash", "module hash differs");
  if (got->entry != want.entry) return refuted("entry", "replayed " + got->entry + ", receipt " + want.entry);
  // Receipts from before key 12 carry no interface hash: nothing to compare.
  if (want.interface_hash && got->interface_hash != want.interface_hash)
    return refuted("interface", "the package's WIT world or grants are not the ones the receipt was signed with");
  if (got->intent_hash != want.intent_hash) return refuted("intent_hash", "intent hash differs");
  if (got->state_root_before != want.state_root_before)
    return refuted("state_root_before", "the kv state the call read differs from the receipt's");
  if (got->time_unix_ms != want.time_unix_ms)
    return refuted("time", "recorded clock " + std::to_string(got->time_unix_ms) + " ms, receipt " +
                               std::to_string(want.time_unix_ms) + " ms");
  if (masked && (got->decision != want.decision || got->fuel_used != want.fuel_used ||
                 got->state_root_before != want.state_root_before || got->state_root_after != want.state_root_after))
    return unverifiable("decides differently (it reads masked fields)");
  if (got->decision != want.decision) {
    auto a = cbor::diagnostic(got->decision);
    auto b = cbor::diagnostic(want.decision);
    return refuted("decision", "replayed " + (a ? *a : std::string("?")) + ", receipt " + (b ? *b : std::string("?")));
  }
  if (got->fuel_used != want.fuel_used)
    return refuted("fuel_used", "replayed " + std::to_string(got->fuel_used) + ", receipt " + std::to_string(want.fuel_used));
  if (got->state_root_after != want.state_root_after) {
    // Receipts signed before no-write calls kept after = before spell "no
    // writes" as a hash over before and an empty list: the same commitment.
    const bool legacy = call->record.kv_writes.empty() &&
                        want.state_root_after == legacy_state_root_after_no_writes(want.state_root_before);
    if (!legacy) return refuted("state_root_after", "the kv writes differ from the receipt's");
  }
  if (!masked && want.intent && *want.intent != std::vector<uint8_t>(pkg.call.intent.begin(), pkg.call.intent.end()))
    return refuted("intent", "the receipt's raw intent differs from the package's");
  if (masked) return partial;
  return ReplayVerdict{true, "", "", {}};
}

}  // namespace covenant::settle
