// The public API on a healthy cluster: exact aggregates after protobuf, JSON and batch inserts,
// the JSON mapping's field names, and the encodings of GET endpoints.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/api.h"
#include "support/cluster.h"
#include "support/http_client.h"

namespace das::it {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

class ApiTest : public ClusterTest {};

// Parses a 200 JSON answer into a Struct, failing the test otherwise.
Struct JsonOk(const Result<HttpResponse>& r, int status = 200) {
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return {};
  EXPECT_EQ(r->status, status) << r->body;
  EXPECT_EQ(r->MediaType(), "application/json") << r->Header("content-type");
  Result<Struct> object = ParseJsonObject(r->body);
  EXPECT_TRUE(object.ok()) << object.status().ToString();
  return object.ok() ? *object : Struct();
}

TEST_F(ApiTest, EmptyClusterHasCountZeroAndNoAverage) {
  ASSERT_TRUE(cluster_.Start());
  Result<Analytics> a = GetAnalytics(port());
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(Completeness(*a, 200, false, 2, 2));
  EXPECT_TRUE(Expected().Matches(a->body));
  EXPECT_EQ(a->body.sum(), 0.0);

  for (const auto& [target, headers] :
       std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>>{
           {"/analytics?format=json", {}}, {"/analytics", {{"Accept", "application/json"}}}}) {
    SCOPED_TRACE(target);
    Struct json = JsonOk(HttpGet(port(), target, headers));
    // Zero and false are printed; average, min and max are absent.
    EXPECT_EQ(FieldNames(json), "count,is_partial,responding_nodes,sum,total_nodes");
    EXPECT_EQ(json.fields().at("count").string_value(), "0");  // uint64: a JSON string
    EXPECT_EQ(json.fields().at("sum").number_value(), 0.0);
    EXPECT_EQ(json.fields().at("is_partial").kind_case(), Value::kBoolValue);
    EXPECT_FALSE(json.fields().at("is_partial").bool_value());
    EXPECT_EQ(json.fields().at("total_nodes").number_value(), 2);
    EXPECT_EQ(json.fields().at("responding_nodes").number_value(), 2);
  }
}

TEST_F(ApiTest, ProtobufInsertsGiveExactAggregates) {
  ASSERT_TRUE(cluster_.Start());
  const std::vector<std::string> on0 = KeysOnWorker(0, 2, 3, "pb0");
  const std::vector<std::string> on1 = KeysOnWorker(1, 2, 3, "pb1");
  const std::vector<TestRow> rows = {{on0[0], 1.25},  {on1[0], -3.5},  {on0[1], 10.75},
                                     {on1[1], 0.25},  {on0[0], 100.0}, {on1[2], 7.5},
                                     {on0[2], -0.75}, {on1[0], 2.0}};
  Expected expected;
  for (const TestRow& row : rows) {
    ASSERT_TRUE(InsertOk(port(), row.key, row.value));
    expected.Add(row.value);
  }
  Result<Analytics> a = GetAnalytics(port());
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(Completeness(*a, 200, false, 2, 2));
  EXPECT_TRUE(expected.Matches(a->body));
  EXPECT_EQ(a->body.count(), 8u);
  EXPECT_EQ(a->body.sum(), 117.5);
  EXPECT_EQ(a->body.average(), 14.6875);
  EXPECT_EQ(a->body.min(), -3.5);
  EXPECT_EQ(a->body.max(), 100.0);
}

TEST_F(ApiTest, ContentTypesThatMeanProtobufAreAccepted) {
  ASSERT_TRUE(cluster_.Start());
  const std::string key = "octet";
  for (const std::string type : {"application/x-protobuf", "application/octet-stream", ""}) {
    SCOPED_TRACE("Content-Type '" + type + "'");
    Result<HttpResponse> r = HttpPost(port(), "/insert", EncodeInsert(key, 0.5), type);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 200) << r->body;
    v1::InsertResponse response;
    EXPECT_TRUE(response.ParseFromString(r->body));
    EXPECT_EQ(response.rows_written(), 1u);
  }
  Result<Analytics> a = GetAnalytics(port());
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  Expected expected;
  for (int i = 0; i < 3; ++i) expected.Add(0.5);
  EXPECT_TRUE(expected.Matches(a->body));
}

