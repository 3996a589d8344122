#include "covenant/merkle.h"

#include <sodium.h>

#include <bit>
#include <cassert>
#include <cstring>

namespace covenant {
namespace {

// Largest power of two strictly less than n. REQUIRES: n >= 2.
uint64_t split_point(uint64_t n) {
  assert(n >= 2);
  return std::bit_floor(n - 1);
}

Status fail(std::string m) { return Status::corruption(std::move(m)); }

}  // namespace

Hash32 merkle_leaf_hash(std::span<const uint8_t> entry) {
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  const uint8_t prefix = 0x00;
  crypto_hash_sha256_update(&st, &prefix, 1);
  crypto_hash_sha256_update(&st, entry.data(), entry.size());
  Hash32 h;
  crypto_hash_sha256_final(&st, h.data());
  return h;
}

Hash32 merkle_node_hash(const Hash32& left, const Hash32& right) {
  uint8_t buf[65];
  buf[0] = 0x01;
  std::memcpy(buf + 1, left.data(), 32);
  std::memcpy(buf + 33, right.data(), 32);
  Hash32 h;
  crypto_hash_sha256(h.data(), buf, sizeof buf);
  return h;
}

Hash32 merkle_empty_root() { return sha256({}); }

void MerkleTree::reserve(uint64_t leaves) {
  uint64_t n = leaves;
  for (size_t h = 0; n > 0; ++h, n >>= 1) {
    if (levels_.size() <= h) levels_.emplace_back();
    levels_[h].reserve(n);
  }
}

void MerkleTree::append_leaf_hash(const Hash32& leaf_hash) {
  levels_[0].push_back(leaf_hash);
  // Each time a level gains an even count, a complete subtree one level up is done.
  for (size_t h = 0; levels_[h].size() % 2 == 0; ++h) {
    if (levels_.size() <= h + 1) levels_.emplace_back();
    const auto& lv = levels_[h];
    Hash32 node = merkle_node_hash(lv[lv.size() - 2], lv[lv.size() - 1]);
    levels_[h + 1].push_back(node);
  }
}

Status MerkleTree::rebuild(LeafHashSource& source) {
  levels_.assign(1, {});
  Hash32 h;
  for (;;) {
    auto more = source.next(&h);
    if (!more) return more.status();
    if (!*more) return Status::ok();
    append_leaf_hash(h);
  }
}

Hash32 MerkleTree::range_hash(uint64_t lo, uint64_t hi) const {
  assert(lo < hi && hi <= size());
  const uint64_t n = hi - lo;
  if (std::has_single_bit(n) && lo % n == 0) {
    const int h = std::countr_zero(n);
    assert(static_cast<size_t>(h) < levels_.size() && lo / n < levels_[h].size());
    return levels_[h][lo / n];
  }
  const uint64_t k = split_point(n);
  return merkle_node_hash(range_hash(lo, lo + k), range_hash(lo + k, hi));
}

Result<Hash32> MerkleTree::root_at(uint64_t tree_size) const {
  if (tree_size > size()) {
    return Status::invalid("tree size " + std::to_string(tree_size) + " is beyond the log's " + std::to_string(size()) + " entries");
  }
  if (tree_size == 0) return merkle_empty_root();
  return range_hash(0, tree_size);
}

void MerkleTree::path(uint64_t m, uint64_t lo, uint64_t hi, std::vector<Hash32>* out) const {
  const uint64_t n = hi - lo;
  if (n == 1) return;
  const uint64_t k = split_point(n);
  if (m < k) {
    path(m, lo, lo + k, out);
    out->push_back(range_hash(lo + k, hi));
  } else {
    path(m - k, lo + k, hi, out);
    out->push_back(range_hash(lo, lo + k));
  }
}

Result<std::vector<Hash32>> MerkleTree::inclusion_proof(uint64_t index, uint64_t tree_size) const {
  if (tree_size > size()) {
    return Status::invalid("tree size " + std::to_string(tree_size) + " is beyond the log's " + std::to_string(size()) + " entries");
  }
  if (index >= tree_size) {
    return Status::invalid("leaf index " + std::to_string(index) + " is not below tree size " + std::to_string(tree_size));
  }
  std::vector<Hash32> out;
  out.reserve(64 - std::countl_zero(tree_size));
  path(index, 0, tree_size, &out);
  return out;
}

void MerkleTree::subproof(uint64_t m, uint64_t lo, uint64_t hi, bool b, std::vector<Hash32>* out) const {
  const uint64_t n = hi - lo;
  if (m == n) {
    if (!b) out->push_back(range_hash(lo, hi));
    return;
  }
  const uint64_t k = split_point(n);
  if (m <= k) {
    subproof(m, lo, lo + k, b, out);
    out->push_back(range_hash(lo + k, hi));
  } else {
    subproof(m - k, lo + k, hi, false, out);
    out->push_back(range_hash(lo, lo + k));
  }
}

Result<std::vector<Hash32>> MerkleTree::consistency_proof(uint64_t old_size, uint64_t new_size) const {
  if (new_size > size()) {
    return Status::invalid("tree size " + std::to_string(new_size) + " is beyond the log's " + std::to_string(size()) + " entries");
  }
  if (old_size > new_size) {
    return Status::invalid("old size " + std::to_string(old_size) + " is larger than new size " + std::to_string(new_size));
  }
  std::vector<Hash32> out;
  if (old_size == 0 || old_size == new_size) return out;
  out.reserve(2 * (64 - std::countl_zero(new_size)));
  subproof(old_size, 0, new_size, true, &out);
  return out;
}

Status verify_inclusion(const Hash32& leaf_hash, uint64_t index, uint64_t tree_size, std::span<const Hash32> proof,
                        const Hash32& root) {
  if (index >= tree_size) return fail("inclusion proof: leaf index is not below the tree size");
  if (proof.size() > kMerkleProofHashesMax) return fail("inclusion proof: more than 64 hashes");
  uint64_t fn = index, sn = tree_size - 1;
  Hash32 r = leaf_hash;
  for (const Hash32& p : proof) {
    if (sn == 0) return fail("inclusion proof: longer than the tree is deep");
    if ((fn & 1) || fn == sn) {
      r = merkle_node_hash(p, r);
      while (!(fn & 1) && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      r = merkle_node_hash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return fail("inclusion proof: shorter than the tree is deep");
  if (r != root) return fail("inclusion proof: computed root " + to_hex(r) + " does not match " + to_hex(root));
  return Status::ok();
}

Status verify_consistency(uint64_t old_size, uint64_t new_size, const Hash32& old_root, const Hash32& new_root,
                          std::span<const Hash32> proof) {
  if (old_size > new_size) return fail("consistency proof: old size is larger than new size");
  if (proof.size() > kMerkleProofHashesMax) return fail("consistency proof: more than 64 hashes");
  if (old_size == new_size) {
    if (!proof.empty()) return fail("consistency proof: must be empty for equal sizes");
    if (old_root != new_root) return fail("consistency proof: equal sizes but different roots");
    return Status::ok();
  }
  if (old_size == 0) {
    if (!proof.empty()) return fail("consistency proof: must be empty from the empty tree");
    return Status::ok();
  }
  if (proof.empty()) return fail("consistency proof: empty");
  // Step 2: if old_size is a power of two, the old root is the first node.
  size_t i = 0;
  Hash32 fr, sr;
  if (std::has_single_bit(old_size)) {
    fr = sr = old_root;
  } else {
    fr = sr = proof[0];
    i = 1;
  }
  uint64_t fn = old_size - 1, sn = new_size - 1;
  while (fn & 1) {
    fn >>= 1;
    sn >>= 1;
  }
  for (; i < proof.size(); ++i) {
    const Hash32& c = proof[i];
    if (sn == 0) return fail("consistency proof: longer than the tree is deep");
    if ((fn & 1) || fn == sn) {
      fr = merkle_node_hash(c, fr);
      sr = merkle_node_hash(c, sr);
      while (!(fn & 1) && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      sr = merkle_node_hash(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return fail("consistency proof: shorter than the tree is deep");
  if (fr != old_root) return fail("consistency proof: does not reproduce the old root");
  if (sr != new_root) return fail("consistency proof: does not reproduce the new root");
  return Status::ok();
}

// ---- compact ranges ----

Result<CompactRange> CompactRange::from_hashes(uint64_t size, std::vector<Hash32> hashes) {
  if (hashes.size() != static_cast<size_t>(std::popcount(size))) {
    return Status::invalid("compact range: size " + std::to_string(size) + " needs " +
                           std::to_string(std::popcount(size)) + " subtree hashes, got " + std::to_string(hashes.size()));
  }
  CompactRange r;
  r.size_ = size;
  r.hashes_ = std::move(hashes);
  return r;
}

void CompactRange::append(const Hash32& leaf_hash) {
  assert(size_ < UINT64_MAX);
  hashes_.push_back(leaf_hash);
  // Every trailing 1 bit of the old size is a perfect subtree of the same
  // height as the one just completed to its right: merge them, lowest first.
  for (uint64_t s = size_; s & 1; s >>= 1) {
    const Hash32 right = hashes_.back();
    hashes_.pop_back();
    hashes_.back() = merkle_node_hash(hashes_.back(), right);
  }
  ++size_;
}

Hash32 CompactRange::root() const {
  if (hashes_.empty()) return merkle_empty_root();
  // MTH(D[n]) = node(MTH(D[0:k]), MTH(D[k:n])) with k the largest power of two
  // < n: the leftmost subtree is exactly D[0:k] and the rest recurses, so the
  // root is the fold from the right.
  Hash32 r = hashes_.back();
  for (size_t i = hashes_.size() - 1; i-- > 0;) r = merkle_node_hash(hashes_[i], r);
  return r;
}

size_t CompactRange::serialized_size(uint64_t size) {
  return kHeaderBytes + 32 * static_cast<size_t>(std::popcount(size)) + kChecksumBytes;
}

std::vector<uint8_t> CompactRange::serialize() const {
  std::vector<uint8_t> out;
  out.reserve(serialized_size(size_));
  out.insert(out.end(), kMagic.begin(), kMagic.end());
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(size_ >> (8 * i)));
  out.push_back(static_cast<uint8_t>(hashes_.size()));
  for (const Hash32& h : hashes_) out.insert(out.end(), h.begin(), h.end());
  const Hash32 sum = sha256(out);
  out.insert(out.end(), sum.begin(), sum.end());
  return out;
}

Result<CompactRange> CompactRange::parse(std::span<const uint8_t> bytes) {
  const size_t min = kHeaderBytes + kChecksumBytes;
  if (bytes.size() < kMagic.size() || std::memcmp(bytes.data(), kMagic.data(), kMagic.size()) != 0) {
    return Status::invalid("compact range: does not start with \"" + std::string(kMagic) + "\" (not a compact range)");
  }
  if (bytes.size() < min) {
    return Status::invalid("compact range: " + std::to_string(bytes.size()) + " bytes, shorter than the " +
                           std::to_string(min) + "-byte minimum (truncated)");
  }
  uint64_t size = 0;
  for (int i = 0; i < 8; ++i) size |= static_cast<uint64_t>(bytes[8 + i]) << (8 * i);
  const size_t count = bytes[16];
  if (count > 64) return Status::invalid("compact range: " + std::to_string(count) + " hashes (at most 64)");
  const size_t want = kHeaderBytes + 32 * count + kChecksumBytes;
  if (bytes.size() != want) {
    return Status::invalid("compact range: " + std::to_string(bytes.size()) + " bytes where " + std::to_string(count) +
                           " hashes take " + std::to_string(want) + (bytes.size() < want ? " (truncated)" : " (trailing bytes)"));
  }
  const Hash32 sum = sha256(bytes.first(want - kChecksumBytes));
  if (std::memcmp(sum.data(), bytes.data() + want - kChecksumBytes, kChecksumBytes) != 0) {
    return Status::corruption("compact range: checksum mismatch (the bytes were altered)");
  }
  if (count != static_cast<size_t>(std::popcount(size))) {
    return Status::corruption("compact range: size " + std::to_string(size) + " needs " +
                              std::to_string(std::popcount(size)) + " hashes, the data has " + std::to_string(count));
  }
  std::vector<Hash32> hashes(count);
  for (size_t i = 0; i < count; ++i) std::memcpy(hashes[i].data(), bytes.data() + kHeaderBytes + 32 * i, 32);
  return from_hashes(size, std::move(hashes));
}

// ---- checkpoints (C2SP signed note) ----

std::string base64_encode(std::span<const uint8_t> bytes) {
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), bytes.data(), bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::strlen(out.c_str()));
  return out;
}

bool base64_decode(std::string_view text, std::vector<uint8_t>* out) {
  out->resize(text.size() * 3 / 4 + 3);
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(out->data(), out->size(), text.data(), text.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != text.data() + text.size()) {
    return false;
  }
  out->resize(len);
  return true;
}

namespace {

constexpr std::string_view kEmDash = "\xe2\x80\x94";

std::array<uint8_t, 4> note_key_hash(std::string_view name, const PublicKey& pub) {
  std::vector<uint8_t> buf(name.begin(), name.end());
  buf.push_back('\n');
  buf.push_back(0x01);  // signature type: Ed25519
  buf.insert(buf.end(), pub.begin(), pub.end());
  const Hash32 h = sha256(buf);
  return {h[0], h[1], h[2], h[3]};
}

bool valid_origin(std::string_view o) {
  if (o.empty()) return false;
  for (char c : o) {
    if (c <= ' ' || c >= 0x7f || c == '+') return false;
  }
  return true;
}

struct ParsedNote {
  Checkpoint cp;
  std::string_view body;
  std::vector<std::pair<std::string_view, std::vector<uint8_t>>> sigs;  // name, keyhash||sig
};

Status parse_note(std::string_view note, ParsedNote* out) {
  const size_t blank = note.find("\n\n");
  if (blank == std::string_view::npos) return Status::invalid("checkpoint: no blank line between body and signatures");
  out->body = note.substr(0, blank + 1);
  std::string_view rest = out->body;
  auto next_line = [&rest](std::string_view* line) {
    const size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) return false;
    *line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    return true;
  };
  std::string_view origin, size_line, root_line;
  if (!next_line(&origin) || !next_line(&size_line) || !next_line(&root_line)) {
    return Status::invalid("checkpoint: body needs origin, tree size and root hash lines");
  }
  if (!valid_origin(origin)) return Status::invalid("checkpoint line 1: origin must be printable ASCII without spaces");
  out->cp.origin.assign(origin);
  if (size_line.empty() || size_line.size() > 20 || (size_line.size() > 1 && size_line[0] == '0')) {
    return Status::invalid("checkpoint line 2: tree size must be a decimal without leading zeros");
  }
  uint64_t n = 0;
  for (char c : size_line) {
    if (c < '0' || c > '9') return Status::invalid("checkpoint line 2: tree size must be decimal");
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (n > (UINT64_MAX - d) / 10) return Status::invalid("checkpoint line 2: tree size overflows 64 bits");
    n = n * 10 + d;
  }
  out->cp.tree_size = n;
  std::vector<uint8_t> root;
  if (!base64_decode(root_line, &root) || root.size() != 32) {
    return Status::invalid("checkpoint line 3: root hash must be base64 of 32 bytes");
  }
  std::memcpy(out->cp.root.data(), root.data(), 32);
  // Remaining body lines are extensions: signed, not interpreted.
  std::string_view sigs = note.substr(blank + 2);
  if (sigs.empty()) return Status::invalid("checkpoint: no signature lines");
  while (!sigs.empty()) {
    const size_t nl = sigs.find('\n');
    if (nl == std::string_view::npos) return Status::invalid("checkpoint: signature line without final newline");
    std::string_view line = sigs.substr(0, nl);
    sigs.remove_prefix(nl + 1);
    if (line.substr(0, kEmDash.size() + 1) != std::string(kEmDash) + " ") {
      return Status::invalid("checkpoint: signature line must start with an em dash and a space");
    }
    line.remove_prefix(kEmDash.size() + 1);
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return Status::invalid("checkpoint: signature line needs a key name and a signature");
    std::vector<uint8_t> blob;
    if (!base64_decode(line.substr(sp + 1), &blob) || blob.size() < 5) {
      return Status::invalid("checkpoint: signature is not base64 of key hash and signature");
    }
    out->sigs.emplace_back(line.substr(0, sp), std::move(blob));
  }
  return Status::ok();
}

}  // namespace

std::string checkpoint_body(const Checkpoint& cp) {
  return cp.origin + "\n" + std::to_string(cp.tree_size) + "\n" + base64_encode(cp.root) + "\n";
}

Result<std::string> sign_checkpoint(const Checkpoint& cp, const SigningKey& key) {
  if (!valid_origin(cp.origin)) return Status::invalid("checkpoint origin must be printable ASCII without spaces or '+'");
  const std::string body = checkpoint_body(cp);
  std::vector<uint8_t> blob(4 + kSignatureBytes);
  const auto kh = note_key_hash(cp.origin, key.public_key());
  std::memcpy(blob.data(), kh.data(), 4);
  key.sign(std::span(reinterpret_cast<const uint8_t*>(body.data()), body.size()), blob.data() + 4);
  return body + "\n" + std::string(kEmDash) + " " + cp.origin + " " + base64_encode(blob) + "\n";
}

Result<Checkpoint> parse_checkpoint(std::string_view note) {
  ParsedNote p;
  COVENANT_RETURN_IF_ERROR(parse_note(note, &p));
  return p.cp;
}

Result<Checkpoint> verify_checkpoint(std::string_view note, std::span<const PublicKey> keys) {
  ParsedNote p;
  COVENANT_RETURN_IF_ERROR(parse_note(note, &p));
  const auto body = std::span(reinterpret_cast<const uint8_t*>(p.body.data()), p.body.size());
  for (const auto& [name, blob] : p.sigs) {
    if (blob.size() != 4 + kSignatureBytes) continue;
    for (const PublicKey& pub : keys) {
      const auto kh = note_key_hash(name, pub);
      if (std::memcmp(kh.data(), blob.data(), 4) != 0) continue;
      if (!ed25519_verify(pub, body, std::span(blob).subspan(4))) {
        return Status::corruption("checkpoint: signature by " + std::string(name) + " (kid " + to_hex(kid_for(pub)) +
                                  ") does not verify: the note was altered");
      }
      return p.cp;
    }
  }
  return Status::not_found("checkpoint: no signature line by a known key");
}

}  // namespace covenant
