// Canonical ABI: layouts and flattening against CanonicalABI.md, the seed's
// approve call end to end over a byte buffer, spills, variant joins, and a
// table of adversarial guests that must each end in one named trap.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "covenant/abi.h"
#include "covenant/wit.h"

namespace covenant::abi {
namespace {

using wit::TypeId;

constexpr const char* kWit = R"(package t:abi@0.1.0;
interface f {
  record intent { agent-id: string, task-type: string, max-units: u64, expires-at-ms: u64 }
  record decision { approved: bool, ceiling: u64, reason: string }
  record point { x: s32, y: s32 }
  variant shape { circle(f64), rect(tuple<point, point>), empty }
  enum color { red, green, blue }
  flags perms { read, write, exec }
  flags wide { a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, b0, b1, b2, b3, b4, b5, b6 }
  approve: func(i: intent) -> decision;
  get-list: func() -> list<u64>;
  get-strings: func() -> list<string>;
  get-char: func() -> char;
  get-opt: func() -> option<u8>;
  get-color: func() -> color;
  get-shape: func() -> shape;
  get-res: func() -> result<u32, string>;
  many: func(a0: u32, a1: u32, a2: u32, a3: u32, a4: u32, a5: u32, a6: u32, a7: u32, a8: u32,
             a9: u32, a10: u32, a11: u32, a12: u32, a13: u32, a14: u32, a15: u32, a16: string) -> u32;
  host-fn: func(s: string, n: u64) -> tuple<string, u64>;
}
)";

class AbiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto p = wit::parse_wit(kWit);
    ASSERT_TRUE(p) << p.status().message();
    pkg_ = std::make_unique<wit::Package>(std::move(*p));
    abi_ = std::make_unique<Abi>(*pkg_);
    iface_ = pkg_->find_interface("f");
  }
  TypeId type(const char* n) { return iface_->find_type(n); }
  const wit::Function& fn(const char* n) { return *iface_->find_function(n); }
  const Layout& layout(const char* n) { return abi_->layout(type(n)); }

  std::unique_ptr<wit::Package> pkg_;
  std::unique_ptr<Abi> abi_;
  const wit::Interface* iface_ = nullptr;
};

std::vector<CoreType> T(std::initializer_list<CoreType> l) { return l; }
constexpr CoreType I32 = CoreType::kI32, I64 = CoreType::kI64;

TEST_F(AbiTest, LayoutsFollowTheSpec) {
  EXPECT_EQ(layout("intent").size, 32u);
  EXPECT_EQ(layout("intent").align, 8u);
  EXPECT_EQ(layout("intent").flat, T({I32, I32, I32, I32, I64, I64}));
  EXPECT_EQ(layout("intent").field_offsets, (std::vector<uint32_t>{0, 8, 16, 24}));
  EXPECT_EQ(layout("decision").size, 24u);
  EXPECT_EQ(layout("decision").field_offsets, (std::vector<uint32_t>{0, 8, 16}));
  EXPECT_EQ(layout("decision").flat, T({I32, I64, I32, I32}));
  EXPECT_EQ(layout("shape").size, 24u);  // disc u8, payload at 8 (f64), max payload 16
  EXPECT_EQ(layout("shape").align, 8u);
  EXPECT_EQ(layout("shape").payload_offset, 8u);
  EXPECT_EQ(layout("shape").flat, T({I32, I64, I32, I32, I32}));  // join(f64, i32) = i64
  EXPECT_EQ(layout("color").size, 1u);
  EXPECT_EQ(layout("perms").size, 1u);
  EXPECT_EQ(layout("wide").size, 4u);  // 17 flags -> 4 bytes
  const Layout& res = abi_->layout(fn("get-res").results[0].type);
  EXPECT_EQ(res.size, 12u);
  EXPECT_EQ(res.payload_offset, 4u);
  EXPECT_EQ(res.flat, T({I32, I32, I32}));
  const Layout& opt = abi_->layout(fn("get-opt").results[0].type);
  EXPECT_EQ(opt.size, 2u);
  EXPECT_EQ(opt.align, 1u);
}

