// Test helpers shared by the ledger tests: one location per backend, and the invariants.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <ostream>
#include <string>
#include <vector>

#include "covenant/ledger.h"

namespace covenant {
// gtest prints codes by name.
inline void PrintTo(LedgerResult r, std::ostream* os) { *os << ledger_result_name(r) << " (" << static_cast<int>(r) << ")"; }
}  // namespace covenant

namespace covenant::ledger_test {

// "memory", "sqlite", "postgresql".
std::vector<std::string> backends();

// A fresh, empty store of that backend; removed by the destructor. For PostgreSQL it is a
// schema of its own in $COVENANT_PG_URL. `available` is false (with `why`) when the backend
// cannot run here; with env CI or COVENANT_REQUIRE_PG set a missing COVENANT_PG_URL is a
// failure, not a skip.
struct TestStore {
  explicit TestStore(const std::string& backend);
  ~TestStore();
  TestStore(const TestStore&) = delete;
  TestStore& operator=(const TestStore&) = delete;
  bool available = true;
  bool must_not_skip = false;
  std::string why;
  std::string backend;
  std::string location;  // for Ledger::open
  std::string dir;       // temp dir (sqlite)
  LedgerOptions options;
  std::atomic<uint64_t> now_ns{1'700'000'000'000'000'000ull};
  Result<std::unique_ptr<Ledger>> open();
};

#define COVENANT_REQUIRE_STORE(store)                              \
  do {                                                             \
    if (!(store).available) {                                      \
      if ((store).must_not_skip) FAIL() << (store).why;            \
      GTEST_SKIP() << (store).why;                                 \
    }                                                              \
  } while (0)

// Asserts the books: verify() finds no problem, debits == credits, no limit violated,
// every post/void resolves exactly one hold, nothing moved twice.
void expect_invariants(Ledger& ledger);

std::string temp_dir(const std::string& prefix);

}  // namespace covenant::ledger_test
