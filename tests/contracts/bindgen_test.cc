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

#include "covenant/abi.h"
#include "covenant/engine.h"
#include "covenant/wit.h"
#include "covenant/wit_json.h"

namespace covenant::bindgen {
namespace {

using ::covenant::Engine;
using ::covenant::Instance;
using ::covenant::Linker;
using ::covenant::Tier;
using ::covenant::Value;
using ::covenant::ValType;

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

// Trivial implementations of all_exports.wit's `host` world (echo returns its argument).
void write_rust_impl(const fs::path& dir) {
  write_text(dir / "lib.rs",
             "mod host;\nuse host::*;\npub struct Component;\n"
             "impl EverythingGuest for Component {\n"
             "    fn echo(v: All) -> All { v }\n"
             "    fn nothing() {}\n"
             "    fn named(a: u32, type_: String) -> (u32, Vec<String>) { (a, vec![type_]) }\n"
             "    fn gated() -> Result<u64, Color> { Ok(42) }\n"
             "}\n"
             "impl HostGuest for Component {\n    fn run() -> u32 { 7 }\n}\n");
}

void write_as_impl(const fs::path& dir) {
  write_text(dir / "host_impl.ts",
             "import { All, EverythingNamedResults, ResultU64Color } from \"./host_types\";\n"
             "export function everythingEcho(v: All): All { return v; }\n"
             "export function everythingNothing(): void {}\n"
             "export function everythingNamed(a: u32, t: string): EverythingNamedResults {\n"
             "  const r = new EverythingNamedResults(); r.x = a; r.y = [t]; return r;\n}\n"
             "export function everythingGated(): ResultU64Color { const r = new ResultU64Color(); r.ok = 42; return r; }\n"
             "export function hostRun(): u32 { return 7; }\n");
}

int compile_rust(const fs::path& dir) {
  return sh(std::string(COVENANT_TEST_RUSTC) + " --edition=2021 --target wasm32-unknown-unknown --crate-type=cdylib -O -D warnings " +
            (dir / "lib.rs").string() + " -o " + (dir / "host.wasm").string());
}

int compile_as(const fs::path& dir) {
  return sh(std::string(COVENANT_TEST_ASC) + " " + (dir / "host.ts").string() + " -o " + (dir / "host.wasm").string() +
            " --runtime stub --use abort= --disable bulk-memory -O2 --noAssert");
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
  write_rust_impl(dir);
  EXPECT_EQ(compile_rust(dir), 0);
}

TEST(Bindgen, AssemblyScriptCompilesForEveryType) {
  std::string asc = COVENANT_TEST_ASC;
  if (asc.empty() || !fs::exists(asc)) GTEST_SKIP() << "asc not installed (scripts/setup.sh runs npm ci in sdk/assemblyscript)";
  fs::path dir = generate_into("as_all", all_exports_text(), Lang::kAssemblyScript);
  write_as_impl(dir);
  EXPECT_EQ(compile_as(dir), 0);
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

// ---- generated code at run time: echo(all) through every language's bindings
// returns the value it was given (every type constructor, flat and spilled
// params, a spilled result, post-return), lifted by the host's canonical ABI.

class InstanceMemory final : public abi::GuestMemory {
 public:
  InstanceMemory(Instance& inst, uint32_t realloc_index) : inst_(inst), realloc_index_(realloc_index) {}
  uint8_t* data() override { return inst_.memory().data(); }
  uint64_t size() override { return inst_.memory().size(); }
  Result<uint32_t> realloc(uint32_t op, uint32_t os, uint32_t al, uint32_t ns) override {
    Value args[] = {Value::i32(static_cast<int32_t>(op)), Value::i32(static_cast<int32_t>(os)),
                    Value::i32(static_cast<int32_t>(al)), Value::i32(static_cast<int32_t>(ns))};
    auto out = inst_.call(realloc_index_, args);
    if (!out) return out.status();
    if (!out->ok()) return Status::invalid("cabi_realloc trapped: " + out->trap.message);
    return static_cast<uint32_t>(out->results.at(0).bits);
  }

 private:
  Instance& inst_;
  uint32_t realloc_index_;
};

// Builds the `host` world of all_exports.wit in `lang` with a trivial
// implementation; returns the .wasm path, or "" if the toolchain is missing.
std::string build_all(const std::string& lang) {
  std::string clang = COVENANT_TEST_CLANG, rustc = COVENANT_TEST_RUSTC, asc = COVENANT_TEST_ASC, rename = COVENANT_TEST_RENAME;
  if (lang == "c") {
    if (clang.empty()) return "";
    fs::path dir = generate_into("rt_c", all_exports_text(), Lang::kC);
    write_text(dir / "impl.c",
               "#include \"host.h\"\n"
               "everything_all_t exports_everything_echo(everything_all_t v) { return v; }  // params move into the result\n"
               "void exports_everything_nothing(void) {}\n"
               "everything_named_results_t exports_everything_named(uint32_t a, host_string_t type_) {\n"
               "  everything_named_results_t r;\n  r.x = a;\n  r.y.ptr = (host_string_t *)host_malloc(sizeof(host_string_t));\n"
               "  r.y.ptr[0] = type_;\n  r.y.len = 1;\n  return r;\n}\n"
               "host_result_u64_color_t exports_everything_gated(void) {\n"
               "  host_result_u64_color_t r;\n  r.is_err = false;\n  r.val.ok = 42;\n  return r;\n}\n"
               "uint32_t exports_host_run(void) { return 7; }\n");
    fs::path out = dir / "host_c.wasm";
    if (sh(clang + " --target=wasm32 -O2 -nostdlib -ffreestanding -fno-builtin -Wall -Wextra -Werror -Wl,--no-entry "
                   "-Wl,--gc-sections " + (dir / "host.c").string() + " " + (dir / "impl.c").string() + " -o " + out.string()) != 0)
      return "build failed";
    return out.string();
  }
  if (lang == "rust") {
    if (rustc.empty()) return "";
    fs::path dir = generate_into("rt_rust", all_exports_text(), Lang::kRust);
    write_rust_impl(dir);
    if (compile_rust(dir) != 0) return "build failed";
    return (dir / "host.wasm").string();
  }
  if (lang == "assemblyscript") {
    if (asc.empty() || !fs::exists(asc) || rename.empty()) return "";
    fs::path dir = generate_into("rt_as", all_exports_text(), Lang::kAssemblyScript);
    write_as_impl(dir);
    if (compile_as(dir) != 0) return "build failed";
    fs::path out = dir / "host_renamed.wasm";
    if (sh(rename + " " + (dir / "host.wasm").string() + " " + out.string() + " " + (dir / "host.exports").string()) != 0)
      return "rename failed";
    return out.string();
  }
  return "";
}

const char* kAllValues[] = {
    R"({"b":true,"a8":-5,"b8":200,"a16":-300,"b16":60000,"a32":-70000,"b32":4000000000,"a64":"-9000000000",
        "b64":"18446744073709551615","f":1.5,"d":-2.25,"c":"\u00e9","s":"h\u00e9llo \ud83e\udd16","l":[1,2,3],"t":["x",7],
        "o":"some","oo":{"some":null},"r1":{"ok":5},"r2":{"err":null},"r3":{"err":"e"},"r4":{"ok":null},
        "when":"123","col":"green","p":["read","exec"],"sh":{"rect":[{"x":1,"y":2},{"x":-3,"y":4}]},
        "pts":[{"x":1,"y":-1},{"x":2147483647,"y":-2147483648}]})",
    R"({"b":false,"a8":127,"b8":0,"a16":0,"b16":0,"a32":0,"b32":0,"a64":"0","b64":"0","f":-0.0,"d":"Infinity","c":"z",
        "s":"","l":[],"t":["",0],"o":null,"oo":null,"r1":{"err":"bad"},"r2":{"ok":9},"r3":{"ok":null},"r4":{"err":null},
        "when":"0","col":"blue","p":[],"sh":{"circle":-1e300},"pts":[]})",
    R"({"b":true,"a8":-128,"b8":255,"a16":32767,"b16":65535,"a32":2147483647,"b32":4294967295,"a64":"-9223372036854775808",
        "b64":"9007199254740993","f":3.4028234663852886e38,"d":5e-324,"c":"\ud83d\ude00","s":"a\u0000b","l":[255],
        "t":["\u4e16\u754c",4294967295],"o":"","oo":{"some":7},"r1":{"ok":0},"r2":{"ok":0},"r3":{"err":""},"r4":{"ok":null},
        "when":"18446744073709551615","col":"red","p":["read","write","exec"],"sh":"empty","pts":[{"x":0,"y":0}]})",
};

