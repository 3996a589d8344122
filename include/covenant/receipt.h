// Receipts: the signed record of one contract call. A COSE_Sign1 (RFC 9052,
// tag 18, alg EdDSA/Ed25519, kid in the protected header) around a
// deterministic CBOR map with small integer keys. Format: docs/receipts.md.
// Thread-safety: free functions; sign_receipt uses a thread_local scratch
// buffer, so it is safe from many threads at once.
// Ownership: outputs go to caller-owned vectors; inputs are borrowed spans.
//
// Usage:
//   Receipt r; r.contract_hash = ...; r.entry = "policy#approve"; ...
//   r.decision = encode_decision({.approved = true, .reason_code = 0, .amount = 2500});
//   std::vector<uint8_t> cose;
//   COVENANT_RETURN_IF_ERROR(sign_receipt(r, key, &cose));
//   auto verified = verify_receipt(cose, PinnedKey(key.public_key()));
//   std::string id = receipt_id_hex(cose);
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "covenant/keys.h"
#include "covenant/status.h"

namespace covenant {

// Version 1 is the only version; a later one adds payload key 0 ("version"),
// whose absence means 1. See docs/receipts.md.
inline constexpr uint64_t kReceiptFormatVersion = 1;
// The budget a typical approval receipt must fit in (issue 4); tested.
inline constexpr size_t kReceiptTypicalSizeBytesMax = 320;
// Any receipt, opted-in raw intent included. Bounds what the decoder accepts.
inline constexpr size_t kReceiptSizeBytesMax = 64 * 1024;
inline constexpr size_t kReceiptEntryBytesMax = 256;     // world#export
inline constexpr size_t kReceiptDecisionBytesMax = 1024;  // one CBOR item
inline constexpr size_t kTraceIdBytes = 16;
static_assert(kReceiptEntryBytesMax + kReceiptDecisionBytesMax < kReceiptSizeBytesMax);

// COSE constants (RFC 9052 / RFC 9053).
inline constexpr uint64_t kCoseSign1Tag = 18;
inline constexpr int64_t kCoseHeaderAlg = 1;
inline constexpr int64_t kCoseHeaderKid = 4;
inline constexpr int64_t kCoseAlgEdDSA = -8;

// Payload map keys. Stable; never reused.
enum class ReceiptKey : uint8_t {
  kContractHash = 1,     // bstr 32: SHA-256 of the module bytes
  kEntry = 2,            // tstr: "<world>#<export>"
  kIntentHash = 3,       // bstr 32: SHA-256 of the raw intent bytes
  kDecision = 4,         // any CBOR item (see encode_decision)
  kFuelUsed = 5,         // uint
  kStateRootBefore = 6,  // bstr 32
  kStateRootAfter = 7,   // bstr 32; omitted when equal to key 6 (the call changed no state)
  kTimeUnixMs = 8,       // uint: milliseconds since 1970-01-01T00:00Z
  kTraceId = 9,          // bstr 16
  kPrevReceiptHash = 10, // bstr 32: receipt id of the previous receipt (zeros for the first)
  kIntent = 11,          // bstr: raw intent, only when the deployment opts in
  kInterfaceHash = 12,   // bstr 16: the WIT world and grants the call ran with (see below)
  kIntentSigner = 13,    // [tstr kid, tstr nonce]: the agent key that signed the intent, only for signed intents
};
inline constexpr uint8_t kReceiptKeyMax = 13;
inline constexpr size_t kIntentSignerFieldBytesMax = 64;  // kid and nonce each
inline constexpr size_t kInterfaceHashBytes = 16;
using InterfaceHash = std::array<uint8_t, kInterfaceHashBytes>;

using TraceId = std::array<uint8_t, kTraceIdBytes>;

struct Receipt {
  Hash32 contract_hash{};
  std::string entry;                 // "<world>#<export>", at most kReceiptEntryBytesMax
  Hash32 intent_hash{};
  std::vector<uint8_t> decision;     // exactly one deterministic CBOR item
  uint64_t fuel_used = 0;
  Hash32 state_root_before{};
  // Equal to state_root_before when the call changed no state: the payload
  // then omits key 7 and decode sets it from key 6.
  Hash32 state_root_after{};
  uint64_t time_unix_ms = 0;
  // The executor key id. It travels as the COSE kid in the protected header
  // (signed, so not repeated in the payload): sign_receipt takes it from the
  // key; decode fills it from the header.
  KeyId executor_kid{};
  TraceId trace_id{};
  Hash32 prev_receipt_hash{};
  std::optional<std::vector<uint8_t>> intent;  // absent unless opted in
  // The first 16 bytes of SHA-256 over the structure of the WIT world (names
  // and types of every import and export, docs and formatting excluded) and
  // the grants (settle::interface_hash). Written by every receipt the
  // pipeline signs; absent in receipts made before key 12 existed.
  std::optional<InterfaceHash> interface_hash;
  // For a signed intent (docs/api.md, "Signed intents"): the agent's key id
  // and the intent's nonce, as the executor verified them before the call.
  struct IntentSigner {
    std::string kid;
    std::string nonce;
    bool operator==(const IntentSigner&) const = default;
  };
  std::optional<IntentSigner> intent_signer;

  bool operator==(const Receipt&) const = default;
};

// The usual decision shape: [approved, reason_code] or
// [approved, reason_code, amount]. Contracts may return any other CBOR item.
struct Decision {
  bool approved = false;
  uint64_t reason_code = 0;
  std::optional<uint64_t> amount;
  bool operator==(const Decision&) const = default;
};
std::vector<uint8_t> encode_decision(const Decision& d);
// kInvalidArgument when `item` is not of the shape above.
Result<Decision> decode_decision(std::span<const uint8_t> item);

// Encodes the payload map alone (what the signature covers, inside the
// Sig_structure). Appends to *out.
Status encode_receipt_payload(const Receipt& r, std::vector<uint8_t>* out);

// Encodes, signs with `key`, and replaces *cose with the tagged COSE_Sign1.
// Reuses *cose's capacity; no other allocation after the first call per thread.
Status sign_receipt(const Receipt& r, const SigningKey& key, std::vector<uint8_t>* cose);

// Parses a COSE_Sign1 receipt strictly (deterministic CBOR, tag 18, alg
// EdDSA, known keys, field sizes) WITHOUT checking the signature. For display.
Result<Receipt> decode_receipt(std::span<const uint8_t> cose);

// Parses and checks the signature with the key `keys` resolves for the kid.
// kInvalidArgument: malformed; kNotFound: unknown kid; kCorruption: the
// signature does not verify (the bytes were changed or signed by another key);
// kFailedPrecondition: signed (by its time, key 8) at or after the key's
// revocation (KeyResolver::revoked_at_ms).
Result<Receipt> verify_receipt(std::span<const uint8_t> cose, const KeyResolver& keys);

// Receipt id: SHA-256 of the exact COSE_Sign1 bytes.
Hash32 receipt_id(std::span<const uint8_t> cose);
std::string receipt_id_hex(std::span<const uint8_t> cose);

}  // namespace covenant
