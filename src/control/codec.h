// The public API's encodings: protobuf (das.v1) or its proto3 JSON mapping, chosen by
// Content-Type for bodies and by Accept / ?format= for answers (README, "API").
// Decoding validates every limit, so what leaves this file is safe to route and store.
// Thread-safety: free functions without shared state.
#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "common/api_error.h"
#include "das/v1/das.pb.h"
#include "das/v1/internal.pb.h"
#include "http/message.h"

namespace google::protobuf {
class Message;
}

namespace das::control {

enum class Encoding { kProtobuf, kJson };

// The body's encoding from Content-Type: protobuf for application/x-protobuf,
// application/octet-stream or no Content-Type; JSON for application/json; else 415.
Decoded<Encoding> BodyEncoding(const http::Request& request);

// How to answer: `?format=json|protobuf` first, then Accept (application/json or
// application/x-protobuf), else `fallback` (the body's encoding; protobuf for GET).
Encoding AnswerEncoding(const http::Request& request, Encoding fallback);

// POST /insert: one row, validated (400 undecodable, 422 a broken limit).
Decoded<internal::v1::RowWire> DecodeInsert(const http::Request& request, Encoding encoding);

// POST /insert/batch: every row and the idempotency key validated; one bad row rejects the
// whole batch (422) and names its index. The batch and its rows are made on `arena` (freed with
// it, not row by row), which must outlive every use of them.
Decoded<internal::v1::InsertBatchWire*> DecodeBatch(const http::Request& request, Encoding encoding,
                                                    google::protobuf::Arena& arena);

// An answer with `message` as its body, in `encoding`. JSON prints every field, also those at
// their default, unless `print_defaults` is false (then, as protobuf, only those set).
http::Response Encode(unsigned status, const google::protobuf::Message& message, Encoding encoding,
                      bool print_defaults = true);

// The encoding of an error answer: ?format= or Accept when they name one; else protobuf for a
// protobuf request (a protobuf Content-Type, or a POST without Content-Type, whose body the
// contract reads as protobuf); else JSON, so that a form post or a browser reads the error.
Encoding ErrorEncoding(const http::Request& request);

// The 413 for a body over `limit` bytes, as an ErrorResponse in ErrorEncoding(request).
http::Response TooLarge(const http::Request& request, size_t limit);

// An ErrorResponse answer; `rows_written` for a batch that failed part-way.
http::Response EncodeError(const ApiError& error, Encoding encoding, uint64_t rows_written = 0);

// The body of POST /v1/query: 400 when it does not decode or names an unknown field.
Decoded<das::v1::Query> DecodeQuery(const http::Request& request, Encoding encoding);

}  // namespace das::control
