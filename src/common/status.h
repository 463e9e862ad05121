// Status and Result<T>: how expected failures travel through pycell.
//
// A Status is OK or carries a code and a message for a person. The code set is small on purpose:
// each maps one-to-one onto an HTTP status (and later a JSON-RPC error), so a failure deep in the
// sandbox reaches a client unchanged. Bugs are not Statuses: they CHECK and crash.
//
// Thread-safety: values; copy freely.
#pragma once

#include <cerrno>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace pycell::internal {
[[noreturn]] void CheckFailed(const char* condition, const char* file, int line);
}

// A bug, not an input error: logs and aborts.
#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) ::pycell::internal::CheckFailed(#cond, __FILE__, __LINE__); \
  } while (0)

namespace pycell {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // 400: the caller sent something wrong; the message says what.
  kNotFound,            // 404
  kPermissionDenied,    // 403
  kFailedPrecondition,  // 409: the state does not allow it now (e.g. the session is busy).
  kResourceExhausted,   // 429/413: a limit was reached.
  kDeadlineExceeded,    // 504
  kUnavailable,         // 503: try again later (e.g. the pool is not warm).
  kInternal,            // 500: the host failed us (a system call, a dead zygote).
  kUnauthenticated,     // 401: no valid credentials (missing, wrong or revoked key).
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK.
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) {
    return {StatusCode::kInvalidArgument, std::move(m)};
  }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status PermissionDenied(std::string m) {
    return {StatusCode::kPermissionDenied, std::move(m)};
  }
  static Status FailedPrecondition(std::string m) {
    return {StatusCode::kFailedPrecondition, std::move(m)};
  }
  static Status ResourceExhausted(std::string m) {
    return {StatusCode::kResourceExhausted, std::move(m)};
  }
  static Status DeadlineExceeded(std::string m) {
    return {StatusCode::kDeadlineExceeded, std::move(m)};
  }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
  static Status Unauthenticated(std::string m) {
    return {StatusCode::kUnauthenticated, std::move(m)};
  }
  // A failed system call: "what: strerror(errno)". `err` defaults to the current errno.
  static Status FromErrno(std::string_view what, int err = errno);

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  bool IsNotFound() const { return code_ == StatusCode::kNotFound; }
  bool IsUnauthenticated() const { return code_ == StatusCode::kUnauthenticated; }
  bool IsPermissionDenied() const { return code_ == StatusCode::kPermissionDenied; }
  bool IsInvalidArgument() const { return code_ == StatusCode::kInvalidArgument; }
  bool IsFailedPrecondition() const { return code_ == StatusCode::kFailedPrecondition; }
  bool IsResourceExhausted() const { return code_ == StatusCode::kResourceExhausted; }
  bool IsDeadlineExceeded() const { return code_ == StatusCode::kDeadlineExceeded; }

  // Returns the same status with "context: " put before the message.
  Status WithContext(std::string_view context) const;
  // A finer, machine-readable reason for clients ("session_busy", "session_expired", …); the
  // API puts it in error.code. Empty unless set.
  Status WithReason(std::string reason) const;
  const std::string& reason() const { return reason_; }
  // For limits that lift with time (quotas, rate limits): when to try again, in seconds; the API
  // sends it as Retry-After. 0 unless set.
  Status WithRetryAfter(int64_t seconds) const;
  int64_t retry_after_s() const { return retry_after_s_; }
  // "INVALID_ARGUMENT: message", or "OK".
  std::string ToString() const;

 private:
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  std::string reason_;
  int64_t retry_after_s_ = 0;
};

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit on purpose.
  // REQUIRES: !status.ok() — a Result without a value must say why.
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit on purpose.
    CHECK(!status_.ok());
  }
  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  T&& operator*() && { return std::move(*value_); }

 private:
  std::optional<T> value_;
  Status status_;  // OK exactly when value_ is set.
};

}  // namespace pycell

#define PYCELL_CONCAT_INNER(a, b) a##b
#define PYCELL_CONCAT(a, b) PYCELL_CONCAT_INNER(a, b)

// Returns from the enclosing function when `expr` (a Status) is not OK.
#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    ::pycell::Status pycell_status_ = (expr);        \
    if (!pycell_status_.ok()) return pycell_status_; \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, MakeX());` declares x from a Result or returns its Status.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(PYCELL_CONCAT(pycell_result_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
