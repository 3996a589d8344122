// Grants manifest parsing (docs/host.md, "Grants"). Every error names the
// JSON path of the offending value.
#include <string>

#include <nlohmann/json.hpp>

#include "covenant/contract.h"
#include "covenant/strict_json.h"

namespace covenant {
namespace {

using json = nlohmann::json;

std::string describe(const json& j) {
  std::string s = j.dump();
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

Status expect_object(const json& j, const std::string& path) {
  if (!j.is_object()) return Status::invalid(path + ": expected an object, got " + describe(j));
  return Status::ok();
}

Result<uint64_t> get_u64(const json& j, const std::string& path, uint64_t max) {
  if (!j.is_number_unsigned())
    return Status::invalid(path + ": expected a non-negative integer, got " + describe(j));
  uint64_t v = j.get<uint64_t>();
  if (v > max) return Status::invalid(path + ": " + std::to_string(v) + " is above the limit " + std::to_string(max));
  return v;
}

bool valid_namespace(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Status no_fields(const json& j, const std::string& path) {
  COVENANT_RETURN_IF_ERROR(expect_object(j, path));
  if (!j.empty()) return Status::invalid(path + ": unknown field \"" + j.begin().key() + "\" (this capability takes none)");
  return Status::ok();
}

Result<KvGrant> parse_kv(const json& j, const std::string& path) {
  COVENANT_RETURN_IF_ERROR(expect_object(j, path));
  KvGrant g;
  for (auto it = j.begin(); it != j.end(); ++it) {
    std::string p = path + "." + it.key();
    if (it.key() == "namespace") {
      if (!it->is_string() || !valid_namespace(it->get<std::string>()))
        return Status::invalid(p + ": expected a name of 1..64 characters a-z 0-9 _ -, got " + describe(*it));
      g.ns = it->get<std::string>();
    } else if (it.key() == "max_keys") {
      auto v = get_u64(*it, p, kKvKeysMax);
      if (!v) return v.status();
      g.max_keys = *v;
    } else if (it.key() == "max_bytes") {
      auto v = get_u64(*it, p, kKvBytesMax);
      if (!v) return v.status();
      g.max_bytes = *v;
    } else {
      return Status::invalid(p + ": unknown field (kv takes namespace, max_keys, max_bytes)");
    }
  }
  return g;
}

Result<LogGrant> parse_log(const json& j, const std::string& path) {
  COVENANT_RETURN_IF_ERROR(expect_object(j, path));
  LogGrant g;
  for (auto it = j.begin(); it != j.end(); ++it) {
    std::string p = path + "." + it.key();
    if (it.key() == "level") {
      std::string s = it->is_string() ? it->get<std::string>() : "";
      if (s == "debug") g.level = LogLevel::kDebug;
      else if (s == "info") g.level = LogLevel::kInfo;
      else if (s == "warn") g.level = LogLevel::kWarn;
      else if (s == "error") g.level = LogLevel::kError;
      else return Status::invalid(p + ": expected one of \"debug\", \"info\", \"warn\", \"error\", got " + describe(*it));
    } else if (it.key() == "max_lines") {
      auto v = get_u64(*it, p, kLogLinesMax);
      if (!v) return v.status();
      g.max_lines = static_cast<uint32_t>(*v);
    } else if (it.key() == "max_bytes") {
      auto v = get_u64(*it, p, kLogBytesMax);
      if (!v) return v.status();
      g.max_bytes = *v;
    } else {
      return Status::invalid(p + ": unknown field (log takes level, max_lines, max_bytes)");
    }
  }
  return g;
}

}  // namespace

const char* log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "?";
}

bool Grants::allows(std::string_view capability) const {
  if (capability == "clock") return clock;
  if (capability == "crypto") return crypto;
  if (capability == "random") return random;
  if (capability == "kv") return kv.has_value();
  if (capability == "log") return log.has_value();
  return false;
}

Result<Grants> parse_grants(std::string_view json_text) {
  auto parsed = parse_json_strict(json_text, "grants");
  if (!parsed) return parsed.status();
  json j = std::move(parsed).value();
  COVENANT_RETURN_IF_ERROR(expect_object(j, "grants"));
  Grants g;
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "capabilities") return Status::invalid(it.key() + ": unknown field (a manifest has \"capabilities\")");
  if (!j.contains("capabilities")) return g;  // nothing granted
  const json& caps = j["capabilities"];
  COVENANT_RETURN_IF_ERROR(expect_object(caps, "capabilities"));
  for (auto it = caps.begin(); it != caps.end(); ++it) {
    std::string p = "capabilities." + it.key();
    if (it.key() == "clock") {
      COVENANT_RETURN_IF_ERROR(no_fields(*it, p));
      g.clock = true;
    } else if (it.key() == "crypto") {
      COVENANT_RETURN_IF_ERROR(no_fields(*it, p));
      g.crypto = true;
    } else if (it.key() == "random") {
      COVENANT_RETURN_IF_ERROR(no_fields(*it, p));
      g.random = true;
    } else if (it.key() == "kv") {
      auto kv = parse_kv(*it, p);
      if (!kv) return kv.status();
      g.kv = *kv;
    } else if (it.key() == "log") {
      auto log = parse_log(*it, p);
      if (!log) return log.status();
      g.log = *log;
    } else {
      return Status::invalid(p + ": unknown capability (known: clock, crypto, kv, log, random)");
    }
  }
  return g;
}

}  // namespace covenant
