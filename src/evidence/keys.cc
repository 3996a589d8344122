#include "covenant/keys.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace covenant {
namespace {

void ensure_sodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) std::abort();  // no usable randomness: a host problem, not an input error
}

std::string errno_text() { return std::strerror(errno); }

Result<std::string> read_small_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::io("cannot read " + path + ": " + errno_text());
  std::ostringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// Writes `content` to `path` with exactly `mode` (umask does not widen or
// narrow it), failing if the file exists.
Status write_new_file(const std::string& path, const std::string& content, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return Status::io("cannot create " + path + ": " + errno_text());
  Status st;
  if (::fchmod(fd, mode) != 0 || ::write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size()) ||
      ::fsync(fd) != 0) {
    st = Status::io("cannot write " + path + ": " + errno_text());
  }
  ::close(fd);
  return st;
}

Status replace_file(const std::string& path, const std::string& content) {
  // A name of this process's own: two processes replacing the file at once never
  // share (or unlink) each other's temporary.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  ::unlink(tmp.c_str());
  COVENANT_RETURN_IF_ERROR(write_new_file(tmp, content, 0644));
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Status::io("cannot rename " + tmp + ": " + errno_text());
  return Status::ok();
}

}  // namespace

Hash32 sha256(std::span<const uint8_t> data) {
  Hash32 h;
  crypto_hash_sha256(h.data(), data.data(), data.size());
  return h;
}

KeyId kid_for(const PublicKey& pub) {
  const Hash32 h = sha256(pub);
  KeyId kid;
  std::memcpy(kid.data(), h.data(), kid.size());
  return kid;
}

