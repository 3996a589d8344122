// RFC 9162 Merkle tree math: leaf/node hashing, tree heads, inclusion and
// consistency proofs (generation and verification), compact ranges (the
// O(log n) frontier that extends a tree head without its leaves), and signed
// checkpoints.
// Storage-agnostic: MerkleTree holds leaf hashes in memory and is fed by
// append() or rebuilt from any LeafHashSource (a log file, SQLite, ...).
// Thread-safety: MerkleTree is not thread-safe for writers; const methods may
// run concurrently with each other. Free functions are pure.
// Ownership: MerkleTree owns its hashes; proofs are returned by value.
//
// Usage:
//   MerkleTree t;
//   t.append_entry(bytes);                       // leaf = SHA-256(0x00 || bytes)
//   auto proof = t.inclusion_proof(index, t.size());
//   Status ok = verify_inclusion(t.leaf_hash(index), index, t.size(), *proof, t.root());
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "covenant/keys.h"
#include "covenant/status.h"

namespace covenant {

// A proof is at most 64 hashes (one per level of a 2^64 tree).
inline constexpr size_t kMerkleProofHashesMax = 64;

Hash32 merkle_leaf_hash(std::span<const uint8_t> entry);               // SHA-256(0x00 || entry)
Hash32 merkle_node_hash(const Hash32& left, const Hash32& right);     // SHA-256(0x01 || l || r)
Hash32 merkle_empty_root();                                            // SHA-256("")

// Where stored leaf hashes come from when rebuilding a tree.
class LeafHashSource {
 public:
  virtual ~LeafHashSource() = default;
  // Writes the next leaf hash and returns true, or returns false at the end.
  virtual Result<bool> next(Hash32* leaf_hash) = 0;
};

// In-memory tree over leaf hashes. Level 0 holds the leaf hashes; level h
// holds the hash of every complete, aligned subtree of 2^h leaves, filled in
// as appends complete it. Memory: about 2 * 32 bytes per leaf (64 MB at 1M).
// Every range the RFC's recursive definitions ask for is then either one
// lookup or a fold of at most log2(n) cached subtrees, so a proof costs
// O(log n) lookups plus at most ~2 log n hashes.
class MerkleTree {
 public:
  MerkleTree() : levels_(1) {}
  MerkleTree(const MerkleTree&) = delete;
  MerkleTree& operator=(const MerkleTree&) = delete;
  MerkleTree(MerkleTree&&) = default;
  MerkleTree& operator=(MerkleTree&&) = default;

  void append_entry(std::span<const uint8_t> entry) { append_leaf_hash(merkle_leaf_hash(entry)); }
  void append_leaf_hash(const Hash32& leaf_hash);
  // Replaces the contents with the leaves `source` yields.
  Status rebuild(LeafHashSource& source);
  void reserve(uint64_t leaves);

  uint64_t size() const { return levels_[0].size(); }
  const Hash32& leaf_hash(uint64_t index) const { return levels_[0][index]; }  // REQUIRES: index < size()
  Hash32 root() const { return root_at(size()).value(); }
  // Root of the first `tree_size` leaves (an earlier tree head).
  Result<Hash32> root_at(uint64_t tree_size) const;
  // RFC 9162 §2.1.3.1 PATH(index, D[0:tree_size]).
  Result<std::vector<Hash32>> inclusion_proof(uint64_t index, uint64_t tree_size) const;
  // RFC 9162 §2.1.4.1 PROOF(old_size, D[0:new_size]); empty when old == new.
  Result<std::vector<Hash32>> consistency_proof(uint64_t old_size, uint64_t new_size) const;

 private:
  // MTH(D[lo:hi]); REQUIRES lo < hi <= size().
  Hash32 range_hash(uint64_t lo, uint64_t hi) const;
  void path(uint64_t m, uint64_t lo, uint64_t hi, std::vector<Hash32>* out) const;
  void subproof(uint64_t m, uint64_t lo, uint64_t hi, bool b, std::vector<Hash32>* out) const;

