// The covenant:host capabilities (src/host/wit/host.wit) and the
// deny-by-default resolution of a module's imports against the grants.
//
// Each host function is an engine Linker entry whose core type is the
// canonical ABI's import signature; its arguments are lifted from guest
// memory, the capability runs on WIT values, and its results are lowered
// back (strings and lists into memory from the guest's own cabi_realloc).
#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "covenant/component.h"
#include "host/host_internal.h"

namespace covenant::host {
namespace {

using abi::CoreValue;
using abi::WitValue;

constexpr std::string_view kHostModulePrefix = "covenant:host/";

const wit::Package& host_package() {
  static const wit::Package* pkg = [] {
    auto p = wit::parse_wit(host_wit(), {.file_name = "host.wit", .strict = true});
    if (!p) {
      std::fprintf(stderr, "covenant: built-in host.wit does not parse: %s\n", p.status().message().c_str());
      std::abort();
    }
    return new wit::Package(std::move(*p));
  }();
  return *pkg;
}

const abi::Abi& host_abi() {
  static const abi::Abi* a = new abi::Abi(host_package());
  return *a;
}

// The guest memory a host function sees: the caller's memory, and its
// cabi_realloc called back from inside the host function (HostCall::call_export),
// as the canonical ABI lowers results: a string or list the host returns is
// the guest's own allocation, which it owns and frees (docs/host.md).
class CallerMemory final : public abi::GuestMemory {
 public:
  CallerMemory(HostCall& hc, const CallState& st) : hc_(hc), st_(st) {}
  uint8_t* data() override { return hc_.memory().data(); }
  uint64_t size() override { return hc_.memory().size(); }
  Result<uint32_t> realloc(uint32_t old_ptr, uint32_t old_size, uint32_t align, uint32_t new_size) override {
    if (!st_.realloc_index) return Status::invalid("the module exports no cabi_realloc");
    uint64_t slots[4] = {old_ptr, old_size, align, new_size};
    const TrapKind k = hc_.call_export(*st_.realloc_index, slots);
    if (k != TrapKind::kNone) return Status::invalid(std::string("cabi_realloc trapped: ") + trap_kind_name(k));
    return static_cast<uint32_t>(slots[0]);
  }

