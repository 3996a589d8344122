// covenant diff: what changes for callers between two versions of a contract
// (docs/cli.md, docs/api.md "Governed activation"): the WIT world's exports,
// imports and named types, and the grants, with a compatibility verdict.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/command.h"
#include "covenant/contract.h"
#include "covenant/engine.h"
#include "settle/interface_diff.h"

namespace covenant::cli {
namespace {

using json = nlohmann::json;

constexpr const char* kDiffUsage =
    "diff OLD.wasm NEW.wasm [--wit-old F] [--wit-new F] [--world-old W] [--world-new W] [--grants-old F] "
    "[--grants-new F] [--json]";

bool slurp(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  out->assign(std::istreambuf_iterator<char>(f), {});
  return !f.bad();
}

struct Side {
  std::string wasm, wit_path, world, grants_path;
  std::string wit, grants;
  std::unique_ptr<Contract> contract;
};

// Loads one version as `covenant call` would (interpreter: nothing is compiled).
std::string load_side(Engine& engine, Side& s) {
  std::string bytes;
  if (!slurp(s.wasm, &bytes)) return "cannot read " + s.wasm;
  if (!s.wit_path.empty() && !slurp(s.wit_path, &s.wit)) return "cannot read " + s.wit_path;
  DeployOptions o;
  o.tier = Tier::kInterp;
  o.wit = s.wit;
  o.world = s.world;
  o.name = s.wasm;
  if (!s.grants_path.empty()) {
    if (!slurp(s.grants_path, &s.grants)) return "cannot read " + s.grants_path;
    auto g = parse_grants(s.grants);
    if (!g) return s.grants_path + ": " + g.status().message();
    o.grants = *g;
  }
  auto c = Contract::deploy(engine, std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), o);
  if (!c) return s.wasm + ": " + c.status().message();
  s.contract = std::move(*c);
  return "";
}

void print_list(const char* title, const json& part) {
  for (const json& a : part["added"]) std::printf("  + %s %s\n", title, a.get<std::string>().c_str());
  for (const json& r : part["removed"]) std::printf("  - %s %s\n", title, r.get<std::string>().c_str());
  for (const json& c : part["changed"])
    std::printf("  ~ %s %s: %s -> %s\n", title, c["name"].get<std::string>().c_str(), c["from"].get<std::string>().c_str(),
                c["to"].get<std::string>().c_str());
}

int diff_command(int argc, char** argv) {
  std::vector<std::string> argv_v = to_vector(argc, argv);
  Reporter rep{"diff", has_json_flag(argv_v)};
  Side a, b;
  bool as_json = false;
  CLI::App app(
      "Compares two versions of a contract as callers see them: exported and imported functions, named types and "
      "grants. Exit 0 when callers of OLD keep working against NEW, 2 when an export was removed or changed, 1 on "
      "errors.",
      "covenant diff");
  configure(app);
  add_pos(app, "OLD.wasm", a.wasm, "the version now active (module or component)");
  add_pos(app, "NEW.wasm", b.wasm, "the candidate version");
  app.add_option("--wit-old", a.wit_path, "WIT of OLD (default: the component's own, or the seed world)");
  app.add_option("--wit-new", b.wit_path, "WIT of NEW");
  app.add_option("--world-old", a.world, "world of --wit-old (default: its only world)");
  app.add_option("--world-new", b.world, "world of --wit-new");
  app.add_option("--grants-old", a.grants_path, "grants manifest of OLD");
  app.add_option("--grants-new", b.grants_path, "grants manifest of NEW");
  add_json(app, as_json);
  if (auto code = parse(app, argv_v, rep, kDiffUsage)) return *code;
  if (a.wasm.empty() || b.wasm.empty()) return rep.usage("need OLD.wasm and NEW.wasm", kDiffUsage);
  if (std::string e = first_error({[&] { return check_input_file("OLD.wasm", a.wasm); },
                                   [&] { return check_input_file("NEW.wasm", b.wasm); },
                                   [&] { return a.wit_path.empty() ? "" : check_input_file("--wit-old", a.wit_path); },
                                   [&] { return b.wit_path.empty() ? "" : check_input_file("--wit-new", b.wit_path); },
                                   [&] { return a.grants_path.empty() ? "" : check_input_file("--grants-old", a.grants_path); },
                                   [&] { return b.grants_path.empty() ? "" : check_input_file("--grants-new", b.grants_path); }});
      !e.empty())
    return rep.fail(kExitError, "bad_file", e);
  auto engine = Engine::create({});
  if (!engine) return rep.fail(kExitError, "engine", engine.status().to_string());
  for (Side* s : {&a, &b})
    if (std::string e = load_side(**engine, *s); !e.empty()) return rep.fail(kExitError, "load", e);
  auto d = settle::interface_diff({&a.contract->package(), &a.contract->world(), a.grants},
                                  {&b.contract->package(), &b.contract->world(), b.grants});
  if (!d) return rep.fail(kExitError, "diff", d.status().message());
  const bool compatible = (*d)["compatible"].get<bool>();
  const std::string hash = to_hex(settle::interface_diff_hash(*d));
  if (as_json) {
    json out = {{"ok", true}, {"old", a.wasm}, {"new", b.wasm}, {"diff", *d}, {"diff_hash", hash}};
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("world %s -> %s\n", (*d)["world"]["from"].get<std::string>().c_str(),
                (*d)["world"]["to"].get<std::string>().c_str());
    print_list("export", (*d)["exports"]);
    print_list("import", (*d)["imports"]);
    for (const json& x : (*d)["types"]["added"]) std::printf("  + type %s\n", x.get<std::string>().c_str());
    for (const json& x : (*d)["types"]["removed"]) std::printf("  - type %s\n", x.get<std::string>().c_str());
    for (const json& c : (*d)["types"]["changed"])
      std::printf("  ~ type %s: %s -> %s\n", c["name"].get<std::string>().c_str(), c["from"].get<std::string>().c_str(),
                  c["to"].get<std::string>().c_str());
    for (const json& x : (*d)["grants"]["added"]) std::printf("  + grant %s\n", x.get<std::string>().c_str());
    for (const json& x : (*d)["grants"]["removed"]) std::printf("  - grant %s\n", x.get<std::string>().c_str());
    for (const json& c : (*d)["grants"]["changed"])
      std::printf("  ~ grant %s: %s -> %s\n", c["capability"].get<std::string>().c_str(), c["from"].dump().c_str(),
                  c["to"].dump().c_str());
    std::printf("%s\ndiff hash %s\n", compatible ? "compatible: callers of OLD keep working" : "BREAKING for callers of OLD",
                hash.c_str());
    for (const json& r : (*d)["reasons"]) std::printf("  %s\n", r.get<std::string>().c_str());
  }
  return compatible ? kExitOk : kExitTrap;
}

}  // namespace

COVENANT_COMMAND("diff", kDiffUsage, diff_command);

}  // namespace covenant::cli
