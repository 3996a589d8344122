// covenant bindgen: writes guest bindings for a WIT world (src/abi/bindgen/bindgen.h).
//   covenant bindgen --lang c|cpp|assemblyscript|rust FILE.wit [--world W] [--out DIR] [--deps DEP.wit]...
// --deps names a package that defines foreign interfaces the world imports
// (covenant:host, e.g. `import covenant:host/kv@0.1.0;`, is built in and
// used when no --deps package defines it).
// Exit codes: 0 written, 1 usage/parse/generation error.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "abi/bindgen/bindgen.h"
#include "cli/args.h"
#include "cli/command.h"
#include "covenant/contract.h"
#include "covenant/wit.h"

namespace covenant::cli {
namespace {

constexpr const char* kBindgenUsage =
    "bindgen --lang c|cpp|assemblyscript|rust FILE.wit [--world W] [--out DIR] [--deps DEP.wit]... [--json]";

int bindgen_main(int argc, char** argv) {
  std::vector<std::string> argv_v = to_vector(argc, argv);
  Reporter rep{"bindgen", has_json_flag(argv_v)};
  std::string lang_name, world, out_dir = ".", wit_path;
  std::vector<std::string> dep_paths;
  bool as_json = false;
  CLI::App app("Writes guest bindings for a WIT world (docs/bindgen.md).", "covenant bindgen");
  configure(app);
  add_pos(app, "FILE.wit", wit_path, "the WIT package");
  app.add_option("--lang", lang_name, "the guest language (required)")->type_name("c|cpp|assemblyscript|rust");
  app.add_option("--world", world, "the world (default: the only one)")->type_name("W");
  app.add_option("--out", out_dir, "output directory (created if missing)")->type_name("DIR");
  app.add_option("--deps", dep_paths, "a package defining foreign interfaces the world imports (repeatable)")
      ->type_name("DEP.wit")
      ->default_str("")
      ->allow_extra_args(false);
  add_json(app, as_json);
  if (auto code = parse(app, argv_v, rep, kBindgenUsage)) return *code;
  if (lang_name.empty() || wit_path.empty())
    return rep.usage(lang_name.empty() ? "need --lang" : "need a WIT file", kBindgenUsage);
  {
    std::string e = check_input_file("FILE.wit", wit_path);
    for (const auto& d : dep_paths)
      if (e.empty()) e = check_input_file("--deps", d);
    if (e.empty()) e = check_dir("--out", out_dir, true);
    if (!e.empty()) return rep.fail(kExitError, "bad_file", e);
  }
  auto lang = bindgen::parse_lang(lang_name);
  if (!lang) return rep.usage(lang.status().message(), kBindgenUsage);
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
  if (!pkg) return rep.fail(kExitError, "wit", pkg.status().message());
  std::vector<wit::Package> deps;
  deps.reserve(dep_paths.size());
  for (const auto& d : dep_paths) {
    auto dep = load(d);
    if (!dep) return rep.fail(kExitError, "wit", dep.status().message());
    deps.push_back(std::move(dep).value());
  }
  // covenant:host is built into the binary: without a --deps package for it,
  // the world's `import covenant:host/...` resolves against that text.
  bool have_host = false;
  for (const auto& d : deps) have_host = have_host || (d.ns == "covenant" && d.name == "host");
  if (!have_host) {
    auto host = wit::parse_wit(covenant::host_wit(), {.file_name = "host.wit"});
    if (!host) return rep.fail(kExitError, "wit", "built-in covenant:host: " + host.status().message());
    deps.push_back(std::move(host).value());
  }
  bindgen::Options options{.lang = *lang, .world = world, .source_name = std::filesystem::path(wit_path).filename().string()};
  for (const auto& d : deps) options.deps.push_back(&d);
  auto files = bindgen::generate(*pkg, options);
  if (!files) return rep.fail(kExitError, "bindgen", files.status().message());
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  std::vector<std::string> written;
  for (const auto& f : *files) {
    auto path = std::filesystem::path(out_dir) / f.path;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << f.content;
    if (!out) return rep.fail(kExitError, "io", "cannot write " + path.string());
    written.push_back(path.string());
  }
  if (as_json) {
    std::printf("%s\n", nlohmann::json{{"ok", true}, {"files", written}}.dump().c_str());
  } else {
    for (const auto& w : written) std::printf("%s\n", w.c_str());
  }
  return kExitOk;
}

}  // namespace

COVENANT_COMMAND("bindgen", kBindgenUsage, bindgen_main);

}  // namespace covenant::cli
