// The node log (src/raft/internal/node_log.h) on real files: what is flushed is replayed at the
// next open as it was written (entries, truncations, terms, votes, snapshots, drops, imports);
// a write a crash cut short is cut off; segments go once no group keeps their entries, an idle
// group's entries moved forward first; a failed flush is written again by the next.
#include "raft/internal/node_log.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

class NodeLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("node-log-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "log").string();
  }
  void TearDown() override {
    if (log_ != nullptr) das_nlog_close(log_);
    fs::remove_all(dir_);
  }

  void Open(size_t segment_bytes = 0) {
    if (log_ != nullptr) das_nlog_close(log_);
    log_ = nullptr;
    char errmsg[DAS_NLOG_ERRMSG] = {0};
    ASSERT_EQ(das_nlog_open(path_.c_str(), segment_bytes, &log_, errmsg), 0) << errmsg;
  }
  void Sync() {
    char errmsg[DAS_NLOG_ERRMSG] = {0};
    ASSERT_EQ(das_nlog_sync(log_, errmsg), 0) << errmsg;
  }

  // Appends entries first..first+n-1 of `group`, each "<group>:<index>:<tag>" in term `term`.
  void Append(uint64_t group, uint64_t first, uint64_t n, uint64_t term, const std::string& tag,
              size_t pad = 0) {
    std::vector<std::string> data;
    std::vector<das_nlog_entry> entries;
    for (uint64_t i = 0; i < n; ++i) {
      data.push_back(std::to_string(group) + ":" + std::to_string(first + i) + ":" + tag +
                     std::string(pad, 'x'));
    }
    for (const std::string& d : data) entries.push_back({term, 1, d.data(), d.size()});
    ASSERT_NE(das_nlog_entries(log_, group, first, entries.data(), entries.size()), 0u);
  }

  std::string Read(uint64_t group, uint64_t index) {
    das_nlog_entry info{};
    if (das_nlog_entry_info(log_, group, index, &info) != 0) return "<none>";
    std::string out(info.len, '\0');
    if (das_nlog_read(log_, group, index, out.data()) != 0) return "<unreadable>";
    return out.substr(0, out.find('x'));
  }

  das_nlog_group Get(uint64_t group) {
    das_nlog_group state{};
    das_nlog_get(log_, group, &state);
    return state;
  }

  std::vector<fs::path> Segments() {
    std::vector<fs::path> out;
    for (const auto& entry : fs::directory_iterator(path_)) out.push_back(entry.path());
    std::sort(out.begin(), out.end());
    return out;
  }

  fs::path dir_;
  std::string path_;
  das_nlog* log_ = nullptr;
};

TEST_F(NodeLogTest, WhatIsFlushedIsReplayedAtTheNextOpen) {
  Open();
  ASSERT_NE(das_nlog_term(log_, 7, 3), 0u);
  ASSERT_NE(das_nlog_vote(log_, 7, 2), 0u);
  Append(7, 1, 5, 3, "a");
  Append(9, 1, 2, 1, "b");
  Sync();
  EXPECT_EQ(das_nlog_durable(log_), das_nlog_truncate(log_, 7, 6) - 32);  // a no-op record
  Sync();
  Open();
  das_nlog_group seven = Get(7);
  EXPECT_TRUE(seven.known);
  EXPECT_EQ(seven.term, 3u);
  EXPECT_EQ(seven.vote, 2u);
  EXPECT_EQ(seven.first_index, 1u);
  EXPECT_EQ(seven.n_entries, 5u);
  EXPECT_EQ(Read(7, 1), "7:1:a");
  EXPECT_EQ(Read(7, 5), "7:5:a");
  EXPECT_EQ(Read(9, 2), "9:2:b");
  EXPECT_FALSE(Get(8).known);
  // A new term has no vote yet.
  ASSERT_NE(das_nlog_term(log_, 7, 4), 0u);
  EXPECT_EQ(Get(7).vote, 0u);
}

TEST_F(NodeLogTest, AppendsReplaceWhatFollowsAndTruncationsDrop) {
  Open();
  Append(1, 1, 6, 1, "old");
  ASSERT_NE(das_nlog_truncate(log_, 1, 5), 0u);
  Append(1, 5, 1, 2, "new");    // entries 5 and 6 were dropped, 5 written again
  Append(1, 4, 2, 3, "newer");  // 4 and 5 replaced, nothing after
  Sync();
  Open();
  EXPECT_EQ(Get(1).n_entries, 5u);
  EXPECT_EQ(Read(1, 3), "1:3:old");
  EXPECT_EQ(Read(1, 4), "1:4:newer");
  EXPECT_EQ(Read(1, 5), "1:5:newer");
  EXPECT_EQ(Read(1, 6), "<none>");
}

