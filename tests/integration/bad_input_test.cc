// Bad input gets the contract's status and changes nothing: every case is followed by a check
// that /analytics still counts exactly the rows stored before it.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "support/api.h"
#include "support/cluster.h"
#include "support/http_client.h"

namespace das::it {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// A POST of the head only, announcing `declared` bytes of body.
HttpRequest HeadOnly(const std::string& target, const std::string& type, size_t declared) {
  HttpRequest request;
  request.method = "POST";
  request.target = target;
  request.headers = {{"Content-Type", type}};
  request.declared_length = declared;
  request.send_body = false;
  return request;
}

class BadInputTest : public ClusterTest {
 protected:
  // Starts the cluster and stores one row on each worker, so that "nothing changed" is a
  // non-trivial check.
  testing::AssertionResult StartAndSeed(const ClusterOptions& options = {}) {
    if (auto r = cluster_.Start(options); !r) return r;
    for (int w = 0; w < 2; ++w) {
      const std::string key = KeysOnWorker(w, 2, 1, "seed")[0];
      if (auto r = InsertOk(port(), key, 1.5 + w); !r) return r;
      expected_.Add(1.5 + w);
    }
    return testing::AssertionSuccess();
  }

  // Exactly the rows stored so far, from a complete answer.
  void ExpectNothingStored() {
    Result<Analytics> a = GetAnalytics(port());
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_TRUE(Completeness(*a, 200, false, 2, 2));
    EXPECT_TRUE(expected_.Matches(a->body)) << "bad input changed the stored data";
  }

  Result<HttpResponse> Post(const std::string& target, std::string body, const std::string& type) {
    return HttpPost(port(), target, std::move(body), type);
  }

  Expected expected_;
};

TEST_F(BadInputTest, UndecodableBodyIs400) {
  ASSERT_TRUE(StartAndSeed());
  // An unterminated varint tag, and a length-delimited field longer than the body.
  for (const std::string& body : {std::string("\xff\xff\xff\xff", 4), std::string("\x0a\x0a"
                                                                                  "ab")}) {
    EXPECT_TRUE(IsError(Post("/insert", body, kProtobuf), 400, Encoding::kProtobuf));
    EXPECT_TRUE(IsError(Post("/insert/batch", body, kProtobuf), 400, Encoding::kProtobuf));
    EXPECT_TRUE(IsError(Post("/insert", body, ""), 400, Encoding::kProtobuf));
  }
  for (const std::string& body :
       {std::string("{\"partition_key\": \"a\", \"value\": "), std::string("[1, 2]"),
        std::string("{\"partition_key\": 5, \"value\": 1}"), std::string("not json"),
        std::string("")}) {
    SCOPED_TRACE(body);
    EXPECT_TRUE(IsError(Post("/insert", body, kJson), 400, Encoding::kJson));
    EXPECT_TRUE(IsError(Post("/insert/batch", body, kJson), 400, Encoding::kJson));
  }
  // A protobuf body sent as JSON.
  EXPECT_TRUE(IsError(Post("/insert", EncodeInsert("k", 1.0), kJson), 400, Encoding::kJson));
  ExpectNothingStored();
}

TEST_F(BadInputTest, BodyOverConfiguredLimitIs413BeforeTheBodyIsRead) {
  ClusterOptions options;
  options.control_flags = {"--body-limit", "1024"};
  ASSERT_TRUE(StartAndSeed(options));
  for (const std::string& type : {std::string(kProtobuf), std::string(kJson)}) {
    SCOPED_TRACE(type);
    const Encoding encoding = type == kJson ? Encoding::kJson : Encoding::kProtobuf;
    // Only the head is sent: the answer must come from Content-Length alone.
    HttpRequest head_only = HeadOnly("/insert/batch", type, 1025);
    EXPECT_TRUE(IsError(HttpDo(port(), head_only, std::chrono::seconds(5)), 413, encoding));
    head_only.target = "/insert";
    EXPECT_TRUE(IsError(HttpDo(port(), head_only, std::chrono::seconds(5)), 413, encoding));
  }
  // The whole body sent: a valid batch of 2 KiB.
  std::vector<TestRow> rows;
  for (int i = 0; i < 100; ++i) rows.push_back({"row-" + std::to_string(i), 1.0});
  const std::string big = EncodeBatch(rows, "too-big");
  ASSERT_GT(big.size(), 1024u);
  EXPECT_TRUE(IsError(Post("/insert/batch", big, kProtobuf), 413, Encoding::kProtobuf));
  ExpectNothingStored();

  // The boundary: a batch of exactly 1024 bytes is taken, 1025 bytes is not.
  std::string exact;
  std::string over;
  for (size_t pad = 0; pad < 1100 && (exact.empty() || over.empty()); ++pad) {
    // The padding is in the partition key (at most 1024 bytes, so still a valid row).
    std::string body = EncodeBatch({{std::string(pad, 'e'), 0.25}}, "edge");
    if (body.size() == 1024) exact = body;
    if (body.size() == 1025) over = body;
  }
  ASSERT_EQ(exact.size(), 1024u);
  ASSERT_EQ(over.size(), 1025u);
  EXPECT_TRUE(IsError(Post("/insert/batch", over, kProtobuf), 413, Encoding::kProtobuf));
  ExpectNothingStored();
  Result<HttpResponse> r = Post("/insert/batch", exact, kProtobuf);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200) << r->body;
  expected_.Add(0.25);
  ExpectNothingStored();
}

