// covenant bindgen: writes guest bindings for a WIT world (src/abi/bindgen/bindgen.h).
//   covenant bindgen --lang c|cpp|assemblyscript|rust FILE.wit [--world W] [--out DIR] [--deps DEP.wit]...
// --deps names a package that defines foreign interfaces the world imports
// (e.g. src/host/wit/host.wit for `import covenant:host/kv@0.1.0;`).
// Exit codes: 0 written, 1 usage/parse/generation error.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "abi/bindgen/bindgen.h"
#include "cli/command.h"
#include "covenant/wit.h"

namespace covenant::cli {
namespace {

int bindgen_main(int argc, char** argv) {
  std::string lang_name, world, out_dir = ".", wit_path;
  std::vector<std::string> dep_paths;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string& dst) {
      if (i + 1 >= argc) return false;
      dst = argv[++i];
      return true;
    };
    bool ok = true;
    if (a == "--lang") ok = value(lang_name);
    else if (a == "--world") ok = value(world);
    else if (a == "--out") ok = value(out_dir);
    else if (a == "--deps") {
      std::string d;
      ok = value(d);
      dep_paths.push_back(d);
    }
    else if (!a.empty() && a[0] != '-' && wit_path.empty()) wit_path = a;
    else ok = false;
    if (!ok) {
      std::fprintf(stderr, "covenant bindgen: bad argument '%s'\n", a.c_str());
      return kExitError;
    }
  }
  if (lang_name.empty() || wit_path.empty()) {
    std::fprintf(stderr, "usage: covenant bindgen --lang c|cpp|assemblyscript|rust FILE.wit [--world W] [--out DIR] [--deps DEP.wit]...\n");
    return kExitError;
  }
  auto lang = bindgen::parse_lang(lang_name);
  if (!lang) {
    std::fprintf(stderr, "covenant bindgen: %s\n", lang.status().message().c_str());
    return kExitError;
  }
  auto load = [](const std::string& path) -> Result<wit::Package> {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::io("covenant bindgen: cannot open " + path + ": " + std::strerror(errno));
    std::stringstream text;
    text << in.rdbuf();
    auto pkg = wit::parse_wit(text.str(), {.file_name = path});
    if (pkg)
      for (const auto& w : pkg->warnings) std::fprintf(stderr, "%s\n", w.to_string().c_str());
    return pkg;
  };
  auto pkg = load(wit_path);
  if (!pkg) {
    std::fprintf(stderr, "%s\n", pkg.status().message().c_str());
    return kExitError;
  }
  std::vector<wit::Package> deps;
  deps.reserve(dep_paths.size());
  for (const auto& d : dep_paths) {
    auto dep = load(d);
    if (!dep) {
      std::fprintf(stderr, "%s\n", dep.status().message().c_str());
      return kExitError;
    }
    deps.push_back(std::move(dep).value());
  }
  bindgen::Options options{.lang = *lang, .world = world, .source_name = std::filesystem::path(wit_path).filename().string()};
  for (const auto& d : deps) options.deps.push_back(&d);
  auto files = bindgen::generate(*pkg, options);
  if (!files) {
    std::fprintf(stderr, "covenant %s\n", files.status().message().c_str());
    return kExitError;
  }
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  for (const auto& f : *files) {
    auto path = std::filesystem::path(out_dir) / f.path;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << f.content;
    if (!out) {
      std::fprintf(stderr, "covenant bindgen: cannot write %s\n", path.string().c_str());
      return kExitError;
    }
    std::printf("%s\n", path.string().c_str());
  }
  return kExitOk;
}

}  // namespace

COVENANT_COMMAND("bindgen", "bindgen --lang c|cpp|assemblyscript|rust FILE.wit [--world W] [--out DIR] [--deps DEP.wit]...", bindgen_main);

}  // namespace covenant::cli
