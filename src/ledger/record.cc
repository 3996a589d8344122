#include "ledger/record.h"

#include <sodium.h>

#include <cstring>

namespace covenant {

namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

struct SodiumInit {
  SodiumInit() {
    if (sodium_init() < 0) std::abort();
  }
};

void ensure_sodium() { static SodiumInit init; }

}  // namespace

const char* table_name(Table table) {
  switch (table) {
    case Table::kAccounts: return "accounts";
    case Table::kTransfers: return "transfers";
    case Table::kJournal: return "journal";
  }
  return "?";
}

std::string hex(std::span<const uint8_t> bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out.push_back(kHexDigits[b >> 4]);
    out.push_back(kHexDigits[b & 15]);
  }
  return out;
}

Hash32 sha256(std::string_view bytes) {
  ensure_sodium();
  Hash32 out;
  crypto_hash_sha256(out.data(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  return out;
}

Hash32 journal_chain_next(const Hash32& prev_chain, uint64_t seq, const Hash32& key, const Hash32& entry_hash) {
  ensure_sodium();
  unsigned char buf[32 + 8 + 32 + 32];
  std::memcpy(buf, prev_chain.data(), 32);
  for (int i = 0; i < 8; ++i) buf[32 + i] = static_cast<unsigned char>(seq >> (56 - 8 * i));
  std::memcpy(buf + 40, key.data(), 32);
  std::memcpy(buf + 72, entry_hash.data(), 32);
  Hash32 out;
  crypto_hash_sha256(out.data(), buf, sizeof buf);
  return out;
}

Id128Bytes Id128::bytes() const {
  Id128Bytes b;
  for (int i = 0; i < 8; ++i) {
    b[i] = static_cast<uint8_t>(hi >> (56 - 8 * i));
    b[8 + i] = static_cast<uint8_t>(lo >> (56 - 8 * i));
  }
  return b;
}

Id128 Id128::from_bytes(const Id128Bytes& b) {
  Id128 id;
  for (int i = 0; i < 8; ++i) {
    id.hi = (id.hi << 8) | b[i];
    id.lo = (id.lo << 8) | b[8 + i];
  }
  return id;
}

std::string Id128::hex() const {
  Id128Bytes b = bytes();
  return covenant::hex(b);
}

std::optional<Id128> Id128::parse(std::string_view text) {
  if (text.starts_with("0x") || text.starts_with("0X")) {
    text.remove_prefix(2);
    if (text.empty() || text.size() > 32) return std::nullopt;
    Id128 id;
    for (char c : text) {
      int v = hex_value(c);
      if (v < 0) return std::nullopt;
      id.hi = (id.hi << 4) | (id.lo >> 60);
      id.lo = (id.lo << 4) | static_cast<uint64_t>(v);
    }
    return id;
  }
  if (text.size() == 32) return parse("0x" + std::string(text));
  if (text.empty() || text.size() > 20) return std::nullopt;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (~0ull - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return Id128{0, v};
}

namespace ledger_internal {

namespace {

class Writer {
 public:
  explicit Writer(size_t size) { out_.reserve(size); }
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(uint16_t v) { be(v, 2); }
  void u32(uint32_t v) { be(v, 4); }
  void u64(uint64_t v) { be(v, 8); }
  void id(const Id128& v) { u64(v.hi); u64(v.lo); }
  std::string seal() {
    Hash32 h = sha256(out_);
    out_.append(reinterpret_cast<const char*>(h.data()), kRecordChecksumBytes);
    return std::move(out_);
  }

 private:
  void be(uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) out_.push_back(static_cast<char>(v >> (8 * i)));
  }
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  uint8_t u8() { return static_cast<uint8_t>(in_[pos_++]); }
  uint16_t u16() { return static_cast<uint16_t>(be(2)); }
  uint32_t u32() { return static_cast<uint32_t>(be(4)); }
  uint64_t u64() { return be(8); }
  Id128 id() { Id128 v; v.hi = u64(); v.lo = u64(); return v; }

 private:
  uint64_t be(int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<uint8_t>(in_[pos_++]);
    return v;
  }
  std::string_view in_;
  size_t pos_ = 0;
};

// Size, version and checksum; the error names the table and row.
Status check_sealed(Table table, const Id128Bytes& id, std::string_view record, size_t size) {
  auto where = [&] { return std::string(table_name(table)) + " row id=" + hex(id) + ": "; };
  if (record.size() != size)
    return Status::corruption(where() + "record is " + std::to_string(record.size()) + " bytes, want " +
                              std::to_string(size));
  if (static_cast<uint8_t>(record[0]) != kRecordVersion)
    return Status::corruption(where() + "unknown record version " + std::to_string(static_cast<uint8_t>(record[0])));
  Hash32 h = sha256(record.substr(0, size - kRecordChecksumBytes));
  if (std::memcmp(h.data(), record.data() + size - kRecordChecksumBytes, kRecordChecksumBytes) != 0)
    return Status::corruption(where() + "checksum mismatch");
  return Status::ok();
}

}  // namespace

std::string encode_account(const Account& a) {
  Writer w(kAccountRecordBytes);
  w.u8(kRecordVersion);
  w.id(a.id);
  w.id(a.user_data);
  w.u32(a.ledger);
  w.u16(a.code);
  w.u16(a.flags);
  w.u64(a.debits_pending);
  w.u64(a.debits_posted);
  w.u64(a.credits_pending);
  w.u64(a.credits_posted);
  w.u64(a.timestamp_ns);
  std::string out = w.seal();
  assert(out.size() == kAccountRecordBytes);
  return out;
}

Result<Account> decode_account(const Id128Bytes& id, std::string_view record) {
  COVENANT_RETURN_IF_ERROR(check_sealed(Table::kAccounts, id, record, kAccountRecordBytes));
  Reader r(record);
  r.u8();
  Account a;
  a.id = r.id();
  a.user_data = r.id();
  a.ledger = r.u32();
  a.code = r.u16();
  a.flags = r.u16();
  a.debits_pending = r.u64();
  a.debits_posted = r.u64();
  a.credits_pending = r.u64();
  a.credits_posted = r.u64();
  a.timestamp_ns = r.u64();
  if (a.id.bytes() != id)
    return Status::corruption("accounts row id=" + hex(id) + ": record belongs to id " + a.id.hex());
  return a;
}

std::string encode_transfer(const Transfer& t) {
  Writer w(kTransferRecordBytes);
  w.u8(kRecordVersion);
  w.id(t.id);
  w.id(t.debit_account_id);
  w.id(t.credit_account_id);
  w.u64(t.amount);
  w.id(t.pending_id);
  w.id(t.user_data);
  w.u32(t.timeout_s);
  w.u32(t.ledger);
  w.u16(t.code);
  w.u16(t.flags);
  w.u64(t.timestamp_ns);
  w.u8(static_cast<uint8_t>(t.hold_state));
  w.u8(t.disputed ? 1 : 0);
  std::string out = w.seal();
  assert(out.size() == kTransferRecordBytes);
  return out;
}

Result<Transfer> decode_transfer(const Id128Bytes& id, std::string_view record) {
  COVENANT_RETURN_IF_ERROR(check_sealed(Table::kTransfers, id, record, kTransferRecordBytes));
  Reader r(record);
  r.u8();
  Transfer t;
  t.id = r.id();
  t.debit_account_id = r.id();
  t.credit_account_id = r.id();
  t.amount = r.u64();
  t.pending_id = r.id();
  t.user_data = r.id();
  t.timeout_s = r.u32();
  t.ledger = r.u32();
  t.code = r.u16();
  t.flags = r.u16();
  t.timestamp_ns = r.u64();
  uint8_t state = r.u8();
  uint8_t disputed = r.u8();
  if (t.id.bytes() != id)
    return Status::corruption("transfers row id=" + hex(id) + ": record belongs to id " + t.id.hex());
  if (state > static_cast<uint8_t>(HoldState::kExpired) || disputed > 1)
    return Status::corruption("transfers row id=" + hex(id) + ": invalid hold state");
  t.hold_state = static_cast<HoldState>(state);
  t.disputed = disputed == 1;
  return t;
}

Status check_journal_row(const JournalRow& row, const Hash32& prev_chain) {
  auto where = [&] { return "journal row seq=" + std::to_string(row.seq) + ": "; };
  if (sha256(row.entry) != row.entry_hash) return Status::corruption(where() + "entry checksum mismatch");
  if (journal_chain_next(prev_chain, row.seq, row.key, row.entry_hash) != row.chain)
    return Status::corruption(where() + "hash chain broken (this row's key/seq/chain or the previous row's chain)");
  return Status::ok();
}

uint64_t hold_deadline_ns(const Transfer& hold) {
  if (hold.timeout_s == 0) return 0;
  return hold.timestamp_ns + static_cast<uint64_t>(hold.timeout_s) * 1'000'000'000ull;
}

}  // namespace ledger_internal
}  // namespace covenant
