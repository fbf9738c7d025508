// LegacyExport: the worker's unreplicated store (rows stored by --replication-factor 1, or a
// worker.duckdb from before the node store), handed a page at a time to the control node of a
// replicated cluster that this worker is now part of, which writes them into the shards
// (control/legacy_import.h). Pages are handed out only once the worker holds a topology
// (before, they answer `waiting` with the store's totals, so that a worker that kept nothing
// holds nothing up). Once the control node says every
// page is in the shards (legacy/done), a marker file in the data directory makes every later
// page empty and the next start delete the store (DropIfImported), so its rows are counted
// once, in the shards, across any crash.
// Thread-safety: the handlers may run concurrently; reads run on the store's reader threads.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "common/status.h"
#include "http/message.h"
#include "http/router.h"
#include "storage/node_store.h"
#include "storage/store.h"

namespace das::worker {

class LegacyExport {
 public:
  // `store` (the unreplicated one; null: the worker kept none, and every page is empty and
  // done) outlives this; `replicated` says whether the worker holds a topology now.
  LegacyExport(storage::Store* store, std::string data_dir, std::function<bool()> replicated);

  // Adds the routes rpc::kLegacyRowsPath, kLegacyKeysPath and kLegacyDonePath.
  void Register(http::Router& router);

  // At start, before the unreplicated store opens: deletes it if a finished import left the
  // marker, then the marker (in that order: a crash in between deletes it again).
  static Status DropIfImported(storage::NodeStore& node_store, const std::string& data_dir);

 private:
  boost::asio::awaitable<http::Response> Rows(http::Request request);
  boost::asio::awaitable<http::Response> Keys(http::Request request);
  boost::asio::awaitable<http::Response> Done();

  storage::Store* const store_;
  const std::string marker_;
  const std::function<bool()> replicated_;
  std::atomic<bool> imported_;
};

}  // namespace das::worker
