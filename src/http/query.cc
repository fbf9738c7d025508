#include "http/query.h"

#include <optional>
#include <string>
#include <utility>

#include "common/validation.h"

namespace das::http {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes one form-urlencoded component; nullopt on a malformed percent escape.
std::optional<std::string> FormDecode(std::string_view encoded) {
  std::string decoded;
  decoded.reserve(encoded.size());
  for (size_t i = 0; i < encoded.size(); ++i) {
    const char c = encoded[i];
    if (c == '+') {
      decoded.push_back(' ');
    } else if (c != '%') {
      decoded.push_back(c);
    } else {
      const int high = i + 1 < encoded.size() ? HexDigit(encoded[i + 1]) : -1;
      const int low = i + 2 < encoded.size() ? HexDigit(encoded[i + 2]) : -1;
      if (high < 0 || low < 0) return std::nullopt;
      decoded.push_back(static_cast<char>(high * 16 + low));
      i += 2;
    }
  }
  return decoded;
}

Result<std::string> DecodeComponent(std::string_view encoded, std::string_view item) {
  std::optional<std::string> decoded = FormDecode(encoded);
  if (!decoded) {
    return InvalidArgument("bad percent escape in query item '" + std::string(item) + "'");
  }
  if (!IsValidUtf8(*decoded)) {
    return InvalidArgument("query item '" + std::string(item) + "' is not valid UTF-8");
  }
  return std::move(*decoded);
}

// REQUIRES: `item` is not empty.
Result<QueryParam> ParseItem(std::string_view item) {
  const size_t equals = item.find('=');
  const std::string_view name = item.substr(0, equals);
  const std::string_view value =
      equals == std::string_view::npos ? std::string_view() : item.substr(equals + 1);
  QueryParam param;
  ASSIGN_OR_RETURN(param.name, DecodeComponent(name, item));
  ASSIGN_OR_RETURN(param.value, DecodeComponent(value, item));
  return param;
}

}  // namespace

Result<Target> ParseTarget(std::string_view target) {
  const size_t question = target.find('?');
  Target parsed;
  parsed.path = std::string(target.substr(0, question));
  if (parsed.path.empty() || parsed.path.front() != '/') {
    return InvalidArgument("request target '" + std::string(target) + "' does not start with '/'");
  }
  if (question == std::string_view::npos) return parsed;
  std::string_view query = target.substr(question + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (item.empty()) continue;
    ASSIGN_OR_RETURN(QueryParam param, ParseItem(item));
    parsed.params.push_back(std::move(param));
  }
  return parsed;
}

}  // namespace das::http