TEST_F(AbiTest, DiscriminantGrowsWithCases) {
  std::string src = "package a:b;\ninterface i { enum big { ";
  for (int i = 0; i < 257; ++i) src += "c" + std::to_string(i) + ", ";
  src += "} }";
  auto p = wit::parse_wit(src);
  ASSERT_TRUE(p) << p.status().message();
  Abi abi(*p);
  EXPECT_EQ(abi.layout(p->find_interface("i")->find_type("big")).size, 2u);
  EXPECT_EQ(abi.layout(p->find_interface("i")->find_type("big")).discriminant_bytes, 2u);
}

TEST_F(AbiTest, CoreSignatures) {
  CoreSignature ex = abi_->core_signature(fn("approve"), Direction::kExport);
  EXPECT_EQ(ex.params, T({I32, I32, I32, I32, I64, I64}));
  EXPECT_EQ(ex.results, T({I32}));
  EXPECT_TRUE(ex.results_spilled);
  CoreSignature im = abi_->core_signature(fn("approve"), Direction::kImport);
  EXPECT_EQ(im.params, T({I32, I32, I32, I32, I64, I64, I32}));
  EXPECT_TRUE(im.results.empty());
  CoreSignature many = abi_->core_signature(fn("many"), Direction::kExport);
  EXPECT_TRUE(many.params_spilled);
  EXPECT_EQ(many.params, T({I32}));
  EXPECT_EQ(many.results, T({I32}));
}

WitValue seed_intent() {
  return WitValue::record({WitValue::string("agent-7"), WitValue::string("translate"), WitValue::u64(~0ull),
                           WitValue::u64(1700000000000ull)});
}

TEST_F(AbiTest, SeedApproveEndToEnd) {
  BufferMemory mem(1 << 16);
  CallContext cx(*abi_, mem);
  std::vector<CoreValue> args;
  WitValue intent = seed_intent();
  ASSERT_TRUE(cx.lower_params(fn("approve"), std::span(&intent, 1), &args).is_ok());
  ASSERT_EQ(args.size(), 6u);
  EXPECT_EQ(args[1].as_i32(), 7u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(mem.data() + args[0].as_i32()), 7), "agent-7");
  EXPECT_EQ(args[4], CoreValue::i64(~0ull));
  // The guest would lift these itself; the import direction is our mirror of it.
  auto lifted = cx.lift_params(fn("approve"), std::vector<CoreValue>(args.begin(), args.end()));
  ASSERT_FALSE(lifted);  // approve's import form needs the return-area pointer too
  args.push_back(CoreValue::i32(0));
  lifted = cx.lift_params(fn("approve"), args);
  ASSERT_TRUE(lifted) << lifted.status().message();
  EXPECT_EQ((*lifted)[0], intent);

  // Guest writes a decision {true, 500, "ok"} at 0x100 and returns 0x100.
  uint8_t* m = mem.data();
  m[0x100] = 1;
  uint64_t ceiling = 500;
  std::memcpy(m + 0x108, &ceiling, 8);
  std::memcpy(m + 0x200, "ok", 2);
  uint32_t sp = 0x200, sl = 2;
  std::memcpy(m + 0x110, &sp, 4);
  std::memcpy(m + 0x114, &sl, 4);
  CoreValue ret = CoreValue::i32(0x100);
  auto res = cx.lift_results(fn("approve"), std::span(&ret, 1));
  ASSERT_TRUE(res) << res.status().message();
  EXPECT_EQ((*res)[0], WitValue::record({WitValue::boolean(true), WitValue::u64(500), WitValue::string("ok")}));

  // Host-import direction: lower the decision into the guest's return area.
  std::vector<CoreValue> flat_results;
  std::vector<CoreValue> params = args;
  params.back() = CoreValue::i32(0x300);
  ASSERT_TRUE(cx.lower_results(fn("approve"), std::span(&(*res)[0], 1), params, &flat_results).is_ok());
  EXPECT_TRUE(flat_results.empty());
  EXPECT_EQ(m[0x300], 1);
  auto back = cx.load(type("decision"), 0x300);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, (*res)[0]);
}

TEST_F(AbiTest, SpilledParamsGoThroughRealloc) {
  BufferMemory mem(1 << 16);
  CallContext cx(*abi_, mem);
  std::vector<WitValue> args;
  for (uint32_t i = 0; i < 16; ++i) args.push_back(WitValue::u32(i * 3));
  args.push_back(WitValue::string("tail"));
  std::vector<CoreValue> flat;
  ASSERT_TRUE(cx.lower_params(fn("many"), args, &flat).is_ok());
  ASSERT_EQ(flat.size(), 1u);
  EXPECT_EQ(flat[0].as_i32() % 4, 0u);
  auto back = cx.lift_params(fn("many"), flat);
  ASSERT_TRUE(back) << back.status().message();
  EXPECT_EQ(*back, args);
}

