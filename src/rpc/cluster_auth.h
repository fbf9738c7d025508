// The cluster secret on internal HTTP (docs/operations.md, "Security"): every request to a worker's
// internal API carries a Das-Cluster-Auth header,
//   "v1 <unix time in ms> <hex HMAC-SHA256(secret, "das-http-v1\n" method "\n" target "\n"
//    time "\n" body)>",
// which the worker checks before the request reaches its handler. The secret itself never
// travels; a signature covers the body, so a recorded one cannot carry other rows, and it
// expires: a signature more than kClusterAuthMaxSkew away from the worker's clock is refused
// (within that window a recorded request can be replayed as it was; internal writes carry
// request ids that make a replayed write a duplicate). The raft transport proves the same
// secret in its own handshake (raft/internal/transport.h).
// Thread-safety: ClusterKey is immutable; Sign and Verify may run concurrently.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "http/message.h"

namespace das::rpc {

inline constexpr size_t kMinClusterSecretBytes = 16;
inline constexpr size_t kMaxClusterSecretBytes = 4096;
inline constexpr std::string_view kClusterAuthHeader = "Das-Cluster-Auth";
inline constexpr std::chrono::seconds kClusterAuthMaxSkew{300};

// A cluster secret file's contents, without the whitespace that ends it (an editor's newline).
// kInvalidArgument naming the file when it cannot be read, or when the secret is shorter than
// kMinClusterSecretBytes or longer than kMaxClusterSecretBytes. Never says the secret.
Result<std::string> ReadClusterSecret(const std::string& path);

class ClusterKey {
 public:
  // REQUIRES: `secret` is not empty.
  static std::shared_ptr<const ClusterKey> Create(std::string_view secret);
  ~ClusterKey();
  ClusterKey(const ClusterKey&) = delete;
  ClusterKey& operator=(const ClusterKey&) = delete;

  // The Das-Cluster-Auth value for `request` (its method, target and body) at `now`.
  std::string Sign(const http::Request& request, std::chrono::system_clock::time_point now) const;
  // Adds the header to `request`.
  void SignInPlace(http::Request& request, std::chrono::system_clock::time_point now) const;
  // OK when `request` carries a valid signature made within kClusterAuthMaxSkew of `now`; else
  // kUnavailable saying what is wrong with it (absent, malformed, too old or new, not ours).
  Status Verify(const http::Request& request, std::chrono::system_clock::time_point now) const;

  struct Mac;  // defined in cluster_auth.cc

 private:
  explicit ClusterKey(std::unique_ptr<Mac> mac);
  std::string Signature(const http::Request& request, std::string_view millis) const;
  std::unique_ptr<Mac> mac_;
};

// The answer to a request that failed Verify: 401 with a WWW-Authenticate challenge naming the
// header, the error saying `who` refused it and why (`refusal`: Verify's status). One answer for
// every node that checks the secret.
http::Response Unauthenticated(std::string_view who, const Status& refusal);

}  // namespace das::rpc
