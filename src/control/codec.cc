#include "control/codec.h"

#include <algorithm>
#include <cctype>
#include <optional>

#include <google/protobuf/unknown_field_set.h>
#include <google/protobuf/util/json_util.h>

#include "common/validation.h"
#include "das/v1/das.pb.h"
#include "http/query.h"

namespace das::control {

namespace {

constexpr std::string_view kProtobufType = "application/x-protobuf";
constexpr std::string_view kJsonType = "application/json";

// "Application/JSON; charset=utf-8" -> "application/json"
std::string MediaType(std::string_view header) {
  std::string_view type = header.substr(0, header.find(';'));
  while (!type.empty() && std::isspace(static_cast<unsigned char>(type.front()))) {
    type.remove_prefix(1);
  }
  while (!type.empty() && std::isspace(static_cast<unsigned char>(type.back()))) {
    type.remove_suffix(1);
  }
  std::string out(type);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return out;
}

// The decoded value of the query parameter `name`, or "" when absent or the target is bad (the
// router answers a bad target before any handler runs).
std::string QueryParameter(std::string_view target, std::string_view name) {
  if (target.find('?') == std::string_view::npos) return {};  // the usual case: nothing to parse
  Result<http::Target> parsed = http::ParseTarget(target);
  if (!parsed.ok()) return {};
  for (const http::QueryParam& param : parsed->params) {
    if (param.name == name) return param.value;
  }
  return {};
}

std::optional<double> ValueOf(const internal::v1::RowWire& row) {
  return row.has_value() ? std::optional<double>(row.value()) : std::nullopt;
}

ApiError Undecodable(std::string_view what, std::string_view detail) {
  std::string message = "body is not a valid ";
  message += what;
  if (!detail.empty()) {
    message += ": ";
    message += detail;
  }
  return ApiError{400, std::move(message)};
}

google::protobuf::util::JsonParseOptions JsonParse() {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  return options;
}

void MoveRow(das::v1::Row& from, internal::v1::RowWire& to) {
  to.set_partition_key(std::move(*from.mutable_partition_key()));
  if (from.has_value()) to.set_value(from.value());
}

// Protobuf bodies are decoded with the wire mirrors (bytes keys), so a key that is not UTF-8
// reaches validation (422) instead of failing the parse (400).
Decoded<internal::v1::InsertBatchWire*> ParseBatch(const http::Request& request, Encoding encoding,
                                                   google::protobuf::Arena& arena) {
  auto* batch = google::protobuf::Arena::CreateMessage<internal::v1::InsertBatchWire>(&arena);
  if (encoding == Encoding::kProtobuf) {
    if (!batch->ParseFromString(request.body)) return Undecodable("das.v1.InsertBatch", "");
    return batch;
  }
  auto* json = google::protobuf::Arena::CreateMessage<das::v1::InsertBatch>(&arena);
  auto status = google::protobuf::util::JsonStringToMessage(request.body, json, JsonParse());
  if (!status.ok()) return Undecodable("das.v1.InsertBatch", status.message().as_string());
  batch->mutable_rows()->Reserve(json->rows_size());
  for (das::v1::Row& row : *json->mutable_rows()) MoveRow(row, *batch->add_rows());
  batch->set_idempotency_key(std::move(*json->mutable_idempotency_key()));
  return batch;
}

}  // namespace

Decoded<Encoding> BodyEncoding(const http::Request& request) {
  if (!request.has_content_type) return Encoding::kProtobuf;
  std::string type = MediaType(request.content_type);
  if (type == kProtobufType || type == "application/octet-stream" ||
      type == "application/protobuf" || type.empty()) {
    return Encoding::kProtobuf;
  }
  if (type == kJsonType) return Encoding::kJson;
  return ApiError{415, "Content-Type '" + request.content_type +
                           "' is not supported; use application/x-protobuf or application/json"};
}

Encoding AnswerEncoding(const http::Request& request, Encoding fallback) {
  const std::string format = QueryParameter(request.target, "format");
  if (format == "json") return Encoding::kJson;
  if (format == "protobuf" || format == "proto") return Encoding::kProtobuf;
  // Accept is honoured when it names exactly one of the two encodings ("*/*" keeps the
  // fallback).
  bool json = request.accept.find(kJsonType) != std::string::npos;
  bool protobuf = request.accept.find(kProtobufType) != std::string::npos;
  if (json && !protobuf) return Encoding::kJson;
  if (protobuf && !json) return Encoding::kProtobuf;
  return fallback;
}

Decoded<internal::v1::RowWire> DecodeInsert(const http::Request& request, Encoding encoding) {
  internal::v1::RowWire row;
  if (encoding == Encoding::kProtobuf) {
    internal::v1::InsertRequestWire wire;
    if (!wire.ParseFromString(request.body)) return Undecodable("das.v1.InsertRequest", "");
    row.set_partition_key(std::move(*wire.mutable_partition_key()));
    if (wire.has_value()) row.set_value(wire.value());
  } else {
    das::v1::InsertRequest json;
    auto status = google::protobuf::util::JsonStringToMessage(request.body, &json, JsonParse());
    if (!status.ok()) return Undecodable("das.v1.InsertRequest", status.message().as_string());
    row.set_partition_key(std::move(*json.mutable_partition_key()));
    if (json.has_value()) row.set_value(json.value());
  }
  if (Status s = ValidateRow(row.partition_key(), ValueOf(row)); !s.ok()) return ApiErrorOf(s);
  return row;
}

Decoded<internal::v1::InsertBatchWire*> DecodeBatch(const http::Request& request, Encoding encoding,
                                                    google::protobuf::Arena& arena) {
  Decoded<internal::v1::InsertBatchWire*> decoded = ParseBatch(request, encoding, arena);
  if (auto* parsed = std::get_if<internal::v1::InsertBatchWire*>(&decoded)) {
    const internal::v1::InsertBatchWire* batch = *parsed;
    if (Status s = ValidateIdempotencyKey(batch->idempotency_key()); !s.ok()) {
      return ApiErrorOf(s);
    }
    for (int i = 0; i < batch->rows_size(); ++i) {
      const internal::v1::RowWire& row = batch->rows(i);
      if (Status s = ValidateRow(row.partition_key(), ValueOf(row)); !s.ok()) {
        return ApiError{422, "rows[" + std::to_string(i) + "]: " + s.message() +
                                 "; the batch was rejected whole"};
      }
    }
  }
  return decoded;
}

http::Response Encode(unsigned status, const google::protobuf::Message& message, Encoding encoding,
                      bool print_defaults) {
  http::Response response;
  response.status = status;
  if (encoding == Encoding::kProtobuf) {
    response.content_type = kProtobufType;
    message.SerializeToString(&response.body);
    return response;
  }
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = print_defaults;
  response.content_type = kJsonType;
  (void)google::protobuf::util::MessageToJsonString(message, &response.body, options);
  return response;
}

http::Response EncodeError(const ApiError& error, Encoding encoding, uint64_t rows_written) {
  das::v1::ErrorResponse body;
  body.set_status(error.status);
  body.set_error(error.message);
  body.set_rows_written(rows_written);
  return Encode(error.status, body, encoding);
}

Encoding ErrorEncoding(const http::Request& request) {
  // Protobuf only for a protobuf request: a protobuf Content-Type, or a body-carrying request
  // without one (the contract reads such a body as protobuf). Everything else, a form post or
  // a browser's GET among them, gets an error a person can read.
  Encoding fallback = Encoding::kJson;
  if (request.has_content_type) {
    Decoded<Encoding> body = BodyEncoding(request);
    if (const Encoding* known = std::get_if<Encoding>(&body)) fallback = *known;
  } else if (request.method == "POST" || request.method == "PUT") {
    fallback = Encoding::kProtobuf;
  }
  return AnswerEncoding(request, fallback);
}

http::Response TooLarge(const http::Request& request, size_t limit) {
  return EncodeError(
      ApiError{413, "body is larger than the limit of " + std::to_string(limit) + " bytes"},
      ErrorEncoding(request));
}

Decoded<das::v1::Query> DecodeQuery(const http::Request& request, Encoding encoding) {
  das::v1::Query query;
  if (encoding == Encoding::kProtobuf) {
    if (!query.ParseFromString(request.body)) {
      return ApiError{400, "body is not a valid das.v1.Query"};
    }
    const google::protobuf::UnknownFieldSet& unknown =
        query.GetReflection()->GetUnknownFields(query);
    if (!unknown.empty()) {
      return ApiError{400, "body is not a valid das.v1.Query: unknown field number " +
                               std::to_string(unknown.field(0).number())};
    }
    return query;
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(request.body, &query, options);
  if (!status.ok()) {
    return ApiError{400, "body is not a valid das.v1.Query: " +
                             std::string(status.message().data(), status.message().size())};
  }
  return query;
}

}  // namespace das::control