TEST_F(AbiTest, VariantJoinCoercesAndPads) {
  BufferMemory mem(1 << 12);
  CallContext cx(*abi_, mem);
  std::vector<CoreValue> flat;
  WitValue circle = WitValue::variant(0, WitValue::f64(1.5));
  ASSERT_TRUE(cx.lower_flat(type("shape"), circle, &flat).is_ok());
  ASSERT_EQ(flat.size(), 5u);
  EXPECT_EQ(flat[0], CoreValue::i32(0));
  EXPECT_EQ(flat[1], CoreValue::i64(std::bit_cast<uint64_t>(1.5)));
  EXPECT_EQ(flat[4], CoreValue::i32(0));
  size_t pos = 0;
  auto back = cx.lift_flat(type("shape"), flat, &pos);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, circle);
  WitValue rect = WitValue::variant(1, WitValue::tuple({WitValue::record({WitValue::s32(-1), WitValue::s32(2)}),
                                                        WitValue::record({WitValue::s32(3), WitValue::s32(-4)})}));
  flat.clear();
  ASSERT_TRUE(cx.lower_flat(type("shape"), rect, &flat).is_ok());
  EXPECT_EQ(flat[1], CoreValue::i64(0xffffffffu));  // s32 -1 zero-extended into the i64 slot
  pos = 0;
  back = cx.lift_flat(type("shape"), flat, &pos);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, rect);
}

TEST_F(AbiTest, NaNIsCanonicalized) {
  BufferMemory mem(1 << 12);
  CallContext cx(*abi_, mem);
  std::vector<CoreValue> flat;
  ASSERT_TRUE(cx.lower_flat(wit::TypeId(TypeId(wit::TypeKind::kF64)), WitValue::f64(std::bit_cast<double>(0x7ff8dead00000001ull)), &flat).is_ok());
  EXPECT_EQ(flat[0].bits, kCanonicalF64Nan);
  CoreValue weird{CoreType::kF32, 0xffc00123u};
  size_t pos = 0;
  auto v = cx.lift_flat(TypeId(wit::TypeKind::kF32), std::span(&weird, 1), &pos);
  ASSERT_TRUE(v);
  EXPECT_EQ(static_cast<uint32_t>(v->raw_bits()), kCanonicalF32Nan);
}

TEST_F(AbiTest, HostValueMismatchIsAHostErrorNotATrap) {
  BufferMemory mem(1 << 12);
  CallContext cx(*abi_, mem);
  std::vector<CoreValue> flat;
  WitValue wrong = WitValue::record({WitValue::string("a")});
  Status s = cx.lower_params(fn("approve"), std::span(&wrong, 1), &flat);
  EXPECT_FALSE(s.is_ok());
  EXPECT_EQ(cx.trap(), Trap::kNone);
  EXPECT_FALSE(cx.lower_flat(TypeId(wit::TypeKind::kChar), WitValue::character(0xD800), &flat).is_ok());
  EXPECT_FALSE(cx.lower_flat(TypeId(wit::TypeKind::kString), WitValue::string("\xff"), &flat).is_ok());
  EXPECT_FALSE(cx.lower_flat(type("perms"), WitValue::flags(8), &flat).is_ok());
  EXPECT_EQ(cx.trap(), Trap::kNone);
}