TEST_F(ApiTest, JsonInsertsAnswerJsonWithProtoFieldNames) {
  ASSERT_TRUE(cluster_.Start());
  const std::vector<std::string> on0 = KeysOnWorker(0, 2, 2, "js0");
  const std::vector<std::string> on1 = KeysOnWorker(1, 2, 2, "js1");
  const std::vector<TestRow> rows = {{on0[0], 4.5}, {on1[0], -1.25}, {on0[1], 8.0}, {on1[1], 0.75}};
  Expected expected;
  for (const TestRow& row : rows) {
    SCOPED_TRACE(row.key);
    Struct json = JsonOk(HttpPost(port(), "/insert", InsertJson(row.key, row.value), kJson));
    EXPECT_EQ(FieldNames(json), "rows_written");
    EXPECT_EQ(json.fields().at("rows_written").string_value(), "1");  // uint64: a JSON string
    expected.Add(row.value);
  }
  // The same request with a charset parameter on the media type is still JSON.
  Struct with_charset = JsonOk(
      HttpPost(port(), "/insert", InsertJson(on0[0], 0.25), "application/json; charset=utf-8"));
  EXPECT_EQ(with_charset.fields().at("rows_written").string_value(), "1");
  expected.Add(0.25);

  for (const auto& [target, headers] :
       std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>>{
           {"/analytics?format=json", {}}, {"/analytics", {{"Accept", "application/json"}}}}) {
    SCOPED_TRACE(target);
    Struct json = JsonOk(HttpGet(port(), target, headers));
    EXPECT_EQ(FieldNames(json),
              "average,count,is_partial,max,min,responding_nodes,sum,total_nodes");
    if (FieldNames(json) != "average,count,is_partial,max,min,responding_nodes,sum,total_nodes") {
      continue;
    }
    EXPECT_EQ(json.fields().at("count").string_value(), "5");
    EXPECT_EQ(json.fields().at("sum").number_value(), expected.sum());
    EXPECT_EQ(json.fields().at("average").number_value(), expected.sum() / 5);
    EXPECT_EQ(json.fields().at("min").number_value(), -1.25);
    EXPECT_EQ(json.fields().at("max").number_value(), 8.0);
    EXPECT_FALSE(json.fields().at("is_partial").bool_value());
    EXPECT_EQ(json.fields().at("total_nodes").number_value(), 2);
    EXPECT_EQ(json.fields().at("responding_nodes").number_value(), 2);
  }
  // Protobuf stays the default for GET.
  Result<Analytics> a = GetAnalytics(port());
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(expected.Matches(a->body));
}

TEST_F(ApiTest, BatchesGiveExactAggregates) {
  ASSERT_TRUE(cluster_.Start());
  const std::vector<std::string> on0 = KeysOnWorker(0, 2, 5, "b0");
  const std::vector<std::string> on1 = KeysOnWorker(1, 2, 5, "b1");
  std::vector<TestRow> first;
  for (int i = 0; i < 5; ++i) {
    first.push_back({on0[i], 0.25 * i});
    first.push_back({on1[i], -2.0 * i});
  }
  Expected expected;
  ASSERT_TRUE(BatchOk(port(), first, "batch-1", 10));
  expected.Add(first);

  const std::vector<TestRow> second = {{on0[0], 3.75}, {on1[0], 12.5}, {on1[1], -6.25}};
  Struct json = JsonOk(HttpPost(port(), "/insert/batch", BatchJson(second, "batch-2"), kJson));
  EXPECT_EQ(FieldNames(json), "rows_written");
  EXPECT_EQ(json.fields().at("rows_written").string_value(), "3");
  expected.Add(second);

  // No idempotency key at all, and a batch that lands on one worker only.
  const std::vector<TestRow> third = {{on1[2], 1.5}, {on1[3], 1.5}};
  ASSERT_TRUE(BatchOk(port(), third, "", 2));
  expected.Add(third);

  Result<Analytics> a = GetAnalytics(port());
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(Completeness(*a, 200, false, 2, 2));
  EXPECT_TRUE(expected.Matches(a->body));
  EXPECT_EQ(a->body.count(), 15u);
  EXPECT_EQ(a->body.min(), -8.0);
  EXPECT_EQ(a->body.max(), 12.5);
}

