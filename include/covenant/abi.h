// Canonical ABI: host values (WitValue) <-> core Wasm values and guest linear
// memory, per the Component Model's CanonicalABI.md (string encoding utf8,
// deterministic profile: NaNs are canonicalized both ways).
// Thread-safety: Abi is immutable after construction and may be shared; a
// CallContext belongs to one call on one thread. Ownership: Abi borrows the
// wit::Package (it must outlive the Abi); CallContext borrows the Abi and the
// GuestMemory; values are returned by value.
//
// Wiring to an engine (the only thing an engine implements is GuestMemory):
//   class InstanceMemory : public covenant::abi::GuestMemory {
//     uint8_t* data() override;            // base of linear memory 0 (re-read after realloc)
//     uint64_t size() override;            // its current size in bytes
//     Result<uint32_t> realloc(...) override;  // calls the export "cabi_realloc"
//   };
//   abi::Abi abi(package);
//   abi::CallContext cx(abi, memory);
//   std::vector<CoreValue> args;
//   cx.lower_params(*fn, {intent}, &args);           // host -> guest
//   ... call core export abi::export_name(...) with args, get flat results ...
//   auto decision = cx.lift_results(*fn, results);   // guest -> host
//   ... then call abi::post_return_name(...) with the same flat results, if exported.
//
// Three outcomes of every CallContext call:
//   ok                    -> outputs written;
//   guest fault (a trap)  -> Status kInvalidArgument, message "guest trap (<kind>): ...",
//                            cx.trap() != Trap::kNone; the engine reports a trap;
//   host error            -> Status (kInvalidArgument for a value that does not
//                            match its type, kLimitExceeded for a host limit),
//                            cx.trap() == Trap::kNone.
// Outputs are unspecified on failure.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "covenant/status.h"
#include "covenant/wit.h"

namespace covenant::abi {

static_assert(std::endian::native == std::endian::little, "guest memory is little-endian; so must the host be");

// CanonicalABI.md limits.
inline constexpr size_t kMaxFlatParams = 16;
inline constexpr size_t kMaxFlatResults = 1;
inline constexpr uint32_t kMaxStringByteLength = (1u << 31) - 1;
inline constexpr uint32_t kCanonicalF32Nan = 0x7fc00000u;
inline constexpr uint64_t kCanonicalF64Nan = 0x7ff8000000000000ull;

// Core names, as emitted by wit-bindgen.
inline constexpr char kReallocExport[] = "cabi_realloc";
inline constexpr char kPostReturnPrefix[] = "cabi_post_";
inline constexpr char kRootImportModule[] = "$root";

// ---------------------------------------------------------------------------
// Core values

enum class CoreType : uint8_t { kI32, kI64, kF32, kF64 };
const char* core_type_name(CoreType t);

// A core Wasm value. bits holds i32/f32 zero-extended in the low 32 bits,
// i64/f64 in all 64: the variant "join" coercions are then only a change of type.
struct CoreValue {
  CoreType type = CoreType::kI32;
  uint64_t bits = 0;

  static CoreValue i32(uint32_t v) { return {CoreType::kI32, v}; }
  static CoreValue i64(uint64_t v) { return {CoreType::kI64, v}; }
  static CoreValue f32(float v) { return {CoreType::kF32, std::bit_cast<uint32_t>(v)}; }
  static CoreValue f64(double v) { return {CoreType::kF64, std::bit_cast<uint64_t>(v)}; }
  uint32_t as_i32() const { return static_cast<uint32_t>(bits); }
  uint64_t as_i64() const { return bits; }
  float as_f32() const { return std::bit_cast<float>(static_cast<uint32_t>(bits)); }
  double as_f64() const { return std::bit_cast<double>(bits); }
  bool operator==(const CoreValue&) const = default;
};

// ---------------------------------------------------------------------------
// Host values

// A WIT value on the host. It carries no names: a value is interpreted against
// a wit::TypeId (record fields and tuple elements in declaration order, a case
// index for variant/enum, 0 = none / 1 = some for option, 0 = ok / 1 = err for
// result, a bit mask for flags: bit i = flag i). Floats compare by bit pattern.
class WitValue {
 public:
  using Kind = wit::TypeKind;

