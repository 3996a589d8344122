// The approval pipeline (pipeline.h): the overlay kv store, the chained
// signer, the committer thread, and the chain verifier.
#include "settle/pipeline.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "host/kv_store.h"

namespace covenant::settle {

using json = nlohmann::json;

namespace {

uint64_t now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

std::string usage_row_key(const std::string& prefix) { return std::string(kUsageRowPrefix) + prefix; }

std::string encode_usage(const KvUsage& u) { return std::to_string(u.keys) + " " + std::to_string(u.bytes); }

KvUsage decode_usage(const std::optional<std::string>& row) {
  KvUsage u;
  if (!row) return u;
  unsigned long long k = 0, b = 0;
  if (std::sscanf(row->c_str(), "%llu %llu", &k, &b) == 2) {
    u.keys = k;
    u.bytes = b;
  }
  return u;
}

// What one call's kv commit staged (filled by OverlayKvStore::commit on the calling thread).
struct Staged {
  uint64_t seq = 0;  // overlay sequence of this call's writes; 0 = none
  std::vector<KvPut> puts;
  std::vector<KvExpect> expects;  // the usage rows as seen
  std::vector<std::string> keys;  // overlay keys written (for release)
  std::string usage_prefix;
};
thread_local Staged* tls_staged = nullptr;

}  // namespace

// ---------------------------------------------------------------------------
// The kv store of pipeline contracts: committed rows of the ledger plus this
// process's staged, not yet committed writes.

class OverlayKvStore final : public host::KvStore {
 public:
  explicit OverlayKvStore(Ledger* ledger) : ledger_(ledger) {}

  Result<std::optional<std::string>> get(const std::string& key) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (auto it = pending_.find(key); it != pending_.end()) return it->second.value;
    }
    return ledger_->kv_get(key);
  }

  Result<std::vector<std::string>> list(const std::string& prefix, size_t max) override {
    std::map<std::string, std::optional<std::string>> pend;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = pending_.lower_bound(prefix); it != pending_.end(); ++it) {
        if (it->first.compare(0, prefix.size(), prefix) != 0) break;
        pend[it->first] = it->second.value;
      }
    }
    auto rows = ledger_->kv_scan(prefix, "", max + pend.size());
    if (!rows) return rows.status();
    std::set<std::string> keys;
    for (auto& [k, v] : *rows) keys.insert(k);
    for (auto& [k, v] : pend) {
      if (v) keys.insert(k);
      else keys.erase(k);
    }
    std::vector<std::string> out(keys.begin(), keys.end());
    if (out.size() > max) out.resize(max);
    return out;
  }

  Result<KvUsage> usage(const std::string& prefix) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto row = usage_row_locked(prefix);
    if (!row) return row.status();
    return decode_usage(*row);
  }

  Status commit(const std::string& prefix, const host::KvBatch& batch) override {
    if (batch.empty()) return Status::ok();
    std::lock_guard<std::mutex> lock(mu_);
    auto row = usage_row_locked(prefix);
    if (!row) return row.status();
    KvUsage u = decode_usage(*row);
    const uint64_t seq = ++seq_;
    Staged local;
    Staged* st = tls_staged ? tls_staged : &local;
    st->seq = seq;
    st->usage_prefix = prefix;
    st->expects.push_back({usage_row_key(prefix), *row});
    for (const auto& [k, v] : batch) {
      std::optional<std::string> old;
      if (auto it = pending_.find(k); it != pending_.end()) {
        old = it->second.value;
      } else {
        auto r = ledger_->kv_get(k);
        if (!r) return r.status();
        old = std::move(*r);
      }
      const uint64_t name = k.size() - prefix.size();
      if (old) {
        u.keys -= 1;
        u.bytes -= name + old->size();
      }
      if (v) {
        u.keys += 1;
        u.bytes += name + v->size();
      }
      pending_[k] = {v, seq};
      st->puts.push_back({k, v});
      st->keys.push_back(k);
    }
    const std::string urow = encode_usage(u);
    pending_usage_[prefix] = {urow, seq};
    st->puts.push_back({usage_row_key(prefix), urow});
    if (!tls_staged) release_locked(local);  // not a pipeline call (e.g. a tool): nothing to keep
    return Status::ok();
  }

  // Drops the overlay entries a call wrote (after its commit, or when it failed).
  void release(const Staged& st) {
    if (st.seq == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    release_locked(st);
  }

 private:
  struct Pending {
    std::optional<std::string> value;
    uint64_t seq = 0;
  };
  struct PendingUsage {
    std::string row;
    uint64_t seq = 0;
  };

  void release_locked(const Staged& st) {
    for (const std::string& k : st.keys) {
      auto it = pending_.find(k);
      if (it != pending_.end() && it->second.seq == st.seq) pending_.erase(it);
    }
    auto u = pending_usage_.find(st.usage_prefix);
    if (u != pending_usage_.end() && u->second.seq == st.seq) pending_usage_.erase(u);
  }

  Result<std::optional<std::string>> usage_row_locked(const std::string& prefix) {
    if (auto it = pending_usage_.find(prefix); it != pending_usage_.end())
      return std::optional<std::string>(it->second.row);
    return ledger_->kv_get(usage_row_key(prefix));
  }

  Ledger* ledger_;
  std::mutex mu_;
  std::map<std::string, Pending> pending_;            // GUARDED_BY(mu_)
  std::map<std::string, PendingUsage> pending_usage_; // GUARDED_BY(mu_)
  uint64_t seq_ = 0;                                  // GUARDED_BY(mu_)
};

