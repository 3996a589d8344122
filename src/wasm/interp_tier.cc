// The interp tier: wabt's interpreter running the metered module. It is the
// reference every other tier must agree with.
#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "wabt/binary-reader.h"
#include "wabt/interp/binary-reader-interp.h"
#include "wabt/interp/interp.h"
#include "wasm/tiers.h"
#include "wasm/wabt_util.h"

namespace covenant::wasm {

namespace wi = wabt::interp;

// wabt 1.0.32's Thread sizes its call and value stacks from fixed defaults
// (about 2,700 frames), below the 10,000 frames contracts are promised, and
// offers no option to change them. Its limit is the vectors' capacity, so we
// reserve more. Explicit instantiation may name private members; this is the
// standard-conforming way to reach them without patching libwabt.
namespace {
struct FramesTag {
  friend std::vector<wi::Frame> wi::Thread::* member(FramesTag);
};
struct ValuesTag {
  friend std::vector<wi::Value> wi::Thread::* member(ValuesTag);
};
template <class Tag, auto M>
struct Rob {
  friend decltype(M) member(Tag) { return M; }
};
template struct Rob<FramesTag, &wi::Thread::frames_>;
template struct Rob<ValuesTag, &wi::Thread::values_>;
}  // namespace

struct InterpCode {
  wi::ModuleDesc desc;
  wabt::Features features;
};

Result<std::shared_ptr<InterpCode>> load_interp(const PreparedModule& prep, const Features& features) {
  auto code = std::make_shared<InterpCode>();
  code->features = metered_features(features);
  wabt::Errors errors;
  wabt::ReadBinaryOptions opts(code->features, nullptr, false, true, false);
  if (wabt::Failed(wi::ReadBinaryInterp("metered", prep.metered.data(), prep.metered.size(), opts, &errors,
                                        &code->desc)))
    return Status::internal("the interpreter could not read the metered module: " +
                            (errors.empty() ? std::string() : errors[0].message));
  return code;
}

namespace {

wabt::Type wabt_type(ValType t) {
  switch (t) {
    case ValType::kI32: return wabt::Type::I32;
    case ValType::kI64: return wabt::Type::I64;
    case ValType::kF32: return wabt::Type::F32;
    case ValType::kF64: return wabt::Type::F64;
  }
  return wabt::Type::I32;
}

wi::Value to_interp(const Value& v) {
  switch (v.type) {
    case ValType::kI32: return wi::Value::Make(static_cast<uint32_t>(v.bits));
    case ValType::kI64: return wi::Value::Make(static_cast<uint64_t>(v.bits));
    case ValType::kF32: {
      uint32_t b = static_cast<uint32_t>(v.bits);
      float f;
      std::memcpy(&f, &b, 4);
      return wi::Value::Make(f);
    }
    case ValType::kF64: {
      double d;
      std::memcpy(&d, &v.bits, 8);
      return wi::Value::Make(d);
    }
  }
  return {};
}

Value from_interp(ValType t, const wi::Value& v) {
  switch (t) {
    case ValType::kI32: return {t, v.Get<uint32_t>()};
    case ValType::kI64: return {t, v.Get<uint64_t>()};
    case ValType::kF32: {
      float f = v.Get<float>();
      uint32_t b;
      std::memcpy(&b, &f, 4);
      return {t, b};
    }
    case ValType::kF64: {
      double d = v.Get<double>();
      uint64_t b;
      std::memcpy(&b, &d, 8);
      return {t, b};
    }
  }
  return {};
}

TrapKind classify_message(const std::string& m, uint32_t reason) {
  auto has = [&](const char* s) { return m.find(s) != std::string::npos; };
  if (has("unreachable")) {
    switch (reason) {
      case kReasonFuel: return TrapKind::kOutOfFuel;
      case kReasonDepth: return TrapKind::kStackExhausted;
      case kReasonDeadline: return TrapKind::kDeadline;
      default: return TrapKind::kUnreachable;
    }
  }
  if (has("out of bounds memory")) return TrapKind::kMemoryOutOfBounds;
  if (has("undefined table index") || has("out of bounds table")) return TrapKind::kTableOutOfBounds;
  if (has("uninitialized table element")) return TrapKind::kUninitializedElement;
  if (has("indirect call signature mismatch")) return TrapKind::kIndirectCallTypeMismatch;
  if (has("divide by zero")) return TrapKind::kIntegerDivideByZero;
  if (has("integer overflow")) return TrapKind::kIntegerOverflow;
  if (has("invalid conversion")) return TrapKind::kInvalidConversion;
  if (has("exhausted")) return TrapKind::kStackExhausted;
  return TrapKind::kHost;
}

class InterpInstance;
TrapKind nested_call(InterpInstance* inst, uint32_t index, uint64_t* slots);

class InterpHostCall final : public HostCall {
 public:
  InterpHostCall(InterpInstance* inst, wi::Memory* mem) : inst_(inst), mem_(mem) {}
  std::span<uint8_t> memory() override {
    if (!mem_) return {};
    return {mem_->UnsafeData(), static_cast<size_t>(mem_->ByteSize())};
  }
  TrapKind call_export(uint32_t export_index, uint64_t* slots) override {
    return nested_call(inst_, export_index, slots);
  }

