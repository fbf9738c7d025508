#include "control/codec.h"

#include <gtest/gtest.h>

#include "das/v1/das.pb.h"

namespace das::control {
namespace {

http::Request Post(std::string body, std::string content_type = "application/x-protobuf") {
  http::Request r;
  r.method = "POST";
  r.target = "/insert";
  r.has_content_type = !content_type.empty();
  r.content_type = std::move(content_type);
  r.body = std::move(body);
  return r;
}

std::string InsertBody(const std::string& key, double value) {
  das::v1::InsertRequest req;
  req.set_partition_key(key);
  req.set_value(value);
  return req.SerializeAsString();
}

unsigned ErrorStatus(const auto& decoded) {
  const ApiError* e = std::get_if<ApiError>(&decoded);
  return e == nullptr ? 0 : e->status;
}

TEST(BodyEncodingTest, ChoosesByContentType) {
  EXPECT_EQ(std::get<Encoding>(BodyEncoding(Post("", ""))), Encoding::kProtobuf);
  EXPECT_EQ(std::get<Encoding>(BodyEncoding(Post("", "application/octet-stream"))),
            Encoding::kProtobuf);
  EXPECT_EQ(std::get<Encoding>(BodyEncoding(Post("", "Application/JSON; charset=utf-8"))),
            Encoding::kJson);
  EXPECT_EQ(ErrorStatus(BodyEncoding(Post("", "text/plain"))), 415u);
}

TEST(AnswerEncodingTest, FormatThenAcceptThenFallback) {
  http::Request r;
  r.method = "GET";
  r.target = "/analytics?format=json";
  EXPECT_EQ(AnswerEncoding(r, Encoding::kProtobuf), Encoding::kJson);
  r.target = "/analytics";
  r.accept = "application/json";
  EXPECT_EQ(AnswerEncoding(r, Encoding::kProtobuf), Encoding::kJson);
  r.accept = "*/*";
  EXPECT_EQ(AnswerEncoding(r, Encoding::kProtobuf), Encoding::kProtobuf);
  EXPECT_EQ(AnswerEncoding(r, Encoding::kJson), Encoding::kJson);
}

TEST(DecodeInsertTest, ProtobufAndJson) {
  auto pb = DecodeInsert(Post(InsertBody("k", 1.5)), Encoding::kProtobuf);
  ASSERT_EQ(ErrorStatus(pb), 0u);
  EXPECT_EQ(std::get<internal::v1::RowWire>(pb).partition_key(), "k");
  EXPECT_EQ(std::get<internal::v1::RowWire>(pb).value(), 1.5);
  auto js = DecodeInsert(Post(R"({"partition_key": "a", "value": -2.25})", "application/json"),
                         Encoding::kJson);
  ASSERT_EQ(ErrorStatus(js), 0u);
  EXPECT_EQ(std::get<internal::v1::RowWire>(js).value(), -2.25);
}

TEST(DecodeInsertTest, BadInputAnswers) {
  EXPECT_EQ(ErrorStatus(DecodeInsert(Post("\xff\xff\xff"), Encoding::kProtobuf)), 400u);
  EXPECT_EQ(ErrorStatus(DecodeInsert(Post("{not json"), Encoding::kJson)), 400u);
  EXPECT_EQ(
      ErrorStatus(DecodeInsert(Post(R"({"partition_key":"a","value":1,"x":2})"), Encoding::kJson)),
      400u);
  EXPECT_EQ(ErrorStatus(DecodeInsert(Post(InsertBody("", 1)), Encoding::kProtobuf)), 422u);
  EXPECT_EQ(
      ErrorStatus(DecodeInsert(Post(InsertBody(std::string(1025, 'k'), 1)), Encoding::kProtobuf)),
      422u);
  EXPECT_EQ(
      ErrorStatus(DecodeInsert(Post(R"({"partition_key":"a","value":"NaN"})"), Encoding::kJson)),
      422u);
  EXPECT_EQ(ErrorStatus(DecodeInsert(Post(R"({"partition_key":"a","value":"-Infinity"})"),
                                     Encoding::kJson)),
            422u);
}

TEST(DecodeInsertTest, NonUtf8KeyInProtobufIs422Not400) {
  // A das.v1.InsertRequest whose key bytes are not UTF-8 (hand-encoded: field 1, length 2).
  std::string body("\x0a\x02\xc0\xaf", 4);
  EXPECT_EQ(ErrorStatus(DecodeInsert(Post(body), Encoding::kProtobuf)), 422u);
}

TEST(DecodeBatchTest, OneBadRowRejectsTheWholeBatch) {
  das::v1::InsertBatch batch;
  for (int i = 0; i < 3; ++i) {
    auto* row = batch.add_rows();
    row->set_partition_key("k" + std::to_string(i));
    row->set_value(i);
  }
  batch.mutable_rows(1)->set_partition_key("");
  google::protobuf::Arena arena;
  auto decoded = DecodeBatch(Post(batch.SerializeAsString()), Encoding::kProtobuf, arena);
  ASSERT_EQ(ErrorStatus(decoded), 422u);
  EXPECT_EQ(std::get<ApiError>(decoded).message,
            "rows[1]: partition_key is empty; the batch was rejected whole");
}

TEST(DecodeBatchTest, KeepsRowsAndKey) {
  google::protobuf::Arena arena;
  auto decoded = DecodeBatch(
      Post(R"({"rows":[{"partition_key":"a","value":1},{"partition_key":"b","value":2}],)"
           R"("idempotency_key":"batch-1"})"),
      Encoding::kJson, arena);
  ASSERT_EQ(ErrorStatus(decoded), 0u);
  const internal::v1::InsertBatchWire* batch = std::get<internal::v1::InsertBatchWire*>(decoded);
  EXPECT_EQ(batch->GetArena(), &arena);
  ASSERT_EQ(batch->rows_size(), 2);
  EXPECT_EQ(batch->rows(1).partition_key(), "b");
  EXPECT_EQ(batch->rows(1).value(), 2);
  EXPECT_EQ(batch->idempotency_key(), "batch-1");
}

TEST(DecodeBatchTest, ProtobufBatchIsMadeOnTheArena) {
  das::v1::InsertBatch sent;
  das::v1::Row* row = sent.add_rows();
  row->set_partition_key("a");
  row->set_value(5);
  sent.set_idempotency_key("k");
  google::protobuf::Arena arena;
  auto decoded = DecodeBatch(Post(sent.SerializeAsString()), Encoding::kProtobuf, arena);
  ASSERT_EQ(ErrorStatus(decoded), 0u);
  const internal::v1::InsertBatchWire* batch = std::get<internal::v1::InsertBatchWire*>(decoded);
  EXPECT_EQ(batch->GetArena(), &arena);
  EXPECT_EQ(batch->rows(0).GetArena(), &arena);
  EXPECT_EQ(batch->rows(0).value(), 5);
  EXPECT_EQ(batch->idempotency_key(), "k");
}

TEST(EncodeTest, JsonKeepsFieldNamesAndPrintsDefaults) {
  das::v1::AnalyticsResponse r;
  r.set_total_nodes(2);
  r.set_responding_nodes(2);
  http::Response out = Encode(200, r, Encoding::kJson);
  EXPECT_EQ(out.content_type, "application/json");
  EXPECT_EQ(out.body,
            R"({"is_partial":false,"total_nodes":2,"responding_nodes":2,"count":"0","sum":0})");
}

TEST(EncodeTest, ErrorCarriesStatusAndMessage) {
  http::Response out = EncodeError(ApiError{422, "bad"}, Encoding::kProtobuf, 3);
  EXPECT_EQ(out.status, 422u);
  das::v1::ErrorResponse e;
  ASSERT_TRUE(e.ParseFromString(out.body));
  EXPECT_EQ(e.status(), 422u);
  EXPECT_EQ(e.error(), "bad");
  EXPECT_EQ(e.rows_written(), 3u);
}

}  // namespace
}  // namespace das::control

