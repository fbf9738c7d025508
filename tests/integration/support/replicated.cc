#include "support/replicated.h"

#include <thread>
#include <vector>

namespace das::it {

using Clock = std::chrono::steady_clock;

testing::AssertionResult WriteEveryShard(int port, int shards, const std::string& round,
                                         double value, Expected& expected) {
  const std::vector<std::string> keys = KeyPerShard(shards, "shard-" + round);
  const auto deadline = Clock::now() + kRecoveryBound;
  for (int s = 0; s < shards; ++s) {
    const std::vector<TestRow> rows = {{keys[s], value + s}};
    const std::string key = "every-" + round + "-" + std::to_string(s);
    std::string last;
    for (;;) {
      Result<HttpResponse> r = PostBatch(port, rows, key);
      if (r.ok() && r->status == 200) break;
      last =
          r.ok() ? std::to_string(r->status) + " " + r->body.substr(0, 200) : r.status().ToString();
      if (Clock::now() > deadline) {
        return testing::AssertionFailure() << "shard " << s << " took no write: " << last;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    expected.Add(rows);
  }
  return testing::AssertionSuccess();
}

testing::AssertionResult ExpectCompleteAndExact(int port, const Expected& expected,
                                                uint32_t total_nodes) {
  const auto deadline = Clock::now() + kRecoveryBound;
  std::string last;
  while (Clock::now() < deadline) {
    Result<Analytics> a = GetAnalytics(port);
    if (a.ok() && a->http_status == 200 && !a->body.is_partial()) {
      if (a->body.total_nodes() != total_nodes) {
        return testing::AssertionFailure() << "total_nodes " << a->body.ShortDebugString();
      }
      return expected.Matches(a->body);
    }
    last = a.ok() ? a->body.ShortDebugString() : a.status().ToString();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return testing::AssertionFailure() << "no complete answer in time; last: " << last;
}

}  // namespace das::it