TEST(Bindgen, GeneratedCodeRoundTripsEveryType) {
  wit::Package pkg = parse(all_exports_text());
  abi::Abi abi(pkg);
  const wit::World* world = pkg.find_world("host");
  ASSERT_NE(world, nullptr);
  const wit::Function* echo = pkg.find_function("everything", "echo");
  const wit::Function* named = pkg.find_function("everything", "named");
  const wit::Function* gated = pkg.find_function("everything", "gated");
  ASSERT_TRUE(echo && named && gated);
  std::string iface;
  for (const auto& item : world->exports)
    if (item.kind == wit::WorldItem::Kind::kInterface) iface = abi::interface_core_name(pkg, item);
  auto engine = Engine::create({.cache_dir = (fs::path(COVENANT_BINARY_DIR) / "bindgen_test/cache").string()});
  ASSERT_TRUE(engine.is_ok()) << engine.status().message();
  int ran = 0;
  for (const std::string lang : {"c", "rust", "assemblyscript"}) {
    std::string path = build_all(lang);
    if (path.empty()) continue;  // toolchain missing: the compile test says so
    ASSERT_TRUE(fs::exists(path)) << lang << ": " << path;
    std::ifstream f(path, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), {});
    auto module = (*engine)->load(bytes, {.tier = Tier::kInterp, .name = "host_" + lang});
    ASSERT_TRUE(module.is_ok()) << lang << ": " << module.status().message();
    EXPECT_TRUE((*module)->imports().empty()) << lang;
    auto inst = (*module)->instantiate(Linker{});
    ASSERT_TRUE(inst.is_ok()) << lang << ": " << inst.status().message();
    Instance& in = **inst;
    auto realloc = (*module)->export_index(abi::kReallocExport);
    ASSERT_TRUE(realloc.has_value()) << lang;
    InstanceMemory mem(in, *realloc);

    auto call = [&](const wit::Function& fn, std::vector<abi::WitValue> args) -> std::vector<abi::WitValue> {
      abi::CallContext cx(abi, mem);
      std::vector<abi::CoreValue> flat;
      Status st = cx.lower_params(fn, args, &flat);
      EXPECT_TRUE(st.is_ok()) << lang << " " << fn.name.written << ": " << st.message();
      std::vector<Value> core;
      for (const auto& c : flat) core.push_back(Value{static_cast<ValType>(c.type), c.bits});
      auto out = in.call(abi::export_name(iface, fn), core);
      EXPECT_TRUE(out.is_ok() && out->ok()) << lang << " " << fn.name.written << ": "
                                            << (out.is_ok() ? out->trap.message : out.status().message());
      if (!out.is_ok() || !out->ok()) return {};
      std::vector<abi::CoreValue> results;
      for (const auto& v : out->results) results.push_back(abi::CoreValue{static_cast<abi::CoreType>(v.type), v.bits});
      auto lifted = cx.lift_results(fn, results);
      EXPECT_TRUE(lifted.is_ok()) << lang << " " << fn.name.written << ": " << lifted.status().message();
      if (auto post = (*module)->export_index(abi::post_return_name(iface, fn))) {
        auto p = in.call(*post, out->results);
        EXPECT_TRUE(p.is_ok() && p->ok()) << lang << " post-return of " << fn.name.written;
      }
      return lifted.is_ok() ? *lifted : std::vector<abi::WitValue>{};
    };

    for (int round = 0; round < 3; ++round) {  // again on the same instance: allocators reuse freed memory
      for (const char* text : kAllValues) {
        auto v = abi::value_from_json(pkg, echo->params[0].type, nlohmann::json::parse(text));
        ASSERT_TRUE(v.is_ok()) << v.status().message();
        auto got = call(*echo, {*v});
        ASSERT_EQ(got.size(), 1u) << lang;
        EXPECT_EQ(got[0], *v) << lang << ": " << got[0].debug_string() << "\n  != " << v->debug_string();
      }
      auto n = call(*named, {abi::WitValue::u32(9), abi::WitValue::string("t\xc3\xa9")});
      ASSERT_EQ(n.size(), 2u) << lang;
      EXPECT_EQ(n[0], abi::WitValue::u32(9)) << lang;
      EXPECT_EQ(n[1], abi::WitValue::list({abi::WitValue::string("t\xc3\xa9")})) << lang;
      auto g = call(*gated, {});
      ASSERT_EQ(g.size(), 1u) << lang;
      EXPECT_EQ(g[0], abi::WitValue::ok(abi::WitValue::u64(42))) << lang;
    }
    auto run = in.call("run", {});
    ASSERT_TRUE(run.is_ok() && run->ok()) << lang;
    EXPECT_EQ(run->results.at(0).bits, 7u) << lang;
    ++ran;
    std::cout << lang << ": echo/named/gated/run round-trip\n";
  }
  if (ran == 0) GTEST_SKIP() << "no guest toolchain";
}

}  // namespace
}  // namespace covenant::bindgen
