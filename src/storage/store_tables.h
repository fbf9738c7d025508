// The node store's tables (one DuckDB database per worker, every replica's rows in it) and the
// copy format that moves one replica between databases.
//
// Tables, each with the replica a row belongs to (a shard id; kUnreplicatedReplica for the
// store of --replication-factor 1):
//   replica_rows      (replica, partition_key, value, ingest_ts)
//   replica_keys      (replica, key, fingerprint, rows_written, committed_at), key unique per
//                     replica
//   replica_requests  (replica, request_id, raft_index, outcomes): storage/request_window.h
//   replica_applied   (replica, applied_index): one row per replica, kept from its first open
// Why one table with a replica column and not a table per replica: a round of the applier
// touching 16 replicas is then a constant few statements, not one per replica (DuckDB binds and
// plans every statement anew: bench/RESULTS.md, "One store per worker").
//
// A copy is a DuckDB file of its own holding one replica's tables without the replica column
// (rows, idempotency_keys, raft_requests, raft_applied): the layout a replica's file had before
// the node store, so a copy, an old worker's file and a migration are one format.
//
// Every function runs on the connection it is given, on the caller's thread.
#pragma once

#include <duckdb.h>

#include <cstdint>
#include <string>

#include "common/status.h"
#include "storage/store.h"

namespace das::storage {

// Creates the tables if missing.
Status CreateStoreTables(duckdb_connection conn);

// The applied index of `replica` (0: none): the larger of replica_applied's and its newest
// recorded request id's (a transaction whose last entry records its id stores no other).
Result<uint64_t> ReadAppliedIndex(duckdb_connection conn, uint32_t replica);

// Every value of `replica`'s rows, added exactly in C++ (DuckDB's own sums round, and overflow
// to NaN on 3 x 1e308): what its running aggregate starts from. applied_index is left 0.
Result<Aggregate> ScanReplica(duckdb_connection conn, uint32_t replica);

// Writes a copy of `replica` to a new DuckDB file at `path` in one read transaction (the
// applier goes on meanwhile: DuckDB MVCC), checkpointed so that the file alone is the copy.
// Returns the copy's applied index.
Result<uint64_t> ExportReplica(duckdb_connection conn, uint32_t replica, const std::string& path);

// Replaces every row, key, request id and applied index of `replica` by those of the copy at
// `path`, in one transaction. kUnavailable when the copy's applied index is below `min_index`
// (nothing changes then). Returns the copy's applied index.
Result<uint64_t> ImportReplica(duckdb_connection conn, uint32_t replica, const std::string& path,
                               uint64_t min_index);

// Deletes everything of `replica`, in one transaction (a replica removed from this worker).
Status DeleteReplica(duckdb_connection conn, uint32_t replica);

// The replicas that have an applied-index row, in ascending order.
Result<std::vector<uint32_t>> ListReplicas(duckdb_connection conn);

}  // namespace das::storage
