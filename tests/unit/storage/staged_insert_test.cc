#include "storage/staged_insert.h"

#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "storage/duckdb_util.h"

namespace das::storage::duck {
namespace {

// A database file in a fresh directory, with the table the tests insert into.
class StagedInsertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = "/tmp/das_staged_insert_test_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    Result<DatabaseHandle> db = OpenDatabase(dir_ + "/t.duckdb", 1);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(db).value();
    Result<ConnectionHandle> conn = Connect(db_.get());
    ASSERT_TRUE(conn.ok());
    conn_ = std::move(conn).value();
    ASSERT_TRUE(Exec(conn_.get(),
                     "CREATE TABLE t (k VARCHAR PRIMARY KEY, d DOUBLE NOT NULL, "
                     "u UBIGINT NOT NULL, ts TIMESTAMP NOT NULL)")
                    .ok());
  }
  void TearDown() override {
    conn_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }

  Result<StagedInsert> Make() {
    return StagedInsert::Create(conn_.get(), "t",
                                {{"k", ColumnType::kVarchar},
                                 {"d", ColumnType::kDouble},
                                 {"u", ColumnType::kUBigInt},
                                 {"ts", ColumnType::kTimestamp}});
  }

  struct Row {
    std::string k;
    double d;
    uint64_t u;
    int64_t ts;
    bool operator==(const Row&) const = default;
  };

  static void Stage(StagedInsert& insert, const Row& row) {
    insert.Add(row.k);
    insert.Add(row.d);
    insert.Add(row.u);
    insert.AddTimestamp(row.ts);
    insert.EndRow();
  }

  std::vector<Row> ReadAll() {
    std::vector<Row> rows;
    Result<QueryResult> result =
        Query(conn_.get(), "SELECT k, d, u, epoch_us(ts) FROM t ORDER BY u");
    EXPECT_TRUE(result.ok()) << result.status().ToString();
    if (!result.ok()) return rows;
    while (std::optional<Chunk> chunk = result->NextChunk()) {
      for (size_t r = 0; r < chunk->size(); ++r) {
        rows.push_back(Row{std::string(chunk->String(0, r)), chunk->Data<double>(1)[r],
                           chunk->Data<uint64_t>(2)[r], chunk->Data<int64_t>(3)[r]});
      }
    }
    return rows;
  }

  std::string dir_;
  DatabaseHandle db_;
  ConnectionHandle conn_;
};

TEST_F(StagedInsertTest, InsertsEveryStagedRowExactlyInItsTransaction) {
  Result<StagedInsert> insert = Make();
  ASSERT_TRUE(insert.ok()) << insert.status().ToString();
  // More rows than one DuckDB vector holds (2,048), strings short enough to be inlined in
  // DuckDB's string_t and longer ones, an empty string, multi-byte UTF-8, and the extremes of
  // every numeric column.
  std::vector<Row> expected;
  for (uint64_t i = 0; i < 5000; ++i) {
    std::string key = "key-" + std::to_string(i);
    if (i % 3 == 0) key += std::string(40, 'x');
    expected.push_back(Row{key, static_cast<double>(i) * 0.5 - 7, i, 1'700'000'000'000'000 + 1});
  }
  expected.push_back(Row{"", -0.0, 5000, 0});
  expected.push_back(Row{"ключ 🔑", std::numeric_limits<double>::max(), 5001, -1});
  expected.push_back(
      Row{"z", std::numeric_limits<double>::lowest(), std::numeric_limits<uint64_t>::max(), 1});

  ASSERT_TRUE(Exec(conn_.get(), "BEGIN TRANSACTION").ok());
  for (const Row& row : expected) Stage(*insert, row);
  EXPECT_EQ(insert->rows(), expected.size());
  ASSERT_TRUE(insert->Flush().ok());
  EXPECT_EQ(insert->rows(), 0u);
  ASSERT_TRUE(Exec(conn_.get(), "ROLLBACK").ok());
  EXPECT_TRUE(ReadAll().empty()) << "the rows belong to the transaction they were flushed in";

  ASSERT_TRUE(Exec(conn_.get(), "BEGIN TRANSACTION").ok());
  for (const Row& row : expected) Stage(*insert, row);
  ASSERT_TRUE(insert->Flush().ok());
  ASSERT_TRUE(Exec(conn_.get(), "COMMIT").ok());
  EXPECT_EQ(ReadAll(), expected);

  // A flush larger than the buffers a StagedInsert keeps, then a small one after it.
  std::vector<Row> more;
  for (uint64_t i = 0; i < 20000; ++i)
    more.push_back(Row{"big-" + std::to_string(i), 1, 6000 + i, 2});
  more.push_back(Row{"after", 2, 26000, 3});
  for (size_t i = 0; i + 1 < more.size(); ++i) Stage(*insert, more[i]);
  ASSERT_TRUE(insert->Flush().ok());
  Stage(*insert, more.back());
  ASSERT_TRUE(insert->Flush().ok());
  expected.insert(expected.end() - 1, more.begin(), more.end());  // before u = 2^64 - 1
  EXPECT_EQ(ReadAll(), expected);
}

TEST_F(StagedInsertTest, AFailedFlushForgetsItsRowsAndTheNextFlushWorks) {
  Result<StagedInsert> insert = Make();
  ASSERT_TRUE(insert.ok());
  Stage(*insert, Row{"a", 1, 1, 1});
  ASSERT_TRUE(insert->Flush().ok());  // autocommitted

  ASSERT_TRUE(Exec(conn_.get(), "BEGIN TRANSACTION").ok());
  Stage(*insert, Row{"b", 2, 2, 2});
  Stage(*insert, Row{"a", 3, 3, 3});  // the primary key again
  Status flushed = insert->Flush();
  EXPECT_FALSE(flushed.ok());
  EXPECT_NE(flushed.ToString().find("insert into t"), std::string::npos) << flushed.ToString();
  EXPECT_EQ(insert->rows(), 0u);
  ASSERT_TRUE(Exec(conn_.get(), "ROLLBACK").ok());

  Stage(*insert, Row{"c", 4, 4, 4});
  insert->Clear();
  EXPECT_EQ(insert->rows(), 0u);
  EXPECT_TRUE(insert->Flush().ok()) << "nothing staged: nothing to insert";
  Stage(*insert, Row{"d", 5, 5, 5});
  ASSERT_TRUE(insert->Flush().ok());
  EXPECT_EQ(ReadAll(), (std::vector<Row>{{"a", 1, 1, 1}, {"d", 5, 5, 5}}));
}

TEST_F(StagedInsertTest, TwoInsertsIntoOneTableOfOneDatabaseStayApart) {
  Result<StagedInsert> first = Make();
  Result<StagedInsert> second = Make();  // a name of its own for its table function
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  Stage(*first, Row{"a", 1, 1, 1});
  Stage(*second, Row{"b", 2, 2, 2});
  ASSERT_TRUE(second->Flush().ok());
  EXPECT_EQ(first->rows(), 1u);
  ASSERT_TRUE(first->Flush().ok());
  EXPECT_EQ(ReadAll(), (std::vector<Row>{{"a", 1, 1, 1}, {"b", 2, 2, 2}}));
}

}  // namespace
}  // namespace das::storage::duck
