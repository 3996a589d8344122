// The ledger conformance suite: every test runs against every backend (memory, SQLite in a
// temp dir, PostgreSQL in its own schema when COVENANT_PG_URL is set; in CI it must be).
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "covenant/ledger.h"
#include "ledger/ledger_test_util.h"
#include "ledger/record.h"

namespace covenant {
namespace {

using ledger_test::expect_invariants;
using ledger_test::TestStore;
using R = LedgerResult;

// ---- result codes: numbering is API ----

TEST(LedgerResultCodes, NumberingIsStableAndDocumented) {
  struct Row {
    LedgerResult code;
    int number;
    const char* name;
  };
  // Never renumber, never reuse: append new codes with new numbers.
  const Row rows[] = {
      {R::ok, 0, "ok"},
      {R::id_must_not_be_zero, 1, "id_must_not_be_zero"},
      {R::id_must_not_be_int_max, 2, "id_must_not_be_int_max"},
      {R::flags_are_mutually_exclusive, 3, "flags_are_mutually_exclusive"},
      {R::reserved_flag, 4, "reserved_flag"},
      {R::ledger_must_not_be_zero, 5, "ledger_must_not_be_zero"},
      {R::code_must_not_be_zero, 6, "code_must_not_be_zero"},
      {R::balances_must_be_zero, 7, "balances_must_be_zero"},
      {R::account_exists_with_different_flags, 10, "account_exists_with_different_flags"},
      {R::account_exists_with_different_ledger, 11, "account_exists_with_different_ledger"},
      {R::account_exists_with_different_code, 12, "account_exists_with_different_code"},
      {R::account_exists_with_different_user_data, 13, "account_exists_with_different_user_data"},
      {R::account_exists, 14, "account_exists"},
      {R::pending_id_must_be_zero, 20, "pending_id_must_be_zero"},
      {R::pending_id_must_not_be_zero, 21, "pending_id_must_not_be_zero"},
      {R::pending_id_must_be_different, 22, "pending_id_must_be_different"},
      {R::timeout_reserved_for_pending_transfer, 23, "timeout_reserved_for_pending_transfer"},
      {R::debit_account_id_must_not_be_zero, 24, "debit_account_id_must_not_be_zero"},
      {R::credit_account_id_must_not_be_zero, 25, "credit_account_id_must_not_be_zero"},
      {R::accounts_must_be_different, 26, "accounts_must_be_different"},
      {R::amount_must_not_be_zero, 27, "amount_must_not_be_zero"},
      {R::amount_must_be_zero, 28, "amount_must_be_zero"},
      {R::exists_with_different_flags, 40, "exists_with_different_flags"},
      {R::exists_with_different_pending_id, 41, "exists_with_different_pending_id"},
      {R::exists_with_different_debit_account_id, 42, "exists_with_different_debit_account_id"},
      {R::exists_with_different_credit_account_id, 43, "exists_with_different_credit_account_id"},
      {R::exists_with_different_amount, 44, "exists_with_different_amount"},
      {R::exists_with_different_timeout, 45, "exists_with_different_timeout"},
      {R::exists_with_different_ledger, 46, "exists_with_different_ledger"},
      {R::exists_with_different_code, 47, "exists_with_different_code"},
      {R::exists_with_different_user_data, 48, "exists_with_different_user_data"},
      {R::exists, 49, "exists"},
      {R::debit_account_not_found, 50, "debit_account_not_found"},
      {R::credit_account_not_found, 51, "credit_account_not_found"},
      {R::accounts_must_have_the_same_ledger, 52, "accounts_must_have_the_same_ledger"},
      {R::transfer_must_have_the_same_ledger_as_accounts, 53, "transfer_must_have_the_same_ledger_as_accounts"},
      {R::pending_transfer_not_found, 54, "pending_transfer_not_found"},
      {R::pending_transfer_not_pending, 55, "pending_transfer_not_pending"},
      {R::pending_transfer_has_different_debit_account_id, 56, "pending_transfer_has_different_debit_account_id"},
      {R::pending_transfer_has_different_credit_account_id, 57, "pending_transfer_has_different_credit_account_id"},
      {R::pending_transfer_has_different_ledger, 58, "pending_transfer_has_different_ledger"},
      {R::pending_transfer_has_different_code, 59, "pending_transfer_has_different_code"},
      {R::exceeds_pending_transfer_amount, 60, "exceeds_pending_transfer_amount"},
      {R::pending_transfer_has_different_amount, 61, "pending_transfer_has_different_amount"},
      {R::pending_transfer_already_posted, 62, "pending_transfer_already_posted"},
      {R::pending_transfer_already_voided, 63, "pending_transfer_already_voided"},
      {R::pending_transfer_disputed, 64, "pending_transfer_disputed"},
      {R::pending_transfer_expired, 65, "pending_transfer_expired"},
      {R::pending_transfer_not_disputed, 66, "pending_transfer_not_disputed"},
      {R::overflows_debits_pending, 70, "overflows_debits_pending"},
      {R::overflows_credits_pending, 71, "overflows_credits_pending"},
      {R::overflows_debits_posted, 72, "overflows_debits_posted"},
      {R::overflows_credits_posted, 73, "overflows_credits_posted"},
      {R::overflows_timeout, 74, "overflows_timeout"},
      {R::exceeds_credits, 75, "exceeds_credits"},
      {R::exceeds_debits, 76, "exceeds_debits"},
      {R::journal_key_must_not_be_zero, 80, "journal_key_must_not_be_zero"},
      {R::journal_entry_must_not_be_empty, 81, "journal_entry_must_not_be_empty"},
      {R::journal_entry_too_large, 82, "journal_entry_too_large"},
      {R::journal_exists_with_different_entry, 83, "journal_exists_with_different_entry"},
      {R::journal_exists, 84, "journal_exists"},
      {R::kv_key_must_not_be_empty, 90, "kv_key_must_not_be_empty"},
      {R::kv_key_too_large, 91, "kv_key_too_large"},
      {R::kv_value_too_large, 92, "kv_value_too_large"},
      {R::kv_expectation_failed, 93, "kv_expectation_failed"},
      {R::atomic_part_refused, 94, "atomic_part_refused"},
  };
  std::ifstream doc_file(std::string(COVENANT_SOURCE_DIR) + "/docs/ledger.md");
  ASSERT_TRUE(doc_file) << "docs/ledger.md is missing";
  std::stringstream doc;
  doc << doc_file.rdbuf();
  int previous = -1;
  size_t count = 0;
  for (const Row& r : rows) {
    EXPECT_EQ(static_cast<int>(r.code), r.number) << r.name;
    EXPECT_STREQ(ledger_result_name(r.code), r.name);
    EXPECT_GT(r.number, previous) << r.name << ": the table is in precedence order";
    previous = r.number;
    std::string doc_row = "| " + std::to_string(r.number) + " | `" + r.name + "` |";
    EXPECT_NE(doc.str().find(doc_row), std::string::npos) << "docs/ledger.md lacks the row " << doc_row;
    ++count;
  }
  // Every code in the enum is in this table.
  size_t enum_count = 0;
#define COUNT_CODE(name, number) ++enum_count;
  COVENANT_LEDGER_RESULTS(COUNT_CODE)
#undef COUNT_CODE
  EXPECT_EQ(count, enum_count);
}

TEST(LedgerRecords, RoundTripAndSizes) {
  Account a{.id = {1, 2}, .user_data = {3, 4}, .ledger = 5, .code = 6, .flags = 1, .debits_pending = 7,
            .debits_posted = 8, .credits_pending = 9, .credits_posted = 10, .timestamp_ns = 11};
  std::string rec = ledger_internal::encode_account(a);
  EXPECT_EQ(rec.size(), ledger_internal::kAccountRecordBytes);
  auto back = ledger_internal::decode_account(a.id.bytes(), rec);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(*back, a);
  // Any single flipped bit anywhere in the record is detected.
  for (size_t i = 0; i < rec.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = rec;
      bad[i] ^= static_cast<char>(1 << bit);
      auto d = ledger_internal::decode_account(a.id.bytes(), bad);
      ASSERT_FALSE(d.is_ok()) << "byte " << i << " bit " << bit;
      EXPECT_EQ(d.status().code(), Code::kCorruption);
    }
  }
  // A record stored under another id is detected.
  EXPECT_FALSE(ledger_internal::decode_account(Id128{1, 3}.bytes(), rec).is_ok());

