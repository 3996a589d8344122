// The ledger state machine and its group committer.
//
// Submitters queue requests; one committer thread drains the queue into a batch, opens one
// storage transaction, applies every operation in order (validate -> prepare -> commit, each
// against the batch's working set), writes the touched rows once, commits, and only then
// wakes the submitters. Invariant: a reply is delivered only after its batch is durable.
// If a batch fails with kCorruption, its requests are retried one by one so a damaged row
// refuses only the requests that touch it.
#include <algorithm>
#include <bit>
#include <cassert>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "covenant/ledger.h"
#include "ledger/record.h"
#include "ledger/storage_internal.h"

namespace covenant {

using ledger_internal::decode_account;
using ledger_internal::decode_transfer;
using ledger_internal::encode_account;
using ledger_internal::encode_transfer;
using ledger_internal::hold_deadline_ns;

const char* ledger_result_name(LedgerResult result) {
  switch (result) {
#define COVENANT_LEDGER_RESULT_NAME(name, number) \
  case LedgerResult::name: return #name;
    COVENANT_LEDGER_RESULTS(COVENANT_LEDGER_RESULT_NAME)
#undef COVENANT_LEDGER_RESULT_NAME
  }
  return "unknown";
}

bool ledger_result_is_success(LedgerResult r) {
  return r == LedgerResult::ok || r == LedgerResult::exists || r == LedgerResult::account_exists ||
         r == LedgerResult::journal_exists;
}

const char* hold_state_name(HoldState state) {
  switch (state) {
    case HoldState::kNone: return "none";
    case HoldState::kPending: return "pending";
    case HoldState::kPosted: return "posted";
    case HoldState::kVoided: return "voided";
    case HoldState::kExpired: return "expired";
  }
  return "unknown";
}

Result<LedgerReply> Ledger::create_account(const Account& account) {
  LedgerOperation op = account;
  auto r = submit({&op, 1});
  if (!r.is_ok()) return r.status();
  return r->front();
}

Result<LedgerReply> Ledger::create_transfer(const Transfer& transfer) {
  LedgerOperation op = transfer;
  auto r = submit({&op, 1});
  if (!r.is_ok()) return r.status();
  return r->front();
}

Result<LedgerReply> Ledger::append(const Hash32& key, std::string entry) {
  LedgerOperation op = JournalAppend{key, std::move(entry)};
  auto r = submit({&op, 1});
  if (!r.is_ok()) return r.status();
  return r->front();
}

Result<LedgerReply> Ledger::expire_holds(size_t limit) {
  LedgerOperation op = ExpireHolds{limit};
  auto r = submit({&op, 1});
  if (!r.is_ok()) return r.status();
  return r->front();
}

namespace {

std::string encode_journal_head(const JournalRow& r) {
  std::string v(8 + r.chain.size(), '\0');
  for (int i = 0; i < 8; ++i) v[static_cast<size_t>(i)] = static_cast<char>(r.seq >> (56 - 8 * i));
  std::memcpy(v.data() + 8, r.chain.data(), r.chain.size());
  return v;
}

// Compares the journal with its high-water mark row (absent in ledgers written
// before it existed: nothing to compare until the next append writes it).
Status check_journal_head(Storage& storage, uint64_t count, std::vector<std::string>* problems) {
  // Other processes may be appending: the row count and the head row are two
  // reads, so take them again until no commit fell between them (the head row
  // and its rows commit together). A writer that never pauses: no verdict.
  std::optional<std::string> head_row;
  bool stable = false;
  for (int attempt = 0; attempt < 20 && !stable; ++attempt) {
    auto head = storage.kv_get(std::string(kJournalHeadKvKey));
    if (!head.is_ok()) return head.status();
    auto after = storage.journal_count();
    if (!after.is_ok()) return after.status();
    if (*after == count) {
      head_row = *head;
      stable = true;
    } else {
      count = *after;
    }
  }
  if (!stable || !head_row) return Status::ok();
  const std::string& v = *head_row;
  if (v.size() != 40) {
    problems->push_back("journal head row: " + std::to_string(v.size()) + " bytes, expected 40");
    return Status::ok();
  }
  uint64_t seq = 0;
  for (int i = 0; i < 8; ++i) seq = (seq << 8) | static_cast<uint8_t>(v[static_cast<size_t>(i)]);
  if (count < seq) {
    problems->push_back("journal: entries " + std::to_string(count + 1) + ".." + std::to_string(seq) +
                        " are missing (the ledger committed " + std::to_string(seq) + " entries; " +
                        std::to_string(count) + " remain: the tail was cut)");
    return Status::ok();
  }
  if (count > seq) {
    problems->push_back("journal: entries " + std::to_string(seq + 1) + ".." + std::to_string(count) +
                        " were not written by the ledger (its head row says " + std::to_string(seq) + ")");
  }
  if (seq == 0) return Status::ok();
  auto row = storage.journal_scan(seq, 1);
  if (!row.is_ok()) return row.status();
  if (row->empty() || row->front().seq != seq) {
    problems->push_back("journal: row seq=" + std::to_string(seq) + " (the committed head) is missing");
  } else if (std::memcmp(row->front().chain.data(), v.data() + 8, 32) != 0) {
    problems->push_back("journal: row seq=" + std::to_string(seq) +
                        " does not chain to the committed head (the journal was rewritten)");
  }
  return Status::ok();
}

constexpr uint16_t kResolvingFlags =
    kTransferPostPending | kTransferVoidPending | kTransferDisputePending | kTransferResolvePending;

bool add_overflows(uint64_t a, uint64_t b) { return a + b < a; }

// The rows one batch reads and writes. Reads go to the transaction once; writes are
// flushed once at the end, so a hot account touched by 1,000 transfers is written once.
class Batch {
 public:
  explicit Batch(StorageTxn& txn) : txn_(txn) {}

  Result<Account*> account(const Id128& id) {
    auto it = accounts_.find(id);
    if (it == accounts_.end()) {
      Id128Bytes key = id.bytes();
      auto rec = txn_.get(Table::kAccounts, key);
      if (!rec.is_ok()) return rec.status();
      std::optional<Account> a;
      if (rec.value()) {
        auto d = decode_account(key, *rec.value());
        if (!d.is_ok()) return d.status();
        a = std::move(d).value();
      }
      it = accounts_.emplace(id, std::move(a)).first;
    }
    remember_account(id);
    return it->second ? &*it->second : nullptr;
  }

  Result<Transfer*> transfer(const Id128& id) {
    auto it = transfers_.find(id);
    if (it == transfers_.end()) {
      Id128Bytes key = id.bytes();
      auto rec = txn_.get(Table::kTransfers, key);
      if (!rec.is_ok()) return rec.status();
      std::optional<Transfer> t;
      if (rec.value()) {
        auto d = decode_transfer(key, *rec.value());
        if (!d.is_ok()) return d.status();
        t = std::move(d).value();
      }
      it = transfers_.emplace(id, std::move(t)).first;
    }
    remember_transfer(id);
    return it->second ? &*it->second : nullptr;
  }

