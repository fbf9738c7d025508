#include "control/auth.h"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace das::control {
namespace {

TEST(AuthTest, ParsesTokensNamesRolesCommentsAndBlankLines) {
  Result<std::vector<TokenEntry>> tokens = ParseTokens(
      "# operators\n"
      "\n"
      "  s3cret-w   loader   write  \n"
      "r-token\tdashboard\tread # the console\n"
      "a-token ops admin\r\n");
  ASSERT_TRUE(tokens.ok()) << tokens.status().ToString();
  ASSERT_EQ(tokens->size(), 3u);
  EXPECT_EQ((*tokens)[0].token, "s3cret-w");
  EXPECT_EQ((*tokens)[0].caller.name, "loader");
  EXPECT_EQ((*tokens)[0].caller.role, Role::kWrite);
  EXPECT_EQ((*tokens)[1].token, "r-token");
  EXPECT_EQ((*tokens)[1].caller.role, Role::kRead);
  EXPECT_EQ((*tokens)[2].token, "a-token");
  EXPECT_EQ((*tokens)[2].caller.name, "ops");
  EXPECT_EQ((*tokens)[2].caller.role, Role::kAdmin);
}

TEST(AuthTest, RefusesBadLinesNamingTheLineButNeverTheToken) {
  EXPECT_EQ(ParseTokens("a b write\nsecret-1 onlytwo\n").status().message(),
            "line 2: expected TOKEN NAME ROLE, found 2 fields");
  EXPECT_EQ(ParseTokens("secret-1 a b c\n").status().message(),
            "line 1: expected TOKEN NAME ROLE, found 4 fields");
  const Status role = ParseTokens("secret-1 a writer\n").status();
  EXPECT_EQ(role.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(role.message(), "line 1: role must be read, write or admin, not 'writer'");
  const Status twice = ParseTokens("secret-1 a read\n# x\nsecret-1 b admin\n").status();
  EXPECT_EQ(twice.message(), "line 3: the token of 'b' is given twice");
  EXPECT_EQ(twice.message().find("secret-1"), std::string::npos);
  EXPECT_EQ(ParseTokens("# nothing\n\n").status().message(), "no token in it");
}

TEST(AuthTest, RolesPermitWhatTheirNamesSay) {
  EXPECT_TRUE(Permits(Role::kWrite, Access::kWrite));
  EXPECT_FALSE(Permits(Role::kWrite, Access::kRead));
  EXPECT_FALSE(Permits(Role::kWrite, Access::kAdmin));
  EXPECT_TRUE(Permits(Role::kRead, Access::kRead));
  EXPECT_FALSE(Permits(Role::kRead, Access::kWrite));
  EXPECT_FALSE(Permits(Role::kRead, Access::kAdmin));
  EXPECT_TRUE(Permits(Role::kAdmin, Access::kRead));
  EXPECT_TRUE(Permits(Role::kAdmin, Access::kWrite));
  EXPECT_TRUE(Permits(Role::kAdmin, Access::kAdmin));
}

TEST(AuthTest, BearerHeadersAndConstantTimeEquality) {
  EXPECT_EQ(BearerToken("Bearer abc"), "abc");
  EXPECT_EQ(BearerToken("bearer   abc  "), "abc");
  EXPECT_EQ(BearerToken("BEARER abc"), "abc");
  EXPECT_EQ(BearerToken("Basic abc"), std::nullopt);
  EXPECT_EQ(BearerToken("Bearer"), std::nullopt);
  EXPECT_EQ(BearerToken("Bearer "), std::nullopt);
  EXPECT_EQ(BearerToken("Bearerabc"), std::nullopt);
  EXPECT_EQ(BearerToken("Bearer a b"), std::nullopt);
  EXPECT_TRUE(ConstantTimeEquals("token", "token"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_FALSE(ConstantTimeEquals("token", "tokeN"));
  EXPECT_FALSE(ConstantTimeEquals("token", "token2"));
  EXPECT_FALSE(ConstantTimeEquals("token", ""));
  EXPECT_FALSE(ConstantTimeEquals(std::string("a\0b", 3), std::string("a\0c", 3)));
}

TEST(AuthTest, TheFileIsReadAgainAndABadVersionKeepsTheTokens) {
  std::string pattern = "/tmp/das_auth_test_XXXXXX";
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const std::string path = pattern + "/tokens";
  std::ofstream(path) << "t1 alice read\n";
  Result<std::unique_ptr<TokenFile>> file = TokenFile::Load(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ((*file)->Find("t1")->name, "alice");
  EXPECT_FALSE((*file)->Find("t2").has_value());
  EXPECT_FALSE((*file)->Find("t").has_value());

  std::ofstream(path) << "t2 bob write\n";
  ASSERT_TRUE((*file)->Reload().ok());
  EXPECT_FALSE((*file)->Find("t1").has_value());
  EXPECT_EQ((*file)->Find("t2")->role, Role::kWrite);

  std::ofstream(path) << "t3 carol superuser\n";
  const Status bad = (*file)->Reload();
  EXPECT_EQ(bad.message(), "--auth-tokens-file " + path +
                               ": line 1: role must be read, write or admin, not 'superuser'");
  EXPECT_EQ((*file)->Find("t2")->name, "bob") << "a bad file keeps the tokens as they were";

  std::filesystem::remove_all(pattern);
  EXPECT_EQ(TokenFile::Load(path).status().message(),
            "--auth-tokens-file " + path + ": cannot be read");
  EXPECT_EQ((*file)->Reload().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*file)->size(), 1u);
}

}  // namespace
}  // namespace das::control