  WitValue() = default;
  static WitValue boolean(bool v) { return scalar(Kind::kBool, v ? 1 : 0); }
  static WitValue s8(int8_t v) { return scalar(Kind::kS8, static_cast<uint64_t>(static_cast<int64_t>(v))); }
  static WitValue u8(uint8_t v) { return scalar(Kind::kU8, v); }
  static WitValue s16(int16_t v) { return scalar(Kind::kS16, static_cast<uint64_t>(static_cast<int64_t>(v))); }
  static WitValue u16(uint16_t v) { return scalar(Kind::kU16, v); }
  static WitValue s32(int32_t v) { return scalar(Kind::kS32, static_cast<uint64_t>(static_cast<int64_t>(v))); }
  static WitValue u32(uint32_t v) { return scalar(Kind::kU32, v); }
  static WitValue s64(int64_t v) { return scalar(Kind::kS64, static_cast<uint64_t>(v)); }
  static WitValue u64(uint64_t v) { return scalar(Kind::kU64, v); }
  static WitValue f32(float v) { return scalar(Kind::kF32, std::bit_cast<uint32_t>(v)); }
  static WitValue f64(double v) { return scalar(Kind::kF64, std::bit_cast<uint64_t>(v)); }
  static WitValue character(uint32_t code_point) { return scalar(Kind::kChar, code_point); }
  static WitValue string(std::string v) {
    WitValue w(Kind::kString);
    w.str_ = std::move(v);
    return w;
  }
  static WitValue list(std::vector<WitValue> items) { return aggregate(Kind::kList, std::move(items)); }
  static WitValue record(std::vector<WitValue> fields) { return aggregate(Kind::kRecord, std::move(fields)); }
  static WitValue tuple(std::vector<WitValue> items) { return aggregate(Kind::kTuple, std::move(items)); }
  static WitValue variant(uint32_t case_index) { return make_case(Kind::kVariant, case_index); }
  static WitValue variant(uint32_t case_index, WitValue payload) {
    return make_case(Kind::kVariant, case_index, std::move(payload));
  }
  static WitValue enumeration(uint32_t case_index) { return make_case(Kind::kEnum, case_index); }
  static WitValue flags(uint32_t bits) { return scalar(Kind::kFlags, bits); }
  static WitValue none() { return make_case(Kind::kOption, 0); }
  static WitValue some(WitValue v) { return make_case(Kind::kOption, 1, std::move(v)); }
  static WitValue ok() { return make_case(Kind::kResult, 0); }
  static WitValue ok(WitValue v) { return make_case(Kind::kResult, 0, std::move(v)); }
  static WitValue err() { return make_case(Kind::kResult, 1); }
  static WitValue err(WitValue v) { return make_case(Kind::kResult, 1, std::move(v)); }
  // A case of a variant-like kind (variant, enum, option, result), by index.
  static WitValue make_case(Kind k, uint32_t case_index) {
    WitValue w(k);
    w.case_ = case_index;
    return w;
  }
  static WitValue make_case(Kind k, uint32_t case_index, WitValue payload) {
    WitValue w(k);
    w.case_ = case_index;
    w.items_.push_back(std::move(payload));
    w.has_payload_ = true;
    return w;
  }

  Kind kind() const { return kind_; }
  bool as_bool() const { return bits_ != 0; }
  int64_t as_signed() const { return static_cast<int64_t>(bits_); }  // s8..s64, sign-extended
  uint64_t as_unsigned() const { return bits_; }                     // u8..u64, char, flags
  float as_f32() const { return std::bit_cast<float>(static_cast<uint32_t>(bits_)); }
  double as_f64() const { return std::bit_cast<double>(bits_); }
  uint32_t as_char() const { return static_cast<uint32_t>(bits_); }
  uint32_t flag_bits() const { return static_cast<uint32_t>(bits_); }
  const std::string& as_string() const { return str_; }
  std::string& mutable_string() { return str_; }
  // list elements, record fields, tuple elements
  const std::vector<WitValue>& items() const { return items_; }
  std::vector<WitValue>& mutable_items() { return items_; }
  // variant/enum case, option (0 none, 1 some), result (0 ok, 1 err)
  uint32_t case_index() const { return case_; }
  const WitValue* payload() const { return has_payload_ ? &items_[0] : nullptr; }
  uint64_t raw_bits() const { return bits_; }

  bool operator==(const WitValue& o) const;
  // Debug spelling, e.g. record{u64(5), string("a")}.
  std::string debug_string() const;

 private:
  explicit WitValue(Kind k) : kind_(k) {}
  static WitValue scalar(Kind k, uint64_t bits) {
    WitValue w(k);
    w.bits_ = bits;
    return w;
  }
  static WitValue aggregate(Kind k, std::vector<WitValue> items) {
    WitValue w(k);
    w.items_ = std::move(items);
    return w;
  }

