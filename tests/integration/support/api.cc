#include "support/api.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "common/hash.h"

namespace das::it {
namespace {

constexpr uint64_t kSlots = 4096;

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void PutBytesField(std::string& out, int field, std::string_view bytes) {
  if (bytes.empty()) return;  // proto3 leaves default values off the wire
  PutVarint(out, (static_cast<uint64_t>(field) << 3) | 2);
  PutVarint(out, bytes.size());
  out.append(bytes);
}

// `optional double`: present on the wire whatever its value, 0 included (das.proto).
void PutDoubleField(std::string& out, int field, double value) {
  const uint64_t bits = std::bit_cast<uint64_t>(value);
  PutVarint(out, (static_cast<uint64_t>(field) << 3) | 1);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
}

std::string RowFields(std::string_view key, double value) {
  std::string out;
  PutBytesField(out, 1, key);
  PutDoubleField(out, 2, value);
  return out;
}

std::string ContentType(Encoding e) { return e == Encoding::kJson ? kJson : kProtobuf; }

bool IsProtobufType(const std::string& media_type) {
  return media_type == "application/x-protobuf" || media_type == "application/octet-stream";
}

// The expected media type of an answer in `encoding`.
testing::AssertionResult HasEncoding(const HttpResponse& r, Encoding encoding) {
  const std::string type = r.MediaType();
  if (encoding == Encoding::kJson ? type == kJson : IsProtobufType(type)) {
    return testing::AssertionSuccess();
  }
  return testing::AssertionFailure()
         << "answer Content-Type is '" << r.Header("content-type") << "', expected "
         << (encoding == Encoding::kJson ? "application/json" : "application/x-protobuf");
}

std::string Describe(const HttpResponse& r) {
  std::string body = r.body.substr(0, 300);
  for (char& c : body) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '.';
  }
  return "HTTP " + std::to_string(r.status) + " [" + r.Header("content-type") + "] " + body;
}

template <typename Message>
bool Decode(const HttpResponse& r, Encoding encoding, Message* out) {
  if (encoding == Encoding::kProtobuf) return out->ParseFromString(r.body);
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  return google::protobuf::util::JsonStringToMessage(r.body, out, options).ok();
}

}  // namespace

int WorkerOf(std::string_view key, int num_workers, int shards) {
  return ShardOf(key, shards) % num_workers;
}

std::vector<std::string> KeysOnWorker(int worker, int num_workers, int n, std::string_view prefix) {
  std::vector<std::string> keys;
  for (int i = 0; static_cast<int>(keys.size()) < n; ++i) {
    std::string key = std::string(prefix) + "-" + std::to_string(i);
    if (WorkerOf(key, num_workers) == worker) keys.push_back(std::move(key));
  }
  return keys;
}

int ShardOf(std::string_view key, int shards) {
  const uint64_t slot = HashPartitionKey(key) % kSlots;
  int shard = 0;
  while (shard + 1 < shards && static_cast<uint64_t>(shard + 1) * kSlots / shards <= slot) ++shard;
  return shard;
}

std::vector<std::string> KeyPerShard(int shards, std::string_view prefix) {
  std::vector<std::string> keys(shards);
  int found = 0;
  for (int i = 0; found < shards; ++i) {
    std::string key = std::string(prefix) + "-" + std::to_string(i);
    std::string& slot = keys[ShardOf(key, shards)];
    if (slot.empty()) {
      slot = std::move(key);
      ++found;
    }
  }
  return keys;
}

std::string EncodeInsert(std::string_view key, double value) { return RowFields(key, value); }

std::string EncodeBatch(const std::vector<TestRow>& rows, std::string_view idempotency_key) {
  std::string out;
  for (const TestRow& row : rows) {
    const std::string fields = RowFields(row.key, row.value);
    PutVarint(out, (1 << 3) | 2);  // an empty Row is still a row
    PutVarint(out, fields.size());
    out += fields;
  }
  PutBytesField(out, 2, idempotency_key);
  return out;
}

std::string JsonNumber(double value) {
  if (std::isnan(value)) return "\"NaN\"";
  if (std::isinf(value)) return value > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.17g", value);
  return buf;
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string InsertJson(std::string_view key, double value) {
  return "{\"partition_key\": " + JsonString(key) + ", \"value\": " + JsonNumber(value) + "}";
}

std::string BatchJson(const std::vector<TestRow>& rows, std::string_view idempotency_key) {
  std::string out = "{\"rows\": [";
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i > 0) out += ", ";
    out += InsertJson(rows[i].key, rows[i].value);
  }
  return out + "], \"idempotency_key\": " + JsonString(idempotency_key) + "}";
}

Result<HttpResponse> PostInsert(int port, std::string_view key, double value, Encoding encoding) {
  return HttpPost(port, "/insert",
                  encoding == Encoding::kJson ? InsertJson(key, value) : EncodeInsert(key, value),
                  ContentType(encoding));
}

Result<HttpResponse> PostBatch(int port, const std::vector<TestRow>& rows,
                               std::string_view idempotency_key, Encoding encoding) {
  return HttpPost(port, "/insert/batch",
                  encoding == Encoding::kJson ? BatchJson(rows, idempotency_key)
                                              : EncodeBatch(rows, idempotency_key),
                  ContentType(encoding));
}

namespace {

testing::AssertionResult IsInsertResponse(const Result<HttpResponse>& r, uint64_t rows_written,
                                          Encoding encoding) {
  if (!r.ok()) return testing::AssertionFailure() << "no answer: " << r.status().ToString();
  if (r->status != 200) return testing::AssertionFailure() << "expected 200, got " << Describe(*r);
  if (auto e = HasEncoding(*r, encoding); !e) return e << ": " << Describe(*r);
  v1::InsertResponse response;
  if (!Decode(*r, encoding, &response)) {
    return testing::AssertionFailure() << "body is not an InsertResponse: " << Describe(*r);
  }
  if (response.rows_written() != rows_written) {
    return testing::AssertionFailure()
           << "rows_written " << response.rows_written() << ", expected " << rows_written;
  }
  return testing::AssertionSuccess();
}

}  // namespace

