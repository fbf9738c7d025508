#include "storage/request_window.h"

#include <algorithm>
#include <charconv>
#include <string>
#include <utility>

namespace das::storage {
namespace {

constexpr const char* kSelect =
    "SELECT request_id, raft_index, outcomes FROM replica_requests WHERE replica = $1 AND "
    "raft_index > $2 ORDER BY raft_index";
// Ids leave the table in steps of this many entries, not one by one.
constexpr uint64_t kPruneStep = 1024;

// "code:rows" per sub-batch, separated by commas: small, and text (VARCHAR needs UTF-8).
std::string EncodeOutcomes(const std::vector<SubBatchOutcome>& outcomes) {
  std::string out;
  for (const SubBatchOutcome& outcome : outcomes) {
    if (!out.empty()) out += ',';
    out += std::to_string(static_cast<int>(outcome.code));
    out += ':';
    out += std::to_string(outcome.rows_written);
  }
  return out;
}

std::optional<std::vector<SubBatchOutcome>> DecodeOutcomes(std::string_view text) {
  std::vector<SubBatchOutcome> outcomes;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const size_t colon = item.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    int code = 0;
    uint64_t rows = 0;
    if (std::from_chars(item.data(), item.data() + colon, code).ec != std::errc() ||
        std::from_chars(item.data() + colon + 1, item.data() + item.size(), rows).ec !=
            std::errc() ||
        code < 0 || code > static_cast<int>(SubBatchOutcome::Code::kKeyConflict)) {
      return std::nullopt;
    }
    outcomes.push_back(SubBatchOutcome{static_cast<SubBatchOutcome::Code>(code), rows});
  }
  return outcomes;
}

}  // namespace

Result<std::unique_ptr<RequestWindow>> RequestWindow::Create(duckdb_connection conn,
                                                             uint32_t replica,
                                                             uint64_t applied_index,
                                                             uint64_t window, Sinks sinks) {
  std::unique_ptr<RequestWindow> requests(new RequestWindow(conn, replica, window, sinks));
  RETURN_IF_ERROR(requests->Load(applied_index));
  return requests;
}

Status RequestWindow::Reload(uint64_t applied_index) {
  {
    MutexLock lock(mu_);
    by_id_.clear();
    order_.clear();
  }
  pending_.clear();
  pending_order_.clear();
  return Load(applied_index);
}

Status RequestWindow::Load(uint64_t applied_index) {
  const uint64_t oldest = applied_index > window_ ? applied_index - window_ : 0;
  ASSIGN_OR_RETURN(duck::PreparedHandle select, duck::Prepare(conn_, kSelect));
  if (duckdb_bind_uint32(select.get(), 1, replica_) == DuckDBError ||
      duckdb_bind_uint64(select.get(), 2, oldest) == DuckDBError) {
    return duck::Error("bind the request window", "invalid parameter");
  }
  ASSIGN_OR_RETURN(duck::QueryResult result, duck::Execute(select.get(), "load request ids"));
  while (std::optional<duck::Chunk> chunk = result.NextChunk()) {
    const auto* ids = chunk->Data<uint64_t>(0);
    const auto* indexes = chunk->Data<uint64_t>(1);
    for (size_t i = 0; i < chunk->size(); ++i) {
      std::optional<std::vector<SubBatchOutcome>> outcomes = DecodeOutcomes(chunk->String(2, i));
      if (!outcomes) return Internal("replica_requests holds undecodable outcomes");
      MutexLock lock(mu_);
      by_id_[ids[i]] = Entry{indexes[i], std::move(*outcomes)};
      order_.emplace_back(indexes[i], ids[i]);
    }
  }
  pruned_below_ = oldest;
  pending_cutoff_ = oldest;
  return Status::Ok();
}

std::optional<std::vector<SubBatchOutcome>> RequestWindow::Find(uint64_t request_id,
                                                                uint64_t index) const {
  const Entry* entry = nullptr;
  if (auto it = pending_.find(request_id); it != pending_.end()) {
    entry = &it->second;
  } else if (auto it = by_id_.find(request_id); it != by_id_.end()) {
    entry = &it->second;
  }
  if (entry == nullptr || index - entry->index > window_) return std::nullopt;
  return entry->outcomes;
}

std::optional<std::vector<SubBatchOutcome>> RequestWindow::FindCommitted(uint64_t request_id,
                                                                         uint64_t index) const {
  MutexLock lock(mu_);
  auto it = by_id_.find(request_id);
  if (it == by_id_.end() || index - it->second.index > window_) return std::nullopt;
  return it->second.outcomes;
}

size_t RequestWindow::size() const {
  MutexLock lock(mu_);
  return by_id_.size();
}

Status RequestWindow::Record(uint64_t request_id, uint64_t index,
                             const std::vector<SubBatchOutcome>& outcomes) {
  sinks_.insert->Add(static_cast<uint64_t>(replica_));
  sinks_.insert->Add(request_id);
  sinks_.insert->Add(index);
  sinks_.insert->Add(EncodeOutcomes(outcomes));
  sinks_.insert->EndRow();
  pending_[request_id] = Entry{index, outcomes};
  pending_order_.emplace_back(index, request_id);
  return Prune(index);
}

Status RequestWindow::Prune(uint64_t newest_index) {
  if (newest_index < window_ || newest_index - window_ < pruned_below_ + kPruneStep) {
    return Status::Ok();
  }
  const uint64_t cutoff = newest_index - window_;
  if (cutoff <= pending_cutoff_) return Status::Ok();
  if (duckdb_bind_uint32(sinks_.delete_old, 1, replica_) == DuckDBError ||
      duckdb_bind_uint64(sinks_.delete_old, 2, cutoff) == DuckDBError) {
    return duck::Error("bind the request window cutoff", "invalid parameter");
  }
  ASSIGN_OR_RETURN(duck::QueryResult result,
                   duck::Execute(sinks_.delete_old, "forget old request ids"));
  pending_cutoff_ = cutoff;  // in memory too, once committed (Committed())
  return Status::Ok();
}

void RequestWindow::Committed() {
  MutexLock lock(mu_);
  for (auto& [id, entry] : pending_) by_id_[id] = std::move(entry);
  order_.insert(order_.end(), pending_order_.begin(), pending_order_.end());
  pending_.clear();
  pending_order_.clear();
  pruned_below_ = std::max(pruned_below_, pending_cutoff_);
  while (!order_.empty() && order_.front().first <= pruned_below_) {
    auto it = by_id_.find(order_.front().second);
    if (it != by_id_.end() && it->second.index == order_.front().first) by_id_.erase(it);
    order_.pop_front();
  }
}

void RequestWindow::RolledBack() {
  pending_.clear();
  pending_order_.clear();
  pending_cutoff_ = pruned_below_;  // a rolled-back prune left the rows in the table
}

}  // namespace das::storage
