// The node store's tables (one DuckDB database per worker, every replica's rows in it) and the
// copy format that moves one replica between databases.
//
// Tables (a replica is a shard id, or kUnreplicatedReplica for the store of
// --replication-factor 1):
//   replica_rows_<replica> (partition_key, value, ingest_ts): a table of each replica's rows
//   replica_keys      (replica, key, fingerprint, rows_written, committed_at), key unique per
//                     replica
//   replica_requests  (replica, request_id, raft_index, outcomes): storage/request_window.h
//   replica_applied   (replica, applied_index): one row per replica, kept from its first open
// Why the rows in a table per replica and the rest shared with a replica column: a query, a
// copy and a removal of one replica then read or drop that replica's rows only (with one rows
// table, each shard's read filtered every row of the worker: 9.05x in-process DuckDB's time for
// a key-prefix question, 0.57x with a table per replica), at the cost of one insert per replica
// in a round; the keys, request
// ids and applied indexes are small and read only at open, so a round writes each of them
// with one statement (bench/RESULTS.md).
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

// Creates the shared tables if missing.
Status CreateStoreTables(duckdb_connection conn);
// The name of `replica`'s rows table.
std::string RowsTable(uint32_t replica);
// Creates `replica`'s rows table if missing.
Status CreateRowsTable(duckdb_connection conn, uint32_t replica);

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

// Deletes everything of `replica` (its rows table dropped), in one transaction (a replica
// removed from this worker).
Status DeleteReplica(duckdb_connection conn, uint32_t replica);

// The replicas that have an applied-index row, in ascending order.
Result<std::vector<uint32_t>> ListReplicas(duckdb_connection conn);

}  // namespace das::storage