  // Loads every row the operations name, in as few round trips as the backend allows.
  Status prefetch(const std::vector<const LedgerOperation*>& ops) {
    std::vector<Id128> account_ids, transfer_ids;
    std::vector<Hash32> keys;
    std::vector<std::string> kv_keys;
    auto add_transfer = [&](const Transfer& t) {
      transfer_ids.push_back(t.id);
      if (!t.pending_id.is_zero()) transfer_ids.push_back(t.pending_id);
      if (!t.debit_account_id.is_zero()) account_ids.push_back(t.debit_account_id);
      if (!t.credit_account_id.is_zero()) account_ids.push_back(t.credit_account_id);
    };
    for (const LedgerOperation* op : ops) {
      if (auto* a = std::get_if<Account>(op)) {
        account_ids.push_back(a->id);
      } else if (auto* t = std::get_if<Transfer>(op)) {
        add_transfer(*t);
      } else if (auto* j = std::get_if<JournalAppend>(op)) {
        keys.push_back(j->key);
      } else if (auto* at = std::get_if<Atomic>(op)) {
        for (const KvExpect& e : at->expects)
          if (!e.key.empty() && e.key.size() <= kKvRowKeyBytesMax) kv_keys.push_back(e.key);
        for (const JournalAppend& ja : at->journal) keys.push_back(ja.key);
        for (const Account& aa : at->accounts) account_ids.push_back(aa.id);
        for (const Transfer& tt : at->transfers) add_transfer(tt);
      }
    }
    COVENANT_RETURN_IF_ERROR(prefetch_records(Table::kAccounts, account_ids, accounts_, decode_account));
    COVENANT_RETURN_IF_ERROR(prefetch_records(Table::kTransfers, transfer_ids, transfers_, decode_transfer));
    COVENANT_RETURN_IF_ERROR(prefetch_kv(std::move(kv_keys)));
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    std::erase_if(keys, [&](const Hash32& k) { return known_keys_.count(k) > 0; });
    if (keys.empty()) return Status::ok();
    auto rows = txn_.journal_by_keys(keys);
    if (!rows.is_ok()) return rows.status();
    for (size_t i = 0; i < keys.size(); ++i) known_keys_[keys[i]] = std::move((*rows)[i]);
    return Status::ok();
  }

  template <class T, class Decode>
  Status prefetch_records(Table table, std::vector<Id128> ids, std::map<Id128, std::optional<T>>& cache,
                          Decode decode) {
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    std::erase_if(ids, [&](const Id128& id) { return cache.count(id) > 0; });
    if (ids.empty()) return Status::ok();
    std::vector<Id128Bytes> keys;
    keys.reserve(ids.size());
    for (const Id128& id : ids) keys.push_back(id.bytes());
    auto recs = txn_.get_many(table, keys);
    if (!recs.is_ok()) return recs.status();
    if (recs->size() != ids.size()) return Status::internal("get_many answered the wrong number of ids");
    for (size_t i = 0; i < ids.size(); ++i) {
      std::optional<T> v;
      if ((*recs)[i]) {
        auto d = decode(keys[i], *(*recs)[i]);
        if (!d.is_ok()) return d.status();
        v = std::move(d).value();
      }
      cache.emplace(ids[i], std::move(v));
    }
    return Status::ok();
  }

  Status prefetch_kv(std::vector<std::string> keys) {
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    std::erase_if(keys, [&](const std::string& k) { return kv_.count(k) > 0 || kv_known_.count(k) > 0; });
    if (keys.empty()) return Status::ok();
    auto values = txn_.kv_get_many(keys);
    if (!values.is_ok()) return values.status();
    if (values->size() != keys.size()) return Status::internal("kv_get_many answered the wrong number of keys");
    for (size_t i = 0; i < keys.size(); ++i) kv_known_.emplace(std::move(keys[i]), std::move((*values)[i]));
    return Status::ok();
  }

  void put_account(const Account& a) {
    remember_account(a.id);
    accounts_[a.id] = a;
    dirty_accounts_.insert(a.id);
  }
  void put_transfer(const Transfer& t) {
    remember_transfer(t.id);
    transfers_[t.id] = t;
    dirty_transfers_.insert(t.id);
  }

  // ---- kv rows: the batch's view is its staged puts over the transaction ----

  Result<std::optional<std::string>> kv_get(const std::string& key) {
    if (auto it = kv_.find(key); it != kv_.end()) return it->second;
    if (auto it = kv_known_.find(key); it != kv_known_.end()) return it->second;
    auto v = txn_.kv_get(key);
    if (!v.is_ok()) return v.status();
    kv_known_.emplace(key, *v);
    return v;
  }

  // The first `limit` keys starting with prefix, in byte order, as this batch sees them.
  Result<std::vector<std::string>> kv_scan_keys(const std::string& prefix, size_t limit) {
    std::vector<std::string> out;
    if (limit == 0) return out;
    // Each staged delete can hide one stored row: read that many more.
    size_t deletes = 0;
    for (auto it = kv_.lower_bound(prefix); it != kv_.end() && it->first.starts_with(prefix); ++it)
      deletes += it->second ? 0 : 1;
    const size_t want = limit > SIZE_MAX - deletes ? SIZE_MAX : limit + deletes;
    auto rows = txn_.kv_scan(prefix, want);
    if (!rows.is_ok()) return rows.status();
    std::set<std::string> keys;
    for (auto& row : *rows) keys.insert(std::move(row.first));
    for (auto it = kv_.lower_bound(prefix); it != kv_.end() && it->first.starts_with(prefix); ++it) {
      if (it->second) keys.insert(it->first);
      else keys.erase(it->first);
    }
    for (auto it = keys.begin(); it != keys.end() && out.size() < limit; ++it) out.push_back(*it);
    return out;
  }

  void kv_put(const std::string& key, const std::optional<std::string>& value) {
    if (undo_ && !undo_->kv.count(key)) {
      auto it = kv_.find(key);
      undo_->kv.emplace(key, it == kv_.end() ? std::nullopt : std::optional<std::optional<std::string>>(it->second));
    }
    kv_[key] = value;
  }

  // ---- undo log: an Atomic operation is applied whole or not at all ----

  // From now on every change to the working set is recorded, until commit_undo()/rollback().
  void begin_undo() { undo_.emplace(); }
  void commit_undo() { undo_.reset(); }
  void rollback() {
    if (!undo_) return;
    Undo& u = *undo_;
    for (auto& [id, pre] : u.accounts) {
      if (pre.cached) accounts_[id] = std::move(pre.value);
      else accounts_.erase(id);
      if (!pre.dirty) dirty_accounts_.erase(id);
    }
    for (auto& [id, pre] : u.transfers) {
      if (pre.cached) transfers_[id] = std::move(pre.value);
      else transfers_.erase(id);
      if (!pre.dirty) dirty_transfers_.erase(id);
    }
    if (u.journal_saved) {
      for (size_t i = u.appended; i < appended_.size(); ++i) appended_keys_.erase(appended_[i].key);
      appended_.resize(u.appended);
      tail_ = std::move(u.tail);
    }
    for (auto& [key, pre] : u.kv) {
      if (pre) kv_[key] = std::move(*pre);
      else kv_.erase(key);
    }
    undo_.reset();
  }
  void mark_account(const Id128& id) { dirty_accounts_.insert(id); }
  void mark_transfer(const Id128& id) { dirty_transfers_.insert(id); }