TEST_F(BadInputTest, DeclaredBodyOverDefaultLimitIs413WithoutSendingIt) {
  ASSERT_TRUE(StartAndSeed());
  const size_t declared = 17u * 1024 * 1024;  // the default limit is 16 MiB
  for (const char* target : {"/insert", "/insert/batch"}) {
    SCOPED_TRACE(target);
    HttpRequest head_only = HeadOnly(target, kProtobuf, declared);
    const auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(
        IsError(HttpDo(port(), head_only, std::chrono::seconds(5)), 413, Encoding::kProtobuf));
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  }
  ExpectNothingStored();
}

// A 415 is a JSON error: the request is not protobuf, and a person reads the answer.
TEST_F(BadInputTest, OtherContentTypeIs415InJson) {
  ASSERT_TRUE(StartAndSeed());
  for (const char* type : {"text/plain", "application/xml", "multipart/form-data"}) {
    SCOPED_TRACE(type);
    EXPECT_TRUE(IsError(Post("/insert", InsertJson("k", 1.0), type), 415, Encoding::kJson));
    EXPECT_TRUE(
        IsError(Post("/insert/batch", EncodeBatch({{"k", 1.0}}, "x"), type), 415, Encoding::kJson));
  }
  ExpectNothingStored();
}

// Regression: `curl -d 'partition_key=a&value=3'` got a 415 whose body was binary protobuf.
TEST_F(BadInputTest, FormPostGetsAReadable415) {
  ASSERT_TRUE(StartAndSeed());
  v1::ErrorResponse error;
  EXPECT_TRUE(
      IsError(Post("/insert", "partition_key=a&value=3", "application/x-www-form-urlencoded"), 415,
              Encoding::kJson, &error));
  EXPECT_EQ(error.error(),
            "Content-Type 'application/x-www-form-urlencoded' is not supported; use "
            "application/x-protobuf or application/json");
  ExpectNothingStored();
}