// ---------------------------------------------------------------------------

namespace {

enum class ItemState { kQueued, kDone, kConflict, kFailed };

struct Item {
  Contract* contract = nullptr;
  PipelineCall* call = nullptr;
  PipelineOutcome* out = nullptr;
  json intent;                       // parsed intent (escrow plan)
  Receipt receipt;                   // payload template; prev/trace set when signed
  std::vector<KvExpect> kv_expects;  // what the run read
  std::vector<KvRangeExpect> ranges;
  Staged staged;
  Atomic atomic;
  ItemState state = ItemState::kQueued;
  std::condition_variable done;  // its own: waking every waiter per item would be a thundering herd
  Status status;
  uint64_t enqueued_ns = 0;
};

}  // namespace

struct Pipeline::Impl {
  PipelineOptions opts;
  std::unique_ptr<Ledger> ledger;
  std::unique_ptr<KeyStore> keys;
  std::shared_ptr<OverlayKvStore> kv;
  std::string chain_key;

  // Chain and queue: one mutex, so queue order is chain order.
  std::mutex mu;
  std::condition_variable queue_cv;
  std::deque<Item*> queue;                 // GUARDED_BY(mu)
  std::optional<Hash32> predicted_head;    // GUARDED_BY(mu): the last receipt signed (queued or committed)
  std::optional<Hash32> committed_head;    // GUARDED_BY(mu): the chain row as last committed by us
  bool stopping = false;                   // GUARDED_BY(mu)
  bool committing = false;                 // GUARDED_BY(mu)
  PipelineStats stats;                     // GUARDED_BY(mu)
  std::thread committer;

  std::mutex checkpoint_mu;
  uint64_t last_checkpoint_size = 0;  // GUARDED_BY(checkpoint_mu)

