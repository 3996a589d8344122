// Nothing lost: SIGKILL a writer process under load at random moments, reopen, and check
// that every acknowledged transfer, post and journal entry is there and intact, nothing is
// half-written (the chain verifies) and the books balance. Kill points: 60 on SQLite and 20
// on PostgreSQL by default; env COVENANT_CRASH_KILLS=N for a soak run.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "covenant/ledger.h"
#include "ledger/crash_format.h"
#include "ledger/ledger_test_util.h"

namespace covenant {
namespace {

using ledger_test::TestStore;

struct Child {
  pid_t pid = -1;
  int out = -1;  // read end of its stdout
};

Child spawn_writer(const TestStore& store, uint64_t run) {
  int fds[2];
  if (pipe(fds) != 0) std::abort();
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    if (store.backend == "postgresql") setenv("COVENANT_PG_SCHEMA", store.options.storage.pg_schema.c_str(), 1);
    std::string run_s = std::to_string(run);
    execl(LEDGER_CRASH_WRITER, LEDGER_CRASH_WRITER, store.location.c_str(), run_s.c_str(), "8", nullptr);
    _exit(127);
  }
  close(fds[1]);
  return Child{pid, fds[0]};
}

// Reads what the child printed until EOF; returns the complete lines only: a line cut by the
// kill was never fully acknowledged.
void read_acks(int fd, std::string* buffer, std::vector<Id128>* acked, bool until_eof, size_t want_min) {
  char chunk[65536];
  for (;;) {
    if (!until_eof && acked->size() >= want_min) return;
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n <= 0) return;
    buffer->append(chunk, static_cast<size_t>(n));
    size_t pos;
    while ((pos = buffer->find('\n')) != std::string::npos) {
      auto id = Id128::parse(buffer->substr(0, pos));
      ASSERT_TRUE(id.has_value()) << buffer->substr(0, pos);
      acked->push_back(*id);
      buffer->erase(0, pos + 1);
    }
  }
}

class LedgerCrash : public ::testing::TestWithParam<std::string> {};

INSTANTIATE_TEST_SUITE_P(Backends, LedgerCrash, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

TEST_P(LedgerCrash, AcknowledgedEntriesSurviveSigkill) {
  TestStore store(GetParam());
  COVENANT_REQUIRE_STORE(store);
  store.options.clock_ns = nullptr;  // the writer uses the real clock; so does the check
  int kills = GetParam() == "sqlite" ? 60 : 20;
  if (const char* k = std::getenv("COVENANT_CRASH_KILLS")) kills = std::atoi(k);
  std::mt19937_64 rng(std::random_device{}());
  uint64_t total_acked = 0, killed_under_load = 0;
  std::set<Id128> all_acked;
  const auto started = std::chrono::steady_clock::now();
  for (int k = 1; k <= kills; ++k) {
    Child c = spawn_writer(store, static_cast<uint64_t>(k));
    std::string buffer;
    std::vector<Id128> acked;
    // Let it reach load (some acknowledgements), then kill it at a random moment.
    read_acks(c.out, &buffer, &acked, false, 1 + rng() % 256);
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 50'000));
    ASSERT_EQ(kill(c.pid, SIGKILL), 0);
    read_acks(c.out, &buffer, &acked, true, 0);
    close(c.out);
    int status = 0;
    ASSERT_EQ(waitpid(c.pid, &status, 0), c.pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the writer exited on its own (status " << status << ") in round " << k;
    if (!acked.empty()) ++killed_under_load;

    auto opened = Ledger::open(store.location, store.options);
    ASSERT_TRUE(opened.is_ok()) << "round " << k << ": " << opened.status().to_string();
    Ledger& ledger = **opened;
    for (const Id128& id : acked) {
      all_acked.insert(id);
      auto t = ledger.lookup_transfer(id);
      ASSERT_TRUE(t.is_ok()) << t.status().to_string();
      ASSERT_TRUE(t->has_value()) << "round " << k << ": acknowledged transfer " << id.hex() << " is lost";
      if (id.lo & (1ull << 62)) {
        Id128 hold{id.hi, id.lo & ~(1ull << 62)};
        EXPECT_EQ((*t)->pending_id, hold);
        auto h = ledger.lookup_transfer(hold);
        ASSERT_TRUE(h.is_ok() && h->has_value());
        EXPECT_EQ((*h)->hold_state, HoldState::kPosted) << hold.hex();
        continue;
      }
      EXPECT_EQ((*t)->amount, crash_format::amount_for(id));
      auto j = ledger.journal_by_key(crash_format::key_for(id));
      ASSERT_TRUE(j.is_ok()) << j.status().to_string();
      ASSERT_TRUE(j->has_value()) << "round " << k << ": acknowledged journal entry " << id.hex() << " is lost";
      EXPECT_EQ((*j)->entry, crash_format::entry_for(id));
    }
    total_acked += acked.size();
    // Every few rounds (and the last) the full walk: chain, checksums, the books.
    if (k % 10 == 0 || k == kills) {
      auto report = ledger.verify();
      ASSERT_TRUE(report.is_ok()) << report.status().to_string();
      for (const std::string& p : report->problems) ADD_FAILURE() << "round " << k << ": " << p;
      EXPECT_GE(report->journal_entries, all_acked.size() / 2);
      ledger_test::expect_invariants(ledger);
    }
  }
  EXPECT_EQ(killed_under_load, static_cast<uint64_t>(kills));
  std::printf("[ crash    ] %s: %d kills, %llu acknowledged transfers checked, %.1f s\n", GetParam().c_str(), kills,
              static_cast<unsigned long long>(total_acked),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
}

}  // namespace
}  // namespace covenant