// Regression: {"partition_key": "a"} and a protobuf row without field 2 were stored as 0.
TEST_F(BadInputTest, RowWithoutValueIs422AndStoresNothing) {
  ASSERT_TRUE(StartAndSeed());
  v1::ErrorResponse error;
  EXPECT_TRUE(
      IsError(Post("/insert", R"({"partition_key": "a"})", kJson), 422, Encoding::kJson, &error));
  EXPECT_EQ(error.error(), "value is required");
  v1::InsertRequest no_value;  // field 2 absent on the wire
  no_value.set_partition_key("a");
  EXPECT_TRUE(IsError(Post("/insert", no_value.SerializeAsString(), kProtobuf), 422,
                      Encoding::kProtobuf, &error));
  EXPECT_EQ(error.error(), "value is required");
  // A batch with one row without a value is rejected whole, in either encoding.
  EXPECT_TRUE(IsError(
      Post("/insert/batch",
           R"({"rows": [{"partition_key": "a", "value": 2}, {"partition_key": "b"}]})", kJson),
      422, Encoding::kJson, &error));
  EXPECT_EQ(error.error(), "rows[1]: value is required; the batch was rejected whole");
  v1::InsertBatch batch;
  v1::Row* good = batch.add_rows();
  good->set_partition_key("a");
  good->set_value(2);
  batch.add_rows()->set_partition_key("b");
  EXPECT_TRUE(IsError(Post("/insert/batch", batch.SerializeAsString(), kProtobuf), 422,
                      Encoding::kProtobuf, &error));
  EXPECT_EQ(error.rows_written(), 0u);
  ExpectNothingStored();
  // A value of 0, sent explicitly (the schema's field is optional), is a value.
  ASSERT_TRUE(InsertOk(port(), "zero", 0.0, Encoding::kProtobuf));
  ASSERT_TRUE(InsertOk(port(), "zero", 0.0, Encoding::kJson));
  expected_.Add(0.0);
  expected_.Add(0.0);
  ExpectNothingStored();
}

// Regression: GET /analytics?partition_key=a answered the global aggregate as if filtered.
TEST_F(BadInputTest, UnknownQueryParameterIs400NamingIt) {
  ASSERT_TRUE(StartAndSeed());
  v1::ErrorResponse error;
  EXPECT_TRUE(IsError(HttpGet(port(), "/analytics?partition_key=a"), 400, Encoding::kJson, &error));
  EXPECT_EQ(error.error(),
            "unknown query parameter 'partition_key' on /analytics; accepted: format, key, "
            "key_prefix, from, to");
  EXPECT_TRUE(IsError(HttpGet(port(), "/health?verbose=1"), 400, Encoding::kJson, &error));
  EXPECT_NE(error.error().find("'verbose'"), std::string::npos) << error.error();
  // Asked for protobuf, the error is protobuf.
  EXPECT_TRUE(IsError(HttpGet(port(), "/analytics?prefix=a", {{"Accept", kProtobuf}}), 400,
                      Encoding::kProtobuf, &error));
  EXPECT_TRUE(IsError(HttpGet(port(), "/analytics?format=xml"), 422, Encoding::kJson, &error));
  EXPECT_EQ(error.error(), "format must be json or protobuf, not 'xml'");
  // The known parameter still works, percent-encoded too.
  Result<HttpResponse> json = HttpGet(port(), "/analytics?%66ormat=json");
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  EXPECT_EQ(json->status, 200);
  EXPECT_EQ(json->MediaType(), kJson);
  ExpectNothingStored();
}

TEST_F(BadInputTest, NonFiniteValueIs422) {
  ASSERT_TRUE(StartAndSeed());
  for (double value : {kNaN, kInf, -kInf}) {
    SCOPED_TRACE(JsonNumber(value));
    EXPECT_TRUE(IsError(PostInsert(port(), "nf", value), 422, Encoding::kProtobuf));
    EXPECT_TRUE(IsError(PostInsert(port(), "nf", value, Encoding::kJson), 422, Encoding::kJson));
  }
  // The proto3 JSON spellings, written out.
  for (const std::string spelled : {"\"NaN\"", "\"Infinity\"", "\"-Infinity\""}) {
    EXPECT_TRUE(
        IsError(Post("/insert", "{\"partition_key\": \"nf\", \"value\": " + spelled + "}", kJson),
                422, Encoding::kJson))
        << spelled;
  }
  ExpectNothingStored();
}

