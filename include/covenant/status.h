// Status and Result<T>: how every Covenant call reports an operating error.
// Thread-safety: values; no shared state. Ownership: a Result owns its value.
//
// Three kinds of failure are kept apart (see docs/architecture.md):
//  - a host bug is an assertion (abort);
//  - an operating error (bad input, I/O, limits) is a Status;
//  - a guest trap is a typed outcome (covenant::Trap), not a Status.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace covenant {

// Codes are stable and never reused; documented by what the caller should do.
enum class Code : int {
  kOk = 0,
  kInvalidArgument = 1,    // the input is wrong: fix it, do not retry
  kNotFound = 2,           // the named thing does not exist
  kAlreadyExists = 3,      // idempotent replay or name clash
  kLimitExceeded = 4,      // a configured limit refused the input
  kUnsupported = 5,        // a feature outside the enabled profile
  kCorruption = 6,         // stored data failed an integrity check
  kIOError = 7,            // the OS said no: may succeed on retry
  kFailedPrecondition = 8, // the state does not allow this now
  kInternal = 9,           // a bug in Covenant: report it
};

const char* code_name(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }
  static Status invalid(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status not_found(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status exists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
  static Status limit(std::string m) { return {Code::kLimitExceeded, std::move(m)}; }
  static Status unsupported(std::string m) { return {Code::kUnsupported, std::move(m)}; }
  static Status corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }
  static Status io(std::string m) { return {Code::kIOError, std::move(m)}; }
  static Status precondition(std::string m) { return {Code::kFailedPrecondition, std::move(m)}; }
  static Status internal(std::string m) { return {Code::kInternal, std::move(m)}; }

  bool is_ok() const { return code_ == Code::kOk; }
  explicit operator bool() const { return is_ok(); }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string to_string() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).is_ok() && "Result from an ok Status");
  }

  bool is_ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const {
    static const Status kOk;
    return is_ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { assert(is_ok()); return std::get<T>(v_); }
  const T& value() const& { assert(is_ok()); return std::get<T>(v_); }
  T&& value() && { assert(is_ok()); return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace covenant

#define COVENANT_RETURN_IF_ERROR(expr)          \
  do {                                          \
    ::covenant::Status _st = (expr);            \
    if (!_st.is_ok()) return _st;               \
  } while (0)
