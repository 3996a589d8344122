#include "settle/jcs.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace covenant::settle {
namespace {

using json = nlohmann::json;

std::string canon(const json& v) {
  auto r = jcs_canonicalize(v);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? *r : std::string();
}

// RFC 8785, section 3.2.2 (the example of the whole scheme) and 3.2.3 (sorting).
TEST(Jcs, Rfc8785Examples) {
  const json v = json::parse(R"({"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
    "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/", "literals": [null, true, false]})");
  EXPECT_EQ(canon(v), R"({"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],)"
                      R"("string":"€$\u000f\nA'B\"\\\\\"/"})");
  const json sorting = json::parse(R"({"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
    "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"})");
  EXPECT_EQ(canon(sorting), "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\xc2\x80\":\"Control\",\"\xc3\xb6\":\"Latin Small Letter O "
                            "With Diaeresis\",\"\xe2\x82\xac\":\"Euro Sign\",\"\xf0\x9f\x98\x80\":\"Emoji: Grinning Face\","
                            "\"\xef\xac\xb3\":\"Hebrew Letter Dalet With Dagesh\"}");
}

// ECMAScript number spellings at the edges of each form.
TEST(Jcs, NumbersAsEcmaScriptSpellsThem) {
  EXPECT_EQ(canon(json(-0.0)), "0");
  EXPECT_EQ(canon(json(1e21)), "1e+21");
  EXPECT_EQ(canon(json(1e20)), "100000000000000000000");
  EXPECT_EQ(canon(json(1e-6)), "0.000001");
  EXPECT_EQ(canon(json(1e-7)), "1e-7");
  EXPECT_EQ(canon(json(-1.5e-7)), "-1.5e-7");
  EXPECT_EQ(canon(json(123.456)), "123.456");
  EXPECT_EQ(canon(json(5e-324)), "5e-324");
  EXPECT_EQ(canon(json(1.7976931348623157e308)), "1.7976931348623157e+308");
  EXPECT_EQ(canon(json(uint64_t{1} << 53)), "9007199254740992");
  EXPECT_FALSE(jcs_canonicalize(json((uint64_t{1} << 53) + 1)).is_ok());
  EXPECT_FALSE(jcs_canonicalize(json(std::string("\xff"))).is_ok());
}

json random_value(std::mt19937_64& rng, int depth) {
  std::uniform_int_distribution<int> kind(0, depth > 3 ? 4 : 6);
  static const std::vector<std::string> pieces = {"a", "B", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\n",
                                                  "\x01", "\x1f", "\"", "\\", "/", " ", "\xef\xac\xb3", "z9", "\x7f"};
  auto str = [&] {
    std::string s;
    for (int i = static_cast<int>(rng() % 6); i > 0; --i) s += pieces[rng() % pieces.size()];
    return s;
  };
  switch (kind(rng)) {
    case 0: return nullptr;
    case 1: return rng() % 2 == 0;
    case 2: {
      const int64_t lim = int64_t{1} << 53;
      return static_cast<int64_t>(rng() % (2 * static_cast<uint64_t>(lim))) - lim;
    }
    case 3: {
      // Doubles across the exponent range, some with few digits.
      const double mant = std::uniform_real_distribution<double>(-10, 10)(rng);
      const int e = static_cast<int>(rng() % 80) - 40;
      double d = mant * std::pow(10.0, e);
      if (rng() % 3 == 0) d = std::round(d * 1000) / 1000;
      return d;
    }
    case 4: return str();
    case 5: {
      json a = json::array();
      for (int i = static_cast<int>(rng() % 5); i > 0; --i) a.push_back(random_value(rng, depth + 1));
      return a;
    }
    default: {
      json o = json::object();
      for (int i = static_cast<int>(rng() % 6); i > 0; --i) o[str()] = random_value(rng, depth + 1);
      return o;
    }
  }
}

// 2,000 random values: the C++ spelling equals the npm reference's, byte for byte.
TEST(Jcs, AgreesWithTheReferenceImplementation) {
  const std::string tools = COVENANT_TOOLS_DIR;
  ASSERT_TRUE(std::filesystem::exists(tools + "/node_modules/canonicalize"))
      << "tools/node_modules is missing: run scripts/setup.sh (npm ci in tools/)";
  const std::string dir = ::testing::TempDir() + "/jcs_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  std::mt19937_64 rng(20261207);
  std::vector<std::string> want;
  std::ofstream in(dir + "/in.txt");
  for (int i = 0; i < 2000; ++i) {
    const json v = random_value(rng, 0);
    in << v.dump() << "\n";
    want.push_back(canon(v));
  }
  in.close();
  const std::string cmd = "cd '" + tools + "' && node jcs.mjs '" + dir + "/in.txt' > '" + dir + "/out.txt' 2>&1";
  const int rc = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << std::ifstream(dir + "/out.txt").rdbuf();
  std::ifstream out(dir + "/out.txt");
  std::string line;
  size_t i = 0, mismatches = 0;
  while (std::getline(out, line)) {
    ASSERT_LT(i, want.size());
    if (line != want[i] && ++mismatches <= 5) ADD_FAILURE() << "value " << i << ":\n  npm: " << line << "\n  C++: " << want[i];
    ++i;
  }
  EXPECT_EQ(i, want.size());
  EXPECT_EQ(mismatches, 0u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace covenant::settle
