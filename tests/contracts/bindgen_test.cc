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
#include "guest_memory.h"

namespace covenant::bindgen {
namespace {

using ::covenant::Engine;
using ::covenant::FuncType;
using ::covenant::HostCall;
using ::covenant::HostResult;
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
  EXPECT_TRUE(generate(imports, {.lang = Lang::kC}).is_ok());
  EXPECT_TRUE(generate(imports, {.lang = Lang::kRust}).is_ok());
  EXPECT_TRUE(generate(imports, {.lang = Lang::kAssemblyScript}).is_ok());
  wit::Package foreign = parse("package a:b; world x { import covenant:host/kv@0.1.0; export f: func(); }");
  auto unresolved = generate(foreign, {.lang = Lang::kC});
  ASSERT_FALSE(unresolved.is_ok());
  EXPECT_NE(unresolved.status().message().find("no --deps package defines"), std::string::npos);
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

// ---- generated code at run time: echo(all) through every language's bindings
// returns the value it was given (every type constructor, flat and spilled
// params, a spilled result, post-return), lifted by the host's canonical ABI.

using testing_guest::InstanceMemory;

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

// Structurally equal anonymous types get distinct TypeIds from the parser but
// one name in C and AssemblyScript: each is defined once.
TEST(Bindgen, RepeatedAnonymousTypesAreDefinedOnce) {
  const std::string text =
      "package a:dup;\n"
      "interface i {\n"
      "  record r { x: list<u8>, y: option<string>, z: list<u8> }\n"
      "  f: func(a: list<u8>, b: option<string>, c: r) -> list<u8>;\n"
      "  g: func(a: option<string>) -> option<string>;\n"
      "}\n"
      "world w { export i; }\n";
  std::string clang = COVENANT_TEST_CLANG;
  if (!clang.empty()) {
    fs::path dir = generate_into("dup_c", text, Lang::kCpp);
    write_text(dir / "use.cc", "#include \"w.hpp\"\n");
    EXPECT_EQ(sh(clang + " --target=wasm32 -O2 -nostdlib -ffreestanding -fno-builtin -Wall -Wextra -Werror -c " +
                 (dir / "w.c").string() + " -o " + (dir / "w.o").string()),
              0);
    EXPECT_EQ(sh(clang + " --target=wasm32 -O2 -ffreestanding -fno-exceptions -fno-rtti -std=c++20 -Wall -Wextra -Werror -c " +
                 (dir / "use.cc").string() + " -o " + (dir / "use.o").string()),
              0);
  }
  std::string asc = COVENANT_TEST_ASC;
  if (!asc.empty() && fs::exists(asc)) {
    fs::path dir = generate_into("dup_as", text, Lang::kAssemblyScript);
    write_text(dir / "w_impl.ts",
               "import { R, OptionString } from \"./w_types\";\n"
               "export function iF(a: Array<u8>, b: OptionString, c: R): Array<u8> { return a; }\n"
               "export function iG(a: OptionString): OptionString { return a; }\n");
    EXPECT_EQ(sh(asc + " " + (dir / "w.ts").string() + " -o " + (dir / "w.wasm").string() +
                 " --runtime stub --use abort= --disable bulk-memory -O2 --noAssert"),
              0);
  }
  std::string rustc = COVENANT_TEST_RUSTC;
  if (!rustc.empty()) {
    fs::path dir = generate_into("dup_rust", text, Lang::kRust);
    write_text(dir / "lib.rs",
               "mod w;\nuse w::*;\npub struct Component;\nimpl IGuest for Component {\n"
               "    fn f(a: Vec<u8>, _b: Option<String>, _c: R) -> Vec<u8> { a }\n"
               "    fn g(a: Option<String>) -> Option<String> { a }\n}\n");
    EXPECT_EQ(sh(rustc + " --edition=2021 --target wasm32-unknown-unknown --crate-type=cdylib -O -D warnings " +
                 (dir / "lib.rs").string() + " -o " + (dir / "w.wasm").string()),
              0);
  }
}

// Imports (C, Rust, AssemblyScript): the guest calls functions of its own package (flat params with
// a variant join and a return-area result; 20 flat values spilled into a
// params tuple), of a foreign package resolved through Options::deps, and a
// world-level function; the host side lifts the params and lowers the results
// with the canonical ABI and checks every value.
class HostCallMemory final : public abi::GuestMemory {
 public:
  explicit HostCallMemory(HostCall& call) : call_(call) {}
  uint8_t* data() override { return call_.memory().data(); }
  uint64_t size() override { return call_.memory().size(); }
  Result<uint32_t> realloc(uint32_t, uint32_t, uint32_t, uint32_t) override {
    return Status::unsupported("no cabi_realloc from inside a host call in this test");
  }

