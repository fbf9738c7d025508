// The web console at GET / (README, "Web console") in headless Chromium (Debian's `chromium`),
// against a real cluster: the page's workers and shards tables must show what /health says, it
// must fit a phone-sized viewport, and a screenshot is saved (DAS_CONSOLE_SCREENSHOT: also
// copied there, for the README). Without Chromium the test fails: scripts/setup.sh installs it.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <locale>
#include <sstream>
#include <string>
#include <vector>

#include "support/api.h"
#include "support/cluster.h"
#include "support/http_client.h"
#include "support/process.h"

namespace das::it {
namespace {

std::string ChromiumBinary() {
  const char* env = std::getenv("DAS_CHROMIUM");
  return env != nullptr ? env : "/usr/bin/chromium";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// 1234567 -> "1,234,567", as the page's toLocaleString('en-US') writes it.
std::string WithCommas(uint64_t n) {
  std::string digits = std::to_string(n);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(i, ",");
  return digits;
}

class ConsoleTest : public ClusterTest {
 protected:
  // Runs Chromium headless on the console with `mode` ({"--dump-dom"} or {"--screenshot=..."})
  // at a window of `width` x `height`; returns what it wrote (the DOM, for --dump-dom).
  std::string RunChromium(const std::vector<std::string>& mode, int width, int height) {
    const std::string log = cluster_.dir() + "/chromium-" + std::to_string(++runs_) + ".out";
    std::vector<std::string> args = {
        "--headless",
        "--no-sandbox",  // as root (CI, containers)
        "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--user-data-dir=" + cluster_.dir() + "/chromium-profile",
        "--window-size=" + std::to_string(width) + "," + std::to_string(height),
        // The page's own polling runs on virtual time; network fetches hold it, so the budget
        // ends only after the page's requests were answered and drawn.
        "--virtual-time-budget=6000"};
    args.insert(args.end(), mode.begin(), mode.end());
    args.push_back("http://127.0.0.1:" + std::to_string(port()) + "/");
    std::string error;
    std::unique_ptr<Process> chromium = Process::Start(ChromiumBinary(), args, log, &error);
    EXPECT_NE(chromium, nullptr) << error;
    if (!chromium) return {};
    std::optional<int> status = chromium->Wait(std::chrono::seconds(90));
    EXPECT_TRUE(status.has_value()) << "chromium did not finish: " << ReadFile(log);
    EXPECT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << ReadFile(log);
    return ReadFile(log);
  }

  // The DOM once the workers table is filled (Chromium run again until it is, at most 10 times).
  std::string ReadyDom(int width, int height) {
    std::string dom;
    for (int attempt = 0; attempt < 10; ++attempt) {
      dom = RunChromium({"--dump-dom"}, width, height);
      if (dom.find("id=\"workers\" data-ready=\"true\"") != std::string::npos) return dom;
    }
    ADD_FAILURE() << "the workers table never filled:\n" << dom;
    return dom;
  }

  v1::HealthResponse Health() {
    Result<HttpResponse> response = HttpGet(port(), "/health?format=json");
    EXPECT_TRUE(response.ok() && response->status == 200);
    v1::HealthResponse health;
    if (response.ok()) {
      EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(response->body, &health).ok());
    }
    return health;
  }

  int runs_ = 0;
};

TEST_F(ConsoleTest, ThePageShowsEveryWorkerAndShardAsHealthSaysAndFitsAPhone) {
  ASSERT_TRUE(std::filesystem::exists(ChromiumBinary()))
      << ChromiumBinary() << " is missing: scripts/setup.sh installs Debian's chromium";
  ASSERT_TRUE(cluster_.Start());
  std::vector<TestRow> rows;
  for (int i = 0; i < 300; ++i) rows.push_back({"console-" + std::to_string(i), 1.5});
  ASSERT_TRUE(BatchOk(port(), rows, "", 300));
  ASSERT_TRUE(cluster_.WaitClusterOk());
  // Until every replica holds every row, so that the rows the page shows are settled.
  ASSERT_TRUE(cluster_.PollControlHealth(
      std::chrono::seconds(60),
      [](const v1::HealthResponse& h) {
        for (const v1::WorkerStatus& w : h.workers()) {
          if (w.rows() != 300) return false;
        }
        return h.status() == "ok";
      },
      "every worker holds 300 rows"));

  // The page is served with a policy that keeps it to this origin.
  Result<HttpResponse> page = HttpGet(port(), "/");
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->Header("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(page->Header("content-security-policy").find("default-src 'none'"), std::string::npos);
  EXPECT_EQ(page->body.find("http://"), std::string::npos) << "the page loads nothing elsewhere";
  EXPECT_EQ(page->body.find("https://"), std::string::npos);
  Result<HttpResponse> script = HttpGet(port(), "/console/console.js");
  ASSERT_TRUE(script.ok());
  EXPECT_EQ(script->MediaType(), "text/javascript");

  // The page against /health as it was before and after Chromium read it, the same both times
  // (else, as when a leadership change came in between, it is read again).
  std::string dom;
  v1::HealthResponse health;
  for (int attempt = 0; attempt < 5; ++attempt) {
    const v1::HealthResponse before = Health();
    dom = ReadyDom(1280, 800);
    health = Health();
    if (before.SerializeAsString() == health.SerializeAsString()) break;
  }
  ASSERT_EQ(health.status(), "ok");
  EXPECT_NE(dom.find("<body data-status=\"ok\""), std::string::npos);
  EXPECT_NE(dom.find("id=\"workers\" data-ready=\"true\" data-count=\"" +
                     std::to_string(health.workers_size()) + "\""),
            std::string::npos)
      << dom;
  for (const v1::WorkerStatus& w : health.workers()) {
    const std::string row = "<tr data-worker-id=\"" + std::to_string(w.worker_id()) +
                            "\"><td class=\"id\">" + std::to_string(w.worker_id()) +
                            "</td><td class=\"address\">" + w.address() +
                            "</td><td class=\"state up\">up</td><td class=\"num rows\">" +
                            WithCommas(w.rows()) + "</td><td class=\"num clock\">";
    EXPECT_NE(dom.find(row), std::string::npos) << row << "\nnot in\n" << dom;
  }
  EXPECT_NE(dom.find("id=\"shards\" data-ready=\"true\" data-count=\"" +
                     std::to_string(health.shards_size()) + "\""),
            std::string::npos);
  for (const v1::ShardStatus& s : health.shards()) {
    const std::string row = "<tr data-shard=\"" + std::to_string(s.shard()) + "\">";
    const size_t at = dom.find(row);
    ASSERT_NE(at, std::string::npos) << row;
    const std::string leader = "<td class=\"leader\">" + s.leader() + "</td>";
    EXPECT_EQ(dom.find(leader, at), dom.find("<td class=\"leader\">", at)) << "shard " << s.shard();
  }
  EXPECT_NE(dom.find("workers up</span><span id=\"workers-up\" class=\"value\">2 / 2</span>"),
            std::string::npos);

  // A phone-sized viewport: nothing wider than the screen.
  const std::string phone = ReadyDom(390, 844);
  EXPECT_NE(phone.find("data-fits=\"true\""), std::string::npos) << phone;

  const std::string shot = cluster_.dir() + "/console.png";
  RunChromium({"--screenshot=" + shot}, 1280, 800);
  const std::string png = ReadFile(shot);
  ASSERT_GT(png.size(), 1000u);
  EXPECT_EQ(png.substr(1, 3), "PNG");
  if (const char* copy = std::getenv("DAS_CONSOLE_SCREENSHOT")) {
    std::filesystem::copy_file(shot, copy, std::filesystem::copy_options::overwrite_existing);
  }
}

}  // namespace
}  // namespace das::it