 private:
  InterpInstance* inst_;
  wi::Memory* mem_;
};

class InterpInstance final : public Instance {
 public:
  InterpInstance(std::shared_ptr<ModuleImpl> module, std::vector<Linker::Entry> imports, void* user_data,
                 InstanceLimits limits)
      : module_(std::move(module)), imports_(std::move(imports)), user_data_(user_data), limits_(limits) {}

  Status setup() {
    const PreparedModule& prep = *module_->prep;
    store_ = std::make_unique<wi::Store>(module_->interp->features);
    wi::ModuleDesc desc = module_->interp->desc;
    if (prep.memory.present) {
      uint64_t cap = std::min<uint64_t>(limits_.memory_bytes_max / kWasmPageBytes, 65536);
      if (prep.memory.initial_pages > cap)
        return Status::limit("the module's initial memory (" +
                             std::to_string(uint64_t(prep.memory.initial_pages) * kWasmPageBytes) +
                             " bytes) exceeds the instance limit memory_bytes_max (" +
                             std::to_string(limits_.memory_bytes_max) + ")");
      auto& lim = desc.memories[0].type.limits;
      lim.max = std::min<uint64_t>(lim.has_max ? lim.max : 65536, cap);
      lim.has_max = true;
    }
    // Table growth is capped like the C tiers' runtime caps it (runtime.cc).
    for (auto& t : desc.tables) {
      auto& lim = t.type.limits;
      uint64_t max = std::min<uint64_t>(lim.has_max ? lim.max : UINT32_MAX, limits_.table_elements_max);
      lim.max = std::max<uint64_t>(max, lim.initial);
      lim.has_max = true;
    }
    module_ref_ = wi::Module::New(*store_, std::move(desc));
    wi::RefVec imports;
    for (size_t k = 0; k < imports_.size(); ++k) {
      const Linker::Entry* e = &imports_[k];
      wi::ValueTypes params, results;
      for (ValType t : e->type.params) params.push_back(wabt_type(t));
      for (ValType t : e->type.results) results.push_back(wabt_type(t));
      auto fn = wi::HostFunc::New(
          *store_, wi::FuncType(params, results),
          [this, e](wi::Thread&, const wi::Values& args, wi::Values& res, wi::Trap::Ptr* out_trap) -> wabt::Result {
            return host_call(*e, args, res, out_trap);
          });
      imports.push_back(fn.ref());
    }
    wi::Trap::Ptr trap;
    instance_ = wi::Instance::Instantiate(*store_, module_ref_.ref(), imports, &trap);
    if (!instance_) return Status::invalid("instantiation failed: " + (trap ? trap->message() : std::string()));
    const auto& names = module_ref_->export_types();
    const auto& refs = instance_->exports();
    exports_.resize(prep.exports.size());
    for (size_t i = 0; i < names.size(); ++i) {
      const std::string& n = names[i].name;
      if (n == kFuelGlobal) fuel_ = store_->UnsafeGet<wi::Global>(refs[i]);
      else if (n == kBankGlobal) bank_ = store_->UnsafeGet<wi::Global>(refs[i]);
      else if (n == kInterruptGlobal) int_ = store_->UnsafeGet<wi::Global>(refs[i]);
      else if (n == kTrapGlobal) trap_ = store_->UnsafeGet<wi::Global>(refs[i]);
      else if (n == kDepthGlobal) depth_ = store_->UnsafeGet<wi::Global>(refs[i]);
      else if (n == kMemoryExport) mem_ = store_->UnsafeGet<wi::Memory>(refs[i]);
      else if (n == kStartExport) start_ = store_->UnsafeGet<wi::Func>(refs[i]);
      else if (n.size() > 1 && n[0] == 'e') exports_[std::stoul(n.substr(1))] = store_->UnsafeGet<wi::Func>(refs[i]);
    }
    if (!fuel_ || !bank_ || !int_ || !trap_ || !depth_) return Status::internal("metered module lacks its globals");
    if (mem_ && !prep.memory_image.empty())
      std::memcpy(mem_->UnsafeData(), prep.memory_image.data(), prep.memory_image.size());
    thread_ = fresh_thread();
    if (start_) {
      CallOutcome out;
      run(start_, {}, {}, CallOptions{}.fuel, 0, out);
      if (!out.ok()) return Status::invalid(std::string("the start function trapped: ") + trap_kind_name(out.trap.kind));
    }
    return Status::ok();
  }

