// Security (docs/operations.md, "Security") through the real binaries. API tokens:
// --auth-tokens-file, bearer tokens, roles, /health without a token, the file read again on SIGHUP.
// The cluster secret: --cluster-secret-file on every node; workers refuse internal requests and
// raft connections that cannot prove it, and say whom they refused. TLS: --tls-cert and --tls-key
// on the public port, with a certificate the test makes.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "support/api.h"
#include "support/cluster.h"
#include "support/http_client.h"
#include "support/process.h"
#include "support/tls_client.h"

namespace das::it {
namespace {

constexpr char kWriteToken[] = "w-6f1d0c";
constexpr char kReadToken[] = "r-93b2aa";
constexpr char kAdminToken[] = "a-0e77c4";

class SecurityTest : public ClusterTest {
 protected:
  std::string TokensPath() const { return cluster_.dir() + "/tokens"; }

  // Replaced whole (rename), as an operator's tooling would, so a reload never reads half.
  void WriteTokens(const std::string& text) {
    const std::string temp = TokensPath() + ".new";
    std::ofstream(temp) << text;
    std::filesystem::rename(temp, TokensPath());
  }

  testing::AssertionResult StartWithTokens() {
    WriteTokens(std::string("# test tokens\n") + kWriteToken + " loader write\n" + kReadToken +
                " dashboard read\n" + kAdminToken + " ops admin\n");
    ClusterOptions options = Unreplicated();
    options.control_flags = {"--auth-tokens-file", TokensPath()};
    return cluster_.Start(options);
  }

  Result<HttpResponse> Insert(const std::string& authorization) {
    HttpRequest request;
    request.method = "POST";
    request.target = "/insert";
    request.body = InsertJson("k1", 2.5);
    request.headers = {{"Content-Type", "application/json"}};
    if (!authorization.empty()) request.headers.emplace_back("Authorization", authorization);
    return HttpDo(port(), request);
  }

  Result<HttpResponse> Analytics(const std::string& authorization) {
    std::vector<std::pair<std::string, std::string>> headers;
    if (!authorization.empty()) headers.emplace_back("Authorization", authorization);
    return HttpGet(port(), "/analytics?format=json", headers);
  }

  static std::string Bearer(const char* token) { return std::string("Bearer ") + token; }

