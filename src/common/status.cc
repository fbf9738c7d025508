#include "common/status.h"

namespace das {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "OK";
    case StatusCode::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case StatusCode::kUnavailable:
      return "UNAVAILABLE";
    case StatusCode::kDeadlineExceeded:
      return "DEADLINE_EXCEEDED";
    case StatusCode::kNotLeader:
      return "NOT_LEADER";
    case StatusCode::kShuttingDown:
      return "SHUTTING_DOWN";
    case StatusCode::kAlreadyExists:
      return "ALREADY_EXISTS";
    case StatusCode::kInternal:
      return "INTERNAL";
    case StatusCode::kMalformed:
      return "MALFORMED";
    case StatusCode::kNotFound:
      return "NOT_FOUND";
    case StatusCode::kFailedPrecondition:
      return "FAILED_PRECONDITION";
    case StatusCode::kMethodNotAllowed:
      return "METHOD_NOT_ALLOWED";
  }
  return "UNKNOWN";
}

unsigned HttpStatusOf(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kMalformed:
      return 400;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kFailedPrecondition:
      return 409;
    case StatusCode::kMethodNotAllowed:
      return 405;
    case StatusCode::kNotLeader:
      return 421;  // Misdirected Request: ask the leader the detail names
    case StatusCode::kInvalidArgument:
    case StatusCode::kAlreadyExists:  // the same request fails again, as an invalid one
      return 422;
    case StatusCode::kInternal:
      return 500;
    case StatusCode::kUnavailable:
    case StatusCode::kShuttingDown:
      return 503;
    case StatusCode::kDeadlineExceeded:
      return 504;
  }
  return 500;
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s(StatusCodeName(code_));
  s += ": ";
  s += message_;
  return s;
}

}  // namespace das
