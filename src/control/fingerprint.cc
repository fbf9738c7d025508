#include "control/fingerprint.h"

#include "common/fingerprint.h"

namespace das::control {

uint64_t BatchFingerprint(const internal::v1::InsertBatchWire& batch) {
  Fingerprinter fingerprinter;
  for (const internal::v1::RowWire& row : batch.rows()) {
    fingerprinter.Add(row.partition_key(), row.value());
  }
  return fingerprinter.Finish();
}

}  // namespace das::control
