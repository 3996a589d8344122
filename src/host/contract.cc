// Contract: deploy (load, deny-by-default imports, WIT world, core exports)
// and call (lower -> core export -> lift -> cabi_post_*, kv commit or discard).
#include "covenant/contract.h"

#include <sodium.h>

#include <chrono>
#include <cstring>
#include <mutex>

#include "covenant/component.h"
#include "covenant/wit_json.h"
#include "host/host_internal.h"

namespace covenant {

using abi::CoreValue;
using abi::WitValue;
using host::CallState;
using host::Slot;

namespace {

uint64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

FuncType core_functype(const abi::CoreSignature& sig) {
  FuncType t;
  for (abi::CoreType c : sig.params) t.params.push_back(static_cast<ValType>(c));
  for (abi::CoreType c : sig.results) t.results.push_back(static_cast<ValType>(c));
  return t;
}

// The guest memory of a pooled instance during an export call: cabi_realloc
// runs as a core call charged to the same fuel budget.
class InstanceMemory final : public abi::GuestMemory {
 public:
  InstanceMemory(Instance& inst, std::optional<uint32_t> realloc_index, uint64_t* fuel_left, uint64_t* fuel_used)
      : inst_(inst), realloc_(realloc_index), fuel_left_(fuel_left), fuel_used_(fuel_used) {}
  uint8_t* data() override { return inst_.memory().data(); }
  uint64_t size() override { return inst_.memory().size(); }
  Result<uint32_t> realloc(uint32_t old_ptr, uint32_t old_size, uint32_t align, uint32_t new_size) override {
    if (!realloc_) return Status::invalid("the module exports no cabi_realloc");
    uint64_t slots[4] = {old_ptr, old_size, align, new_size};
    uint64_t used = 0;
    TrapKind k = inst_.call_raw(*realloc_, slots, *fuel_left_, &used);
    *fuel_used_ += used;
    *fuel_left_ -= std::min(used, *fuel_left_);
    if (k != TrapKind::kNone) {
      trap = k;
      return Status::invalid(std::string("cabi_realloc trapped: ") + trap_kind_name(k));
    }
    return static_cast<uint32_t>(slots[0]);
  }
  TrapKind trap = TrapKind::kNone;  // an engine trap inside cabi_realloc

 private:
  Instance& inst_;
  std::optional<uint32_t> realloc_;
  uint64_t* fuel_left_;
  uint64_t* fuel_used_;
};

struct ExportFn {
  const wit::Function* fn = nullptr;
  std::string iface;      // WIT interface name ("policy"), empty for a world-level function
  std::string core_name;  // "agent:settlement/policy@0.1.0#approve"
  uint32_t core_index = 0;
  std::optional<uint32_t> post_index;
  abi::CoreSignature sig;
};

struct Pooled {
  std::unique_ptr<Slot> slot = std::make_unique<Slot>();
  Linker linker;  // the instance keeps pointers to its entries: must outlive it
  std::unique_ptr<Instance> inst;
  bool dirty = false;  // has run a call since instantiate/reset
  bool broken = false; // trapped: must be reset before reuse
};

bool is_valid_deployment(const std::string& d) {
  if (d.empty() || d.size() > 128) return false;
  for (unsigned char c : d)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

}  // namespace

struct Contract::Impl {
  Engine* engine = nullptr;
  std::shared_ptr<Module> module;
  wit::Package pkg;
  std::unique_ptr<abi::Abi> abi;
  const wit::World* world = nullptr;
  Grants grants;
  DeployOptions opts;
  std::vector<ExportFn> exports;
  std::optional<uint32_t> realloc_index;
  bool needs_realloc = false;
  bool uses_kv = false;
  bool uses_random = false;
  Linker linker;
  std::shared_ptr<host::KvStore> store;
  std::string kv_prefix;

  std::mutex pool_mu;
  std::vector<std::unique_ptr<Pooled>> pool;  // GUARDED_BY(pool_mu): idle instances
  std::mutex kv_mu;  // serializes calls of a kv-using contract (read-modify-write of budgets)

