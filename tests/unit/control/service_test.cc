// The control service's request -> response function, called without a socket. The workers
// it names listen nowhere, so every answer here is decided before a worker is asked, except
// the ones that show how an unreachable worker is reported.
#include "control/service.h"

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "das/v1/das.pb.h"

namespace das::control {
namespace {

namespace asio = boost::asio;

class ControlServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ControlOptions options;
    // Port 1 on loopback: connection refused at once.
    options.workers = {{"127.0.0.1", 1}, {"127.0.0.2", 1}};
    options.analytics_deadline = std::chrono::milliseconds(500);
    Result<std::unique_ptr<ControlService>> service =
        ControlService::Create(io_.get_executor(), options);
    ASSERT_TRUE(service.ok()) << service.status().ToString();
    service_ = std::move(service).value();
  }

  http::Response Call(std::string method, std::string target, std::string body = "",
                      std::string content_type = "") {
    http::Request request;
    request.method = std::move(method);
    request.target = std::move(target);
    request.has_content_type = !content_type.empty();
    request.content_type = std::move(content_type);
    request.body = std::move(body);
    auto future = asio::co_spawn(io_, service_->Handle(std::move(request)), asio::use_future);
    io_.restart();
    io_.run();
    return future.get();
  }

  static das::v1::ErrorResponse ErrorOf(const http::Response& r) {
    das::v1::ErrorResponse e;
    EXPECT_TRUE(e.ParseFromString(r.body));
    return e;
  }

  asio::io_context io_;
  std::unique_ptr<ControlService> service_;
};

TEST_F(ControlServiceTest, UnknownRouteIs404) {
  http::Response r = Call("GET", "/nope");
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(ErrorOf(r).error(), "no route /nope");
}

TEST_F(ControlServiceTest, WrongMethodIs405WithAllow) {
  http::Response r = Call("GET", "/insert");
  EXPECT_EQ(r.status, 405u);
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].first, "Allow");
  EXPECT_EQ(r.headers[0].second, "POST");
  EXPECT_EQ(Call("POST", "/analytics").status, 405u);
  EXPECT_EQ(Call("DELETE", "/insert/batch").status, 405u);
}

TEST_F(ControlServiceTest, OtherContentTypeIs415) {
  EXPECT_EQ(Call("POST", "/insert", "k=1", "text/plain").status, 415u);
  EXPECT_EQ(Call("POST", "/insert/batch", "k=1", "text/plain").status, 415u);
}

TEST_F(ControlServiceTest, JsonErrorsAreJson) {
  http::Response r =
      Call("POST", "/insert", R"({"partition_key":"","value":1})", "application/json");
  EXPECT_EQ(r.status, 422u);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.body, R"({"status":422,"error":"partition_key is empty","rows_written":"0"})");
}

TEST_F(ControlServiceTest, UnreachableWorkerIs503) {
  das::v1::InsertRequest req;
  req.set_partition_key("k");
  req.set_value(1);
  http::Response r = Call("POST", "/insert", req.SerializeAsString());
  EXPECT_EQ(r.status, 503u);
  EXPECT_NE(ErrorOf(r).error().find("cannot take the insert"), std::string::npos);
}

TEST_F(ControlServiceTest, AnalyticsWithNoWorkerIs503WithTheSameBody) {
  http::Response r = Call("GET", "/analytics");
  EXPECT_EQ(r.status, 503u);
  das::v1::AnalyticsResponse a;
  ASSERT_TRUE(a.ParseFromString(r.body));
  EXPECT_TRUE(a.is_partial());
  EXPECT_EQ(a.total_nodes(), 2u);
  EXPECT_EQ(a.responding_nodes(), 0u);
  EXPECT_EQ(a.count(), 0u);
  EXPECT_FALSE(a.has_average());
}

TEST_F(ControlServiceTest, HealthIs200AndDegraded) {
  http::Response r = Call("GET", "/health?format=json");
  EXPECT_EQ(r.status, 200u);
  das::v1::HealthResponse h;
  http::Response pb = Call("GET", "/health");
  ASSERT_TRUE(h.ParseFromString(pb.body));
  EXPECT_EQ(h.status(), "degraded");
  ASSERT_EQ(h.workers_size(), 2);
  EXPECT_FALSE(h.workers(0).healthy());
  EXPECT_EQ(h.workers(0).address(), "127.0.0.1:1");
}

}  // namespace
}  // namespace das::control