 private:
  HostCall& hc_;
  const CallState& st_;
};

// What a capability returns: results, or a trap message (the guest asked for
// something it may not have), or a host error (st.host_error set).
struct Outcome {
  std::vector<WitValue> results;
  std::string trap;
};

using Capability = Outcome (*)(CallState& st, std::vector<WitValue>& args);

WitValue bytes_value(std::string_view b) {
  std::vector<WitValue> items;
  items.reserve(b.size());
  for (unsigned char c : b) items.push_back(WitValue::u8(c));
  return WitValue::list(std::move(items));
}

std::string bytes_of(const WitValue& list) {
  std::string s;
  s.reserve(list.items().size());
  for (const WitValue& v : list.items()) s.push_back(static_cast<char>(v.as_unsigned()));
  return s;
}

Outcome trap(std::string m) { return {{}, std::move(m)}; }
Outcome host_error(CallState& st, Status s) {
  st.host_error = std::move(s);
  return trap("host error: " + st.host_error.message());
}

// --- clock ---------------------------------------------------------------

Outcome clock_now_ms(CallState& st, std::vector<WitValue>&) { return {{WitValue::u64(st.record->wall_ms)}, {}}; }
Outcome clock_monotonic_ns(CallState& st, std::vector<WitValue>&) {
  return {{WitValue::u64(st.record->monotonic_ns)}, {}};
}

// --- crypto --------------------------------------------------------------

Outcome crypto_ed25519_verify(CallState&, std::vector<WitValue>& a) {
  std::string pk = bytes_of(a[0]), msg = bytes_of(a[1]), sig = bytes_of(a[2]);
  bool ok = pk.size() == crypto_sign_PUBLICKEYBYTES && sig.size() == crypto_sign_BYTES &&
            crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(sig.data()),
                                        reinterpret_cast<const unsigned char*>(msg.data()), msg.size(),
                                        reinterpret_cast<const unsigned char*>(pk.data())) == 0;
  return {{WitValue::boolean(ok)}, {}};
}

Outcome crypto_sha256(CallState&, std::vector<WitValue>& a) {
  std::string data = bytes_of(a[0]);
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  return {{bytes_value(std::string_view(reinterpret_cast<const char*>(h), sizeof h))}, {}};
}

// --- kv --------------------------------------------------------------------

// The value of key as this call sees it: its own writes first, then the store
// (recorded), or the record on a replay.
Result<std::optional<std::string>> kv_read(CallState& st, const std::string& key) {
  if (auto it = st.journal.find(key); it != st.journal.end()) return it->second;
  if (auto it = st.reads.find(key); it != st.reads.end()) return it->second;
  std::optional<std::string> v;
  if (st.replay) {
    auto it = std::find_if(st.replay->kv_reads.begin(), st.replay->kv_reads.end(),
                           [&](const KvRead& r) { return r.key == key; });
    if (it == st.replay->kv_reads.end())
      return Status::precondition("replay diverged: kv read of \"" + key + "\" is not in the record");
    v = it->value;
  } else {
    auto r = st.store->get(st.kv_prefix + key);
    if (!r) return r.status();
    v = std::move(*r);
  }
  st.reads.emplace(key, v);
  st.record->kv_reads.push_back({key, v});
  return v;
}

Status kv_ensure_usage(CallState& st) {
  if (st.usage) return Status::ok();
  KvUsage u;
  if (st.replay) {
    if (!st.replay->kv_usage) return Status::precondition("replay diverged: the record holds no kv usage");
    u = *st.replay->kv_usage;
  } else {
    auto r = st.store->usage(st.kv_prefix);
    if (!r) return r.status();
    u = *r;
  }
  st.record->kv_usage = u;
  // Writes already journaled are applied by the callers, which keep usage current.
  st.usage = u;
  return Status::ok();
}

Outcome kv_get(CallState& st, std::vector<WitValue>& a) {
  const std::string& key = a[0].as_string();
  if (std::string e = kv_key_error(key, false); !e.empty()) return trap(e);
  auto v = kv_read(st, key);
  if (!v) return host_error(st, v.status());
  return {{*v ? WitValue::some(bytes_value(**v)) : WitValue::none()}, {}};
}

// Applies a write to the journal, keeping usage current and within the grant.
Outcome kv_write(CallState& st, const std::string& key, std::optional<std::string> value, bool* existed) {
  if (std::string e = kv_key_error(key, false); !e.empty()) return trap(e);
  if (Status s = kv_ensure_usage(st); !s) return host_error(st, s);
  auto old = kv_read(st, key);
  if (!old) return host_error(st, old.status());
  *existed = old->has_value();
  KvUsage u = *st.usage;
  if (*old) {
    u.keys -= 1;
    u.bytes -= key.size() + (*old)->size();
  }
  if (value) {
    u.keys += 1;
    u.bytes += key.size() + value->size();
    const KvGrant& g = *st.grants->kv;
    if (u.keys > g.max_keys)
      return trap("kv quota exceeded: " + std::to_string(u.keys) + " keys > max_keys " + std::to_string(g.max_keys) +
                  " in namespace \"" + g.ns + "\"");
    if (u.bytes > g.max_bytes)
      return trap("kv quota exceeded: " + std::to_string(u.bytes) + " bytes > max_bytes " + std::to_string(g.max_bytes) +
                  " in namespace \"" + g.ns + "\"");
  }
  st.usage = u;
  st.journal[key] = std::move(value);
  return {};
}

Outcome kv_set(CallState& st, std::vector<WitValue>& a) {
  if (a[1].items().size() > kKvValueSizeBytesMax)
    return trap("kv value of " + std::to_string(a[1].items().size()) + " bytes is larger than " +
                std::to_string(kKvValueSizeBytesMax));
  bool existed = false;
  return kv_write(st, a[0].as_string(), bytes_of(a[1]), &existed);
}

Outcome kv_delete(CallState& st, std::vector<WitValue>& a) {
  bool existed = false;
  Outcome o = kv_write(st, a[0].as_string(), std::nullopt, &existed);
  if (!o.trap.empty()) return o;
  return {{WitValue::boolean(existed)}, {}};
}

Outcome kv_list_keys(CallState& st, std::vector<WitValue>& a) {
  const std::string& prefix = a[0].as_string();
  if (std::string e = kv_key_error(prefix, true); !e.empty()) return trap(e);
  std::vector<std::string> keys;
  if (st.replay) {
    auto it = std::find_if(st.replay->kv_lists.begin(), st.replay->kv_lists.end(),
                           [&](const KvList& l) { return l.prefix == prefix; });
    if (it == st.replay->kv_lists.end())
      return host_error(st, Status::precondition("replay diverged: kv list of \"" + prefix + "\" is not in the record"));
    keys = it->keys;
  } else {
    auto r = st.store->list(st.kv_prefix + prefix, kKvListKeysMax + st.journal.size());
    if (!r) return host_error(st, r.status());
    for (std::string& k : *r) keys.push_back(k.substr(st.kv_prefix.size()));
  }
  st.record->kv_lists.push_back({prefix, keys});
  std::vector<std::string> merged;
  for (const std::string& k : keys) {
    auto j = st.journal.find(k);
    if (j == st.journal.end() || j->second) merged.push_back(k);
  }
  for (const auto& [k, v] : st.journal)
    if (v && k.compare(0, prefix.size(), prefix) == 0 && !std::binary_search(keys.begin(), keys.end(), k))
      merged.push_back(k);
  std::sort(merged.begin(), merged.end());
  if (merged.size() > kKvListKeysMax) merged.resize(kKvListKeysMax);
  uint64_t bytes = 0;
  for (size_t i = 0; i < merged.size(); ++i) {
    bytes += merged[i].size() + 8;
    if (bytes > kKvListBytesMax) {
      merged.resize(i);
      break;
    }
  }
  std::vector<WitValue> out;
  for (std::string& k : merged) out.push_back(WitValue::string(std::move(k)));
  return {{WitValue::list(std::move(out))}, {}};
}

// --- log -------------------------------------------------------------------

Outcome log_write(CallState& st, std::vector<WitValue>& a) {
  const LogGrant& g = *st.grants->log;
  auto level = static_cast<LogLevel>(a[0].case_index());
  if (level < g.level) return {};
  const std::string& msg = a[1].as_string();
  if (st.log_lines >= g.max_lines || st.log_bytes + msg.size() > g.max_bytes) {
    st.record->logs_dropped++;
    return {};
  }
  st.log_lines++;
  st.log_bytes += msg.size();
  st.record->logs.push_back({level, msg});
  return {};
}

// --- random ----------------------------------------------------------------

// Bytes [offset, offset + n) of the ChaCha20-IETF stream keyed by the seed with
// libsodium's randombytes_buf_deterministic nonce: the stream is exactly
// randombytes_buf_deterministic(seed).
std::string random_draw(CallState& st, uint32_t n) {
  static const unsigned char kNonce[crypto_stream_chacha20_ietf_NONCEBYTES] = {'L', 'i', 'b', 's', 'o', 'd',
                                                                               'i', 'u', 'm', 'D', 'R', 'G'};
  uint64_t skip = st.random_offset % 64;
  uint32_t block = static_cast<uint32_t>(st.random_offset / 64);
  std::vector<unsigned char> buf(skip + n, 0);
  crypto_stream_chacha20_ietf_xor_ic(buf.data(), buf.data(), buf.size(), kNonce, block, st.record->random_seed.data());
  st.random_offset += n;
  return std::string(reinterpret_cast<const char*>(buf.data() + skip), n);
}

Outcome random_next_u64(CallState& st, std::vector<WitValue>&) {
  std::string b = random_draw(st, 8);
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[i]);
  return {{WitValue::u64(v)}, {}};
}