  std::string ControlLog() const {
    return cluster_.control_process()->LogTail(std::numeric_limits<size_t>::max());
  }
};

TEST_F(SecurityTest, RequestsWithoutAValidTokenAreRefusedAndChangeNothing) {
  ASSERT_TRUE(StartWithTokens());
  for (const std::string& authorization :
       {std::string(), std::string("Bearer not-a-token"), std::string("Basic dXNlcjpwYXNz"),
        std::string("Bearer"), Bearer(kWriteToken) + "x"}) {
    Result<HttpResponse> insert = Insert(authorization);
    ASSERT_TRUE(IsError(insert, 401, Encoding::kJson)) << "'" << authorization << "'";
    EXPECT_EQ(insert->Header("WWW-Authenticate").rfind("Bearer", 0), 0u)
        << insert->Header("WWW-Authenticate");
    EXPECT_TRUE(IsError(Analytics(authorization), 401, Encoding::kJson)) << authorization;
  }
  Result<HttpResponse> bad = Insert("Bearer wrong");
  ASSERT_TRUE(bad.ok());
  EXPECT_NE(bad->Header("WWW-Authenticate").find("invalid_token"), std::string::npos);
  Result<HttpResponse> analytics = Analytics(Bearer(kReadToken));
  ASSERT_TRUE(analytics.ok());
  EXPECT_EQ(analytics->status, 200);
  EXPECT_NE(analytics->body.find("\"count\":\"0\""), std::string::npos) << analytics->body;
}

TEST_F(SecurityTest, EachRoleMayDoWhatItsNameSaysAndNoMore) {
  ASSERT_TRUE(StartWithTokens());
  Result<HttpResponse> insert = Insert(Bearer(kWriteToken));
  ASSERT_TRUE(insert.ok());
  EXPECT_EQ(insert->status, 200) << insert->body;

  v1::ErrorResponse error;
  ASSERT_TRUE(IsError(Insert(Bearer(kReadToken)), 403, Encoding::kJson, &error));
  EXPECT_EQ(error.error(), "token 'dashboard' has role read, which may not POST /insert");
  ASSERT_TRUE(IsError(Analytics(Bearer(kWriteToken)), 403, Encoding::kJson, &error));
  EXPECT_EQ(error.error(), "token 'loader' has role write, which may not GET /analytics");

  Result<HttpResponse> admin_insert = Insert(Bearer(kAdminToken));
  ASSERT_TRUE(admin_insert.ok());
  EXPECT_EQ(admin_insert->status, 200);
  // Exactly the two accepted inserts are stored; the refused one left nothing.
  Result<HttpResponse> analytics = Analytics("bearer " + std::string(kAdminToken));
  ASSERT_TRUE(analytics.ok());
  EXPECT_EQ(analytics->status, 200);
  EXPECT_NE(analytics->body.find("\"count\":\"2\""), std::string::npos) << analytics->body;
  EXPECT_NE(analytics->body.find("\"sum\":5"), std::string::npos) << analytics->body;

  // /metrics is a read: the dashboard's token may scrape it, the loader's may not.
  auto scrape = [this](const char* token) {
    std::vector<std::pair<std::string, std::string>> headers;
    if (token != nullptr) headers.emplace_back("Authorization", Bearer(token));
    Result<HttpResponse> response = HttpGet(port(), "/metrics", headers);
    return response.ok() ? response->status : 0;
  };
  EXPECT_EQ(scrape(nullptr), 401);
  EXPECT_EQ(scrape(kWriteToken), 403);
  EXPECT_EQ(scrape(kReadToken), 200);
  EXPECT_EQ(scrape(kAdminToken), 200);

  // No token ever reaches the log, whatever was refused or accepted.
  const std::string log = ControlLog();
  for (const char* token : {kWriteToken, kReadToken, kAdminToken}) {
    EXPECT_EQ(log.find(token), std::string::npos) << token << " in the log:\n" << log;
  }
}

TEST_F(SecurityTest, HealthIsOpenButSaysOnlyTheStatusWithoutAToken) {
  ASSERT_TRUE(StartWithTokens());
  Result<HttpResponse> bare = HttpGet(port(), "/health?format=json");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->status, 200);
  Result<google::protobuf::Struct> fields = ParseJsonObject(bare->body);
  ASSERT_TRUE(fields.ok()) << bare->body;
  EXPECT_EQ(FieldNames(*fields), "status") << bare->body;

  Result<HttpResponse> full =
      HttpGet(port(), "/health?format=json", {{"Authorization", Bearer(kReadToken)}});
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->status, 200);
  EXPECT_NE(full->body.find("\"workers\""), std::string::npos) << full->body;
}

TEST_F(SecurityTest, TheTokenFileIsReadAgainOnSighup) {
  ASSERT_TRUE(StartWithTokens());
  Process& control = *cluster_.control_process();
  constexpr char kNewToken[] = "n-51aa09";
  WriteTokens(std::string(kNewToken) + " rotated write\n");
  ASSERT_TRUE(control.Signal(SIGHUP));
  // The node logs the reload once it is done: from then on the new token is accepted and the
  // old one refused.
  ASSERT_TRUE(control.WaitForLog("SIGHUP: 1 tokens from", 1, std::chrono::seconds(20)))
      << control.LogTail();
  Result<HttpResponse> insert = Insert(Bearer(kNewToken));
  ASSERT_TRUE(insert.ok());
  EXPECT_EQ(insert->status, 200) << insert->body;
  EXPECT_TRUE(IsError(Insert(Bearer(kWriteToken)), 401, Encoding::kJson));

  // A broken file is refused and the tokens stay as they were; the node keeps serving.
  WriteTokens("n-51aa09 rotated superuser\n");
  ASSERT_TRUE(control.Signal(SIGHUP));
  ASSERT_TRUE(control.WaitForLog("kept the tokens as they were", 1, std::chrono::seconds(20)))
      << control.LogTail();
  Result<HttpResponse> still = Insert(Bearer(kNewToken));
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(still->status, 200);

  // A worker has nothing to reload: SIGHUP (an operator signalling the whole group) is logged
  // and the worker goes on.
  Process& worker = *cluster_.worker_process(0);
  ASSERT_TRUE(worker.Signal(SIGHUP));
  ASSERT_TRUE(
      worker.WaitForLog("SIGHUP: a worker has nothing to read again", 1, std::chrono::seconds(20)))
      << worker.LogTail();
  EXPECT_FALSE(worker.Wait(std::chrono::milliseconds(0)).has_value());
  for (int i = 0; i < 4; ++i) {
    Result<HttpResponse> after = Insert(Bearer(kNewToken));
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(after->status, 200);
  }
}

