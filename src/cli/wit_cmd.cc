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

#include "cli/command.h"
#include "covenant/component.h"

namespace covenant::cli {
namespace {

constexpr char kUsage[] = "wit COMPONENT.wasm [--json]";

int wit_main(int argc, char** argv) {
  std::string path;
  bool as_json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json") as_json = true;
    else if (!a.empty() && a[0] != '-' && path.empty()) path = a;
    else {
      std::fprintf(stderr, "covenant wit: bad argument '%s'\nusage: covenant %s\n", a.c_str(), kUsage);
      return kExitError;
    }
  }
  if (path.empty()) {
    std::fprintf(stderr, "usage: covenant %s\n", kUsage);
    return kExitError;
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "covenant wit: cannot open %s: %s\n", path.c_str(), std::strerror(errno));
    return kExitError;
  }
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), {});
  if (!component::is_component(bytes)) {
    std::fprintf(stderr, "covenant wit: %s is not a component binary (a core module has no WIT of its own)\n",
                 path.c_str());
    return kExitError;
  }
  auto c = component::read_component(bytes, path);
  if (!c) {
    std::fprintf(stderr, "covenant wit: %s\n", c.status().message().c_str());
    return kExitError;
  }
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
