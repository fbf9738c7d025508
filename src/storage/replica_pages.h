// One replica's rows and keys read a page at a time, on a reader's connection: how a worker's
// unreplicated store is handed to the shards of a replicated cluster (worker/legacy_export.h).
// Rows come in row-id order: the store they are read from takes no more writes then, so a page
// that starts at a row id holds the same rows however often it is read.
#pragma once

#include <duckdb.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace das::storage {

struct PagedRow {
  std::string partition_key;
  double value = 0;
  int64_t ingest_us = 0;  // microseconds since the Unix epoch
};

struct RowsPage {
  std::vector<PagedRow> rows;
  uint64_t next = 0;  // the first row id after the page
  bool done = false;  // no row at or after `next`
  uint64_t total = 0;
};

struct PagedKey {
  std::string key;
  uint64_t fingerprint = 0;
};

struct KeysPage {
  std::vector<PagedKey> keys;
  uint64_t next = 0;  // the keys read so far, this page's included
  bool done = false;
  uint64_t total = 0;
};

// Up to `limit` rows of `replica` from row id `from`, and up to `max_bytes` of keys.
Result<RowsPage> ReadRowsPage(duckdb_connection conn, uint32_t replica, uint64_t from,
                              uint32_t limit, size_t max_bytes);
// Up to `limit` keys of `replica` after the first `from` (in key order), at most `max_bytes`.
Result<KeysPage> ReadKeysPage(duckdb_connection conn, uint32_t replica, uint64_t from,
                              uint32_t limit, size_t max_bytes);

}  // namespace das::storage