  Transfer t{.id = {0, 9}, .debit_account_id = {0, 1}, .credit_account_id = {0, 2}, .amount = 5,
             .pending_id = {0, 3}, .user_data = {7, 7}, .timeout_s = 4, .ledger = 1, .code = 2,
             .flags = kTransferPending, .timestamp_ns = 99, .hold_state = HoldState::kPending, .disputed = true};
  std::string trec = ledger_internal::encode_transfer(t);
  EXPECT_EQ(trec.size(), ledger_internal::kTransferRecordBytes);
  auto tback = ledger_internal::decode_transfer(t.id.bytes(), trec);
  ASSERT_TRUE(tback.is_ok());
  EXPECT_EQ(*tback, t);
}

TEST(LedgerIds, ParseAndHex) {
  struct Row {
    const char* text;
    std::optional<Id128> want;
  } rows[] = {
      {"1", Id128{0, 1}},
      {"18446744073709551615", Id128{0, ~0ull}},
      {"18446744073709551616", std::nullopt},
      {"0x10000000000000000", Id128{1, 0}},
      {"000000000000000100000000000000ff", Id128{1, 0xff}},
      {"", std::nullopt},
      {"12a", std::nullopt},
      {"0x", std::nullopt},
  };
  for (const Row& r : rows) EXPECT_EQ(Id128::parse(r.text), r.want) << r.text;
  EXPECT_EQ(Id128({1, 0xff}).hex(), "000000000000000100000000000000ff");
}

// ---- the conformance suite ----

class LedgerConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    store_ = std::make_unique<TestStore>(GetParam());
    COVENANT_REQUIRE_STORE(*store_);
    reopen();
  }
  void reopen() {
    ledger_.reset();
    auto l = store_->open();
    ASSERT_TRUE(l.is_ok()) << l.status().to_string();
    ledger_ = std::move(l).value();
  }
  LedgerResult account(uint64_t id, uint32_t ledger = 1, uint16_t flags = 0, uint16_t code = 1) {
    auto r = ledger_->create_account(Account{.id = {0, id}, .ledger = ledger, .code = code, .flags = flags});
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? r->result : R::ok;
  }
  LedgerResult transfer(const Transfer& t) {
    auto r = ledger_->create_transfer(t);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? r->result : R::ok;
  }
  static Transfer plain(uint64_t id, uint64_t dr, uint64_t cr, uint64_t amount, uint32_t ledger = 1) {
    return Transfer{.id = {0, id}, .debit_account_id = {0, dr}, .credit_account_id = {0, cr}, .amount = amount,
                    .ledger = ledger, .code = 1};
  }
  static Transfer hold(uint64_t id, uint64_t dr, uint64_t cr, uint64_t amount, uint32_t timeout_s = 0) {
    Transfer t = plain(id, dr, cr, amount);
    t.flags = kTransferPending;
    t.timeout_s = timeout_s;
    return t;
  }
  static Transfer resolving(uint64_t id, uint64_t pending, uint16_t flag, uint64_t amount = 0) {
    return Transfer{.id = {0, id}, .amount = amount, .pending_id = {0, pending}, .flags = flag};
  }
  Account balance(uint64_t id) {
    auto a = ledger_->lookup_account({0, id});
    EXPECT_TRUE(a.is_ok() && a->has_value()) << id;
    return a.is_ok() && a->has_value() ? **a : Account{};
  }
  void advance_s(uint64_t s) { store_->now_ns += s * 1'000'000'000ull; }
  LedgerReply atomic(Atomic a) {
    std::vector<LedgerOperation> ops;
    ops.emplace_back(std::move(a));
    auto r = ledger_->submit(ops);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? r->front() : LedgerReply{.result = R::id_must_not_be_zero};
  }
  std::optional<std::string> kv(const std::string& key) {
    auto r = ledger_->kv_get(key);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : std::nullopt;
  }

  std::unique_ptr<TestStore> store_;
  std::unique_ptr<Ledger> ledger_;
  Account expected_after_reopen_;
};

INSTANTIATE_TEST_SUITE_P(Backends, LedgerConformance, ::testing::ValuesIn(ledger_test::backends()),
                         [](const auto& info) { return info.param; });

TEST_P(LedgerConformance, CreateAccountTable) {
  struct Row {
    const char* what;
    Account account;
    LedgerResult want;
  };
  const Row rows[] = {
      {"zero id", {.id = {0, 0}, .ledger = 1, .code = 1}, R::id_must_not_be_zero},
      {"max id", {.id = {~0ull, ~0ull}, .ledger = 1, .code = 1}, R::id_must_not_be_int_max},
      {"both limits", {.id = {0, 1}, .ledger = 1, .code = 1, .flags = 3}, R::flags_are_mutually_exclusive},
      {"unknown flag", {.id = {0, 1}, .ledger = 1, .code = 1, .flags = 4}, R::reserved_flag},
      {"zero ledger", {.id = {0, 1}, .ledger = 0, .code = 1}, R::ledger_must_not_be_zero},
      {"zero code", {.id = {0, 1}, .ledger = 1, .code = 0}, R::code_must_not_be_zero},
      {"balances", {.id = {0, 1}, .ledger = 1, .code = 1, .credits_posted = 5}, R::balances_must_be_zero},
      {"ok", {.id = {0, 1}, .ledger = 1, .code = 1, .flags = 1}, R::ok},
      {"replay", {.id = {0, 1}, .ledger = 1, .code = 1, .flags = 1}, R::account_exists},
      {"other flags", {.id = {0, 1}, .ledger = 1, .code = 1, .flags = 2}, R::account_exists_with_different_flags},
      {"other ledger", {.id = {0, 1}, .ledger = 2, .code = 1, .flags = 1}, R::account_exists_with_different_ledger},
      {"other code", {.id = {0, 1}, .ledger = 1, .code = 2, .flags = 1}, R::account_exists_with_different_code},
      {"other user_data",
       {.id = {0, 1}, .user_data = {0, 9}, .ledger = 1, .code = 1, .flags = 1},
       R::account_exists_with_different_user_data},
  };
  for (const Row& r : rows) {
    auto reply = ledger_->create_account(r.account);
    ASSERT_TRUE(reply.is_ok()) << reply.status().to_string();
    EXPECT_EQ(reply->result, r.want) << r.what << ": got " << ledger_result_name(reply->result);
  }
  expect_invariants(*ledger_);
}

TEST_P(LedgerConformance, TransferTable) {
  ASSERT_EQ(account(1), R::ok);                                      // bank: anything goes
  ASSERT_EQ(account(2, 1, kAccountDebitsMustNotExceedCredits), R::ok);  // a customer: no overdraft
  ASSERT_EQ(account(3, 1, kAccountCreditsMustNotExceedDebits), R::ok);
  ASSERT_EQ(account(4, 2), R::ok);  // another currency
  struct Row {
    const char* what;
    Transfer t;
    LedgerResult want;
  };
  Transfer odd = plain(100, 1, 2, 10);
  odd.flags = kTransferPending | kTransferPostPending;
  Transfer reserved = plain(100, 1, 2, 10);
  reserved.flags = 1u << 9;
  Transfer with_pending = plain(100, 1, 2, 10);
  with_pending.pending_id = {0, 5};
  Transfer timeout_plain = plain(100, 1, 2, 10);
  timeout_plain.timeout_s = 5;
  Transfer zero_ledger = plain(100, 1, 2, 10, 0);
  Transfer zero_code = plain(100, 1, 2, 10);
  zero_code.code = 0;
  Transfer dispute_amount = resolving(100, 5, kTransferDisputePending, 3);
  const Row rows[] = {
      {"zero id", plain(0, 1, 2, 10), R::id_must_not_be_zero},
      {"max id", Transfer{.id = {~0ull, ~0ull}}, R::id_must_not_be_int_max},
      {"two kinds", odd, R::flags_are_mutually_exclusive},
      {"reserved flag", reserved, R::reserved_flag},
      {"zero ledger", zero_ledger, R::ledger_must_not_be_zero},
      {"zero code", zero_code, R::code_must_not_be_zero},
      {"pending id on plain", with_pending, R::pending_id_must_be_zero},
      {"post without pending id", resolving(100, 0, kTransferPostPending), R::pending_id_must_not_be_zero},
      {"post of itself", resolving(100, 100, kTransferPostPending), R::pending_id_must_be_different},
      {"timeout on plain", timeout_plain, R::timeout_reserved_for_pending_transfer},
      {"no debit account", plain(100, 0, 2, 10), R::debit_account_id_must_not_be_zero},
      {"no credit account", plain(100, 1, 0, 10), R::credit_account_id_must_not_be_zero},
      {"same accounts", plain(100, 1, 1, 10), R::accounts_must_be_different},
      {"zero amount", plain(100, 1, 2, 0), R::amount_must_not_be_zero},
      {"dispute with amount", dispute_amount, R::amount_must_be_zero},
      {"unknown debit", plain(100, 9, 2, 10), R::debit_account_not_found},
      {"unknown credit", plain(100, 1, 9, 10), R::credit_account_not_found},
      {"across ledgers", plain(100, 1, 4, 10), R::accounts_must_have_the_same_ledger},
      {"wrong ledger", plain(100, 1, 2, 10, 2), R::transfer_must_have_the_same_ledger_as_accounts},
      {"overdraft", plain(100, 2, 1, 1), R::exceeds_credits},
      {"credit beyond debits", plain(100, 1, 3, 1), R::exceeds_debits},
      {"fund customer", plain(100, 1, 2, 50), R::ok},
      {"replay", plain(100, 1, 2, 50), R::exists},
      {"replay other amount", plain(100, 1, 2, 51), R::exists_with_different_amount},
      {"replay other debit", plain(100, 3, 2, 50), R::exists_with_different_debit_account_id},
      {"replay other credit", plain(100, 1, 3, 50), R::exists_with_different_credit_account_id},
      {"replay other flags", hold(100, 1, 2, 50), R::exists_with_different_flags},
      {"spend within credits", plain(101, 2, 1, 50), R::ok},
      {"spend beyond credits", plain(102, 2, 1, 1), R::exceeds_credits},
      {"overflow before limits", plain(103, 1, 3, ~0ull), R::overflows_debits_posted},
      {"post unknown hold", resolving(104, 77, kTransferPostPending), R::pending_transfer_not_found},
      {"post a plain transfer", resolving(104, 100, kTransferPostPending), R::pending_transfer_not_pending},
  };
  for (const Row& r : rows) EXPECT_EQ(transfer(r.t), r.want) << r.what;
  EXPECT_EQ(balance(2).credits_posted, 50u);
  EXPECT_EQ(balance(2).debits_posted, 50u);
  EXPECT_EQ(balance(1).debits_posted, 50u);
  expect_invariants(*ledger_);
}