  std::vector<std::vector<Hash32>> levels_;
};

// RFC 9162 compact range [0, n) (the "frontier"): the roots of the perfect
// subtrees that cover the first n leaves, one per set bit of n, largest (left)
// first: at most 64 hashes, 32 * popcount(n) bytes. Enough to append further
// leaves and compute MTH(D[0:n]) without any earlier leaf; nothing else (no
// proofs). The tree size it covers is part of the value.
//
//   CompactRange r;                       // or CompactRange::parse(stored)
//   for (...) r.append(leaf_hash);        // amortised 1 node hash per leaf
//   Hash32 root = r.root();               // == MerkleTree::root() over the same leaves
//
// Serialized (docs/merkle-log.md, "Compact range"):
//   "CVNRNG01" | u64 LE size | u8 count | count * 32-byte hashes | SHA-256 of all preceding bytes
class CompactRange {
 public:
  static constexpr std::string_view kMagic = "CVNRNG01";
  static constexpr size_t kHeaderBytes = 8 + 8 + 1;
  static constexpr size_t kChecksumBytes = 32;

  CompactRange() = default;
  // REQUIRES: hashes.size() == popcount(size); the caller vouches that they
  // are the subtree roots of some tree of that size (e.g. checked its root).
  static Result<CompactRange> from_hashes(uint64_t size, std::vector<Hash32> hashes);

  void append(const Hash32& leaf_hash);
  void append_entry(std::span<const uint8_t> entry) { append(merkle_leaf_hash(entry)); }

  uint64_t size() const { return size_; }
  // Subtree roots, left to right: hashes()[i] covers 2^h leaves for the
  // i-th highest set bit h of size().
  const std::vector<Hash32>& hashes() const { return hashes_; }
  // MTH(D[0:size]) per RFC 9162 §2.1.1: the hashes folded right to left,
  // root = node(h0, node(h1, ... node(h_{k-2}, h_{k-1}))); SHA-256("") when empty.
  Hash32 root() const;

  std::vector<uint8_t> serialize() const;
  // Strict: magic, exact length, count == popcount(size), checksum. Errors
  // name what is wrong (kInvalidArgument: not a compact range or truncated;
  // kCorruption: the checksum or hash count does not match).
  static Result<CompactRange> parse(std::span<const uint8_t> bytes);
  // The serialized length for a range of `size` leaves.
  static size_t serialized_size(uint64_t size);

  bool operator==(const CompactRange&) const = default;

 private:
  uint64_t size_ = 0;
  std::vector<Hash32> hashes_;
};

// RFC 9162 §2.1.3.2. Ok, or kCorruption saying why the proof fails.
Status verify_inclusion(const Hash32& leaf_hash, uint64_t index, uint64_t tree_size, std::span<const Hash32> proof,
                        const Hash32& root);
// RFC 9162 §2.1.4.2. Ok, or kCorruption saying why the proof fails.
Status verify_consistency(uint64_t old_size, uint64_t new_size, const Hash32& old_root, const Hash32& new_root,
                          std::span<const Hash32> proof);

// A tree head in the C2SP signed-note checkpoint format (docs/merkle-log.md):
//   <origin>\n<tree size, decimal>\n<base64 root hash>\n\n— <name> <base64(key hash(4) || sig(64))>\n
// The key name is the origin; key hash = SHA-256(name || 0x0A || 0x01 || pub)[0:4].
struct Checkpoint {
  std::string origin;
  uint64_t tree_size = 0;
  Hash32 root{};
  bool operator==(const Checkpoint&) const = default;
};

// When to cut the next checkpoint: after `every_entries` new entries or
// `every_ms` milliseconds since the last one, whichever comes first, and
// never for an unchanged tree. 0 disables that trigger.
struct CheckpointPolicy {
  uint64_t every_entries = 1024;  // bounds how many receipts an anchor lags behind
  uint64_t every_ms = 10'000;     // bounds how long a quiet log goes unanchored
  bool due(uint64_t last_size, uint64_t last_ms, uint64_t size_now, uint64_t now_ms) const {
    if (size_now <= last_size) return false;
    return (every_entries && size_now - last_size >= every_entries) || (every_ms && now_ms - last_ms >= every_ms);
  }
};

std::string checkpoint_body(const Checkpoint& cp);
// REQUIRES: origin is non-empty printable ASCII without spaces or '+'.
Result<std::string> sign_checkpoint(const Checkpoint& cp, const SigningKey& key);
// Parses the note and checks its signature against the first key in `keys`
// whose key hash matches. kInvalidArgument: malformed; kNotFound: no line
// signed by a known key; kCorruption: a matching line whose signature fails.
Result<Checkpoint> verify_checkpoint(std::string_view note, std::span<const PublicKey> keys);
// Parses without checking signatures.
Result<Checkpoint> parse_checkpoint(std::string_view note);

std::string base64_encode(std::span<const uint8_t> bytes);
bool base64_decode(std::string_view text, std::vector<uint8_t>* out);

}  // namespace covenant
