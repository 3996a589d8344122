// ledger_crash_writer LOCATION RUN [THREADS]: the victim of ledger_crash_test.
// Appends under sustained load from THREADS submitters until killed (or 60 s pass). Each
// submit carries a transfer and a journal entry, every fourth transfer is a hold that the
// thread posts in its next submit. After a submit returns ok the thread prints one line per
// acknowledged transfer: "<id hex>\n" (one write(2) each, so lines never interleave).
// Ids: hi = RUN, lo = thread << 32 | counter; the entry and amount derive from the id, so the
// parent can check them. PostgreSQL schema: env COVENANT_PG_SCHEMA.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "covenant/ledger.h"
#include "ledger/crash_format.h"

using namespace covenant;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: ledger_crash_writer LOCATION RUN [THREADS]\n");
    return 2;
  }
  const uint64_t run = std::strtoull(argv[2], nullptr, 10);
  const int threads = argc > 3 ? std::atoi(argv[3]) : 8;
  LedgerOptions options;
  if (const char* s = std::getenv("COVENANT_PG_SCHEMA")) options.storage.pg_schema = s;
  auto opened = Ledger::open(argv[1], options);
  if (!opened.is_ok()) {
    std::fprintf(stderr, "ledger_crash_writer: %s\n", opened.status().to_string().c_str());
    return 1;
  }
  std::unique_ptr<Ledger> ledger = std::move(opened).value();
  for (uint64_t a : {crash_format::kBank, crash_format::kShop}) {
    auto r = ledger->create_account(Account{.id = {0, a}, .ledger = 1, .code = 1});
    if (!r.is_ok() || !ledger_result_is_success(r->result)) return 1;
  }
  const auto stop_at = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      bool have_hold = false;  // (not std::optional: GCC 12 warns maybe-uninitialized)
      Id128 open_hold;
      for (uint64_t i = 1; std::chrono::steady_clock::now() < stop_at; ++i) {
        Id128 id{run, (static_cast<uint64_t>(t) << 32) | i};
        std::vector<LedgerOperation> ops;
        ops.push_back(crash_format::transfer_for(id));
        ops.push_back(JournalAppend{crash_format::key_for(id), crash_format::entry_for(id)});
        const Id128 post_id{run, (1ull << 62) | open_hold.lo};
        if (have_hold) ops.push_back(Transfer{.id = post_id, .pending_id = open_hold, .flags = kTransferPostPending});
        auto r = ledger->submit(ops);
        if (!r.is_ok()) {
          std::fprintf(stderr, "ledger_crash_writer: %s\n", r.status().to_string().c_str());
          std::_Exit(1);
        }
        for (const LedgerReply& reply : *r)
          if (reply.result != LedgerResult::ok) {
            std::fprintf(stderr, "ledger_crash_writer: %s\n", ledger_result_name(reply.result));
            std::_Exit(1);
          }
        std::string line = id.hex() + "\n";
        if (have_hold) line += post_id.hex() + "\n";
        if (write(1, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::_Exit(1);
        have_hold = crash_format::is_hold(id);
        open_hold = id;
      }
    });
  }
  for (auto& th : pool) th.join();
  return 0;
}