  Kind kind_ = Kind::kBool;
  bool has_payload_ = false;
  uint32_t case_ = 0;
  uint64_t bits_ = 0;
  std::string str_;
  std::vector<WitValue> items_;
};

// ---------------------------------------------------------------------------
// Guest memory: the one interface an engine implements.

// A guest's linear memory plus its cabi_realloc. Implementations must not
// throw. data() may move after realloc() (memory.grow); callers re-read it.
class GuestMemory {
 public:
  virtual ~GuestMemory() = default;
  virtual uint8_t* data() = 0;
  virtual uint64_t size() = 0;
  // cabi_realloc(old_ptr, old_size, align, new_size). A trap inside the guest
  // is reported as a non-ok Result; the returned pointer is checked by the
  // caller (alignment and bounds), never trusted.
  virtual Result<uint32_t> realloc(uint32_t old_ptr, uint32_t old_size, uint32_t align, uint32_t new_size) = 0;
};

// A plain byte buffer with a bump allocator: for tests, benchmarks and hosts
// that stage values outside an instance. realloc_hook, when set, replaces the
// allocator (used to inject misbehaving guests).
class BufferMemory final : public GuestMemory {
 public:
  explicit BufferMemory(uint32_t size_bytes, uint32_t heap_start = 16)
      : bytes_(size_bytes, 0), heap_start_(heap_start), next_(heap_start) {}
  uint8_t* data() override { return bytes_.data(); }
  uint64_t size() override { return bytes_.size(); }
  Result<uint32_t> realloc(uint32_t old_ptr, uint32_t old_size, uint32_t align, uint32_t new_size) override;
  void reset() { next_ = heap_start_; }  // frees everything
  std::vector<uint8_t>& bytes() { return bytes_; }
  uint32_t realloc_calls = 0;
  std::function<Result<uint32_t>(uint32_t, uint32_t, uint32_t, uint32_t)> realloc_hook;

 private:
  std::vector<uint8_t> bytes_;
  uint32_t heap_start_;
  uint32_t next_;
};

// ---------------------------------------------------------------------------
// Layout and the Abi

struct Layout {
  uint64_t size = 0;    // elem_size; > 2^32 marks a type too large for wasm32
  uint32_t align = 1;
  std::vector<CoreType> flat;  // flattened core types, only if !flat_overflow
  bool flat_overflow = false;  // more than kMaxFlatParams core values
  size_t flat_count() const { return flat_overflow ? kMaxFlatParams + 1 : flat.size(); }
  // variant-like types (variant, enum, option, result): discriminant bytes,
  // payload offset and the case payload types (kNoType = none)
  uint32_t discriminant_bytes = 0;
  uint32_t payload_offset = 0;
  std::vector<wit::TypeId> cases;
  std::vector<uint32_t> field_offsets;  // record / tuple
};

// Which side of a call the core signature describes.
enum class Direction : uint8_t {
  kExport,  // canon lift: the host calls a guest export (results spill to a returned pointer)
  kImport,  // canon lower: the guest calls a host import (results spill to a caller's pointer)
};

struct CoreSignature {
  std::vector<CoreType> params;
  std::vector<CoreType> results;
  bool params_spilled = false;   // one i32: pointer to the params tuple
  bool results_spilled = false;  // export: i32 result is a pointer; import: extra i32 param
};

class Abi {
 public:
  // REQUIRES: package outlives this Abi.
  explicit Abi(const wit::Package& package);
  Abi(const Abi&) = delete;
  Abi& operator=(const Abi&) = delete;

  const wit::Package& package() const { return pkg_; }
  const Layout& layout(wit::TypeId id) const { return layouts_.at(id); }
  CoreSignature core_signature(const wit::Function& fn, Direction dir) const;

 private:
  void compute(wit::TypeId id);
  const wit::Package& pkg_;
  std::vector<Layout> layouts_;
  std::vector<uint8_t> done_;
};

// Guest faults, numbered explicitly and never reused; ordered by which check
// runs first when one value is lifted.
enum class Trap : int {
  kNone = 0,
  kLengthTooLarge = 1,       // a string over 2^31-1 bytes, or a list whose byte size does not fit wasm32
  kMisaligned = 2,           // a pointer is not aligned for its type
  kOutOfBounds = 3,          // a pointer + length leaves linear memory
  kInvalidUtf8 = 4,          // string bytes are not UTF-8
  kInvalidChar = 5,          // a char is a surrogate or > U+10FFFF
  kInvalidDiscriminant = 6,  // variant/enum/option/result case out of range
  kReallocFailed = 7,        // cabi_realloc trapped or returned a bad pointer
  kLiftBudgetExceeded = 8,   // the lifted value would exceed AbiOptions::lifted_bytes_max
};
const char* trap_name(Trap t);

struct AbiOptions {
  // Host bytes a lift may materialize (string bytes + sizeof(WitValue) per list element).
  // Bounds the host memory a guest can make us allocate (for example a list of
  // a million strings all pointing to the same 1 MiB) — 64 MiB is far above any
  // contract result and far below the host's memory.
  uint64_t lifted_bytes_max = 64ull << 20;
};

// One call's lift/lower state. Not thread-safe; cheap to construct.
class CallContext {
 public:
  CallContext(const Abi& abi, GuestMemory& memory, AbiOptions options = {})
      : abi_(abi), mem_(memory), opts_(options) {}