  Module& module() override { return *module_; }

  Result<CallOutcome> call(uint32_t index, std::span<const Value> args, const CallOptions& options) override {
    const PreparedModule& prep = *module_->prep;
    if (index >= prep.exports.size()) return Status::invalid("no export with index " + std::to_string(index));
    const FuncType& t = prep.exports[index].type;
    if (args.size() != t.params.size())
      return Status::invalid("export \"" + prep.exports[index].name + "\" takes " + std::to_string(t.params.size()) +
                             " arguments, got " + std::to_string(args.size()));
    for (size_t i = 0; i < args.size(); ++i)
      if (args[i].type != t.params[i])
        return Status::invalid("argument " + std::to_string(i) + " of \"" + prep.exports[index].name + "\" must be " +
                               valtype_name(t.params[i]) + ", got " + valtype_name(args[i].type));
    COVENANT_RETURN_IF_ERROR(check_call_fuel(options.fuel));
    CallOutcome out;
    run(exports_[index], args, t.results, options.fuel, options.deadline_ms, out);
    return out;
  }

  TrapKind call_raw(uint32_t index, uint64_t* slots, uint64_t fuel, uint64_t* fuel_used) override {
    const FuncType& t = module_->prep->exports[index].type;
    std::vector<Value> args;
    for (size_t i = 0; i < t.params.size(); ++i) args.push_back({t.params[i], slots[i]});
    CallOutcome out;
    run(exports_[index], args, t.results, fuel, 0, out);
    *fuel_used = out.fuel_used;
    for (size_t i = 0; i < out.results.size(); ++i) slots[i] = out.results[i].bits;
    return out.trap.kind;
  }

  std::span<uint8_t> memory() override {
    if (!mem_) return {};
    return {mem_->UnsafeData(), static_cast<size_t>(mem_->ByteSize())};
  }

