// The public API's bodies: POST /insert, POST /insert/batch and POST /v1/query, in protobuf and in
// JSON, through the control node's own decoding and validation (control/codec.h,
// control/query_plan.h); what decodes is encoded back as the answer would be. The first byte
// chooses the route and the encoding.
#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>

#include "control/codec.h"
#include "control/query_plan.h"
#include "das/v1/das.pb.h"

using das::control::Encoding;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool batch = data[0] & 1;
  const Encoding encoding = (data[0] & 2) ? Encoding::kJson : Encoding::kProtobuf;
  das::http::Request request;
  request.method = "POST";
  request.target = batch ? "/insert/batch" : "/insert";
  request.content_type =
      encoding == Encoding::kJson ? "application/json" : "application/x-protobuf";
  request.has_content_type = true;
  request.body.assign(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 4) {
    request.target = "/v1/query";
    auto decoded = das::control::DecodeQuery(request, encoding);
    if (const auto* query = std::get_if<das::v1::Query>(&decoded)) {
      auto plan = das::control::PlanQuery(*query, das::control::kDefaultQueryMaxRows);
      if (const auto* error = std::get_if<das::control::ApiError>(&plan)) {
        (void)das::control::EncodeError(*error, encoding);
      }
    }
  } else if (batch) {
    auto decoded = das::control::DecodeBatch(request, encoding);
    if (const auto* rows = std::get_if<das::internal::v1::InsertBatchWire>(&decoded)) {
      das::v1::InsertResponse answer;
      answer.set_rows_written(static_cast<uint64_t>(rows->rows_size()));
      (void)das::control::Encode(200, answer, encoding);
    } else {
      (void)das::control::EncodeError(std::get<das::control::ApiError>(decoded), encoding);
    }
  } else {
    auto decoded = das::control::DecodeInsert(request, encoding);
    if (const auto* error = std::get_if<das::control::ApiError>(&decoded)) {
      (void)das::control::EncodeError(*error, encoding);
    }
  }
  return 0;
}