TEST_P(LedgerConformance, HoldLifecycleTable) {
  ASSERT_EQ(account(1), R::ok);
  ASSERT_EQ(account(2, 1, kAccountDebitsMustNotExceedCredits), R::ok);
  ASSERT_EQ(account(3), R::ok);
  ASSERT_EQ(transfer(plain(1, 1, 2, 100)), R::ok);  // customer 2 holds 100
  struct Row {
    const char* what;
    Transfer t;
    LedgerResult want;
    uint64_t advance_s = 0;  // before the row
  };
  Transfer post_wrong_debit = resolving(23, 10, kTransferPostPending);
  post_wrong_debit.debit_account_id = {0, 3};
  Transfer post_wrong_ledger = resolving(23, 10, kTransferPostPending);
  post_wrong_ledger.ledger = 7;
  const Row rows[] = {
      {"escrow 60", hold(10, 2, 3, 60, 10), R::ok},
      {"escrow beyond credits", hold(11, 2, 3, 41), R::exceeds_credits},
      {"escrow the rest", hold(12, 2, 3, 40), R::ok},
      {"post more than held", resolving(20, 10, kTransferPostPending, 61), R::exceeds_pending_transfer_amount},
      {"void a different amount", resolving(21, 10, kTransferVoidPending, 5), R::pending_transfer_has_different_amount},
      {"post wrong debit", post_wrong_debit, R::pending_transfer_has_different_debit_account_id},
      {"post wrong ledger", post_wrong_ledger, R::pending_transfer_has_different_ledger},
      {"resolve undisputed", resolving(22, 10, kTransferResolvePending), R::pending_transfer_not_disputed},
      {"dispute", resolving(23, 10, kTransferDisputePending), R::ok},
      {"dispute again", resolving(24, 10, kTransferDisputePending), R::pending_transfer_disputed},
      {"post while disputed", resolving(25, 10, kTransferPostPending), R::pending_transfer_disputed},
      {"void while disputed", resolving(26, 10, kTransferVoidPending), R::pending_transfer_disputed},
      {"a frozen hold does not expire", resolving(27, 10, kTransferResolvePending), R::ok, 11},
      {"resolved after its deadline: expired", resolving(28, 10, kTransferPostPending), R::pending_transfer_expired},
      {"partial post of the other hold", resolving(29, 12, kTransferPostPending, 15), R::ok},
      {"post replay", resolving(29, 12, kTransferPostPending, 15), R::exists},
      {"post replay, other amount", resolving(29, 12, kTransferPostPending, 16), R::exists_with_different_amount},
      {"post again", resolving(30, 12, kTransferPostPending), R::pending_transfer_already_posted},
      {"void after post", resolving(31, 12, kTransferVoidPending), R::pending_transfer_already_posted},
      {"new hold", hold(40, 2, 3, 10, 100), R::ok},
      {"void it", resolving(41, 40, kTransferVoidPending), R::ok},
      {"post after void", resolving(42, 40, kTransferPostPending), R::pending_transfer_already_voided},
      {"dispute after void", resolving(43, 40, kTransferDisputePending), R::pending_transfer_already_voided},
  };
  for (const Row& r : rows) {
    advance_s(r.advance_s);
    EXPECT_EQ(transfer(r.t), r.want) << r.what;
  }
  // Hold 10 (60) is overdue but not yet swept; hold 12 posted 15 of 40; hold 40 voided.
  Account c = balance(2);
  EXPECT_EQ(c.debits_pending, 60u);
  EXPECT_EQ(c.debits_posted, 15u);
  auto expired = ledger_->expire_holds();
  ASSERT_TRUE(expired.is_ok());
  EXPECT_EQ(expired->expired_count, 1u);
  auto h = ledger_->lookup_transfer({0, 10});
  ASSERT_TRUE(h.is_ok() && h->has_value());
  EXPECT_EQ((*h)->hold_state, HoldState::kExpired);
  EXPECT_EQ(transfer(resolving(44, 10, kTransferVoidPending)), R::pending_transfer_expired);
  c = balance(2);
  EXPECT_EQ(c.debits_pending, 0u);
  EXPECT_EQ(c.debits_posted, 15u);
  EXPECT_EQ(balance(3).credits_posted, 15u);
  expected_after_reopen_ = c;
  expect_invariants(*ledger_);
  if (GetParam() != "memory") {
    reopen();
    EXPECT_EQ(balance(2), expected_after_reopen_);
    EXPECT_EQ(transfer(resolving(29, 12, kTransferPostPending)), R::exists);  // amount 0: "the hold's"
    expect_invariants(*ledger_);
  }
}

TEST_P(LedgerConformance, JournalAppendReadIterate) {
  std::vector<Hash32> keys;
  Hash32 chain{};
  for (int i = 1; i <= 300; ++i) {
    std::string entry = "receipt-" + std::to_string(i);
    Hash32 key = sha256(entry);
    keys.push_back(key);
    auto r = ledger_->append(key, entry);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    ASSERT_EQ(r->result, R::ok);
    ASSERT_EQ(r->journal_seq, static_cast<uint64_t>(i));
    chain = journal_chain_next(chain, static_cast<uint64_t>(i), key, sha256(entry));
  }
  struct Row {
    const char* what;
    Hash32 key;
    std::string entry;
    LedgerResult want;
    uint64_t seq;
  } rows[] = {
      {"zero key", Hash32{}, "x", R::journal_key_must_not_be_zero, 0},
      {"empty", sha256("e"), "", R::journal_entry_must_not_be_empty, 0},
      {"too large", sha256("big"), std::string(kJournalEntrySizeBytesMax + 1, 'x'), R::journal_entry_too_large, 0},
      {"replay", keys[6], "receipt-7", R::journal_exists, 7},
      {"other bytes", keys[6], "receipt-X", R::journal_exists_with_different_entry, 7},
  };
  for (const Row& r : rows) {
    auto reply = ledger_->append(r.key, r.entry);
    ASSERT_TRUE(reply.is_ok());
    EXPECT_EQ(reply->result, r.want) << r.what;
    EXPECT_EQ(reply->journal_seq, r.seq) << r.what;
  }
  auto count = ledger_->journal_count();
  ASSERT_TRUE(count.is_ok());
  EXPECT_EQ(*count, 300u);
  auto at = ledger_->journal_at(150);
  ASSERT_TRUE(at.is_ok() && at->has_value());
  EXPECT_EQ((*at)->entry, "receipt-150");
  auto by_key = ledger_->journal_by_key(keys[41]);
  ASSERT_TRUE(by_key.is_ok() && by_key->has_value());
  EXPECT_EQ((*by_key)->seq, 42u);
  auto none = ledger_->journal_at(301);
  ASSERT_TRUE(none.is_ok());
  EXPECT_FALSE(none->has_value());
  uint64_t n = 0;
  Hash32 last{};
  ASSERT_TRUE(ledger_->journal_for_each(1, [&](const JournalRow& r) {
    EXPECT_EQ(r.seq, ++n);
    last = r.chain;
    return true;
  }).is_ok());
  EXPECT_EQ(n, 300u);
  EXPECT_EQ(last, chain) << "the chain recomputed here must equal the stored head";
  auto report = ledger_->verify();
  ASSERT_TRUE(report.is_ok());
  EXPECT_EQ(report->journal_head, chain);
  EXPECT_EQ(report->journal_entries, 300u);
}

TEST_P(LedgerConformance, FlippedBytesAreDetectedAndLocated) {
  ASSERT_EQ(account(1), R::ok);
  ASSERT_EQ(account(2), R::ok);
  ASSERT_EQ(account(3), R::ok);
  ASSERT_EQ(transfer(plain(1, 1, 2, 10)), R::ok);
  for (int i = 1; i <= 5; ++i) ASSERT_EQ(ledger_->append(sha256(std::to_string(i)), "entry " + std::to_string(i))->result, R::ok);
  ASSERT_TRUE(ledger_->verify()->ok());

  // A balance byte (debits_posted of account 1 sits at offset 1+16+16+4+2+2+8).
  ASSERT_TRUE(ledger_->storage().TEST_flip_byte(Table::kAccounts, Id128{0, 1}.bytes(), 0, 55).is_ok());
  auto a = ledger_->lookup_account({0, 1});
  ASSERT_FALSE(a.is_ok());
  EXPECT_EQ(a.status().code(), Code::kCorruption);
  EXPECT_NE(a.status().message().find("accounts row id=" + Id128{0, 1}.hex()), std::string::npos)
      << a.status().message();
  // A transfer touching it is refused with the corruption; one in the same batch that does
  // not touch it still commits.
  std::vector<LedgerOperation> ops = {plain(2, 1, 2, 1)};
  std::vector<LedgerOperation> ops_ok = {plain(3, 2, 3, 1)};
  Result<std::vector<LedgerReply>> bad = Status::internal("unset"), good = Status::internal("unset");
  std::thread t1([&] { bad = ledger_->submit(ops); });
  std::thread t2([&] { good = ledger_->submit(ops_ok); });
  t1.join();
  t2.join();
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), Code::kCorruption);
  ASSERT_TRUE(good.is_ok()) << good.status().to_string();
  EXPECT_EQ(good->front().result, R::ok);

  // A journal entry byte.
  ASSERT_TRUE(ledger_->storage().TEST_flip_byte(Table::kJournal, {}, 3, 2).is_ok());
  auto j = ledger_->journal_at(3);
  ASSERT_FALSE(j.is_ok());
  EXPECT_NE(j.status().message().find("journal row seq=3"), std::string::npos) << j.status().message();
  // A transfer record byte.
  ASSERT_TRUE(ledger_->storage().TEST_flip_byte(Table::kTransfers, Id128{0, 1}.bytes(), 0, 40).is_ok());

  auto report = ledger_->verify();
  ASSERT_TRUE(report.is_ok());
  std::string all;
  for (auto& p : report->problems) all += p + "\n";
  EXPECT_NE(all.find("accounts row id=" + Id128{0, 1}.hex()), std::string::npos) << all;
  EXPECT_NE(all.find("transfers row id=" + Id128{0, 1}.hex()), std::string::npos) << all;
  EXPECT_NE(all.find("journal row seq=3"), std::string::npos) << all;

  // The journal tail is checked on open: flip the last entry and reopen.
  if (GetParam() != "memory") {
    ASSERT_TRUE(ledger_->storage().TEST_flip_byte(Table::kJournal, {}, 5, 0).is_ok());
    ledger_.reset();
    auto reopened = store_->open();
    ASSERT_FALSE(reopened.is_ok());
    EXPECT_EQ(reopened.status().code(), Code::kCorruption);
    EXPECT_NE(reopened.status().message().find("journal row seq=5"), std::string::npos)
        << reopened.status().message();
  }
}

