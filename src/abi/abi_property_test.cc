// Property tests: random WIT packages (every type constructor, nesting, named
// and anonymous types, functions past the flat limits) and random values:
//   lift(lower(v)) == v over a byte-buffer guest with a bump allocator, through
//   the flat path, the memory path and both call directions;
//   value_from_json(value_to_json(v)) == v, also after a text round trip.
// Failures print the seed and the WIT so a case can be replayed.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "covenant/abi.h"
#include "covenant/wit_json.h"
#include "abi/random_wit.h"

namespace covenant::abi {
namespace {

using testgen::ValueGen;
using testgen::WitGen;
using wit::TypeId;
using wit::TypeKind;

TEST(AbiProperty, LiftLowerAndJsonRoundTrip) {
  constexpr int kPackages = 400;
  constexpr int kValuesPerType = 4;
  int checked_types = 0, checked_calls = 0, spilled_params = 0, spilled_results = 0;
  for (uint64_t seed = 1; seed <= kPackages; ++seed) {
    std::string src = WitGen(seed).package();
    auto pkg = wit::parse_wit(src, {.strict = true});
    ASSERT_TRUE(pkg) << "seed " << seed << ": " << pkg.status().message() << "\n" << src;
    Abi abi(*pkg);
    ValueGen gen(*pkg, seed * 7919);
    BufferMemory mem(8u << 20);
    SCOPED_TRACE("seed " + std::to_string(seed) + "\n" + src);

    // Every type in the package (named and anonymous): memory, flat and JSON paths.
    for (TypeId id = 0; id < pkg->types.size(); ++id) {
      const Layout& l = abi.layout(id);
      for (int k = 0; k < kValuesPerType; ++k) {
        mem.reset();
        CallContext cx(abi, mem);
        WitValue v = gen.value(id);
        Result<uint32_t> at = mem.realloc(0, 0, l.align, static_cast<uint32_t>(l.size));
        ASSERT_TRUE(at);
        ASSERT_TRUE(cx.store(id, v, *at).is_ok()) << pkg->type_to_string(id);
        auto back = cx.load(id, *at);
        ASSERT_TRUE(back) << back.status().message();
        ASSERT_EQ(*back, v) << pkg->type_to_string(id) << "\n" << v.debug_string() << "\n" << back->debug_string();
        if (!l.flat_overflow) {
          std::vector<CoreValue> flat;
          ASSERT_TRUE(cx.lower_flat(id, v, &flat).is_ok());
          ASSERT_EQ(flat.size(), l.flat.size());
          for (size_t i = 0; i < flat.size(); ++i) ASSERT_EQ(flat[i].type, l.flat[i]);
          size_t pos = 0;
          auto fb = cx.lift_flat(id, flat, &pos);
          ASSERT_TRUE(fb) << fb.status().message();
          ASSERT_EQ(pos, flat.size());
          ASSERT_EQ(*fb, v) << pkg->type_to_string(id);
        }
        auto j = value_to_json(*pkg, id, v);
        ASSERT_TRUE(j) << j.status().message();
        auto reparsed = nlohmann::json::parse(j->dump());
        auto jv = value_from_json(*pkg, id, reparsed);
        ASSERT_TRUE(jv) << jv.status().message() << "\n" << j->dump();
        ASSERT_EQ(*jv, v) << pkg->type_to_string(id) << "\n" << j->dump();
        ASSERT_EQ(cx.trap(), Trap::kNone);
        ++checked_types;
      }
    }

    // Every function, both directions: the host lowers params that a guest-side
    // mirror lifts; the host lowers results into a return area and lifts them back.
    for (const wit::Function& fn : pkg->interfaces[0].functions) {
      mem.reset();
      CallContext cx(abi, mem);
      std::vector<WitValue> args, results;
      for (const wit::Param& p : fn.params) args.push_back(gen.value(p.type));
      for (const wit::Param& r : fn.results) results.push_back(gen.value(r.type));
      CoreSignature ex = abi.core_signature(fn, Direction::kExport);
      CoreSignature im = abi.core_signature(fn, Direction::kImport);
      spilled_params += ex.params_spilled;
      spilled_results += ex.results_spilled;

      std::vector<CoreValue> flat;
      ASSERT_TRUE(cx.lower_params(fn, args, &flat).is_ok());
      ASSERT_EQ(flat.size(), ex.params.size());
      for (size_t i = 0; i < flat.size(); ++i) ASSERT_EQ(flat[i].type, ex.params[i]);
      if (im.results_spilled) {
        Result<uint32_t> retptr = mem.realloc(0, 0, 8, 1 << 16);
        ASSERT_TRUE(retptr);
        flat.push_back(CoreValue::i32(*retptr));
      }
      auto lifted = cx.lift_params(fn, flat);
      ASSERT_TRUE(lifted) << lifted.status().message();
      ASSERT_EQ(*lifted, args);

      std::vector<CoreValue> flat_results;
      ASSERT_TRUE(cx.lower_results(fn, results, flat, &flat_results).is_ok());
      if (im.results_spilled) {
        ASSERT_TRUE(flat_results.empty());
        flat_results = {flat.back()};  // the export returns the pointer to its results
      }
      ASSERT_EQ(flat_results.size(), ex.results.size());
      auto back = cx.lift_results(fn, flat_results);
      ASSERT_TRUE(back) << back.status().message();
      ASSERT_EQ(*back, results);

      auto rj = results_to_json(*pkg, fn, results);
      ASSERT_TRUE(rj);
      ++checked_calls;
    }
  }
  EXPECT_GT(checked_types, 10000);
  EXPECT_GT(spilled_params, 10);
  EXPECT_GT(spilled_results, 10);
  std::printf("checked %d typed values, %d calls (%d with spilled params, %d with spilled results)\n", checked_types,
              checked_calls, spilled_params, spilled_results);
}

// Random bytes as guest memory and random core values: lifting may fail, but
// only with a named trap or a host error, never a crash.
TEST(AbiProperty, RandomGuestMemoryNeverCrashes) {
  for (uint64_t seed = 1; seed <= 150; ++seed) {
    std::string src = WitGen(seed + 1000).package();
    auto pkg = wit::parse_wit(src, {.strict = true});
    ASSERT_TRUE(pkg) << pkg.status().message();
    Abi abi(*pkg);
    std::mt19937_64 rng(seed);
    BufferMemory mem(1 << 16);
    for (auto& b : mem.bytes()) b = static_cast<uint8_t>(rng() % 4 == 0 ? rng() : rng() % 16);
    for (const wit::Function& fn : pkg->interfaces[0].functions) {
      CoreSignature ex = abi.core_signature(fn, Direction::kExport);
      for (int k = 0; k < 20; ++k) {
        std::vector<CoreValue> flat;
        for (CoreType t : ex.results) {
          uint64_t bits = rng() % 3 == 0 ? rng() : rng() % (1 << 16);
          flat.push_back(CoreValue{t, (t == CoreType::kI32 || t == CoreType::kF32) ? bits & 0xffffffffu : bits});
        }
        CallContext cx(abi, mem, AbiOptions{.lifted_bytes_max = 1 << 20});
        auto r = cx.lift_results(fn, flat);
        if (!r) {
          EXPECT_FALSE(r.status().message().empty());
        }
      }
    }
  }
}

}  // namespace
}  // namespace covenant::abi
