#include "common/validation.h"

#include <cmath>
#include <string>

namespace das {

bool IsValidUtf8(std::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto* end = p + bytes.size();
  while (p < end) {
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    size_t len;
    char32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;  // continuation byte first, overlong 2-byte lead, or beyond U+10FFFF
    }
    if (static_cast<size_t>(end - p) < len) return false;
    for (size_t i = 1; i < len; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return false;
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;
    p += len;
  }
  return true;
}

Status ValidateRow(std::string_view partition_key, std::optional<double> value) {
  if (partition_key.empty()) return InvalidArgument("partition_key is empty");
  if (partition_key.size() > kMaxPartitionKeyBytes) {
    return InvalidArgument("partition_key is " + std::to_string(partition_key.size()) +
                           " bytes; the limit is " + std::to_string(kMaxPartitionKeyBytes));
  }
  if (!IsValidUtf8(partition_key)) return InvalidArgument("partition_key is not valid UTF-8");
  if (!value) return InvalidArgument("value is required");
  if (!std::isfinite(*value)) return InvalidArgument("value is not a finite number");
  return Status::Ok();
}

Status ValidateIdempotencyKey(std::string_view key) {
  if (key.size() > kMaxIdempotencyKeyBytes) {
    return InvalidArgument("idempotency_key is " + std::to_string(key.size()) +
                           " bytes; the limit is " + std::to_string(kMaxIdempotencyKeyBytes));
  }
  if (!IsValidUtf8(key)) return InvalidArgument("idempotency_key is not valid UTF-8");
  return Status::Ok();
}

}  // namespace das
