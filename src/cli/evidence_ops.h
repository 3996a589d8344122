// Receipts, proofs and checkpoints, wherever the receipts are: the operations
// behind `covenant receipt get|verify` and `covenant log checkpoint|prove|verify`
// (src/cli/evidence_cmd.cc), also run by the older spellings `covenant settle
// receipt|prove|checkpoint` (src/cli/settle_cmd.cc), so there is one
// implementation per concept (docs/cli.md, "Command families").
//
// A location is one of:
//   --ledger PATH|postgresql://URL  the ledger's journal: what `approve --ledger` and
//                                   `covenant serve` append (leaf i = journal seq i + 1)
//   --data DIR                      a `covenant serve` data directory: its ledger
//                                   DIR/ledger.db (or --ledger when the server used
//                                   another), keys DIR/keys, checkpoints DIR/checkpoints
//   --log FILE                      a standalone receipt-log file (src/evidence/receipt_log.h;
//                                   `covenant receipt demo` writes one)
// There is no implicit default: a command that reads receipts says where.
// Thread-safety: none needed (one command per process). Ownership: by value.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "cli/args.h"

namespace covenant::cli {

// Positionals and the flags given (by name, "--key"), filled by CLI11.
struct EvidenceArgs {
  std::string who;  // "receipt verify", "settle", for messages
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;
  bool json = false;

  bool has(const std::string& f) const { return flags.count(f) > 0; }
  std::string get(const std::string& f, const std::string& def = "") const {
    auto it = flags.find(f);
    return it == flags.end() ? def : it->second;
  }
  // True when --ledger, --data or --log names where the receipts are.
  bool has_location() const { return has("--ledger") || has("--data") || has("--log"); }
};

// The ledger a location names: --ledger, else DIR/ledger.db of --data ("" for --log).
std::string location_ledger(const EvidenceArgs& a);
// The executor keys: --keys-dir, else DIR/keys of --data, else $COVENANT_HOME/keys.
std::string location_keys_dir(const EvidenceArgs& a);

// File checks of a location, before anything is opened: "" or a one-line error.
// Requires one: "" is returned only when a location was given and it exists.
std::string check_location(const EvidenceArgs& a);

// `receipt get ID --out FILE`: the exact COSE_Sign1 bytes. Positional[0] = ID.
int receipt_get_op(const EvidenceArgs& a);
// `log prove (--id ID | --index I) [--size N] | --from M [--to N] [--out FILE]`.
int log_prove_op(const EvidenceArgs& a);
// `log checkpoint [--origin O] [--dir DIR] [--keys-dir DIR] [--out FILE]`.
int log_checkpoint_op(const EvidenceArgs& a);

}  // namespace covenant::cli