// Golden names from wasm-tools' dummy module for the same WIT (jco 1.x,
// componentEmbed({dummy: true}) prints the standard32 scheme).
TEST(CoreNames, LegacyAndStandard32) {
  auto pkg = wit::parse_wit(R"(package covenant:fixture@1.2.3;
interface everything { echo: func(); }
world host {
  import log: func(msg: string);
  import clock: interface { now: func() -> u64; }
  export everything;
  export run: func() -> u32;
})");
  ASSERT_TRUE(pkg) << pkg.status().message();
  const wit::World& w = *pkg->find_world("host");
  const wit::Function& echo = pkg->interfaces[0].functions[0];
  const wit::Function& run = w.exports[1].function;
  std::string legacy = interface_core_name(*pkg, w.exports[0]);
  std::string standard = interface_core_name(*pkg, w.exports[0], Mangling::kStandard32);
  EXPECT_EQ(legacy, "covenant:fixture/everything@1.2.3");
  EXPECT_EQ(standard, "covenant:fixture/everything@1");
  EXPECT_EQ(export_name(legacy, echo), "covenant:fixture/everything@1.2.3#echo");
  EXPECT_EQ(export_name(standard, echo, Mangling::kStandard32), "cm32p2|covenant:fixture/everything@1|echo");
  EXPECT_EQ(post_return_name(standard, echo, Mangling::kStandard32), "cm32p2|covenant:fixture/everything@1|echo_post");
  EXPECT_EQ(export_name("", run), "run");
  EXPECT_EQ(post_return_name("", run), "cabi_post_run");
  EXPECT_EQ(export_name("", run, Mangling::kStandard32), "cm32p2||run");
  ImportName log = import_name("", w.imports[0].function, Mangling::kStandard32);
  EXPECT_EQ(log.module, "cm32p2");
  EXPECT_EQ(log.field, "log");
  EXPECT_EQ(import_name("", w.imports[0].function).module, "$root");
  std::string clock = interface_core_name(*pkg, w.imports[1], Mangling::kStandard32);
  EXPECT_EQ(import_name(clock, pkg->interfaces[1].functions[0], Mangling::kStandard32).module, "cm32p2|clock");
  EXPECT_STREQ(realloc_export_name(Mangling::kStandard32), "cm32p2_realloc");
  EXPECT_STREQ(realloc_export_name(Mangling::kLegacy), "cabi_realloc");
}

TEST(CoreNames, VersionCompatTrack) {
  EXPECT_EQ(version_compat_track("1.2.3"), "1");
  EXPECT_EQ(version_compat_track("0.1.0"), "0.1");
  EXPECT_EQ(version_compat_track("0.0.3"), "0.0.3");
  EXPECT_EQ(version_compat_track("2.0.0-rc.1"), "2.0.0-rc.1");
  EXPECT_EQ(version_compat_track("0.2.1+build.5"), "0.2");
}

TEST(AbiTrapCodes, NumberingIsStable) {
  EXPECT_EQ(static_cast<int>(Trap::kNone), 0);
  EXPECT_EQ(static_cast<int>(Trap::kLengthTooLarge), 1);
  EXPECT_EQ(static_cast<int>(Trap::kMisaligned), 2);
  EXPECT_EQ(static_cast<int>(Trap::kOutOfBounds), 3);
  EXPECT_EQ(static_cast<int>(Trap::kInvalidUtf8), 4);
  EXPECT_EQ(static_cast<int>(Trap::kInvalidChar), 5);
  EXPECT_EQ(static_cast<int>(Trap::kInvalidDiscriminant), 6);
  EXPECT_EQ(static_cast<int>(Trap::kReallocFailed), 7);
  EXPECT_EQ(static_cast<int>(Trap::kLiftBudgetExceeded), 8);
}

TEST(Utf8, Validation) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii text longer than eight"));
  EXPECT_TRUE(is_valid_utf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xc0\x80"));          // overlong NUL
  EXPECT_FALSE(is_valid_utf8("\xe0\x80\xaf"));      // overlong
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(is_valid_utf8("abc\xe2\x82"));       // truncated
  EXPECT_FALSE(is_valid_utf8("\x80"));
  EXPECT_FALSE(is_valid_utf8("\xff"));
}

// ---------------------------------------------------------------------------
// Adversarial guests: each row sets up guest memory and the flat results a
// guest export returned (or a misbehaving realloc) and names the one trap.

struct Adversary {
  const char* name;
  const char* function;
  // Writes guest memory; returns the flat results of the export.
  std::function<std::vector<CoreValue>(BufferMemory&)> setup;
  Trap expect;
};

void put32(BufferMemory& m, uint32_t at, uint32_t v) { std::memcpy(m.data() + at, &v, 4); }

std::vector<CoreValue> decision_with_string(BufferMemory& m, uint32_t sptr, uint32_t slen) {
  m.data()[0x100] = 1;
  put32(m, 0x110, sptr);
  put32(m, 0x114, slen);
  return {CoreValue::i32(0x100)};
}

std::vector<CoreValue> list_at(BufferMemory& m, uint32_t ptr, uint32_t len) {
  put32(m, 0x100, ptr);
  put32(m, 0x104, len);
  return {CoreValue::i32(0x100)};
}

