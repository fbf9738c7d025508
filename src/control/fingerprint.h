// The fingerprint of a whole client batch (common/fingerprint.h over its rows in order), sent
// with every part of a batch that has an idempotency key.
// Thread-safety: a free function without shared state.
#pragma once

#include <cstdint>

#include "das/v1/internal.pb.h"

namespace das::control {

// REQUIRES: every row has a value (the batch was validated).
uint64_t BatchFingerprint(const internal::v1::InsertBatchWire& batch);

}  // namespace das::control
