#include "covenant/receipt.h"

#include <cstring>

#include "evidence/cbor.h"

namespace covenant {
namespace {

constexpr std::string_view kSignature1 = "Signature1";
// Protected header {1: -8, 4: h'<kid>'}: a2 01 27 04 48 <8 bytes>.
constexpr size_t kProtectedBytes = 5 + kKeyIdBytes;

void encode_protected(const KeyId& kid, uint8_t out[kProtectedBytes]) {
  out[0] = 0xa2;
  out[1] = 0x01;
  out[2] = 0x27;  // -8
  out[3] = 0x04;
  out[4] = 0x40 | kKeyIdBytes;
  std::memcpy(out + 5, kid.data(), kKeyIdBytes);
}

void key(cbor::Writer& w, ReceiptKey k) { w.uint(static_cast<uint8_t>(k)); }

// Sig_structure = ["Signature1", protected, external_aad = h'', payload].
void build_sig_structure(std::span<const uint8_t> prot, std::span<const uint8_t> payload, std::vector<uint8_t>* out) {
  out->clear();
  cbor::Writer w(out);
  w.array(4);
  w.text(kSignature1);
  w.bytes(prot);
  w.bytes({});
  w.bytes(payload);
}

Status field_error(ReceiptKey k, const char* name, std::string_view what, size_t offset) {
  return Status::invalid("receipt payload key " + std::to_string(static_cast<int>(k)) + " (" + name + ") at byte " +
                         std::to_string(offset) + ": " + std::string(what));
}

Status read_fixed(cbor::Reader& r, ReceiptKey k, const char* name, std::span<uint8_t> out) {
  const size_t at = r.offset();
  std::span<const uint8_t> b;
  if (!r.read_bytes(&b).is_ok()) return field_error(k, name, "expected a byte string", at);
  if (b.size() != out.size()) {
    return field_error(k, name, "expected " + std::to_string(out.size()) + " bytes, found " + std::to_string(b.size()), at);
  }
  std::memcpy(out.data(), b.data(), b.size());
  return Status::ok();
}

Status decode_payload(std::span<const uint8_t> payload, Receipt* r) {
  if (Status st = cbor::validate(payload); !st.is_ok()) return Status::invalid("receipt payload: " + st.message());
  cbor::Reader rd(payload);
  uint64_t n;
  if (!rd.read_map(&n).is_ok()) return Status::invalid("receipt payload: not a CBOR map");
  uint32_t seen = 0;
  size_t after_at = 0;  // offset of key 7's value, when present
  for (uint64_t i = 0; i < n; ++i) {
    const size_t at = rd.offset();
    uint64_t k;
    if (!rd.read_uint(&k).is_ok()) return Status::invalid("receipt payload at byte " + std::to_string(at) + ": key is not a small unsigned integer");
    if (k == 0) return Status::unsupported("receipt payload: key 0 (format version) is not understood by version 1 readers");
    if (k > kReceiptKeyMax) {
      return Status::invalid("receipt payload at byte " + std::to_string(at) + ": unknown key " + std::to_string(k));
    }
    seen |= 1u << k;
    const auto rk = static_cast<ReceiptKey>(k);
    const size_t vat = rd.offset();
    switch (rk) {
      case ReceiptKey::kContractHash:
        COVENANT_RETURN_IF_ERROR(read_fixed(rd, rk, "contract hash", r->contract_hash));
        break;
      case ReceiptKey::kEntry: {
        std::string_view s;
        if (!rd.read_text(&s).is_ok()) return field_error(rk, "world#export", "expected a text string", vat);
        if (s.size() > kReceiptEntryBytesMax) return field_error(rk, "world#export", "longer than 256 bytes", vat);
        r->entry.assign(s);
        break;
      }
      case ReceiptKey::kIntentHash:
        COVENANT_RETURN_IF_ERROR(read_fixed(rd, rk, "intent hash", r->intent_hash));
        break;
      case ReceiptKey::kDecision: {
        std::span<const uint8_t> item;
        COVENANT_RETURN_IF_ERROR(rd.skip(&item));
        if (item.size() > kReceiptDecisionBytesMax) return field_error(rk, "decision", "larger than 1024 bytes", vat);
        r->decision.assign(item.begin(), item.end());
        break;
      }
      case ReceiptKey::kFuelUsed:
        if (!rd.read_uint(&r->fuel_used).is_ok()) return field_error(rk, "fuel used", "expected an unsigned integer", vat);
        break;
      case ReceiptKey::kStateRootBefore:
        COVENANT_RETURN_IF_ERROR(read_fixed(rd, rk, "state root before", r->state_root_before));
        break;
      case ReceiptKey::kStateRootAfter:
        after_at = vat;
        COVENANT_RETURN_IF_ERROR(read_fixed(rd, rk, "state root after", r->state_root_after));
        break;
      case ReceiptKey::kTimeUnixMs:
        if (!rd.read_uint(&r->time_unix_ms).is_ok()) return field_error(rk, "time", "expected an unsigned integer", vat);
        break;
      case ReceiptKey::kTraceId:
        COVENANT_RETURN_IF_ERROR(read_fixed(rd, rk, "trace id", r->trace_id));
        break;
      case ReceiptKey::kPrevReceiptHash:
        COVENANT_RETURN_IF_ERROR(read_fixed(rd, rk, "previous receipt hash", r->prev_receipt_hash));
        break;
      case ReceiptKey::kIntent: {
        std::span<const uint8_t> b;
        if (!rd.read_bytes(&b).is_ok()) return field_error(rk, "intent", "expected a byte string", vat);
        r->intent.emplace(b.begin(), b.end());
        break;
      }
      case ReceiptKey::kInterfaceHash: {
        InterfaceHash h{};
        COVENANT_RETURN_IF_ERROR(read_fixed(rd, rk, "interface hash", h));
        r->interface_hash = h;
        break;
      }
      case ReceiptKey::kIntentSigner: {
        uint64_t n = 0;
        std::string_view kid, nonce;
        if (!rd.read_array(&n).is_ok() || n != 2 || !rd.read_text(&kid).is_ok() || !rd.read_text(&nonce).is_ok())
          return field_error(rk, "intent signer", "expected [kid, nonce] as two text strings", vat);
        if (kid.empty() || nonce.empty() || kid.size() > kIntentSignerFieldBytesMax || nonce.size() > kIntentSignerFieldBytesMax)
          return field_error(rk, "intent signer", "kid and nonce must be 1 to 64 bytes", vat);
        r->intent_signer = Receipt::IntentSigner{std::string(kid), std::string(nonce)};
        break;
      }
    }
  }
  constexpr uint32_t kAfterBit = 1u << static_cast<int>(ReceiptKey::kStateRootAfter);
  constexpr uint32_t kRequired = 0x7fe & ~kAfterBit;  // keys 1..10 but 7
  if ((seen & kRequired) != kRequired) {
    for (int k = 1; k <= 10; ++k) {
      if ((kRequired & (1u << k)) && !(seen & (1u << k)))
        return Status::invalid("receipt payload: required key " + std::to_string(k) + " is missing");
    }
  }
  // Key 7 is written only when it differs from key 6: absent means the call
  // changed no state (after = before); present and equal is a second encoding
  // of the same receipt, which the deterministic profile refuses.
  if (!(seen & kAfterBit)) {
    r->state_root_after = r->state_root_before;
  } else if (r->state_root_after == r->state_root_before) {
    return field_error(ReceiptKey::kStateRootAfter, "state root after",
                       "equal to key 6 (state root before); the deterministic encoding omits it", after_at);
  }
  return Status::ok();
}

struct Parsed {
  std::span<const uint8_t> protected_bytes;
  std::span<const uint8_t> payload;
  std::span<const uint8_t> signature;
};

Status parse_cose(std::span<const uint8_t> cose, Parsed* p, Receipt* r) {
  if (cose.size() > kReceiptSizeBytesMax) {
    return Status::limit("receipt is " + std::to_string(cose.size()) + " bytes; the limit is " +
                         std::to_string(kReceiptSizeBytesMax));
  }
  if (Status st = cbor::validate(cose); !st.is_ok()) return Status::invalid("COSE_Sign1: " + st.message());
  cbor::Reader rd(cose);
  uint64_t tag, n;
  if (!rd.read_tag(&tag).is_ok() || tag != kCoseSign1Tag) return Status::invalid("COSE_Sign1 at byte 0: expected tag 18");
  if (!rd.read_array(&n).is_ok() || n != 4) return Status::invalid("COSE_Sign1 at byte 1: expected an array of 4");
  size_t at = rd.offset();
  if (!rd.read_bytes(&p->protected_bytes).is_ok()) return Status::invalid("COSE_Sign1 at byte " + std::to_string(at) + ": protected header must be a byte string");
  // The protected header must be exactly {1: -8, 4: h'<8-byte kid>'}.
  {
    cbor::Reader ph(p->protected_bytes);
    uint64_t m;
    int64_t label, alg;
    std::span<const uint8_t> kid;
    if (!ph.read_map(&m).is_ok() || m != 2 || !ph.read_int(&label).is_ok() || label != kCoseHeaderAlg ||
        !ph.read_int(&alg).is_ok() || !ph.read_int(&label).is_ok() || label != kCoseHeaderKid ||
        !ph.read_bytes(&kid).is_ok() || !ph.at_end()) {
      return Status::invalid("COSE_Sign1 at byte " + std::to_string(at) + ": protected header must be {1: alg, 4: kid}");
    }
    if (alg != kCoseAlgEdDSA) return Status::unsupported("COSE_Sign1: alg " + std::to_string(alg) + " is not EdDSA (-8)");
    if (kid.size() != kKeyIdBytes) return Status::invalid("COSE_Sign1: kid must be 8 bytes, found " + std::to_string(kid.size()));
    std::memcpy(r->executor_kid.data(), kid.data(), kKeyIdBytes);
  }
  at = rd.offset();
  if (!rd.read_map(&n).is_ok() || n != 0) return Status::invalid("COSE_Sign1 at byte " + std::to_string(at) + ": unprotected header must be an empty map");
  at = rd.offset();
  if (!rd.read_bytes(&p->payload).is_ok()) return Status::invalid("COSE_Sign1 at byte " + std::to_string(at) + ": payload must be an attached byte string");
  at = rd.offset();
  if (!rd.read_bytes(&p->signature).is_ok() || p->signature.size() != kSignatureBytes) {
    return Status::invalid("COSE_Sign1 at byte " + std::to_string(at) + ": signature must be a 64-byte string");
  }
  return decode_payload(p->payload, r);
}

}  // namespace

std::vector<uint8_t> encode_decision(const Decision& d) {
  std::vector<uint8_t> out;
  cbor::Writer w(&out);
  w.array(d.amount ? 3 : 2);
  w.boolean(d.approved);
  w.uint(d.reason_code);
  if (d.amount) w.uint(*d.amount);
  return out;
}

Result<Decision> decode_decision(std::span<const uint8_t> item) {
  COVENANT_RETURN_IF_ERROR(cbor::validate(item));
  cbor::Reader r(item);
  uint64_t n;
  Decision d;
  if (!r.read_array(&n).is_ok() || (n != 2 && n != 3)) return Status::invalid("decision: expected [approved, reason, amount?]");
  if (!r.read_bool(&d.approved).is_ok() || !r.read_uint(&d.reason_code).is_ok()) {
    return Status::invalid("decision: expected [bool, uint, uint?]");
  }
  if (n == 3) {
    uint64_t a;
    if (!r.read_uint(&a).is_ok()) return Status::invalid("decision: amount must be an unsigned integer");
    d.amount = a;
  }
  return d;
}

Status encode_receipt_payload(const Receipt& r, std::vector<uint8_t>* out) {
  if (r.entry.size() > kReceiptEntryBytesMax) return Status::invalid("receipt entry (world#export) is longer than 256 bytes");
  if (r.decision.empty() || r.decision.size() > kReceiptDecisionBytesMax) {
    return Status::invalid("receipt decision must be one CBOR item of 1..1024 bytes");
  }
  if (Status st = cbor::validate(r.decision); !st.is_ok()) return Status::invalid("receipt decision: " + st.message());
  // Key 7 is implied when the call changed no state (docs/receipts.md).
  const bool after = r.state_root_after != r.state_root_before;
  cbor::Writer w(out);
  if (r.intent_signer && (r.intent_signer->kid.empty() || r.intent_signer->nonce.empty() ||
                          r.intent_signer->kid.size() > kIntentSignerFieldBytesMax ||
                          r.intent_signer->nonce.size() > kIntentSignerFieldBytesMax)) {
    return Status::invalid("receipt intent signer: kid and nonce must be 1 to 64 bytes");
  }
  w.map(9 + (after ? 1 : 0) + (r.intent ? 1 : 0) + (r.interface_hash ? 1 : 0) + (r.intent_signer ? 1 : 0));
  key(w, ReceiptKey::kContractHash), w.bytes(r.contract_hash);
  key(w, ReceiptKey::kEntry), w.text(r.entry);
  key(w, ReceiptKey::kIntentHash), w.bytes(r.intent_hash);
  key(w, ReceiptKey::kDecision), w.raw(r.decision);
  key(w, ReceiptKey::kFuelUsed), w.uint(r.fuel_used);
  key(w, ReceiptKey::kStateRootBefore), w.bytes(r.state_root_before);
  if (after) key(w, ReceiptKey::kStateRootAfter), w.bytes(r.state_root_after);
  key(w, ReceiptKey::kTimeUnixMs), w.uint(r.time_unix_ms);
  key(w, ReceiptKey::kTraceId), w.bytes(r.trace_id);
  key(w, ReceiptKey::kPrevReceiptHash), w.bytes(r.prev_receipt_hash);
  if (r.intent) key(w, ReceiptKey::kIntent), w.bytes(*r.intent);
  if (r.interface_hash) key(w, ReceiptKey::kInterfaceHash), w.bytes(*r.interface_hash);
  if (r.intent_signer) {
    key(w, ReceiptKey::kIntentSigner), w.array(2);
    w.text(r.intent_signer->kid);
    w.text(r.intent_signer->nonce);
  }
  return Status::ok();
}

Status sign_receipt(const Receipt& r, const SigningKey& signer, std::vector<uint8_t>* cose) {
  thread_local std::vector<uint8_t> payload;
  thread_local std::vector<uint8_t> tbs;
  payload.clear();
  COVENANT_RETURN_IF_ERROR(encode_receipt_payload(r, &payload));
  uint8_t prot[kProtectedBytes];
  encode_protected(signer.kid(), prot);
  build_sig_structure(prot, payload, &tbs);
  uint8_t sig[kSignatureBytes];
  signer.sign(tbs, sig);

  cose->clear();
  cose->reserve(payload.size() + kProtectedBytes + kSignatureBytes + 16);
  cbor::Writer w(cose);
  w.tag(kCoseSign1Tag);
  w.array(4);
  w.bytes(prot);
  w.map(0);
  w.bytes(payload);
  w.bytes(std::span<const uint8_t>(sig, kSignatureBytes));
  if (cose->size() > kReceiptSizeBytesMax) return Status::limit("receipt exceeds 64 KiB (is the opted-in intent too large?)");
  return Status::ok();
}

Result<Receipt> decode_receipt(std::span<const uint8_t> cose) {
  Receipt r;
  Parsed p;
  COVENANT_RETURN_IF_ERROR(parse_cose(cose, &p, &r));
  return r;
}

Result<Receipt> verify_receipt(std::span<const uint8_t> cose, const KeyResolver& keys) {
  Receipt r;
  Parsed p;
  COVENANT_RETURN_IF_ERROR(parse_cose(cose, &p, &r));
  auto pub = keys.resolve(r.executor_kid);
  if (!pub) return pub.status();
  std::vector<uint8_t> tbs;
  build_sig_structure(p.protected_bytes, p.payload, &tbs);
  if (!ed25519_verify(*pub, tbs, p.signature)) {
    return Status::corruption("receipt signature does not verify with key " + to_hex(r.executor_kid) +
                              " (the bytes were changed or signed by another key)");
  }
  // The signature is good; a key revoked at T vouches only for what it signed before T.
  if (auto revoked = keys.revoked_at_ms(r.executor_kid); revoked && r.time_unix_ms >= *revoked) {
    return Status::precondition("receipt signed by key " + to_hex(r.executor_kid) + " at " +
                                std::to_string(r.time_unix_ms) + " ms, at or after the key's revocation at " +
                                std::to_string(*revoked) + " ms");
  }
  return r;
}

Hash32 receipt_id(std::span<const uint8_t> cose) { return sha256(cose); }
std::string receipt_id_hex(std::span<const uint8_t> cose) { return to_hex(receipt_id(cose)); }

}  // namespace covenant
