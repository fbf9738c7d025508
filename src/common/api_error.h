// An answer the public API gives instead of a result (the HTTP status and why), and a value or
// that answer: what the control node's decoding and the query planner return.
#pragma once

#include <string>
#include <variant>

namespace das {

struct ApiError {
  unsigned status = 500;
  std::string message;
};

template <typename T>
using Decoded = std::variant<T, ApiError>;

}  // namespace das