std::string to_hex(std::span<const uint8_t> bytes) {
  static const char* kHex = "0123456789abcdef";
  std::string s(bytes.size() * 2, '0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    s[2 * i] = kHex[bytes[i] >> 4];
    s[2 * i + 1] = kHex[bytes[i] & 15];
  }
  return s;
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool from_hex(std::string_view hex, std::span<uint8_t> out) {
  if (hex.size() != out.size() * 2) return false;
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

bool from_hex(std::string_view hex, std::vector<uint8_t>* out) {
  if (hex.size() % 2) return false;
  out->resize(hex.size() / 2);
  return from_hex(hex, std::span<uint8_t>(*out));
}

SigningKey SigningKey::generate() {
  ensure_sodium();
  std::array<uint8_t, 32> seed;
  randombytes_buf(seed.data(), seed.size());
  SigningKey k = from_seed(seed);
  sodium_memzero(seed.data(), seed.size());
  return k;
}

SigningKey SigningKey::from_seed(const std::array<uint8_t, 32>& seed) {
  ensure_sodium();
  SigningKey k;
  k.seed_ = seed;
  crypto_sign_ed25519_seed_keypair(k.public_key_.data(), k.secret_.data(), seed.data());
  k.kid_ = kid_for(k.public_key_);
  return k;
}

void SigningKey::sign(std::span<const uint8_t> message, uint8_t signature[kSignatureBytes]) const {
  crypto_sign_ed25519_detached(signature, nullptr, message.data(), message.size(), secret_.data());
}

bool ed25519_verify(const PublicKey& pub, std::span<const uint8_t> message, std::span<const uint8_t> signature) {
  ensure_sodium();
  if (signature.size() != kSignatureBytes) return false;
  return crypto_sign_ed25519_verify_detached(signature.data(), message.data(), message.size(), pub.data()) == 0;
}

Result<PublicKey> PinnedKey::resolve(const KeyId& kid) const {
  if (kid != kid_) {
    return Status::not_found("receipt kid " + to_hex(kid) + " does not match the given key (kid " + to_hex(kid_) + ")");
  }
  return pub_;
}

Result<std::unique_ptr<KeyStore>> KeyStore::open(const std::string& dir, bool create) {
  std::unique_ptr<KeyStore> ks(new KeyStore(dir));
  std::error_code ec;
  const bool exists = std::filesystem::exists(dir + "/active", ec);
  if (!exists) {
    if (!create) return Status::not_found("no executor key in " + dir + " (run `covenant key show` to create one)");
    std::filesystem::create_directories(dir, ec);
    if (ec) return Status::io("cannot create " + dir + ": " + ec.message());
    ::chmod(dir.c_str(), 0700);
    // Several processes may start on one fresh directory at once: an exclusive lock on
    // <dir>/.lock makes exactly one of them create the key; the others find it after.
    const std::string lock_path = dir + "/.lock";
    const int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd < 0) return Status::io("cannot open " + lock_path + ": " + errno_text());
    if (::flock(lock_fd, LOCK_EX) != 0) {
      Status st = Status::io("cannot lock " + lock_path + ": " + errno_text());
      ::close(lock_fd);
      return st;
    }
    Status st;
    if (!std::filesystem::exists(dir + "/active", ec)) st = ks->write_new_key(SigningKey::generate());
    ::flock(lock_fd, LOCK_UN);
    ::close(lock_fd);
    COVENANT_RETURN_IF_ERROR(st);
  }
  COVENANT_RETURN_IF_ERROR(ks->load());
  return ks;
}

Status KeyStore::write_new_key(const SigningKey& key) {
  const std::string kid = to_hex(key.kid());
  COVENANT_RETURN_IF_ERROR(write_new_file(dir_ + "/" + kid + ".key", to_hex(key.seed()) + "\n", 0600));
  COVENANT_RETURN_IF_ERROR(write_new_file(dir_ + "/" + kid + ".pub", to_hex(key.public_key()) + "\n", 0644));
  return replace_file(dir_ + "/active", kid + "\n");
}

Status KeyStore::load() {
  auto active = read_small_file(dir_ + "/active");
  if (!active) return active.status();
  KeyId active_kid;
  if (!from_hex(*active, active_kid)) return Status::corruption(dir_ + "/active: not a 16-hex-digit key id");
  const std::string key_path = dir_ + "/" + *active + ".key";
  struct stat sb;
  if (::stat(key_path.c_str(), &sb) != 0) return Status::io("cannot stat " + key_path + ": " + errno_text());
  if ((sb.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(sb.st_mode & 0777));
    return Status::precondition(key_path + " is accessible by group or others (mode " + mode + "); chmod 600 it");
  }
  auto seed_hex = read_small_file(key_path);
  if (!seed_hex) return seed_hex.status();
  std::array<uint8_t, 32> seed;
  if (!from_hex(*seed_hex, seed)) return Status::corruption(key_path + ": not a 64-hex-digit Ed25519 seed");
  active_ = std::make_unique<SigningKey>(SigningKey::from_seed(seed));
  sodium_memzero(seed.data(), seed.size());
  if (active_->kid() != active_kid) {
    return Status::corruption(key_path + ": key does not match its kid (derived " + to_hex(active_->kid()) + ")");
  }
  public_keys_.clear();
  revoked_.clear();
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
    if (e.path().extension() == ".revoked") {
      KeyId kid;
      auto text = read_small_file(e.path().string());
      if (!text) return text.status();
      char* end = nullptr;
      errno = 0;
      const unsigned long long at = std::strtoull(text->c_str(), &end, 10);
      if (!from_hex(e.path().stem().string(), kid) || text->empty() || *end != '\0' || errno != 0) {
        return Status::corruption(e.path().string() + ": expected the revocation time in Unix milliseconds");
      }
      revoked_.emplace_back(kid, static_cast<uint64_t>(at));
      continue;
    }
    if (e.path().extension() != ".pub") continue;
    auto pub_hex = read_small_file(e.path().string());
    if (!pub_hex) return pub_hex.status();
    PublicKey pub;
    if (!from_hex(*pub_hex, pub)) return Status::corruption(e.path().string() + ": not a 64-hex-digit public key");
    if (to_hex(kid_for(pub)) != e.path().stem().string()) {
      return Status::corruption(e.path().string() + ": public key does not match the kid in its file name");
    }
    public_keys_.push_back(pub);
  }
  if (ec) return Status::io("cannot list " + dir_ + ": " + ec.message());
  // The active key always resolves, even if its .pub file was removed.
  if (std::find(public_keys_.begin(), public_keys_.end(), active_->public_key()) == public_keys_.end()) {
    public_keys_.push_back(active_->public_key());
  }
  return Status::ok();
}

Status KeyStore::rotate() {
  COVENANT_RETURN_IF_ERROR(write_new_key(SigningKey::generate()));
  return load();
}

Status KeyStore::revoke(const KeyId& kid, uint64_t at_ms) {
  if (kid == active_->kid()) {
    return Status::precondition("key " + to_hex(kid) + " is the active signing key; rotate first, then revoke it");
  }
  if (!resolve(kid)) return Status::not_found("key id " + to_hex(kid) + " is not in " + dir_);
  if (auto earlier = revoked_at_ms(kid); earlier && *earlier <= at_ms) return Status::ok();
  COVENANT_RETURN_IF_ERROR(replace_file(dir_ + "/" + to_hex(kid) + ".revoked", std::to_string(at_ms) + "\n"));
  return load();
}

std::optional<uint64_t> KeyStore::revoked_at_ms(const KeyId& kid) const {
  for (const auto& [k, at] : revoked_) {
    if (k == kid) return at;
  }
  return std::nullopt;
}

Result<PublicKey> KeyStore::resolve(const KeyId& kid) const {
  for (const PublicKey& p : public_keys_) {
    if (kid_for(p) == kid) return p;
  }
  return Status::not_found("key id " + to_hex(kid) + " is not in " + dir_);
}

std::string default_keys_dir() {
  if (const char* home = std::getenv("COVENANT_HOME"); home && *home) return std::string(home) + "/keys";
  if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.covenant/keys";
  return ".covenant/keys";
}

}  // namespace covenant