TEST_F(SecurityTest, AnUnreadableOrBrokenTokenFileStopsTheStart) {
  const std::string log = cluster_.dir() + "/refused.log";
  WriteTokens("just-one-field\n");
  for (const std::string& path : {TokensPath(), cluster_.dir() + "/missing"}) {
    std::string error;
    std::unique_ptr<Process> control =
        Process::Start(ControlBinary(),
                       {"--auth-tokens-file", path, "--port", std::to_string(FreePort()),
                        "--workers", "127.0.0.1:1,127.0.0.1:2", "--replication-factor", "1"},
                       log, &error);
    ASSERT_NE(control, nullptr) << error;
    std::optional<int> status = control->Wait(std::chrono::seconds(10));
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2);
  }
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("--auth-tokens-file " + TokensPath() +
                            ": line 1: expected TOKEN NAME ROLE, found 1 fields"),
            std::string::npos)
      << text.str();
  EXPECT_NE(text.str().find(cluster_.dir() + "/missing: cannot be read"), std::string::npos)
      << text.str();
}

// --- The cluster secret ---

class ClusterSecretTest : public ClusterTest {
 protected:
  std::string SecretPath() const { return cluster_.dir() + "/cluster-secret"; }

  testing::AssertionResult StartWithSecret(bool control_has_it, bool wait_ready) {
    std::ofstream(SecretPath()) << "the secret of this test's cluster\n";
    ClusterOptions options;  // replicated: the control node is the witness of 2 workers
    options.worker_flags = {"--cluster-secret-file", SecretPath()};
    if (control_has_it) options.control_flags = {"--cluster-secret-file", SecretPath()};
    options.wait_ready = wait_ready;
    options.relaxed_deadlines = wait_ready;  // a cluster that cannot form fails inserts in 2 s
    return cluster_.Start(options);
  }

  const Process& Worker(int i) const { return *cluster_.worker_process(i); }
};

// A raw connection to a raft port that sends a handshake with a proof of zeros; returns whether
// the node closed it without an acknowledgement (after its 24-byte hello).
testing::AssertionResult RaftHandshakeIsRefused(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval limit{30, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return testing::AssertionFailure() << "cannot connect to raft port " << port;
  }
  char hello[24];
  size_t have = 0;
  while (have < sizeof hello) {
    const ssize_t n = ::read(fd, hello + have, sizeof hello - have);
    if (n <= 0) break;
    have += static_cast<size_t>(n);
  }
  const std::string address = "127.0.0.1:1";
  std::string handshake("DASR\x03\0\0\0", 8);         // version 3
  handshake += std::string("\x01\0\0\0\0\0\0\0", 8);  // group (shard) 1
  handshake += std::string("\x63\0\0\0\0\0\0\0", 8);  // raft id 99
  handshake += std::string("\x01\0\0\0\0\0\0\0", 8);  // meant for raft id 1
  handshake += std::string(1, static_cast<char>(address.size())) + std::string(1, '\0');
  handshake += address + std::string(16, 'n') + std::string(32, '\0');
  const bool written =
      ::write(fd, handshake.data(), handshake.size()) == static_cast<ssize_t>(handshake.size());
  char c;
  const ssize_t after = ::read(fd, &c, 1);
  ::close(fd);
  if (have != sizeof hello) return testing::AssertionFailure() << "no hello from the node";
  if (!written) return testing::AssertionFailure() << "could not send the handshake";
  if (after > 0) return testing::AssertionFailure() << "the node acknowledged the handshake";
  return testing::AssertionSuccess();
}