// Many submitters at once: each is acknowledged with its own replies, all in few batches.
TEST_P(LedgerConformance, ConcurrentSubmittersAreGroupCommitted) {
  ASSERT_EQ(account(1), R::ok);
  ASSERT_EQ(account(2), R::ok);
  const LedgerStats before = ledger_->stats();
  constexpr int kThreads = 8, kPerThread = 100;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        uint64_t id = static_cast<uint64_t>(t * 1000 + i + 1);
        std::vector<LedgerOperation> ops = {plain(id, 1, 2, 1), JournalAppend{sha256(std::to_string(id)), "r"}};
        auto r = ledger_->submit(ops);
        if (r.is_ok() && (*r)[0].result == R::ok && (*r)[1].result == R::ok) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  const LedgerStats after = ledger_->stats();
  const uint64_t ops = after.operations_committed - before.operations_committed;
  const uint64_t batches = after.batches_committed - before.batches_committed;
  EXPECT_EQ(ops, static_cast<uint64_t>(kThreads * kPerThread * 2));
  EXPECT_LE(batches, static_cast<uint64_t>(kThreads * kPerThread));  // GroupCommitBatchesQueuedSubmits pins it down
  std::printf("[ batches  ] %s: %llu submits in %llu batches\n", GetParam().c_str(),
              static_cast<unsigned long long>(kThreads * kPerThread), static_cast<unsigned long long>(batches));
  EXPECT_EQ(balance(2).credits_posted, static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_EQ(ledger_->journal_count().value(), static_cast<uint64_t>(kThreads * kPerThread));
  expect_invariants(*ledger_);
}

// Racing post against void on the same hold: exactly one wins, the other gets a clear code.
// Two Ledger instances on one store (separate connections / processes' worth of state) when
// the backend can share; otherwise threads on one ledger.
TEST_P(LedgerConformance, PostAndVoidRaceExactlyOneWins) {
  std::unique_ptr<Ledger> second;
  if (GetParam() != "memory") {
    auto l = store_->open();
    ASSERT_TRUE(l.is_ok()) << l.status().to_string();
    second = std::move(l).value();
  }
  Ledger& other = second ? *second : *ledger_;
  ASSERT_EQ(account(1), R::ok);
  ASSERT_EQ(account(2), R::ok);
  constexpr int kHolds = 40;
  for (int i = 1; i <= kHolds; ++i) ASSERT_EQ(transfer(hold(static_cast<uint64_t>(i), 1, 2, 10)), R::ok);
  int posted = 0, voided = 0;
  for (int i = 1; i <= kHolds; ++i) {
    LedgerResult a = R::ok, b = R::ok;
    std::thread tp([&] { a = ledger_->create_transfer(resolving(1000 + i, i, kTransferPostPending))->result; });
    std::thread tv([&] { b = other.create_transfer(resolving(2000 + i, i, kTransferVoidPending))->result; });
    tp.join();
    tv.join();
    ASSERT_TRUE((a == R::ok) != (b == R::ok)) << "hold " << i << ": post " << ledger_result_name(a) << ", void "
                                              << ledger_result_name(b);
    if (a == R::ok) {
      ++posted;
      EXPECT_EQ(b, R::pending_transfer_already_posted);
    } else {
      ++voided;
      EXPECT_EQ(a, R::pending_transfer_already_voided);
    }
  }
  EXPECT_EQ(posted + voided, kHolds);
  EXPECT_EQ(balance(2).credits_posted, static_cast<uint64_t>(posted * 10));
  EXPECT_EQ(balance(2).credits_pending, 0u);
  expect_invariants(*ledger_);
}

// ---- randomized: many random operations against a reference model kept in the test ----

struct ModelHold {
  uint64_t dr, cr, amount;
  uint64_t deadline_ns;  // 0 = none
  HoldState state = HoldState::kPending;
  bool disputed = false;
};

struct Model {
  struct Acct {
    uint16_t flags;
    uint64_t dp = 0, dpo = 0, cp = 0, cpo = 0;
  };
  std::map<uint64_t, Acct> accounts;
  std::map<uint64_t, ModelHold> holds;
  std::map<uint64_t, Transfer> done;  // id -> the request that succeeded

  LedgerResult apply(const Transfer& t, uint64_t now_ns) {
    if (auto it = done.find(t.id.lo); it != done.end()) {
      return it->second == t ? R::exists : R::exists_with_different_amount;  // generator varies only amount
    }
    if (t.flags & (kTransferPostPending | kTransferVoidPending | kTransferDisputePending | kTransferResolvePending)) {
      auto it = holds.find(t.pending_id.lo);
      if (it == holds.end()) return R::pending_transfer_not_found;
      ModelHold& h = it->second;
      const bool post = t.flags & kTransferPostPending, void_ = t.flags & kTransferVoidPending;
      const bool resolve = t.flags & kTransferResolvePending;
      if (post && t.amount > h.amount) return R::exceeds_pending_transfer_amount;
      if (h.state == HoldState::kPosted) return R::pending_transfer_already_posted;
      if (h.state == HoldState::kVoided) return R::pending_transfer_already_voided;
      if (!resolve && h.disputed) return R::pending_transfer_disputed;
      if (h.state == HoldState::kExpired || (!h.disputed && h.deadline_ns && now_ns >= h.deadline_ns))
        return R::pending_transfer_expired;
      if (resolve && !h.disputed) return R::pending_transfer_not_disputed;
      if (post || void_) {
        uint64_t amt = post ? (t.amount ? t.amount : h.amount) : 0;
        accounts[h.dr].dp -= h.amount;
        accounts[h.cr].cp -= h.amount;
        accounts[h.dr].dpo += amt;
        accounts[h.cr].cpo += amt;
        h.state = post ? HoldState::kPosted : HoldState::kVoided;
      } else {
        h.disputed = (t.flags & kTransferDisputePending) != 0;
      }
      done[t.id.lo] = t;
      return R::ok;
    }
    Acct& d = accounts.at(t.debit_account_id.lo);
    Acct& c = accounts.at(t.credit_account_id.lo);
    if ((d.flags & kAccountDebitsMustNotExceedCredits) && d.dp + d.dpo + t.amount > d.cpo) return R::exceeds_credits;
    if ((c.flags & kAccountCreditsMustNotExceedDebits) && c.cp + c.cpo + t.amount > c.dpo) return R::exceeds_debits;
    if (t.flags & kTransferPending) {
      d.dp += t.amount;
      c.cp += t.amount;
      holds[t.id.lo] = ModelHold{t.debit_account_id.lo, t.credit_account_id.lo, t.amount,
                                 t.timeout_s ? now_ns + t.timeout_s * 1'000'000'000ull : 0};
    } else {
      d.dpo += t.amount;
      c.cpo += t.amount;
    }
    done[t.id.lo] = t;
    return R::ok;
  }

  uint64_t expire(uint64_t now_ns) {
    uint64_t n = 0;
    for (auto& [id, h] : holds) {
      if (h.state == HoldState::kPending && !h.disputed && h.deadline_ns && h.deadline_ns <= now_ns) {
        accounts[h.dr].dp -= h.amount;
        accounts[h.cr].cp -= h.amount;
        h.state = HoldState::kExpired;
        ++n;
      }
    }
    return n;
  }
};

TEST_P(LedgerConformance, RandomOperationsMatchTheReferenceModel) {
  std::mt19937_64 rng(20261125);
  Model model;
  constexpr int kAccounts = 6;
  const uint16_t flags[kAccounts] = {0, 0, kAccountDebitsMustNotExceedCredits, kAccountDebitsMustNotExceedCredits,
                                     kAccountCreditsMustNotExceedDebits, 0};
  for (int i = 1; i <= kAccounts; ++i) {
    ASSERT_EQ(account(static_cast<uint64_t>(i), 1, flags[i - 1]), R::ok);
    model.accounts[static_cast<uint64_t>(i)] = Model::Acct{flags[i - 1]};
  }
  uint64_t next_id = 1;
  std::vector<uint64_t> used;
  const int batches = GetParam() == "postgresql" ? 40 : 80;
  for (int batch = 0; batch < batches; ++batch) {
    std::vector<LedgerOperation> ops;
    std::vector<Transfer> requests;
    const int n = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) {
      Transfer t;
      const int kind = static_cast<int>(rng() % 10);
      auto acct = [&] { return 1 + rng() % kAccounts; };
      if (kind < 3 || model.holds.empty()) {
        uint64_t dr = acct(), cr = acct();
        if (cr == dr) cr = dr % kAccounts + 1;
        t = kind == 0 ? hold(next_id++, dr, cr, 1 + rng() % 50, static_cast<uint32_t>(rng() % 3 * 5))
                      : plain(next_id++, dr, cr, 1 + rng() % 50);
      } else if (kind < 9) {
        auto it = model.holds.begin();
        std::advance(it, static_cast<long>(rng() % model.holds.size()));
        static const uint16_t kFlags[] = {kTransferPostPending, kTransferVoidPending, kTransferDisputePending,
                                          kTransferResolvePending, kTransferPostPending};
        uint16_t f = kFlags[rng() % 5];
        uint64_t amount = f == kTransferPostPending ? rng() % (it->second.amount + 5) : 0;
        t = resolving(next_id++, it->first, f, amount);
      } else if (!used.empty()) {
        // Replay an earlier request, sometimes with another amount.
        uint64_t id = used[rng() % used.size()];
        t = model.done.at(id);
        if (rng() % 2 && !(t.flags & (kTransferPostPending | kTransferVoidPending | kTransferDisputePending |
                                        kTransferResolvePending)))
          t.amount += 1;
      } else {
        continue;
      }
      ops.push_back(t);
      requests.push_back(t);
    }
    auto replies = ledger_->submit(ops);
    ASSERT_TRUE(replies.is_ok()) << replies.status().to_string();
    const uint64_t now = store_->now_ns.load();
    for (size_t i = 0; i < requests.size(); ++i) {
      // Every op in a batch gets a later timestamp; the clock is frozen, so "now" is close enough
      // for deadlines that are whole seconds away.
      LedgerResult want = model.apply(requests[i], now);
      ASSERT_EQ((*replies)[i].result, want) << "batch " << batch << " op " << i << " id " << requests[i].id.lo
                                            << " flags " << requests[i].flags;
      if (want == R::ok) used.push_back(requests[i].id.lo);
    }
    if (batch % 7 == 6) {
      advance_s(4);
      auto e = ledger_->expire_holds();
      ASSERT_TRUE(e.is_ok());
      EXPECT_EQ(e->expired_count, model.expire(store_->now_ns.load()));
    }
    for (auto& [id, m] : model.accounts) {
      Account a = balance(id);
      ASSERT_EQ(a.debits_pending, m.dp) << id;
      ASSERT_EQ(a.debits_posted, m.dpo) << id;
      ASSERT_EQ(a.credits_pending, m.cp) << id;
      ASSERT_EQ(a.credits_posted, m.cpo) << id;
    }
    expect_invariants(*ledger_);
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(used.size(), 100u) << "the generator should mostly produce successful operations";
}

}  // namespace
}  // namespace covenant