Outcome random_bytes(CallState& st, std::vector<WitValue>& a) {
  uint64_t n = a[0].as_unsigned();
  if (n > kRandomBytesPerRequestMax)
    return trap("random.bytes(" + std::to_string(n) + "): at most " + std::to_string(kRandomBytesPerRequestMax) +
                " bytes per request");
  return {{bytes_value(random_draw(st, static_cast<uint32_t>(n)))}, {}};
}

// --- the table ---------------------------------------------------------------

struct Entry {
  const char* iface;
  const char* fn;
  Capability impl;
  bool needs_realloc;
};
const Entry kCapabilities[] = {
    {"clock", "now-ms", clock_now_ms, false},
    {"clock", "monotonic-ns", clock_monotonic_ns, false},
    {"crypto", "ed25519-verify", crypto_ed25519_verify, false},
    {"crypto", "sha256", crypto_sha256, true},
    {"kv", "get", kv_get, true},
    {"kv", "set", kv_set, false},
    {"kv", "delete", kv_delete, false},
    {"kv", "list-keys", kv_list_keys, true},
    {"log", "write", log_write, false},
    {"random", "next-u64", random_next_u64, false},
    {"random", "bytes", random_bytes, true},
};

// The standard32 scheme (docs/abi.md) prefixes import modules with "cm32p2|".
constexpr std::string_view kStandard32Prefix = "cm32p2|";
std::string_view strip_standard32(std::string_view module) {
  return module.substr(0, kStandard32Prefix.size()) == kStandard32Prefix ? module.substr(kStandard32Prefix.size())
                                                                          : module;
}

