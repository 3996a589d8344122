// bench_evidence: receipt encode+sign against a bare Ed25519 sign of the same
// payload size (the physical reference, same run), verify, Merkle proofs at
// 1,000,000 entries, checkpoint roots at 100,000 (full vs compact range),
// bytes per receipt. Results: docs/receipts.md and
// docs/merkle-log.md. Run:
//   build-evidence/src/evidence/bench_evidence --benchmark_min_time=0.5s
#include <benchmark/benchmark.h>
#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "covenant/merkle.h"
#include "covenant/receipt.h"
#include "covenant/receipt_log.h"
#include "evidence/test_util.h"

namespace covenant {
namespace {

const SigningKey& bench_key() {
  static const SigningKey k = [] {
    std::array<uint8_t, 32> seed;
    seed.fill(5);
    return SigningKey::from_seed(seed);
  }();
  return k;
}

size_t typical_payload_size() {
  std::vector<uint8_t> p;
  (void)encode_receipt_payload(testing::typical_receipt(), &p);
  return p.size();
}

void BM_BareEd25519Sign(benchmark::State& state) {
  std::vector<uint8_t> msg(typical_payload_size(), 0x5a);
  uint8_t sk[64], pk[32], sig[64];
  crypto_sign_ed25519_seed_keypair(pk, sk, bench_key().seed().data());
  for (auto _ : state) {
    crypto_sign_ed25519_detached(sig, nullptr, msg.data(), msg.size(), sk);
    benchmark::DoNotOptimize(sig);
  }
  state.counters["message_bytes"] = static_cast<double>(msg.size());
}
BENCHMARK(BM_BareEd25519Sign);

void BM_ReceiptEncodeSign(benchmark::State& state) {
  Receipt r = testing::typical_receipt();
  std::vector<uint8_t> cose;
  for (auto _ : state) {
    ++r.time_unix_ms;  // a different receipt each time, as in production
    if (!sign_receipt(r, bench_key(), &cose).is_ok()) state.SkipWithError("sign failed");
    benchmark::DoNotOptimize(cose.data());
  }
  state.counters["receipt_bytes"] = static_cast<double>(cose.size());
}
BENCHMARK(BM_ReceiptEncodeSign);

void BM_ReceiptEncodeOnly(benchmark::State& state) {
  Receipt r = testing::typical_receipt();
  std::vector<uint8_t> payload;
  for (auto _ : state) {
    payload.clear();
    (void)encode_receipt_payload(r, &payload);
    benchmark::DoNotOptimize(payload.data());
  }
}
BENCHMARK(BM_ReceiptEncodeOnly);

void BM_ReceiptVerify(benchmark::State& state) {
  std::vector<uint8_t> cose;
  (void)sign_receipt(testing::typical_receipt(), bench_key(), &cose);
  const PinnedKey pinned(bench_key().public_key());
  for (auto _ : state) {
    auto v = verify_receipt(cose, pinned);
    if (!v.is_ok()) state.SkipWithError("verify failed");
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_ReceiptVerify);

void BM_BareEd25519Verify(benchmark::State& state) {
  std::vector<uint8_t> msg(typical_payload_size(), 0x5a);
  uint8_t sig[64];
  bench_key().sign(msg, sig);
  for (auto _ : state) {
    benchmark::DoNotOptimize(ed25519_verify(bench_key().public_key(), msg, std::span<const uint8_t>(sig, 64)));
  }
}
BENCHMARK(BM_BareEd25519Verify);

constexpr uint64_t kMillion = 1'000'000;

const MerkleTree& million_tree() {
  static const MerkleTree* t = [] {
    auto* tree = new MerkleTree();
    tree->reserve(kMillion);
    for (uint64_t i = 0; i < kMillion; ++i) {
      tree->append_leaf_hash(sha256(std::span(reinterpret_cast<const uint8_t*>(&i), sizeof i)));
    }
    return tree;
  }();
  return *t;
}

void BM_MerkleAppend(benchmark::State& state) {
  MerkleTree t;
  Hash32 h{};
  for (auto _ : state) {
    ++h[0];
    t.append_leaf_hash(h);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MerkleAppend);

void BM_InclusionProof1M(benchmark::State& state) {
  const MerkleTree& t = million_tree();
  std::mt19937_64 rng(1);
  for (auto _ : state) {
    auto p = t.inclusion_proof(rng() % kMillion, kMillion);
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_InclusionProof1M)->Unit(benchmark::kMicrosecond);

void BM_InclusionVerify1M(benchmark::State& state) {
  const MerkleTree& t = million_tree();
  const Hash32 root = t.root();
  const uint64_t index = 777'777;
  auto p = t.inclusion_proof(index, kMillion);
  for (auto _ : state) {
    benchmark::DoNotOptimize(verify_inclusion(t.leaf_hash(index), index, kMillion, p.value(), root));
  }
}
BENCHMARK(BM_InclusionVerify1M)->Unit(benchmark::kMicrosecond);

void BM_ConsistencyProof1M(benchmark::State& state) {
  const MerkleTree& t = million_tree();
  std::mt19937_64 rng(2);
  for (auto _ : state) {
    auto p = t.consistency_proof(1 + rng() % (kMillion - 1), kMillion);
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_ConsistencyProof1M)->Unit(benchmark::kMicrosecond);

void BM_Root1M(benchmark::State& state) {
  const MerkleTree& t = million_tree();
  for (auto _ : state) benchmark::DoNotOptimize(t.root());
}
BENCHMARK(BM_Root1M)->Unit(benchmark::kMicrosecond);

// Checkpoint cost at 100,000 entries, the Merkle part only (docs/merkle-log.md,
// "Compact range"; the end-to-end figure on a SQLite ledger is
// settle_test --gtest_filter=SettleCheckpointBench.*): the whole tree from
// the stored leaf hashes, the compact range from them, and the compact range
// read back from its bytes and extended by 16 leaves (--checkpoint-every 16).
constexpr uint64_t k100k = 100'000;

const std::vector<Hash32>& leaves_100k() {
  static const std::vector<Hash32> v = [] {
    std::vector<Hash32> out;
    for (uint64_t i = 0; i < k100k + 16; ++i) out.push_back(sha256(std::span(reinterpret_cast<const uint8_t*>(&i), sizeof i)));
    return out;
  }();
  return v;
}

void BM_CheckpointRootFullTree100k(benchmark::State& state) {
  const auto& leaves = leaves_100k();
  for (auto _ : state) {
    MerkleTree t;
    for (uint64_t i = 0; i < k100k; ++i) t.append_leaf_hash(leaves[i]);
    benchmark::DoNotOptimize(t.root());
  }
}
BENCHMARK(BM_CheckpointRootFullTree100k)->Unit(benchmark::kMillisecond);

void BM_CheckpointRootFullCompactRange100k(benchmark::State& state) {
  const auto& leaves = leaves_100k();
  for (auto _ : state) {
    CompactRange r;
    for (uint64_t i = 0; i < k100k; ++i) r.append(leaves[i]);
    benchmark::DoNotOptimize(r.root());
  }
}
BENCHMARK(BM_CheckpointRootFullCompactRange100k)->Unit(benchmark::kMillisecond);

void BM_CheckpointRootIncremental100kPlus16(benchmark::State& state) {
  const auto& leaves = leaves_100k();
  CompactRange base;
  for (uint64_t i = 0; i < k100k; ++i) base.append(leaves[i]);
  const std::vector<uint8_t> stored = base.serialize();
  for (auto _ : state) {
    auto r = CompactRange::parse(stored);
    const Hash32 before = r->root();  // what the frontier is checked against
    for (uint64_t i = k100k; i < k100k + 16; ++i) r->append(leaves[i]);
    benchmark::DoNotOptimize(before);
    benchmark::DoNotOptimize(r->root());
    benchmark::DoNotOptimize(r->serialize());
  }
}
BENCHMARK(BM_CheckpointRootIncremental100kPlus16)->Unit(benchmark::kMicrosecond);

// The ratio the target is stated in, measured interleaved in one loop
// so both sides see the same CPU frequency and neighbours: best of 7 rounds.
void print_sign_ratio() {
  const size_t n = typical_payload_size();
  std::vector<uint8_t> msg(n, 0x5a), cose;
  uint8_t sk[64], pk[32], sig[64];
  crypto_sign_ed25519_seed_keypair(pk, sk, bench_key().seed().data());
  Receipt r = testing::typical_receipt();
  constexpr int kIters = 4000;
  double best_bare = 1e30, best_receipt = 1e30;
  using clock = std::chrono::steady_clock;
  for (int round = 0; round < 7; ++round) {
    auto t0 = clock::now();
    for (int i = 0; i < kIters; ++i) {
      msg[0] = static_cast<uint8_t>(i);
      crypto_sign_ed25519_detached(sig, nullptr, msg.data(), msg.size(), sk);
    }
    auto t1 = clock::now();
    for (int i = 0; i < kIters; ++i) {
      ++r.time_unix_ms;
      (void)sign_receipt(r, bench_key(), &cose);
    }
    auto t2 = clock::now();
    best_bare = std::min(best_bare, std::chrono::duration<double, std::micro>(t1 - t0).count() / kIters);
    best_receipt = std::min(best_receipt, std::chrono::duration<double, std::micro>(t2 - t1).count() / kIters);
  }
  std::printf(
      "\nsummary: bare Ed25519 sign (%zu B) %.2f us; receipt encode+sign %.2f us; ratio %.3fx (target <= 1.3x)\n"
      "summary: receipt %zu bytes (budget %zu); log record %zu bytes (+%zu framing); Merkle memory ~64 B/entry\n",
      n, best_bare, best_receipt, best_receipt / best_bare, cose.size(), kReceiptTypicalSizeBytesMax,
      cose.size() + kLogRecordOverheadBytes, kLogRecordOverheadBytes);
}

}  // namespace
}  // namespace covenant

int main(int argc, char** argv) {
  if (sodium_init() < 0) return 1;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  covenant::print_sign_ratio();
  return 0;
}