const Adversary kAdversaries[] = {
    {"results_pointer_out_of_bounds", "approve", [](BufferMemory&) { return std::vector{CoreValue::i32(0xfffffff8u)}; }, Trap::kOutOfBounds},
    {"results_pointer_straddles_end", "approve", [](BufferMemory& m) { return std::vector{CoreValue::i32(static_cast<uint32_t>(m.size() - 16))}; }, Trap::kOutOfBounds},
    {"results_pointer_misaligned", "approve", [](BufferMemory&) { return std::vector{CoreValue::i32(0x104)}; }, Trap::kMisaligned},
    {"string_pointer_out_of_bounds", "approve", [](BufferMemory& m) { return decision_with_string(m, 0xffff0000u, 4); }, Trap::kOutOfBounds},
    {"string_length_absurd", "approve", [](BufferMemory& m) { return decision_with_string(m, 0x200, 0xffffffffu); }, Trap::kLengthTooLarge},
    {"string_length_past_memory", "approve", [](BufferMemory& m) { return decision_with_string(m, 0x200, 0x7fffffffu); }, Trap::kOutOfBounds},
    {"string_ptr_plus_len_wraps", "approve", [](BufferMemory& m) { return decision_with_string(m, 0xfffffff0u, 0x20); }, Trap::kOutOfBounds},
    {"string_invalid_utf8", "approve", [](BufferMemory& m) { m.data()[0x200] = 0xff; return decision_with_string(m, 0x200, 1); }, Trap::kInvalidUtf8},
    {"string_overlong_utf8", "approve", [](BufferMemory& m) { m.data()[0x200] = 0xc0; m.data()[0x201] = 0x80; return decision_with_string(m, 0x200, 2); }, Trap::kInvalidUtf8},
    {"string_surrogate_utf8", "approve", [](BufferMemory& m) { std::memcpy(m.data() + 0x200, "\xed\xa0\x80", 3); return decision_with_string(m, 0x200, 3); }, Trap::kInvalidUtf8},
    {"list_length_too_large", "get-list", [](BufferMemory& m) { return list_at(m, 0x200, 0x40000000u); }, Trap::kLengthTooLarge},
    {"list_past_memory", "get-list", [](BufferMemory& m) { return list_at(m, 0x200, 0x10000u); }, Trap::kOutOfBounds},
    {"list_misaligned", "get-list", [](BufferMemory& m) { return list_at(m, 0x201, 1); }, Trap::kMisaligned},
    {"list_of_strings_bad_element", "get-strings", [](BufferMemory& m) { put32(m, 0x200, 0x7fffffffu); put32(m, 0x204, 1); return list_at(m, 0x200, 1); }, Trap::kOutOfBounds},
    {"char_surrogate", "get-char", [](BufferMemory&) { return std::vector{CoreValue::i32(0xD800)}; }, Trap::kInvalidChar},
    {"char_too_large", "get-char", [](BufferMemory&) { return std::vector{CoreValue::i32(0x110000)}; }, Trap::kInvalidChar},
    {"option_bad_tag", "get-opt", [](BufferMemory& m) { m.data()[0x100] = 2; return std::vector{CoreValue::i32(0x100)}; }, Trap::kInvalidDiscriminant},
    {"enum_bad_case", "get-color", [](BufferMemory&) { return std::vector{CoreValue::i32(3)}; }, Trap::kInvalidDiscriminant},
    {"variant_bad_case", "get-shape", [](BufferMemory& m) { m.data()[0x100] = 9; return std::vector{CoreValue::i32(0x100)}; }, Trap::kInvalidDiscriminant},
    {"result_bad_case", "get-res", [](BufferMemory& m) { m.data()[0x100] = 2; return std::vector{CoreValue::i32(0x100)}; }, Trap::kInvalidDiscriminant},
};

class Adversarial : public AbiTest, public ::testing::WithParamInterface<Adversary> {};

TEST_P(Adversarial, CleanTrap) {
  const Adversary& a = GetParam();
  BufferMemory mem(1 << 16);
  CallContext cx(*abi_, mem);
  std::vector<CoreValue> flat = a.setup(mem);
  auto r = cx.lift_results(fn(a.function), flat);
  ASSERT_FALSE(r) << a.name;
  EXPECT_EQ(cx.trap(), a.expect) << a.name << ": " << r.status().message();
  EXPECT_NE(r.status().message().find(std::string("guest trap (") + trap_name(a.expect) + ")"), std::string::npos)
      << r.status().message();
}

