#include "replica/entry_decider.h"

#include <optional>

namespace das::replica {

using Code = storage::SubBatchOutcome::Code;

std::vector<storage::SubBatchOutcome> EntryDecider::Decide(
    uint64_t index, uint64_t request_id, int64_t ingest_us,
    const std::vector<storage::SubBatch>& batches) {
  if (request_id != 0) {
    {
      MutexLock lock(mu_);
      auto it = requests_.find(request_id);
      if (it != requests_.end() && index - it->second.index <= store_.request_window()) {
        return it->second.outcomes;
      }
    }
    if (std::optional<std::vector<storage::SubBatchOutcome>> first =
            store_.FindRequest(request_id, index)) {
      return *first;
    }
  }
  std::vector<storage::SubBatchOutcome> outcomes;
  outcomes.reserve(batches.size());
  for (const storage::SubBatch& batch : batches)
    outcomes.push_back(DecideOne(index, ingest_us, batch));
  if (request_id != 0) {
    MutexLock lock(mu_);
    requests_[request_id] = PendingRequest{outcomes, index};
    request_order_.emplace_back(index, request_id);
  }
  return outcomes;
}

storage::SubBatchOutcome EntryDecider::DecideOne(uint64_t index, int64_t ingest_us,
                                                 const storage::SubBatch& batch) {
  const uint64_t rows = batch.rows.size();
  if (batch.idempotency_key.empty()) return {Code::kOk, batch.check_only ? 0 : rows};
  std::optional<storage::KeyRecord> earlier = FindKey(batch.idempotency_key);
  // Expired at this entry's time: forgotten, as the store forgets it before storing it again.
  if (earlier && earlier->committed_at_us < ingest_us - store_.key_retention_us()) {
    earlier.reset();
  }
  if (earlier) {
    if (earlier->fingerprint != batch.fingerprint) return {Code::kKeyConflict, 0};
    return {Code::kDuplicate, earlier->rows_written};
  }
  if (batch.check_only) return {Code::kOk, 0};
  MutexLock lock(mu_);
  keys_[batch.idempotency_key] =
      PendingKey{storage::KeyRecord{batch.fingerprint, rows, ingest_us}, index};
  key_order_.emplace_back(index, batch.idempotency_key);
  return {Code::kOk, rows};
}

std::optional<storage::KeyRecord> EntryDecider::FindKey(const std::string& key) {
  {
    MutexLock lock(mu_);
    auto it = keys_.find(key);
    if (it != keys_.end()) return it->second.record;
  }
  // Not pending: committed, if anywhere (the store indexes a key before the overlay drops it).
  return store_.FindKey(key);
}

void EntryDecider::Committed(uint64_t index) {
  MutexLock lock(mu_);
  while (!key_order_.empty() && key_order_.front().first <= index) {
    auto it = keys_.find(key_order_.front().second);
    if (it != keys_.end() && it->second.index == key_order_.front().first) keys_.erase(it);
    key_order_.pop_front();
  }
  while (!request_order_.empty() && request_order_.front().first <= index) {
    auto it = requests_.find(request_order_.front().second);
    if (it != requests_.end() && it->second.index == request_order_.front().first) {
      requests_.erase(it);
    }
    request_order_.pop_front();
  }
}

}  // namespace das::replica
