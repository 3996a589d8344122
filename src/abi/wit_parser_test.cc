// WIT parser: the seed article's WIT as printed, every construct, errors with
// positions and hints, and garbage input that must fail cleanly.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "covenant/abi.h"
#include "covenant/wit.h"

namespace covenant::wit {
namespace {

std::string read_fixture(const std::string& name) {
  std::ifstream in(std::string(COVENANT_SOURCE_DIR) + "/tests/wit/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(WitParser, SeedAsPrintedLenient) {
  std::string src = read_fixture("seed.wit");
  ASSERT_FALSE(src.empty());
  auto pkg = parse_wit(src, {.file_name = "seed.wit"});
  ASSERT_TRUE(pkg) << pkg.status().message();
  EXPECT_EQ(pkg->ns, "agent");
  EXPECT_EQ(pkg->name, "settlement");
  EXPECT_EQ(pkg->version, "0.1.0");
  ASSERT_EQ(pkg->warnings.size(), 4u);
  EXPECT_EQ(pkg->warnings[0].line, 5u);
  EXPECT_EQ(pkg->warnings[0].column, 5u);
  EXPECT_NE(pkg->warnings[0].message.find("agent_id"), std::string::npos);
  EXPECT_NE(pkg->warnings[0].hint.find("agent-id"), std::string::npos);
  EXPECT_NE(pkg->warnings[3].to_string().find("seed.wit:8:5: warning:"), std::string::npos) << pkg->warnings[3].to_string();

  const Interface* policy = pkg->find_interface("policy");
  ASSERT_NE(policy, nullptr);
  EXPECT_EQ(pkg->qualified_interface(*policy), "agent:settlement/policy@0.1.0");
  TypeId intent = policy->find_type("intent");
  ASSERT_NE(intent, kNoType);
  const Type& it = pkg->type(intent);
  EXPECT_EQ(it.kind, TypeKind::kRecord);
  ASSERT_EQ(it.fields.size(), 4u);
  EXPECT_EQ(it.fields[0].name.written, "agent_id");
  EXPECT_EQ(it.fields[0].name.kebab, "agent-id");
  EXPECT_EQ(pkg->type(it.fields[2].type).kind, TypeKind::kU64);
  const Function* approve = pkg->find_function("policy", "approve");
  ASSERT_NE(approve, nullptr);
  ASSERT_EQ(approve->params.size(), 1u);
  EXPECT_EQ(approve->params[0].name.written, "i");
  EXPECT_EQ(approve->params[0].type, intent);
  ASSERT_EQ(approve->results.size(), 1u);
  EXPECT_EQ(approve->results[0].type, policy->find_type("decision"));
  const World* escrow = pkg->find_world("escrow");
  ASSERT_NE(escrow, nullptr);
  ASSERT_EQ(escrow->exports.size(), 1u);
  EXPECT_EQ(escrow->exports[0].interface_index, 0);
  EXPECT_EQ(abi::interface_core_name(*pkg, escrow->exports[0]), "agent:settlement/policy@0.1.0");
  EXPECT_EQ(abi::export_name("agent:settlement/policy@0.1.0", *approve), "agent:settlement/policy@0.1.0#approve");
  EXPECT_EQ(abi::post_return_name("agent:settlement/policy@0.1.0", *approve),
            "cabi_post_agent:settlement/policy@0.1.0#approve");
}

TEST(WitParser, SeedStrictRejectsSnakeCase) {
  auto pkg = parse_wit(read_fixture("seed.wit"), {.file_name = "seed.wit", .strict = true});
  ASSERT_FALSE(pkg);
  EXPECT_NE(pkg.status().message().find("seed.wit:5:5:"), std::string::npos) << pkg.status().message();
  EXPECT_NE(pkg.status().message().find("hint: WIT names are kebab-case: write `agent-id`"), std::string::npos)
      << pkg.status().message();
}

TEST(WitParser, KebabSpellingIsCleanInStrictMode) {
  std::string src = read_fixture("seed.wit");
  for (const char* n : {"agent_id", "task_type", "max_units", "expires_at_ms"}) {
    std::string s(n);
    src.replace(src.find(s), s.size(), to_kebab(s));
  }
  auto pkg = parse_wit(src, {.strict = true});
  ASSERT_TRUE(pkg) << pkg.status().message();
  EXPECT_TRUE(pkg->warnings.empty());
}

TEST(WitParser, BuiltInSeedIsTheKebabSpellingOfTheArticle) {
  auto builtin = parse_wit(seed_policy_wit(), {.strict = true});
  ASSERT_TRUE(builtin) << builtin.status().message();
  auto printed = parse_wit(read_fixture("seed.wit"));
  ASSERT_TRUE(printed);
  ASSERT_EQ(builtin->types.size(), printed->types.size());
  for (size_t i = 0; i < builtin->types.size(); ++i) {
    EXPECT_EQ(builtin->types[i].kind, printed->types[i].kind);
    ASSERT_EQ(builtin->types[i].fields.size(), printed->types[i].fields.size());
    for (size_t f = 0; f < builtin->types[i].fields.size(); ++f)
      EXPECT_EQ(builtin->types[i].fields[f].name.kebab, printed->types[i].fields[f].name.kebab);
  }
}

TEST(WitParser, EveryConstruct) {
  auto pkg = parse_wit(read_fixture("all_types.wit"), {.file_name = "all_types.wit", .strict = true});
  ASSERT_TRUE(pkg) << pkg.status().message();
  EXPECT_EQ(pkg->version, "1.2.3");
  const Interface* types = pkg->find_interface("types");
  ASSERT_NE(types, nullptr);
  EXPECT_EQ(types->docs, "Shared types.");
  EXPECT_EQ(pkg->type(types->find_type("millis")).kind, TypeKind::kU64);
  const Type& shape = pkg->type(types->find_type("shape"));
  ASSERT_EQ(shape.fields.size(), 3u);
  EXPECT_EQ(shape.fields[2].type, kNoType);
  EXPECT_EQ(pkg->type(shape.fields[1].type).kind, TypeKind::kTuple);
  const Interface* ev = pkg->find_interface("everything");
  ASSERT_NE(ev, nullptr);
  EXPECT_EQ(ev->find_type("permissions"), types->find_type("perms"));
  const Type& all = pkg->type(ev->find_type("all"));
  ASSERT_EQ(all.fields.size(), 26u);
  auto field = [&](const char* n) -> const Type& {
    for (const Field& f : all.fields)
      if (f.name.written == n) return pkg->type(f.type);
    ADD_FAILURE() << n;
    return all;
  };
  EXPECT_EQ(field("r2").kind, TypeKind::kResult);
  EXPECT_NE(field("r2").ok, kNoType);
  EXPECT_EQ(field("r2").err, kNoType);
  EXPECT_EQ(field("r3").ok, kNoType);
  EXPECT_EQ(field("r4").ok, kNoType);
  EXPECT_EQ(field("r4").err, kNoType);
  EXPECT_EQ(pkg->type_to_string(all.fields[16].type), "option<option<u8>>");
  const Function* named = ev->find_function("named");
  ASSERT_NE(named, nullptr);
  EXPECT_EQ(named->params[1].name.written, "type");
  ASSERT_EQ(named->results.size(), 2u);
  EXPECT_EQ(named->results[1].name.written, "y");
  ASSERT_NE(ev->find_function("gated"), nullptr);
  EXPECT_EQ(ev->find_function("nothing")->results.size(), 0u);
  const World* w = pkg->find_world("host");
  ASSERT_NE(w, nullptr);
  ASSERT_EQ(w->imports.size(), 3u);
  EXPECT_EQ(w->imports[1].kind, WorldItem::Kind::kFunction);
  EXPECT_TRUE(w->imports[2].inline_interface);
  EXPECT_EQ(abi::interface_core_name(*pkg, w->imports[2]), "clock");
  EXPECT_EQ(abi::import_name("", w->imports[1].function).module, "$root");
  ASSERT_EQ(w->exports.size(), 2u);
  EXPECT_EQ(abi::interface_core_name(*pkg, w->exports[0]), "covenant:fixture/everything@1.2.3");
}

TEST(WitParser, LabelGrammar) {
  for (const char* ok : {"a", "agent-id", "utf-8", "a1-2-3", "HTTP", "get-HTTP-url", "x-Y2"}) EXPECT_TRUE(is_kebab_label(ok)) << ok;
  for (const char* bad : {"", "-a", "a-", "a--b", "1a", "aB", "agent_id", "a-bC", "a.b"}) EXPECT_FALSE(is_kebab_label(bad)) << bad;
}

TEST(WitParser, ForwardReferencesAndCrossInterfaceUse) {
  auto pkg = parse_wit(R"(package a:b;
interface x { use y.{later}; f: func(v: later) -> alias; type alias = list<later>; }
interface y { record later { v: u8 } }
world w { import x; export y; export a:b/x; }
)");
  ASSERT_TRUE(pkg) << pkg.status().message();
  const Function* f = pkg->find_function("x", "f");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(pkg->type_to_string(f->results[0].type), "list<later>");
  EXPECT_EQ(pkg->qualified_interface(*pkg->find_interface("x")), "a:b/x");
}

struct ErrorCase {
  const char* name;
  const char* src;
  const char* expect;  // substring of the error message
};

class WitErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(WitErrors, FailsCleanlyWithPositionAndHint) {
  const ErrorCase& c = GetParam();
  auto pkg = parse_wit(c.src, {.file_name = "t.wit"});
  ASSERT_FALSE(pkg) << c.name;
  EXPECT_NE(pkg.status().message().find(c.expect), std::string::npos) << c.name << ": " << pkg.status().message();
  EXPECT_EQ(pkg.status().message().rfind("t.wit:", 0), 0u) << pkg.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    Table, WitErrors,
    ::testing::Values(
        ErrorCase{"no_package", "interface a {}", "missing package declaration"},
        ErrorCase{"unknown_type", "package a:b;\ninterface i { f: func(x: nope); }", "t.wit:2:26: unknown type `nope`"},
        ErrorCase{"keyword_name", "package a:b;\ninterface i { record r { type: u8 } }", "is a keyword"},
        ErrorCase{"keyword_hint", "package a:b;\ninterface i { record r { type: u8 } }", "escape it as `%type`"},
        ErrorCase{"bad_name", "package a:b;\ninterface i { record r { Agent-x: u8 } }", "not a valid WIT name"},
        ErrorCase{"recursive", "package a:b;\ninterface i { record r { x: list<r> } }", "refers to itself"},
        ErrorCase{"alias_cycle", "package a:b;\ninterface i { type a = b; type b = a; }", "refers to itself"},
        ErrorCase{"dup_field", "package a:b;\ninterface i { record r { x: u8, x: u8 } }", "duplicate name `x`"},
        ErrorCase{"dup_type", "package a:b;\ninterface i { type x = u8; type x = u8; }", "defined more than once"},
        ErrorCase{"type_func_clash", "package a:b;\ninterface f { type x = u32; }\ninterface i { use f.{x}; x: func(); }", "t.wit:3:15: name `x` is defined more than once"},
        ErrorCase{"world_type_clash", "package a:b;\nworld w { type a = u32; import a: func(); }", "name `a` is defined more than once"},
        ErrorCase{"case_insensitive", "package a:b;\nworld w { export get-user: func(); export GET-USER: func(); }", "case-insensitively"},
        ErrorCase{"iface_world_clash", "package a:b;\ninterface foo {}\nworld foo {}", "duplicate item named `foo`"},
        ErrorCase{"use_cycle", "package a:b;\ninterface foo { use bar.{y}; type x = u32; }\ninterface bar { use foo.{x}; type y = u32; }", "depends on itself through `use`"},
        ErrorCase{"dup_func", "package a:b;\ninterface i { f: func(); f: func(); }", "t.wit:2:26: name `f` is defined more than once"},
        ErrorCase{"empty_record", "package a:b;\ninterface i { record r { } }", "is empty"},
        ErrorCase{"too_many_flags", "package a:b;\ninterface i { flags f { a0,a1,a2,a3,a4,a5,a6,a7,a8,a9,b0,b1,b2,b3,b4,b5,b6,b7,b8,b9,c0,c1,c2,c3,c4,c5,c6,c7,c8,c9,d0,d1,d2 } }", "at most 32 flags"},
        ErrorCase{"resource", "package a:b;\ninterface i { resource r; }", "resources are not supported"},
        ErrorCase{"unterminated", "package a:b;\ninterface i { f: func();", "unterminated interface"},
        ErrorCase{"bad_char", "package a:b;\ninterface i { $ }", "unexpected character '$'"},
        ErrorCase{"bad_version", "package a:b@1.2;", "invalid version"},
        ErrorCase{"missing_semicolon", "package a:b;\ninterface i { f: func() }", "expected `;`"},
        ErrorCase{"unknown_iface", "package a:b;\nworld w { export nope; }", "unknown interface `nope`"},
        ErrorCase{"foreign_use", "package a:b;\ninterface i { use wasi:io/streams.{x}; }", "only interfaces of this package"},
        ErrorCase{"nesting", "package a:b;\ninterface i { type t = list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<u8>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>; }", "nesting deeper"},
        ErrorCase{"block_comment", "package a:b; /* never closed", "unterminated block comment"},
        ErrorCase{"handle", "package a:b;\ninterface i { f: func(x: own<r>); }", "not supported"},
        ErrorCase{"map", "package a:b;\ninterface i { f: func(x: map<u8, u8>); }", "not supported"},
        ErrorCase{"empty_tuple", "package a:b;\ninterface i { type t = tuple<>; }", "at least one type"}),
    [](const ::testing::TestParamInfo<ErrorCase>& i) { return std::string(i.param.name); });

TEST(WitParser, TypeDepthIsBoundedThroughNamedTypes) {
  std::string src = "package a:b;\ninterface i {\n  type t0 = u8;\n";
  for (int k = 1; k < 100; ++k) src += "  type t" + std::to_string(k) + " = list<t" + std::to_string(k - 1) + ">;\n";
  src += "}\n";
  auto pkg = parse_wit(src, {.file_name = "deep.wit"});
  ASSERT_FALSE(pkg);
  EXPECT_NE(pkg.status().message().find("levels deep"), std::string::npos) << pkg.status().message();
}

// Garbage in, clean error out: random bytes, random token soup, and mutations
// of a valid file. Must never crash, hang or throw.
TEST(WitParser, GarbageNeverCrashes) {
  std::mt19937_64 rng(12345);
  std::string valid = read_fixture("all_types.wit");
  const char* toks[] = {"package", "a:b", ";", "interface", "world", "{", "}", "(", ")", "<", ">", ",", ":", "=",
                        "record", "variant", "enum", "flags", "list", "option", "result", "tuple", "func", "->",
                        "use", ".", "as", "import", "export", "type", "x", "y-z", "%type", "u8", "string", "_",
                        "@", "0.1.0", "///doc\n", "/*", "*/", "\n", "agent_id", "@since(version = 1.0.0)"};
  int ok = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string src;
    int mode = iter % 3;
    if (mode == 0) {
      size_t n = rng() % 200;
      for (size_t i = 0; i < n; ++i) src += static_cast<char>(rng() & 0xff);
    } else if (mode == 1) {
      src = "package a:b;\n";
      size_t n = rng() % 60;
      for (size_t i = 0; i < n; ++i) {
        src += toks[rng() % std::size(toks)];
        src += ' ';
      }
    } else {
      src = valid;
      int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        size_t at = rng() % src.size();
        switch (rng() % 3) {
          case 0: src.erase(at, 1 + rng() % 8); break;
          case 1: src.insert(at, toks[rng() % std::size(toks)]); break;
          default: src[at] = static_cast<char>(rng() & 0xff); break;
        }
        if (src.empty()) src.assign(1, 'x');
      }
    }
    auto pkg = parse_wit(src);
    if (pkg) {
      ++ok;
      abi::Abi abi(*pkg);  // layouts of whatever parsed must compute without crashing
      (void)abi;
    } else {
      EXPECT_FALSE(pkg.status().message().empty());
    }
  }
  EXPECT_GT(ok, 0);  // some mutations are harmless (inside comments)
}

}  // namespace
}  // namespace covenant::wit