  // The journal tail, loaded once per batch and checked before it is extended.
  Result<JournalRow*> journal_tail() {
    if (!tail_loaded_) {
      auto last = txn_.journal_last();
      if (!last.is_ok()) return last.status();
      if (last.value()) {
        tail_ = *last.value();
        if (sha256(tail_.entry) != tail_.entry_hash)
          return Status::corruption("journal row seq=" + std::to_string(tail_.seq) + ": entry checksum mismatch");
      }
      tail_loaded_ = true;
    }
    return &tail_;
  }

  Result<std::optional<JournalRow>> journal_by_key(const Hash32& key) {
    if (auto it = appended_keys_.find(key); it != appended_keys_.end())
      return std::optional<JournalRow>(appended_[it->second]);
    if (auto it = known_keys_.find(key); it != known_keys_.end()) return it->second;
    return txn_.journal_by_key(key);
  }

  void journal_append(JournalRow row) {
    if (undo_ && !undo_->journal_saved) {
      undo_->journal_saved = true;
      undo_->appended = appended_.size();
      undo_->tail = tail_;
    }
    appended_keys_[row.key] = appended_.size();
    tail_ = row;
    appended_.push_back(std::move(row));
  }

  StorageTxn& txn() { return txn_; }

  Status flush() {
    for (const Id128& id : dirty_accounts_) {
      const Account& a = *accounts_.at(id);
      COVENANT_RETURN_IF_ERROR(txn_.put(Table::kAccounts, id.bytes(), encode_account(a), std::nullopt));
    }
    for (const Id128& id : dirty_transfers_) {
      const Transfer& t = *transfers_.at(id);
      std::optional<uint64_t> deadline;
      if (t.hold_state == HoldState::kPending && !t.disputed && t.timeout_s != 0) deadline = hold_deadline_ns(t);
      COVENANT_RETURN_IF_ERROR(txn_.put(Table::kTransfers, id.bytes(), encode_transfer(t), deadline));
    }
    for (const JournalRow& r : appended_) COVENANT_RETURN_IF_ERROR(txn_.journal_append(r));
    for (const auto& [key, value] : kv_) COVENANT_RETURN_IF_ERROR(txn_.kv_put(key, value));
    if (!appended_.empty()) {
      COVENANT_RETURN_IF_ERROR(txn_.kv_put(std::string(kJournalHeadKvKey), encode_journal_head(appended_.back())));
    }
    return Status::ok();
  }

 private:
  template <class T>
  struct PreImage {
    bool cached = false;     // in the working set at all
    std::optional<T> value;  // as it was before the Atomic operation touched it
    bool dirty = false;
  };
  struct Undo {
    std::map<Id128, PreImage<Account>> accounts;
    std::map<Id128, PreImage<Transfer>> transfers;
    bool journal_saved = false;
    size_t appended = 0;
    JournalRow tail;
    std::map<std::string, std::optional<std::optional<std::string>>> kv;  // outer nullopt: was not staged
  };

  // Called whenever a row is handed out or replaced, before the caller can change it.
  void remember_account(const Id128& id) {
    if (!undo_ || undo_->accounts.count(id)) return;
    auto it = accounts_.find(id);
    const bool cached = it != accounts_.end();
    undo_->accounts.emplace(id, PreImage<Account>{cached, cached ? it->second : std::nullopt,
                                                  dirty_accounts_.count(id) > 0});
  }
  void remember_transfer(const Id128& id) {
    if (!undo_ || undo_->transfers.count(id)) return;
    auto it = transfers_.find(id);
    const bool cached = it != transfers_.end();
    undo_->transfers.emplace(id, PreImage<Transfer>{cached, cached ? it->second : std::nullopt,
                                                    dirty_transfers_.count(id) > 0});
  }