 private:
  HostCall& call_;
};

FuncType core_type(const abi::CoreSignature& sig) {
  FuncType t;
  for (auto c : sig.params) t.params.push_back(static_cast<ValType>(c));
  for (auto c : sig.results) t.results.push_back(static_cast<ValType>(c));
  return t;
}

TEST(Bindgen, ImportsCallTheHost) {
  std::string clang = COVENANT_TEST_CLANG;
  if (clang.empty()) GTEST_SKIP() << "clang not found";
  fs::path wit_dir = fs::path(COVENANT_SOURCE_DIR) / "tests/contracts/wit";
  wit::Package guest = parse(read_text(wit_dir / "imports.wit"));
  wit::Package host = parse(read_text(wit_dir / "host_fns.wit"));
  auto files = generate(guest, {.lang = Lang::kC, .source_name = "imports.wit", .deps = {&host}});
  ASSERT_TRUE(files.is_ok()) << files.status().message();
  fs::path dir = fs::path(COVENANT_BINARY_DIR) / "bindgen_test/imports_c";
  fs::remove_all(dir);
  for (const auto& f : *files) write_text(dir / f.path, f.content);
  write_text(dir / "impl.c", R"C(#include "imports_test.h"
static uint32_t nums[3] = {1, 2, 3};
uint64_t exports_imports_test_run(imports_test_string_t s) {
  local_pair_t p;
  p.a = s;
  p.b = 5;
  local_pick_t x;
  x.tag = LOCAL_PICK_TEXT;
  x.val.text = s;
  local_summary_t a = imports_local_summarize(p, x, true);
  local_pick_t y;
  y.tag = LOCAL_PICK_SMALL;
  y.val.small = 2.5f;
  local_summary_t b = imports_local_summarize(p, y, false);
  local_pick_t z;
  z.tag = LOCAL_PICK_NUM;
  z.val.num = 1000000000000ull;
  local_summary_t c = imports_local_summarize(p, z, false);
  local_pick_t w;
  w.tag = LOCAL_PICK_NOTHING;
  local_summary_t d = imports_local_summarize(p, w, false);
  imports_test_list_u32_t m;
  m.ptr = nums;
  m.len = 3;
  uint32_t many = imports_local_many(1, 2, 3, 4, -5, -6, -7, -8, 1.5f, 2.5, 0x1F600, s, m, true, 11, 12);
  uint64_t bumped = imports_counter_bump(COUNTER_MODE_ADD, 7);
  bumped = imports_counter_bump(COUNTER_MODE_SUB, 2);
  uint64_t t = imports_imports_test_tick();
  imports_test_string_free(&s);
  return a.total + a.tag * 10 + (uint64_t)(int64_t)(a.o.is_some ? a.o.val : 0) + b.tag * 100 + (uint64_t)b.f +
         (b.o.is_some ? 1000000 : 0) + c.total + d.tag * 7 + many + bumped * 1000 + t;
}
)C");
  fs::path wasm = dir / "imports_test.wasm";
  ASSERT_EQ(sh(clang + " --target=wasm32 -O2 -nostdlib -ffreestanding -fno-builtin -Wall -Wextra -Werror -Wl,--no-entry "
                       "-Wl,--gc-sections " + (dir / "imports_test.c").string() + " " +
               (dir / "impl.c").string() + " -o " + wasm.string()),
            0);

  abi::Abi gabi(guest), habi(host);
  const wit::Function* summarize = guest.find_function("local", "summarize");
  const wit::Function* many = guest.find_function("local", "many");
  const wit::Function* bump = host.find_function("counter", "bump");
  const wit::World* world = guest.find_world("imports-test");
  ASSERT_TRUE(summarize && many && bump && world);
  const wit::Function* tick = nullptr;
  const wit::Function* run = nullptr;
  for (const auto& i : world->imports)
    if (i.kind == wit::WorldItem::Kind::kFunction) tick = &i.function;
  for (const auto& e : world->exports)
    if (e.kind == wit::WorldItem::Kind::kFunction) run = &e.function;
  ASSERT_TRUE(tick && run);

  const std::string s = "h\xc3\xa9llo";
  uint64_t counter = 100;
  std::vector<std::string> calls;
  Linker linker;
  auto serve = [&](const abi::Abi& a, const wit::Function& fn, std::function<std::vector<abi::WitValue>(const std::vector<abi::WitValue>&)> body) {
    return [&a, &fn, body, &calls](HostCall& call, std::span<const Value> args, std::span<Value> results) -> HostResult {
      HostCallMemory mem(call);
      abi::CallContext cx(a, mem);
      std::vector<abi::CoreValue> flat;
      for (const auto& v : args) flat.push_back(abi::CoreValue{static_cast<abi::CoreType>(v.type), v.bits});
      auto params = cx.lift_params(fn, flat);
      if (!params) return HostResult::trap(params.status().message());
      calls.push_back(fn.name.written);
      std::vector<abi::WitValue> out = body(*params);
      std::vector<abi::CoreValue> flat_results;
      if (Status st = cx.lower_results(fn, out, flat, &flat_results); !st.is_ok()) return HostResult::trap(st.message());
      for (size_t i = 0; i < flat_results.size(); ++i) results[i] = Value{static_cast<ValType>(flat_results[i].type), flat_results[i].bits};
      return HostResult::ok();
    };
  };
  using W = abi::WitValue;
  linker.define("test:guest/local@0.1.0", "summarize", core_type(gabi.core_signature(*summarize, abi::Direction::kImport)),
                serve(gabi, *summarize, [&](const std::vector<W>& p) {
                  const auto& pair = p[0].items();
                  EXPECT_EQ(pair[0].as_string(), s);
                  EXPECT_EQ(pair[1].as_unsigned(), 5u);
                  const W& pick = p[1];
                  uint64_t extra = 0;
                  double f = 0.5;
                  if (pick.case_index() == 0) extra = pick.payload()->as_unsigned();
                  if (pick.case_index() == 1) {
                    extra = pick.payload()->as_string().size();
                    EXPECT_EQ(pick.payload()->as_string(), s);
                  }
                  if (pick.case_index() == 2) {
                    f = pick.payload()->as_f32() * 2;
                    EXPECT_EQ(pick.payload()->as_f32(), 2.5f);
                  }
                  if (pick.case_index() == 3) {
                    EXPECT_EQ(pick.payload(), nullptr);
                  }
                  W o = p[2].as_bool() ? W::some(W::s8(-3)) : W::none();
                  return std::vector<W>{W::record({W::u64(pair[1].as_unsigned() + pair[0].as_string().size() + extra),
                                                   W::u32(pick.case_index()), W::f64(f), o})};
                }));
  uint32_t many_sum = 0;
  linker.define("test:guest/local@0.1.0", "many", core_type(gabi.core_signature(*many, abi::Direction::kImport)),
                serve(gabi, *many, [&](const std::vector<W>& p) {
                  EXPECT_EQ(p[0].as_unsigned(), 1u);
                  EXPECT_EQ(p[1].as_unsigned(), 2u);
                  EXPECT_EQ(p[2].as_unsigned(), 3u);
                  EXPECT_EQ(p[3].as_unsigned(), 4u);
                  EXPECT_EQ(p[4].as_signed(), -5);
                  EXPECT_EQ(p[5].as_signed(), -6);
                  EXPECT_EQ(p[6].as_signed(), -7);
                  EXPECT_EQ(p[7].as_signed(), -8);
                  EXPECT_EQ(p[8].as_f32(), 1.5f);
                  EXPECT_EQ(p[9].as_f64(), 2.5);
                  EXPECT_EQ(p[10].as_char(), 0x1F600u);
                  EXPECT_EQ(p[11].as_string(), s);
                  EXPECT_EQ(p[12], W::list({W::u32(1), W::u32(2), W::u32(3)}));
                  EXPECT_TRUE(p[13].as_bool());
                  EXPECT_EQ(p[14].as_unsigned(), 11u);
                  EXPECT_EQ(p[15].as_unsigned(), 12u);
                  many_sum = 1 + 2 + 3 + 4 + 0x1F600 + static_cast<uint32_t>(s.size()) + 6 + 1 + 11 + 12;
                  return std::vector<W>{W::u32(many_sum)};
                }));
  linker.define("test:host/counter@0.1.0", "bump", core_type(habi.core_signature(*bump, abi::Direction::kImport)),
                serve(habi, *bump, [&](const std::vector<W>& p) {
                  if (p[0].case_index() == 0) {
                    counter += p[1].as_unsigned();
                  } else {
                    counter -= p[1].as_unsigned();
                  }
                  return std::vector<W>{W::u64(counter)};
                }));
  linker.define("$root", "tick", core_type(gabi.core_signature(*tick, abi::Direction::kImport)),
                serve(gabi, *tick, [&](const std::vector<W>&) { return std::vector<W>{W::u64(41)}; }));

  std::vector<std::pair<std::string, fs::path>> guests = {{"c", wasm}};
  std::string rustc = COVENANT_TEST_RUSTC;
  if (!rustc.empty()) {
    auto rs = generate(guest, {.lang = Lang::kRust, .source_name = "imports.wit", .deps = {&host}});
    ASSERT_TRUE(rs.is_ok()) << rs.status().message();
    fs::path rdir = fs::path(COVENANT_BINARY_DIR) / "bindgen_test/imports_rust";
    fs::remove_all(rdir);
    for (const auto& f : *rs) write_text(rdir / f.path, f.content);
    write_text(rdir / "lib.rs", R"R(mod imports_test;
use imports_test::*;
pub struct Component;
impl ImportsTestGuest for Component {
    fn run(s: String) -> u64 {
        let p = Pair { a: s.clone(), b: 5 };
        let a = imports_local_summarize(&p, &Pick::Text(s.clone()), true);
        let b = imports_local_summarize(&p, &Pick::Small(2.5), false);
        let c = imports_local_summarize(&p, &Pick::Num(1_000_000_000_000), false);
        let d = imports_local_summarize(&p, &Pick::Nothing, false);
        let many = imports_local_many(1, 2, 3, 4, -5, -6, -7, -8, 1.5, 2.5, '\u{1F600}', &s, &vec![1, 2, 3], true, 11, 12);
        let _ = imports_counter_bump(Mode::Add, 7);
        let bumped = imports_counter_bump(Mode::Sub, 2);
        let t = imports_imports_test_tick();
        a.total
            .wrapping_add(a.tag as u64 * 10)
            .wrapping_add(a.o.unwrap_or(0) as i64 as u64)
            .wrapping_add(b.tag as u64 * 100)
            .wrapping_add(b.f as u64)
            .wrapping_add(if b.o.is_some() { 1_000_000 } else { 0 })
            .wrapping_add(c.total)
            .wrapping_add(d.tag as u64 * 7)
            .wrapping_add(many as u64)
            .wrapping_add(bumped * 1000)
            .wrapping_add(t)
    }
}
)R");
    ASSERT_EQ(sh(rustc + " --edition=2021 --target wasm32-unknown-unknown --crate-type=cdylib -O -D warnings " +
                 (rdir / "lib.rs").string() + " -o " + (rdir / "imports_test.wasm").string()),
              0);
    guests.push_back({"rust", rdir / "imports_test.wasm"});
  }

  std::string asc = COVENANT_TEST_ASC, rename = COVENANT_TEST_RENAME;
  if (!asc.empty() && fs::exists(asc) && !rename.empty()) {
    auto as = generate(guest, {.lang = Lang::kAssemblyScript, .source_name = "imports.wit", .deps = {&host}});
    ASSERT_TRUE(as.is_ok()) << as.status().message();
    fs::path adir = fs::path(COVENANT_BINARY_DIR) / "bindgen_test/imports_as";
    fs::remove_all(adir);
    for (const auto& f : *as) write_text(adir / f.path, f.content);
    write_text(adir / "imports_test_impl.ts", R"A(import { Pair, Pick, Mode, importsLocalSummarize, importsLocalMany, importsCounterBump,
         importsImportsTestTick } from "./imports_test_types";
export function importsTestRun(s: string): u64 {
  const p = new Pair();
  p.a = s;
  p.b = 5;
  const x = new Pick();
  x.tag = Pick.TEXT;
  x.text = s;
  const a = importsLocalSummarize(p, x, true);
  const y = new Pick();
  y.tag = Pick.SMALL;
  y.small = 2.5;
  const b = importsLocalSummarize(p, y, false);
  const z = new Pick();
  z.tag = Pick.NUM;
  z.num = 1000000000000;
  const c = importsLocalSummarize(p, z, false);
  const w = new Pick();
  w.tag = Pick.NOTHING;
  const d = importsLocalSummarize(p, w, false);
  const many = importsLocalMany(1, 2, 3, 4, -5, -6, -7, -8, 1.5, 2.5, 0x1F600, s, [1, 2, 3], true, 11, 12);
  importsCounterBump(Mode.Add, 7);
  const bumped = importsCounterBump(Mode.Sub, 2);
  const t = importsImportsTestTick();
  const o: i64 = a.o.isSome ? <i64>a.o.value : 0;
  return a.total + <u64>a.tag * 10 + <u64>o + <u64>b.tag * 100 + <u64>b.f + (b.o.isSome ? 1000000 : 0) + c.total +
         <u64>d.tag * 7 + <u64>many + bumped * 1000 + t;
}
)A");
    ASSERT_EQ(sh(asc + " " + (adir / "imports_test.ts").string() + " -o " + (adir / "raw.wasm").string() +
                 " --runtime stub --use abort= --disable bulk-memory -O2 --noAssert"),
              0);
    ASSERT_EQ(sh(rename + " " + (adir / "raw.wasm").string() + " " + (adir / "imports_test.wasm").string() + " " +
                 (adir / "imports_test.exports").string()),
              0);
    guests.push_back({"assemblyscript", adir / "imports_test.wasm"});
  }