INSTANTIATE_TEST_SUITE_P(Table, Adversarial, ::testing::ValuesIn(kAdversaries),
                         [](const ::testing::TestParamInfo<Adversary>& i) { return std::string(i.param.name); });

struct BadRealloc {
  const char* name;
  std::function<Result<uint32_t>(uint32_t, uint32_t, uint32_t, uint32_t)> hook;
};

const BadRealloc kBadReallocs[] = {
    {"traps", [](uint32_t, uint32_t, uint32_t, uint32_t) -> Result<uint32_t> { return Status::internal("unreachable executed"); }},
    {"out_of_bounds", [](uint32_t, uint32_t, uint32_t, uint32_t) -> Result<uint32_t> { return 0xfffffff0u; }},
    {"straddles_end", [](uint32_t, uint32_t, uint32_t, uint32_t) -> Result<uint32_t> { return (1u << 16) - 2; }},
    {"misaligned", [](uint32_t, uint32_t, uint32_t align, uint32_t) -> Result<uint32_t> { return align > 1 ? 0x101u : 0x100u; }},
};

class Realloc : public AbiTest, public ::testing::WithParamInterface<BadRealloc> {};

TEST_P(Realloc, MisbehavingReallocIsATrap) {
  BufferMemory mem(1 << 16);
  mem.realloc_hook = GetParam().hook;
  CallContext cx(*abi_, mem);
  std::vector<WitValue> args;
  for (uint32_t i = 0; i < 16; ++i) args.push_back(WitValue::u32(i));
  args.push_back(WitValue::string("a string long enough to straddle"));
  std::vector<CoreValue> flat;
  Status s = cx.lower_params(fn("many"), args, &flat);  // params tuple (align 4) and the string (align 1)
  ASSERT_FALSE(s.is_ok()) << GetParam().name;
  EXPECT_EQ(cx.trap(), Trap::kReallocFailed) << s.message();
  EXPECT_NE(s.message().find("cabi_realloc"), std::string::npos) << s.message();
}

INSTANTIATE_TEST_SUITE_P(Table, Realloc, ::testing::ValuesIn(kBadReallocs),
                         [](const ::testing::TestParamInfo<BadRealloc>& i) { return std::string(i.param.name); });

TEST_F(AbiTest, LiftBudgetStopsAmplification) {
  // 60,000 list elements, every one pointing at the same 1 KiB string: 60 MiB
  // of host strings from 480 KiB... here scaled down against a small budget.
  BufferMemory mem(1 << 20);
  for (uint32_t i = 0; i < 1000; ++i) {
    put32(mem, 0x1000 + i * 8, 0x800);
    put32(mem, 0x1000 + i * 8 + 4, 1024);
  }
  std::memset(mem.data() + 0x800, 'a', 1024);
  CallContext cx(*abi_, mem, AbiOptions{.lifted_bytes_max = 256 * 1024});
  auto r = cx.lift_results(fn("get-strings"), list_at(mem, 0x1000, 1000));
  ASSERT_FALSE(r);
  EXPECT_EQ(cx.trap(), Trap::kLiftBudgetExceeded) << r.status().message();
  CallContext roomy(*abi_, mem);
  EXPECT_TRUE(roomy.lift_results(fn("get-strings"), list_at(mem, 0x1000, 1000)));
}

TEST_F(AbiTest, WrongCoreValuesAreHostErrors) {
  BufferMemory mem(1 << 12);
  CallContext cx(*abi_, mem);
  std::vector<CoreValue> two{CoreValue::i32(1), CoreValue::i32(2)};
  EXPECT_FALSE(cx.lift_results(fn("approve"), two));
  std::vector<CoreValue> wrong_type{CoreValue::i64(1)};
  EXPECT_FALSE(cx.lift_results(fn("get-char"), wrong_type));
  EXPECT_EQ(cx.trap(), Trap::kNone);
}

TEST_F(AbiTest, BoolLiftsAnyNonZeroAsTrue) {
  BufferMemory mem(1 << 12);
  CallContext cx(*abi_, mem);
  mem.data()[0x40] = 2;
  auto v = cx.load(TypeId(wit::TypeKind::kBool), 0x40);
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->as_bool());
}

}  // namespace
}  // namespace covenant::abi