// With a secret on every node the replicated cluster forms (raft between the workers and the
// witness, signed requests from the control node) and serves; a request to a worker's internal
// API without the secret's signature, or with a forged one, is answered 401 and changes
// nothing, and so is a raft connection that cannot prove the secret; each refusal is logged
// with the peer's address, and the cluster stays healthy and exact.
TEST_F(ClusterSecretTest, WorkersRefuseWhatCannotProveTheSecretAndTheClusterGoesOn) {
  ASSERT_TRUE(StartWithSecret(true, true)) << cluster_.LogTails();
  Expected expected;
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(InsertOk(port(), "before-" + std::to_string(i), i));
    expected.Add(i);
  }
  HttpRequest write;
  write.method = "POST";
  write.target = "/internal/v1/write";
  write.body = "";
  write.headers = {{"Content-Type", "application/x-protobuf"}};
  Result<HttpResponse> unsigned_write = HttpDo(cluster_.worker_port(0), write);
  ASSERT_TRUE(unsigned_write.ok()) << unsigned_write.status().ToString();
  EXPECT_EQ(unsigned_write->status, 401);
  EXPECT_NE(unsigned_write->body.find("carries no Das-Cluster-Auth header"), std::string::npos);
  EXPECT_TRUE(Worker(0).WaitForLog("refused POST /internal/v1/write from 127.0.0.1:", 1,
                                   std::chrono::seconds(10)))
      << Worker(0).LogTail();

  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  write.headers.emplace_back("Das-Cluster-Auth",
                             "v1 " + std::to_string(now_ms) + " " + std::string(64, '0'));
  for (int w = 0; w < 2; ++w) {
    Result<HttpResponse> forged = HttpDo(cluster_.worker_port(w), write);
    ASSERT_TRUE(forged.ok()) << forged.status().ToString();
    EXPECT_EQ(forged->status, 401);
    EXPECT_NE(forged->body.find("its signature does not prove the cluster secret"),
              std::string::npos);
  }
  Result<HttpResponse> topology =
      HttpPost(cluster_.worker_port(1), "/internal/v1/topology", "", "application/x-protobuf");
  ASSERT_TRUE(topology.ok());
  EXPECT_EQ(topology->status, 401);

  EXPECT_TRUE(RaftHandshakeIsRefused(cluster_.worker_raft_port(0)));
  EXPECT_TRUE(Worker(0).WaitForLog("refused a raft connection from 127.0.0.1:", 1,
                                   std::chrono::seconds(10)))
      << Worker(0).LogTail();
  EXPECT_TRUE(RaftHandshakeIsRefused(cluster_.control_raft_port()));
  EXPECT_TRUE(cluster_.control_process()->WaitForLog(
      "does not prove the cluster secret (it names raft id 99 at 127.0.0.1:1, group 1)", 1,
      std::chrono::seconds(10)))
      << cluster_.control_process()->LogTail();

  // /health stays open (orchestrators probe it without the secret).
  Result<HttpResponse> health = HttpGet(cluster_.worker_port(0), "/health");
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->status, 200);

  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(InsertOk(port(), "after-" + std::to_string(i), 100 + i));
    expected.Add(100 + i);
  }
  Result<Analytics> analytics = GetAnalytics(port());
  ASSERT_TRUE(analytics.ok()) << analytics.status().ToString();
  EXPECT_TRUE(Completeness(*analytics, 200, false, 2, 2));
  EXPECT_TRUE(expected.Matches(analytics->body));
  EXPECT_TRUE(cluster_.WaitClusterOk()) << cluster_.LogTails();
}