  StorageTxn& txn_;
  std::map<Id128, std::optional<Account>> accounts_;
  std::map<Id128, std::optional<Transfer>> transfers_;
  std::set<Id128> dirty_accounts_;
  std::set<Id128> dirty_transfers_;
  bool tail_loaded_ = false;
  JournalRow tail_;  // seq 0 and a zero chain when the journal is empty
  std::vector<JournalRow> appended_;
  std::map<Hash32, size_t> appended_keys_;
  std::map<Hash32, std::optional<JournalRow>> known_keys_;  // prefetched, as committed
  std::map<std::string, std::optional<std::string>> kv_;        // staged puts (nullopt: delete)
  std::map<std::string, std::optional<std::string>> kv_known_;  // read from the transaction
  std::optional<Undo> undo_;                                    // while an Atomic is applied
};

// ---- validate: stateless checks, in the order of their codes ----

LedgerResult validate_account(const Account& a) {
  if (a.id.is_zero()) return LedgerResult::id_must_not_be_zero;
  if (a.id.is_max()) return LedgerResult::id_must_not_be_int_max;
  if ((a.flags & kAccountDebitsMustNotExceedCredits) && (a.flags & kAccountCreditsMustNotExceedDebits))
    return LedgerResult::flags_are_mutually_exclusive;
  if (a.flags & ~kAccountFlagsKnown) return LedgerResult::reserved_flag;
  if (a.ledger == 0) return LedgerResult::ledger_must_not_be_zero;
  if (a.code == 0) return LedgerResult::code_must_not_be_zero;
  if (a.debits_pending || a.debits_posted || a.credits_pending || a.credits_posted)
    return LedgerResult::balances_must_be_zero;
  return LedgerResult::ok;
}

LedgerResult validate_transfer(const Transfer& t) {
  if (t.id.is_zero()) return LedgerResult::id_must_not_be_zero;
  if (t.id.is_max()) return LedgerResult::id_must_not_be_int_max;
  if (std::popcount(static_cast<unsigned>(t.flags & kTransferFlagsKnown)) > 1)
    return LedgerResult::flags_are_mutually_exclusive;
  if (t.flags & ~kTransferFlagsKnown) return LedgerResult::reserved_flag;
  const bool resolving = (t.flags & kResolvingFlags) != 0;
  if (!resolving) {
    if (t.ledger == 0) return LedgerResult::ledger_must_not_be_zero;
    if (t.code == 0) return LedgerResult::code_must_not_be_zero;
    if (!t.pending_id.is_zero()) return LedgerResult::pending_id_must_be_zero;
  } else {
    if (t.pending_id.is_zero()) return LedgerResult::pending_id_must_not_be_zero;
    if (t.pending_id == t.id) return LedgerResult::pending_id_must_be_different;
  }
  if (t.timeout_s != 0 && !(t.flags & kTransferPending)) return LedgerResult::timeout_reserved_for_pending_transfer;
  if (!resolving) {
    if (t.debit_account_id.is_zero()) return LedgerResult::debit_account_id_must_not_be_zero;
    if (t.credit_account_id.is_zero()) return LedgerResult::credit_account_id_must_not_be_zero;
    if (t.debit_account_id == t.credit_account_id) return LedgerResult::accounts_must_be_different;
    if (t.amount == 0) return LedgerResult::amount_must_not_be_zero;
  } else if (!t.debit_account_id.is_zero() && t.debit_account_id == t.credit_account_id) {
    return LedgerResult::accounts_must_be_different;
  }
  if ((t.flags & (kTransferDisputePending | kTransferResolvePending)) && t.amount != 0)
    return LedgerResult::amount_must_be_zero;
  return LedgerResult::ok;
}

// ---- prepare: compare a replay with what is stored ----

LedgerResult compare_existing_account(const Account& a, const Account& e) {
  if (a.flags != e.flags) return LedgerResult::account_exists_with_different_flags;
  if (a.ledger != e.ledger) return LedgerResult::account_exists_with_different_ledger;
  if (a.code != e.code) return LedgerResult::account_exists_with_different_code;
  if (a.user_data != e.user_data) return LedgerResult::account_exists_with_different_user_data;
  return LedgerResult::account_exists;
}

// For post/void/dispute/resolve a zero field means "the hold's", so it matches what is stored.
LedgerResult compare_existing_transfer(const Transfer& t, const Transfer& e) {
  const bool resolving = (t.flags & kResolvingFlags) != 0;
  auto same_id = [&](const Id128& in, const Id128& stored) { return (resolving && in.is_zero()) || in == stored; };
  if (t.flags != e.flags) return LedgerResult::exists_with_different_flags;
  if (t.pending_id != e.pending_id) return LedgerResult::exists_with_different_pending_id;
  if (!same_id(t.debit_account_id, e.debit_account_id)) return LedgerResult::exists_with_different_debit_account_id;
  if (!same_id(t.credit_account_id, e.credit_account_id)) return LedgerResult::exists_with_different_credit_account_id;
  if (!(resolving && t.amount == 0) && t.amount != e.amount) return LedgerResult::exists_with_different_amount;
  if (t.timeout_s != e.timeout_s) return LedgerResult::exists_with_different_timeout;
  if (!(resolving && t.ledger == 0) && t.ledger != e.ledger) return LedgerResult::exists_with_different_ledger;
  if (!(resolving && t.code == 0) && t.code != e.code) return LedgerResult::exists_with_different_code;
  if (t.user_data != e.user_data) return LedgerResult::exists_with_different_user_data;
  return LedgerResult::exists;
}

// ---- the state machine ----

Result<LedgerResult> apply_account(Batch& b, const Account& in, uint64_t ts, LedgerReply* reply) {
  LedgerResult v = validate_account(in);
  if (v != LedgerResult::ok) return v;
  auto existing = b.account(in.id);
  if (!existing.is_ok()) return existing.status();
  if (*existing) {
    reply->timestamp_ns = (*existing)->timestamp_ns;
    return compare_existing_account(in, **existing);
  }
  Account a = in;
  a.timestamp_ns = ts;
  b.put_account(a);
  reply->timestamp_ns = ts;
  return LedgerResult::ok;
}

Result<LedgerResult> apply_plain_or_hold(Batch& b, const Transfer& in, uint64_t ts) {
  auto dr_r = b.account(in.debit_account_id);
  if (!dr_r.is_ok()) return dr_r.status();
  if (!*dr_r) return LedgerResult::debit_account_not_found;
  auto cr_r = b.account(in.credit_account_id);
  if (!cr_r.is_ok()) return cr_r.status();
  if (!*cr_r) return LedgerResult::credit_account_not_found;
  Account& dr = **dr_r;
  Account& cr = **cr_r;
  if (dr.ledger != cr.ledger) return LedgerResult::accounts_must_have_the_same_ledger;
  if (in.ledger != dr.ledger) return LedgerResult::transfer_must_have_the_same_ledger_as_accounts;

  const bool hold = (in.flags & kTransferPending) != 0;
  const uint64_t a = in.amount;
  if (hold) {
    if (add_overflows(dr.debits_pending, a)) return LedgerResult::overflows_debits_pending;
    if (add_overflows(cr.credits_pending, a)) return LedgerResult::overflows_credits_pending;
  } else {
    if (add_overflows(dr.debits_posted, a)) return LedgerResult::overflows_debits_posted;
    if (add_overflows(cr.credits_posted, a)) return LedgerResult::overflows_credits_posted;
  }
  if (hold && in.timeout_s != 0 &&
      static_cast<unsigned __int128>(ts) + static_cast<unsigned __int128>(in.timeout_s) * 1'000'000'000u > ~0ull)
    return LedgerResult::overflows_timeout;
  using u128 = unsigned __int128;
  if ((dr.flags & kAccountDebitsMustNotExceedCredits) &&
      u128(dr.debits_pending) + dr.debits_posted + a > u128(dr.credits_posted))
    return LedgerResult::exceeds_credits;
  if ((cr.flags & kAccountCreditsMustNotExceedDebits) &&
      u128(cr.credits_pending) + cr.credits_posted + a > u128(cr.debits_posted))
    return LedgerResult::exceeds_debits;

  // commit
  if (hold) {
    dr.debits_pending += a;
    cr.credits_pending += a;
  } else {
    dr.debits_posted += a;
    cr.credits_posted += a;
  }
  b.mark_account(dr.id);
  b.mark_account(cr.id);
  Transfer t = in;
  t.timestamp_ns = ts;
  t.hold_state = hold ? HoldState::kPending : HoldState::kNone;
  t.disputed = false;
  b.put_transfer(t);
  return LedgerResult::ok;
}

Result<LedgerResult> apply_resolving(Batch& b, const Transfer& in, uint64_t ts) {
  auto p_r = b.transfer(in.pending_id);
  if (!p_r.is_ok()) return p_r.status();
  if (!*p_r) return LedgerResult::pending_transfer_not_found;
  Transfer& p = **p_r;
  if (!(p.flags & kTransferPending)) return LedgerResult::pending_transfer_not_pending;
  if (!in.debit_account_id.is_zero() && in.debit_account_id != p.debit_account_id)
    return LedgerResult::pending_transfer_has_different_debit_account_id;
  if (!in.credit_account_id.is_zero() && in.credit_account_id != p.credit_account_id)
    return LedgerResult::pending_transfer_has_different_credit_account_id;
  if (in.ledger != 0 && in.ledger != p.ledger) return LedgerResult::pending_transfer_has_different_ledger;
  if (in.code != 0 && in.code != p.code) return LedgerResult::pending_transfer_has_different_code;
  const bool post = in.flags & kTransferPostPending;
  const bool void_ = in.flags & kTransferVoidPending;
  const bool dispute = in.flags & kTransferDisputePending;
  const bool resolve = in.flags & kTransferResolvePending;
  if (post && in.amount > p.amount) return LedgerResult::exceeds_pending_transfer_amount;
  if (void_ && in.amount != 0 && in.amount != p.amount) return LedgerResult::pending_transfer_has_different_amount;
  if (p.hold_state == HoldState::kPosted) return LedgerResult::pending_transfer_already_posted;
  if (p.hold_state == HoldState::kVoided) return LedgerResult::pending_transfer_already_voided;
  if (!resolve && p.disputed) return LedgerResult::pending_transfer_disputed;
  const uint64_t deadline = hold_deadline_ns(p);
  if (p.hold_state == HoldState::kExpired || (!p.disputed && deadline != 0 && ts >= deadline))
    return LedgerResult::pending_transfer_expired;
  if (resolve && !p.disputed) return LedgerResult::pending_transfer_not_disputed;
  assert(p.hold_state == HoldState::kPending);

  auto dr_r = b.account(p.debit_account_id);
  if (!dr_r.is_ok()) return dr_r.status();
  auto cr_r = b.account(p.credit_account_id);
  if (!cr_r.is_ok()) return cr_r.status();
  if (!*dr_r || !*cr_r)
    return Status::corruption("transfers row id=" + p.id.hex() + ": a live hold names an account that does not exist");
  Account& dr = **dr_r;
  Account& cr = **cr_r;
  if (dr.debits_pending < p.amount || cr.credits_pending < p.amount)
    return Status::corruption("accounts rows " + dr.id.hex() + "/" + cr.id.hex() + ": pending balance below hold " +
                              p.id.hex());
  const uint64_t posted = post ? (in.amount ? in.amount : p.amount) : 0;
  if (post) {
    if (add_overflows(dr.debits_posted, posted)) return LedgerResult::overflows_debits_posted;
    if (add_overflows(cr.credits_posted, posted)) return LedgerResult::overflows_credits_posted;
  }

  // commit
  Transfer t = in;
  t.debit_account_id = p.debit_account_id;
  t.credit_account_id = p.credit_account_id;
  t.ledger = p.ledger;
  t.code = in.code ? in.code : p.code;
  t.amount = post ? posted : void_ ? p.amount : 0;
  t.timestamp_ns = ts;
  t.hold_state = HoldState::kNone;
  t.disputed = false;
  if (post || void_) {
    dr.debits_pending -= p.amount;
    cr.credits_pending -= p.amount;
    dr.debits_posted += posted;
    cr.credits_posted += posted;
    b.mark_account(dr.id);
    b.mark_account(cr.id);
    p.hold_state = post ? HoldState::kPosted : HoldState::kVoided;
  } else {
    p.disputed = dispute;
  }
  b.mark_transfer(p.id);
  b.put_transfer(t);
  return LedgerResult::ok;
}

Result<LedgerResult> apply_transfer(Batch& b, const Transfer& in, uint64_t ts, LedgerReply* reply) {
  LedgerResult v = validate_transfer(in);
  if (v != LedgerResult::ok) return v;
  auto existing = b.transfer(in.id);
  if (!existing.is_ok()) return existing.status();
  if (*existing) {
    reply->timestamp_ns = (*existing)->timestamp_ns;
    return compare_existing_transfer(in, **existing);
  }
  auto r = (in.flags & kResolvingFlags) ? apply_resolving(b, in, ts) : apply_plain_or_hold(b, in, ts);
  if (r.is_ok() && r.value() == LedgerResult::ok) reply->timestamp_ns = ts;
  return r;
}

Result<LedgerResult> apply_journal(Batch& b, const JournalAppend& in, uint64_t ts, LedgerReply* reply) {
  if (in.key == Hash32{}) return LedgerResult::journal_key_must_not_be_zero;
  if (in.entry.empty()) return LedgerResult::journal_entry_must_not_be_empty;
  if (in.entry.size() > kJournalEntrySizeBytesMax) return LedgerResult::journal_entry_too_large;
  auto existing = b.journal_by_key(in.key);
  if (!existing.is_ok()) return existing.status();
  if (existing.value()) {
    reply->journal_seq = existing.value()->seq;
    return existing.value()->entry == in.entry ? LedgerResult::journal_exists
                                                : LedgerResult::journal_exists_with_different_entry;
  }
  auto tail = b.journal_tail();
  if (!tail.is_ok()) return tail.status();
  JournalRow row;
  row.seq = (*tail)->seq + 1;
  row.key = in.key;
  row.entry = in.entry;
  row.entry_hash = sha256(in.entry);
  row.chain = journal_chain_next((*tail)->chain, row.seq, row.key, row.entry_hash);
  reply->journal_seq = row.seq;
  reply->timestamp_ns = ts;
  b.journal_append(std::move(row));
  return LedgerResult::ok;
}

Result<LedgerResult> apply_expire(Batch& b, const ExpireHolds& in, uint64_t ts, LedgerReply* reply) {
  auto due = b.txn().due_holds(ts, in.limit);
  if (!due.is_ok()) return due.status();
  for (const Id128Bytes& key : *due) {
    auto p_r = b.transfer(Id128::from_bytes(key));
    if (!p_r.is_ok()) return p_r.status();
    Transfer* p = *p_r;
    // The index is a hint: this batch may already have posted or voided the hold.
    if (!p || p->hold_state != HoldState::kPending || p->disputed) continue;
    const uint64_t deadline = hold_deadline_ns(*p);
    if (deadline == 0 || deadline > ts) continue;
    auto dr_r = b.account(p->debit_account_id);
    if (!dr_r.is_ok()) return dr_r.status();
    auto cr_r = b.account(p->credit_account_id);
    if (!cr_r.is_ok()) return cr_r.status();
    if (!*dr_r || !*cr_r || (*dr_r)->debits_pending < p->amount || (*cr_r)->credits_pending < p->amount)
      return Status::corruption("transfers row id=" + p->id.hex() + ": hold does not match its accounts' balances");
    (*dr_r)->debits_pending -= p->amount;
    (*cr_r)->credits_pending -= p->amount;
    b.mark_account(p->debit_account_id);
    b.mark_account(p->credit_account_id);
    p->hold_state = HoldState::kExpired;
    b.mark_transfer(p->id);
    ++reply->expired_count;
  }
  return LedgerResult::ok;
}

// ---- Atomic: expectations, then every part, all or nothing ----

LedgerResult validate_kv_key(const std::string& key) {
  if (key.empty()) return LedgerResult::kv_key_must_not_be_empty;
  if (key.size() > kKvRowKeyBytesMax) return LedgerResult::kv_key_too_large;
  return LedgerResult::ok;
}

LedgerResult validate_kv_value(const std::optional<std::string>& value) {
  return value && value->size() > kKvRowValueBytesMax ? LedgerResult::kv_value_too_large : LedgerResult::ok;
}

// Sizes first, so nothing is read for an operation that cannot apply. failed_index counts
// expects, then range_expects (only the prefix length is checked), then puts.
LedgerResult validate_atomic(const Atomic& in, uint32_t* failed_index) {
  uint32_t i = 0;
  for (const KvExpect& e : in.expects) {
    LedgerResult r = validate_kv_key(e.key);
    if (r == LedgerResult::ok) r = validate_kv_value(e.value);
    if (r != LedgerResult::ok) {
      *failed_index = i;
      return r;
    }
    ++i;
  }
  for (const KvRangeExpect& e : in.range_expects) {
    if (e.prefix.size() > kKvRowKeyBytesMax) {
      *failed_index = i;
      return LedgerResult::kv_key_too_large;
    }
    ++i;
  }
  for (const KvPut& p : in.puts) {
    LedgerResult r = validate_kv_key(p.key);
    if (r == LedgerResult::ok) r = validate_kv_value(p.value);
    if (r != LedgerResult::ok) {
      *failed_index = i;
      return r;
    }
    ++i;
  }
  return LedgerResult::ok;
}

// The puts, then each journal entry, account and transfer with the rules of the standalone
// operations; stops at the first refused part. `next_ts` hands out one timestamp per part
// (strictly increasing, as for standalone operations). The caller undoes a refusal.
template <class NextTs>
Result<LedgerResult> apply_atomic_parts(Batch& b, const Atomic& in, NextTs& next_ts, LedgerReply* reply) {
  uint32_t part = 0;
  auto refuse = [&](LedgerResult r) {
    reply->part_result = r;
    reply->failed_index = part;
    return LedgerResult::atomic_part_refused;
  };
  for (const KvPut& p : in.puts) b.kv_put(p.key, p.value);
  for (const JournalAppend& j : in.journal) {
    LedgerReply pr;
    auto r = apply_journal(b, j, next_ts(), &pr);
    if (!r.is_ok()) return r.status();
    if (!ledger_result_is_success(*r)) return refuse(*r);
    if (part == 0) reply->journal_seq = pr.journal_seq;
    ++part;
  }
  for (const Account& a : in.accounts) {
    LedgerReply pr;
    auto r = apply_account(b, a, next_ts(), &pr);
    if (!r.is_ok()) return r.status();
    if (!ledger_result_is_success(*r)) return refuse(*r);
    ++part;
  }
  for (const Transfer& t : in.transfers) {
    LedgerReply pr;
    auto r = apply_transfer(b, t, next_ts(), &pr);
    if (!r.is_ok()) return r.status();
    if (!ledger_result_is_success(*r)) return refuse(*r);
    ++part;
  }
  return LedgerResult::ok;
}

template <class NextTs>
Result<LedgerResult> apply_atomic(Batch& b, const Atomic& in, uint64_t ts, NextTs& next_ts, LedgerReply* reply) {
  LedgerResult v = validate_atomic(in, &reply->failed_index);
  if (v != LedgerResult::ok) return v;
  // Expectations, against the batch's view: committed rows under the puts of the operations
  // before this one. The transaction holds the store's exclusive write lock (SQLite file
  // lock, PostgreSQL advisory lock), so no writer in any process can change a row between
  // this check and the commit: a compare-and-set.
  uint32_t i = 0;
  for (const KvExpect& e : in.expects) {
    auto value = b.kv_get(e.key);
    if (!value.is_ok()) return value.status();
    if (*value != e.value) {
      reply->failed_index = i;
      return LedgerResult::kv_expectation_failed;
    }
    ++i;
  }
  for (const KvRangeExpect& e : in.range_expects) {
    auto keys = b.kv_scan_keys(e.prefix, e.limit);
    if (!keys.is_ok()) return keys.status();
    if (*keys != e.keys) {
      reply->failed_index = i;
      return LedgerResult::kv_expectation_failed;
    }
    ++i;
  }
  b.begin_undo();
  auto r = apply_atomic_parts(b, in, next_ts, reply);
  if (!r.is_ok() || *r != LedgerResult::ok) {
    b.rollback();
    reply->journal_seq = 0;
    return r;
  }
  b.commit_undo();
  reply->timestamp_ns = ts;
  return LedgerResult::ok;
}

class LedgerImpl final : public Ledger {
 public:
  LedgerImpl(std::unique_ptr<Storage> storage, LedgerOptions options)
      : storage_(std::move(storage)), options_(std::move(options)) {
    if (!options_.clock_ns) {
      options_.clock_ns = [] {
        return static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
                .count());
      };
    }
    committer_ = std::thread([this] { run_committer(); });
  }

  ~LedgerImpl() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    committer_.join();
  }

