// EntryDecider: decides each committed raft entry's outcome on the raft loop, in the order of
// the log (docs/architecture.md, "keys in log order"): an internal retry of a request id within
// the request window gets the first entry's outcomes; a sub-batch whose idempotency key was
// stored by an earlier entry (and has not expired at this entry's ingest time) is a duplicate
// (same fingerprint) or a conflict (another); any other stores its rows. So an entry with a key
// is answered at commit like one without, not after its store applied it; the store then
// stores exactly what was decided (ReplicatedEntry::decided).
//
// It decides from the store's committed keys and request ids plus an overlay of what it
// decided for entries the store has not committed yet; Committed(index) drops the overlay's
// part that the store now holds (the store moves a key into its index before it calls back,
// so a key is always in one of the two). Every replica applies the same log from the same
// state, so every replica decides alike; a restart starts from the store, and the log's
// entries after the store's applied index are decided again, in order, as before.
//
// Thread-safety: Decide on the raft loop thread (entries in increasing index order);
// Committed from the store's callback thread.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/mutex.h"
#include "storage/store.h"

namespace das::replica {

class EntryDecider {
 public:
  // `store` (not owned) outlives the decider.
  explicit EntryDecider(const storage::Store& store) : store_(store) {}
  EntryDecider(const EntryDecider&) = delete;
  EntryDecider& operator=(const EntryDecider&) = delete;

  // The outcome of each of `batches`, entry `index` with request id `request_id` (0: none)
  // and the ingest time its leader fixed. REQUIRES: `index` above the store's applied index
  // and every entry before it decided here, or applied by the store.
  std::vector<storage::SubBatchOutcome> Decide(uint64_t index, uint64_t request_id,
                                               int64_t ingest_us,
                                               const std::vector<storage::SubBatch>& batches);
  // The store committed every entry up to `index`.
  void Committed(uint64_t index);

 private:
  struct PendingKey {
    storage::KeyRecord record;
    uint64_t index = 0;  // the entry that stored it
  };
  struct PendingRequest {
    std::vector<storage::SubBatchOutcome> outcomes;
    uint64_t index = 0;
  };
  storage::SubBatchOutcome DecideOne(uint64_t index, int64_t ingest_us,
                                     const storage::SubBatch& batch);
  std::optional<storage::KeyRecord> FindKey(const std::string& key);

  const storage::Store& store_;
  Mutex mu_;
  std::unordered_map<std::string, PendingKey> keys_ GUARDED_BY(mu_);
  std::unordered_map<uint64_t, PendingRequest> requests_ GUARDED_BY(mu_);
  std::deque<std::pair<uint64_t, std::string>> key_order_ GUARDED_BY(mu_);
  std::deque<std::pair<uint64_t, uint64_t>> request_order_ GUARDED_BY(mu_);
};

}  // namespace das::replica
