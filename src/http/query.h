// Splitting an origin-form request target ("/a/b?x=1&y=%20z") into its path and its decoded
// query parameters, so that handlers never parse targets themselves.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace das::http {

// One query item, percent-decoded with '+' as space (application/x-www-form-urlencoded).
struct QueryParam {
  std::string name;
  std::string value;
};

// A parsed request target. Plain values; safe to copy and to share once built.
struct Target {
  std::string path;                // as sent, not decoded: "/a/b"
  std::vector<QueryParam> params;  // in the order sent
  // The registered path or prefix that matched, filled by Router (e.g. for metrics labels, where
  // the raw path would give unbounded label values). ParseTarget leaves it empty.
  std::string route;
};

// Parses an origin-form target. The path is everything before the first '?' and is kept as
// sent; the query after it is split on '&'. Empty items ("a=1&&b=2", a trailing '&') are
// skipped, and an item without '=' has an empty value. '#' is an ordinary character here: a
// fragment is not part of origin-form.
// Errors (kInvalidArgument): a path that does not start with '/'; a malformed percent escape
// ("%zz", "%4"); a decoded name or value that is not valid UTF-8. The message names the item.
Result<Target> ParseTarget(std::string_view target);

}  // namespace das::http
