// An answer the public API gives instead of a result (the HTTP status and why), and a value or
// that answer: what the control node's decoding and the query planner return.
#pragma once

#include <string>
#include <variant>

#include "common/status.h"

namespace das {

struct ApiError {
  unsigned status = 500;
  std::string message;
};

template <typename T>
using Decoded = std::variant<T, ApiError>;

// A failure as the public API answers it: the one table from code to HTTP status
// (HttpStatusOf) and its message.
inline ApiError ApiErrorOf(const Status& status) {
  return ApiError{HttpStatusOf(status.code()), status.message()};
}

}  // namespace das