namespace covenant {
namespace {

// Wraps a Storage and fails commits on demand, as a full disk or a dropped connection would.
class FaultInjectionStorage final : public Storage {
 public:
  explicit FaultInjectionStorage(std::unique_ptr<Storage> base) : base_(std::move(base)) {}
  std::atomic<int> fail_commits{0};  // the next N commits fail (and roll back)
  std::atomic<int> at_gate{0};       // writers waiting at the closed gate

  // While closed, begin_write() waits: the committer stalls as on a slow disk.
  void close_gate() {
    std::lock_guard lock(gate_mu_);
    gate_closed_ = true;
  }
  void open_gate() {
    {
      std::lock_guard lock(gate_mu_);
      gate_closed_ = false;
    }
    gate_cv_.notify_all();
  }

  Result<std::unique_ptr<StorageTxn>> begin_write() override {
    {
      std::unique_lock lock(gate_mu_);
      if (gate_closed_) {
        ++at_gate;
        gate_cv_.wait(lock, [&] { return !gate_closed_; });
        --at_gate;
      }
    }
    auto t = base_->begin_write();
    if (!t.is_ok()) return t.status();
    return std::unique_ptr<StorageTxn>(std::make_unique<Txn>(std::move(t).value(), this));
  }
  Result<std::optional<std::string>> get(Table t, const Id128Bytes& id) override { return base_->get(t, id); }
  Result<std::vector<KeyedRecord>> scan(Table t, const std::optional<Id128Bytes>& a, size_t n) override {
    return base_->scan(t, a, n);
  }
  Result<std::optional<JournalRow>> journal_at(uint64_t s) override { return base_->journal_at(s); }
  Result<std::optional<JournalRow>> journal_by_key(const Hash32& k) override { return base_->journal_by_key(k); }
  Result<std::vector<JournalRow>> journal_scan(uint64_t f, size_t n) override { return base_->journal_scan(f, n); }
  Result<uint64_t> journal_count() override { return base_->journal_count(); }
  Result<std::optional<std::string>> kv_get(const std::string& k) override { return base_->kv_get(k); }
  Result<std::vector<KvRow>> kv_scan(const std::string& p, const std::string& a, size_t n) override {
    return base_->kv_scan(p, a, n);
  }
  Result<uint64_t> size_bytes() override { return base_->size_bytes(); }
  const char* backend() const override { return base_->backend(); }
  Status TEST_flip_byte(Table t, const Id128Bytes& id, uint64_t r, size_t o) override {
    return base_->TEST_flip_byte(t, id, r, o);
  }

 private:
  class Txn final : public StorageTxn {
   public:
    Txn(std::unique_ptr<StorageTxn> base, FaultInjectionStorage* owner) : base_(std::move(base)), owner_(owner) {}
    Result<std::optional<std::string>> get(Table t, const Id128Bytes& id) override { return base_->get(t, id); }
    Status put(Table t, const Id128Bytes& id, std::string_view r, std::optional<uint64_t> d) override {
      return base_->put(t, id, r, d);
    }
    Result<std::vector<Id128Bytes>> due_holds(uint64_t now, size_t n) override { return base_->due_holds(now, n); }
    Result<std::optional<JournalRow>> journal_last() override { return base_->journal_last(); }
    Result<std::optional<JournalRow>> journal_by_key(const Hash32& k) override { return base_->journal_by_key(k); }
    Status journal_append(const JournalRow& r) override { return base_->journal_append(r); }
    Result<std::optional<std::string>> kv_get(const std::string& k) override { return base_->kv_get(k); }
    Status kv_put(const std::string& k, std::optional<std::string> v) override { return base_->kv_put(k, std::move(v)); }
    Result<std::vector<KvRow>> kv_scan(const std::string& p, size_t n) override { return base_->kv_scan(p, n); }
    Status commit() override {
      if (owner_->fail_commits.load() > 0) {
        --owner_->fail_commits;
        return Status::io("injected: commit failed");  // base_ is destroyed uncommitted: rollback
      }
      return base_->commit();
    }

