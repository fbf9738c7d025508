#include "control/batch_split.h"

#include "rpc/arena.h"

namespace das::control {

using internal::v1::RowWire;
using internal::v1::SubBatch;

std::shared_ptr<google::protobuf::Arena> BatchArena(size_t body_bytes) {
  return std::make_shared<google::protobuf::Arena>(rpc::DecodeArena(body_bytes));
}

std::map<uint32_t, SubBatch*> SplitBatch(internal::v1::InsertBatchWire& batch, uint64_t fingerprint,
                                         const std::vector<uint32_t>& destinations,
                                         const std::vector<uint32_t>& keyed_without_rows) {
  google::protobuf::Arena* arena = batch.GetArena();
  std::map<uint32_t, size_t> counts;
  for (uint32_t id : destinations) ++counts[id];
  if (!batch.idempotency_key().empty()) {
    for (uint32_t id : keyed_without_rows) counts.emplace(id, 0);
  }
  std::map<uint32_t, SubBatch*> parts;
  for (const auto& [id, count] : counts) {
    SubBatch* part = google::protobuf::Arena::CreateMessage<SubBatch>(arena);
    part->mutable_rows()->Reserve(static_cast<int>(count));
    if (!batch.idempotency_key().empty()) {
      part->set_idempotency_key(batch.idempotency_key());
      part->set_batch_fingerprint(fingerprint);
    }
    parts.emplace(id, part);
  }
  // The rows stay where the arena made them; only their pointers move.
  std::vector<RowWire*> rows(static_cast<size_t>(batch.rows_size()));
  batch.mutable_rows()->UnsafeArenaExtractSubrange(0, batch.rows_size(), rows.data());
  for (size_t i = 0; i < rows.size(); ++i) {
    parts.at(destinations[i])->mutable_rows()->UnsafeArenaAddAllocated(rows[i]);
  }
  return parts;
}

}  // namespace das::control