const Entry* find_entry(std::string_view module, std::string_view field) {
  module = strip_standard32(module);
  if (module.substr(0, kHostModulePrefix.size()) != kHostModulePrefix) return nullptr;
  std::string_view rest = module.substr(kHostModulePrefix.size());
  size_t at = rest.find('@');
  std::string_view iface = rest.substr(0, at);
  for (const Entry& e : kCapabilities)
    if (iface == e.iface && field == e.fn) return &e;
  return nullptr;
}

FuncType core_functype(const abi::CoreSignature& sig) {
  FuncType t;
  for (abi::CoreType c : sig.params) t.params.push_back(static_cast<ValType>(c));
  for (abi::CoreType c : sig.results) t.results.push_back(static_cast<ValType>(c));
  return t;
}


}  // namespace

std::string kv_key_error(std::string_view key, bool is_prefix) {
  std::string shown = std::string(key.substr(0, 64)) + (key.size() > 64 ? "..." : "");
  if (!is_prefix && key.empty()) return "kv key is empty";
  if (key.size() > kKvKeySizeBytesMax)
    return "kv key of " + std::to_string(key.size()) + " bytes is longer than " + std::to_string(kKvKeySizeBytesMax);
  for (unsigned char c : key)
    if (c < 0x20 || c == 0x7f) return "kv key \"" + shown + "\" contains a control character";
  if (!key.empty() && key[0] == '/') return "kv key \"" + shown + "\" starts with '/' (keys are relative to the namespace)";
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    std::string_view seg = key.substr(start, end - start);
    // A prefix may end inside a segment ("a/." is the start of "a/.b"); a key may not hold . or .. segments.
    bool last = end == key.size();
    if ((seg == "." || seg == "..") && !(is_prefix && last && seg == "."))
      return "kv key \"" + shown + "\" has a '" + std::string(seg) + "' segment (no path escapes: keys are names, not paths)";
    start = end + 1;
  }
  return "";
}

Status kv_commit(CallState& st) {
  if (st.journal.empty()) return Status::ok();
  KvBatch batch;
  for (const auto& [k, v] : st.journal) {
    batch.emplace_back(st.kv_prefix + k, v);
    st.record->kv_writes.push_back({k, v});
  }
  if (st.replay) return Status::ok();
  return st.store->commit(st.kv_prefix, batch);
}

bool import_needs_realloc(const ImportDesc& import) {
  const Entry* e = find_entry(import.module, import.field);
  return e && e->needs_realloc;
}

std::optional<std::string> host_signature(std::string_view interface_core_name, std::string_view function) {
  if (interface_core_name.rfind(kHostModulePrefix, 0) != 0) return std::nullopt;
  std::string_view rest = interface_core_name.substr(kHostModulePrefix.size());
  const size_t at = rest.find('@');
  const wit::Package& pkg = host_package();
  if (at == std::string_view::npos || rest.substr(at + 1) != pkg.version) return std::nullopt;
  const wit::Interface* wi = pkg.find_interface(rest.substr(0, at));
  const wit::Function* fn = wi ? wi->find_function(function) : nullptr;
  if (!fn) return std::nullopt;
  return component::signature_of(pkg, *fn);
}

std::string import_capability(const ImportDesc& import) {
  const Entry* e = find_entry(import.module, import.field);
  return e ? e->iface : "";
}