  Status check_on_open() {
    auto count = storage_->journal_count();
    if (!count.is_ok()) return count.status();
    if (!options_.check_journal_tail_on_open) return Status::ok();
    std::vector<std::string> problems;
    COVENANT_RETURN_IF_ERROR(check_journal_head(*storage_, *count, &problems));
    if (!problems.empty()) return Status::corruption(problems.front() + "; refusing to open");
    if (options_.verify_journal_on_open) return journal_for_each(1, [](const JournalRow&) { return true; });
    if (*count == 0) return Status::ok();
    auto last = journal_at(*count);  // verifies the tail against its predecessor
    if (!last.is_ok()) return last.status();
    if (!last.value()) return Status::corruption("journal: " + std::to_string(*count) + " rows but no row seq=" +
                                                 std::to_string(*count) + " (a gap)");
    return Status::ok();
  }

  Result<std::vector<LedgerReply>> submit(std::span<const LedgerOperation> operations) override {
    std::vector<LedgerReply> replies(operations.size());
    if (operations.empty()) return replies;
    Request req{operations, &replies};
    {
      std::unique_lock lock(mu_);
      queue_.push_back(&req);
      work_cv_.notify_one();
      req.done_cv.wait(lock, [&] { return req.done; });
    }
    if (!req.status.is_ok()) return req.status;
    return replies;
  }

