// Status and Result<T>: errors as values across module boundaries.
//
// A Status is a code callers act on, a message for humans and an optional detail that a caller
// may act on too (kNotLeader: the leader to ask). Result<T> holds either a value or a non-OK
// Status. Both are cheap to move and carry no exceptions. The code crosses the internal wire
// intact (rpc/status_wire.h), and HttpStatusOf() is the one table from code to HTTP status.
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace das {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,   // the caller's input broke a limit; retrying the same input fails again
  kUnavailable,       // a peer or resource cannot be reached now; a retry may succeed
  kDeadlineExceeded,  // the operation ran out of time; its effect is unknown
  kNotLeader,         // the detail names the leader to ask (may be empty: unknown)
  kShuttingDown,      // the service is stopping
  kAlreadyExists,     // an idempotency key stored with different rows (the API's 422)
  kInternal,          // a bug or an unexpected failure of a dependency
  kMalformed,         // a request that does not decode; retrying it fails again
  kNotFound,          // no such route, resource or record
  // The state does not allow it now (a membership change the replication factor forbids, a
  // drain below it); the same request may succeed once the state changed.
  kFailedPrecondition,
  kMethodNotAllowed,  // a route that exists, asked with a method it does not take
};

std::string_view StatusCodeName(StatusCode code);

// The HTTP status that answers a failure with `code` (200 for kOk).
unsigned HttpStatusOf(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message, std::string detail = {})
      : code_(code), message_(std::move(message)), detail_(std::move(detail)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // Machine-readable context for the code, e.g. the leader hint of kNotLeader.
  const std::string& detail() const { return detail_; }
  // "UNAVAILABLE: worker 127.0.0.1:8081: connection refused"
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  std::string detail_;
};

inline Status InvalidArgument(std::string m) {
  return Status(StatusCode::kInvalidArgument, std::move(m));
}
inline Status Unavailable(std::string m) { return Status(StatusCode::kUnavailable, std::move(m)); }
inline Status DeadlineExceeded(std::string m) {
  return Status(StatusCode::kDeadlineExceeded, std::move(m));
}
inline Status NotLeader(std::string m, std::string leader_hint) {
  return Status(StatusCode::kNotLeader, std::move(m), std::move(leader_hint));
}
inline Status ShuttingDown(std::string m) {
  return Status(StatusCode::kShuttingDown, std::move(m));
}
inline Status AlreadyExists(std::string m) {
  return Status(StatusCode::kAlreadyExists, std::move(m));
}
inline Status Internal(std::string m) { return Status(StatusCode::kInternal, std::move(m)); }
inline Status Malformed(std::string m) { return Status(StatusCode::kMalformed, std::move(m)); }
inline Status NotFound(std::string m) { return Status(StatusCode::kNotFound, std::move(m)); }
inline Status FailedPrecondition(std::string m) {
  return Status(StatusCode::kFailedPrecondition, std::move(m));
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok());
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  // REQUIRES: !ok()
  const Status& status() const& { return std::get<Status>(v_); }
  Status status() && { return std::get<Status>(std::move(v_)); }
  // REQUIRES: ok()
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace das

#define DAS_CONCAT_INNER(a, b) a##b
#define DAS_CONCAT(a, b) DAS_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                  \
  do {                                         \
    ::das::Status das_status_ = (expr);        \
    if (!das_status_.ok()) return das_status_; \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(DAS_CONCAT(das_result_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)    \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return std::move(tmp).status(); \
  lhs = std::move(tmp).value()