Result<Linker::Entry> resolve_import(const ImportDesc& import, const Grants& grants) {
  const std::string name = "import \"" + import.module + "\" \"" + import.field + "\"";
  const bool standard32 = strip_standard32(import.module).size() != import.module.size();
  const std::string m(strip_standard32(import.module));
  if (m == "wasi_snapshot_preview1" || m == "wasi_unstable" || m.rfind("wasi:", 0) == 0)
    return Status::invalid(name +
                           " is refused: WASI is not available to contracts and no grant allows it (files, network, "
                           "environment, clocks and randomness are reached only through granted covenant:host "
                           "capabilities)");
  if (m.rfind(std::string(kHostModulePrefix), 0) != 0)
    return Status::invalid(name + " is refused: it is not a covenant:host capability and no grant allows anything "
                                  "else (deny by default; capabilities: clock, crypto, kv, log, random)");
  std::string_view rest = std::string_view(m).substr(kHostModulePrefix.size());
  size_t at = rest.find('@');
  std::string iface(rest.substr(0, at));
  std::string version = at == std::string_view::npos ? "" : std::string(rest.substr(at + 1));
  const wit::Package& pkg = host_package();
  const wit::Interface* wi = pkg.find_interface(iface);
  if (!wi) return Status::invalid(name + " is refused: covenant:host has no interface \"" + iface + "\"");
  const std::string want_version = standard32 ? abi::version_compat_track(pkg.version) : pkg.version;
  if (version != want_version)
    return Status::invalid(name + " is refused: this host provides covenant:host/" + iface + "@" + want_version +
                           ", not version \"" + version + "\"");
  const wit::Function* fn = wi->find_function(import.field);
  const Entry* e = find_entry(m, import.field);
  if (!fn || !e) return Status::invalid(name + " is refused: covenant:host/" + iface + " has no function \"" + import.field + "\"");
  if (!grants.allows(iface))
    return Status::invalid(name + " is refused: it needs the grant \"" + iface +
                           "\", which the grants manifest does not give (add \"capabilities\": {\"" + iface +
                           "\": {...}})");
  const abi::CoreSignature sig = host_abi().core_signature(*fn, abi::Direction::kImport);
  FuncType want = core_functype(sig);
  if (import.type != want)
    return Status::invalid(name + " has core type " + import.type.to_string() + "; the canonical ABI gives " +
                           want.to_string() + " for " + iface + "." + import.field);
  Capability impl = e->impl;
  Linker::Entry entry;
  entry.module = import.module;
  entry.field = import.field;
  entry.type = want;
  std::string where = entry.module + "." + entry.field;
  entry.fn = [fn, impl, where](HostCall& hc, std::span<const Value> args, std::span<Value> results) -> HostResult {
    auto* slot = static_cast<Slot*>(hc.user_data);
    if (!slot || !slot->state) return HostResult::trap("host function called outside a contract call");
    CallState& st = *slot->state;
    CallerMemory mem(hc, st);
    abi::CallContext cx(host_abi(), mem);
    CoreValue core[32];
    std::vector<CoreValue> big;
    CoreValue* cv = core;
    if (args.size() > 32) {
      big.resize(args.size());
      cv = big.data();
    }
    for (size_t i = 0; i < args.size(); ++i) cv[i] = {static_cast<abi::CoreType>(args[i].type), args[i].bits};
    std::span<const CoreValue> flat(cv, args.size());
    auto lifted = cx.lift_params(*fn, flat);
    auto fail = [&](std::string m) {
      st.trap_message = where + ": " + m;
      return HostResult::trap(std::move(m));
    };
    if (!lifted) return fail("canonical ABI: " + lifted.status().message());
    Outcome o = impl(st, *lifted);
    if (!o.trap.empty()) return fail(o.trap);
    std::vector<CoreValue> out;
    Status s = cx.lower_results(*fn, o.results, flat, &out);
    if (!s) return fail("canonical ABI: " + s.message());
    if (out.size() != results.size()) return fail("canonical ABI: result count mismatch");
    for (size_t i = 0; i < out.size(); ++i) results[i] = {static_cast<ValType>(out[i].type), out[i].bits};
    return HostResult::ok();
  };
  return entry;
}

}  // namespace covenant::host