TEST_F(BadInputTest, EmptyKeyIs422) {
  ASSERT_TRUE(StartAndSeed());
  EXPECT_TRUE(IsError(PostInsert(port(), "", 1.0), 422, Encoding::kProtobuf));
  EXPECT_TRUE(IsError(PostInsert(port(), "", 1.0, Encoding::kJson), 422, Encoding::kJson));
  EXPECT_TRUE(IsError(Post("/insert", "{\"value\": 1.0}", kJson), 422, Encoding::kJson));
  EXPECT_TRUE(IsError(Post("/insert", "", kProtobuf), 422, Encoding::kProtobuf));  // all defaults
  ExpectNothingStored();
}

TEST_F(BadInputTest, KeyOver1024BytesIs422And1024IsAccepted) {
  ASSERT_TRUE(StartAndSeed());
  const std::string over(1025, 'k');
  EXPECT_TRUE(IsError(PostInsert(port(), over, 1.0), 422, Encoding::kProtobuf));
  EXPECT_TRUE(IsError(PostInsert(port(), over, 1.0, Encoding::kJson), 422, Encoding::kJson));
  // Bytes, not characters: 511 two-byte characters and 3 ASCII bytes make 1025 bytes.
  std::string multibyte_over;
  for (int i = 0; i < 511; ++i) multibyte_over += "\xc3\xa9";  // é
  multibyte_over += "abc";
  ASSERT_EQ(multibyte_over.size(), 1025u);
  EXPECT_TRUE(IsError(PostInsert(port(), multibyte_over, 1.0), 422, Encoding::kProtobuf));
  ExpectNothingStored();

  const std::string exact(1024, 'k');
  ASSERT_TRUE(InsertOk(port(), exact, 0.75));
  expected_.Add(0.75);
  ASSERT_TRUE(InsertOk(port(), exact, 0.25, Encoding::kJson));
  expected_.Add(0.25);
  std::string multibyte_exact;
  for (int i = 0; i < 512; ++i) multibyte_exact += "\xc3\xa9";
  ASSERT_EQ(multibyte_exact.size(), 1024u);
  ASSERT_TRUE(InsertOk(port(), multibyte_exact, 2.0));
  expected_.Add(2.0);
  ExpectNothingStored();
}

TEST_F(BadInputTest, InvalidUtf8KeyInProtobufIs422) {
  ASSERT_TRUE(StartAndSeed());
  const std::vector<std::string> keys = {
      std::string("\xff\xfe", 2),      // bytes that never occur in UTF-8
      std::string("abc\xc3", 4),       // a truncated sequence
      std::string("\xc0\xaf", 2),      // an overlong encoding of '/'
      std::string("\xed\xa0\x80", 3),  // a UTF-16 surrogate
      std::string("ok\x80"
                  "ok",
                  5),  // a lone continuation byte
  };
  for (const std::string& key : keys) {
    EXPECT_TRUE(IsError(PostInsert(port(), key, 1.0), 422, Encoding::kProtobuf))
        << "key of " << key.size() << " bytes";
    EXPECT_TRUE(
        IsError(PostBatch(port(), {{"fine", 1.0}, {key, 2.0}}, "utf8"), 422, Encoding::kProtobuf));
  }
  ExpectNothingStored();
}

