// Property test for covenant bindgen: for random WIT packages (the generators
// of src/abi/random_wit.h, shared with the ABI's own property tests), the
// generated C and Rust guests echo random values of every named type, and all
// of them at once (usually past the 16 flat params, so spilled), unchanged
// through the host's canonical ABI. The C build also proves every layout with
// the generated _Static_asserts.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "abi/bindgen/bindgen.h"
#include "abi/random_wit.h"
#include "covenant/abi.h"
#include "covenant/engine.h"
#include "covenant/wit.h"
#include "guest_memory.h"

namespace covenant::bindgen {
namespace {

namespace fs = std::filesystem;
using ::covenant::Engine;
using ::covenant::Instance;
using ::covenant::Linker;
using ::covenant::Tier;
using ::covenant::Value;
using ::covenant::ValType;

constexpr int kPackages = 16;
constexpr int kValuesPerType = 4;
constexpr int kAssemblyScriptPackages = 6;  // asc takes seconds per build

std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}
void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}
int sh(const std::string& cmd, const fs::path& log) {
  int rc = std::system((cmd + " > /dev/null 2>" + log.string()).c_str());
  if (rc != 0) std::cerr << cmd << "\n" << read_text(log);
  return rc;
}

using testing_guest::InstanceMemory;

// The random package plus `interface e { use t.{n0..}; echo-nK: func(v: nK) -> nK; echo-all: ... }`.
std::string echo_package(uint64_t seed, std::vector<std::string>* names, bool with_all = true) {
  std::string text = abi::testgen::WitGen(seed).package();
  std::regex decl(R"((record|variant|enum|flags|type) (n[0-9]+))");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), decl); it != std::sregex_iterator(); ++it)
    names->push_back((*it)[2]);
  std::string e = "interface e {\n  use t.{";
  for (size_t i = 0; i < names->size(); ++i) e += (i ? ", " : "") + (*names)[i];
  e += "};\n";
  for (const auto& n : *names) e += "  echo-" + n + ": func(v: " + n + ") -> " + n + ";\n";
  if (!with_all) return text + e + "}\nworld w { export e; }\n";
  e += "  echo-all: func(";
  std::string tuple;
  for (int rep = 0; rep < 2; ++rep)
    for (size_t i = 0; i < names->size(); ++i) {
      e += (rep || i ? ", " : "") + std::string("a") + std::to_string(rep) + "x" + std::to_string(i) + ": " + (*names)[i];
      tuple += (rep || i ? ", " : "") + (*names)[i];
    }
  e += ") -> tuple<" + tuple + ">;\n}\n";
  return text + e + "world w { export e; }\n";
}

// Implementations built from the generated declarations: each echo returns its argument(s).
std::string c_impl(const std::string& header) {
  std::string out = "#include \"w.h\"\n";
  std::istringstream in(header);
  std::string line;
  std::regex proto(R"(^(\S+) (exports_e_echo_\w+)\((.*)\);$)");
  std::smatch m;
  while (std::getline(in, line)) {
    if (!std::regex_match(line, m, proto)) continue;
    std::string ret = m[1], fn = m[2], params = m[3];
    if (fn != "exports_e_echo_all") {
      out += ret + " " + fn + "(" + params + ") { return v; }\n";
      continue;
    }
    std::string body = "  " + ret + " r;\n";
    std::regex param(R"((a\d+x\d+))");
    int k = 0;
    for (auto it = std::sregex_iterator(params.begin(), params.end(), param); it != std::sregex_iterator(); ++it)
      body += "  r.f" + std::to_string(k++) + " = " + (*it)[1].str() + ";\n";
    out += ret + " " + fn + "(" + params + ") {\n" + body + "  return r;\n}\n";
  }
  return out;
}
std::string rust_impl(const std::string& module) {
  std::string out = "mod w;\nuse w::*;\npub struct Component;\nimpl EGuest for Component {\n";
  std::istringstream in(module);
  std::string line;
  std::regex sig(R"(^    fn (echo_\w+)\((.*)\) -> (.*);$)");
  std::smatch m;
  while (std::getline(in, line)) {
    if (!std::regex_match(line, m, sig)) continue;
    std::string fn = m[1], params = m[2], ret = m[3];
    if (fn != "echo_all") {
      out += "    fn " + fn + "(" + params + ") -> " + ret + " { v }\n";
      continue;
    }
    std::string tuple = "(";
    std::regex param(R"((a\d+x\d+):)");
    for (auto it = std::sregex_iterator(params.begin(), params.end(), param); it != std::sregex_iterator(); ++it)
      tuple += (*it)[1].str() + ", ";
    out += "    fn " + fn + "(" + params + ") -> " + ret + " { " + tuple + ") }\n";
  }
  return out + "}\n";
}