// A control node started without the workers' secret warns at start that internal traffic is
// unauthenticated, and the workers refuse it (saying why); it cannot store a row.
TEST_F(ClusterSecretTest, AControlNodeWithoutTheSecretIsRefusedByTheWorkers) {
  ASSERT_TRUE(StartWithSecret(false, false)) << cluster_.LogTails();
  EXPECT_TRUE(cluster_.control_process()->WaitForLog("no --cluster-secret-file: internal traffic",
                                                     1, std::chrono::seconds(10)));
  for (int w = 0; w < 2; ++w) {
    EXPECT_TRUE(
        Worker(w).WaitForLog("carries no Das-Cluster-Auth header (is its "
                             "--cluster-secret-file set?)",
                             1, std::chrono::seconds(20)))
        << Worker(w).LogTail();
  }
  Result<HttpResponse> insert = PostInsert(port(), "k", 1.0);
  ASSERT_TRUE(insert.ok()) << insert.status().ToString();
  EXPECT_EQ(insert->status, 503);
  Result<HttpResponse> health = HttpGet(port(), "/health?format=json");
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->body.find("\"status\":\"ok\""), std::string::npos) << health->body;
}

// Without --cluster-secret-file every node says once, at start, that internal traffic is
// unauthenticated.
TEST_F(ClusterSecretTest, WithoutASecretEveryNodeWarnsOnce) {
  ASSERT_TRUE(cluster_.Start(Unreplicated())) << cluster_.LogTails();
  EXPECT_TRUE(cluster_.control_process()->WaitForLog("no --cluster-secret-file: internal traffic",
                                                     1, std::chrono::seconds(10)));
  for (int w = 0; w < 2; ++w) {
    EXPECT_TRUE(Worker(w).WaitForLog("no --cluster-secret-file: internal traffic", 1,
                                     std::chrono::seconds(10)));
  }
}

// A secret file that cannot be read, or that is too short, stops a node at start with a clear
// message that never includes the secret.
TEST_F(ClusterSecretTest, ABadSecretFileStopsTheStart) {
  const std::string log = cluster_.dir() + "/refused.log";
  std::ofstream(SecretPath()) << "too-short\n";
  for (const std::string& path : {SecretPath(), cluster_.dir() + "/missing"}) {
    for (const std::string& binary : {ControlBinary(), WorkerBinary()}) {
      std::vector<std::string> args = {"--cluster-secret-file", path, "--port",
                                       std::to_string(FreePort())};
      if (binary == ControlBinary()) {
        args.insert(args.end(), {"--workers", "127.0.0.1:1,127.0.0.1:2"});
      } else {
        args.insert(args.end(), {"--id", "1", "--data-dir", cluster_.dir() + "/w"});
      }
      std::string error;
      std::unique_ptr<Process> node = Process::Start(binary, args, log, &error);
      ASSERT_NE(node, nullptr) << error;
      std::optional<int> status = node->Wait(std::chrono::seconds(10));
      ASSERT_TRUE(status.has_value());
      EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2) << binary << " " << path;
    }
  }
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("the cluster secret in " + SecretPath() +
                            " has 9 bytes; at least 16 are needed"),
            std::string::npos)
      << text.str();
  EXPECT_NE(text.str().find("cannot read the cluster secret file " + cluster_.dir() + "/missing"),
            std::string::npos)
      << text.str();
  EXPECT_EQ(text.str().find("too-short"), std::string::npos);
}

// --- TLS on the public port ---

class TlsTest : public ClusterTest {
 protected:
  std::string Cert() const { return cluster_.dir() + "/public-cert.pem"; }
  std::string Key() const { return cluster_.dir() + "/public-key.pem"; }
};