  Result<std::optional<Account>> lookup_account(const Id128& id) override {
    auto rec = storage_->get(Table::kAccounts, id.bytes());
    if (!rec.is_ok()) return rec.status();
    if (!rec.value()) return std::optional<Account>();
    auto a = decode_account(id.bytes(), *rec.value());
    if (!a.is_ok()) return a.status();
    return std::optional<Account>(std::move(a).value());
  }

  Result<std::optional<Transfer>> lookup_transfer(const Id128& id) override {
    auto rec = storage_->get(Table::kTransfers, id.bytes());
    if (!rec.is_ok()) return rec.status();
    if (!rec.value()) return std::optional<Transfer>();
    auto t = decode_transfer(id.bytes(), *rec.value());
    if (!t.is_ok()) return t.status();
    return std::optional<Transfer>(std::move(t).value());
  }

  Result<std::optional<JournalRow>> journal_at(uint64_t seq) override {
    auto row = storage_->journal_at(seq);
    if (!row.is_ok() || !row.value()) return row;
    COVENANT_RETURN_IF_ERROR(check_row(*row.value()));
    return row;
  }

  Result<std::optional<JournalRow>> journal_by_key(const Hash32& key) override {
    auto row = storage_->journal_by_key(key);
    if (!row.is_ok() || !row.value()) return row;
    COVENANT_RETURN_IF_ERROR(check_row(*row.value()));
    return row;
  }