TEST(BindgenProperty, RandomTypesEchoUnchanged) {
  std::string clang = COVENANT_TEST_CLANG, rustc = COVENANT_TEST_RUSTC, asc = COVENANT_TEST_ASC, rename = COVENANT_TEST_RENAME;
  bool have_asc = !asc.empty() && fs::exists(asc) && !rename.empty();
  if (clang.empty() && rustc.empty() && !have_asc) GTEST_SKIP() << "no guest toolchain";
  auto engine = Engine::create({.cache_dir = (fs::path(COVENANT_BINARY_DIR) / "bindgen_property/cache").string()});
  ASSERT_TRUE(engine.is_ok()) << engine.status().message();
  size_t echoed = 0;
  for (int run = 1; run <= kPackages + (have_asc ? kAssemblyScriptPackages : 0); ++run) {
    // Runs past kPackages build the same packages without echo-all for
    // AssemblyScript, whose generic echo implementations cannot name the tuple.
    bool as_run = run > kPackages;
    int seed = as_run ? run - kPackages : run;
    if (as_run == false && clang.empty() && rustc.empty()) continue;
    std::vector<std::string> names;
    std::string text = echo_package(static_cast<uint64_t>(seed), &names, !as_run);
    auto parsed = wit::parse_wit(text);
    ASSERT_TRUE(parsed.is_ok()) << "seed " << seed << ": " << parsed.status().message() << "\n" << text;
    const wit::Package& pkg = *parsed;
    abi::Abi abi(pkg);
    const wit::Interface* e = pkg.find_interface("e");
    ASSERT_NE(e, nullptr);
    std::string iface = pkg.qualified_interface(*e);
    fs::path dir = fs::path(COVENANT_BINARY_DIR) / "bindgen_property" / ((as_run ? "as" : "") + std::to_string(seed));
    fs::remove_all(dir);
    write_text(dir / "w.wit", text);
    std::vector<std::pair<std::string, fs::path>> guests;
    if (as_run) {
      auto files = generate(pkg, {.lang = Lang::kAssemblyScript, .source_name = "w.wit"});
      ASSERT_TRUE(files.is_ok()) << files.status().message();
      for (const auto& f : *files) write_text(dir / "as" / f.path, f.content);
      std::string impl;
      for (const auto& n : names) impl += "export function eEcho" + std::string(1, 'N') + n.substr(1) + "<T>(v: T): T { return v; }\n";
      write_text(dir / "as/w_impl.ts", impl);
      ASSERT_EQ(sh(asc + " " + (dir / "as/w.ts").string() + " -o " + (dir / "as/raw.wasm").string() +
                       " --runtime stub --use abort= --disable bulk-memory -O1 --noAssert",
                   dir / "as/log.txt"),
                0)
          << "seed " << seed << " (AssemblyScript), see " << dir;
      ASSERT_EQ(sh(rename + " " + (dir / "as/raw.wasm").string() + " " + (dir / "as/w.wasm").string() + " " +
                       (dir / "as/w.exports").string(),
                   dir / "as/rename_log.txt"),
                0);
      guests.push_back({"assemblyscript", dir / "as/w.wasm"});
    }
    if (!as_run && !clang.empty()) {
      auto files = generate(pkg, {.lang = Lang::kC, .source_name = "w.wit"});
      ASSERT_TRUE(files.is_ok()) << files.status().message();
      for (const auto& f : *files) write_text(dir / "c" / f.path, f.content);
      write_text(dir / "c/impl.c", c_impl(read_text(dir / "c/w.h")));
      ASSERT_EQ(sh(clang + " --target=wasm32 -O1 -nostdlib -ffreestanding -fno-builtin -Wall -Wextra -Werror -Wl,--no-entry " +
                       (dir / "c/w.c").string() + " " + (dir / "c/impl.c").string() + " -o " + (dir / "c/w.wasm").string(),
                   dir / "c/log.txt"),
                0)
          << "seed " << seed << " (C), see " << dir;
      guests.push_back({"c", dir / "c/w.wasm"});
    }
    if (!as_run && !rustc.empty()) {
      auto files = generate(pkg, {.lang = Lang::kRust, .source_name = "w.wit"});
      ASSERT_TRUE(files.is_ok()) << files.status().message();
      for (const auto& f : *files) write_text(dir / "rust" / f.path, f.content);
      write_text(dir / "rust/lib.rs", rust_impl(read_text(dir / "rust/w.rs")));
      ASSERT_EQ(sh(rustc + " --edition=2021 --target wasm32-unknown-unknown --crate-type=cdylib -O -D warnings " +
                       (dir / "rust/lib.rs").string() + " -o " + (dir / "rust/w.wasm").string(),
                   dir / "rust/log.txt"),
                0)
          << "seed " << seed << " (Rust), see " << dir;
      guests.push_back({"rust", dir / "rust/w.wasm"});
    }
    for (const auto& [lang, path] : guests) {
      std::ifstream f(path, std::ios::binary);
      std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), {});
      auto module = (*engine)->load(bytes, {.tier = Tier::kInterp, .name = lang});
      ASSERT_TRUE(module.is_ok()) << lang << " seed " << seed << ": " << module.status().message();
      auto inst = (*module)->instantiate(Linker{});
      ASSERT_TRUE(inst.is_ok()) << inst.status().message();
      InstanceMemory mem(**inst, *(*module)->export_index(abi::kReallocExport));
      abi::testgen::ValueGen values(pkg, static_cast<uint64_t>(seed) * 7919);
      for (const auto& fn : e->functions) {
        for (int k = 0; k < kValuesPerType; ++k) {
          std::vector<abi::WitValue> args;
          for (const auto& p : fn.params) args.push_back(values.value(p.type));
          abi::CallContext cx(abi, mem);
          std::vector<abi::CoreValue> flat;
          Status st = cx.lower_params(fn, args, &flat);
          ASSERT_TRUE(st.is_ok()) << st.message();
          std::vector<Value> core;
          for (const auto& c : flat) core.push_back(Value{static_cast<ValType>(c.type), c.bits});
          auto out = (*inst)->call(abi::export_name(iface, fn), core);
          ASSERT_TRUE(out.is_ok()) << out.status().message();
          ASSERT_TRUE(out->ok()) << lang << " seed " << seed << " " << fn.name.written << ": " << out->trap.message;
          std::vector<abi::CoreValue> results;
          for (const auto& v : out->results) results.push_back(abi::CoreValue{static_cast<abi::CoreType>(v.type), v.bits});
          auto lifted = cx.lift_results(fn, results);
          ASSERT_TRUE(lifted.is_ok()) << lang << " seed " << seed << " " << fn.name.written << ": " << lifted.status().message();
          abi::WitValue want = args.size() == 1 ? args[0] : abi::WitValue::tuple(args);
          EXPECT_EQ(lifted->at(0), want) << lang << " seed " << seed << " " << fn.name.written << "\n  got  "
                                         << lifted->at(0).debug_string() << "\n  want " << want.debug_string();
          if (auto post = (*module)->export_index(abi::post_return_name(iface, fn))) {
            auto p = (*inst)->call(*post, out->results);
            ASSERT_TRUE(p.is_ok() && p->ok()) << lang << " post-return, seed " << seed;
          }
          ++echoed;
        }
      }
    }
  }
  std::cout << echoed << " random values echoed unchanged\n";
}

}  // namespace
}  // namespace covenant::bindgen
