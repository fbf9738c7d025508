// API tokens on the public API (docs/operations.md, "Security"): `--auth-tokens-file` names a file
// of `TOKEN NAME ROLE` lines (whitespace-separated; `#` starts a comment; roles `write` for
// inserts, `read` for analytics and queries, `admin` for everything). A request shows its token
// as `Authorization: Bearer TOKEN`. Tokens are compared in constant time, and never appear in
// an error or a log line (a caller is named by NAME).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"

namespace das::control {

enum class Role { kRead, kWrite, kAdmin };

// What a route needs. kWrite: inserts; kRead: analytics and queries; kAdmin: administration.
enum class Access { kRead, kWrite, kAdmin };

bool Permits(Role role, Access access);
std::string_view RoleName(Role role);

struct Caller {
  std::string name;
  Role role;
};

struct TokenEntry {
  std::string token;
  Caller caller;
};

// The tokens of a file's text. kInvalidArgument "line N: ..." for a line that is not
// `TOKEN NAME ROLE`, an unknown role, a token given twice, or a file without any token.
Result<std::vector<TokenEntry>> ParseTokens(std::string_view text);

// `a == b` in time that depends on their lengths only, never on where they differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// The token of an `Authorization: Bearer TOKEN` header value (the scheme in any case), or
// nullopt when the value is not of that form.
std::optional<std::string_view> BearerToken(std::string_view authorization);

// The tokens of one file, read again by Reload() (on SIGHUP). Thread-safe.
class TokenFile {
 public:
  // Reads `path`; fails (kInvalidArgument, naming the file) when it cannot be read or parsed.
  static Result<std::unique_ptr<TokenFile>> Load(std::string path);

  // Reads the file again. On a failure the tokens stay as they were, and the error says why.
  Status Reload();

  // Who `token` belongs to: compared with every token, each in constant time.
  std::optional<Caller> Find(std::string_view token) const;

  size_t size() const;
  const std::string& path() const { return path_; }

 private:
  explicit TokenFile(std::string path) : path_(std::move(path)) {}
  Result<std::shared_ptr<const std::vector<TokenEntry>>> Read() const;

  const std::string path_;
  mutable Mutex mu_;
  std::shared_ptr<const std::vector<TokenEntry>> tokens_ GUARDED_BY(mu_);  // never null
};

}  // namespace das::control
