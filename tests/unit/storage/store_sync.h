// Blocking helpers over a Store's callbacks, for tests.
#pragma once

#include <future>

#include <gtest/gtest.h>

#include "storage/store.h"

namespace das::storage {

// The aggregate of a scan of the store's rows (Store::ScanAggregate), waited for.
inline Aggregate ScanSync(Store& store) {
  std::promise<Result<Aggregate>> done;
  auto result = done.get_future();
  store.ScanAggregate([&done](Result<Aggregate> r) { done.set_value(std::move(r)); });
  Result<Aggregate> aggregate = result.get();
  EXPECT_TRUE(aggregate.ok()) << aggregate.status().ToString();
  return aggregate.ok() ? *aggregate : Aggregate{};
}

}  // namespace das::storage
