// Router and ParseTarget tests: each drives Router::Handle on an io_context, without a socket.
#include "http/router.h"

#include <future>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "http/query.h"

namespace das::http {
namespace {

namespace asio = boost::asio;

// Renders router errors as plain text, so that tests read the exact message from the body.
// The status is the error's (HttpStatusOf).
Response RenderError(const Request& request, const Status& error) {
  Response response;
  response.status = HttpStatusOf(error.code());
  response.content_type = "text/plain";
  response.body = error.message();
  return response;
}

// A handler that answers with `name` and what it was given: "name path route a=1 b=2".
RouteHandler Answer(std::string name) {
  return [name = std::move(name)](Request request, Target target) -> asio::awaitable<Response> {
    Response response;
    response.body = name + " " + target.path + " " + target.route;
    for (const QueryParam& param : target.params) {
      response.body += " " + param.name + "=" + param.value;
    }
    co_return response;
  };
}

Response Call(const Router& router, std::string method, std::string target, std::string body = "") {
  asio::io_context io;
  Request request;
  request.method = std::move(method);
  request.target = std::move(target);
  request.body = std::move(body);
  std::future<Response> answer =
      asio::co_spawn(io, router.Handle(std::move(request)), asio::use_future);
  io.run();
  return answer.get();
}

// The value of header `name`, or "<absent>".
std::string Header(const Response& response, const std::string& name) {
  for (const auto& [key, value] : response.headers) {
    if (key == name) return value;
  }
  return "<absent>";
}

class RouterTest : public ::testing::Test {
 protected:
  Router router_{RenderError};
};

TEST_F(RouterTest, ExactRouteCallsItsHandler) {
  router_.Add("GET", "/health", Answer("health"));
  const Response response = Call(router_, "GET", "/health");
  EXPECT_EQ(response.status, 200u);
  EXPECT_EQ(response.body, "health /health /health");
}

TEST_F(RouterTest, UnknownPathIs404) {
  router_.Add("GET", "/health", Answer("health"));
  const Response response = Call(router_, "GET", "/healthz?x=1");
  EXPECT_EQ(response.status, 404u);
  EXPECT_EQ(response.body, "no route /healthz");
  EXPECT_EQ(Header(response, "Allow"), "<absent>");
}

TEST_F(RouterTest, UnregisteredMethodIs405WithAllow) {
  router_.Add("GET", "/health", Answer("health"));
  const Response response = Call(router_, "HEAD", "/health");
  EXPECT_EQ(response.status, 405u);
  EXPECT_EQ(response.body, "method HEAD is not allowed on /health; use GET");
  EXPECT_EQ(Header(response, "Allow"), "GET");
}

TEST_F(RouterTest, AllowListsMethodsInRegistrationOrder) {
  router_.Add("GET", "/rows", Answer("get"));
  router_.Add("POST", "/rows", Answer("post"));
  const Response response = Call(router_, "DELETE", "/rows");
  EXPECT_EQ(response.status, 405u);
  EXPECT_EQ(response.body, "method DELETE is not allowed on /rows; use GET, POST");
  EXPECT_EQ(Header(response, "Allow"), "GET, POST");
  EXPECT_EQ(Call(router_, "POST", "/rows").body, "post /rows /rows");
}

TEST_F(RouterTest, UnknownParamIs400NamingTheAcceptedOnes) {
  router_.Add("GET", "/analytics", Answer("a"), {.params = {"format", "key"}});
  const Response response = Call(router_, "GET", "/analytics?format=json&fromat=csv");
  EXPECT_EQ(response.status, 400u);
  EXPECT_EQ(response.body, "unknown query parameter 'fromat' on /analytics; accepted: format, key");
}

TEST_F(RouterTest, ParamOnRouteWithoutParamsIs400) {
  router_.Add("GET", "/health", Answer("health"));
  const Response response = Call(router_, "GET", "/health?verbose");
  EXPECT_EQ(response.status, 400u);
  EXPECT_EQ(response.body, "unknown query parameter 'verbose' on /health");
}

TEST_F(RouterTest, RepeatedParamIs400) {
  router_.Add("GET", "/analytics", Answer("a"), {.params = {"format"}});
  const Response response = Call(router_, "GET", "/analytics?format=json&format=csv");
  EXPECT_EQ(response.status, 400u);
  EXPECT_EQ(response.body, "query parameter 'format' is given more than once");
}

TEST_F(RouterTest, KnownParamsReachTheHandlerDecoded) {
  router_.Add("GET", "/analytics", Answer("a"), {.params = {"key", "format"}});
  const Response response = Call(router_, "GET", "/analytics?key=a%20b+c&&format=%6Aso%6e&");
  EXPECT_EQ(response.status, 200u);
  EXPECT_EQ(response.body, "a /analytics /analytics key=a b c format=json");
}

TEST_F(RouterTest, BadPercentEscapeIs400) {
  router_.Add("GET", "/analytics", Answer("a"), {.params = {"key"}});
  const Response response = Call(router_, "GET", "/analytics?key=%zz");
  EXPECT_EQ(response.status, 400u);
  EXPECT_EQ(response.body, "bad percent escape in query item 'key=%zz'");
}

TEST_F(RouterTest, NonUtf8DecodedParamIs400) {
  router_.Add("GET", "/analytics", Answer("a"), {.params = {"key"}});
  const Response response = Call(router_, "GET", "/analytics?key=%C0%AF");
  EXPECT_EQ(response.status, 400u);
  EXPECT_EQ(response.body, "query item 'key=%C0%AF' is not valid UTF-8");
}

TEST_F(RouterTest, TargetWithoutLeadingSlashIs400) {
  router_.Add("GET", "/health", Answer("health"));
  const Response response = Call(router_, "GET", "health");
  EXPECT_EQ(response.status, 400u);
  EXPECT_EQ(response.body, "request target 'health' does not start with '/'");
}

TEST_F(RouterTest, PrefixRouteMatchesLongerPathsAndReportsItsPattern) {
  router_.AddPrefix("GET", "/admin/workers/", Answer("workers"));
  EXPECT_EQ(Call(router_, "GET", "/admin/workers/w1").body,
            "workers /admin/workers/w1 /admin/workers/");
  EXPECT_EQ(Call(router_, "GET", "/admin/workers").status, 404u);
  const Response wrong_method = Call(router_, "PUT", "/admin/workers/w1");
  EXPECT_EQ(wrong_method.status, 405u);
  EXPECT_EQ(wrong_method.body, "method PUT is not allowed on /admin/workers/w1; use GET");
}

TEST_F(RouterTest, ExactRouteWinsOverPrefix) {
  router_.AddPrefix("GET", "/admin/", Answer("prefix"));
  router_.Add("POST", "/admin/stop", Answer("exact"));
  EXPECT_EQ(Call(router_, "POST", "/admin/stop").body, "exact /admin/stop /admin/stop");
  // The path alone picks the route, so the prefix's GET does not apply to the exact path.
  const Response response = Call(router_, "GET", "/admin/stop");
  EXPECT_EQ(response.status, 405u);
  EXPECT_EQ(Header(response, "Allow"), "POST");
}

TEST_F(RouterTest, LongestPrefixWins) {
  router_.AddPrefix("GET", "/admin/workers/", Answer("long"));
  router_.AddPrefix("GET", "/admin/", Answer("short"));
  EXPECT_EQ(Call(router_, "GET", "/admin/workers/w1").body,
            "long /admin/workers/w1 /admin/workers/");
  EXPECT_EQ(Call(router_, "GET", "/admin/shards").body, "short /admin/shards /admin/");
}

TEST_F(RouterTest, RouteOfNamesThePatternAPathWouldTakeWhateverTheMethod) {
  router_.Add("POST", "/insert", Answer("insert"));
  router_.AddPrefix("GET", "/admin/workers/", Answer("long"));
  router_.AddPrefix("GET", "/admin/", Answer("short"));
  EXPECT_EQ(router_.RouteOf("/insert"), "/insert");
  EXPECT_EQ(router_.RouteOf("/insert?format=json&x=%zz"), "/insert");
  EXPECT_EQ(router_.RouteOf("/admin/workers/7/decommission"), "/admin/workers/");
  EXPECT_EQ(router_.RouteOf("/admin/shards"), "/admin/");
  EXPECT_EQ(router_.RouteOf("/insertx"), "");
  EXPECT_EQ(router_.RouteOf(""), "");
  EXPECT_EQ(router_.Patterns(),
            (std::vector<std::string>{"/admin/", "/admin/workers/", "/insert"}));
}

// Records its name before and after the rest of the chain; answers 401 itself when the
// request carries the body "deny".
Middleware Recorder(std::string name, std::vector<std::string>& log, bool gate) {
  return
      [name = std::move(name), &log, gate](Request request, Target target,
                                           const RouteHandler& next) -> asio::awaitable<Response> {
        log.push_back(name + " in " + target.route);
        if (gate && request.body == "deny") {
          Response refused;
          refused.status = 401;
          co_return refused;
        }
        asio::awaitable<Response> inner = next(std::move(request), std::move(target));
        Response response = co_await std::move(inner);
        log.push_back(name + " out");
        co_return response;
      };
}

TEST_F(RouterTest, MiddlewareRunsInUseOrderAndCanAnswerItself) {
  std::vector<std::string> log;
  router_.Add("GET", "/rows", Answer("rows"));
  router_.Use(Recorder("outer", log, /*gate=*/false));
  router_.Use(Recorder("inner", log, /*gate=*/true));
  router_.AddPrefix("GET", "/admin/", Answer("admin"));  // added after Use: wrapped too

  EXPECT_EQ(Call(router_, "GET", "/rows").body, "rows /rows /rows");
  EXPECT_EQ(log, (std::vector<std::string>{"outer in /rows", "inner in /rows", "inner out",
                                           "outer out"}));

  log.clear();
  EXPECT_EQ(Call(router_, "GET", "/admin/x", "deny").status, 401u);
  EXPECT_EQ(log, (std::vector<std::string>{"outer in /admin/", "inner in /admin/", "outer out"}));

  log.clear();
  EXPECT_EQ(Call(router_, "GET", "/missing", "").status, 404u);
  EXPECT_TRUE(log.empty());
}

TEST_F(RouterTest, HandleRunsConcurrentlyOnManyThreads) {
  router_.Add("GET", "/rows", Answer("rows"), {.params = {"i"}});
  asio::io_context io;
  std::vector<std::future<Response>> answers;
  for (int i = 0; i < 200; ++i) {
    Request request;
    request.method = "GET";
    request.target = "/rows?i=" + std::to_string(i);
    answers.push_back(asio::co_spawn(io, router_.Handle(std::move(request)), asio::use_future));
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back([&io] { io.run(); });
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(answers[i].get().body, "rows /rows /rows i=" + std::to_string(i));
  }
}

TEST(ParseTargetTest, SplitsPathAndDecodesParamsInOrder) {
  Result<Target> target = ParseTarget("/a/b%2Fc?x=1&y=%20z&name+1=v%2B#frag");
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  EXPECT_EQ(target->path, "/a/b%2Fc");
  EXPECT_EQ(target->route, "");
  ASSERT_EQ(target->params.size(), 3u);
  EXPECT_EQ(target->params[0].name, "x");
  EXPECT_EQ(target->params[0].value, "1");
  EXPECT_EQ(target->params[1].name, "y");
  EXPECT_EQ(target->params[1].value, " z");
  EXPECT_EQ(target->params[2].name, "name 1");
  EXPECT_EQ(target->params[2].value, "v+#frag");
}

TEST(ParseTargetTest, SkipsEmptyItems) {
  Result<Target> target = ParseTarget("/p?&a=1&&b=2&");
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  ASSERT_EQ(target->params.size(), 2u);
  EXPECT_EQ(target->params[0].name, "a");
  EXPECT_EQ(target->params[1].name, "b");
  EXPECT_EQ(target->params[1].value, "2");
}

TEST(ParseTargetTest, ItemWithoutEqualsHasEmptyValue) {
  Result<Target> target = ParseTarget("/p?flag&k=v=w");
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  ASSERT_EQ(target->params.size(), 2u);
  EXPECT_EQ(target->params[0].name, "flag");
  EXPECT_EQ(target->params[0].value, "");
  EXPECT_EQ(target->params[1].name, "k");
  EXPECT_EQ(target->params[1].value, "v=w");
}

TEST(ParseTargetTest, NoQueryAndEmptyQueryGiveNoParams) {
  Result<Target> bare = ParseTarget("/");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->path, "/");
  EXPECT_TRUE(bare->params.empty());
  Result<Target> empty = ParseTarget("/p?");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->path, "/p");
  EXPECT_TRUE(empty->params.empty());
}

