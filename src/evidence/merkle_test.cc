#include "covenant/merkle.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <random>

namespace covenant {
namespace {

std::vector<uint8_t> hx(std::string_view h) {
  std::vector<uint8_t> out;
  EXPECT_TRUE(from_hex(h, &out));
  return out;
}

template <class T>
T val(Result<T> r) {
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return std::move(r).value();
}

Hash32 h32(std::string_view h) {
  Hash32 out;
  EXPECT_TRUE(from_hex(h, out)) << h;
  return out;
}

// The RFC 6962 test leaves used by certificate-transparency and Trillian.
const std::vector<std::vector<uint8_t>>& ct_leaves() {
  static const std::vector<std::vector<uint8_t>> leaves = {
      hx(""), hx("00"), hx("10"), hx("2021"), hx("3031"), hx("40414243"),
      hx("5051525354555657"), hx("606162636465666768696a6b6c6d6e6f"),
  };
  return leaves;
}

// Straight from the RFC's recursive definitions, no caching: the reference
// the cached tree is compared against.
Hash32 ref_mth(const std::vector<std::vector<uint8_t>>& d, size_t lo, size_t hi) {
  if (hi == lo) return merkle_empty_root();
  if (hi - lo == 1) return merkle_leaf_hash(d[lo]);
  const size_t k = std::bit_floor(hi - lo - 1);
  return merkle_node_hash(ref_mth(d, lo, lo + k), ref_mth(d, lo + k, hi));
}

TEST(Merkle, Rfc6962RootsForSizes0To8) {
  // Roots for the first n CT test leaves (certificate-transparency-go testdata).
  const char* roots[] = {
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
      "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
      "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
      "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
      "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
      "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
  };
  MerkleTree t;
  for (size_t n = 0; n <= 8; ++n) {
    EXPECT_EQ(to_hex(t.root()), roots[n]) << "size " << n;
    EXPECT_EQ(t.root(), ref_mth(ct_leaves(), 0, n)) << "size " << n;
    if (n < 8) t.append_entry(ct_leaves()[n]);
  }
  for (size_t n = 0; n <= 8; ++n) EXPECT_EQ(to_hex(val(t.root_at(n))), roots[n]) << "root_at " << n;
}

// Tree of 7 leaves, drawn: proofs computed by hand from the tree.
//   root = H(k, l);  k = H(g, h), l = H(i, 6);
//   g = H(0, 1), h = H(2, 3), i = H(4, 5)   (digits are leaf hashes)
TEST(Merkle, HandComputedProofsForSize7) {
  MerkleTree t;
  for (size_t i = 0; i < 7; ++i) t.append_entry(ct_leaves()[i]);
  Hash32 L[7];
  for (size_t i = 0; i < 7; ++i) L[i] = merkle_leaf_hash(ct_leaves()[i]);
  const Hash32 g = merkle_node_hash(L[0], L[1]), h = merkle_node_hash(L[2], L[3]), i = merkle_node_hash(L[4], L[5]);
  const Hash32 k = merkle_node_hash(g, h), l = merkle_node_hash(i, L[6]);
  EXPECT_EQ(t.root(), merkle_node_hash(k, l));
  struct Row {
    uint64_t index;
    std::vector<Hash32> path;
  };
  const Row rows[] = {
      {0, {L[1], h, l}}, {3, {L[2], g, l}}, {4, {L[5], L[6], k}}, {6, {i, k}},
  };
  for (const Row& r : rows) {
    auto p = t.inclusion_proof(r.index, 7);
    ASSERT_TRUE(p.is_ok());
    EXPECT_EQ(*p, r.path) << "leaf " << r.index;
    EXPECT_TRUE(verify_inclusion(L[r.index], r.index, 7, *p, t.root()).is_ok());
  }
  // Consistency 3 -> 7: old tree = H(g, L2). PROOF = [L2, L3, g, l].
  auto c = t.consistency_proof(3, 7);
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(*c, (std::vector<Hash32>{L[2], L[3], g, l}));
  EXPECT_TRUE(verify_consistency(3, 7, val(t.root_at(3)), t.root(), *c).is_ok());
  // 4 -> 7: the old tree is the complete subtree k; PROOF = [l].
  c = t.consistency_proof(4, 7);
  EXPECT_EQ(*c, (std::vector<Hash32>{l}));
  EXPECT_TRUE(verify_consistency(4, 7, k, t.root(), *c).is_ok());
  // 6 -> 7: old = H(k, i). PROOF = [i, L6, k].
  c = t.consistency_proof(6, 7);
  EXPECT_EQ(*c, (std::vector<Hash32>{i, L[6], k}));
  EXPECT_TRUE(verify_consistency(6, 7, val(t.root_at(6)), t.root(), *c).is_ok());
}

TEST(Merkle, Rfc6962InclusionVectors) {
  // certificate-transparency-go merkle testdata: leaf 0 in a tree of 8.
  MerkleTree t;
  for (const auto& l : ct_leaves()) t.append_entry(l);
  auto p = t.inclusion_proof(0, 8);
  ASSERT_TRUE(p.is_ok());
  const std::vector<Hash32> want = {h32("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                                    h32("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                                    h32("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")};
  EXPECT_EQ(*p, want);
}

// Every (index, size) and (old, new) pair up to 70 leaves: proofs verify,
// match the uncached reference roots, and fail when tampered with.
TEST(Merkle, AllProofsUpTo70Leaves) {
  std::vector<std::vector<uint8_t>> d;
  MerkleTree t;
  for (size_t i = 0; i < 70; ++i) {
    d.push_back({static_cast<uint8_t>(i), static_cast<uint8_t>(i * 7)});
    t.append_entry(d.back());
  }
  for (uint64_t n = 1; n <= 70; ++n) {
    const Hash32 root = ref_mth(d, 0, n);
    ASSERT_EQ(val(t.root_at(n)), root);
    for (uint64_t m = 0; m < n; ++m) {
      auto p = t.inclusion_proof(m, n);
      ASSERT_TRUE(p.is_ok());
      ASSERT_TRUE(verify_inclusion(t.leaf_hash(m), m, n, *p, root).is_ok()) << m << "/" << n;
      if (!p->empty()) {
        auto bad = *p;
        bad[bad.size() / 2][5] ^= 1;
        EXPECT_FALSE(verify_inclusion(t.leaf_hash(m), m, n, bad, root).is_ok());
        bad = *p;
        bad.pop_back();
        EXPECT_FALSE(verify_inclusion(t.leaf_hash(m), m, n, bad, root).is_ok());
      }
      Hash32 other = t.leaf_hash(m);
      other[0] ^= 1;
      EXPECT_FALSE(verify_inclusion(other, m, n, *p, root).is_ok());
    }
    for (uint64_t m = 1; m <= n; ++m) {
      auto c = t.consistency_proof(m, n);
      ASSERT_TRUE(c.is_ok());
      const Hash32 old_root = ref_mth(d, 0, m);
      ASSERT_TRUE(verify_consistency(m, n, old_root, root, *c).is_ok()) << m << "->" << n;
      if (!c->empty()) {
        auto bad = *c;
        bad.back()[0] ^= 1;
        EXPECT_FALSE(verify_consistency(m, n, old_root, root, bad).is_ok()) << m << "->" << n;
        Hash32 wrong = old_root;
        wrong[31] ^= 1;
        EXPECT_FALSE(verify_consistency(m, n, wrong, root, *c).is_ok()) << m << "->" << n;
      }
    }
  }
}

TEST(Merkle, ArgumentErrors) {
  MerkleTree t;
  t.append_entry(hx("00"));
  EXPECT_EQ(t.inclusion_proof(1, 1).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(t.inclusion_proof(0, 2).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(t.consistency_proof(2, 1).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(t.root_at(2).status().code(), Code::kInvalidArgument);
  EXPECT_FALSE(verify_inclusion(t.leaf_hash(0), 1, 1, {}, t.root()).is_ok());
  EXPECT_TRUE(verify_inclusion(t.leaf_hash(0), 0, 1, {}, t.root()).is_ok());
}

class VectorSource : public LeafHashSource {
 public:
  explicit VectorSource(const MerkleTree& t) : t_(t) {}
  Result<bool> next(Hash32* out) override {
    if (i_ == t_.size()) return false;
    *out = t_.leaf_hash(i_++);
    return true;
  }

 private:
  const MerkleTree& t_;
  uint64_t i_ = 0;
};

TEST(Merkle, RebuildFromLeafHashes) {
  MerkleTree t;
  for (int i = 0; i < 1000; ++i) t.append_entry(std::vector<uint8_t>{static_cast<uint8_t>(i), static_cast<uint8_t>(i >> 8)});
  MerkleTree u;
  VectorSource src(t);
  ASSERT_TRUE(u.rebuild(src).is_ok());
  EXPECT_EQ(u.size(), t.size());
  EXPECT_EQ(u.root(), t.root());
  EXPECT_EQ(val(u.inclusion_proof(517, 999)), val(t.inclusion_proof(517, 999)));
}

// ---- compact ranges ----

Hash32 leaf_n(uint64_t i) { return sha256(std::span(reinterpret_cast<const uint8_t*>(&i), sizeof i)); }

TEST(CompactRange, RootsEqualTheTreeForEverySizeUpTo300) {
  std::vector<std::vector<uint8_t>> d;
  MerkleTree t;
  CompactRange r;
  EXPECT_EQ(r.root(), merkle_empty_root());
  EXPECT_EQ(r.root(), t.root());
  for (uint64_t n = 1; n <= 300; ++n) {
    d.push_back({static_cast<uint8_t>(n), static_cast<uint8_t>(n >> 8), 0x5a});
    t.append_entry(d.back());
    r.append_entry(d.back());
    ASSERT_EQ(r.size(), n);
    ASSERT_EQ(r.hashes().size(), static_cast<size_t>(std::popcount(n))) << n;
    ASSERT_EQ(r.root(), t.root()) << "size " << n;
    ASSERT_EQ(r.root(), ref_mth(d, 0, n)) << "size " << n;
    // Each hash is the root of its perfect subtree, left to right, largest first.
    uint64_t lo = 0;
    size_t i = 0;
    for (int h = 63; h >= 0; --h) {
      if (!((n >> h) & 1)) continue;
      ASSERT_EQ(r.hashes()[i++], ref_mth(d, lo, lo + (uint64_t{1} << h))) << n << " height " << h;
      lo += uint64_t{1} << h;
    }
  }
}

TEST(CompactRange, RootsEqualTheTreeAtRandomLargeSizes) {
  constexpr uint64_t kMax = 1 << 18;
  std::mt19937_64 rng(9162);
  std::vector<uint64_t> sizes = {kMax, kMax - 1, (1 << 17), (1 << 17) + 1};
  for (int i = 0; i < 40; ++i) sizes.push_back(300 + rng() % (kMax - 300));
  std::sort(sizes.begin(), sizes.end());
  MerkleTree t;
  t.reserve(kMax);
  CompactRange r;
  size_t next = 0;
  for (uint64_t i = 0; i < kMax && next < sizes.size(); ++i) {
    const Hash32 h = leaf_n(i);
    t.append_leaf_hash(h);
    r.append(h);
    while (next < sizes.size() && sizes[next] == r.size()) {
      ASSERT_EQ(r.root(), t.root()) << "size " << r.size();
      // A range parsed from its bytes continues exactly where it left off.
      auto back = CompactRange::parse(r.serialize());
      ASSERT_TRUE(back.is_ok()) << back.status().to_string();
      ASSERT_EQ(*back, r);
      ASSERT_EQ(back->root(), t.root());
      ++next;
    }
  }
  EXPECT_EQ(next, sizes.size());
}

TEST(CompactRange, ParsedRangeExtendsToTheSameRoots) {
  MerkleTree t;
  for (uint64_t i = 0; i < 700; ++i) t.append_leaf_hash(leaf_n(i));
  for (uint64_t cut : {0, 1, 2, 3, 7, 8, 255, 256, 257, 511, 699}) {
    CompactRange r;
    for (uint64_t i = 0; i < cut; ++i) r.append(leaf_n(i));
    auto back = CompactRange::parse(r.serialize());
    ASSERT_TRUE(back.is_ok()) << cut << ": " << back.status().to_string();
    for (uint64_t i = cut; i < 700; ++i) {
      back->append(leaf_n(i));
      ASSERT_EQ(back->root(), val(t.root_at(i + 1))) << cut << " -> " << i + 1;
    }
  }
}

TEST(CompactRange, SizeAndHashesAtTheTop) {
  // Sizes far beyond what can be built leaf by leaf: the structure and the
  // root fold still follow the definition.
  Hash32 a = leaf_n(1), b = leaf_n(2), c = leaf_n(3);
  auto r = CompactRange::from_hashes((uint64_t{1} << 62) + (uint64_t{1} << 40) + 1, {a, b, c});
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->root(), merkle_node_hash(a, merkle_node_hash(b, c)));
  auto back = CompactRange::parse(r->serialize());
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(*back, *r);
  r->append(leaf_n(4));  // joins c: size ...10
  ASSERT_EQ(r->hashes().size(), 3u);
  EXPECT_EQ(r->hashes()[2], merkle_node_hash(c, leaf_n(4)));
  EXPECT_EQ(CompactRange::from_hashes(3, {a}).status().code(), Code::kInvalidArgument);
  auto full = CompactRange::from_hashes(UINT64_MAX, std::vector<Hash32>(64, a));
  ASSERT_TRUE(full.is_ok());
  EXPECT_EQ(CompactRange::parse(full->serialize()).value(), *full);
}

TEST(CompactRange, ParseRefusesGarbageWithAClearError) {
  CompactRange r;
  for (uint64_t i = 0; i < 13; ++i) r.append(leaf_n(i));  // 13 = 1101b: 3 hashes
  const std::vector<uint8_t> good = r.serialize();
  ASSERT_EQ(good.size(), CompactRange::serialized_size(13));
  ASSERT_EQ(good.size(), 17u + 3 * 32 + 32);
  auto msg = [](std::span<const uint8_t> b) {
    auto p = CompactRange::parse(b);
    EXPECT_FALSE(p.is_ok());
    return p.is_ok() ? std::string() : p.status().to_string();
  };
  EXPECT_NE(msg({}).find("not a compact range"), std::string::npos);
  std::vector<uint8_t> text = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'};
  EXPECT_NE(msg(text).find("not a compact range"), std::string::npos);
  // Every truncation and one extra byte.
  for (size_t n = 0; n < good.size(); ++n) {
    const std::string m = msg(std::span(good).first(n));
    EXPECT_TRUE(m.find("truncated") != std::string::npos || m.find("not a compact range") != std::string::npos)
        << n << ": " << m;
  }
  auto longer = good;
  longer.push_back(0);
  EXPECT_NE(msg(longer).find("trailing bytes"), std::string::npos);
  // Every single-bit flip anywhere is refused.
  for (size_t i = 0; i < good.size(); ++i) {
    auto bad = good;
    bad[i] ^= 0x10;
    EXPECT_FALSE(CompactRange::parse(bad).is_ok()) << "byte " << i;
  }
  // A consistent checksum over a count that does not fit the size.
  std::vector<uint8_t> lie(good.begin(), good.end() - 32);
  lie[8] = 12;  // size 12 = 1100b needs 2 hashes, the data has 3
  const Hash32 sum = sha256(lie);
  lie.insert(lie.end(), sum.begin(), sum.end());
  auto p = CompactRange::parse(lie);
  ASSERT_FALSE(p.is_ok());
  EXPECT_EQ(p.status().code(), Code::kCorruption);
  EXPECT_NE(p.status().to_string().find("needs 2 hashes"), std::string::npos) << p.status().to_string();
  auto flipped = good;
  flipped[40] ^= 1;
  EXPECT_NE(msg(flipped).find("checksum"), std::string::npos);
}

TEST(Checkpoint, SignVerifyAndTamper) {
  std::array<uint8_t, 32> seed{};
  seed[0] = 1;
  const SigningKey key = SigningKey::from_seed(seed);
  MerkleTree t;
  for (const auto& l : ct_leaves()) t.append_entry(l);
  const Checkpoint cp{"example.com/covenant/log", 8, t.root()};
  auto note = sign_checkpoint(cp, key);
  ASSERT_TRUE(note.is_ok());
  EXPECT_EQ(note->substr(0, checkpoint_body(cp).size()),
            "example.com/covenant/log\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n");
  const PublicKey keys[] = {key.public_key()};
  auto v = verify_checkpoint(*note, keys);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_EQ(*v, cp);
  for (size_t i = 0; i < note->size(); ++i) {
    std::string bad = *note;
    bad[i] ^= 0x01;
    EXPECT_FALSE(verify_checkpoint(bad, keys).is_ok()) << "byte " << i;
  }
  const PublicKey other[] = {SigningKey::from_seed({}).public_key()};
  EXPECT_EQ(verify_checkpoint(*note, other).status().code(), Code::kNotFound);
  EXPECT_FALSE(sign_checkpoint({"has space", 1, {}}, key).is_ok());
}

TEST(CheckpointPolicy, EveryNEntriesOrTMs) {
  const CheckpointPolicy p{.every_entries = 100, .every_ms = 1000};
  struct Row {
    uint64_t last_size, last_ms, size, now_ms;
    bool due;
  };
  const Row rows[] = {
      {0, 0, 0, 5000, false},     // nothing new: never
      {0, 0, 99, 999, false},     // neither trigger
      {0, 0, 100, 10, true},      // N entries
      {50, 0, 51, 1000, true},    // T ms
      {50, 1000, 50, 9000, false} // time passed but no new entries
  };
  for (const Row& r : rows) EXPECT_EQ(p.due(r.last_size, r.last_ms, r.size, r.now_ms), r.due);
}

}  // namespace
}  // namespace covenant
