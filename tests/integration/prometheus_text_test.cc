// The strict exposition parser the metrics tests rely on (support/prometheus_text.h): what it
// accepts and, above all, what it refuses, so that a malformed /metrics cannot pass.
#include "support/prometheus_text.h"

#include <gtest/gtest.h>

namespace das::it {
namespace {

TEST(MetricsTextTest, ParsesFamiliesLabelsHistogramsAndEscapes) {
  Result<MetricsText> text = MetricsText::Parse(
      "# HELP a_total Things \\\\ counted\n"
      "# TYPE a_total counter\n"
      "a_total{route=\"/x\",code=\"200\"} 3\n"
      "a_total{route=\"say \\\"hi\\\"\\n\",code=\"404\"} 1 1700000000000\n"
      "# TYPE h histogram\n"
      "h_count{route=\"/x\"} 2\n"
      "h_sum{route=\"/x\"} 0.5\n"
      "h_bucket{route=\"/x\",le=\"0.1\"} 1\n"
      "h_bucket{route=\"/x\",le=\"+Inf\"} 2\n"
      "g -1.5e-3\n");
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_EQ(text->Find("a_total")->type, "counter");
  EXPECT_EQ(text->Find("a_total")->help, "Things \\ counted");
  EXPECT_EQ(text->Value("a_total", {{"code", "200"}}), 3);
  EXPECT_EQ(text->Value("a_total", {{"route", "say \"hi\"\n"}}), 1);
  EXPECT_EQ(text->Sum("a_total"), 4);
  EXPECT_EQ(text->Find("h")->samples.size(), 4u);
  EXPECT_EQ(text->Value("g"), -1.5e-3);
  EXPECT_EQ(text->Value("a_total"), std::nullopt);  // two match
}

TEST(MetricsTextTest, RefusesWhatTheFormatForbids) {
  const char* bad[] = {
      "a 1",                                        // no final newline
      "1a 1\n",                                     // bad name
      "a{b=\"c\" 1\n",                              // unterminated label set
      "a{b=c} 1\n",                                 // unquoted label value
      "a{b=\"\\x\"} 1\n",                           // bad escape
      "a{b=\"1\",b=\"2\"} 1\n",                     // label twice
      "a one\n",                                    // bad value
      "a 1 12x\n",                                  // bad timestamp
      "a 1\na 2\n",                                 // series twice
      "a 1\nb 1\na{x=\"1\"} 1\n",                   // not contiguous
      "# TYPE a counter\n# TYPE a counter\na 1\n",  // TYPE twice
      "a 1\n# TYPE a counter\n",                    // TYPE after samples
      "# TYPE a counter\na -1\n",                   // negative counter
      "# TYPE a histogram\na_sum 1\na_count 1\n",   // no +Inf bucket
      "# TYPE a histogram\na_bucket{le=\"+Inf\"} 2\na_sum 1\na_count 1\n",  // count differs
      "# TYPE a histogram\na_bucket{le=\"1\"} 2\na_bucket{le=\"+Inf\"} 1\na_sum 1\na_count 1\n",
      "# TYPE a gauge_ish\na 1\n",  // unknown type
  };
  for (const char* text : bad) {
    EXPECT_FALSE(MetricsText::Parse(text).ok()) << "accepted:\n" << text;
  }
}

}  // namespace
}  // namespace das::it
