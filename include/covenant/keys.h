// Executor signing keys (Ed25519, libsodium) and a KeyStore over a directory.
// Thread-safety: SigningKey is immutable after construction (share freely);
// KeyStore is not thread-safe (one owner; rotate() mutates it and the disk).
// Ownership: KeyStore::open returns a unique_ptr the caller owns.
//
// A key id (kid) is the first 8 bytes of SHA-256(public key): it is what the
// COSE protected header and receipts carry, and a KeyStore resolves it back to
// the public key, including keys retired by rotate().
//
// Directory layout (docs/receipts.md "Keys"):
//   <dir>/            mode 0700
//   <dir>/<kidhex>.key  hex Ed25519 seed (32 bytes), mode 0600
//   <dir>/<kidhex>.pub  hex public key (32 bytes), mode 0644
//   <dir>/active        kid hex of the signing key, replaced atomically (rename)
//
// Usage:
//   auto ks = KeyStore::open(default_keys_dir());   // generates a key on first use
//   const SigningKey& k = (*ks)->active();
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "covenant/status.h"

namespace covenant {

inline constexpr size_t kPublicKeyBytes = 32;
inline constexpr size_t kSignatureBytes = 64;
inline constexpr size_t kKeyIdBytes = 8;

using Hash32 = std::array<uint8_t, 32>;
using PublicKey = std::array<uint8_t, kPublicKeyBytes>;
using Signature = std::array<uint8_t, kSignatureBytes>;
using KeyId = std::array<uint8_t, kKeyIdBytes>;

// SHA-256 (libsodium); used across the evidence layer.
Hash32 sha256(std::span<const uint8_t> data);

// First 8 bytes of SHA-256(pub).
KeyId kid_for(const PublicKey& pub);

std::string to_hex(std::span<const uint8_t> bytes);
// Parses exactly `out.size()` bytes of hex (either case); false on anything else.
bool from_hex(std::string_view hex, std::span<uint8_t> out);
// Parses any even-length hex.
bool from_hex(std::string_view hex, std::vector<uint8_t>* out);

// An Ed25519 key pair. The secret never leaves this object except through
// KeyStore's key file.
class SigningKey {
 public:
  static SigningKey generate();
  static SigningKey from_seed(const std::array<uint8_t, 32>& seed);

  const PublicKey& public_key() const { return public_key_; }
  const KeyId& kid() const { return kid_; }
  const std::array<uint8_t, 32>& seed() const { return seed_; }
  // Pure Ed25519 (RFC 8032) over `message`.
  void sign(std::span<const uint8_t> message, uint8_t signature[kSignatureBytes]) const;

 private:
  SigningKey() = default;
  std::array<uint8_t, 32> seed_{};
  std::array<uint8_t, 64> secret_{};  // libsodium layout: seed || public
  PublicKey public_key_{};
  KeyId kid_{};
};

// Ok iff `signature` is a valid Ed25519 signature of `message` by `pub`.
bool ed25519_verify(const PublicKey& pub, std::span<const uint8_t> message,
                    std::span<const uint8_t> signature);

// Resolves a key id to a public key (a KeyStore, or a single pinned key).
class KeyResolver {
 public:
  virtual ~KeyResolver() = default;
  virtual Result<PublicKey> resolve(const KeyId& kid) const = 0;
  // When the key was revoked (Unix ms), if it was: receipts it signed at or
  // after that time are refused by verify_receipt; older ones still verify.
  virtual std::optional<uint64_t> revoked_at_ms(const KeyId& kid) const {
    (void)kid;
    return std::nullopt;
  }
};

// A resolver that knows exactly one key (`--key PUBHEX`).
class PinnedKey : public KeyResolver {
 public:
  explicit PinnedKey(const PublicKey& pub, std::optional<uint64_t> revoked_at_ms = std::nullopt)
      : pub_(pub), kid_(kid_for(pub)), revoked_at_ms_(revoked_at_ms) {}
  Result<PublicKey> resolve(const KeyId& kid) const override;
  std::optional<uint64_t> revoked_at_ms(const KeyId& kid) const override {
    return kid == kid_ ? revoked_at_ms_ : std::nullopt;
  }

 private:
  PublicKey pub_;
  KeyId kid_;
  std::optional<uint64_t> revoked_at_ms_;
};

class KeyStore : public KeyResolver {
 public:
  // Opens `dir`; when `create` and there is no active key, creates the
  // directory (0700) and generates one. Corrupt key files are kCorruption.
  static Result<std::unique_ptr<KeyStore>> open(const std::string& dir, bool create = true);

  KeyStore(const KeyStore&) = delete;
  KeyStore& operator=(const KeyStore&) = delete;

  const SigningKey& active() const { return *active_; }
  // Generates a new key and makes it active. The old key's public half stays
  // resolvable (old receipts keep verifying); its secret stays on disk, 0600,
  // so an operator can destroy it deliberately.
  Status rotate();
  // Revokes a retired key as of `at_ms` (Unix ms; may be in the past, when a
  // compromise is found late): <dir>/<kid>.revoked holds the time. Receipts
  // it signed at or after that time stop verifying; older ones keep
  // verifying. Revoking again keeps the earlier time. The active key cannot
  // be revoked (rotate first): kFailedPrecondition. Unknown kid: kNotFound.
  Status revoke(const KeyId& kid, uint64_t at_ms);
  std::optional<uint64_t> revoked_at_ms(const KeyId& kid) const override;
  // Every public key the store knows, the active one included.
  const std::vector<PublicKey>& public_keys() const { return public_keys_; }
  Result<PublicKey> resolve(const KeyId& kid) const override;
  const std::string& dir() const { return dir_; }

 private:
  explicit KeyStore(std::string dir) : dir_(std::move(dir)) {}
  Status load();
  Status write_new_key(const SigningKey& key);

  std::string dir_;
  std::unique_ptr<SigningKey> active_;
  std::vector<PublicKey> public_keys_;
  std::vector<std::pair<KeyId, uint64_t>> revoked_;
};

// $COVENANT_HOME/keys, else $HOME/.covenant/keys.
std::string default_keys_dir();

}  // namespace covenant
