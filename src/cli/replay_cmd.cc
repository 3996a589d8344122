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

#include "cli/args.h"
#include "cli/command.h"
#include "cli/guest_output.h"
#include "settle/settle.h"

namespace covenant::cli {
namespace {

using json = nlohmann::json;

constexpr const char* kReplayUsage = "replay PKG [--tier interp|baseline|optimized|auto] [--key PUBHEX | --keys-dir DIR] [--json]";

int replay_command(int argc, char** argv) {
  std::vector<std::string> argv_v = to_vector(argc, argv);
  Reporter rep{"replay", has_json_flag(argv_v)};
  std::string pkg_path, key_hex, keys_dir;
  Tier tier = Tier::kOptimized;
  bool as_json = false;
  CLI::App app("Re-executes a recorded call from its replay package (docs/replay.md): prints confirmed (exit 0) or "
               "refuted: <field> (exit 2); exit 1: unreadable or malformed package, usage.",
               "covenant replay");
  configure(app);
  add_pos(app, "PKG", pkg_path, "the replay package");
  add_tier(app, tier);
  auto* key = app.add_option("--key", key_hex, "the executor's Ed25519 public key, 64 hex digits")->type_name("PUBHEX");
  app.add_option("--keys-dir", keys_dir, "resolve the executor key from this key store")->type_name("DIR")->excludes(key);
  add_json(app, as_json);
  if (auto code = parse(app, argv_v, rep, kReplayUsage)) return *code;
  auto replay_fail = [&](bool, const std::string& msg) { return rep.usage(msg, kReplayUsage); };
  if (pkg_path.empty()) return replay_fail(as_json, "need a replay package file");
  if (std::string e = first_error({[&] { return check_input_file("PKG", pkg_path); },
                                   [&] { return keys_dir.empty() ? "" : check_dir("--keys-dir", keys_dir, false); }});
      !e.empty())
    return rep.fail(kExitError, "bad_file", e);
  std::vector<uint8_t> bytes;
  {
    std::ifstream f(pkg_path, std::ios::binary);
    if (!f) return rep.fail(kExitError, "io", "cannot open " + pkg_path);
    bytes.assign(std::istreambuf_iterator<char>(f), {});
  }
  // A replay package is a CBOR map keyed by text: anything else (a JSON intent, a
  // receipt, ...) is named as such rather than reported as a CBOR decoding detail.
  if (bytes.size() < 2 || (bytes[0] >> 5) != 5 || (bytes[1] >> 5) != 3)
    return rep.fail(kExitError, "bad_package",
                    pkg_path + " is not a replay package (expected a CBOR replay package made by approve --replay-out "
                               "or GET /v1/receipts/{id}/replay)");
  auto pkg = settle::decode_replay_package(bytes);
  if (!pkg) return rep.fail(kExitError, "bad_package", pkg_path + ": " + pkg.status().message());

  std::unique_ptr<KeyResolver> resolver;
  if (!key_hex.empty()) {
    PublicKey pub;
    if (!from_hex(key_hex, pub)) return replay_fail(as_json, "--key must be 64 hex digits (an Ed25519 public key)");
    resolver = std::make_unique<PinnedKey>(pub);
  } else if (!keys_dir.empty()) {
    auto ks = KeyStore::open(keys_dir, false);
    if (!ks) return rep.fail(kExitError, "keys", ks.status().to_string());
    resolver = std::move(*ks);
  }
  auto v = settle::replay(*pkg, tier, resolver.get());
  if (!v) return rep.fail(kExitError, "replay", v.status().to_string());
  if (as_json) {
    json j = {{"ok", true}, {"verdict", v->confirmed ? "confirmed" : "refuted"}, {"tier", tier_name(tier)},
              {"receipt_id", receipt_id_hex(pkg->receipt)}};
    if (!v->confirmed) {
      j["field"] = v->field;
      j["detail"] = v->detail;
    }
    if (!v->unchecked.empty()) {
      // A masked package: confirmed covers what could be re-checked.
      j["unchecked"] = v->unchecked;
      j["masked"] = pkg->masked;
      j["detail"] = v->detail;
    }
    std::printf("%s\n", j.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
  } else if (v->confirmed) {
    std::string not_checked;
    for (const std::string& u : v->unchecked) not_checked += (not_checked.empty() ? "" : ", ") + u;
    if (not_checked.empty()) std::printf("confirmed\n");
    else std::printf("confirmed, except what the masked fields hide: not re-checked: %s\n", not_checked.c_str());
    if (!v->unchecked.empty()) std::fprintf(stderr, "covenant replay: %s\n", escape_guest_text(v->detail).c_str());
  } else {
    std::printf("refuted: %s\n", v->field.c_str());
    // The detail can quote what the guest returned: printed inert (guest_output.h).
    std::fprintf(stderr, "covenant replay: %s\n", escape_guest_text(v->detail).c_str());
  }
  return v->confirmed ? kExitOk : kExitTrap;
}

}  // namespace

COVENANT_COMMAND("replay", kReplayUsage, replay_command);

}  // namespace covenant::cli