TEST_F(BadInputTest, BatchWithOneBadRowIsRejectedWhole) {
  ASSERT_TRUE(StartAndSeed());
  const std::vector<std::string> on0 = KeysOnWorker(0, 2, 3, "good0");
  const std::vector<std::string> on1 = KeysOnWorker(1, 2, 3, "good1");
  auto with_bad_row = [&](TestRow bad) {
    std::vector<TestRow> rows = {{on0[0], 1.0}, {on1[0], 2.0}, {on0[1], 3.0}};
    rows.push_back(std::move(bad));
    rows.push_back({on1[1], 4.0});
    rows.push_back({on0[2], 5.0});
    return rows;
  };
  const std::vector<TestRow> bad_rows = {
      {on1[2], kNaN}, {on1[2], kInf}, {on1[2], -kInf}, {"", 1.0}, {std::string(1025, 'x'), 1.0}};
  int n = 0;
  for (const TestRow& bad : bad_rows) {
    const std::string id = "bad-" + std::to_string(n++);
    EXPECT_TRUE(IsError(PostBatch(port(), with_bad_row(bad), id), 422, Encoding::kProtobuf))
        << "bad row: key of " << bad.key.size() << " bytes, value " << bad.value;
    EXPECT_TRUE(IsError(PostBatch(port(), with_bad_row(bad), id + "-json", Encoding::kJson), 422,
                        Encoding::kJson))
        << "bad row: key of " << bad.key.size() << " bytes, value " << bad.value;
  }
  ExpectNothingStored();
  // The same idempotency key, now with good rows only, is a new request: nothing was stored
  // under it.
  const std::vector<TestRow> good = {{on0[0], 1.0}, {on1[0], 2.0}};
  ASSERT_TRUE(BatchOk(port(), good, "bad-0", 2));
  expected_.Add(good);
  ExpectNothingStored();
}

// A 404 on GET (a browser's among them) is JSON; a protobuf request's is protobuf. GET / is the
// web console, which knows no other method and no other file.
TEST_F(BadInputTest, UnknownRouteIs404) {
  ASSERT_TRUE(StartAndSeed());
  EXPECT_TRUE(IsError(HttpGet(port(), "/nope"), 404, Encoding::kJson));
  EXPECT_TRUE(IsError(HttpGet(port(), "/console/nope.js"), 404, Encoding::kJson));
  EXPECT_TRUE(IsError(HttpGet(port(), "/analytics/extra"), 404, Encoding::kJson));
  EXPECT_TRUE(IsError(HttpGet(port(), "/nope", {{"Accept", kProtobuf}}), 404, Encoding::kProtobuf));
  EXPECT_TRUE(IsError(Post("/", InsertJson("k", 1.0), kJson), 405, Encoding::kJson));
  EXPECT_TRUE(IsError(HttpGet(port(), "/?x=1"), 400, Encoding::kJson));
  EXPECT_TRUE(IsError(Post("/nope", EncodeInsert("k", 1.0), kProtobuf), 404, Encoding::kProtobuf));
  EXPECT_TRUE(IsError(Post("/insert/nope", InsertJson("k", 1.0), kJson), 404, Encoding::kJson));
  EXPECT_TRUE(
      IsError(Post("/inserts", EncodeInsert("k", 1.0), kProtobuf), 404, Encoding::kProtobuf));
  ExpectNothingStored();
}

TEST_F(BadInputTest, WrongMethodIs405) {
  ASSERT_TRUE(StartAndSeed());
  struct Case {
    std::string method;
    std::string target;
  };
  const std::vector<Case> cases = {{"GET", "/insert"},      {"GET", "/insert/batch"},
                                   {"PUT", "/insert"},      {"DELETE", "/insert/batch"},
                                   {"POST", "/analytics"},  {"POST", "/health"},
                                   {"DELETE", "/analytics"}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.method + " " + c.target);
    HttpRequest request;
    request.method = c.method;
    request.target = c.target;
    if (c.method != "GET" && c.method != "DELETE") {
      request.headers = {{"Content-Type", kProtobuf}};
      request.body = EncodeInsert("k", 1.0);
    }
    Result<HttpResponse> r = HttpDo(port(), request);
    EXPECT_TRUE(IsError(r, 405, std::nullopt));
    // RFC 9110: a 405 names the methods the resource supports.
    if (r.ok()) {
      EXPECT_NE(r->Header("allow"), "") << "405 without an Allow header";
    }
  }
  ExpectNothingStored();
}

}  // namespace
}  // namespace das::it