// With --tls-cert and --tls-key the public API is HTTPS: inserts and analytics over one
// kept-alive TLS connection (the certificate verified against itself as CA, and for
// 127.0.0.1); a plain-HTTP request to the port is answered 400 in plain text saying to use
// https://, and changes nothing.
TEST_F(TlsTest, ThePublicPortSpeaksHttpsAndTellsPlainHttpSo) {
  ASSERT_TRUE(MakeTestCertificate(cluster_.dir(), "public"));
  ClusterOptions options = Unreplicated();
  options.control_flags = {"--tls-cert", Cert(), "--tls-key", Key()};
  options.control_tls_ca = Cert();
  ASSERT_TRUE(cluster_.Start(options)) << cluster_.LogTails();

  Result<std::unique_ptr<TlsConnection>> tls =
      TlsConnection::Connect(port(), Cert(), std::chrono::seconds(15));
  ASSERT_TRUE(tls.ok()) << tls.status().ToString();
  for (int i = 0; i < 5; ++i) {
    HttpRequest insert;
    insert.method = "POST";
    insert.target = "/insert";
    insert.headers = {{"Content-Type", "application/json"}};
    insert.body = InsertJson("tls-" + std::to_string(i), i);
    Result<HttpResponse> inserted = (*tls)->RoundTrip(insert);
    ASSERT_TRUE(inserted.ok()) << inserted.status().ToString();
    EXPECT_EQ(inserted->status, 200) << inserted->body;
  }
  HttpRequest analytics;
  analytics.target = "/analytics?format=json";
  Result<HttpResponse> answer = (*tls)->RoundTrip(analytics);
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  EXPECT_EQ(answer->status, 200);
  EXPECT_NE(answer->body.find("\"count\":\"5\""), std::string::npos) << answer->body;

  HttpRequest plain;
  plain.method = "POST";
  plain.target = "/insert";
  plain.headers = {{"Content-Type", "application/json"}};
  plain.body = InsertJson("plain", 1);
  Result<HttpResponse> refused = HttpDo(port(), plain);
  ASSERT_TRUE(refused.ok()) << refused.status().ToString();
  EXPECT_EQ(refused->status, 400);
  EXPECT_EQ(refused->body, "this port speaks HTTPS (TLS): use https://, not http://\n");
  Result<HttpResponse> again = (*tls)->RoundTrip(analytics);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_NE(again->body.find("\"count\":\"5\""), std::string::npos) << again->body;

  // A client that does not trust the certificate gets no answer at all.
  ASSERT_TRUE(MakeTestCertificate(cluster_.dir(), "stranger"));
  Result<std::unique_ptr<TlsConnection>> untrusting = TlsConnection::Connect(
      port(), cluster_.dir() + "/stranger-cert.pem", std::chrono::seconds(15));
  EXPECT_FALSE(untrusting.ok());
}

// A certificate or key that cannot be used stops the start with a message naming the file:
// missing, not PEM, a key of another certificate, or only one of the two flags.
TEST_F(TlsTest, ACertificateThatCannotBeUsedStopsTheStart) {
  ASSERT_TRUE(MakeTestCertificate(cluster_.dir(), "public"));
  ASSERT_TRUE(MakeTestCertificate(cluster_.dir(), "other"));
  const std::string junk = cluster_.dir() + "/junk.pem";
  std::ofstream(junk) << "not a certificate\n";
  const std::string other_key = cluster_.dir() + "/other-key.pem";
  const std::string missing = cluster_.dir() + "/missing.pem";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--tls-cert", missing, "--tls-key", Key()},
       "cannot use the TLS certificate " + missing + ":"},
      {{"--tls-cert", junk, "--tls-key", Key()}, "cannot use the TLS certificate " + junk + ":"},
      {{"--tls-cert", Cert(), "--tls-key", junk}, "cannot use the TLS key " + junk + ":"},
      {{"--tls-cert", Cert(), "--tls-key", other_key},
       "the TLS key " + other_key + " does not belong to the certificate " + Cert()},
      {{"--tls-cert", Cert()}, "TLS needs both a certificate (--tls-cert) and its key"},
  };
  for (const auto& [flags, message] : cases) {
    const std::string log = cluster_.dir() + "/tls-refused.log";
    std::filesystem::remove(log);
    std::vector<std::string> args = {"--port",
                                     std::to_string(FreePort()),
                                     "--workers",
                                     "127.0.0.1:1,127.0.0.1:2",
                                     "--replication-factor",
                                     "1"};
    args.insert(args.end(), flags.begin(), flags.end());
    std::string error;
    std::unique_ptr<Process> control = Process::Start(ControlBinary(), args, log, &error);
    ASSERT_NE(control, nullptr) << error;
    std::optional<int> status = control->Wait(std::chrono::seconds(10));
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2) << message;
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    EXPECT_NE(text.str().find(message), std::string::npos) << text.str();
  }
}

}  // namespace
}  // namespace das::it