  // Signs `it` chained to *predicted_head and builds its Atomic. REQUIRES: mu held.
  Status sign_locked(Item& it) {
    PipelineOutcome& o = *it.out;
    Receipt& r = it.receipt;
    r.prev_receipt_hash = predicted_head ? *predicted_head : Hash32{};
    const uint64_t t0 = now_ns();
    COVENANT_RETURN_IF_ERROR(sign_receipt(r, keys->active(), &o.cose));
    o.sign_ns += now_ns() - t0;
    const Hash32 id = receipt_id(o.cose);
    o.receipt_id = to_hex(id);
    r.executor_kid = keys->active().kid();
    o.receipt = r;
    o.escrow.reset();
    o.hold_id.reset();

    Atomic a;
    a.expects.push_back({chain_key, predicted_head ? std::optional<std::string>(std::string(
                                                          reinterpret_cast<const char*>(predicted_head->data()), 32))
                                                    : std::nullopt});
    for (const KvExpect& e : it.call->extra_expects) a.expects.push_back(e);
    for (const KvExpect& e : it.kv_expects) a.expects.push_back(e);
    for (const KvExpect& e : it.staged.expects) a.expects.push_back(e);
    a.range_expects = it.ranges;
    a.puts = it.staged.puts;
    a.puts.push_back({chain_key, std::string(reinterpret_cast<const char*>(id.data()), id.size())});
    a.journal.push_back(JournalAppend{id, std::string(o.cose.begin(), o.cose.end())});
    if (it.call->plan_escrow) {
      EscrowPlan plan = plan_escrow(it.intent, o.call.result, o.call.record.wall_ms, id);
      if (plan.hold && it.call->escrow_debit_account) plan.agent_account = *it.call->escrow_debit_account;
      if (plan.hold) {
        a.accounts = escrow_accounts(plan);
        if (it.call->escrow_debit_account) a.accounts[0].flags = it.call->escrow_debit_flags;
        a.transfers.push_back(escrow_hold(plan));
        if (it.call->extra_escrow) it.call->extra_escrow(plan, id, a);
        o.hold_id = plan.hold_id.hex();
        o.escrow = plan;
      }
    }
    if (it.call->extra_puts) {
      for (KvPut& p : it.call->extra_puts(o)) a.puts.push_back(std::move(p));
    }
    it.atomic = std::move(a);
    predicted_head = id;
    return Status::ok();
  }

  // After a failure: the chain row may be other than we predicted. Re-reads it (when the
  // database answers) and re-signs every queued call from it. REQUIRES: mu held.
  void repair_locked(std::deque<Item*>& front) {
    auto row = ledger->kv_get(chain_key);
    if (row.is_ok()) {
      if (*row && (*row)->size() == 32) {
        Hash32 h;
        std::memcpy(h.data(), (*row)->data(), 32);
        committed_head = h;
      } else {
        committed_head.reset();
      }
    }
    predicted_head = committed_head;
    std::deque<Item*> all = std::move(front);
    for (Item* it : queue) all.push_back(it);
    queue.clear();
    for (Item* it : all) {
      Status s = sign_locked(*it);
      stats.resigned++;
      if (!s) {
        finish_locked(*it, ItemState::kFailed, s);
        continue;
      }
      queue.push_back(it);
    }
  }

  void finish_locked(Item& it, ItemState state, Status status) {
    it.state = state;
    it.status = std::move(status);
    kv->release(it.staged);
    it.done.notify_one();
  }

