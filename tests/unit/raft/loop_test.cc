#include "raft/loop.h"

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace das::raft {
namespace {

TEST(LoopTest, PostedClosuresRunOnTheLoopThreadInOrder) {
  Result<std::unique_ptr<Loop>> loop = Loop::Start("test");
  ASSERT_TRUE(loop.ok()) << loop.status().ToString();
  std::vector<int> seen;  // touched on the loop thread only
  bool on_loop = true;
  for (int i = 0; i < 1000; ++i) {
    (*loop)->Post([&, i] {
      on_loop = on_loop && (*loop)->InLoopThread();
      seen.push_back(i);
    });
  }
  (*loop)->RunSync([] {});
  ASSERT_EQ(seen.size(), 1000u);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(seen[i], i);
  EXPECT_TRUE(on_loop);
  EXPECT_FALSE((*loop)->InLoopThread());
  (*loop)->Stop();
  (*loop)->Stop();  // harmless
}

TEST(LoopTest, PostFromManyThreadsRunsEveryClosure) {
  Result<std::unique_ptr<Loop>> loop = Loop::Start("test");
  ASSERT_TRUE(loop.ok());
  std::atomic<int> ran{0};
  std::vector<std::thread> posters;
  for (int t = 0; t < 4; ++t) {
    posters.emplace_back([&] {
      for (int i = 0; i < 500; ++i) (*loop)->Post([&] { ++ran; });
    });
  }
  for (auto& t : posters) t.join();
  (*loop)->RunSync([] {});
  EXPECT_EQ(ran.load(), 2000);
}

// After Stop(), work is refused (and says so), never silently queued forever.
TEST(LoopTest, PostAfterStopIsRefused) {
  Result<std::unique_ptr<Loop>> loop = Loop::Start("test");
  ASSERT_TRUE(loop.ok());
  (*loop)->Stop();
  bool ran = false;
  EXPECT_FALSE((*loop)->Post([&] { ran = true; }));
  EXPECT_FALSE((*loop)->RunSync([&] { ran = true; }));
  EXPECT_FALSE(ran);
}

}  // namespace
}  // namespace das::raft
