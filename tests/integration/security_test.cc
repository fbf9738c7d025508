// API tokens (DESIGN.md section 10) through the real binaries: --auth-tokens-file, bearer
// tokens, roles, /health without a token, the file read again on SIGHUP.
#include <gtest/gtest.h>
#include <signal.h>

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

}  // namespace
}  // namespace das::it
