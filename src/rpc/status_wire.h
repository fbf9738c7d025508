// The one mapping between das::Status and the internal wire, used by both sides: a worker
// answers a failure with ErrorResponse(status), the control node reads any non-200 answer back
// with StatusFromResponse(). The code, message and detail (a leader hint) survive the trip;
// the HTTP status comes from HttpStatusOf() (common/status.h).
// Thread-safety: free functions without shared state.
#pragma once

#include <string_view>

#include "common/status.h"
#include "das/v1/internal.pb.h"
#include "http/message.h"

namespace das::rpc {

inline constexpr std::string_view kProtobufType = "application/x-protobuf";

internal::v1::ErrorStatus ToWire(const Status& status);
// REQUIRES: wire.code() != UNKNOWN for a meaningful code (UNKNOWN reads as kInternal).
Status FromWire(const internal::v1::ErrorStatus& wire);

// What a worker said of one sub-batch, in the codes callers act on (the one reading of
// SubBatchResult::Code): its rows are stored, now or before (`duplicate`: by the batch this one
// repeats, whose rows `rows` then counts), or it stored nothing: kAlreadyExists (its
// idempotency key was stored with other rows) or kInvalidArgument (a row broke a limit: the
// worker's message).
struct SubBatchStored {
  uint64_t rows = 0;
  bool duplicate = false;
};
Result<SubBatchStored> FromWire(const internal::v1::SubBatchResult& result);

// A protobuf answer with `message` and HTTP 200.
http::Response ProtobufResponse(const google::protobuf::Message& message);
// REQUIRES: !status.ok(). HttpStatusOf(code), body ErrorStatus.
http::Response ErrorResponse(const Status& status);

// The Status of a non-200 answer from `peer`: its ErrorStatus when it sent one, else
// kUnavailable naming the HTTP status (e.g. a proxy's 502, or a peer of another version).
Status StatusFromResponse(const http::Response& response, std::string_view peer);

}  // namespace das::rpc
