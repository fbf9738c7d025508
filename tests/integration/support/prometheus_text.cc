#include "support/prometheus_text.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <set>
#include <utility>

namespace das::it {
namespace {

bool NameStart(char c, bool colon) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}
bool NameChar(char c, bool colon) { return NameStart(c, colon) || (c >= '0' && c <= '9'); }

// Reads a metric name (colon: true) or label name at `pos`.
std::optional<std::string> ReadName(std::string_view line, size_t& pos, bool colon) {
  const size_t start = pos;
  if (pos >= line.size() || !NameStart(line[pos], colon)) return std::nullopt;
  while (pos < line.size() && NameChar(line[pos], colon)) ++pos;
  return std::string(line.substr(start, pos - start));
}

std::optional<double> ParseValue(std::string_view text) {
  if (text == "+Inf" || text == "Inf") return HUGE_VAL;
  if (text == "-Inf") return -HUGE_VAL;
  if (text == "NaN") return std::nan("");
  if (text.empty()) return std::nullopt;
  const std::string copy(text);
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size() || errno == ERANGE) return std::nullopt;
  // strtod also takes "inf", "nan" and hex floats, which the format does not.
  for (char c : copy) {
    if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')) {
      return std::nullopt;
    }
  }
  return value;
}

// The family a sample name belongs to, given the families typed so far: x_bucket, x_sum and
// x_count belong to histogram x (and x_sum, x_count to summary x).
std::string FamilyOf(const std::string& name, const std::map<std::string, MetricFamily>& typed) {
  for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (name.size() > suffix.size() && name.ends_with(suffix)) {
      const std::string base = name.substr(0, name.size() - suffix.size());
      auto it = typed.find(base);
      if (it != typed.end() && (it->second.type == "histogram" ||
                                (it->second.type == "summary" && suffix != "_bucket"))) {
        return base;
      }
    }
  }
  return name;
}

Status LineError(size_t number, const std::string& why) {
  return InvalidArgument("line " + std::to_string(number) + ": " + why);
}

Result<MetricSample> ParseSample(std::string_view line, size_t number) {
  MetricSample sample;
  size_t pos = 0;
  std::optional<std::string> name = ReadName(line, pos, true);
  if (!name) return LineError(number, "bad metric name");
  sample.name = *name;
  if (pos < line.size() && line[pos] == '{') {
    ++pos;
    while (pos < line.size() && line[pos] != '}') {
      std::optional<std::string> label = ReadName(line, pos, false);
      if (!label) return LineError(number, "bad label name");
      if (pos + 1 >= line.size() || line[pos] != '=' || line[pos + 1] != '"') {
        return LineError(number, "label " + *label + " is not followed by =\"");
      }
      pos += 2;
      std::string value;
      bool closed = false;
      while (pos < line.size()) {
        const char c = line[pos++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c == '\\') {
          if (pos >= line.size()) break;
          const char e = line[pos++];
          if (e == 'n') {
            value += '\n';
          } else if (e == '\\' || e == '"') {
            value += e;
          } else {
            return LineError(number, "bad escape in label " + *label);
          }
        } else {
          value += c;
        }
      }
      if (!closed) return LineError(number, "unterminated value of label " + *label);
      if (!sample.labels.emplace(*label, value).second) {
        return LineError(number, "label " + *label + " given twice");
      }
      if (pos < line.size() && line[pos] == ',') ++pos;
    }
    if (pos >= line.size()) return LineError(number, "unterminated label set");
    ++pos;  // '}'
  }
  if (pos >= line.size() || line[pos] != ' ') return LineError(number, "no value");
  while (pos < line.size() && line[pos] == ' ') ++pos;
  const std::string_view rest = line.substr(pos);
  const size_t space = rest.find(' ');
  std::optional<double> value = ParseValue(rest.substr(0, space));
  if (!value) return LineError(number, "bad value '" + std::string(rest.substr(0, space)) + "'");
  sample.value = *value;
  if (space != std::string_view::npos) {
    const std::string_view timestamp = rest.substr(space + 1);
    if (timestamp.empty() || timestamp.find_first_not_of("-0123456789") != std::string::npos) {
      return LineError(number, "bad timestamp");
    }
  }
  return sample;
}

Status CheckHistogram(const MetricFamily& family) {
  // Group the samples by their labels other than le.
  struct Series {
    std::vector<std::pair<double, double>> buckets;  // (le, cumulative count)
    std::optional<double> sum, count;
  };
  std::map<MetricLabels, Series> series;
  for (const MetricSample& sample : family.samples) {
    MetricLabels labels = sample.labels;
    if (sample.name == family.name + "_bucket") {
      auto le = labels.find("le");
      if (le == labels.end()) return InvalidArgument(family.name + ": a bucket without le");
      std::optional<double> bound = ParseValue(le->second);
      if (!bound) return InvalidArgument(family.name + ": bad le '" + le->second + "'");
      labels.erase(le);
      series[labels].buckets.emplace_back(*bound, sample.value);
    } else if (sample.name == family.name + "_sum") {
      series[labels].sum = sample.value;
    } else if (sample.name == family.name + "_count") {
      series[labels].count = sample.value;
    } else {
      return InvalidArgument(family.name + ": sample " + sample.name + " in a histogram");
    }
  }
  for (const auto& [labels, s] : series) {
    if (!s.sum || !s.count) return InvalidArgument(family.name + ": no _sum or _count");
    if (s.buckets.empty() || !std::isinf(s.buckets.back().first)) {
      return InvalidArgument(family.name + ": no +Inf bucket last");
    }
    for (size_t i = 1; i < s.buckets.size(); ++i) {
      if (!(s.buckets[i].first > s.buckets[i - 1].first) ||
          s.buckets[i].second < s.buckets[i - 1].second) {
        return InvalidArgument(family.name + ": buckets not increasing and cumulative");
      }
    }
    if (s.buckets.back().second != *s.count) {
      return InvalidArgument(family.name + ": the +Inf bucket is not the count");
    }
  }
  return Status::Ok();
}

