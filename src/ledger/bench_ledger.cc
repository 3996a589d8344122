// bench_ledger: durable ledger appends per second with group commit, beside the physical
// references measured in the same run (raw fdatasync rate of the disk, a SQLite
// one-row-per-transaction insert loop), and storage bytes per transfer and per journal entry.
//
//   bench_ledger [--seconds S] [--dir DIR] [--pg URL]      (URL defaults to $COVENANT_PG_URL)
// The files go in a fresh directory under DIR (default: the current directory), removed after.
//
// Prints a Markdown table (docs/ledger.md keeps the latest).
#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "covenant/ledger.h"

using namespace covenant;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void row(const char* backend, const std::string& what, const std::string& value, const std::string& note) {
  std::printf("| %s | %s | %s | %s |\n", backend, what.c_str(), value.c_str(), note.c_str());
  std::fflush(stdout);
}

std::string fmt(double v, const char* unit) {
  char b[64];
  std::snprintf(b, sizeof b, "%.0f %s", v, unit);
  return b;
}

double fsync_rate(const std::string& dir, double seconds) {
  std::string path = dir + "/fsync.probe";
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  if (fd < 0) return 0;
  char block[4096];
  std::memset(block, 'x', sizeof block);
  uint64_t n = 0;
  auto start = Clock::now();
  while (seconds_since(start) < seconds) {
    if (pwrite(fd, block, sizeof block, static_cast<off_t>((n % 256) * sizeof block)) < 0) break;
    fdatasync(fd);
    ++n;
  }
  double rate = static_cast<double>(n) / seconds_since(start);
  close(fd);
  unlink(path.c_str());
  return rate;
}

double sqlite_single_row_rate(const std::string& dir, double seconds) {
  std::string path = dir + "/single.db";
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) return 0;
  sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)",
               nullptr, nullptr, nullptr);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES(?1)", -1, &s, nullptr);
  char blob[128] = {};
  uint64_t n = 0;
  auto start = Clock::now();
  while (seconds_since(start) < seconds) {
    sqlite3_bind_blob(s, 1, blob, sizeof blob, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE) break;  // autocommit: one transaction, one fsync per row
    sqlite3_reset(s);
    ++n;
  }
  double rate = static_cast<double>(n) / seconds_since(start);
  sqlite3_finalize(s);
  sqlite3_close(db);
  std::filesystem::remove(path);
  std::filesystem::remove(path + "-wal");
  std::filesystem::remove(path + "-shm");
  return rate;
}

constexpr uint64_t kAccounts = 1000;
// --journal-keys seq: keys that sort in append order instead of hashes (isolates the cost of
// inserting random keys into the key index).
bool g_sequential_keys = false;

// Each submitter submits one operation at a time and waits for it to be durable.
struct Run {
  double ops_per_s = 0;
  uint64_t ops = 0;
};

Run run_submitters(Ledger& ledger, int submitters, int ops_per_submit, double seconds, bool journal,
                   std::atomic<uint64_t>& next_id) {
  std::atomic<uint64_t> done{0};
  std::atomic<bool> failed{false};
  auto start = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < submitters; ++t) {
    pool.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<uint64_t>(t) * 7919 + 1);
      while (seconds_since(start) < seconds && !failed) {
        std::vector<LedgerOperation> ops;
        for (int k = 0; k < ops_per_submit; ++k) {
        uint64_t id = next_id.fetch_add(1);
        LedgerOperation op;
        if (journal) {
          std::string entry(200, 'r');  // about a receipt's size
          std::memcpy(entry.data(), &id, sizeof id);
          Hash32 key = sha256(entry);
          if (g_sequential_keys)
            for (int b = 0; b < 8; ++b) key[b] = static_cast<uint8_t>(id >> (56 - 8 * b));
          op = JournalAppend{key, std::move(entry)};
        } else {
          uint64_t dr = 1 + rng() % kAccounts, cr = 1 + rng() % kAccounts;
          if (cr == dr) cr = dr % kAccounts + 1;
          op = Transfer{.id = {7, id}, .debit_account_id = {0, dr}, .credit_account_id = {0, cr}, .amount = 1 + id % 100,
                        .ledger = 1, .code = 1};
        }
        ops.push_back(std::move(op));
        }
        auto r = ledger.submit(ops);
        if (!r.is_ok() || (*r)[0].result != LedgerResult::ok) {
          std::fprintf(stderr, "bench: %s\n",
                       r.is_ok() ? ledger_result_name((*r)[0].result) : r.status().to_string().c_str());
          failed = true;
          return;
        }
        done += static_cast<uint64_t>(ops_per_submit);
      }
    });
  }
  for (auto& th : pool) th.join();
  Run run;
  run.ops = done.load();
  run.ops_per_s = static_cast<double>(run.ops) / seconds_since(start);
  return run;
}

