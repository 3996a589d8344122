// The artifact cache: compiled optimized-tier shared objects, content-addressed.
//
// Key: BLAKE2b-256 over the metered module bytes (which fix the original module
// and the metering configuration), the tier, the engine version, the compiler's
// identity (`cc --version`) and its flags.
// File: <dir>/<key[0:2]>/<key>.so = ELF bytes ‖ BLAKE2b-256(ELF) ‖ "CVNTART1".
// The dynamic loader ignores the trailer; Covenant checks it before dlopen and
// dlopens the verified descriptor, so a truncated or tampered artifact is
// reported, removed and rebuilt, never loaded.
// Publication is atomic (write to a unique temp file, fsync, rename), so any
// number of processes may share one directory. Size is bounded: past
// cache_size_bytes_max the least recently used artifacts are removed.
//
// Thread-safety: an ArtifactCache is a cheap value; all state is on disk.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "covenant/engine.h"

namespace covenant::wasm {

inline constexpr char kArtifactMagic[8] = {'C', 'V', 'N', 'T', 'A', 'R', 'T', '1'};
inline constexpr size_t kArtifactTrailerBytes = 32 + 8;

class ArtifactCache {
 public:
  using Progress = std::function<void(std::string_view)>;
  explicit ArtifactCache(const EngineConfig& config);

  const std::string& dir() const { return dir_; }
  std::string key(std::span<const uint8_t> metered, std::string_view tier) const;
  std::string path_for(const std::string& key) const;

  // Reads and verifies an artifact. NotFound if absent; Corruption (after
  // removing the file) if its trailer or hash is wrong. Returns the ELF bytes.
  Result<std::vector<uint8_t>> read_verified(const std::string& path) const;

  // Writes verified ELF bytes to a private, uniquely named file and dlopens it
  // (glibc dedups dlopen by path name, so the name must be new each time; the
  // private copy also means later writes to the cache cannot reach loaded code).
  Result<void*> load(const std::vector<uint8_t>& elf) const;

  // Compiles C source with the configured compiler and publishes the artifact.
  Result<std::string> build(const std::string& key, const std::string& c_source, const Progress& progress) const;

  // Removes least recently used artifacts until the total is under the bound,
  // never the one at `keep` (the artifact just published).
  void evict(const std::string& keep) const;

 private:
  std::string dir_;
  const EngineConfig& config_;
};

// The compiler's identity string (first line of `cc --version`), cached.
std::string compiler_identity(const std::string& cc);

}  // namespace covenant::wasm
