#include "rpc/cluster_auth.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <charconv>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "rpc/status_wire.h"

namespace das::rpc {

// An HMAC-SHA256 context keyed once; each signature works on a copy of it.
struct ClusterKey::Mac {
  EVP_MAC* mac = nullptr;
  EVP_MAC_CTX* keyed = nullptr;
  ~Mac() {
    EVP_MAC_CTX_free(keyed);
    EVP_MAC_free(mac);
  }
};

namespace {

constexpr std::string_view kVersion = "v1";
constexpr size_t kMacBytes = 32;

std::string Hex(const unsigned char* bytes, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 15];
  }
  return out;
}

int64_t UnixMillis(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

Result<std::string> ReadClusterSecret(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgument("cannot read the cluster secret file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  std::string secret = text.str();
  if (in.bad()) return InvalidArgument("cannot read the cluster secret file " + path);
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r' ||
                             secret.back() == ' ' || secret.back() == '\t')) {
    secret.pop_back();
  }
  if (secret.size() < kMinClusterSecretBytes) {
    return InvalidArgument("the cluster secret in " + path + " has " +
                           std::to_string(secret.size()) + " bytes; at least " +
                           std::to_string(kMinClusterSecretBytes) + " are needed");
  }
  if (secret.size() > kMaxClusterSecretBytes) {
    return InvalidArgument("the cluster secret in " + path + " has " +
                           std::to_string(secret.size()) + " bytes; at most " +
                           std::to_string(kMaxClusterSecretBytes) + " are allowed");
  }
  return secret;
}

ClusterKey::ClusterKey(std::unique_ptr<Mac> mac) : mac_(std::move(mac)) {}
ClusterKey::~ClusterKey() = default;

std::shared_ptr<const ClusterKey> ClusterKey::Create(std::string_view secret) {
  auto mac = std::make_unique<Mac>();
  mac->mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (mac->mac != nullptr) mac->keyed = EVP_MAC_CTX_new(mac->mac);
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_END};
  if (mac->keyed == nullptr ||
      EVP_MAC_init(mac->keyed, reinterpret_cast<const unsigned char*>(secret.data()), secret.size(),
                   params) != 1) {
    throw std::runtime_error("OpenSSL cannot make an HMAC-SHA256 context");
  }
  return std::shared_ptr<const ClusterKey>(new ClusterKey(std::move(mac)));
}

std::string ClusterKey::Signature(const http::Request& request, std::string_view millis) const {
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_dup(mac_->keyed);
  if (ctx == nullptr) throw std::runtime_error("OpenSSL cannot copy an HMAC context");
  const auto update = [ctx](std::string_view part) {
    EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(part.data()), part.size());
  };
  update("das-http-v1\n");
  update(request.method);
  update("\n");
  update(request.target);
  update("\n");
  update(millis);
  update("\n");
  update(request.body);
  unsigned char out[kMacBytes];
  size_t out_len = 0;
  const int ok = EVP_MAC_final(ctx, out, &out_len, sizeof out);
  EVP_MAC_CTX_free(ctx);
  if (ok != 1 || out_len != kMacBytes) throw std::runtime_error("OpenSSL HMAC failed");
  return Hex(out, out_len);
}

std::string ClusterKey::Sign(const http::Request& request,
                             std::chrono::system_clock::time_point now) const {
  const std::string millis = std::to_string(UnixMillis(now));
  return std::string(kVersion) + " " + millis + " " + Signature(request, millis);
}

void ClusterKey::SignInPlace(http::Request& request,
                             std::chrono::system_clock::time_point now) const {
  request.headers.emplace_back(std::string(kClusterAuthHeader), Sign(request, now));
}

Status ClusterKey::Verify(const http::Request& request,
                          std::chrono::system_clock::time_point now) const {
  const std::string* header = request.Header(kClusterAuthHeader);
  if (header == nullptr) {
    return Unavailable("it carries no " + std::string(kClusterAuthHeader) +
                       " header (is its --cluster-secret-file set?)");
  }
  std::string_view value(*header);
  const size_t first = value.find(' ');
  const size_t second = first == std::string_view::npos ? first : value.find(' ', first + 1);
  if (second == std::string_view::npos || value.substr(0, first) != kVersion) {
    return Unavailable("its " + std::string(kClusterAuthHeader) + " header is malformed");
  }
  const std::string_view millis = value.substr(first + 1, second - first - 1);
  const std::string_view mac = value.substr(second + 1);
  int64_t signed_at = 0;
  const auto [end, ec] = std::from_chars(millis.data(), millis.data() + millis.size(), signed_at);
  if (ec != std::errc() || end != millis.data() + millis.size() || millis.empty() ||
      mac.size() != 2 * kMacBytes) {
    return Unavailable("its " + std::string(kClusterAuthHeader) + " header is malformed");
  }
  const int64_t skew_ms = UnixMillis(now) - signed_at;
  const int64_t max_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(kClusterAuthMaxSkew).count();
  if (skew_ms > max_ms || skew_ms < -max_ms) {
    return Unavailable("its signature was made " + std::to_string(skew_ms / 1000) +
                       " s from this node's clock (at most " +
                       std::to_string(kClusterAuthMaxSkew.count()) +
                       " s either way: a replayed request, or clocks apart)");
  }
  const std::string expected = Signature(request, millis);
  if (CRYPTO_memcmp(expected.data(), mac.data(), expected.size()) != 0) {
    return Unavailable("its signature does not prove the cluster secret");
  }
  return Status::Ok();
}

http::Response Unauthenticated(std::string_view who, const Status& refusal) {
  http::Response refused =
      ErrorResponse(Unavailable("refused by " + std::string(who) + ": " + refusal.message()));
  refused.status = 401;
  refused.headers.emplace_back("WWW-Authenticate", std::string(kClusterAuthHeader));
  return refused;
}

}  // namespace das::rpc