  auto engine = Engine::create({.cache_dir = (fs::path(COVENANT_BINARY_DIR) / "bindgen_test/cache").string()});
  ASSERT_TRUE(engine.is_ok());
  for (const auto& [lang, guest_wasm] : guests) {
  SCOPED_TRACE(lang);
  counter = 100;
  calls.clear();
  std::ifstream f(guest_wasm, std::ios::binary);

  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), {});
  auto module = (*engine)->load(bytes, {.tier = Tier::kInterp, .name = "imports_test"});
  ASSERT_TRUE(module.is_ok()) << module.status().message();
  EXPECT_EQ((*module)->imports().size(), 4u);
  auto inst = (*module)->instantiate(linker);
  ASSERT_TRUE(inst.is_ok()) << inst.status().message();
  InstanceMemory mem(**inst, *(*module)->export_index(abi::kReallocExport));
  abi::CallContext cx(gabi, mem);
  std::vector<abi::CoreValue> flat;
  W arg = W::string(s);
  ASSERT_TRUE(cx.lower_params(*run, std::span<const W>(&arg, 1), &flat).is_ok());
  std::vector<Value> core;
  for (const auto& c : flat) core.push_back(Value{static_cast<ValType>(c.type), c.bits});
  auto out = (*inst)->call("run", core);
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  ASSERT_TRUE(out->ok()) << out->trap.message;
  EXPECT_EQ(calls, (std::vector<std::string>{"summarize", "summarize", "summarize", "summarize", "many", "bump", "bump", "tick"}));
  uint64_t a_total = 5 + s.size() + s.size(), c_total = 5 + s.size() + 1000000000000ull;
  uint64_t want = a_total + 1 * 10 + static_cast<uint64_t>(int64_t{-3}) + 2 * 100 + 5 + c_total + 3 * 7 + many_sum + 105 * 1000 + 41;
  EXPECT_EQ(out->results.at(0).bits, want);
  }
}

}  // namespace
}  // namespace covenant::bindgen