TEST_F(NodeLogTest, ASnapshotKeepsItsTrailingEntriesAndAnInstalledOneNone) {
  Open();
  Append(1, 1, 100, 1, "e");
  const std::string blob = "manifest";
  ASSERT_NE(das_nlog_snapshot(log_, 1, 90, 1, 20, blob.data(), blob.size()), 0u);
  Append(2, 1, 10, 1, "e");
  ASSERT_NE(das_nlog_snapshot(log_, 2, 50, 4, 0, blob.data(), blob.size()), 0u);
  Append(2, 51, 1, 4, "after");
  Sync();
  Open();
  das_nlog_group one = Get(1);
  EXPECT_EQ(one.snapshot_index, 90u);
  EXPECT_EQ(std::string(static_cast<const char*>(one.snapshot), one.snapshot_len), blob);
  EXPECT_EQ(one.first_index, 71u);  // 90 - 20 + 1
  EXPECT_EQ(one.n_entries, 30u);
  EXPECT_EQ(Read(1, 71), "1:71:e");
  das_nlog_group two = Get(2);
  EXPECT_EQ(two.snapshot_term, 4u);
  EXPECT_EQ(two.first_index, 51u);
  EXPECT_EQ(two.n_entries, 1u);
  EXPECT_EQ(Read(2, 51), "2:51:after");
}

TEST_F(NodeLogTest, ADroppedGroupIsForgottenAndMayStartAgain) {
  Open();
  Append(3, 1, 4, 2, "gone");
  ASSERT_NE(das_nlog_drop(log_, 3), 0u);
  EXPECT_FALSE(Get(3).known);
  Sync();
  Open();
  EXPECT_FALSE(Get(3).known);
  Append(3, 1, 1, 1, "again");
  Sync();
  Open();
  EXPECT_EQ(Get(3).n_entries, 1u);
  EXPECT_EQ(Read(3, 1), "3:1:again");
}

TEST_F(NodeLogTest, AnImportIsAGroupsWholeState) {
  Open();
  das_nlog_group state{};
  state.term = 8;
  state.vote = 2;
  state.snapshot_index = 40;
  state.snapshot_term = 7;
  state.snapshot = "snap";
  state.snapshot_len = 4;
  state.first_index = 31;
  const std::string a = "31", b = "32";
  const das_nlog_entry entries[] = {{7, 1, a.data(), a.size()}, {8, 1, b.data(), b.size()}};
  ASSERT_NE(das_nlog_import(log_, 5, &state, entries, 2), 0u);
  Sync();
  Open();
  const das_nlog_group back = Get(5);
  EXPECT_EQ(back.term, 8u);
  EXPECT_EQ(back.vote, 2u);
  EXPECT_EQ(back.snapshot_index, 40u);
  EXPECT_EQ(back.first_index, 31u);
  EXPECT_EQ(back.n_entries, 2u);
  das_nlog_entry info{};
  ASSERT_EQ(das_nlog_entry_info(log_, 5, 32, &info), 0);
  EXPECT_EQ(info.term, 8u);
}

TEST_F(NodeLogTest, AWriteACrashCutShortIsCutOff) {
  Open();
  Append(1, 1, 3, 1, "kept");
  Sync();
  das_nlog_close(log_);
  log_ = nullptr;
  // The next record's first bytes, as a crash in its write would leave them.
  const fs::path segment = Segments().back();
  std::vector<char> bytes(fs::file_size(segment));
  std::ifstream(segment, std::ios::binary).read(bytes.data(), bytes.size());
  size_t end = bytes.size();
  while (end > 0 && bytes[end - 1] == 0) --end;
  end = (end + 7) & ~size_t{7};
  std::fstream out(segment, std::ios::binary | std::ios::in | std::ios::out);
  out.seekp(static_cast<std::streamoff>(end));
  out.write("\x11\x22\x33\x44\x40\x00\x00\x00\x01\x00", 10);
  out.close();
  Open();
  EXPECT_EQ(Get(1).n_entries, 3u);
  Append(1, 4, 1, 1, "after");
  Sync();
  Open();
  EXPECT_EQ(Get(1).n_entries, 4u);
  EXPECT_EQ(Read(1, 4), "1:4:after");
}

