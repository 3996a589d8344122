// JSON mapping: the seed's intent and decision, every rule of docs/abi.md, and
// error paths.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "covenant/wit_json.h"

namespace covenant::abi {
namespace {

using nlohmann::json;
using wit::TypeId;

std::string fixture(const char* name) {
  std::ifstream in(std::string(COVENANT_SOURCE_DIR) + "/tests/wit/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class JsonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto seed = wit::parse_wit(fixture("seed.wit"));
    ASSERT_TRUE(seed) << seed.status().message();
    seed_ = std::make_unique<wit::Package>(std::move(*seed));
    auto all = wit::parse_wit(fixture("all_types.wit"));
    ASSERT_TRUE(all) << all.status().message();
    all_ = std::make_unique<wit::Package>(std::move(*all));
  }
  TypeId seed_type(const char* n) { return seed_->find_interface("policy")->find_type(n); }
  TypeId all_type(const char* n) { return all_->find_interface("everything")->find_type(n); }
  TypeId all_field(const char* n) {
    for (const auto& f : all_->type(all_type("all")).fields)
      if (f.name.written == n) return f.type;
    return wit::kNoType;
  }
  std::string error(const wit::Package& p, TypeId t, const char* text) {
    auto v = value_from_json(p, t, json::parse(text));
    return v ? std::string("<ok>") : v.status().message();
  }
  std::unique_ptr<wit::Package> seed_, all_;
};

TEST_F(JsonTest, SeedIntentAcceptsBothSpellings) {
  json snake = json::parse(R"({"agent_id":"a-1","task_type":"summarize","max_units":10,"expires_at_ms":"1700000000000"})");
  json kebab = json::parse(R"({"agent-id":"a-1","task-type":"summarize","max-units":"10","expires-at-ms":1700000000000})");
  auto a = value_from_json(*seed_, seed_type("intent"), snake);
  auto b = value_from_json(*seed_, seed_type("intent"), kebab);
  ASSERT_TRUE(a) << a.status().message();
  ASSERT_TRUE(b) << b.status().message();
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(a->items()[2], WitValue::u64(10));
  // Output uses the names as written in the WIT, 64-bit integers as strings.
  auto out = value_to_json(*seed_, seed_type("intent"), *a);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->dump(), R"({"agent_id":"a-1","expires_at_ms":"1700000000000","max_units":"10","task_type":"summarize"})");
}

TEST_F(JsonTest, ErrorsNameThePath) {
  EXPECT_EQ(error(*seed_, seed_type("intent"), R"({"agent_id":"a","task_type":"t","max_units":"ten","expires_at_ms":1})"),
            "intent.max_units: expected u64, got \"ten\"");
  EXPECT_EQ(error(*seed_, seed_type("intent"), R"({"agent_id":"a","task_type":"t","max_units":-1,"expires_at_ms":1})"),
            "intent.max_units: expected u64, got -1");
  EXPECT_EQ(error(*seed_, seed_type("intent"), R"({"agent_id":"a","task_type":"t","max_units":18446744073709551616,"expires_at_ms":1})"),
            "intent.max_units: 1.8446744073709552e+19 is out of range for u64 (max 18446744073709551615)");
  EXPECT_EQ(error(*seed_, seed_type("intent"), R"({"agent_id":"a","task_type":"t","expires_at_ms":1})"),
            "intent.max_units: missing field (expected u64)");
  EXPECT_NE(error(*seed_, seed_type("intent"), R"({"agent_id":"a","task_type":"t","max_units":1,"expires_at_ms":1,"x":2})")
                .find("intent: unknown field \"x\""),
            std::string::npos);
  EXPECT_EQ(error(*seed_, seed_type("intent"), R"({"agent_id":"a","agent-id":"b","task_type":"t","max_units":1,"expires_at_ms":1})"),
            "intent: field agent_id given twice");
  EXPECT_EQ(error(*seed_, seed_type("intent"), "[]"), "intent: expected object (record intent), got []");
  EXPECT_EQ(error(*all_, all_field("pts"), R"([{"x":1,"y":2},{"x":1,"y":"2"}])"), "value[1].y: expected s32, got \"2\"");
}

TEST_F(JsonTest, U64ExtremesRoundTrip) {
  json j = json::parse(R"({"agent_id":"","task_type":"","max_units":"18446744073709551615","expires_at_ms":18446744073709551615})");
  auto v = value_from_json(*seed_, seed_type("intent"), j);
  ASSERT_TRUE(v) << v.status().message();
  EXPECT_EQ(v->items()[2].as_unsigned(), ~0ull);
  EXPECT_EQ(v->items()[3].as_unsigned(), ~0ull);
  EXPECT_EQ(value_to_json(*seed_, seed_type("intent"), *v).value()["max_units"], "18446744073709551615");
  EXPECT_NE(error(*seed_, seed_type("intent"), R"({"agent_id":"","task_type":"","max_units":"18446744073709551616","expires_at_ms":1})"), "<ok>");
  EXPECT_NE(error(*seed_, seed_type("intent"), R"({"agent_id":"","task_type":"","max_units":"+1","expires_at_ms":1})"), "<ok>");
  EXPECT_NE(error(*seed_, seed_type("intent"), R"({"agent_id":"","task_type":"","max_units":1.5,"expires_at_ms":1})"), "<ok>");
}

struct Rule {
  const char* field;
  const char* json_text;  // canonical output form
};

class JsonRules : public JsonTest, public ::testing::WithParamInterface<Rule> {};

TEST_P(JsonRules, CanonicalFormRoundTrips) {
  TypeId t = all_field(GetParam().field);
  ASSERT_NE(t, wit::kNoType);
  json in = json::parse(GetParam().json_text);
  auto v = value_from_json(*all_, t, in);
  ASSERT_TRUE(v) << v.status().message();
  auto out = value_to_json(*all_, t, *v);
  ASSERT_TRUE(out);
  EXPECT_EQ(*out, in) << out->dump();
}

INSTANTIATE_TEST_SUITE_P(
    Table, JsonRules,
    ::testing::Values(Rule{"b", "true"}, Rule{"a8", "-128"}, Rule{"b16", "65535"}, Rule{"a64", "\"-9223372036854775808\""},
                      Rule{"f", "1.5"}, Rule{"d", "\"NaN\""}, Rule{"d", "\"-Infinity\""}, Rule{"d", "-0.0"},
                      Rule{"d", "0.1"}, Rule{"c", "\"\\u00e9\""}, Rule{"c", "\"😀\""}, Rule{"s", "\"h\\u00e9llo\""},
                      Rule{"l", "[1,2,255]"}, Rule{"t", "[\"x\",7]"}, Rule{"o", "null"}, Rule{"o", "\"v\""},
                      Rule{"oo", "null"}, Rule{"oo", "{\"some\":null}"}, Rule{"oo", "{\"some\":5}"},
                      Rule{"r1", "{\"ok\":3}"}, Rule{"r1", "{\"err\":\"bad\"}"}, Rule{"r2", "{\"err\":null}"},
                      Rule{"r3", "{\"ok\":null}"}, Rule{"r4", "{\"err\":null}"}, Rule{"col", "\"green\""},
                      Rule{"p", "[\"read\",\"exec\"]"}, Rule{"p", "[]"}, Rule{"sh", "{\"circle\":2.5}"},
                      Rule{"sh", "{\"empty\":null}"}, Rule{"sh", "{\"rect\":[{\"x\":1,\"y\":2},{\"x\":-3,\"y\":4}]}"},
                      Rule{"when", "\"42\""}));

TEST_F(JsonTest, LenientInputs) {
  auto v = value_from_json(*all_, all_field("sh"), json("empty"));
  ASSERT_TRUE(v) << v.status().message();
  EXPECT_EQ(*v, WitValue::variant(2));
  EXPECT_NE(error(*all_, all_field("c"), "\"ab\""), "<ok>");
  EXPECT_NE(error(*all_, all_field("a8"), "128"), "<ok>");
  EXPECT_NE(error(*all_, all_field("p"), "[\"read\",\"read\"]"), "<ok>");
  EXPECT_NE(error(*all_, all_field("col"), "\"mauve\""), "<ok>");
  EXPECT_NE(error(*all_, all_field("oo"), "5"), "<ok>");
  EXPECT_NE(error(*all_, all_field("r1"), "{\"ok\":1,\"err\":\"x\"}"), "<ok>");
  EXPECT_NE(error(*all_, all_field("sh"), "{\"circle\":null}"), "<ok>");
}

TEST_F(JsonTest, ArgsFromJson) {
  const wit::Function* approve = seed_->find_function("policy", "approve");
  json args = json::parse(R"([{"agent_id":"a","task_type":"t","max_units":1,"expires_at_ms":2}])");
  auto v = args_from_json(*seed_, *approve, args);
  ASSERT_TRUE(v) << v.status().message();
  EXPECT_EQ(v->size(), 1u);
  auto bad = args_from_json(*seed_, *approve, json::parse(R"([{"agent_id":"a","task_type":"t","max_units":"ten","expires_at_ms":2}])"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.status().message(), "i.max_units: expected u64, got \"ten\"");
  EXPECT_FALSE(args_from_json(*seed_, *approve, json::parse("[]")));
  auto named = args_from_json(*seed_, *approve, json::parse(R"({"i":{"agent_id":"a","task_type":"t","max_units":1,"expires_at_ms":2}})"));
  ASSERT_TRUE(named) << named.status().message();
  EXPECT_EQ(*named, *v);
  // Neither an array nor an object: the message names both shapes.
  auto scalar = args_from_json(*seed_, *approve, json::parse("7"));
  ASSERT_FALSE(scalar);
  EXPECT_EQ(scalar.status().message(),
            "approve: expected a JSON array of the parameters or an object keyed by parameter name, got 7");
}

// JSON built in C++ stores non-negative ints as signed (json(41)); parsed text
// stores them unsigned. Both are the same number for an unsigned WIT type.
TEST_F(JsonTest, UnsignedAcceptsNumbersStoredSigned) {
  for (const char* f : {"b8", "b16", "b32", "b64"}) {
    auto v = value_from_json(*all_, all_field(f), json(41));
    ASSERT_TRUE(v) << f << ": " << v.status().message();
    EXPECT_EQ(v->as_unsigned(), 41u) << f;
    EXPECT_FALSE(value_from_json(*all_, all_field(f), json(-1))) << f;
  }
  EXPECT_FALSE(value_from_json(*all_, all_field("b8"), json(256)));
}

}  // namespace
}  // namespace covenant::abi
