// The disk under a worker's data directory: its free space, the reserve the node store keeps
// (storage/node_store.h, the disk guard), and a ballast file (CockroachDB's): space held in a
// file of its own, given up by a start on a full disk so that the store and raft can open.
// Thread-safety: plain functions, safe from any thread.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace das::storage {

struct DiskSize {
  uint64_t free_bytes = 0;   // for an unprivileged writer
  uint64_t total_bytes = 0;  // of the filesystem
};

Result<DiskSize> MeasureDisk(const std::string& dir);

// The reserve when none is configured: a quarter of the filesystem, at most 256 MiB (a small
// disk, a test's tmpfs, still gets most of itself to use).
uint64_t DefaultDiskReserve(uint64_t total_bytes);

// DuckDB's checkpoint threshold that keeps a checkpoint within the reserve: a quarter of it, at
// most DuckDB's default of 16 MiB (0: that default).
uint64_t CheckpointThresholdFor(uint64_t reserve_bytes);

// The ballast of a reserve: half of it, at most 32 MiB.
uint64_t BallastFor(uint64_t reserve_bytes);

// At start, before the store or raft open anything in `dir`: with less than `bytes` free, the
// ballast file (if any) goes, and a line says so; with room for it above the reserve, it is
// made (or kept). Errors are logged, never fatal.
void KeepBallast(const std::string& dir, uint64_t bytes, uint64_t reserve_bytes);

// Makes the ballast again once the disk has room for it above the reserve (the disk guard
// calls it when room comes back).
void RestoreBallast(const std::string& dir, uint64_t bytes, uint64_t reserve_bytes);

}  // namespace das::storage