bool Includes(const MetricLabels& labels, const MetricLabels& wanted) {
  for (const auto& [name, value] : wanted) {
    auto it = labels.find(name);
    if (it == labels.end() || it->second != value) return false;
  }
  return true;
}

}  // namespace

Result<MetricsText> MetricsText::Parse(std::string_view text) {
  MetricsText out;
  std::set<std::string> finished;  // families whose samples ended
  std::set<std::string> typed;     // families with a TYPE line
  std::set<std::pair<std::string, MetricLabels>> series;
  std::string current;  // the family of the previous sample
  size_t number = 0;
  if (!text.empty() && !text.ends_with('\n')) return InvalidArgument("no final newline");
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    const std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol + 1);
    ++number;
    if (line.empty()) continue;
    if (line.front() == '#') {
      const bool help = line.starts_with("# HELP ");
      const bool type = line.starts_with("# TYPE ");
      if (!help && !type) continue;  // a comment
      size_t pos = 7;
      std::optional<std::string> name = ReadName(line, pos, true);
      if (!name) return LineError(number, "bad metric name after HELP or TYPE");
      if (pos < line.size() && line[pos] != ' ') return LineError(number, "bad metric name");
      const std::string_view rest = pos < line.size() ? line.substr(pos + 1) : std::string_view();
      MetricFamily& family = out.families_[*name];
      family.name = *name;
      if (type) {
        if (rest != "counter" && rest != "gauge" && rest != "histogram" && rest != "summary" &&
            rest != "untyped") {
          return LineError(number, "unknown type '" + std::string(rest) + "'");
        }
        if (!family.samples.empty()) return LineError(number, "TYPE after the samples of " + *name);
        if (!typed.insert(*name).second) return LineError(number, "second TYPE of " + *name);
        family.type = std::string(rest);
      } else {
        if (!family.help.empty()) return LineError(number, "second HELP of " + *name);
        std::string unescaped;
        for (size_t i = 0; i < rest.size(); ++i) {
          if (rest[i] == '\\' && i + 1 < rest.size() &&
              (rest[i + 1] == 'n' || rest[i + 1] == '\\')) {
            unescaped += rest[i + 1] == 'n' ? '\n' : '\\';
            ++i;
          } else {
            unescaped += rest[i];
          }
        }
        family.help = unescaped.empty() ? " " : unescaped;
      }
      continue;
    }
    ASSIGN_OR_RETURN(MetricSample sample, ParseSample(line, number));
    const std::string family_name = FamilyOf(sample.name, out.families_);
    if (family_name != current) {
      if (finished.count(family_name)) {
        return LineError(number, "the samples of " + family_name + " are not contiguous");
      }
      if (!current.empty()) finished.insert(current);
      current = family_name;
    }
    if (!series.emplace(sample.name, sample.labels).second) {
      return LineError(number, "series " + sample.name + " given twice");
    }
    MetricFamily& family = out.families_[family_name];
    family.name = family_name;
    if (family.type == "counter" && !(sample.value >= 0)) {
      return LineError(number, "counter " + sample.name + " is negative");
    }
    family.samples.push_back(std::move(sample));
  }
  for (const auto& [name, family] : out.families_) {
    if (family.type == "histogram") RETURN_IF_ERROR(CheckHistogram(family));
  }
  return out;
}

const MetricFamily* MetricsText::Find(const std::string& family) const {
  auto it = families_.find(family);
  return it == families_.end() ? nullptr : &it->second;
}

std::vector<MetricSample> MetricsText::Samples(const std::string& name,
                                               const MetricLabels& labels) const {
  std::vector<MetricSample> out;
  for (const auto& [family_name, family] : families_) {
    for (const MetricSample& sample : family.samples) {
      if (sample.name == name && Includes(sample.labels, labels)) out.push_back(sample);
    }
  }
  return out;
}

std::optional<double> MetricsText::Value(const std::string& name,
                                         const MetricLabels& labels) const {
  std::vector<MetricSample> found = Samples(name, labels);
  if (found.size() != 1) return std::nullopt;
  return found.front().value;
}

double MetricsText::Sum(const std::string& name, const MetricLabels& labels) const {
  double sum = 0;
  for (const MetricSample& sample : Samples(name, labels)) sum += sample.value;
  return sum;
}

}  // namespace das::it