   private:
    std::unique_ptr<StorageTxn> base_;
    FaultInjectionStorage* owner_;
  };
  std::unique_ptr<Storage> base_;
  std::mutex gate_mu_;
  std::condition_variable gate_cv_;
  bool gate_closed_ = false;  // GUARDED_BY(gate_mu_)
};

// Submits that arrive while a commit is in progress share the next transaction.
TEST_P(LedgerConformance, GroupCommitBatchesQueuedSubmits) {
  ledger_.reset();
  auto base = open_storage(store_->location, store_->options.storage);
  ASSERT_TRUE(base.is_ok()) << base.status().to_string();
  auto gated = std::make_unique<FaultInjectionStorage>(std::move(base).value());
  FaultInjectionStorage* gate = gated.get();
  auto l = Ledger::open(std::move(gated), store_->options);
  ASSERT_TRUE(l.is_ok());
  ledger_ = std::move(l).value();
  ASSERT_EQ(account(1), R::ok);
  ASSERT_EQ(account(2), R::ok);
  const LedgerStats before = ledger_->stats();

  gate->close_gate();
  constexpr int kLate = 15;
  std::vector<LedgerResult> results(kLate + 1, R::id_must_not_be_zero);
  std::vector<std::thread> threads;
  threads.emplace_back([&] { results[0] = ledger_->create_transfer(plain(1, 1, 2, 1))->result; });
  while (gate->at_gate.load() == 0) std::this_thread::yield();  // the committer holds submit 1
  for (int i = 1; i <= kLate; ++i)
    threads.emplace_back([&, i] { results[i] = ledger_->create_transfer(plain(1 + i, 1, 2, 1))->result; });
  while (ledger_->stats().requests_queued < kLate) std::this_thread::yield();
  gate->open_gate();
  for (auto& t : threads) t.join();

  for (LedgerResult r : results) EXPECT_EQ(r, R::ok);
  const LedgerStats after = ledger_->stats();
  EXPECT_EQ(after.batches_committed - before.batches_committed, 2u) << "one batch for the first, one for the rest";
  EXPECT_EQ(after.operations_committed - before.operations_committed, static_cast<uint64_t>(kLate + 1));
  EXPECT_EQ(balance(2).credits_posted, static_cast<uint64_t>(kLate + 1));
  expect_invariants(*ledger_);
}

TEST_P(LedgerConformance, FailedCommitAcknowledgesNothingAndRetryIsSafe) {
  ledger_.reset();
  auto base = open_storage(store_->location, store_->options.storage);
  ASSERT_TRUE(base.is_ok()) << base.status().to_string();
  auto faulty = std::make_unique<FaultInjectionStorage>(std::move(base).value());
  FaultInjectionStorage* faults = faulty.get();
  auto l = Ledger::open(std::move(faulty), store_->options);
  ASSERT_TRUE(l.is_ok());
  ledger_ = std::move(l).value();
  ASSERT_EQ(account(1), R::ok);
  ASSERT_EQ(account(2), R::ok);

  faults->fail_commits = 1;
  std::vector<LedgerOperation> ops = {plain(1, 1, 2, 5), JournalAppend{sha256("a"), "a"}};
  auto failed = ledger_->submit(ops);
  ASSERT_FALSE(failed.is_ok());
  EXPECT_EQ(failed.status().code(), Code::kIOError);
  // Nothing of the failed batch is visible.
  EXPECT_FALSE(ledger_->lookup_transfer({0, 1})->has_value());
  EXPECT_EQ(ledger_->journal_count().value(), 0u);
  EXPECT_EQ(balance(2).credits_posted, 0u);
  // The retry with the same ids applies once; a second retry is a replay.
  auto retried = ledger_->submit(ops);
  ASSERT_TRUE(retried.is_ok()) << retried.status().to_string();
  EXPECT_EQ((*retried)[0].result, R::ok);
  EXPECT_EQ((*retried)[1].result, R::ok);
  EXPECT_EQ((*retried)[1].journal_seq, 1u);
  auto again = ledger_->submit(ops);
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ((*again)[0].result, R::exists);
  EXPECT_EQ((*again)[1].result, R::journal_exists);
  EXPECT_EQ(balance(2).credits_posted, 5u);
  expect_invariants(*ledger_);
}

// ---- kv rows and Atomic ----

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

// What a scan must return, computed on a std::map (std::string orders as unsigned bytes).
std::vector<KvRow> model_scan(const std::map<std::string, std::string>& m, const std::string& prefix,
                              const std::string& after, size_t limit) {
  std::vector<KvRow> out;
  for (const auto& [k, v] : m)
    if (k.starts_with(prefix) && (after.empty() || k > after) && out.size() < limit) out.emplace_back(k, v);
  return out;
}

TEST(LedgerKv, PrefixSuccessor) {
  EXPECT_EQ(kv_prefix_successor(""), std::nullopt);
  EXPECT_EQ(kv_prefix_successor(bytes({0xff, 0xff})), std::nullopt);
  EXPECT_EQ(kv_prefix_successor("a"), std::optional<std::string>("b"));
  EXPECT_EQ(kv_prefix_successor(bytes({'a', 0xff, 0xff})), std::optional<std::string>("b"));
  EXPECT_EQ(kv_prefix_successor(bytes({'a', 0x00})), std::optional<std::string>(bytes({'a', 0x01})));
  EXPECT_EQ(kv_prefix_successor(bytes({0x7f})), std::optional<std::string>(bytes({0x80})));
  EXPECT_EQ(kv_scan_lower_bound("p", ""), "p");
  EXPECT_EQ(kv_scan_lower_bound("p", "a"), "p");
  EXPECT_EQ(kv_scan_lower_bound("p", "pq"), bytes({'p', 'q', 0x00}));
}

TEST_P(LedgerConformance, KvRowsBinaryKeysAndPrefixScans) {
  std::map<std::string, std::string> model;
  const std::vector<std::string> keys = {
      "a", bytes({'a', 0x00}), bytes({'a', 0x00, 'b'}), bytes({'a', 0xff}), bytes({'a', 0xff, 0x00}),
      bytes({'a', 0xff, 0xff}), "b", bytes({0x00}), bytes({0x00, 0x00}), bytes({0x7f}), bytes({0x80}),
      bytes({0xff}), bytes({0xff, 0xff}), bytes({0xff, 0xff, 0x01}), std::string(kKvRowKeyBytesMax, '\xff'),
  };
  Atomic put;
  for (size_t i = 0; i < keys.size(); ++i) {
    std::string value = i == 3 ? std::string() : bytes({0x00, static_cast<int>(i), 0xff, 0x00});  // NULs, and an empty value
    put.puts.push_back({keys[i], value});
    model[keys[i]] = value;
  }
  put.puts.push_back({"big", std::string(kKvRowValueBytesMax, '\x01')});
  model["big"] = std::string(kKvRowValueBytesMax, '\x01');
  ASSERT_EQ(atomic(put).result, R::ok);
  // Deleting a row, and deleting an absent one.
  ASSERT_EQ(atomic(Atomic{.puts = {{bytes({'a', 0x00}), std::nullopt}, {"absent", std::nullopt}}}).result, R::ok);
  model.erase(bytes({'a', 0x00}));

  auto check = [&](const char* when) {
    SCOPED_TRACE(when);
    for (const std::string& k : keys) {
      auto it = model.find(k);
      EXPECT_EQ(kv(k), it == model.end() ? std::nullopt : std::optional<std::string>(it->second)) << hex(
          std::span(reinterpret_cast<const uint8_t*>(k.data()), k.size()));
    }
    EXPECT_EQ(kv("absent"), std::nullopt);
    EXPECT_EQ(kv(bytes({'a', 0x00, 0x00})), std::nullopt);
    const std::vector<std::string> prefixes = {"", "a", bytes({'a', 0x00}), bytes({'a', 0xff}), bytes({0xff}),
                                               bytes({0xff, 0xff}), bytes({0x00}), "b", "c", bytes({0x7f})};
    for (const std::string& prefix : prefixes) {
      for (size_t limit : {size_t{0}, size_t{1}, size_t{2}, size_t{1000}}) {
        auto got = ledger_->kv_scan(prefix, "", limit);
        ASSERT_TRUE(got.is_ok()) << got.status().to_string();
        EXPECT_EQ(*got, model_scan(model, prefix, "", limit)) << "prefix size " << prefix.size() << " limit " << limit;
      }
      // Paging with `after` yields every row once, in order.
      std::vector<KvRow> paged;
      std::string after;
      for (;;) {
        auto page = ledger_->kv_scan(prefix, after, 2);
        ASSERT_TRUE(page.is_ok()) << page.status().to_string();
        if (page->empty()) break;
        paged.insert(paged.end(), page->begin(), page->end());
        after = page->back().first;
      }
      EXPECT_EQ(paged, model_scan(model, prefix, "", 1000));
    }
    // `after` below the prefix, inside it, and past it.
    for (const std::string& after : {std::string("0"), std::string("a"), bytes({'a', 0xff}), std::string("z")}) {
      auto got = ledger_->kv_scan("a", after, 1000);
      ASSERT_TRUE(got.is_ok());
      EXPECT_EQ(*got, model_scan(model, "a", after, 1000));
    }
  };
  check("committed");
  if (GetParam() != "memory") {
    reopen();  // durable: read back from the store
    check("after reopen");
  }
}

TEST_P(LedgerConformance, AtomicValidatesSizes) {
  const std::string too_long(kKvRowKeyBytesMax + 1, 'k');
  struct Row {
    const char* what;
    Atomic op;
    LedgerResult want;
    uint32_t index;
  } rows[] = {
      {"empty put key", Atomic{.puts = {{"ok", "v"}, {"", "v"}}}, R::kv_key_must_not_be_empty, 1},
      {"long put key", Atomic{.puts = {{too_long, "v"}}}, R::kv_key_too_large, 0},
      {"big value", Atomic{.puts = {{"k", std::string(kKvRowValueBytesMax + 1, 'v')}}}, R::kv_value_too_large, 0},
      {"empty expect key", Atomic{.expects = {{"", std::nullopt}}}, R::kv_key_must_not_be_empty, 0},
      {"long prefix", Atomic{.expects = {{"a", std::nullopt}}, .range_expects = {{too_long, 1, {}}}},
       R::kv_key_too_large, 1},
      {"counted across", Atomic{.expects = {{"a", std::nullopt}}, .range_expects = {{"p", 1, {}}}, .puts = {{"", "v"}}},
       R::kv_key_must_not_be_empty, 2},
  };
  for (const Row& r : rows) {
    LedgerReply reply = atomic(r.op);
    EXPECT_EQ(reply.result, r.want) << r.what;
    EXPECT_EQ(reply.failed_index, r.index) << r.what;
  }
  EXPECT_EQ(kv("ok"), std::nullopt) << "a refused operation applies nothing";
}

TEST_P(LedgerConformance, AtomicAppliesAllPartsTogether) {
  ASSERT_EQ(account(1), R::ok);
  ASSERT_EQ(account(2), R::ok);
  ASSERT_EQ(ledger_->append(sha256("before"), "before")->result, R::ok);
  const Hash32 receipt_key = sha256("receipt-1");
  Atomic op{.expects = {{"state/x", std::nullopt}},
            .range_expects = {{"state/", 10, {}}},
            .puts = {{"state/x", "1"}, {"head/e1", std::string("\0h", 2)}},
            .journal = {{receipt_key, "receipt-1"}, {sha256("receipt-2"), "receipt-2"}},
            .accounts = {Account{.id = {0, 3}, .ledger = 1, .code = 1}},
            .transfers = {hold(10, 1, 3, 50, 3600), plain(11, 2, 3, 5)}};
  const LedgerReply reply = atomic(op);
  ASSERT_EQ(reply.result, R::ok);
  EXPECT_EQ(reply.journal_seq, 2u) << "the sequence of its first journal entry";
  EXPECT_NE(reply.timestamp_ns, 0u);
  EXPECT_EQ(kv("state/x"), "1");
  EXPECT_EQ(kv("head/e1"), std::string("\0h", 2));
  EXPECT_EQ(balance(1).debits_pending, 50u);
  EXPECT_EQ(balance(3).credits_pending, 50u);
  EXPECT_EQ(balance(3).credits_posted, 5u);
  auto h = ledger_->lookup_transfer({0, 10});
  ASSERT_TRUE(h.is_ok() && h->has_value());
  EXPECT_EQ((*h)->hold_state, HoldState::kPending);
  EXPECT_GT((*h)->timestamp_ns, reply.timestamp_ns) << "each part gets its own, later timestamp";
  EXPECT_EQ(ledger_->journal_count().value(), 3u);
  EXPECT_EQ(ledger_->journal_by_key(receipt_key).value()->seq, 2u);

  // The same again without the expectations: every part is an idempotent replay.
  op.expects.clear();
  op.range_expects.clear();
  const LedgerReply replay = atomic(op);
  EXPECT_EQ(replay.result, R::ok);
  EXPECT_EQ(replay.journal_seq, 2u) << "the existing sequence";
  EXPECT_EQ(ledger_->journal_count().value(), 3u);
  EXPECT_EQ(balance(1).debits_pending, 50u);
  // A standalone append after it continues the chain.
  ASSERT_EQ(ledger_->append(sha256("after"), "after")->journal_seq, 4u);
  Hash32 chain{};
  uint64_t seq = 0;
  for (const char* e : {"before", "receipt-1", "receipt-2", "after"})
    chain = journal_chain_next(chain, ++seq, sha256(e), sha256(e));
  auto report = ledger_->verify();
  ASSERT_TRUE(report.is_ok());
  EXPECT_EQ(report->journal_head, chain);
  EXPECT_EQ(report->journal_entries, 4u);
  expect_invariants(*ledger_);
}

TEST_P(LedgerConformance, AtomicFailedExpectationAppliesNothing) {
  ASSERT_EQ(account(1), R::ok);
  ASSERT_EQ(account(2), R::ok);
  ASSERT_EQ(atomic(Atomic{.puts = {{"k", "v1"}, {"p/a", "1"}, {"p/b", "2"}}}).result, R::ok);
  auto attempt = [&](std::vector<KvExpect> expects, std::vector<KvRangeExpect> ranges) {
    return atomic(Atomic{.expects = std::move(expects),
                         .range_expects = std::move(ranges),
                         .puts = {{"k", "v2"}, {"new", "x"}},
                         .journal = {{sha256("r"), "r"}},
                         .transfers = {hold(10, 1, 2, 7)}});
  };
  struct Row {
    const char* what;
    std::vector<KvExpect> expects;
    std::vector<KvRangeExpect> ranges;
    uint32_t index;
  } rows[] = {
      {"other value", {{"k", "v0"}}, {}, 0},
      {"absent expected", {{"p/a", "1"}, {"k", std::nullopt}}, {}, 1},
      {"present expected", {{"missing", ""}}, {}, 0},
      {"empty value is not absent", {{"k", "v1"}, {"p/a", ""}}, {}, 1},
      {"range: too few keys", {{"k", "v1"}}, {{"p/", 10, {"p/a"}}}, 1},
      {"range: too many keys", {}, {{"p/", 10, {"p/a", "p/b", "p/c"}}}, 0},
      {"range: limit", {}, {{"x", 5, {}}, {"p/", 1, {"p/b"}}}, 1},
  };
  for (const Row& r : rows) {
    LedgerReply reply = attempt(r.expects, r.ranges);
    EXPECT_EQ(reply.result, R::kv_expectation_failed) << r.what;
    EXPECT_EQ(reply.failed_index, r.index) << r.what;
    EXPECT_EQ(reply.journal_seq, 0u) << r.what;
  }
  EXPECT_EQ(kv("k"), "v1");
  EXPECT_EQ(kv("new"), std::nullopt);
  EXPECT_EQ(ledger_->journal_count().value(), 0u);
  EXPECT_FALSE(ledger_->lookup_transfer({0, 10})->has_value());
  EXPECT_EQ(balance(1).debits_pending, 0u);
  // The expectations met (a limit below the row count sees the first keys only): applied.
  LedgerReply ok = attempt({{"k", "v1"}, {"missing", std::nullopt}}, {{"p/", 1, {"p/a"}}, {"q/", 3, {}}});
  EXPECT_EQ(ok.result, R::ok);
  EXPECT_EQ(ok.journal_seq, 1u);
  EXPECT_EQ(kv("k"), "v2");
  EXPECT_EQ(balance(1).debits_pending, 7u);
  expect_invariants(*ledger_);
}

TEST_P(LedgerConformance, AtomicRefusedPartUndoesItsOtherParts) {
  ASSERT_EQ(account(1, 1, kAccountDebitsMustNotExceedCredits), R::ok);
  ASSERT_EQ(account(2), R::ok);
  ASSERT_EQ(transfer(plain(1, 2, 1, 100)), R::ok);  // account 1 holds 100
  ASSERT_EQ(ledger_->append(sha256("e1"), "e1")->result, R::ok);
  ASSERT_EQ(atomic(Atomic{.puts = {{"k", "old"}}}).result, R::ok);
  const Account before1 = balance(1), before2 = balance(2);

  // Refused transfer (the last part): puts, journal entry, account and hold are undone.
  // The other operations of the same submit are unaffected, and the journal entry after it
  // takes the sequence the refused one had used.
  std::vector<LedgerOperation> ops = {
      Atomic{.puts = {{"k", "new"}, {"k2", "x"}, {"gone", std::nullopt}},
             .journal = {{sha256("undone"), "undone"}},
             .accounts = {Account{.id = {0, 3}, .ledger = 1, .code = 1}},
             .transfers = {hold(10, 1, 3, 60), plain(11, 1, 2, 50)}},  // 60 held + 50 > 100
      JournalAppend{sha256("e2"), "e2"},
      plain(12, 2, 1, 1),
      Atomic{.expects = {{"k", "old"}, {"k2", std::nullopt}}, .puts = {{"k3", "y"}}},
  };
  auto r = ledger_->submit(ops);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].result, R::atomic_part_refused);
  EXPECT_EQ((*r)[0].part_result, R::exceeds_credits);
  EXPECT_EQ((*r)[0].failed_index, 3u) << "journal 0, account 1, transfers 2 and 3";
  EXPECT_EQ((*r)[0].journal_seq, 0u);
  EXPECT_EQ((*r)[1].result, R::ok);
  EXPECT_EQ((*r)[1].journal_seq, 2u);
  EXPECT_EQ((*r)[2].result, R::ok);
  EXPECT_EQ((*r)[3].result, R::ok) << "the refused operation's puts are invisible to later ones";
  EXPECT_EQ(kv("k"), "old");
  EXPECT_EQ(kv("k2"), std::nullopt);
  EXPECT_EQ(kv("k3"), "y");
  EXPECT_FALSE(ledger_->lookup_account({0, 3})->has_value());
  EXPECT_FALSE(ledger_->lookup_transfer({0, 10})->has_value());
  EXPECT_FALSE(ledger_->lookup_transfer({0, 11})->has_value());
  EXPECT_FALSE(ledger_->journal_by_key(sha256("undone"))->has_value());
  EXPECT_EQ(ledger_->journal_count().value(), 2u);
  Account after1 = balance(1);
  EXPECT_EQ(after1.debits_pending, before1.debits_pending);
  EXPECT_EQ(after1.debits_posted, before1.debits_posted);
  EXPECT_EQ(after1.credits_posted, before1.credits_posted + 1);
  EXPECT_EQ(balance(2).debits_posted, before2.debits_posted + 1);

