#include "ledger/ledger_test_util.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>

namespace covenant::ledger_test {

std::vector<std::string> backends() { return {"memory", "sqlite", "postgresql"}; }

std::string temp_dir(const std::string& prefix) {
  std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (!mkdtemp(tmpl.data())) std::abort();
  return tmpl;
}

static bool drop_schema(const std::string& url, const std::string& schema) {
  PGconn* c = PQconnectdb(url.c_str());
  bool ok = PQstatus(c) == CONNECTION_OK;
  if (ok) {
    PQclear(PQexec(c, "SET client_min_messages TO warning"));
    std::string sql = "DROP SCHEMA IF EXISTS " + schema + " CASCADE";  // schema: [a-z0-9_], ours
    PGresult* r = PQexec(c, sql.c_str());
    ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
  }
  PQfinish(c);
  return ok;
}

TestStore::TestStore(const std::string& b) : backend(b) {
  options.clock_ns = [this] { return now_ns.load(); };
  if (b == "memory") {
    location = "memory:";
  } else if (b == "sqlite") {
    dir = temp_dir("covenant-ledger");
    location = dir + "/ledger.db";
  } else {
    const char* url = std::getenv("COVENANT_PG_URL");
    if (!url || !*url) {
      available = false;
      must_not_skip = std::getenv("CI") != nullptr || std::getenv("COVENANT_REQUIRE_PG") != nullptr;
      why = "COVENANT_PG_URL is not set (eval \"$(scripts/pg.sh start)\")" +
          std::string(must_not_skip ? "; CI/COVENANT_REQUIRE_PG is set, so this is a failure" : "");
      return;
    }
    location = url;
    std::random_device rd;
    options.storage.pg_schema = "t_" + std::to_string(getpid()) + "_" + std::to_string(rd() % 1000000000);
    drop_schema(location, options.storage.pg_schema);
  }
}

TestStore::~TestStore() {
  if (!dir.empty()) std::filesystem::remove_all(dir);
  if (backend == "postgresql" && available) drop_schema(location, options.storage.pg_schema);
}

Result<std::unique_ptr<Ledger>> TestStore::open() { return Ledger::open(location, options); }

void expect_invariants(Ledger& ledger) {
  auto report = ledger.verify();
  ASSERT_TRUE(report.is_ok()) << report.status().to_string();
  for (const std::string& p : report->problems) ADD_FAILURE() << "verify: " << p;

  // The same invariants computed here, independently of verify().
  auto accounts = ledger.all_accounts();
  auto transfers = ledger.all_transfers();
  ASSERT_TRUE(accounts.is_ok()) << accounts.status().to_string();
  ASSERT_TRUE(transfers.is_ok()) << transfers.status().to_string();
  unsigned __int128 dp = 0, cp = 0, dpo = 0, cpo = 0;
  for (const Account& a : *accounts) {
    dp += a.debits_pending;
    cp += a.credits_pending;
    dpo += a.debits_posted;
    cpo += a.credits_posted;
    if (a.flags & kAccountDebitsMustNotExceedCredits) {
      EXPECT_TRUE(static_cast<unsigned __int128>(a.debits_pending) + a.debits_posted <= a.credits_posted) << a.id.hex();
    }
    if (a.flags & kAccountCreditsMustNotExceedDebits) {
      EXPECT_TRUE(static_cast<unsigned __int128>(a.credits_pending) + a.credits_posted <= a.debits_posted) << a.id.hex();
    }
  }
  EXPECT_TRUE(dp == cp) << "total pending debits != credits";
  EXPECT_TRUE(dpo == cpo) << "total posted debits != credits";
  std::map<Id128, const Transfer*> by_id;
  for (const Transfer& t : *transfers) by_id[t.id] = &t;
  std::map<Id128, int> resolved;
  for (const Transfer& t : *transfers) {
    if (!(t.flags & (kTransferPostPending | kTransferVoidPending))) continue;
    auto it = by_id.find(t.pending_id);
    ASSERT_TRUE(it != by_id.end()) << "post/void " << t.id.hex() << " references no transfer";
    EXPECT_TRUE(it->second->flags & kTransferPending) << t.id.hex() << " references a non-hold";
    EXPECT_EQ(++resolved[t.pending_id], 1) << "hold " << t.pending_id.hex() << " resolved twice";
    EXPECT_LE(t.amount, it->second->amount) << t.id.hex();
  }
  for (const Transfer& t : *transfers) {
    if (!(t.flags & kTransferPending)) continue;
    bool closed = t.hold_state == HoldState::kPosted || t.hold_state == HoldState::kVoided;
    EXPECT_EQ(resolved.count(t.id) ? 1 : 0, closed ? 1 : 0) << "hold " << t.id.hex();
  }
}

}  // namespace covenant::ledger_test
