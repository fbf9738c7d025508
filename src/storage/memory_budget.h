// The memory a worker's database may use: DuckDB's memory_limit (its buffer pool: cached blocks
// of the file, the hash tables and sorts of a scan; spilled to <store>.duckdb.tmp beyond it) is
// set for the node's one database, from --duckdb-memory-mb or, by default, from the machine.
// Thread-safety: plain functions, safe from any thread.
#pragma once

#include <cstdint>

namespace das::storage {

// The memory this process may have: the machine's, or its cgroup's limit when lower (a
// container's; cgroup v2 `memory.max`, else v1 `memory.limit_in_bytes`). 0 when unknown.
uint64_t MachineMemoryBytes();

// DuckDB's limit when none is configured: a quarter of `machine_bytes` (a worker shares its
// machine with the raft logs, the HTTP buffers, and often a second worker), at least 128 MiB;
// 0 (DuckDB's own default, 80 % of the machine) when the machine's memory is unknown.
uint64_t DefaultDuckdbMemory(uint64_t machine_bytes);

}  // namespace das::storage
