// The limits on what clients may store, shared by the control node (which answers 422) and the
// workers (which re-check what reaches them).
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include "common/status.h"

namespace das {

inline constexpr size_t kMaxPartitionKeyBytes = 1024;
inline constexpr size_t kMaxIdempotencyKeyBytes = 256;

// True when `bytes` is well-formed UTF-8 (no overlong forms, no surrogates, <= U+10FFFF).
bool IsValidUtf8(std::string_view bytes);

// OK, or kInvalidArgument saying which limit the row breaks: the key must be 1 to 1024 bytes of
// UTF-8 and the value present and a finite double.
Status ValidateRow(std::string_view partition_key, std::optional<double> value);

// OK, or kInvalidArgument: an idempotency key is at most 256 bytes of UTF-8 (empty: none).
Status ValidateIdempotencyKey(std::string_view key);

}  // namespace das
