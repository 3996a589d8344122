// CallRecord <-> JSON. Byte strings (kv keys and values) are hex so any
// bytes survive; the seed is hex; u64 counters are decimal strings (JSON
// numbers lose precision past 2^53 in most parsers).
#include <string>

#include <nlohmann/json.hpp>

#include "covenant/contract.h"

namespace covenant {
namespace {

using json = nlohmann::json;

std::string to_hex(std::string_view b) {
  static const char* d = "0123456789abcdef";
  std::string s;
  s.reserve(b.size() * 2);
  for (unsigned char c : b) {
    s.push_back(d[c >> 4]);
    s.push_back(d[c & 15]);
  }
  return s;
}

bool from_hex(const std::string& s, std::string* out) {
  if (s.size() % 2) return false;
  out->clear();
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (size_t i = 0; i < s.size(); i += 2) {
    int h = nib(s[i]), l = nib(s[i + 1]);
    if (h < 0 || l < 0) return false;
    out->push_back(static_cast<char>(h * 16 + l));
  }
  return true;
}

json opt_hex(const std::optional<std::string>& v) { return v ? json(to_hex(*v)) : json(nullptr); }

struct Reader {
  std::string err;
  std::string hex(const json& j, const std::string& path) {
    std::string out;
    if (!j.is_string() || !from_hex(j.get<std::string>(), &out)) fail(path + ": expected lowercase hex");
    return out;
  }
  std::optional<std::string> opt(const json& j, const std::string& path) {
    if (j.is_null()) return std::nullopt;
    return hex(j, path);
  }
  uint64_t u64(const json& j, const std::string& path) {
    if (j.is_string()) {
      const std::string& s = j.get_ref<const std::string&>();
      uint64_t v = 0;
      if (s.empty() || s.size() > 20) fail(path + ": expected a u64");
      for (char c : s) {
        if (c < '0' || c > '9' || v > (UINT64_MAX - uint64_t(c - '0')) / 10) {
          fail(path + ": expected a u64");
          return 0;
        }
        v = v * 10 + uint64_t(c - '0');
      }
      return v;
    }
    if (j.is_number_unsigned()) return j.get<uint64_t>();
    fail(path + ": expected a u64");
    return 0;
  }
  const json& at(const json& j, const char* key, const std::string& path) {
    static const json kNull;
    if (!j.is_object() || !j.contains(key)) {
      fail(path + "." + key + ": missing");
      return kNull;
    }
    return j[key];
  }
  void fail(std::string m) {
    if (err.empty()) err = std::move(m);
  }
};

}  // namespace

json call_record_to_json(const CallRecord& r) {
  json j;
  j["version"] = 1;
  j["export"] = r.export_name;
  j["wall_ms"] = std::to_string(r.wall_ms);
  j["monotonic_ns"] = std::to_string(r.monotonic_ns);
  j["random_seed"] = to_hex(std::string_view(reinterpret_cast<const char*>(r.random_seed.data()), r.random_seed.size()));
  j["kv_usage"] = r.kv_usage ? json{{"keys", std::to_string(r.kv_usage->keys)}, {"bytes", std::to_string(r.kv_usage->bytes)}}
                             : json(nullptr);
  j["kv_reads"] = json::array();
  for (const auto& x : r.kv_reads) j["kv_reads"].push_back({{"key", to_hex(x.key)}, {"value", opt_hex(x.value)}});
  j["kv_lists"] = json::array();
  for (const auto& x : r.kv_lists) {
    json keys = json::array();
    for (const auto& k : x.keys) keys.push_back(to_hex(k));
    j["kv_lists"].push_back({{"prefix", to_hex(x.prefix)}, {"keys", keys}});
  }
  j["kv_writes"] = json::array();
  for (const auto& x : r.kv_writes) j["kv_writes"].push_back({{"key", to_hex(x.key)}, {"value", opt_hex(x.value)}});
  j["logs"] = json::array();
  for (const auto& x : r.logs) j["logs"].push_back({{"level", log_level_name(x.level)}, {"message", x.message}});
  j["logs_dropped"] = r.logs_dropped;
  j["fuel_used"] = std::to_string(r.fuel_used);
  j["trap"] = r.trap.kind == TrapKind::kNone ? json(nullptr)
                                              : json{{"kind", trap_kind_name(r.trap.kind)}, {"message", r.trap.message}};
  return j;
}

Result<CallRecord> call_record_from_json(const json& j) {
  Reader rd;
  CallRecord r;
  if (!j.is_object()) return Status::invalid("record: expected an object");
  if (rd.u64(rd.at(j, "version", "record"), "record.version") != 1) rd.fail("record.version: expected 1");
  const json& ex = rd.at(j, "export", "record");
  if (ex.is_string()) r.export_name = ex.get<std::string>();
  r.wall_ms = rd.u64(rd.at(j, "wall_ms", "record"), "record.wall_ms");
  r.monotonic_ns = rd.u64(rd.at(j, "monotonic_ns", "record"), "record.monotonic_ns");
  std::string seed = rd.hex(rd.at(j, "random_seed", "record"), "record.random_seed");
  if (seed.size() == r.random_seed.size()) std::copy(seed.begin(), seed.end(), reinterpret_cast<char*>(r.random_seed.data()));
  else rd.fail("record.random_seed: expected 32 bytes");
  const json& usage = rd.at(j, "kv_usage", "record");
  if (!usage.is_null())
    r.kv_usage = KvUsage{rd.u64(rd.at(usage, "keys", "record.kv_usage"), "record.kv_usage.keys"),
                         rd.u64(rd.at(usage, "bytes", "record.kv_usage"), "record.kv_usage.bytes")};
  auto arr = [&](const char* key) -> const json& {
    const json& a = rd.at(j, key, "record");
    if (!a.is_array()) rd.fail(std::string("record.") + key + ": expected an array");
    return a;
  };
  const json& reads = arr("kv_reads");
  if (reads.is_array())
    for (size_t i = 0; i < reads.size(); ++i) {
      std::string p = "record.kv_reads[" + std::to_string(i) + "]";
      r.kv_reads.push_back({rd.hex(rd.at(reads[i], "key", p), p + ".key"), rd.opt(rd.at(reads[i], "value", p), p + ".value")});
    }
  const json& lists = arr("kv_lists");
  if (lists.is_array())
    for (size_t i = 0; i < lists.size(); ++i) {
      std::string p = "record.kv_lists[" + std::to_string(i) + "]";
      KvList l;
      l.prefix = rd.hex(rd.at(lists[i], "prefix", p), p + ".prefix");
      const json& keys = rd.at(lists[i], "keys", p);
      if (keys.is_array())
        for (const auto& k : keys) l.keys.push_back(rd.hex(k, p + ".keys"));
      r.kv_lists.push_back(std::move(l));
    }
  const json& writes = arr("kv_writes");
  if (writes.is_array())
    for (size_t i = 0; i < writes.size(); ++i) {
      std::string p = "record.kv_writes[" + std::to_string(i) + "]";
      r.kv_writes.push_back({rd.hex(rd.at(writes[i], "key", p), p + ".key"), rd.opt(rd.at(writes[i], "value", p), p + ".value")});
    }
  const json& logs = arr("logs");
  if (logs.is_array())
    for (const auto& l : logs) {
      LogLine line;
      std::string lv = l.is_object() && l.contains("level") && l["level"].is_string() ? l["level"].get<std::string>() : "";
      if (lv == "debug") line.level = LogLevel::kDebug;
      else if (lv == "info") line.level = LogLevel::kInfo;
      else if (lv == "warn") line.level = LogLevel::kWarn;
      else if (lv == "error") line.level = LogLevel::kError;
      else rd.fail("record.logs: bad level");
      if (l.is_object() && l.contains("message") && l["message"].is_string()) line.message = l["message"].get<std::string>();
      r.logs.push_back(std::move(line));
    }
  r.logs_dropped = static_cast<uint32_t>(rd.u64(rd.at(j, "logs_dropped", "record"), "record.logs_dropped"));
  r.fuel_used = rd.u64(rd.at(j, "fuel_used", "record"), "record.fuel_used");
  const json& trap = rd.at(j, "trap", "record");
  if (!trap.is_null()) {
    std::string kind = trap.is_object() && trap.contains("kind") && trap["kind"].is_string() ? trap["kind"].get<std::string>() : "";
    for (int k = 1; k <= static_cast<int>(TrapKind::kHost); ++k)
      if (kind == trap_kind_name(static_cast<TrapKind>(k))) r.trap.kind = static_cast<TrapKind>(k);
    if (r.trap.kind == TrapKind::kNone) rd.fail("record.trap.kind: unknown trap kind");
    if (trap.contains("message") && trap["message"].is_string()) r.trap.message = trap["message"].get<std::string>();
  }
  if (!rd.err.empty()) return Status::invalid(rd.err);
  return r;
}

}  // namespace covenant