  void run_committer() {
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      queue_cv.wait(lock, [&] { return stopping || !queue.empty(); });
      if (queue.empty()) {
        if (stopping) return;
        continue;
      }
      std::vector<Item*> batch;
      while (!queue.empty() && batch.size() < opts.batch_max) {
        batch.push_back(queue.front());
        queue.pop_front();
      }
      committing = true;
      std::vector<LedgerOperation> ops;
      ops.reserve(batch.size());
      for (Item* it : batch) ops.push_back(it->atomic);
      lock.unlock();
      const uint64_t t0 = now_ns();
      auto replies = ledger->submit(ops);
      const uint64_t commit_ns = now_ns() - t0;
      lock.lock();
      committing = false;
      stats.batches++;
      if (!replies) {
        stats.commit_failures++;
        for (Item* it : batch)
          finish_locked(*it, ItemState::kFailed,
                        Status::io("ledger unavailable: " + replies.status().message() + " (the commit did not complete; retrying with the same Idempotency-Key is safe)"));
        std::deque<Item*> none;
        repair_locked(none);
        continue;
      }
      std::deque<Item*> resign;
      bool broken = false;
      for (size_t i = 0; i < batch.size(); ++i) {
        Item& it = *batch[i];
        const LedgerReply& r = (*replies)[i];
        it.out->commit_ns = commit_ns;
        it.out->queue_ns = t0 > it.enqueued_ns ? t0 - it.enqueued_ns : 0;
        if (r.result == LedgerResult::ok || r.result == LedgerResult::journal_exists) {
          Hash32 id;
          std::memcpy(id.data(), it.atomic.journal[0].key.data(), 32);
          committed_head = id;
          it.out->log_index = r.journal_seq - 1;
          stats.committed++;
          finish_locked(it, ItemState::kDone, Status::ok());
          continue;
        }
        broken = true;
        if (r.result == LedgerResult::kv_expectation_failed) {
          const size_t extra = it.call->extra_expects.size();
          if (r.failed_index == 0) {
            resign.push_back(&it);  // the chain head moved: sign again, commit in the next batch
            continue;
          }
          if (r.failed_index <= extra) {
            finish_locked(it, ItemState::kFailed,
                          Status::exists(it.call->extra_expects[r.failed_index - 1].key));
            continue;
          }
          stats.kv_conflicts++;
          finish_locked(it, ItemState::kConflict, Status::ok());
          continue;
        }
        if (r.result == LedgerResult::atomic_part_refused) {
          // failed_index counts the journal, then the accounts, then the transfers.
          const size_t parts_before = it.atomic.journal.size() + it.atomic.accounts.size();
          std::string what = r.failed_index == 0 ? "receipt" : "escrow";
          if (r.failed_index >= parts_before)
            what += " (transfer " + std::to_string(r.failed_index - parts_before) + ")";
          finish_locked(it, ItemState::kFailed,
                        Status::precondition("ledger refused the call's " + what + ": " +
                                             ledger_result_name(r.part_result)));
          continue;
        }
        finish_locked(it, ItemState::kFailed,
                      Status::precondition(std::string("ledger refused the call: ") + ledger_result_name(r.result)));
      }
      if (broken) repair_locked(resign);
      if (!queue.empty()) queue_cv.notify_one();
    }
  }
};

Pipeline::Pipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Pipeline::~Pipeline() { close(); }

void Pipeline::close() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->queue_cv.notify_all();
  if (impl_->committer.joinable()) impl_->committer.join();
}

Result<std::unique_ptr<Pipeline>> Pipeline::open(const PipelineOptions& options) {
  if (options.ledger.empty()) return Status::invalid("the pipeline needs a ledger (a SQLite path or postgresql:// URL)");
  auto impl = std::make_unique<Impl>();
  impl->opts = options;
  auto keys = KeyStore::open(options.keys_dir.empty() ? default_keys_dir() : options.keys_dir);
  if (!keys) return keys.status();
  impl->keys = std::move(*keys);
  auto ledger = open_ledger(options.ledger, options.pg_schema);
  if (!ledger) return ledger.status();
  impl->ledger = std::move(*ledger);
  impl->kv = std::make_shared<OverlayKvStore>(impl->ledger.get());
  impl->chain_key = std::string(kChainRowPrefix) + to_hex(impl->keys->active().kid());
  auto row = impl->ledger->kv_get(impl->chain_key);
  if (!row) return row.status();
  if (*row) {
    if ((*row)->size() != 32) return Status::corruption("kv row " + impl->chain_key.substr(1) + " is not a 32-byte hash");
    Hash32 h;
    std::memcpy(h.data(), (*row)->data(), 32);
    impl->committed_head = h;
    impl->predicted_head = h;
  }
  Impl* raw = impl.get();
  impl->committer = std::thread([raw] { raw->run_committer(); });
  return std::unique_ptr<Pipeline>(new Pipeline(std::move(impl)));
}

