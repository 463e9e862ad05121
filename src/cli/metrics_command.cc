// pycell metrics list (docs/cli.md, "Metrics"): GET /metrics, the server's Prometheus metrics,
// as a table or as JSON.
//
// The scrape is parsed here with a small reader of the text exposition format (version 0.0.4):
// one sample a line, `name{label="value",…} value [timestamp]`, label values escaped with \\, \"
// and \n; `#` lines are comments, of which only `# TYPE name type` is read (to know which
// families are histograms). The bytes come from a server and are treated as hostile: a line this
// reader cannot take whole is skipped and counted, never half-read, and label values are shown
// with their control characters escaped.
#include <CLI/CLI.hpp>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string_view>

#include "cli/client_common.h"
#include "cli/commands.h"

namespace pycell::cli {
namespace {

struct MetricsFlags {
  std::string metric;  // --metric: only this metric (or histogram, with its buckets).
};

// One sample line.
struct Sample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;  // As sent, names unique.
  std::string value_text;                                   // The value as the server wrote it.
  double value = 0;
};

// A whole scrape: its samples in the order sent, the type each `# TYPE` line declared, and how
// many lines were not in the format.
struct Exposition {
  std::vector<Sample> samples;
  std::map<std::string, std::string> types;
  int skipped = 0;
};

// --- reading the text format ---

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

void SkipBlanks(std::string_view line, size_t& pos) {
  while (pos < line.size() && IsBlank(line[pos])) ++pos;
}

// A metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) or, without `colon`, a label name; empty when none
// starts at `pos`.
std::string_view ReadName(std::string_view line, size_t& pos, bool colon) {
  auto is_letter = [colon](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
  };
  size_t start = pos;
  if (pos < line.size() && is_letter(line[pos])) ++pos;
  if (pos == start) return {};
  while (pos < line.size() && (is_letter(line[pos]) || (line[pos] >= '0' && line[pos] <= '9'))) {
    ++pos;
  }
  return line.substr(start, pos - start);
}

// A quoted label value starting at `pos`, unescaped; nullopt when it is not closed on this line
// or holds an escape other than \\, \" and \n.
std::optional<std::string> ReadLabelValue(std::string_view line, size_t& pos) {
  if (pos >= line.size() || line[pos] != '"') return std::nullopt;
  std::string value;
  for (++pos; pos < line.size(); ++pos) {
    char c = line[pos];
    if (c == '"') {
      ++pos;
      return value;
    }
    if (c != '\\') {
      value += c;
      continue;
    }
    if (++pos >= line.size()) return std::nullopt;
    switch (line[pos]) {
      case '\\':
        value += '\\';
        break;
      case '"':
        value += '"';
        break;
      case 'n':
        value += '\n';
        break;
      default:
        return std::nullopt;
    }
  }
  return std::nullopt;
}

// A sample value: a float as Go's ParseFloat reads it, or +Inf, -Inf, NaN.
std::optional<double> ParseValue(std::string_view token) {
  if (token == "+Inf" || token == "Inf") return INFINITY;
  if (token == "-Inf") return -INFINITY;
  if (token == "NaN") return NAN;
  if (!token.empty() && token[0] == '+') {
    token.remove_prefix(1);
    if (token.empty() || token[0] == '-' || token[0] == '+') return std::nullopt;
  }
  double value = 0;
  auto [end, error] =
      std::from_chars(token.data(), token.data() + token.size(), value, std::chars_format::general);
  if (error != std::errc() || end != token.data() + token.size()) return std::nullopt;
  return value;
}

bool IsTimestamp(std::string_view token) {
  if (!token.empty() && token[0] == '-') token.remove_prefix(1);
  if (token.empty() || token.size() > 19) return false;
  for (char c : token) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// One sample line, or nullopt when it is not one.
std::optional<Sample> ParseSample(std::string_view line) {
  Sample sample;
  size_t pos = 0;
  SkipBlanks(line, pos);
  sample.name = ReadName(line, pos, true);
  if (sample.name.empty()) return std::nullopt;
  SkipBlanks(line, pos);
  if (pos < line.size() && line[pos] == '{') {
    ++pos;
    for (;;) {
      SkipBlanks(line, pos);
      if (pos < line.size() && line[pos] == '}') break;  // Empty braces, or a trailing comma.
      std::string label(ReadName(line, pos, false));
      if (label.empty()) return std::nullopt;
      for (const auto& seen : sample.labels) {
        if (seen.first == label) return std::nullopt;
      }
      SkipBlanks(line, pos);
      if (pos >= line.size() || line[pos] != '=') return std::nullopt;
      ++pos;
      SkipBlanks(line, pos);
      std::optional<std::string> value = ReadLabelValue(line, pos);
      if (!value) return std::nullopt;
      sample.labels.emplace_back(std::move(label), std::move(*value));
      SkipBlanks(line, pos);
      if (pos < line.size() && line[pos] == ',') {
        ++pos;
      } else if (pos >= line.size() || line[pos] != '}') {
        return std::nullopt;
      }
    }
    ++pos;  // The '}'.
    SkipBlanks(line, pos);
  }
  // The value, then perhaps a timestamp (milliseconds), then nothing.
  std::vector<std::string_view> tokens;
  while (pos < line.size() && tokens.size() <= 2) {
    size_t start = pos;
    while (pos < line.size() && !IsBlank(line[pos])) ++pos;
    tokens.push_back(line.substr(start, pos - start));
    SkipBlanks(line, pos);
  }
  if (tokens.empty() || tokens.size() > 2) return std::nullopt;
  if (tokens.size() == 2 && !IsTimestamp(tokens[1])) return std::nullopt;
  std::optional<double> value = ParseValue(tokens[0]);
  if (!value) return std::nullopt;
  sample.value_text = tokens[0];
  sample.value = *value;
  return sample;
}

// `# TYPE name type` into `types`; other comments are ignored.
void ReadComment(std::string_view line, std::map<std::string, std::string>* types) {
  size_t pos = line.find('#') + 1;
  SkipBlanks(line, pos);
  if (line.substr(pos, 4) != "TYPE" || pos + 4 >= line.size() || !IsBlank(line[pos + 4])) return;
  pos += 4;
  SkipBlanks(line, pos);
  std::string name(ReadName(line, pos, true));
  if (name.empty() || pos >= line.size() || !IsBlank(line[pos])) return;
  SkipBlanks(line, pos);
  std::string_view type = line.substr(pos);
  while (!type.empty() && IsBlank(type.back())) type.remove_suffix(1);
  (*types)[name] = std::string(type);
}

Exposition Parse(std::string_view text) {
  Exposition exposition;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t first = 0;
    SkipBlanks(line, first);
    if (first == line.size()) continue;
    if (line[first] == '#') {
      ReadComment(line, &exposition.types);
      continue;
    }
    if (std::optional<Sample> sample = ParseSample(line)) {
      exposition.samples.push_back(std::move(*sample));
    } else {
      ++exposition.skipped;
    }
  }
  return exposition;
}

// --- choosing and showing samples ---

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() > suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool HasLabel(const Sample& sample, const char* name) {
  for (const auto& label : sample.labels) {
    if (label.first == name) return true;
  }
  return false;
}

// The histogram (or summary) a sample belongs to: the base of its `_bucket`, `_count` or `_sum`
// name when `# TYPE` declared that base a histogram or summary (or, without a `# TYPE`, when the
// scrape has `le` buckets under it); otherwise the sample's own name.
class Families {
 public:
  explicit Families(const Exposition& exposition) : types_(exposition.types) {
    for (const Sample& s : exposition.samples) {
      if (EndsWith(s.name, "_bucket") && HasLabel(s, "le")) {
        untyped_bucket_bases_.insert(s.name.substr(0, s.name.size() - 7));
      }
    }
  }

