// Groups on a loop's one raft log (Loop::OpenLog): a group an older build kept in raft_uv's
// files of its own is imported at its open, every entry, its term and snapshot, and those files
// go; a group forgotten (its replica left the node) starts afresh.
#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include "raft/group.h"
#include "raft/loop.h"
#include "support.h"

namespace das::raft {
namespace {

// One sole voter in `dir` (its own port), and the loop it runs on.
class NodeLogGroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("das-node-log-group");
    options_.id = 1;
    options_.group_id = 7;
    options_.address = "127.0.0.1:" + std::to_string(FreePort());
    options_.data_dir = dir_ + "/replica";
    options_.voters = {{1, options_.address}};
    options_.snapshot_threshold = 16;
    options_.snapshot_trailing = 8;
  }
  void TearDown() override {
    if (group_) group_->Close();
    if (loop_) loop_->Stop();
    std::filesystem::remove_all(dir_);
  }

  // A new loop, with the node log or (`node_log` false) as an older build ran: raft_uv's files.
  void Start(bool node_log) {
    if (group_) group_->Close();
    group_.reset();
    if (loop_) loop_->Stop();
    loop_ = std::move(Loop::Start("node")).value();
    if (node_log) {
      ASSERT_TRUE(loop_->OpenLog(dir_ + "/raft-log").ok());
    }
    machine_ = std::make_unique<Recorder>();
    Result<std::unique_ptr<Group>> group = Group::Open(*loop_, options_, *machine_);
    ASSERT_TRUE(group.ok()) << group.status().ToString();
    group_ = std::move(group).value();
    ASSERT_EQ(WaitForLeader({group_.get()}), 0);
  }

  uint64_t Propose(const std::string& entry) {
    std::promise<Result<uint64_t>> done;
    group_->Propose(entry, [&done](Result<uint64_t> index) { done.set_value(std::move(index)); });
    Result<uint64_t> index = done.get_future().get();
    EXPECT_TRUE(index.ok()) << index.status().ToString();
    return index.ok() ? *index : 0;
  }

  // What the replica holds after a start: the entries replayed up to its snapshot, then those
  // applied after it, without raft's own.
  std::vector<std::string> Held() {
    std::vector<std::string> out;
    for (const Recorder::Replayed& r : machine_->replays()) out.push_back(r.entry);
    for (const auto& [index, entry] : machine_->entries()) out.push_back(entry);
    return out;
  }

  size_t FilesIn(const std::string& dir) {
    size_t n = 0;
    for (const auto& file : std::filesystem::directory_iterator(dir)) n += file.is_regular_file();
    return n;
  }

  std::string dir_;
  GroupOptions options_;
  std::unique_ptr<Loop> loop_;
  std::unique_ptr<Recorder> machine_;
  std::unique_ptr<Group> group_;
};

TEST_F(NodeLogGroupTest, AGroupKeptTheOldWayIsImportedAtItsOpen) {
  ASSERT_NO_FATAL_FAILURE(Start(false));
  uint64_t last = 0;
  for (int i = 0; i < 40; ++i) last = Propose("old-" + std::to_string(i));
  const uint64_t term = group_->Info().term;
  ASSERT_GE(group_->Info().snapshots_taken, 1u);
  group_->Close();
  group_.reset();
  ASSERT_GT(FilesIn(options_.data_dir), 0u) << "raft_uv's segments and snapshots";

  ASSERT_NO_FATAL_FAILURE(Start(true));
  // The snapshot restored, the entries the old log kept replayed, then the rest applied: the
  // last old entries are all there, in order, and the log goes on after the last index.
  ASSERT_EQ(machine_->restored().size(), 1u);
  std::vector<std::string> held = Held();
  ASSERT_GE(held.size(), 8u);
  for (size_t k = 0; k < 8; ++k) {
    EXPECT_EQ(held[held.size() - 8 + k], "old-" + std::to_string(32 + k));
  }
  EXPECT_GE(group_->Info().term, term);
  EXPECT_GT(Propose("new"), last);
  group_->Close();
  group_.reset();
  EXPECT_EQ(FilesIn(options_.data_dir), 0u) << "raft_uv's files went once imported";

  // Again: from the node log alone.
  ASSERT_NO_FATAL_FAILURE(Start(true));
  held = Held();
  ASSERT_FALSE(held.empty());
  EXPECT_EQ(held.back(), "new");
  EXPECT_EQ(held[held.size() - 2], "old-39");
}

TEST_F(NodeLogGroupTest, AForgottenGroupStartsAfresh) {
  ASSERT_NO_FATAL_FAILURE(Start(true));
  for (int i = 0; i < 5; ++i) Propose("before-" + std::to_string(i));
  group_->Close();
  group_.reset();
  ASSERT_TRUE(loop_->DropFromLog(options_.group_id).ok());
  std::filesystem::remove_all(options_.data_dir);

  // Another loop on the same log: nothing of the group is left, it is bootstrapped again.
  ASSERT_NO_FATAL_FAILURE(Start(true));
  EXPECT_TRUE(machine_->restored().empty());
  EXPECT_TRUE(machine_->replays().empty());
  const uint64_t after = Propose("after");
  EXPECT_EQ(after, group_->Info().last_index);
  EXPECT_LE(after, 3u) << "a new log: its configuration, maybe a barrier, this entry";
  for (const std::string& entry : Held()) EXPECT_EQ(entry.find("before"), std::string::npos);
}

}  // namespace
}  // namespace das::raft