  Result<uint64_t> journal_count() override { return storage_->journal_count(); }

  Status journal_for_each(uint64_t from_seq, const std::function<bool(const JournalRow&)>& fn) override {
    if (from_seq == 0) from_seq = 1;
    Hash32 prev{};
    if (from_seq > 1) {
      auto p = storage_->journal_at(from_seq - 1);
      if (!p.is_ok()) return p.status();
      if (!p.value()) return Status::ok();
      prev = p.value()->chain;
    }
    uint64_t expect = from_seq;
    for (;;) {
      auto page = storage_->journal_scan(expect, ledger_internal::kScanPageRecords);
      if (!page.is_ok()) return page.status();
      if (page->empty()) return Status::ok();
      for (const JournalRow& r : *page) {
        if (r.seq != expect)
          return Status::corruption("journal: row seq=" + std::to_string(expect) + " is missing (next is " +
                                    std::to_string(r.seq) + ")");
        COVENANT_RETURN_IF_ERROR(ledger_internal::check_journal_row(r, prev));
        prev = r.chain;
        ++expect;
        if (!fn(r)) return Status::ok();
      }
    }
  }

  Result<std::optional<std::string>> kv_get(const std::string& key) override { return storage_->kv_get(key); }

  Result<std::vector<std::pair<std::string, std::string>>> kv_scan(const std::string& prefix, const std::string& after,
                                                                   size_t limit) override {
    return storage_->kv_scan(prefix, after, limit);
  }

  Result<std::vector<Account>> all_accounts() override {
    std::vector<Account> out;
    COVENANT_RETURN_IF_ERROR(scan_records(Table::kAccounts, [&](const KeyedRecord& r) -> Status {
      auto a = decode_account(r.id, r.record);
      if (!a.is_ok()) return a.status();
      out.push_back(std::move(a).value());
      return Status::ok();
    }));
    return out;
  }

  Result<std::vector<Transfer>> all_transfers() override {
    std::vector<Transfer> out;
    COVENANT_RETURN_IF_ERROR(scan_records(Table::kTransfers, [&](const KeyedRecord& r) -> Status {
      auto t = decode_transfer(r.id, r.record);
      if (!t.is_ok()) return t.status();
      out.push_back(std::move(t).value());
      return Status::ok();
    }));
    return out;
  }

  Result<VerifyReport> verify() override;

  Storage& storage() override { return *storage_; }

  LedgerStats stats() override {
    std::lock_guard lock(mu_);
    LedgerStats s = stats_;
    s.requests_queued = queue_.size();
    return s;
  }

 private:
  struct Request {
    std::span<const LedgerOperation> ops;
    std::vector<LedgerReply>* replies;
    Status status;
    bool done = false;                   // GUARDED_BY(mu_)
    std::condition_variable done_cv;     // wakes only this submitter, not every waiter
  };

  Status check_row(const JournalRow& row) {
    Hash32 prev{};
    if (row.seq > 1) {
      auto p = storage_->journal_at(row.seq - 1);
      if (!p.is_ok()) return p.status();
      if (!p.value()) return Status::corruption("journal: row seq=" + std::to_string(row.seq - 1) + " is missing");
      prev = p.value()->chain;
    }
    return ledger_internal::check_journal_row(row, prev);
  }

  Status scan_records(Table table, const std::function<Status(const KeyedRecord&)>& fn) {
    std::optional<Id128Bytes> after;
    for (;;) {
      auto page = storage_->scan(table, after, ledger_internal::kScanPageRecords);
      if (!page.is_ok()) return page.status();
      if (page->empty()) return Status::ok();
      for (const KeyedRecord& r : *page) COVENANT_RETURN_IF_ERROR(fn(r));
      after = page->back().id;
    }
  }

  uint64_t next_timestamp() {
    uint64_t now = options_.clock_ns();
    last_timestamp_ns_ = std::max(now, last_timestamp_ns_ + 1);
    return last_timestamp_ns_;
  }

  // One durable transaction for all of `requests`. On error no reply is valid.
  Status commit_batch(const std::vector<Request*>& requests) {
    auto txn = storage_->begin_write();
    if (!txn.is_ok()) return txn.status();
    Batch b(**txn);
    std::vector<const LedgerOperation*> all;
    for (Request* req : requests)
      for (const LedgerOperation& op : req->ops) all.push_back(&op);
    COVENANT_RETURN_IF_ERROR(b.prefetch(all));
    auto next_ts = [this] { return next_timestamp(); };
    for (Request* req : requests) {
      for (size_t i = 0; i < req->ops.size(); ++i) {
        LedgerReply& reply = (*req->replies)[i];
        reply = LedgerReply{};
        const uint64_t ts = next_timestamp();
        Result<LedgerResult> r = std::visit(
            [&](const auto& op) -> Result<LedgerResult> {
              using T = std::decay_t<decltype(op)>;
              if constexpr (std::is_same_v<T, Account>) return apply_account(b, op, ts, &reply);
              else if constexpr (std::is_same_v<T, Transfer>) return apply_transfer(b, op, ts, &reply);
              else if constexpr (std::is_same_v<T, JournalAppend>) return apply_journal(b, op, ts, &reply);
              else if constexpr (std::is_same_v<T, ExpireHolds>) return apply_expire(b, op, ts, &reply);
              else return apply_atomic(b, op, ts, next_ts, &reply);
            },
            req->ops[i]);
        if (!r.is_ok()) return r.status();
        reply.result = r.value();
      }
    }
    COVENANT_RETURN_IF_ERROR(b.flush());
    return (*txn)->commit();
  }

  void run_committer() {
    std::vector<Request*> batch;
    for (;;) {
      {
        std::unique_lock lock(mu_);
        work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stop_ and drained
        size_t ops = 0;
        while (!queue_.empty() && (batch.empty() || ops + queue_.front()->ops.size() <= options_.batch_operations_max)) {
          ops += queue_.front()->ops.size();
          batch.push_back(queue_.front());
          queue_.pop_front();
        }
      }
      LedgerStats delta;
      auto count = [&](const std::vector<Request*>& requests, const Status& st) {
        if (!st.is_ok()) {
          ++delta.batches_failed;
          return;
        }
        ++delta.batches_committed;
        for (Request* r : requests) delta.operations_committed += r->ops.size();
      };
      Status st = commit_batch(batch);
      if (!st.is_ok() && st.code() == Code::kCorruption && batch.size() > 1) {
        // Isolate the damage: each request alone, so only those touching the bad row fail.
        for (Request* r : batch) {
          r->status = commit_batch({r});
          count({r}, r->status);
        }
      } else {
        for (Request* r : batch) r->status = st;
        count(batch, st);
      }
      {
        // Notify under the lock: once it is released a woken submitter may return and
        // destroy its Request (and its condition variable).
        std::lock_guard lock(mu_);
        stats_.batches_committed += delta.batches_committed;
        stats_.operations_committed += delta.operations_committed;
        stats_.batches_failed += delta.batches_failed;
        for (Request* r : batch) {
          r->done = true;
          r->done_cv.notify_one();
        }
      }
      batch.clear();
    }
  }