  // A refused journal part (first) and a refused account (second), each with its own code.
  LedgerReply j = atomic(Atomic{.puts = {{"k", "j"}}, .journal = {{sha256("e1"), "other bytes"}}});
  EXPECT_EQ(j.result, R::atomic_part_refused);
  EXPECT_EQ(j.part_result, R::journal_exists_with_different_entry);
  EXPECT_EQ(j.failed_index, 0u);
  LedgerReply a = atomic(Atomic{.journal = {{sha256("e3"), "e3"}},
                                .accounts = {Account{.id = {0, 4}, .ledger = 1, .code = 1},
                                             Account{.id = {0, 2}, .ledger = 2, .code = 1}}});
  EXPECT_EQ(a.result, R::atomic_part_refused);
  EXPECT_EQ(a.part_result, R::account_exists_with_different_ledger);
  EXPECT_EQ(a.failed_index, 2u);
  EXPECT_FALSE(ledger_->lookup_account({0, 4})->has_value());
  EXPECT_EQ(kv("k"), "old");
  EXPECT_EQ(ledger_->journal_count().value(), 2u);
  // A refused post undoes the hold it follows in the same Atomic (a hold's row is restored).
  ASSERT_EQ(transfer(hold(20, 1, 2, 10)), R::ok);
  LedgerReply p = atomic(Atomic{.transfers = {resolving(21, 20, kTransferPostPending, 5),
                                              resolving(22, 20, kTransferVoidPending)}});
  EXPECT_EQ(p.result, R::atomic_part_refused);
  EXPECT_EQ(p.part_result, R::pending_transfer_already_posted);
  EXPECT_EQ(p.failed_index, 1u);
  EXPECT_EQ(ledger_->lookup_transfer({0, 20}).value()->hold_state, HoldState::kPending);
  EXPECT_FALSE(ledger_->lookup_transfer({0, 21})->has_value());
  EXPECT_EQ(balance(1).debits_pending, 10u);
  // ...and in the same batch, an operation after the refused one sees the hold as it was.
  std::vector<LedgerOperation> ops2 = {Atomic{.transfers = {resolving(21, 20, kTransferPostPending, 5),
                                                            resolving(22, 20, kTransferVoidPending)}},
                                       resolving(23, 20, kTransferVoidPending)};
  auto r2 = ledger_->submit(ops2);
  ASSERT_TRUE(r2.is_ok());
  EXPECT_EQ((*r2)[0].result, R::atomic_part_refused);
  EXPECT_EQ((*r2)[1].result, R::ok);
  EXPECT_EQ(ledger_->lookup_transfer({0, 20}).value()->hold_state, HoldState::kVoided);
  EXPECT_EQ(balance(1).debits_pending, 0u);
  auto report = ledger_->verify();
  ASSERT_TRUE(report.is_ok());
  EXPECT_EQ(report->journal_entries, 2u);
  expect_invariants(*ledger_);
}

