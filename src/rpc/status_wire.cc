#include "rpc/status_wire.h"

#include <string>

namespace das::rpc {
namespace {

using WireCode = internal::v1::ErrorStatus::Code;

WireCode ToWireCode(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return internal::v1::ErrorStatus::UNKNOWN;
    case StatusCode::kInvalidArgument:
      return internal::v1::ErrorStatus::INVALID_ARGUMENT;
    case StatusCode::kUnavailable:
      return internal::v1::ErrorStatus::UNAVAILABLE;
    case StatusCode::kDeadlineExceeded:
      return internal::v1::ErrorStatus::DEADLINE_EXCEEDED;
    case StatusCode::kNotLeader:
      return internal::v1::ErrorStatus::NOT_LEADER;
    case StatusCode::kShuttingDown:
      return internal::v1::ErrorStatus::SHUTTING_DOWN;
    case StatusCode::kAlreadyExists:
      return internal::v1::ErrorStatus::ALREADY_EXISTS;
    case StatusCode::kInternal:
      return internal::v1::ErrorStatus::INTERNAL;
    case StatusCode::kMalformed:
      return internal::v1::ErrorStatus::MALFORMED;
    case StatusCode::kNotFound:
      return internal::v1::ErrorStatus::NOT_FOUND;
    case StatusCode::kFailedPrecondition:
      return internal::v1::ErrorStatus::FAILED_PRECONDITION;
    case StatusCode::kMethodNotAllowed:
      return internal::v1::ErrorStatus::METHOD_NOT_ALLOWED;
  }
  return internal::v1::ErrorStatus::INTERNAL;
}

StatusCode FromWireCode(WireCode code) {
  switch (code) {
    case internal::v1::ErrorStatus::INVALID_ARGUMENT:
      return StatusCode::kInvalidArgument;
    case internal::v1::ErrorStatus::UNAVAILABLE:
      return StatusCode::kUnavailable;
    case internal::v1::ErrorStatus::DEADLINE_EXCEEDED:
      return StatusCode::kDeadlineExceeded;
    case internal::v1::ErrorStatus::NOT_LEADER:
      return StatusCode::kNotLeader;
    case internal::v1::ErrorStatus::SHUTTING_DOWN:
      return StatusCode::kShuttingDown;
    case internal::v1::ErrorStatus::ALREADY_EXISTS:
      return StatusCode::kAlreadyExists;
    case internal::v1::ErrorStatus::MALFORMED:
      return StatusCode::kMalformed;
    case internal::v1::ErrorStatus::NOT_FOUND:
      return StatusCode::kNotFound;
    case internal::v1::ErrorStatus::FAILED_PRECONDITION:
      return StatusCode::kFailedPrecondition;
    case internal::v1::ErrorStatus::METHOD_NOT_ALLOWED:
      return StatusCode::kMethodNotAllowed;
    default:
      return StatusCode::kInternal;
  }
}

}  // namespace

internal::v1::ErrorStatus ToWire(const Status& status) {
  internal::v1::ErrorStatus wire;
  wire.set_code(ToWireCode(status.code()));
  wire.set_message(status.message());
  wire.set_detail(status.detail());
  return wire;
}

Status FromWire(const internal::v1::ErrorStatus& wire) {
  return Status(FromWireCode(wire.code()), wire.message(), wire.detail());
}

Result<SubBatchStored> FromWire(const internal::v1::SubBatchResult& result) {
  switch (result.code()) {
    case internal::v1::SubBatchResult::OK:
      return SubBatchStored{result.rows_written(), false};
    case internal::v1::SubBatchResult::DUPLICATE:
      return SubBatchStored{result.rows_written(), true};
    case internal::v1::SubBatchResult::KEY_CONFLICT:
      return AlreadyExists("idempotency_key was already used for different rows");
    case internal::v1::SubBatchResult::INVALID_ARGUMENT:
      return InvalidArgument(result.error());
    default:
      return Internal("an unknown sub-batch outcome " + std::to_string(result.code()));
  }
}

http::Response ProtobufResponse(const google::protobuf::Message& message) {
  http::Response response;
  response.content_type = std::string(kProtobufType);
  message.SerializeToString(&response.body);
  return response;
}

http::Response ErrorResponse(const Status& status) {
  http::Response response = ProtobufResponse(ToWire(status));
  response.status = HttpStatusOf(status.code());
  return response;
}

Status StatusFromResponse(const http::Response& response, std::string_view peer) {
  internal::v1::ErrorStatus wire;
  if (response.content_type == kProtobufType && wire.ParseFromString(response.body) &&
      wire.code() != internal::v1::ErrorStatus::UNKNOWN) {
    return FromWire(wire);
  }
  return Unavailable(std::string(peer) + " answered HTTP " + std::to_string(response.status));
}

}  // namespace das::rpc