  // A call into this instance from one of its host functions: a Thread of its
  // own (the calling one is suspended in the host function), the same globals.
  TrapKind nested(uint32_t index, uint64_t* slots) {
    const PreparedModule& prep = *module_->prep;
    if (index >= prep.exports.size()) {
      nested_trap_ = TrapKind::kHost;
      nested_message_ = "call_export: no export with index " + std::to_string(index);
      return nested_trap_;
    }
    const FuncType& t = prep.exports[index].type;
    // By level, not by reference: a call nested deeper grows nested_threads_,
    // which moves its elements (a reference kept across the call dangled, and
    // a trap two host calls deep then wrote through it: SIGSEGV).
    const size_t level = nesting_;
    if (nested_threads_.size() <= level) nested_threads_.push_back(fresh_thread());
    wi::Thread& th = *nested_threads_[level];
    wi::Values params, results;
    for (size_t i = 0; i < t.params.size(); ++i) params.push_back(to_interp({t.params[i], slots[i]}));
    results.resize(t.results.size());  // an export that is an import runs HostFunc::Call, which does not size it
    wi::Trap::Ptr trap;
    host_trapped_ = false;
    ++nesting_;
    wabt::Result r = exports_[index]->Call(th, params, results, &trap);
    --nesting_;
    if (!wabt::Failed(r)) {
      for (size_t i = 0; i < t.results.size(); ++i) slots[i] = from_interp(t.results[i], results[i]).bits;
      return TrapKind::kNone;
    }
    const TrapKind k = host_trapped_ ? TrapKind::kHost : classify_message(trap ? trap->message() : "", trap_->Get().Get<uint32_t>());
    if (nested_trap_ == TrapKind::kNone) {  // the innermost trap is the call's
      nested_trap_ = k;
      nested_message_ = message_for(k, trap);
    }
    nested_threads_[level] = fresh_thread();  // a trapped Thread keeps its frames
    return k;
  }

  Tier tier() const override { return Tier::kInterp; }

  Status reset() override {
    nested_threads_.clear();
    thread_.reset();
    instance_.reset();
    module_ref_.reset();
    fuel_.reset(); bank_.reset(); int_.reset(); trap_.reset(); depth_.reset(); mem_.reset(); start_.reset();
    exports_.clear();
    store_.reset();
    return setup();
  }

 private:
  wabt::Result host_call(const Linker::Entry& e, const wi::Values& args, wi::Values& res, wi::Trap::Ptr* out_trap) {
    std::vector<Value> a, r;
    for (size_t i = 0; i < e.type.params.size(); ++i) a.push_back(from_interp(e.type.params[i], args[i]));
    for (ValType t : e.type.results) r.push_back({t, 0});
    InterpHostCall hc(this, mem_.get());
    hc.user_data = user_data_;
    HostResult hr;
    try {
      hr = e.fn(hc, a, r);
    } catch (const std::exception& ex) {
      hr = HostResult::trap(std::string("host function threw: ") + ex.what());
    } catch (...) {
      hr = HostResult::trap("host function threw");
    }
    if (nested_trap_ != TrapKind::kNone) {  // a nested call trapped: so does this call
      *out_trap = wi::Trap::New(*store_, nested_message_);
      return wabt::Result::Error;
    }
    if (hr.trapped) {
      host_message_ = e.module + "." + e.field + ": " + hr.message;
      host_trapped_ = true;
      *out_trap = wi::Trap::New(*store_, host_message_);
      return wabt::Result::Error;
    }
    for (size_t i = 0; i < r.size(); ++i) res[i] = to_interp(r[i]);
    return wabt::Result::Ok;
  }

  std::unique_ptr<wi::Thread> fresh_thread() {
    auto th = std::make_unique<wi::Thread>(*store_);
    // Room for call_depth_max frames: the metered code traps first, at the same
    // depth as every other tier.
    (th.get()->*member(FramesTag{})).reserve(size_t(module_->prep->call_depth_max) + 64);
    (th.get()->*member(ValuesTag{})).reserve(size_t(1) << 22);
    return th;
  }

  std::string message_for(TrapKind kind, const wi::Trap::Ptr& trap) const {
    switch (kind) {
      case TrapKind::kHost: return host_message_;
      case TrapKind::kOutOfFuel: return "out of fuel";
      case TrapKind::kDeadline: return "deadline exceeded";
      case TrapKind::kStackExhausted:
        return "call stack exhausted (call_depth_max " + std::to_string(module_->prep->call_depth_max) + ")";
      default: return trap ? trap->message() : "trap";
    }
  }

