// The cluster secret's signatures on internal HTTP: the file's limits, the header's exact format
// (computed here independently with OpenSSL's one-shot HMAC), and every way a request can fail
// to prove the secret.
#include "rpc/cluster_auth.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace das::rpc {
namespace {

using namespace std::chrono_literals;

const std::string kSecret = "sixteen-or-more-bytes";
const std::chrono::system_clock::time_point kNow{std::chrono::milliseconds(1'790'000'000'123)};

std::string HexHmac(const std::string& key, const std::string& message) {
  unsigned char mac[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &len);
  std::string hex;
  static constexpr char kDigits[] = "0123456789abcdef";
  for (unsigned i = 0; i < len; ++i) {
    hex.push_back(kDigits[mac[i] >> 4]);
    hex.push_back(kDigits[mac[i] & 15]);
  }
  return hex;
}

http::Request Write(std::string body) {
  http::Request request;
  request.method = "POST";
  request.target = "/internal/v1/write";
  request.body = std::move(body);
  return request;
}

class SecretFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/das-secret-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& contents) {
    const std::string path = dir_ + "/secret";
    std::ofstream(path, std::ios::binary) << contents;
    return path;
  }
  std::string dir_;
};

TEST_F(SecretFileTest, TrailingWhitespaceIsNotPartOfTheSecret) {
  Result<std::string> secret = ReadClusterSecret(Write(kSecret + " \r\n\n"));
  ASSERT_TRUE(secret.ok()) << secret.status().ToString();
  EXPECT_EQ(*secret, kSecret);
}

TEST_F(SecretFileTest, ShortLongAndMissingFilesAreNamedErrorsThatNeverSayTheSecret) {
  const Status short_one = ReadClusterSecret(Write("fifteen-bytes!!\n")).status();
  EXPECT_EQ(short_one.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(short_one.message().find("has 15 bytes; at least 16 are needed"), std::string::npos)
      << short_one.message();
  EXPECT_EQ(short_one.message().find("fifteen"), std::string::npos);
  const Status long_one = ReadClusterSecret(Write(std::string(4097, 'x'))).status();
  EXPECT_NE(long_one.message().find("has 4097 bytes; at most 4096"), std::string::npos)
      << long_one.message();
  EXPECT_TRUE(ReadClusterSecret(Write(std::string(4096, 'x'))).ok());
  EXPECT_TRUE(ReadClusterSecret(Write(std::string(16, 'x'))).ok());
  const Status missing = ReadClusterSecret(dir_ + "/none").status();
  EXPECT_EQ(missing.message(), "cannot read the cluster secret file " + dir_ + "/none");
}

// The header is exactly what rpc/cluster_auth.h documents, so another implementation can
// interoperate: "v1 <unix ms> <hex HMAC-SHA256 over the labelled method, target, time, body>".
TEST(ClusterKeyTest, TheSignatureIsTheDocumentedHmac) {
  const auto key = ClusterKey::Create(kSecret);
  const std::string body("rows\0and bytes", 14);
  EXPECT_EQ(key->Sign(Write(body), kNow),
            "v1 1790000000123 " +
                HexHmac(kSecret, "das-http-v1\nPOST\n/internal/v1/write\n1790000000123\n" + body));
}

TEST(ClusterKeyTest, ASignedRequestIsProvenWithinTheAllowedSkewEitherWay) {
  const auto key = ClusterKey::Create(kSecret);
  for (const auto skew : {0s, 299s, -299s}) {
    http::Request request = Write("body");
    key->SignInPlace(request, kNow);
    EXPECT_TRUE(key->Verify(request, kNow + skew).ok()) << skew.count();
  }
}

TEST(ClusterKeyTest, EveryRequestThatDoesNotProveTheSecretIsRefusedSayingWhy) {
  const auto key = ClusterKey::Create(kSecret);
  const auto other = ClusterKey::Create("another secret of the same length");
  const auto why = [&key](const http::Request& request,
                          std::chrono::system_clock::time_point now = kNow) {
    const Status status = key->Verify(request, now);
    EXPECT_EQ(status.code(), StatusCode::kUnavailable);
    return status.message();
  };
  EXPECT_NE(why(Write("body")).find("carries no Das-Cluster-Auth header"), std::string::npos);

  http::Request signed_request = Write("body");
  key->SignInPlace(signed_request, kNow);
  http::Request body = signed_request;
  body.body = "other rows";
  EXPECT_EQ(why(body), "its signature does not prove the cluster secret");
  http::Request target = signed_request;
  target.target = "/internal/v1/shard/transfer";
  EXPECT_EQ(why(target), "its signature does not prove the cluster secret");
  http::Request method = signed_request;
  method.method = "PUT";
  EXPECT_EQ(why(method), "its signature does not prove the cluster secret");
  http::Request foreign = Write("body");
  other->SignInPlace(foreign, kNow);
  EXPECT_EQ(why(foreign), "its signature does not prove the cluster secret");

  EXPECT_NE(why(signed_request, kNow + 301s).find("made 301 s from this node's clock"),
            std::string::npos);
  EXPECT_NE(why(signed_request, kNow - 301s).find("made -301 s from this node's clock"),
            std::string::npos);

  const std::string mac(64, 'a');
  for (const std::string& value :
       {std::string(""), std::string("v1"), std::string("v2 1790000000123 ") + mac,
        std::string("v1 12x4 ") + mac, std::string("v1  ") + mac, std::string("v1 1 abc"),
        std::string("v1 99999999999999999999999 ") + mac}) {
    http::Request request = Write("body");
    request.headers.emplace_back("das-cluster-auth", value);
    EXPECT_EQ(why(request), "its Das-Cluster-Auth header is malformed") << value;
  }
}

}  // namespace
}  // namespace das::rpc
