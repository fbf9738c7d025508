#include "control/insert_api.h"

#include <algorithm>

#include "control/batch_split.h"
#include "control/codec.h"
#include "control/fingerprint.h"
#include "control/gather.h"
#include "das/v1/das.pb.h"
#include "das/v1/internal.pb.h"
#include "rpc/status_wire.h"

namespace das::control {

namespace asio = boost::asio;
using internal::v1::SubBatch;
using internal::v1::SubBatchResult;

namespace {

// What one shard's answer to a sub-batch means for the client.
struct PartAnswer {
  bool stored = false;  // OK or DUPLICATE: the rows are in the shard
  uint64_t rows = 0;
  ApiError error;
  bool duplicate = false;  // DUPLICATE: stored before, by the batch this one repeats
};

// A part the shard could not take is a 503 whatever the reason (the client may retry); one it
// refused for what it is answers with its code's status (rpc::FromWire, ApiErrorOf).
PartAnswer Interpret(const Result<SubBatchResult>& result, const std::string& shard) {
  if (!result.ok()) {
    return {false, 0,
            ApiError{503, shard + " cannot take the insert: " + result.status().ToString()}};
  }
  Result<rpc::SubBatchStored> part = rpc::FromWire(*result);
  if (part.ok()) return {true, part->rows, {}, part->duplicate};
  ApiError refused = ApiErrorOf(part.status());
  // Refused before anything else of a keyed batch was sent (the key's home shard decides
  // first), or a row the control node's own checks let through.
  refused.message = part.status().code() == StatusCode::kAlreadyExists
                        ? refused.message + "; nothing of this batch was stored"
                        : shard + " rejected rows: " + refused.message;
  return {false, 0, std::move(refused)};
}

// The shard of each row of `batch`, in order.
std::vector<uint32_t> RowShards(const internal::v1::InsertBatchWire& batch,
                                const Replication& replication) {
  std::vector<uint32_t> shards;
  shards.reserve(static_cast<size_t>(batch.rows_size()));
  for (const internal::v1::RowWire& row : batch.rows()) {
    shards.push_back(replication.ShardOf(row.partition_key()));
  }
  return shards;
}

}  // namespace

InsertApi::InsertApi(asio::any_io_executor executor, InsertApiOptions options,
                     Replication& replication)
    : executor_(std::move(executor)), options_(std::move(options)), replication_(replication) {
  for (uint32_t s = 0; s < replication_.shards(); ++s) {
    ShardWriterOptions writer_options;
    writer_options.max_inflight = options_.max_inflight_per_worker;
    writer_options.deadline = options_.deadline;
    writer_options.clock = options_.clock;
    writer_options.shard = s;
    writer_options.cluster_clock = options_.cluster_clock;
    writers_.push_back(
        std::make_unique<ShardWriter>(executor_, replication_.LeaderOf(s), writer_options));
  }
}

asio::awaitable<Result<SubBatchResult>> InsertApi::Write(uint32_t shard, SubBatch part) {
  return writers_.at(shard)->Write(std::move(part));
}

// While the cluster cannot take inserts (LegacyImport), they answer 503 once found valid: a
// retried batch from before the import could be stored again before its key is.
std::optional<ApiError> InsertApi::Held() const {
  if (!options_.held) return std::nullopt;
  if (std::optional<std::string> pending = options_.held()) {
    return ApiError{503, "the cluster is starting: " + *pending};
  }
  return std::nullopt;
}

asio::awaitable<http::Response> InsertApi::Insert(http::Request request) {
  Decoded<Encoding> body = BodyEncoding(request);
  if (auto* e = std::get_if<ApiError>(&body)) co_return EncodeError(*e, ErrorEncoding(request));
  Encoding answer = AnswerEncoding(request, std::get<Encoding>(body));
  Decoded<internal::v1::RowWire> row = DecodeInsert(request, std::get<Encoding>(body));
  if (auto* e = std::get_if<ApiError>(&row)) co_return EncodeError(*e, answer);

  if (std::optional<ApiError> held = Held()) co_return EncodeError(*held, answer);
  auto& decoded = std::get<internal::v1::RowWire>(row);
  const uint32_t shard = replication_.ShardOf(decoded.partition_key());
  SubBatch part;
  *part.add_rows() = std::move(decoded);
  asio::awaitable<Result<SubBatchResult>> write = writers_[shard]->Write(std::move(part));
  Result<SubBatchResult> written = co_await std::move(write);
  PartAnswer result = Interpret(written, replication_.LeaderOf(shard).peer());
  if (!result.stored) co_return EncodeError(result.error, answer);
  das::v1::InsertResponse response;
  response.set_rows_written(result.rows);
  CountIngest(request, result.duplicate ? 0 : result.rows, result.duplicate ? result.rows : 0);
  co_return Encode(200, response, answer);
}

// Writes `parts` (each on its shard's writer, all at once) and adds what they came to to
// `outcome`: the first error is kept, a 422 before any other.
asio::awaitable<void> InsertApi::WriteParts(Parts parts,
                                            const std::shared_ptr<google::protobuf::Arena>& arena,
                                            PartsOutcome& outcome) {
  std::vector<asio::awaitable<Result<SubBatchResult>>> writes;
  for (const auto& [shard, part] : parts) {
    writes.push_back(writers_[shard]->Write(std::shared_ptr<const SubBatch>(arena, part)));
  }
  asio::awaitable<std::vector<Result<SubBatchResult>>> gather_writes =
      GatherAll<SubBatchResult>(executor_, std::move(writes));
  std::vector<Result<SubBatchResult>> results = co_await std::move(gather_writes);
  for (size_t i = 0; i < results.size(); ++i) {
    PartAnswer part = Interpret(results[i], replication_.LeaderOf(parts[i].first).peer());
    // A duplicate repeats the first batch's rows (the same fingerprint): its part stored
    // these rows then (a key imported from an unreplicated store records none, LegacyImport).
    if (part.duplicate) part.rows = static_cast<uint64_t>(parts[i].second->rows_size());
    if (part.stored) {
      outcome.rows += part.rows;
      if (part.duplicate) outcome.duplicate_rows += part.rows;
    } else if (!outcome.error || part.error.status == 422) {
      outcome.error = part.error;
    }
  }
}

// A keyed batch's parts. The key's home shard decides the key first, in the order of its log,
// as it stores its part (first stores, the same rows again are a duplicate, other rows a
// 422); the other parts are written only once it stored or found a duplicate. A shard that
// never saw the key cannot refuse a reuse itself (the first batch may have had no rows
// there), so without the home shard's word first a reuse could be stored there; and two
// concurrent batches with one key and other rows are decided at the home shard, one of them
// stored. A batch whose rows all fall in the home shard is one part: one raft round trip.
asio::awaitable<InsertApi::PartsOutcome> InsertApi::WriteKeyed(
    std::map<uint32_t, SubBatch*> parts, uint32_t home,
    const std::shared_ptr<google::protobuf::Arena>& arena) {
  PartsOutcome outcome;
  auto home_part = parts.extract(home);
  asio::awaitable<void> decided = WriteParts({{home, home_part.mapped()}}, arena, outcome);
  co_await std::move(decided);
  if (outcome.error) {
    if (outcome.error->status != 422) {
      outcome.error->message +=
          "; it decides this idempotency_key: nothing else of this batch was sent";
    }
    co_return outcome;
  }
  if (parts.empty()) co_return outcome;  // every row in the home shard: one round trip
  asio::awaitable<void> rest = WriteParts(Parts(parts.begin(), parts.end()), arena, outcome);
  co_await std::move(rest);
  co_return outcome;
}

asio::awaitable<http::Response> InsertApi::InsertBatch(http::Request request) {
  Decoded<Encoding> body = BodyEncoding(request);
  if (auto* e = std::get_if<ApiError>(&body)) co_return EncodeError(*e, ErrorEncoding(request));
  Encoding answer = AnswerEncoding(request, std::get<Encoding>(body));
  // The batch, its rows and its parts live on one arena, freed when the last part's write is
  // answered: no row is copied or freed one by one between the client and the workers.
  std::shared_ptr<google::protobuf::Arena> arena = BatchArena(request.body.size());
  Decoded<internal::v1::InsertBatchWire*> decoded =
      DecodeBatch(request, std::get<Encoding>(body), *arena);
  if (auto* e = std::get_if<ApiError>(&decoded)) co_return EncodeError(*e, answer);

  if (std::optional<ApiError> held = Held()) co_return EncodeError(*held, answer);
  internal::v1::InsertBatchWire& batch = *std::get<internal::v1::InsertBatchWire*>(decoded);
  const bool keyed = !batch.idempotency_key().empty();
  const uint64_t fingerprint = keyed ? BatchFingerprint(batch) : 0;
  // A keyed batch's key goes to its home shard (the shard of the key itself) even without
  // rows there: that shard decides it.
  const uint32_t home = keyed ? replication_.ShardOf(batch.idempotency_key()) : 0;
  std::map<uint32_t, SubBatch*> parts =
      SplitBatch(batch, fingerprint, RowShards(batch, replication_),
                 keyed ? std::vector<uint32_t>{home} : std::vector<uint32_t>{});
  PartsOutcome outcome;
  if (keyed) {
    asio::awaitable<PartsOutcome> written = WriteKeyed(std::move(parts), home, arena);
    outcome = co_await std::move(written);
  } else {
    asio::awaitable<void> written = WriteParts(Parts(parts.begin(), parts.end()), arena, outcome);
    co_await std::move(written);
  }
  if (outcome.error) co_return EncodeError(*outcome.error, answer, outcome.rows);
  das::v1::InsertResponse response;
  response.set_rows_written(outcome.rows);
  CountIngest(request, outcome.rows - outcome.duplicate_rows, outcome.duplicate_rows);
  co_return Encode(200, response, answer);
}

void InsertApi::AddMetrics(metrics::Registry& registry) {
  const std::string rows_help =
      "Rows of inserts answered 200: stored, or (duplicate) stored before by the batch a "
      "retry repeats";
  ingest_.stored = &registry.Counter("das_ingest_rows_total", rows_help, {{"outcome", "stored"}});
  ingest_.duplicate =
      &registry.Counter("das_ingest_rows_total", rows_help, {{"outcome", "duplicate"}});
  ingest_.bytes = &registry.Counter("das_ingest_bytes_total", "Body bytes of inserts answered 200");
}

metrics::ScrapedFamily InsertApi::QueueDepths() const {
  metrics::ScrapedFamily queues;
  queues.name = "das_insert_queue_depth";
  queues.help = "Rows' sub-batches waiting for or in an internal write, by shard";
  for (size_t s = 0; s < writers_.size(); ++s) {
    queues.samples.push_back(
        {{{"shard", std::to_string(s)}}, static_cast<double>(writers_[s]->queue_depth())});
  }
  return queues;
}

void InsertApi::CountIngest(const http::Request& request, uint64_t stored, uint64_t duplicate) {
  if (ingest_.stored == nullptr) return;
  ingest_.stored->Increment(static_cast<double>(stored));
  ingest_.duplicate->Increment(static_cast<double>(duplicate));
  ingest_.bytes->Increment(static_cast<double>(request.body.size()));
}

bool InsertApi::Stop(std::chrono::milliseconds wait) {
  const auto until = std::chrono::steady_clock::now() + wait;
  bool idle = true;
  for (const std::unique_ptr<ShardWriter>& writer : writers_) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    idle = writer->Stop(std::max(left, std::chrono::milliseconds(0))) && idle;
  }
  return idle;
}

}  // namespace das::control