  std::unique_ptr<Storage> storage_;
  LedgerOptions options_;
  uint64_t last_timestamp_ns_ = 0;  // committer thread only

  std::mutex mu_;
  std::condition_variable work_cv_;
  std::deque<Request*> queue_;  // GUARDED_BY(mu_)
  bool stop_ = false;           // GUARDED_BY(mu_)
  LedgerStats stats_;           // GUARDED_BY(mu_)
  std::thread committer_;
};

Result<VerifyReport> LedgerImpl::verify() {
  VerifyReport report;
  std::map<Id128, Account> accounts;
  COVENANT_RETURN_IF_ERROR(scan_records(Table::kAccounts, [&](const KeyedRecord& r) -> Status {
    ++report.accounts;
    auto a = decode_account(r.id, r.record);
    if (!a.is_ok()) report.problems.push_back(a.status().message());
    else accounts.emplace(a->id, a.value());
    return Status::ok();
  }));
  std::map<Id128, Transfer> transfers;
  COVENANT_RETURN_IF_ERROR(scan_records(Table::kTransfers, [&](const KeyedRecord& r) -> Status {
    ++report.transfers;
    auto t = decode_transfer(r.id, r.record);
    if (!t.is_ok()) report.problems.push_back(t.status().message());
    else transfers.emplace(t->id, t.value());
    return Status::ok();
  }));

  // The journal: every row, in order, chained. Keep walking past a bad row to report all.
  {
    Hash32 prev{};
    uint64_t expect = 1;
    for (;;) {
      auto page = storage_->journal_scan(expect, ledger_internal::kScanPageRecords);
      if (!page.is_ok()) return page.status();
      if (page->empty()) break;
      for (const JournalRow& r : *page) {
        if (r.seq != expect)
          report.problems.push_back("journal: row seq=" + std::to_string(expect) + " is missing");
        Status st = ledger_internal::check_journal_row(r, prev);
        if (!st.is_ok()) report.problems.push_back(st.message());
        prev = r.chain;
        expect = r.seq + 1;
        ++report.journal_entries;
      }
    }
    report.journal_head = prev;
    auto count = storage_->journal_count();
    if (!count.is_ok()) return count.status();
    if (*count != report.journal_entries)
      report.problems.push_back("journal: count " + std::to_string(*count) + " != rows walked " +
                                std::to_string(report.journal_entries));
    COVENANT_RETURN_IF_ERROR(check_journal_head(*storage_, *count, &report.problems));
  }

  // The books: balances recomputed from transfers must equal the stored ones.
  struct Sums {
    unsigned __int128 dp = 0, dpo = 0, cp = 0, cpo = 0;
  };
  std::map<Id128, Sums> sums;
  std::map<Id128, int> resolutions;  // hold id -> post/void transfers naming it
  auto problem = [&](const Transfer& t, const std::string& what) {
    report.problems.push_back("transfers row id=" + t.id.hex() + ": " + what);
  };
  for (const auto& [id, t] : transfers) {
    if (!accounts.count(t.debit_account_id) || !accounts.count(t.credit_account_id)) {
      problem(t, "names an account that does not exist");
      continue;
    }
    Sums& d = sums[t.debit_account_id];
    Sums& c = sums[t.credit_account_id];
    if (t.flags & kTransferPending) {
      if (t.hold_state == HoldState::kPending) {
        ++report.holds_live;
        d.dp += t.amount;
        c.cp += t.amount;
      }
    } else if (t.flags & (kTransferPostPending | kTransferVoidPending)) {
      auto p = transfers.find(t.pending_id);
      const HoldState want = (t.flags & kTransferPostPending) ? HoldState::kPosted : HoldState::kVoided;
      if (p == transfers.end() || !(p->second.flags & kTransferPending)) problem(t, "resolves no hold");
      else if (p->second.hold_state != want) problem(t, "its hold is " + std::string(hold_state_name(p->second.hold_state)));
      else if (t.amount > p->second.amount) problem(t, "moves more than its hold");
      ++resolutions[t.pending_id];
      if (t.flags & kTransferPostPending) {
        d.dpo += t.amount;
        c.cpo += t.amount;
      }
    } else if (!(t.flags & (kTransferDisputePending | kTransferResolvePending))) {
      d.dpo += t.amount;
      c.cpo += t.amount;
    }
  }
  for (const auto& [id, t] : transfers) {
    if (!(t.flags & kTransferPending)) continue;
    const int want = (t.hold_state == HoldState::kPosted || t.hold_state == HoldState::kVoided) ? 1 : 0;
    const int got = resolutions.count(id) ? resolutions[id] : 0;
    if (got != want)
      problem(t, "hold " + std::string(hold_state_name(t.hold_state)) + " is resolved by " + std::to_string(got) +
                     " post/void transfers, want " + std::to_string(want));
  }
  unsigned __int128 total[4] = {0, 0, 0, 0};
  for (const auto& [id, a] : accounts) {
    Sums s = sums[id];
    auto where = "accounts row id=" + id.hex() + ": ";
    if (s.dp != a.debits_pending || s.dpo != a.debits_posted || s.cp != a.credits_pending || s.cpo != a.credits_posted)
      report.problems.push_back(where + "balances differ from those recomputed from transfers");
    if ((a.flags & kAccountDebitsMustNotExceedCredits) &&
        static_cast<unsigned __int128>(a.debits_pending) + a.debits_posted > a.credits_posted)
      report.problems.push_back(where + "debits exceed credits despite its flag");
    if ((a.flags & kAccountCreditsMustNotExceedDebits) &&
        static_cast<unsigned __int128>(a.credits_pending) + a.credits_posted > a.debits_posted)
      report.problems.push_back(where + "credits exceed debits despite its flag");
    total[0] += a.debits_pending;
    total[1] += a.credits_pending;
    total[2] += a.debits_posted;
    total[3] += a.credits_posted;
  }
  if (total[0] != total[1]) report.problems.push_back("accounts: total debits_pending != total credits_pending");
  if (total[2] != total[3]) report.problems.push_back("accounts: total debits_posted != total credits_posted");
  return report;
}

}  // namespace

Result<std::unique_ptr<Ledger>> Ledger::open(std::unique_ptr<Storage> storage, LedgerOptions options) {
  if (!storage) return Status::invalid("ledger: no storage");
  if (options.batch_operations_max == 0) return Status::invalid("ledger: batch_operations_max must be > 0");
  auto ledger = std::make_unique<LedgerImpl>(std::move(storage), std::move(options));
  COVENANT_RETURN_IF_ERROR(ledger->check_on_open());
  return std::unique_ptr<Ledger>(std::move(ledger));
}

Result<std::unique_ptr<Ledger>> Ledger::open(const std::string& location, LedgerOptions options) {
  auto storage = open_storage(location, options.storage);
  if (!storage.is_ok()) return storage.status();
  return open(std::move(storage).value(), std::move(options));
}

}  // namespace covenant