TEST_F(ApiTest, LargeBatchIsStoredWhole) {
  ASSERT_TRUE(cluster_.Start());
  std::vector<TestRow> rows;
  Expected expected;
  for (int i = 0; i < 20000; ++i) {
    rows.push_back({"large-" + std::to_string(i % 1000), 0.25 * (i % 64) - 4.0});
    expected.Add(rows.back().value);
  }
  ASSERT_TRUE(BatchOk(port(), rows, "large", rows.size()));
  Result<Analytics> a = GetAnalytics(port());
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(Completeness(*a, 200, false, 2, 2));
  EXPECT_TRUE(expected.Matches(a->body));
}

TEST_F(ApiTest, HealthAnswersProtobufAndJson) {
  ASSERT_TRUE(cluster_.Start());
  Result<HttpResponse> r = HttpGet(port(), "/health");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->MediaType(), "application/x-protobuf");
  v1::HealthResponse health;
  ASSERT_TRUE(health.ParseFromString(r->body));
  EXPECT_EQ(health.status(), "ok");
  EXPECT_EQ(health.node(), "control");
  ASSERT_EQ(health.workers_size(), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(health.workers(i).address(), "127.0.0.1:" + std::to_string(cluster_.worker_port(i)));
    EXPECT_TRUE(health.workers(i).healthy()) << health.workers(i).ShortDebugString();
  }
  for (const auto& [target, headers] :
       std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>>{
           {"/health?format=json", {}}, {"/health", {{"Accept", "application/json"}}}}) {
    SCOPED_TRACE(target);
    Struct json = JsonOk(HttpGet(port(), target, headers));
    ASSERT_TRUE(json.fields().contains("status"));
    EXPECT_EQ(json.fields().at("status").string_value(), "ok");
    ASSERT_TRUE(json.fields().contains("workers"));
    EXPECT_EQ(json.fields().at("workers").list_value().values_size(), 2);
  }
  // Each worker answers its own /health.
  for (int i = 0; i < 2; ++i) {
    Result<HttpResponse> w = HttpGet(cluster_.worker_port(i), "/health");
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    EXPECT_EQ(w->status, 200);
  }
}

TEST_F(ApiTest, UnicodeKeysAreAccepted) {
  ASSERT_TRUE(cluster_.Start());
  Expected expected;
  for (const std::string& key :
       {std::string("ключ"), std::string("键-🙂"), std::string("a b\tc")}) {
    ASSERT_TRUE(InsertOk(port(), key, 1.5));
    ASSERT_TRUE(InsertOk(port(), key, 2.5, Encoding::kJson));
    expected.Add(1.5);
    expected.Add(2.5);
  }
  Result<Analytics> a = GetAnalytics(port());
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(expected.Matches(a->body));
}

TEST_F(ApiTest, KeepAliveConnectionCarriesSeveralRequests) {
  ASSERT_TRUE(cluster_.Start());
  Result<std::unique_ptr<HttpConnection>> c =
      HttpConnection::Connect(port(), std::chrono::seconds(10));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  HttpConnection& connection = **c;
  Expected expected;
  for (int i = 0; i < 5; ++i) {
    HttpRequest request;
    request.method = "POST";
    request.target = "/insert";
    request.headers = {{"Content-Type", kProtobuf}};
    request.body = EncodeInsert("ka-" + std::to_string(i), 0.5 * i);
    Result<HttpResponse> r = connection.RoundTrip(request, /*keep_alive=*/true);
    ASSERT_TRUE(r.ok()) << "request " << i << ": " << r.status().ToString();
    EXPECT_EQ(r->status, 200);
    ASSERT_FALSE(connection.closed()) << "the server closed a keep-alive connection";
    expected.Add(0.5 * i);
  }
  HttpRequest get;
  get.target = "/analytics";
  Result<HttpResponse> r = connection.RoundTrip(get, /*keep_alive=*/true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  v1::AnalyticsResponse analytics;
  ASSERT_TRUE(analytics.ParseFromString(r->body));
  EXPECT_TRUE(expected.Matches(analytics));
}

}  // namespace
}  // namespace das::it