  void run(const wi::Func::Ptr& fn, std::span<const Value> args, const std::vector<ValType>& result_types,
           uint64_t fuel, uint32_t deadline_ms, CallOutcome& out) {
    fuel = std::min(fuel, kCallFuelMax);  // call_raw's cap; call() refused larger budgets
    uint64_t first = fuel < kFuelSliceUnits ? fuel : kFuelSliceUnits;
    fuel_->UnsafeSet(wi::Value::Make(first));
    bank_->UnsafeSet(wi::Value::Make(fuel - first));
    int_->UnsafeSet(wi::Value::Make(uint32_t(0)));
    trap_->UnsafeSet(wi::Value::Make(uint32_t(0)));
    depth_->UnsafeSet(wi::Value::Make(uint32_t(0)));
    host_trapped_ = false;
    nested_trap_ = TrapKind::kNone;
    wi::Values params, results;
    for (const Value& v : args) params.push_back(to_interp(v));
    results.resize(result_types.size());  // an export that is an import runs HostFunc::Call, which does not size it
    std::unique_ptr<DeadlineToken> deadline;
    if (deadline_ms) {
      wi::Global* g = int_.get();
      deadline = std::make_unique<DeadlineToken>(deadline_ms, [g] { g->UnsafeSet(wi::Value::Make(uint32_t(1))); });
    }
    wi::Trap::Ptr trap;
    wabt::Result r = fn->Call(*thread_, params, results, &trap);
    deadline.reset();
    TrapKind kind = TrapKind::kNone;
    if (wabt::Failed(r)) {
      uint32_t reason = trap_->Get().Get<uint32_t>();
      kind = host_trapped_ ? TrapKind::kHost : classify_message(trap ? trap->message() : "", reason);
      out.trap.kind = kind;
      out.trap.message = message_for(kind, trap);
      if (nested_trap_ != TrapKind::kNone) {
        out.trap.kind = kind = nested_trap_;
        out.trap.message = nested_message_;
      }
      // The interpreter's Thread keeps the frames of a trapped call; start clean.
      thread_ = fresh_thread();
    } else {
      for (size_t i = 0; i < result_types.size(); ++i) out.results.push_back(from_interp(result_types[i], results[i]));
    }
    int64_t remaining = static_cast<int64_t>(fuel_->Get().Get<uint64_t>() + bank_->Get().Get<uint64_t>());
    out.fuel_used = fuel_used_after(fuel, remaining, kind);
  }

  std::shared_ptr<ModuleImpl> module_;
  std::vector<Linker::Entry> imports_;  // copies: the Linker need not outlive us
  void* user_data_;
  InstanceLimits limits_;
  std::unique_ptr<wi::Store> store_;
  wi::Module::Ptr module_ref_;
  wi::Instance::Ptr instance_;
  wi::Global::Ptr fuel_, bank_, int_, trap_, depth_;
  wi::Memory::Ptr mem_;
  wi::Func::Ptr start_;
  std::vector<wi::Func::Ptr> exports_;
  std::unique_ptr<wi::Thread> thread_;
  bool host_trapped_ = false;
  std::string host_message_;
  TrapKind nested_trap_ = TrapKind::kNone;  // the first trap inside a nested call of this call
  std::string nested_message_;
  size_t nesting_ = 0;                      // nested calls now running
  std::vector<std::unique_ptr<wi::Thread>> nested_threads_;  // one per nesting level, kept
};

TrapKind nested_call(InterpInstance* inst, uint32_t index, uint64_t* slots) { return inst->nested(index, slots); }

}  // namespace

Result<std::unique_ptr<Instance>> instantiate_interp(std::shared_ptr<ModuleImpl> module, const Linker& linker,
                                                     const InstanceLimits& limits) {
  auto imports = resolve_imports(*module->prep, linker);
  if (!imports) return imports.status();
  auto inst = std::make_unique<InterpInstance>(module, std::move(*imports), linker.user_data, limits);
  COVENANT_RETURN_IF_ERROR(inst->setup());
  return std::unique_ptr<Instance>(std::move(inst));
}

}  // namespace covenant::wasm
