// covenant wit: prints the WIT world of a component binary, as Covenant reads
// it (src/abi/component.cc), or with --json how it is wired to its core module.
//   covenant wit COMPONENT.wasm [--json]
// Exit codes: 0 printed, 1 usage/read error.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/command.h"
#include "covenant/component.h"

namespace covenant::cli {
namespace {

constexpr char kUsage[] = "wit COMPONENT.wasm [--json]";

int wit_main(int argc, char** argv) {
  std::vector<std::string> argv_v = to_vector(argc, argv);
  Reporter rep{"wit", has_json_flag(argv_v)};
  std::string path;
  bool as_json = false;
  CLI::App app("Prints the WIT world of a component binary as Covenant reads it, or with --json how it is wired to "
               "its core module (docs/components.md).",
               "covenant wit");
  configure(app);
  add_pos(app, "COMPONENT.wasm", path, "the component");
  add_json(app, as_json);
  if (auto code = parse(app, argv_v, rep, kUsage)) return *code;
  if (path.empty()) return rep.usage("need a component file", kUsage);
  if (std::string e = check_input_file("COMPONENT.wasm", path); !e.empty()) return rep.fail(kExitError, "bad_file", e);
  std::ifstream f(path, std::ios::binary);
  if (!f) return rep.fail(kExitError, "io", "cannot open " + path + ": " + std::strerror(errno));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), {});
  if (!component::is_component(bytes))
    return rep.fail(kExitError, "not_a_component",
                    path + " is not a component binary (a core module has no WIT of its own)");
  auto c = component::read_component(bytes, path);
  if (!c) return rep.fail(kExitError, "bad_component", c.status().message());
  if (!as_json) {
    std::fputs(c->wit.c_str(), stdout);
    return kExitOk;
  }
  nlohmann::json j;
  j["world"] = c->world;
  j["wit"] = c->wit;
  j["core_module_bytes"] = c->core_module.size();
  j["imports"] = c->imports;
  j["exports"] = nlohmann::json::array();
  for (auto& e : c->exports)
    j["exports"].push_back({{"interface", e.interface}, {"function", e.function}, {"core_export", e.core_export},
                            {"post_return", e.post_return}, {"realloc", e.realloc}, {"memory", e.memory}});
  j["lowered"] = nlohmann::json::array();
  for (auto& l : c->lowered)
    j["lowered"].push_back({{"core_module", l.core_module}, {"core_field", l.core_field}, {"interface", l.interface},
                            {"function", l.function}, {"signature", l.signature}, {"realloc", l.realloc},
                            {"memory", l.memory}});
  j["shims"] = c->shims;
  std::printf("%s\n", j.dump(2).c_str());
  return kExitOk;
}

COVENANT_COMMAND("wit", kUsage, wit_main);

}  // namespace
}  // namespace covenant::cli
