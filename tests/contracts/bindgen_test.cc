// covenant bindgen: generated bindings name the exports as wit-bindgen does and
// compile in every language (C's _Static_asserts pin the canonical layouts).
// Tools missing from the machine skip their compile checks.
#include "abi/bindgen/bindgen.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "covenant/wit.h"

namespace covenant::bindgen {
namespace {

namespace fs = std::filesystem;

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

wit::Package parse(const std::string& text) {
  auto pkg = wit::parse_wit(text);
  EXPECT_TRUE(pkg.is_ok()) << pkg.status().message();
  return std::move(pkg).value();
}

std::string seed_text() { return std::string(wit::seed_policy_wit()); }
std::string all_exports_text() { return read_text(fs::path(COVENANT_SOURCE_DIR) / "tests/contracts/wit/all_exports.wit"); }

// Writes the generated files for (wit, lang) under build/bindgen_test/<name>/ and returns the dir.
fs::path generate_into(const std::string& name, const std::string& text, Lang lang, const std::string& world = "") {
  wit::Package pkg = parse(text);
  auto files = generate(pkg, {.lang = lang, .world = world, .source_name = name + ".wit"});
  EXPECT_TRUE(files.is_ok()) << files.status().message();
  fs::path dir = fs::path(COVENANT_BINARY_DIR) / "bindgen_test" / name;
  fs::remove_all(dir);
  if (files.is_ok())
    for (const auto& f : *files) write_text(dir / f.path, f.content);
  return dir;
}

int sh(const std::string& cmd) {
  int rc = std::system((cmd + " > /dev/null 2>" + (fs::path(COVENANT_BINARY_DIR) / "bindgen_test/last_stderr.txt").string()).c_str());
  if (rc != 0) std::cerr << cmd << "\n" << read_text(fs::path(COVENANT_BINARY_DIR) / "bindgen_test/last_stderr.txt");
  return rc;
}

TEST(Bindgen, ParseLang) {
  EXPECT_EQ(parse_lang("c").value(), Lang::kC);
  EXPECT_EQ(parse_lang("c++").value(), Lang::kCpp);
  EXPECT_EQ(parse_lang("as").value(), Lang::kAssemblyScript);
  EXPECT_EQ(parse_lang("rust").value(), Lang::kRust);
  EXPECT_FALSE(parse_lang("go").is_ok());
}

TEST(Bindgen, WorldSelection) {
  wit::Package seed = parse(seed_text());
  EXPECT_TRUE(generate(seed, {.lang = Lang::kC}).is_ok());  // the only world
  EXPECT_EQ(generate(seed, {.lang = Lang::kC, .world = "nope"}).status().code(), Code::kNotFound);
  wit::Package two = parse("package a:b; interface i { f: func(); } world x { export i; } world y { export i; }");
  EXPECT_FALSE(generate(two, {.lang = Lang::kC}).is_ok());
  EXPECT_TRUE(generate(two, {.lang = Lang::kC, .world = "y"}).is_ok());
  wit::Package imports = parse("package a:b; world x { import log: func(m: string); export f: func(); }");
  auto refused = generate(imports, {.lang = Lang::kC});
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("imports function log"), std::string::npos);
}

TEST(Bindgen, SeedNamesInEveryLanguage) {
  wit::Package seed = parse(seed_text());
  for (Lang lang : {Lang::kC, Lang::kCpp, Lang::kRust, Lang::kAssemblyScript}) {
    auto files = generate(seed, {.lang = lang});
    ASSERT_TRUE(files.is_ok()) << files.status().message();
    std::string all;
    for (const auto& f : *files) all += f.content;
    EXPECT_NE(all.find("agent:settlement/policy@0.1.0#approve"), std::string::npos) << static_cast<int>(lang);
    EXPECT_NE(all.find("cabi_post_agent:settlement/policy@0.1.0#approve"), std::string::npos) << static_cast<int>(lang);
    EXPECT_NE(all.find("cabi_realloc"), std::string::npos);
  }
  auto as = generate(seed, {.lang = Lang::kAssemblyScript});
  ASSERT_TRUE(as.is_ok());
  ASSERT_EQ(as->size(), 3u);
  EXPECT_EQ((*as)[1].path, "escrow_types.ts");
  EXPECT_EQ((*as)[2].path, "escrow.exports");
  EXPECT_EQ((*as)[2].content,
            "__cov_export_0_approve agent:settlement/policy@0.1.0#approve\n"
            "__cov_post_0_approve cabi_post_agent:settlement/policy@0.1.0#approve\n");
}

// The C types must be the canonical layout: the generated _Static_asserts
// compare sizeof/_Alignof/offsetof with abi::Layout for every type.
TEST(Bindgen, CCompilesForEveryType) {
  std::string clang = COVENANT_TEST_CLANG;
  if (clang.empty()) GTEST_SKIP() << "clang not found";
  for (auto [name, text] : {std::pair{"c_seed", seed_text()}, std::pair{"c_all", all_exports_text()}}) {
    fs::path dir = generate_into(name, text, Lang::kC);
    std::string w = std::string(name) == "c_seed" ? "escrow" : "host";
    EXPECT_EQ(sh(clang + " --target=wasm32 -O2 -nostdlib -ffreestanding -fno-builtin -Wall -Wextra -Werror -c " +
                 (dir / (w + ".c")).string() + " -o " + (dir / (w + ".o")).string()),
              0);
  }
}

TEST(Bindgen, CppHeaderCompiles) {
  std::string clang = COVENANT_TEST_CLANG;
  if (clang.empty()) GTEST_SKIP() << "clang not found";
  fs::path dir = generate_into("cpp_all", all_exports_text(), Lang::kCpp);
  write_text(dir / "use.cc",
             "#include \"host.hpp\"\n"
             "static_assert(sizeof(host::All) > 0);\n"
             "bool f(const host::String& s) { return host::view(s).starts_with(\"x\"); }\n"
             "size_t g(const host::List& l) { return host::view(l).size(); }\n");
  // list<point> is the only anonymous list in all_exports.wit besides list<u8>/list<string>.
  std::string use = read_text(dir / "use.cc");
  use.replace(use.find("host::List"), 10, "host_list_u8_t");
  write_text(dir / "use.cc", use);
  EXPECT_EQ(sh(clang + " --target=wasm32 -O2 -nostdlib -ffreestanding -fno-builtin -fno-exceptions -fno-rtti -std=c++20 -Wall -Wextra "
                       "-Werror -c " + (dir / "use.cc").string() + " -o " + (dir / "use.o").string()),
            0);
}

TEST(Bindgen, RustCompilesForEveryType) {
  std::string rustc = COVENANT_TEST_RUSTC;
  if (rustc.empty()) GTEST_SKIP() << "rustc with the wasm32 std not found";
  fs::path dir = generate_into("rust_all", all_exports_text(), Lang::kRust);
  write_text(dir / "lib.rs",
             "mod host;\nuse host::*;\npub struct Component;\n"
             "impl EverythingGuest for Component {\n"
             "    fn echo(v: All) -> All { v }\n"
             "    fn nothing() {}\n"
             "    fn named(a: u32, type_: String) -> (u32, Vec<String>) { (a, vec![type_]) }\n"
             "    fn gated() -> Result<u64, Color> { Ok(1) }\n"
             "}\n"
             "impl HostGuest for Component {\n    fn run() -> u32 { 7 }\n}\n");
  EXPECT_EQ(sh(rustc + " --edition=2021 --target wasm32-unknown-unknown --crate-type=cdylib -O -D warnings " +
               (dir / "lib.rs").string() + " -o " + (dir / "host.wasm").string()),
            0);
}

TEST(Bindgen, AssemblyScriptCompilesForEveryType) {
  std::string asc = COVENANT_TEST_ASC;
  if (asc.empty() || !fs::exists(asc)) GTEST_SKIP() << "asc not installed (scripts/setup.sh runs npm ci in sdk/assemblyscript)";
  fs::path dir = generate_into("as_all", all_exports_text(), Lang::kAssemblyScript);
  write_text(dir / "host_impl.ts",
             "import { All, EverythingNamedResults, ResultU64Color } from \"./host_types\";\n"
             "export function everythingEcho(v: All): All { return v; }\n"
             "export function everythingNothing(): void {}\n"
             "export function everythingNamed(a: u32, t: string): EverythingNamedResults {\n"
             "  const r = new EverythingNamedResults(); r.x = a; r.y = [t]; return r;\n}\n"
             "export function everythingGated(): ResultU64Color { const r = new ResultU64Color(); r.ok = 5; return r; }\n"
             "export function hostRun(): u32 { return 7; }\n");
  EXPECT_EQ(sh(asc + " " + (dir / "host.ts").string() + " -o " + (dir / "host.wasm").string() +
               " --runtime stub --use abort= --disable bulk-memory -O2 --noAssert"),
            0);
}

// The bindings checked in beside the example contracts are exactly what
// `covenant bindgen FILE --lang L` writes for tests/wit/seed.wit today.
// COVENANT_BINDGEN_UPDATE=1 rewrites them.
TEST(Bindgen, ExampleBindingsAreFresh) {
  fs::path root = fs::path(COVENANT_SOURCE_DIR);
  wit::Package seed = parse(read_text(root / "tests/wit/seed.wit"));
  bool update = std::getenv("COVENANT_BINDGEN_UPDATE") != nullptr;
  for (auto [lang, dir] : {std::pair{Lang::kC, "c"}, std::pair{Lang::kCpp, "cpp"}, std::pair{Lang::kRust, "rust"},
                           std::pair{Lang::kAssemblyScript, "assemblyscript"}}) {
    auto files = generate(seed, {.lang = lang, .source_name = "seed.wit"});
    ASSERT_TRUE(files.is_ok()) << files.status().message();
    for (const auto& f : *files) {
      fs::path p = root / "contracts/examples" / dir / f.path;
      if (update) write_text(p, f.content);
      EXPECT_EQ(read_text(p), f.content) << p << " is stale: run covenant bindgen --lang " << dir
                                         << " tests/wit/seed.wit --out contracts/examples/" << dir;
    }
  }
}

}  // namespace
}  // namespace covenant::bindgen
