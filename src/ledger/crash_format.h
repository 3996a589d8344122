// What ledger_crash_writer writes, derived from the id so ledger_crash_test can check it.
#pragma once

#include <string>

#include "covenant/ledger.h"

namespace covenant::crash_format {

inline constexpr uint64_t kBank = 1;
inline constexpr uint64_t kShop = 2;

inline bool is_hold(const Id128& id) { return id.lo % 4 == 0; }
inline uint64_t amount_for(const Id128& id) { return 1 + id.lo % 7 + id.hi % 3; }

inline Transfer transfer_for(const Id128& id) {
  return Transfer{.id = id, .debit_account_id = {0, kBank}, .credit_account_id = {0, kShop}, .amount = amount_for(id),
                  .ledger = 1, .code = 1, .flags = static_cast<uint16_t>(is_hold(id) ? kTransferPending : 0)};
}
inline Hash32 key_for(const Id128& id) { return sha256("key:" + id.hex()); }
inline std::string entry_for(const Id128& id) {
  std::string e = "receipt " + id.hex() + " ";
  while (e.size() < 200) e += static_cast<char>('a' + (e.size() + id.lo) % 26);
  return e;
}

}  // namespace covenant::crash_format