  Trap trap() const { return trap_; }

  // Export direction: lower the arguments of `fn` (flat, or stored via
  // cabi_realloc into a params tuple when more than 16 core values) ...
  Status lower_params(const wit::Function& fn, std::span<const WitValue> args, std::vector<CoreValue>* flat);
  // ... and lift its results from the export's core results (a pointer to the
  // results tuple when they flatten to more than one core value).
  Result<std::vector<WitValue>> lift_results(const wit::Function& fn, std::span<const CoreValue> flat);

  // Import direction: lift the arguments a guest passed to a host import ...
  Result<std::vector<WitValue>> lift_params(const wit::Function& fn, std::span<const CoreValue> flat);
  // ... and lower the host's results: flat into *flat_results, or stored at the
  // return-area pointer (the last core param) when they spill.
  Status lower_results(const wit::Function& fn, std::span<const WitValue> results,
                       std::span<const CoreValue> flat_params, std::vector<CoreValue>* flat_results);

  // Value level.
  Status lower_flat(wit::TypeId t, const WitValue& v, std::vector<CoreValue>* out);
  Result<WitValue> lift_flat(wit::TypeId t, std::span<const CoreValue> flat, size_t* pos);
  Status store(wit::TypeId t, const WitValue& v, uint32_t ptr);  // checks ptr alignment/bounds
  Result<WitValue> load(wit::TypeId t, uint32_t ptr);             // checks ptr alignment/bounds

 private:
  friend struct CallContextImpl;
  Status fault(Trap t, std::string message);
  const Abi& abi_;
  GuestMemory& mem_;
  AbiOptions opts_;
  Trap trap_ = Trap::kNone;
  uint64_t lifted_bytes_ = 0;
};

// ---------------------------------------------------------------------------
// Core names

// Two schemes name a component's core imports and exports (wit-parser's
// `Mangling`): kLegacy, what wit-bindgen emits today
// ("agent:settlement/policy@0.1.0#approve", "cabi_post_...", "cabi_realloc",
// "memory"), and kStandard32, the newer BuildTargets.md scheme
// ("cm32p2|agent:settlement/policy@0.1|approve", "..._post", "cm32p2_realloc",
// "cm32p2_memory") in which versions are shortened to their compatibility track.
enum class Mangling : uint8_t { kLegacy, kStandard32 };

// The interface part of core names: for the package's own interfaces
// "agent:settlement/policy@0.1.0" (legacy) or "agent:settlement/policy@0.1"
// (standard); foreign ones as written (standard: version shortened); inline
// interfaces by their plain name.
std::string interface_core_name(const wit::Package& pkg, const wit::WorldItem& item,
                                Mangling mangling = Mangling::kLegacy);
// Export of a function of an exported interface; interface_core_name empty
// means a world-level function ("approve" / "cm32p2||approve").
std::string export_name(std::string_view interface_core_name, const wit::Function& fn,
                        Mangling mangling = Mangling::kLegacy);
// The post-return export: "cabi_post_" + export_name, or export_name + "_post".
std::string post_return_name(std::string_view interface_core_name, const wit::Function& fn,
                             Mangling mangling = Mangling::kLegacy);
// Import of a host function: module = interface_core_name (standard:
// "cm32p2|" + it), or "$root" / "cm32p2" for world-level functions; field =
// the function name.
struct ImportName {
  std::string module;
  std::string field;
};
ImportName import_name(std::string_view interface_core_name, const wit::Function& fn,
                       Mangling mangling = Mangling::kLegacy);
// "cabi_realloc" / "cm32p2_realloc", "memory" / "cm32p2_memory".
const char* realloc_export_name(Mangling mangling);
const char* memory_export_name(Mangling mangling);
// Semver compatibility track: 1.2.3 -> "1", 0.2.1 -> "0.2", 0.0.3 -> "0.0.3",
// pre-releases kept whole, build metadata dropped.
std::string version_compat_track(std::string_view version);

// UTF-8 validation as the canonical ABI requires (no overlongs, no surrogates, <= U+10FFFF).
bool is_valid_utf8(std::string_view bytes);
bool is_valid_char(uint32_t code_point);

}  // namespace covenant::abi
