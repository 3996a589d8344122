// covenant replay PKG [--tier T] [--key PUBHEX | --keys-dir DIR] [--json]:
// re-executes a recorded call from its replay package (docs/replay.md) and
// prints `confirmed` (exit 0) or `refuted: <field>` (exit 2). Exit 1:
// unreadable or malformed package, usage.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "settle/settle.h"

namespace covenant::cli {
namespace {

using json = nlohmann::json;

constexpr const char* kReplayUsage = "replay PKG [--tier interp|baseline|optimized|auto] [--key PUBHEX | --keys-dir DIR] [--json]";

int replay_fail(bool as_json, const std::string& msg) {
  if (as_json) std::printf("%s\n", json{{"ok", false}, {"error", msg}}.dump().c_str());
  else std::fprintf(stderr, "covenant replay: %s\nusage: covenant %s\n", msg.c_str(), kReplayUsage);
  return kExitError;
}

int replay_command(int argc, char** argv) {
  std::string pkg_path, key_hex, keys_dir;
  Tier tier = Tier::kOptimized;
  bool as_json = false;
  for (int i = 1; i < argc; ++i) if (std::string(argv[i]) == "--json") as_json = true;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--json") continue;
    if (s == "--tier" || s == "--key" || s == "--keys-dir") {
      if (i + 1 >= argc) return replay_fail(as_json, s + " needs a value");
      std::string v = argv[++i];
      if (s == "--tier") {
        auto t = parse_tier(v);
        if (!t) return replay_fail(as_json, "unknown tier \"" + v + "\" (interp, baseline, optimized, auto)");
        tier = *t;
      } else if (s == "--key") {
        key_hex = v;
      } else {
        keys_dir = v;
      }
    } else if (s.rfind("--", 0) == 0) {
      return replay_fail(as_json, "unknown option " + s);
    } else if (pkg_path.empty()) {
      pkg_path = s;
    } else {
      return replay_fail(as_json, "unexpected argument " + s);
    }
  }
  if (pkg_path.empty()) return replay_fail(as_json, "need a replay package file");
  std::vector<uint8_t> bytes;
  {
    std::ifstream f(pkg_path, std::ios::binary);
    if (!f) return replay_fail(as_json, "cannot open " + pkg_path);
    bytes.assign(std::istreambuf_iterator<char>(f), {});
  }
  auto pkg = settle::decode_replay_package(bytes);
  if (!pkg) return replay_fail(as_json, pkg_path + ": " + pkg.status().message());

  std::unique_ptr<KeyResolver> resolver;
  if (!key_hex.empty()) {
    PublicKey pub;
    if (!from_hex(key_hex, pub)) return replay_fail(as_json, "--key must be 64 hex digits (an Ed25519 public key)");
    resolver = std::make_unique<PinnedKey>(pub);
  } else if (!keys_dir.empty()) {
    auto ks = KeyStore::open(keys_dir, false);
    if (!ks) return replay_fail(as_json, ks.status().to_string());
    resolver = std::move(*ks);
  }
  auto v = settle::replay(*pkg, tier, resolver.get());
  if (!v) return replay_fail(as_json, v.status().to_string());
  if (as_json) {
    json j = {{"ok", true}, {"verdict", v->confirmed ? "confirmed" : "refuted"}, {"tier", tier_name(tier)},
              {"receipt_id", receipt_id_hex(pkg->receipt)}};
    if (!v->confirmed) {
      j["field"] = v->field;
      j["detail"] = v->detail;
    }
    std::printf("%s\n", j.dump().c_str());
  } else if (v->confirmed) {
    std::printf("confirmed\n");
  } else {
    std::printf("refuted: %s\n", v->field.c_str());
    std::fprintf(stderr, "covenant replay: %s\n", v->detail.c_str());
  }
  return v->confirmed ? kExitOk : kExitTrap;
}

}  // namespace

COVENANT_COMMAND("replay", kReplayUsage, replay_command);

}  // namespace covenant::cli
