// The fingerprint of a batch of rows, stored with its idempotency key so that a retry is told
// apart from a reuse of the key with other rows.
//
// XXH3 (seed 0) of the rows' canonical serialization, in order: for each row, the key's length
// as a little-endian uint32, the key's bytes, and the value's IEEE-754 bits as a little-endian
// uint64 (so 0.0 and -0.0 differ). Stored on disk with each key: it must never change.
// Thread-safety: a value type; not synchronized.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace das {

class Fingerprinter {
 public:
  void Add(std::string_view partition_key, double value);
  uint64_t Finish() const;

 private:
  std::string buffer_;
};

}  // namespace das
