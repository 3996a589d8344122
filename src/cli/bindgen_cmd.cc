// covenant bindgen: writes guest bindings for a WIT world (src/abi/bindgen/bindgen.h).
//   covenant bindgen --lang c|cpp|assemblyscript|rust FILE.wit [--world W] [--out DIR]
// Exit codes: 0 written, 1 usage/parse/generation error.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "abi/bindgen/bindgen.h"
#include "cli/command.h"
#include "covenant/wit.h"

namespace covenant::cli {
namespace {

int bindgen_main(int argc, char** argv) {
  std::string lang_name, world, out_dir = ".", wit_path;
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
    else if (!a.empty() && a[0] != '-' && wit_path.empty()) wit_path = a;
    else ok = false;
    if (!ok) {
      std::fprintf(stderr, "covenant bindgen: bad argument '%s'\n", a.c_str());
      return kExitError;
    }
  }
  if (lang_name.empty() || wit_path.empty()) {
    std::fprintf(stderr, "usage: covenant bindgen --lang c|cpp|assemblyscript|rust FILE.wit [--world W] [--out DIR]\n");
    return kExitError;
  }
  auto lang = bindgen::parse_lang(lang_name);
  if (!lang) {
    std::fprintf(stderr, "covenant bindgen: %s\n", lang.status().message().c_str());
    return kExitError;
  }
  std::ifstream in(wit_path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "covenant bindgen: cannot open %s: %s\n", wit_path.c_str(), std::strerror(errno));
    return kExitError;
  }
  std::stringstream text;
  text << in.rdbuf();
  std::string name = std::filesystem::path(wit_path).filename().string();
  auto pkg = wit::parse_wit(text.str(), {.file_name = wit_path});
  if (!pkg) {
    std::fprintf(stderr, "%s\n", pkg.status().message().c_str());
    return kExitError;
  }
  for (const auto& w : pkg->warnings) std::fprintf(stderr, "%s\n", w.to_string().c_str());
  auto files = bindgen::generate(*pkg, {.lang = *lang, .world = world, .source_name = name});
  if (!files) {
    std::fprintf(stderr, "covenant bindgen: %s\n", files.status().message().c_str());
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

COVENANT_COMMAND("bindgen", "bindgen --lang c|cpp|assemblyscript|rust FILE.wit [--world W] [--out DIR]", bindgen_main);

}  // namespace covenant::cli