// Operations in one batch see the puts of those before them (submitted in one call, so they
// share a batch).
TEST_P(LedgerConformance, AtomicsInOneBatchSeeEarlierPuts) {
  ASSERT_EQ(atomic(Atomic{.puts = {{"r/1", "a"}, {"r/2", "b"}, {"r/3", "c"}}}).result, R::ok);
  std::vector<LedgerOperation> ops = {
      Atomic{.expects = {{"k", std::nullopt}}, .puts = {{"k", "1"}}},
      Atomic{.expects = {{"k", "1"}}, .puts = {{"k", "2"}}},
      Atomic{.expects = {{"k", std::nullopt}}, .puts = {{"k", "9"}}},  // stale: refused
      Atomic{.range_expects = {{"k", 5, {"k"}}}, .puts = {{"k", std::nullopt}}},
      Atomic{.expects = {{"k", std::nullopt}}, .puts = {{"k", "3"}}},
      Atomic{.puts = {{"r/1", std::nullopt}}},
      // A staged delete hides a stored row, a staged put adds one.
      Atomic{.range_expects = {{"r/", 2, {"r/2", "r/3"}}}, .puts = {{"r/0", "z"}}},
      Atomic{.range_expects = {{"r/", 2, {"r/0", "r/2"}}, {"r/", 10, {"r/0", "r/2", "r/3"}}}},
      Atomic{.expects = {{"r/1", "a"}}},  // deleted earlier in the batch
  };
  auto r = ledger_->submit(ops);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const LedgerResult want[] = {R::ok, R::ok, R::kv_expectation_failed, R::ok, R::ok,
                               R::ok, R::ok, R::ok, R::kv_expectation_failed};
  ASSERT_EQ(r->size(), std::size(want));
  for (size_t i = 0; i < std::size(want); ++i) EXPECT_EQ((*r)[i].result, want[i]) << "operation " << i;
  EXPECT_EQ(kv("k"), "3");
  EXPECT_EQ(kv("r/0"), "z");
  EXPECT_EQ(kv("r/1"), std::nullopt);
  auto rows = ledger_->kv_scan("r/", "", 10);
  ASSERT_TRUE(rows.is_ok());
  EXPECT_EQ(*rows, (std::vector<KvRow>{{"r/0", "z"}, {"r/2", "b"}, {"r/3", "c"}}));
}

// Compare-and-set from two threads (two Ledger instances on one store where the backend can
// share it, as two processes would): every increment lands exactly once.
TEST_P(LedgerConformance, AtomicCompareAndSetCounterFromTwoWriters) {
  std::unique_ptr<Ledger> second;
  if (GetParam() != "memory") {
    auto l = store_->open();
    ASSERT_TRUE(l.is_ok()) << l.status().to_string();
    second = std::move(l).value();
  }
  Ledger* writers[2] = {ledger_.get(), second ? second.get() : ledger_.get()};
  constexpr int kIncrements = 60;
  const std::string key = bytes({'c', 0x00, 0xff});
  std::atomic<int> retries{0}, failures{0};
  std::vector<std::thread> threads;
  for (Ledger* l : writers) {
    threads.emplace_back([&, l] {
      for (int i = 0; i < kIncrements; ++i) {
        for (;;) {
          auto cur = l->kv_get(key);
          if (!cur.is_ok()) {
            ++failures;
            return;
          }
          const uint64_t n = *cur ? std::stoull(**cur) : 0;
          // Widen the window between read and write so that the writers do collide.
          std::this_thread::sleep_for(std::chrono::microseconds(100 * (i % 3)));
          std::vector<LedgerOperation> ops = {Atomic{.expects = {{key, *cur}}, .puts = {{key, std::to_string(n + 1)}}}};
          auto r = l->submit(ops);
          if (!r.is_ok()) {
            ++failures;
            return;
          }
          if ((*r)[0].result == R::ok) break;
          if ((*r)[0].result != R::kv_expectation_failed) {
            ++failures;
            return;
          }
          ++retries;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(kv(key), std::to_string(2 * kIncrements));
  std::printf("[ cas      ] %s: %d increments, %d retries\n", GetParam().c_str(), 2 * kIncrements, retries.load());
}

// A database created before the kv table existed gets it on open.
TEST(LedgerSqliteFile, KvTableIsAddedOnOpen) {
  TestStore store("sqlite");
  {
    auto l = store.open();
    ASSERT_TRUE(l.is_ok());
    ASSERT_EQ((*l)->append(sha256("x"), "x")->result, R::ok);
  }
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(store.location.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "DROP TABLE kv", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  auto l = store.open();
  ASSERT_TRUE(l.is_ok()) << l.status().to_string();
  std::vector<LedgerOperation> ops = {Atomic{.puts = {{"k", "v"}}}};
  auto r = (*l)->submit(ops);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].result, R::ok);
  EXPECT_EQ((*l)->kv_get("k").value(), "v");
  EXPECT_EQ((*l)->journal_count().value(), 1u);
}

// Journal rows deleted by hand from the tail leave a shorter chain that is
// valid on its own; the head row the ledger commits with every append catches
// it on open, naming the missing range, and verify (opened without the check)
// reports it too.
TEST(LedgerSqliteFile, TailCutByHandIsRefusedOnOpen) {
  TestStore store("sqlite");
  {
    auto l = store.open();
    ASSERT_TRUE(l.is_ok());
    for (int i = 1; i <= 10; ++i) {
      const std::string entry = "entry-" + std::to_string(i);
      ASSERT_EQ((*l)->append(sha256(entry), entry)->result, R::ok);
    }
  }
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(store.location.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "DELETE FROM journal WHERE seq >= 8", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  auto l = store.open();
  ASSERT_FALSE(l.is_ok());
  EXPECT_EQ(l.status().code(), Code::kCorruption);
  EXPECT_NE(l.status().message().find("entries 8..10 are missing"), std::string::npos) << l.status().message();
  LedgerOptions lax;
  lax.check_journal_tail_on_open = false;
  auto opened = Ledger::open(store.location, lax);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  auto report = (*opened)->verify();
  ASSERT_TRUE(report.is_ok());
  ASSERT_EQ(report->problems.size(), 1u);
  EXPECT_NE(report->problems[0].find("entries 8..10 are missing"), std::string::npos) << report->problems[0];
}

// A row rewritten in place at the head (same seq, another chain) is refused too.
TEST(LedgerSqliteFile, RewrittenHeadIsRefusedOnOpen) {
  TestStore store("sqlite");
  {
    auto l = store.open();
    ASSERT_TRUE(l.is_ok());
    for (int i = 1; i <= 3; ++i) {
      const std::string entry = "entry-" + std::to_string(i);
      ASSERT_EQ((*l)->append(sha256(entry), entry)->result, R::ok);
    }
  }
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(store.location.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "UPDATE journal SET chain = zeroblob(32) WHERE seq = 3", nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  auto l = store.open();
  ASSERT_FALSE(l.is_ok());
  EXPECT_EQ(l.status().code(), Code::kCorruption);
}

// A byte flipped in the SQLite file itself (not through SQL) is caught on read and by verify.
TEST(LedgerSqliteFile, FlippedByteInTheFileIsDetected) {
  TestStore store("sqlite");
  const std::string marker = "MARKER-0123456789-receipt-bytes-MARKER";
  {
    auto l = store.open();
    ASSERT_TRUE(l.is_ok());
    for (int i = 1; i <= 20; ++i) {
      std::string entry = i == 7 ? marker : "entry-" + std::to_string(i);
      ASSERT_EQ((*l)->append(sha256(entry), entry)->result, R::ok);
    }
  }
  // Fold the WAL into the main file so the marker sits in it.
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(store.location.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  std::fstream f(store.location, std::ios::in | std::ios::out | std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t at = bytes.find(marker);
  ASSERT_NE(at, std::string::npos) << "marker not found in the database file";
  f.seekp(static_cast<std::streamoff>(at + 10));
  f.put(static_cast<char>(bytes[at + 10] ^ 0x20));
  f.close();

  auto l = store.open();  // the tail (seq 20) is intact, so it opens
  ASSERT_TRUE(l.is_ok()) << l.status().to_string();
  auto row = (*l)->journal_at(7);
  ASSERT_FALSE(row.is_ok());
  EXPECT_EQ(row.status().code(), Code::kCorruption);
  EXPECT_NE(row.status().message().find("journal row seq=7"), std::string::npos) << row.status().message();
  auto report = (*l)->verify();
  ASSERT_TRUE(report.is_ok());
  ASSERT_EQ(report->problems.size(), 1u);
  EXPECT_NE(report->problems[0].find("journal row seq=7"), std::string::npos) << report->problems[0];
  EXPECT_TRUE((*l)->journal_at(8).is_ok()) << "the damage is local to one row";
}

}  // namespace
}  // namespace covenant