testing::AssertionResult InsertOk(int port, std::string_view key, double value, Encoding encoding) {
  return IsInsertResponse(PostInsert(port, key, value, encoding), 1, encoding)
         << " (insert of key '" << key << "' value " << value << ")";
}

testing::AssertionResult BatchOk(int port, const std::vector<TestRow>& rows,
                                 std::string_view idempotency_key, uint64_t rows_written,
                                 Encoding encoding) {
  return IsInsertResponse(PostBatch(port, rows, idempotency_key, encoding), rows_written, encoding)
         << " (batch of " << rows.size() << " rows, idempotency_key '" << idempotency_key << "')";
}

testing::AssertionResult IsError(const Result<HttpResponse>& r, int status,
                                 std::optional<Encoding> encoding, v1::ErrorResponse* out) {
  if (!r.ok()) return testing::AssertionFailure() << "no answer: " << r.status().ToString();
  if (r->status != status) {
    return testing::AssertionFailure() << "expected " << status << ", got " << Describe(*r);
  }
  if (!encoding) encoding = r->MediaType() == kJson ? Encoding::kJson : Encoding::kProtobuf;
  if (auto e = HasEncoding(*r, *encoding); !e) return e << ": " << Describe(*r);
  v1::ErrorResponse error;
  if (!Decode(*r, *encoding, &error)) {
    return testing::AssertionFailure() << "body is not an ErrorResponse: " << Describe(*r);
  }
  if (error.status() != static_cast<uint32_t>(status) || error.error().empty()) {
    return testing::AssertionFailure() << "ErrorResponse should say status " << status
                                       << " and a reason: " << error.ShortDebugString();
  }
  if (out != nullptr) *out = error;
  return testing::AssertionSuccess();
}

Result<Analytics> GetAnalytics(int port, std::chrono::milliseconds timeout) {
  const auto start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(HttpResponse r, HttpGet(port, "/analytics", {}, timeout));
  Analytics out;
  out.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  out.http_status = r.status;
  if (!HasEncoding(r, Encoding::kProtobuf)) {
    return Internal("/analytics answered with a non-protobuf Content-Type: " + Describe(r));
  }
  if (!out.body.ParseFromString(r.body)) {
    return Internal("/analytics body is not an AnalyticsResponse: " + Describe(r));
  }
  return out;
}

void Expected::Add(double value) {
  ++count_;
  sum_ += value;
  min_ = min_ ? std::min(*min_, value) : value;
  max_ = max_ ? std::max(*max_, value) : value;
}

void Expected::Add(const std::vector<TestRow>& rows) {
  for (const TestRow& row : rows) Add(row.value);
}

testing::AssertionResult Expected::Matches(const v1::AnalyticsResponse& got) const {
  testing::AssertionResult bad = testing::AssertionFailure();
  bool ok = got.count() == count_ && got.sum() == sum_;
  if (count_ == 0) {
    ok = ok && !got.has_average() && !got.has_min() && !got.has_max();
  } else {
    ok = ok && got.has_average() && got.average() == sum_ / static_cast<double>(count_) &&
         got.has_min() && got.min() == *min_ && got.has_max() && got.max() == *max_;
  }
  if (ok) return testing::AssertionSuccess();
  bad << "expected count " << count_ << " sum " << sum_;
  if (count_ > 0) {
    bad << " average " << sum_ / static_cast<double>(count_) << " min " << *min_ << " max "
        << *max_;
  } else {
    bad << " and no average/min/max";
  }
  return bad << "; got " << got.ShortDebugString();
}

testing::AssertionResult Completeness(const Analytics& got, int http_status, bool is_partial,
                                      uint32_t total_nodes, uint32_t responding_nodes) {
  if (got.http_status == http_status && got.body.is_partial() == is_partial &&
      got.body.total_nodes() == total_nodes && got.body.responding_nodes() == responding_nodes) {
    return testing::AssertionSuccess();
  }
  return testing::AssertionFailure()
         << "expected HTTP " << http_status << " is_partial " << is_partial << " total_nodes "
         << total_nodes << " responding_nodes " << responding_nodes << "; got HTTP "
         << got.http_status << " " << got.body.ShortDebugString();
}

std::optional<uint64_t> CurrentCount(int port) {
  Result<Analytics> a = GetAnalytics(port);
  if (!a.ok()) {
    ADD_FAILURE() << "GET /analytics: " << a.status().ToString();
    return std::nullopt;
  }
  if (a->http_status != 200 || a->body.is_partial()) {
    ADD_FAILURE() << "GET /analytics should be complete: HTTP " << a->http_status << " "
                  << a->body.ShortDebugString();
    return std::nullopt;
  }
  return a->body.count();
}

Result<google::protobuf::Struct> ParseJsonObject(std::string_view json) {
  google::protobuf::Struct object;
  const auto status = google::protobuf::util::JsonStringToMessage(std::string(json), &object);
  if (!status.ok()) {
    return InvalidArgument("not a JSON object: " + std::string(json.substr(0, 300)));
  }
  return object;
}

std::string FieldNames(const google::protobuf::Struct& object) {
  std::vector<std::string> names;
  for (const auto& [name, value] : object.fields()) names.push_back(name);
  std::sort(names.begin(), names.end());
  std::string out;
  for (const std::string& name : names) out += (out.empty() ? "" : ",") + name;
  return out;
}

}  // namespace das::it
