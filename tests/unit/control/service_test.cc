// The control service's request -> response function, called without a socket. The workers
// it names listen nowhere (so no shard ever has a leader), so every answer here is decided
// before a worker is asked, except the ones that show how an unreachable worker is reported.
#include "control/service.h"

#include <thread>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <google/protobuf/util/json_util.h>

#include "../temp_dir.h"
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
    options.replication.data_dir = dir_.path() + "/control";
    options.replication.raft_port = 0;
    Result<std::unique_ptr<ControlService>> service =
        ControlService::Create(io_.get_executor(), options);
    ASSERT_TRUE(service.ok()) << service.status().ToString();
    service_ = std::move(service).value();
    thread_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    if (service_) service_->Stop(std::chrono::seconds(5));
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  http::Response Call(std::string method, std::string target, std::string body = "",
                      std::string content_type = "") {
    http::Request request;
    request.method = std::move(method);
    request.target = std::move(target);
    request.has_content_type = !content_type.empty();
    request.content_type = std::move(content_type);
    request.body = std::move(body);
    return Call(std::move(request));
  }

  // The service's background loops (the shards' leaders, the clock probe) run on io_'s thread.
  http::Response Call(http::Request request) {
    return asio::co_spawn(io_, service_->Handle(std::move(request)), asio::use_future).get();
  }

  // The ErrorResponse of `r`, decoded by its Content-Type.
  static das::v1::ErrorResponse ErrorOf(const http::Response& r) {
    das::v1::ErrorResponse e;
    if (r.content_type == "application/json") {
      EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.body, &e).ok()) << r.body;
    } else {
      EXPECT_EQ(r.content_type, "application/x-protobuf");
      EXPECT_TRUE(e.ParseFromString(r.body));
    }
    EXPECT_EQ(e.status(), r.status);
    return e;
  }

  TempDir dir_{"das_control_service_test"};
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::unique_ptr<ControlService> service_;
  std::thread thread_;
};

TEST_F(ControlServiceTest, UnknownRouteIs404InJson) {
  http::Response r = Call("GET", "/nope");
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(ErrorOf(r).error(), "no route /nope");
}

// Errors are JSON unless the request is protobuf: a protobuf Content-Type, a POST without one
// (its body is protobuf by the contract), Accept: application/x-protobuf or ?format=protobuf.
TEST_F(ControlServiceTest, ErrorsAreProtobufOnlyForProtobufRequests) {
  EXPECT_EQ(Call("POST", "/insert", "\xff").content_type, "application/x-protobuf");
  EXPECT_EQ(Call("POST", "/insert", "\xff", "application/x-protobuf").content_type,
            "application/x-protobuf");
  EXPECT_EQ(Call("POST", "/insert", "\xff", "application/octet-stream").content_type,
            "application/x-protobuf");
  EXPECT_EQ(Call("GET", "/nope?format=protobuf").status, 404u);
  EXPECT_EQ(Call("GET", "/nope?format=protobuf").content_type, "application/x-protobuf");
  http::Request accept;
  accept.method = "GET";
  accept.target = "/nope";
  accept.accept = "application/x-protobuf";
  EXPECT_EQ(Call(std::move(accept)).content_type, "application/x-protobuf");
  EXPECT_EQ(Call("GET", "/nope").content_type, "application/json");
  EXPECT_EQ(Call("GET", "/").content_type, "text/html; charset=utf-8");  // the console
}

// Regression: a form post got a 415 whose body was binary protobuf.
TEST_F(ControlServiceTest, FormPostIs415InJson) {
  http::Response r =
      Call("POST", "/insert", "partition_key=a&value=3", "application/x-www-form-urlencoded");
  EXPECT_EQ(r.status, 415u);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_NE(ErrorOf(r).error().find("application/x-www-form-urlencoded"), std::string::npos);
}

// Regression: GET /analytics?partition_key=a answered the global aggregate.
TEST_F(ControlServiceTest, UnknownQueryParameterIs400NamingIt) {
  http::Response r = Call("GET", "/analytics?partition_key=a");
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(ErrorOf(r).error(),
            "unknown query parameter 'partition_key' on /analytics; accepted: format, key, "
            "key_prefix, from, to");
  EXPECT_EQ(Call("GET", "/health?verbose=1").status, 400u);
  EXPECT_EQ(Call("POST", "/insert?x=1", "").status, 400u);
  EXPECT_EQ(ErrorOf(Call("GET", "/analytics?format=json&format=json")).error(),
            "query parameter 'format' is given more than once");
}

TEST_F(ControlServiceTest, UnknownFormatIs422NamingIt) {
  http::Response r = Call("GET", "/health?format=xml");
  EXPECT_EQ(r.status, 422u);
  EXPECT_EQ(ErrorOf(r).error(), "format must be json or protobuf, not 'xml'");
}

// Regression: a row without a value was stored as 0.
TEST_F(ControlServiceTest, MissingValueIs422) {
  http::Response json = Call("POST", "/insert", R"({"partition_key":"a"})", "application/json");
  EXPECT_EQ(json.status, 422u);
  EXPECT_EQ(ErrorOf(json).error(), "value is required");
  das::v1::InsertRequest no_value;
  no_value.set_partition_key("a");
  http::Response pb = Call("POST", "/insert", no_value.SerializeAsString());
  EXPECT_EQ(pb.status, 422u);
  EXPECT_EQ(ErrorOf(pb).error(), "value is required");
  http::Response batch = Call("POST", "/insert/batch",
                              R"({"rows":[{"partition_key":"a","value":0},{"partition_key":"b"}]})",
                              "application/json");
  EXPECT_EQ(batch.status, 422u);
  EXPECT_EQ(ErrorOf(batch).error(), "rows[1]: value is required; the batch was rejected whole");
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

// A valid insert while the cluster is starting (no shard has had a leader): 503 saying so.
TEST_F(ControlServiceTest, AnInsertBeforeTheShardsHaveLeadersIs503) {
  das::v1::InsertRequest req;
  req.set_partition_key("k");
  req.set_value(1);
  http::Response r = Call("POST", "/insert", req.SerializeAsString());
  EXPECT_EQ(r.status, 503u);
  EXPECT_NE(ErrorOf(r).error().find("the cluster is starting"), std::string::npos);
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

TEST_F(ControlServiceTest, HealthIs503StartingWhileNoShardHasHadALeader) {
  http::Response r = Call("GET", "/health?format=json");
  EXPECT_EQ(r.status, 503u);
  das::v1::HealthResponse h;
  http::Response pb = Call("GET", "/health");
  ASSERT_TRUE(h.ParseFromString(pb.body));
  EXPECT_EQ(h.status(), "starting");
  EXPECT_EQ(h.starting(), "a shard has had no leader yet");
  ASSERT_EQ(h.workers_size(), 2);
  EXPECT_FALSE(h.workers(0).healthy());
  EXPECT_EQ(h.workers(0).address(), "127.0.0.1:1");
}

}  // namespace
}  // namespace das::control