std::shared_ptr<host::KvStore> Pipeline::kv_store() { return impl_->kv; }
Ledger& Pipeline::ledger() { return *impl_->ledger; }
KeyStore& Pipeline::keys() { return *impl_->keys; }
const SigningKey& Pipeline::key() const { return impl_->keys->active(); }
const PipelineOptions& Pipeline::options() const { return impl_->opts; }
std::string Pipeline::checkpoint_dir() const {
  return impl_->opts.checkpoint_dir.empty() ? default_checkpoint_dir(impl_->opts.ledger) : impl_->opts.checkpoint_dir;
}
PipelineStats Pipeline::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  PipelineStats s = impl_->stats;
  s.queue_depth = impl_->queue.size();
  return s;
}

Result<PipelineOutcome> Pipeline::approve(Contract& contract, PipelineCall call) {
  PipelineOutcome out;
  json intent = json::parse(call.inputs.intent, nullptr, false);
  if (call.plan_escrow && !call.dry_run) {
    // An expired intent is refused before anything runs or is held.
    if (auto exp = intent_expiry_ms(intent)) {
      const uint64_t now = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                     std::chrono::system_clock::now().time_since_epoch())
                                                     .count());
      if (*exp <= now)
        return Status::invalid("intent expired: expires-at-ms " + std::to_string(*exp) + " is before now (" +
                               std::to_string(now) + "); nothing was run, signed or held");
    }
  }
  CallOptions copts;
  copts.fuel = call.inputs.fuel;
  copts.deadline_ms = call.deadline_ms;
  for (int attempt = 1;; ++attempt) {
    Item it;
    it.contract = &contract;
    it.call = &call;
    it.out = &out;
    it.intent = intent;
    out.attempts = attempt;
    out.sign_ns = 0;

    tls_staged = &it.staged;
    const uint64_t t0 = now_ns();
    auto r = contract.call_json(call.export_name, call.args, copts);
    out.execute_ns = now_ns() - t0;
    tls_staged = nullptr;
    if (!r) {
      impl_->kv->release(it.staged);
      return r.status();
    }
    out.call = std::move(*r);
    if (out.trapped() || call.dry_run) {
      impl_->kv->release(it.staged);
      if (call.dry_run && !out.trapped() && call.plan_escrow) {
        EscrowPlan plan = plan_escrow(intent, out.call.result, out.call.record.wall_ms, Hash32{});
        if (plan.hold) out.escrow = plan;
      }
      return out;
    }
    const CallRecord& rec = out.call.record;
    // What the run read, checked at commit: unchanged, or the call runs again.
    if (!rec.kv_reads.empty() || !rec.kv_lists.empty()) {
      const std::string& ns = contract.kv_prefix();
      for (const KvRead& kr : rec.kv_reads) it.kv_expects.push_back({ns + kr.key, kr.value});
      for (const KvList& kl : rec.kv_lists) {
        KvRangeExpect re;
        re.prefix = ns + kl.prefix;
        re.limit = kl.keys.size() >= kKvListKeysMax ? kl.keys.size() : kl.keys.size() + 1;
        for (const std::string& k : kl.keys) re.keys.push_back(ns + k);
        it.ranges.push_back(std::move(re));
      }
    }
    auto receipt = build_receipt(contract, call.inputs, out.call.values, rec, out.call.fuel_used);
    if (!receipt) {
      impl_->kv->release(it.staged);
      return receipt.status();
    }
    it.receipt = std::move(*receipt);
    it.receipt.intent_signer = call.intent_signer;
    if (call.trace_id) it.receipt.trace_id = *call.trace_id;
    else randombytes_buf(it.receipt.trace_id.data(), it.receipt.trace_id.size());

    {
      std::unique_lock<std::mutex> lock(impl_->mu);
      if (impl_->stopping) {
        impl_->kv->release(it.staged);
        return Status::precondition("the pipeline is closing");
      }
      Status s = impl_->sign_locked(it);
      if (!s) {
        impl_->kv->release(it.staged);
        return s;
      }
      it.enqueued_ns = now_ns();
      impl_->queue.push_back(&it);
      impl_->queue_cv.notify_one();
      it.done.wait(lock, [&] { return it.state != ItemState::kQueued; });
    }
    if (it.state == ItemState::kDone) return out;
    if (it.state == ItemState::kFailed) return it.status;
    // kConflict: a read changed under us; run again.
    if (attempt >= impl_->opts.max_attempts)
      return Status::precondition("kv state kept changing under the call: gave up after " + std::to_string(attempt) +
                                  " runs");
    // Back off with jitter, growing: calls of several executors contending for one kv
    // row then take turns instead of invalidating each other's batches every round.
    const uint32_t cap_us = 100u << std::min(attempt, 8);  // 0.2 ms .. 25.6 ms
    std::this_thread::sleep_for(std::chrono::microseconds(randombytes_uniform(cap_us) + 50));
  }
}

