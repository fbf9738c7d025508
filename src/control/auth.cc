#include "control/auth.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>
#include <unordered_set>
#include <utility>

namespace das::control {
namespace {

std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    const size_t start = i;
    while (i < line.size() && !std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    if (i > start) fields.push_back(line.substr(start, i - start));
  }
  return fields;
}

std::optional<Role> ParseRole(std::string_view name) {
  if (name == "read") return Role::kRead;
  if (name == "write") return Role::kWrite;
  if (name == "admin") return Role::kAdmin;
  return std::nullopt;
}

}  // namespace

bool Permits(Role role, Access access) {
  switch (role) {
    case Role::kAdmin:
      return true;
    case Role::kWrite:
      return access == Access::kWrite;
    case Role::kRead:
      return access == Access::kRead;
  }
  return false;
}

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kRead:
      return "read";
    case Role::kWrite:
      return "write";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

Result<std::vector<TokenEntry>> ParseTokens(std::string_view text) {
  std::vector<TokenEntry> entries;
  std::unordered_set<std::string_view> seen;
  size_t line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (const size_t hash = line.find('#'); hash != std::string_view::npos) {
      line = line.substr(0, hash);
    }
    const std::vector<std::string_view> fields = Fields(line);
    if (fields.empty()) continue;
    const std::string where = "line " + std::to_string(line_number) + ": ";
    if (fields.size() != 3) {
      return InvalidArgument(where + "expected TOKEN NAME ROLE, found " +
                             std::to_string(fields.size()) + " fields");
    }
    const std::optional<Role> role = ParseRole(fields[2]);
    if (!role) {
      return InvalidArgument(where + "role must be read, write or admin, not '" +
                             std::string(fields[2]) + "'");
    }
    if (!seen.insert(fields[0]).second) {
      return InvalidArgument(where + "the token of '" + std::string(fields[1]) +
                             "' is given twice");
    }
    entries.push_back(TokenEntry{std::string(fields[0]), Caller{std::string(fields[1]), *role}});
  }
  if (entries.empty()) return InvalidArgument("no token in it");
  return entries;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  unsigned char differ = a.size() != b.size() ? 1 : 0;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const auto x = static_cast<unsigned char>(i < a.size() ? a[i] : 0);
    const auto y = static_cast<unsigned char>(i < b.size() ? b[i] : 0);
    differ |= static_cast<unsigned char>(x ^ y);
  }
  return differ == 0;
}

std::optional<std::string_view> BearerToken(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size()) return std::nullopt;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) {
      return std::nullopt;
    }
  }
  std::string_view rest = authorization.substr(kScheme.size());
  if (rest.front() != ' ') return std::nullopt;
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\t')) rest.remove_suffix(1);
  if (rest.empty() || rest.find_first_of(" \t") != std::string_view::npos) return std::nullopt;
  return rest;
}

Result<std::unique_ptr<TokenFile>> TokenFile::Load(std::string path) {
  std::unique_ptr<TokenFile> file(new TokenFile(std::move(path)));
  RETURN_IF_ERROR(file->Reload());
  return file;
}

Result<std::shared_ptr<const std::vector<TokenEntry>>> TokenFile::Read() const {
  std::ifstream in(path_, std::ios::binary);
  if (!in) return InvalidArgument("--auth-tokens-file " + path_ + ": cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return InvalidArgument("--auth-tokens-file " + path_ + ": cannot be read");
  Result<std::vector<TokenEntry>> entries = ParseTokens(text.str());
  if (!entries.ok()) {
    return InvalidArgument("--auth-tokens-file " + path_ + ": " + entries.status().message());
  }
  return std::make_shared<const std::vector<TokenEntry>>(std::move(entries).value());
}

Status TokenFile::Reload() {
  ASSIGN_OR_RETURN(std::shared_ptr<const std::vector<TokenEntry>> tokens, Read());
  MutexLock lock(mu_);
  tokens_ = std::move(tokens);
  return Status::Ok();
}

std::optional<Caller> TokenFile::Find(std::string_view token) const {
  std::shared_ptr<const std::vector<TokenEntry>> tokens;
  {
    MutexLock lock(mu_);
    tokens = tokens_;
  }
  // Every token is compared, also after a match, so the time says nothing about which matched.
  const TokenEntry* found = nullptr;
  for (const TokenEntry& entry : *tokens) {
    if (ConstantTimeEquals(entry.token, token)) found = &entry;
  }
  if (found == nullptr) return std::nullopt;
  return found->caller;
}

size_t TokenFile::size() const {
  MutexLock lock(mu_);
  return tokens_->size();
}

}  // namespace das::control
