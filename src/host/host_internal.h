// Internal to src/host: the per-call state host functions work on, and the
// deny-by-default import resolver. Not API.
// Thread-safety: a CallState belongs to one call on one thread.
#pragma once

#include <array>
#include <map>
#include <optional>
#include <string>

#include "covenant/abi.h"
#include "covenant/contract.h"
#include "covenant/engine.h"
#include "host/kv_store.h"

namespace covenant::host {

// Everything a call's host functions read and write. Created by Contract for
// each call; reached from a HostCall through the instance's Slot.
struct CallState {
  const Grants* grants = nullptr;
  KvStore* store = nullptr;          // null without a kv grant
  std::string kv_prefix;             // deployment \0 namespace \0
  const CallRecord* replay = nullptr;  // replay: inputs come from here
  CallRecord* record = nullptr;      // inputs and outputs of this call

  // kv: the call's journal (user key -> value, absent = deleted) and what it read.
  std::map<std::string, std::optional<std::string>> journal;
  std::map<std::string, std::optional<std::string>> reads;  // first store read of each key
  std::optional<KvUsage> usage;     // current namespace usage, journal applied
  // random: bytes of the ChaCha20 stream handed out so far.
  uint64_t random_offset = 0;
  // log: what this call has kept so far.
  uint32_t log_lines = 0;
  uint64_t log_bytes = 0;
  // The guest's cabi_realloc export, for results host functions return.
  std::optional<uint32_t> realloc_index;

  std::string trap_message;  // set when a host function trapped
  Status host_error;         // an operating error inside a host function (I/O, replay divergence)
};

// Linker::user_data of each pooled instance points at its Slot.
struct Slot {
  CallState* state = nullptr;
};

// Resolves one module import under the grants: a Linker entry, or an error
// naming the import and the grant it lacks (deny by default).
Result<Linker::Entry> resolve_import(const ImportDesc& import, const Grants& grants);
// True if the import's results are strings or lists (placed with the guest's cabi_realloc).
bool import_needs_realloc(const ImportDesc& import);
// The structural signature (component::signature_of) of a covenant:host
// function named by its core import names ("covenant:host/kv@0.1.0", "get"),
// or nullopt if the host has no such function.
std::optional<std::string> host_signature(std::string_view interface_core_name, std::string_view function);
// The covenant:host interface an import belongs to ("kv", ...), or empty.
std::string import_capability(const ImportDesc& import);

// Validated kv key (see host.wit): empty string if ok, else why not.
std::string kv_key_error(std::string_view key, bool is_prefix);

// Commits the call's journal (not on replay) and records the writes.
Status kv_commit(CallState& st);

}  // namespace covenant::host