Result<std::string> Pipeline::maybe_checkpoint(uint64_t every, bool force) {
  std::lock_guard<std::mutex> lock(impl_->checkpoint_mu);
  auto n = impl_->ledger->journal_count();
  if (!n) return n.status();
  if (*n == 0) return std::string();
  if (!force && (every == 0 || *n < impl_->last_checkpoint_size + every)) return std::string();
  if (*n == impl_->last_checkpoint_size) return std::string();
  uint64_t size = 0;
  auto path = cut_checkpoint(*impl_->ledger, impl_->keys->active(), impl_->opts.origin, checkpoint_dir(), &size);
  if (!path) return path.status();
  impl_->last_checkpoint_size = size;
  return *path;
}

// ---------------------------------------------------------------------------

Result<ChainReport> verify_chains(Ledger& ledger) {
  ChainReport rep;
  std::map<std::string, Hash32> last;  // kid -> last receipt id
  std::map<std::pair<std::string, Hash32>, uint64_t> prev_seen;
  std::set<std::array<uint8_t, 16>> id_prefixes;
  Status st = ledger.journal_for_each(1, [&](const JournalRow& row) {
    std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(row.entry.data()), row.entry.size());
    std::array<uint8_t, 16> p;
    std::memcpy(p.data(), row.key.data(), 16);
    id_prefixes.insert(p);
    if (!row.entry.empty() && row.entry[0] == '{') return true;  // a service record (activation), not a receipt
    auto r = decode_receipt(bytes);
    if (!r) {
      rep.problems.push_back("journal seq " + std::to_string(row.seq) + ": not a receipt: " + r.status().message());
      return true;
    }
    rep.receipts++;
    const std::string kid = to_hex(r->executor_kid);
    rep.chains[kid]++;
    auto [it, fresh] = prev_seen.emplace(std::make_pair(kid, r->prev_receipt_hash), row.seq);
    if (!fresh) {
      rep.problems.push_back("journal seq " + std::to_string(row.seq) + ": executor " + kid +
                             " chain forks: the previous-receipt hash " + to_hex(r->prev_receipt_hash) +
                             " was already used at seq " + std::to_string(it->second));
    }
    const Hash32 expected = last.count(kid) ? last[kid] : Hash32{};
    if (r->prev_receipt_hash != expected && fresh) {
      rep.problems.push_back("journal seq " + std::to_string(row.seq) + ": executor " + kid +
                             " chain breaks: previous-receipt hash " + to_hex(r->prev_receipt_hash) + ", expected " +
                             to_hex(expected));
    }
    last[kid] = row.key;
    return true;
  });
  if (!st) return st;
  auto transfers = ledger.all_transfers();
  if (!transfers) return transfers.status();
  for (const Transfer& t : *transfers) {
    // Holds the pipeline made: escrow ledger, agent code, user_data = the hold id.
    if (!(t.flags & kTransferPending) || t.ledger != kEscrowLedgerId || t.code != kAgentAccountCode ||
        t.user_data != t.id)
      continue;
    auto b = t.id.bytes();
    std::array<uint8_t, 16> p;
    std::memcpy(p.data(), b.data(), 16);
    if (!id_prefixes.count(p)) rep.problems.push_back("hold " + t.id.hex() + " has no receipt in the journal");
  }
  return rep;
}

}  // namespace covenant::settle