  std::string Of(const std::string& name) const {
    for (std::string_view suffix : {"_bucket", "_count", "_sum"}) {
      if (!EndsWith(name, suffix)) continue;
      std::string base = name.substr(0, name.size() - suffix.size());
      auto type = types_.find(base);
      if (type != types_.end() ? type->second == "histogram" || type->second == "summary"
                               : untyped_bucket_bases_.count(base) > 0) {
        return base;
      }
    }
    return name;
  }

  bool Declared(const std::string& name) const { return types_.count(name) > 0; }

 private:
  const std::map<std::string, std::string>& types_;
  std::set<std::string> untyped_bucket_bases_;
};

// A label value as the table shows it: quoted, with the format's escapes, and every other
// control character as \xNN so that no byte from the server drives the terminal.
std::string Quote(const std::string& value) {
  std::string out = "\"";
  for (unsigned char c : value) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string LabelsText(const Sample& sample) {
  if (sample.labels.empty()) return "-";
  std::string text;
  for (const auto& [name, value] : sample.labels) {
    text += (text.empty() ? "" : ",") + name + "=" + Quote(value);
  }
  return text;
}

Json SampleJson(const Sample& sample) {
  Json labels = Json::object();
  for (const auto& [name, value] : sample.labels) labels[name] = value;
  // JSON has no infinities or NaN: those stay as the format writes them.
  Json value = std::isfinite(sample.value) ? Json(sample.value) : Json(sample.value_text);
  return {{"name", sample.name}, {"labels", labels}, {"value", value}};
}

int MetricsList(const ClientFlags& flags, const MetricsFlags& metrics) {
  // The address `serve` prints for its metrics listener ends in /metrics; take it as it is.
  ClientFlags server = flags;
  while (!server.url.empty() && server.url.back() == '/') server.url.pop_back();
  if (EndsWith(server.url, "/metrics")) server.url.resize(server.url.size() - 8);
  auto client = Connect(server);
  if (!client.ok()) return Fail(client.status());
  auto response = (*client)->Get("/metrics");
  if (!response.ok()) return Fail(Explain(response.status(), **client));
  if (!response->ok()) return Fail(HttpError(*response, **client));

  Exposition exposition = Parse(response->body);
  if (exposition.skipped > 0) {
    std::cerr << "pycell: skipped " << exposition.skipped << " line"
              << (exposition.skipped == 1 ? "" : "s")
              << " of the scrape not in the Prometheus text format\n";
  }
  Families families(exposition);
  std::vector<const Sample*> chosen;
  for (const Sample& sample : exposition.samples) {
    std::string family = families.Of(sample.name);
    bool bucket = family != sample.name && EndsWith(sample.name, "_bucket");
    if (metrics.metric.empty() ? !bucket
                               : sample.name == metrics.metric || family == metrics.metric) {
      chosen.push_back(&sample);
    }
  }
  if (!metrics.metric.empty() && chosen.empty() && !families.Declared(metrics.metric)) {
    std::cerr << "pycell: the server at " << (*client)->base_url() << " exports no metric "
              << Quote(metrics.metric) << "\n";
    return 1;
  }

  if (flags.json) {
    Json list = Json::array();
    for (const Sample* sample : chosen) list.push_back(SampleJson(*sample));
    std::cout << Dump(list) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const Sample* sample : chosen) {
    rows.push_back({sample->name, LabelsText(*sample), sample->value_text});
  }
  PrintTable({"METRIC", "LABELS", "VALUE"}, rows);
  return 0;
}

}  // namespace

std::function<int()> RegisterMetricsCommand(CLI::App& app) {
  struct State {
    ClientFlags client;
    MetricsFlags metrics;
    Subcommands subcommands{&client};
  };
  auto state = std::make_shared<State>();
  State& s = *state;
  CLI::App* metrics = app.add_subcommand("metrics", "the server's Prometheus metrics");
  metrics->require_subcommand(1);
  CLI::App* list = s.subcommands.Add(
      metrics, "list", "GET /metrics: each series' current value (histograms as _count and _sum)",
      [&s] { return MetricsList(s.client, s.metrics); });
  list->add_option("--metric", s.metrics.metric,
                   "only this metric; a histogram's name also shows its buckets");
  return [state] { return state->subcommands.Run(); };
}

}  // namespace pycell::cli