  Result<std::unique_ptr<Pooled>> acquire() {
    {
      std::lock_guard<std::mutex> lock(pool_mu);
      while (!pool.empty()) {
        auto p = std::move(pool.back());
        pool.pop_back();
        // kAuto: an instance made on baseline code stays on it (the optimized
        // code has another layout); once optimized is ready, start fresh ones.
        if (opts.tier == Tier::kAuto && p->inst->tier() != module->tier()) continue;
        return p;
      }
    }
    auto p = std::make_unique<Pooled>();
    p->linker = linker;
    p->linker.user_data = p->slot.get();
    auto inst = module->instantiate(p->linker, opts.limits);
    if (!inst) return inst.status();
    p->inst = std::move(*inst);
    return p;
  }
  void release(std::unique_ptr<Pooled> p) {
    p->slot->state = nullptr;
    std::lock_guard<std::mutex> lock(pool_mu);
    if (pool.size() < 64) pool.push_back(std::move(p));
  }

  const ExportFn* find(std::string_view name) const {
    for (const ExportFn& e : exports) {
      if (name == e.core_name || name == e.fn->name.written || name == e.fn->name.kebab) return &e;
      if (!e.iface.empty() && name.size() > e.iface.size() + 1 && name.substr(0, e.iface.size()) == e.iface &&
          name[e.iface.size()] == '.') {
        std::string_view f = name.substr(e.iface.size() + 1);
        if (f == e.fn->name.written || f == e.fn->name.kebab) return &e;
      }
    }
    return nullptr;
  }

  Result<CallResult> run(std::string_view export_name, std::span<const WitValue> args, const CallRecord* replay,
                         const CallOptions& copts, bool want_json);