namespace das::control {
namespace {

TEST(ErrorEncodingTest, FollowsTheBodyUnlessAskedOtherwise) {
  http::Request json = Post("{}", "application/json");
  EXPECT_EQ(ErrorEncoding(json), Encoding::kJson);
  EXPECT_EQ(ErrorEncoding(Post("", "")), Encoding::kProtobuf);
  // Not a protobuf request: an error a person can read.
  EXPECT_EQ(ErrorEncoding(Post("", "text/plain")), Encoding::kJson);
  EXPECT_EQ(ErrorEncoding(Post("", "application/x-www-form-urlencoded")), Encoding::kJson);
  json.target = "/insert?format=protobuf";
  EXPECT_EQ(ErrorEncoding(json), Encoding::kProtobuf);
}

TEST(TooLargeTest, IsAnErrorResponseInTheRequestsEncoding) {
  http::Response r = TooLarge(Post("", "application/json"), 1024);
  EXPECT_EQ(r.status, 413u);
  EXPECT_EQ(
      r.body,
      R"({"status":413,"error":"body is larger than the limit of 1024 bytes","rows_written":"0"})");
}

TEST(DecodeQueryTest, AnUnknownFieldIsA400NamingIt) {
  http::Request request;
  request.body = R"({"granularity":"1m","bucket":"x"})";
  Decoded<das::v1::Query> json = DecodeQuery(request, Encoding::kJson);
  ASSERT_TRUE(std::holds_alternative<ApiError>(json));
  EXPECT_EQ(std::get<ApiError>(json).status, 400u);
  EXPECT_NE(std::get<ApiError>(json).message.find("bucket"), std::string::npos)
      << std::get<ApiError>(json).message;

  request.body = std::string("\xa0\x06\x01", 3);  // field 100, varint 1
  Decoded<das::v1::Query> proto = DecodeQuery(request, Encoding::kProtobuf);
  ASSERT_TRUE(std::holds_alternative<ApiError>(proto));
  EXPECT_EQ(std::get<ApiError>(proto).status, 400u);
  EXPECT_NE(std::get<ApiError>(proto).message.find("unknown field number 100"), std::string::npos);
}

}  // namespace
}  // namespace das::control