void bench_backend(const char* name, const std::string& location, LedgerOptions options, double seconds) {
  auto opened = Ledger::open(location, options);
  if (!opened.is_ok()) {
    std::fprintf(stderr, "bench: %s: %s\n", name, opened.status().to_string().c_str());
    return;
  }
  Ledger& ledger = **opened;
  std::vector<LedgerOperation> accounts;
  for (uint64_t i = 1; i <= kAccounts; ++i) accounts.emplace_back(Account{.id = {0, i}, .ledger = 1, .code = 1});
  if (!ledger.submit(accounts).is_ok()) return;
  std::atomic<uint64_t> next_id{1};
  for (bool journal : {false, true}) {
    const char* what = journal ? "journal appends (200 B)" : "transfers";
    struct Config {
      int submitters, ops_per_submit;
      const char* note;
    };
    const Config configs[] = {
        {1, 1, "one transaction per operation: the no-group-commit reference"},
        {8, 1, "bound: submitters x commits/s"},
        {32, 1, "bound: submitters x commits/s"},
        {256, 1, "many concurrent requests (an executor's worker pool)"},
        {32, 16, "each submit carries 16 operations (a batch of approvals)"},
    };
    for (const Config& c : configs) {
      auto before = ledger.storage().size_bytes();
      const LedgerStats stats_before = ledger.stats();
      Run r = run_submitters(ledger, c.submitters, c.ops_per_submit, seconds, journal, next_id);
      auto after = ledger.storage().size_bytes();
      const LedgerStats stats_after = ledger.stats();
      const uint64_t batches = stats_after.batches_committed - stats_before.batches_committed;
      char per_batch[64];
      std::snprintf(per_batch, sizeof per_batch, "; %.1f ops per commit",
                    batches ? static_cast<double>(stats_after.operations_committed - stats_before.operations_committed) /
                                  static_cast<double>(batches)
                            : 0.0);
      row(name,
          std::string("durable ") + what + ", " + std::to_string(c.submitters) + " submitters x " +
              std::to_string(c.ops_per_submit),
          fmt(r.ops_per_s, "/s"), c.note + std::string(per_batch));
      if (c.submitters == 256 && before.is_ok() && after.is_ok() && r.ops > 0) {
        double per = static_cast<double>(*after - *before) / static_cast<double>(r.ops);
        row(name, std::string("storage bytes per ") + (journal ? "journal entry" : "transfer"), fmt(per, "B"),
            journal ? "entry 200 B + key, hashes, seq, index" : "record 127 B + debit/credit account rows rewritten");
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  std::string dir;
  std::string pg = std::getenv("COVENANT_PG_URL") ? std::getenv("COVENANT_PG_URL") : "";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--seconds") seconds = std::atof(argv[i + 1]);
    else if (a == "--dir") dir = argv[i + 1];
    else if (a == "--pg") pg = argv[i + 1];
    else if (a == "--journal-keys") g_sequential_keys = std::string(argv[i + 1]) == "seq";
    else {
      std::fprintf(stderr, "usage: bench_ledger [--seconds S] [--dir DIR] [--pg URL] [--journal-keys hash|seq]\n");
      return 2;
    }
  }
  {  // always a fresh directory (under --dir or the current one), removed at the end
    std::filesystem::path parent = dir.empty() ? std::filesystem::current_path() : std::filesystem::path(dir);
    std::string tmpl = (parent / "bench-ledger-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) {
      std::fprintf(stderr, "bench: cannot create a directory under %s\n", parent.c_str());
      return 1;
    }
    dir = tmpl;
  }
  std::printf("| backend | measure | value | note |\n|---|---|---|---|\n");
  row("disk", "fdatasync of a 4 KiB write", fmt(fsync_rate(dir, 1), "/s"), "physical reference, dir " + dir);
  row("sqlite", "one-row INSERT per transaction (WAL, FULL)", fmt(sqlite_single_row_rate(dir, 1), "/s"),
      "physical reference");
  LedgerOptions options;
  bench_backend("sqlite", dir + "/ledger.db", options, seconds);
  if (!pg.empty()) {
    options.storage.pg_schema = "bench_" + std::to_string(getpid());
    bench_backend("postgresql", pg, options, seconds);
    std::printf("\n(PostgreSQL schema %s left in place; drop it with DROP SCHEMA ... CASCADE)\n",
                options.storage.pg_schema.c_str());
  } else {
    std::printf("\n(PostgreSQL skipped: set COVENANT_PG_URL or --pg)\n");
  }
  std::filesystem::remove_all(dir);
  return 0;
}