TEST_F(NodeLogTest, ACorruptSegmentBeforeTheLastIsRefused) {
  Open(4096);
  for (uint64_t i = 1; i <= 40; ++i) Append(1, i, 1, 1, "e", 200);
  Sync();
  ASSERT_GE(das_nlog_segments(log_), 2u);
  das_nlog_close(log_);
  log_ = nullptr;
  const fs::path first = Segments().front();
  std::fstream out(first, std::ios::binary | std::ios::in | std::ios::out);
  out.seekp(40);
  out.write("garbage!", 8);
  out.close();
  char errmsg[DAS_NLOG_ERRMSG] = {0};
  EXPECT_NE(das_nlog_open(path_.c_str(), 4096, &log_, errmsg), 0);
  EXPECT_NE(std::string(errmsg).find("corrupt"), std::string::npos) << errmsg;
  log_ = nullptr;
}

TEST_F(NodeLogTest, SegmentsGoOnceNoGroupKeepsTheirEntries) {
  Open(4096);
  const std::string blob = "s";
  // Group 2 writes once and then nothing: its entries move forward instead of keeping the
  // oldest segment (and every later one).
  Append(2, 1, 2, 1, "idle");
  Sync();
  for (uint64_t i = 1; i <= 400; ++i) {
    Append(1, i, 1, 1, "busy", 200);
    if (i % 10 == 0) {
      ASSERT_NE(das_nlog_snapshot(log_, 1, i, 1, 5, blob.data(), 1), 0u);
    }
    Sync();
  }
  EXPECT_LE(das_nlog_segments(log_), 4u);
  EXPECT_LE(Segments().size(), 4u);
  Open(4096);
  EXPECT_EQ(Get(1).first_index, 396u);
  EXPECT_EQ(Read(1, 400), "1:400:busy");
  EXPECT_EQ(Get(2).n_entries, 2u);
  EXPECT_EQ(Read(2, 1), "2:1:idle");
  EXPECT_EQ(Read(2, 2), "2:2:idle");
}

// A segment goes only once the records that make it useless (here a snapshot) are durable: not
// when a flush that began before them ends, nor when the flush that holds them fails.
TEST_F(NodeLogTest, ASegmentGoesOnlyOnceWhatMakesItUselessIsDurable) {
  Open(4096);
  for (uint64_t i = 1; i <= 40; ++i) Append(1, i, 1, 1, "e", 200);
  Sync();
  const size_t before = das_nlog_segments(log_);
  ASSERT_GE(before, 3u);
  Append(1, 41, 1, 1, "e");
  das_nlog_flush* first = das_nlog_flush_begin(log_);
  ASSERT_NE(first, nullptr);
  const std::string blob = "s";
  ASSERT_NE(das_nlog_snapshot(log_, 1, 41, 1, 1, blob.data(), 1), 0u);  // entry 41 kept alone
  char errmsg[DAS_NLOG_ERRMSG] = {0};
  das_nlog_flush_end(log_, first, das_nlog_flush_write(first, errmsg));
  EXPECT_EQ(das_nlog_segments(log_), before) << "decided before the snapshot was written";
  das_nlog_flush* second = das_nlog_flush_begin(log_);
  ASSERT_NE(second, nullptr);
  das_nlog_flush_end(log_, second, -EIO);
  EXPECT_EQ(das_nlog_segments(log_), before) << "the snapshot is not durable";
  Sync();
  EXPECT_LT(das_nlog_segments(log_), before);
  Sync();  // the files go with the next flush
  EXPECT_EQ(Segments().size(), das_nlog_segments(log_));
  Open(4096);
  EXPECT_EQ(Get(1).first_index, 41u);
  EXPECT_EQ(Read(1, 41), "1:41:e");
}

TEST_F(NodeLogTest, AFailedFlushIsWrittenAgainByTheNext) {
  Open();
  Append(1, 1, 2, 1, "first");
  das_nlog_flush* flush = das_nlog_flush_begin(log_);
  ASSERT_NE(flush, nullptr);
  Append(1, 3, 1, 1, "meanwhile");
  EXPECT_EQ(Read(1, 1), "1:1:first");        // read from the flush's own bytes
  das_nlog_flush_end(log_, flush, -ENOSPC);  // as if the disk were full
  EXPECT_TRUE(das_nlog_pending(log_));
  Sync();
  Open();
  EXPECT_EQ(Get(1).n_entries, 3u);
  EXPECT_EQ(Read(1, 1), "1:1:first");
  EXPECT_EQ(Read(1, 3), "1:3:meanwhile");
}

}  // namespace
