// SplitBatch: rows moved, not copied, into their destinations' parts, in order, with the key.
#include "control/batch_split.h"

#include <gtest/gtest.h>

namespace das::control {
namespace {

internal::v1::InsertBatchWire* BatchOf(google::protobuf::Arena& arena, int rows,
                                       const std::string& key) {
  auto* batch = google::protobuf::Arena::CreateMessage<internal::v1::InsertBatchWire>(&arena);
  for (int i = 0; i < rows; ++i) {
    internal::v1::RowWire* row = batch->add_rows();
    row->set_partition_key("key-" + std::to_string(i));
    row->set_value(i);
  }
  batch->set_idempotency_key(key);
  return batch;
}

TEST(SplitBatchTest, MovesEveryRowToItsDestinationInOrderWithoutCopying) {
  std::shared_ptr<google::protobuf::Arena> arena = BatchArena(1000);
  internal::v1::InsertBatchWire* batch = BatchOf(*arena, 5, "");
  std::vector<const internal::v1::RowWire*> made;
  for (const internal::v1::RowWire& row : batch->rows()) made.push_back(&row);

  std::map<uint32_t, internal::v1::SubBatch*> parts = SplitBatch(*batch, 0, {7, 3, 7, 7, 3}, {1});
  EXPECT_EQ(batch->rows_size(), 0);
  ASSERT_EQ(parts.size(), 2u);  // no key: no part without rows
  const internal::v1::SubBatch& to7 = *parts.at(7);
  const internal::v1::SubBatch& to3 = *parts.at(3);
  ASSERT_EQ(to7.rows_size(), 3);
  ASSERT_EQ(to3.rows_size(), 2);
  EXPECT_EQ(&to7.rows(0), made[0]);
  EXPECT_EQ(&to7.rows(1), made[2]);
  EXPECT_EQ(&to7.rows(2), made[3]);
  EXPECT_EQ(&to3.rows(0), made[1]);
  EXPECT_EQ(&to3.rows(1), made[4]);
  EXPECT_EQ(to3.rows(1).partition_key(), "key-4");
  EXPECT_EQ(to3.rows(1).value(), 4);
  EXPECT_EQ(to7.GetArena(), arena.get());
  EXPECT_TRUE(to7.idempotency_key().empty());
}

TEST(SplitBatchTest, AKeyGoesWithEveryPartAndToItsDestinationsWithoutRows) {
  google::protobuf::Arena arena;
  internal::v1::InsertBatchWire* batch = BatchOf(arena, 2, "batch-9");
  std::map<uint32_t, internal::v1::SubBatch*> parts = SplitBatch(*batch, 42, {1, 1}, {1, 2, 5});
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts.at(1)->rows_size(), 2);
  EXPECT_EQ(parts.at(2)->rows_size(), 0);
  EXPECT_EQ(parts.at(5)->rows_size(), 0);
  for (const auto& [id, part] : parts) {
    EXPECT_EQ(part->idempotency_key(), "batch-9") << id;
    EXPECT_EQ(part->batch_fingerprint(), 42u) << id;
  }
}

TEST(SplitBatchTest, AnEmptyBatchHasNoParts) {
  google::protobuf::Arena arena;
  internal::v1::InsertBatchWire* batch = BatchOf(arena, 0, "");
  EXPECT_TRUE(SplitBatch(*batch, 0, {}, {}).empty());
}

}  // namespace
}  // namespace das::control