TEST(ParseTargetTest, PathMustStartWithSlash) {
  for (const char* bad : {"", "*", "a/b", "?x=1", "http://h/p"}) {
    Result<Target> target = ParseTarget(bad);
    ASSERT_FALSE(target.ok()) << bad;
    EXPECT_EQ(target.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(target.status().message(),
              "request target '" + std::string(bad) + "' does not start with '/'");
  }
}

TEST(ParseTargetTest, TruncatedPercentEscapeNamesTheItem) {
  for (const char* item : {"k=%4", "k=%", "%zz=v", "k=%4g"}) {
    Result<Target> target = ParseTarget(std::string("/p?ok=1&") + item);
    ASSERT_FALSE(target.ok()) << item;
    EXPECT_EQ(target.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(target.status().message(),
              "bad percent escape in query item '" + std::string(item) + "'");
  }
}

TEST(ParseTargetTest, DecodedBytesMustBeUtf8) {
  Result<Target> bad_value = ParseTarget("/p?k=%FF");
  ASSERT_FALSE(bad_value.ok());
  EXPECT_EQ(bad_value.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad_value.status().message(), "query item 'k=%FF' is not valid UTF-8");
  Result<Target> bad_name = ParseTarget("/p?%ED%A0%80");  // a surrogate
  ASSERT_FALSE(bad_name.ok());
  EXPECT_EQ(bad_name.status().message(), "query item '%ED%A0%80' is not valid UTF-8");
  Result<Target> good = ParseTarget("/p?k=%C3%A9");
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->params[0].value, "\xC3\xA9");
}

}  // namespace
}  // namespace das::http