  // A component's lifts and lowers must be what this Contract does with its
  // core module: the same core exports, options and host functions.
  Status check_component_wiring(const component::Component& c, const std::string& realloc_name,
                                abi::Mangling mangling) {
    const std::string& name = opts.name;
    const std::string memory_name = abi::memory_export_name(mangling);
    auto option = [&](const std::string& got, const std::string& want, const char* what,
                      const std::string& where) -> Status {
      if (got.empty() || got == want) return Status::ok();
      return Status::unsupported(name + ": " + where + " uses core export \"" + got + "\" as its " + what +
                                 "; Covenant uses \"" + want + "\"");
    };
    for (const component::LiftedExport& x : c.exports) {
      const std::string where = "the component's export " + (x.interface.empty() ? "" : x.interface + "#") + x.function;
      ExportFn* e = nullptr;
      for (ExportFn& f : exports) {
        const wit::Interface* wi = f.iface.empty() ? nullptr : pkg.find_interface(f.iface);
        const std::string q = wi ? pkg.qualified_interface(*wi) : (f.iface.empty() ? "" : f.iface);
        if (f.fn->name.kebab == x.function && q == x.interface) e = &f;
      }
      if (!e) return Status::invalid(name + ": " + where + " is missing from its own WIT world");
      if (e->core_name != x.core_export)
        return Status::unsupported(name + ": " + where + " lifts core export \"" + x.core_export +
                                   "\"; Covenant calls \"" + e->core_name + "\" (wit-bindgen's naming)");
      if (x.post_return.empty()) {
        e->post_index.reset();  // the component does not clean up; neither do we
      } else {
        auto p = module->export_index(x.post_return);
        if (!p || p != e->post_index)
          return Status::unsupported(name + ": " + where + " has post-return \"" + x.post_return +
                                     "\", which is not the cabi_post_ export Covenant calls");
      }
      COVENANT_RETURN_IF_ERROR(option(x.realloc, realloc_name, "realloc", where));
      COVENANT_RETURN_IF_ERROR(option(x.memory, memory_name, "memory", where));
    }
    for (const component::LoweredImport& l : c.lowered) {
      const std::string where = "the component's import " + (l.interface.empty() ? "" : l.interface + "#") + l.function;
      const std::string want_module = l.interface.empty() ? abi::kRootImportModule : l.interface;
      if (l.core_module != want_module || l.core_field != l.function)
        return Status::unsupported(name + ": " + where + " is wired to core import \"" + l.core_module + "\" \"" +
                                   l.core_field + "\"; Covenant links core imports by wit-bindgen's names");
      if (auto host = host::host_signature(l.interface, l.function); host && *host != l.signature)
        return Status::invalid(name + ": " + where + " has type " + l.signature + "; the host provides " + *host);
      COVENANT_RETURN_IF_ERROR(option(l.realloc, realloc_name, "realloc", where));
      COVENANT_RETURN_IF_ERROR(option(l.memory, memory_name, "memory", where));
    }
    return Status::ok();
  }
};

Contract::Contract(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Contract::~Contract() = default;

Result<std::unique_ptr<Contract>> Contract::deploy(Engine& engine, std::span<const uint8_t> wasm,
                                                   const DeployOptions& opts) {
  const std::string& name = opts.name;
  static const uint8_t kMagic[4] = {0, 'a', 's', 'm'};
  if (wasm.size() < 8 || std::memcmp(wasm.data(), kMagic, 4) != 0)
    return Status::invalid(name + ": not a WebAssembly binary (bad magic)");
  // A component: its one core module runs, with the world its types describe
  // (docs/components.md); the wiring is checked against what Covenant does below.
  std::optional<component::Component> comp;
  if (wasm.size() >= 8 && wasm[6] == 0x01 && wasm[7] == 0x00) {
    auto c = component::read_component(wasm, name);
    if (!c) return c.status();
    if (!opts.wit.empty())
      return Status::invalid(name + ": a component carries its own WIT; deploy it without one (print it with "
                                    "`covenant wit " + name + "`)");
    if (!opts.world.empty() && opts.world != c->world)
      return Status::invalid(name + ": a component has one world (\"" + c->world + "\"), not \"" + opts.world + "\"");
    comp = std::move(*c);
    wasm = comp->core_module;
  }
  if (!(wasm[4] == 1 && wasm[5] == 0 && wasm[6] == 0 && wasm[7] == 0))
    return Status::invalid(name + ": unknown WebAssembly binary version");
  if (!is_valid_deployment(opts.deployment))
    return Status::invalid(name + ": deployment name must be 1..128 characters without control characters");

  auto impl = std::make_unique<Impl>();
  impl->engine = &engine;
  impl->opts = opts;
  impl->grants = opts.grants;

  // WIT world.
  const std::string_view wit_text = comp ? std::string_view(comp->wit)
                                    : opts.wit.empty() ? wit::seed_policy_wit() : std::string_view(opts.wit);
  auto pkg = wit::parse_wit(wit_text, {.file_name = comp ? name + " (component WIT)"
                                                   : opts.wit.empty() ? "seed.wit" : "contract.wit",
                                       .strict = comp.has_value()});
  if (!pkg) return Status::invalid(pkg.status().message());
  impl->pkg = std::move(*pkg);
  impl->abi = std::make_unique<abi::Abi>(impl->pkg);
  if (comp) {
    impl->world = impl->pkg.find_world(comp->world);
  } else if (opts.world.empty()) {
    if (impl->pkg.worlds.size() != 1)
      return Status::invalid(name + ": the WIT package has " + std::to_string(impl->pkg.worlds.size()) +
                             " worlds; name one (--world)");
    impl->world = &impl->pkg.worlds[0];
  } else {
    impl->world = impl->pkg.find_world(opts.world);
    if (!impl->world) return Status::invalid(name + ": the WIT package has no world \"" + opts.world + "\"");
  }

  // Load (validate, meter, compile).
  LoadOptions lo;
  lo.tier = opts.tier;
  lo.name = name;
  auto module = engine.load(wasm, lo);
  if (!module) return module.status();
  impl->module = std::move(*module);
  Module& m = *impl->module;

  // Imports: deny by default.
  std::string refused;
  for (const ImportDesc& imp : m.imports()) {
    auto e = host::resolve_import(imp, impl->grants);
    if (!e) {
      refused += (refused.empty() ? "" : "; ") + e.status().message();
      continue;
    }
    if (!impl->linker.find(e->module, e->field)) impl->linker.define(e->module, e->field, e->type, e->fn);
    impl->needs_realloc |= host::import_needs_realloc(imp);
    impl->uses_kv |= host::import_capability(imp) == "kv";
    impl->uses_random |= host::import_capability(imp) == "random";
  }
  if (!refused.empty()) return Status::invalid(name + ": " + refused);

  // Exports: each function of the world's exports must exist with the canonical ABI's core type.
  // Core names: wit-bindgen's legacy scheme, or standard32 ("cm32p2|...") if
  // the module uses it (docs/abi.md: pick by the allocator's name).
  abi::Mangling mangling = abi::Mangling::kLegacy;
  if (m.export_index(abi::realloc_export_name(abi::Mangling::kStandard32))) mangling = abi::Mangling::kStandard32;
  for (const ExportDesc& x : m.exports())
    if (x.name.rfind("cm32p2|", 0) == 0) mangling = abi::Mangling::kStandard32;
  const std::string realloc_name = abi::realloc_export_name(mangling);
  auto realloc = m.export_index(realloc_name);
  if (realloc) {
    FuncType want{{ValType::kI32, ValType::kI32, ValType::kI32, ValType::kI32}, {ValType::kI32}};
    if (m.exports()[*realloc].type != want)
      return Status::invalid(name + ": " + realloc_name + " has type " + m.exports()[*realloc].type.to_string() +
                             ", not " + want.to_string());
    impl->realloc_index = realloc;
  }
  if (impl->needs_realloc && !realloc)
    return Status::invalid(name + ": the module imports host functions that return strings or lists but exports no "
                                  "cabi_realloc (or cm32p2_realloc)");
  auto add_export = [&](const wit::Function& fn, const std::string& iface, const std::string& core_iface) -> Status {
    ExportFn e;
    e.fn = &fn;
    e.iface = iface;
    e.core_name = abi::export_name(core_iface, fn, mangling);
    e.sig = impl->abi->core_signature(fn, abi::Direction::kExport);
    FuncType want = core_functype(e.sig);
    std::string what = (iface.empty() ? "" : iface + ".") + fn.name.written;
    auto idx = m.export_index(e.core_name);
    if (!idx) {
      std::string lifted;
      if (comp)
        for (const component::LiftedExport& x : comp->exports)
          if (x.function == fn.name.kebab && x.core_export != e.core_name)
            lifted = "; the component lifts core export \"" + x.core_export +
                     "\" (Covenant calls core exports by wit-bindgen's names)";
      return Status::invalid(name + ": the module does not export \"" + e.core_name + "\" " + want.to_string() +
                             " for WIT function " + what + lifted);
    }
    if (m.exports()[*idx].type != want)
      return Status::invalid(name + ": export \"" + e.core_name + "\" has type " + m.exports()[*idx].type.to_string() +
                             "; the canonical ABI gives " + want.to_string() + " for " + what);
    e.core_index = *idx;
    std::string post = abi::post_return_name(core_iface, fn, mangling);
    if (auto p = m.export_index(post)) {
      FuncType pw{want.results, {}};
      if (m.exports()[*p].type != pw)
        return Status::invalid(name + ": export \"" + post + "\" has type " + m.exports()[*p].type.to_string() +
                               ", not " + pw.to_string());
      e.post_index = p;
    }
    impl->exports.push_back(std::move(e));
    return Status::ok();
  };
  for (const wit::WorldItem& item : impl->world->exports) {
    if (item.kind == wit::WorldItem::Kind::kFunction) {
      COVENANT_RETURN_IF_ERROR(add_export(item.function, "", ""));
      continue;
    }
    if (item.interface_index < 0)
      return Status::invalid(name + ": world exports foreign interface \"" + item.name + "\", which the host cannot see");
    const wit::Interface& iface = impl->pkg.interfaces[item.interface_index];
    std::string core_iface = abi::interface_core_name(impl->pkg, item, mangling);
    for (const wit::Function& fn : iface.functions) COVENANT_RETURN_IF_ERROR(add_export(fn, iface.name.written, core_iface));
  }
  if (impl->exports.empty()) return Status::invalid(name + ": the world exports no functions");
  if (comp) COVENANT_RETURN_IF_ERROR(impl->check_component_wiring(*comp, realloc_name, mangling));

  // kv store.
  if (impl->grants.kv) {
    impl->kv_prefix = opts.deployment + std::string(1, '\0') + impl->grants.kv->ns + std::string(1, '\0');
    if (opts.kv_store) {
      impl->store = opts.kv_store;
    } else if (opts.kv_path.empty()) {
      impl->store = host::make_memory_kv_store();
    } else {
      auto s = host::open_sqlite_kv_store(opts.kv_path);
      if (!s) return s.status();
      impl->store = std::move(*s);
    }
  }

  // One instance now: instantiation errors surface at deploy.
  auto first = impl->acquire();
  if (!first) return first.status();
  impl->release(std::move(*first));
  return std::unique_ptr<Contract>(new Contract(std::move(impl)));
}

Result<Contract::CallResult> Contract::Impl::run(std::string_view export_name, std::span<const WitValue> args,
                                                 const CallRecord* replay, const CallOptions& copts, bool want_json) {
  const uint64_t t0 = now_ns();
  const ExportFn* e = find(export_name);
  if (!e) {
    std::string known;
    for (const ExportFn& x : exports) known += (known.empty() ? "" : ", ") + (x.iface.empty() ? "" : x.iface + ".") + x.fn->name.written;
    return Status::not_found("no exported function \"" + std::string(export_name) + "\" (exports: " + known + ")");
  }
  const wit::Function& fn = *e->fn;

  auto acquired = acquire();
  if (!acquired) return acquired.status();
  std::unique_ptr<Pooled> p = std::move(*acquired);
  struct Release {
    Impl* impl;
    std::unique_ptr<Pooled>* p;
    ~Release() {
      if (*p) impl->release(std::move(*p));
    }
  } release_guard{this, &p};
  if (p->broken || (opts.reset_every_call && p->dirty)) {
    COVENANT_RETURN_IF_ERROR(p->inst->reset());
    p->broken = false;
  }
  p->dirty = true;

  std::unique_lock<std::mutex> kv_lock(kv_mu, std::defer_lock);
  if (uses_kv) kv_lock.lock();

  CallResult out;
  out.tier = p->inst->tier();
  CallRecord& rec = out.record;
  rec.export_name = e->core_name;
  if (replay) {
    rec.wall_ms = replay->wall_ms;
    rec.monotonic_ns = replay->monotonic_ns;
    rec.random_seed = replay->random_seed;
  } else {
    rec.wall_ms = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
    rec.monotonic_ns = t0;
    // A seed only matters if the guest can draw from it (getrandom costs a syscall).
    if (uses_random) randombytes_buf(rec.random_seed.data(), rec.random_seed.size());
  }
  CallState st;
  st.grants = &grants;
  st.store = store.get();
  st.kv_prefix = kv_prefix;
  st.replay = replay;
  st.record = &rec;
  p->slot->state = &st;

  uint64_t fuel_left = copts.fuel;
  uint64_t fuel_used = 0;
  InstanceMemory mem(*p->inst, realloc_index, &fuel_left, &fuel_used);
  auto finish_trap = [&](TrapKind kind, std::string message) -> Result<CallResult> {
    p->broken = true;
    out.trap = {kind, std::move(message)};
    out.fuel_used = fuel_used;
    rec.fuel_used = fuel_used;
    rec.trap = out.trap;
    rec.kv_writes.clear();
    out.timings.total_ns = now_ns() - t0;
    return std::move(out);
  };
  auto engine_trap_message = [&](TrapKind k) -> std::string {
    if (k == TrapKind::kHost && !st.trap_message.empty()) return st.trap_message;
    if (k == TrapKind::kOutOfFuel) return "out of fuel (budget " + std::to_string(copts.fuel) + ")";
    return trap_kind_name(k);
  };

  st.realloc_index = realloc_index;  // host functions place string/list results with it

  // Lower.
  const uint64_t t_lower = now_ns();
  abi::CallContext cx(*abi, mem);
  std::vector<CoreValue> flat;
  if (Status s = cx.lower_params(fn, args, &flat); !s) {
    if (mem.trap != TrapKind::kNone) return finish_trap(mem.trap, "in cabi_realloc: " + engine_trap_message(mem.trap));
    if (cx.trap() != abi::Trap::kNone) return finish_trap(TrapKind::kHost, "canonical ABI: " + s.message());
    return s;
  }
  const uint64_t t_exec = now_ns();
  out.timings.lower_ns = t_exec - t_lower;

  // Execute.
  uint64_t slots_small[32];
  std::vector<uint64_t> slots_big;
  size_t nslots = std::max<size_t>({flat.size(), e->sig.results.size(), 1});
  uint64_t* slots = slots_small;
  if (nslots > 32) {
    slots_big.resize(nslots);
    slots = slots_big.data();
  }
  for (size_t i = 0; i < flat.size(); ++i) slots[i] = flat[i].bits;
  uint64_t used = 0;
  TrapKind k;
  if (copts.deadline_ms == 0) {
    k = p->inst->call_raw(e->core_index, slots, fuel_left, &used);
  } else {
    // call_raw has no deadline; the allocating call does.
    std::vector<Value> vals;
    for (const CoreValue& v : flat) vals.push_back({static_cast<ValType>(v.type), v.bits});
    auto o = p->inst->call(e->core_index, vals, CallOptions{fuel_left, copts.deadline_ms});
    if (!o) {
      p->broken = true;
      return o.status();
    }
    k = o->trap.kind;
    used = o->fuel_used;
    for (size_t i = 0; i < o->results.size(); ++i) slots[i] = o->results[i].bits;
    if (k == TrapKind::kHost && st.trap_message.empty()) st.trap_message = o->trap.message;
  }
  fuel_used += used;
  fuel_left -= std::min(used, fuel_left);
  const uint64_t t_lift = now_ns();
  out.timings.execute_ns = t_lift - t_exec;
  if (!st.host_error.is_ok()) {
    p->broken = true;
    return st.host_error;
  }
  if (k != TrapKind::kNone) return finish_trap(k, engine_trap_message(k));

  // Lift.
  std::vector<CoreValue> results;
  for (size_t i = 0; i < e->sig.results.size(); ++i) {
    uint64_t b = slots[i];
    if (e->sig.results[i] == abi::CoreType::kI32 || e->sig.results[i] == abi::CoreType::kF32) b &= 0xffffffffu;
    results.push_back({e->sig.results[i], b});
  }
  auto lifted = cx.lift_results(fn, results);
  if (!lifted) {
    if (cx.trap() != abi::Trap::kNone) return finish_trap(TrapKind::kHost, "canonical ABI: " + lifted.status().message());
    return lifted.status();
  }
  if (e->post_index) {
    for (size_t i = 0; i < results.size(); ++i) slots[i] = results[i].bits;
    k = p->inst->call_raw(*e->post_index, slots, fuel_left, &used);
    fuel_used += used;
    fuel_left -= std::min(used, fuel_left);
    if (k != TrapKind::kNone) return finish_trap(k, "in cabi_post: " + engine_trap_message(k));
  }
  if (want_json) {
    auto j = abi::results_to_json(pkg, fn, *lifted);
    if (!j) return j.status();
    out.result = std::move(*j);
  }
  out.values = std::move(*lifted);
  out.timings.lift_ns = now_ns() - t_lift;

  // Commit.
  if (uses_kv) {
    Status s = host::kv_commit(st);
    if (!s) {
      p->broken = true;
      return s;
    }
  }
  out.fuel_used = fuel_used;
  rec.fuel_used = fuel_used;
  out.timings.total_ns = now_ns() - t0;
  return out;
}

Result<Contract::CallResult> Contract::call_json(std::string_view export_name, const nlohmann::json& args,
                                                 const CallOptions& opts) {
  const wit::Function* fn = find_export(export_name);
  if (!fn) return impl_->run(export_name, {}, nullptr, opts, true);  // reports the unknown export
  auto values = abi::args_from_json(impl_->pkg, *fn, args);
  if (!values) return values.status();
  return impl_->run(export_name, *values, nullptr, opts, true);
}

Result<Contract::CallResult> Contract::call(std::string_view export_name, std::span<const WitValue> args,
                                            const CallOptions& opts) {
  return impl_->run(export_name, args, nullptr, opts, false);
}

Result<Contract::CallResult> Contract::replay_json(std::string_view export_name, const nlohmann::json& args,
                                                   const CallRecord& record, const CallOptions& opts) {
  const wit::Function* fn = find_export(export_name);
  if (!fn) return impl_->run(export_name, {}, &record, opts, true);
  auto values = abi::args_from_json(impl_->pkg, *fn, args);
  if (!values) return values.status();
  return impl_->run(export_name, *values, &record, opts, true);
}

const wit::Package& Contract::package() const { return impl_->pkg; }
const std::string& Contract::kv_prefix() const { return impl_->kv_prefix; }
size_t Contract::pooled_instances() const {
  std::lock_guard<std::mutex> lock(impl_->pool_mu);
  return impl_->pool.size();
}
const wit::World& Contract::world() const { return *impl_->world; }
Module& Contract::module() { return *impl_->module; }

const wit::Function* Contract::find_export(std::string_view export_name) const {
  const ExportFn* e = impl_->find(export_name);
  return e ? e->fn : nullptr;
}

Result<std::map<std::string, std::string>> Contract::kv_dump() {
  std::map<std::string, std::string> out;
  if (!impl_->store) return out;
  auto keys = impl_->store->list(impl_->kv_prefix, kKvKeysMax);
  if (!keys) return keys.status();
  for (const std::string& k : *keys) {
    auto v = impl_->store->get(k);
    if (!v) return v.status();
    if (*v) out[k.substr(impl_->kv_prefix.size())] = **v;
  }
  return out;
}

}  // namespace covenant
