// pycell usage (docs/access.md, "Usage and cost"): GET /v1/usage — what sessions, executions,
// transfers and storage a period used, grouped by project, principal, agent or day, and what it
// cost at the server's prices. A table for a person, --json for the server's object as it is,
// --csv for a spreadsheet (one row per group, raw numbers, no total row).
#include <CLI/CLI.hpp>
#include <cctype>
#include <cstdio>
#include <iostream>
#include <map>

#include "cli/client_common.h"
#include "cli/commands.h"
#include "common/json_reader.h"

namespace pycell::cli {
namespace {

struct UsageFlags {
  std::string group_by = "project";
  std::string from;
  std::string to;
  std::string project;
  bool csv = false;
};

double Number(const Json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_number() ? it->get<double>() : 0;
}

std::string Fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.*f", decimals, value);
  return text;
}

// A number as JSON writes it: integers without a fraction, others as short as exact.
std::string Plain(const Json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number()) return "0";
  return DumpJson(*it);
}

// RFC 4180: quoted when it holds a comma, a quote or a line break.
std::string CsvField(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

// Project names by id, for a table grouped by project (best effort: ids when not readable).
std::map<std::string, std::string> ProjectNames(HttpClient& client) {
  std::map<std::string, std::string> names;
  auto projects = JsonAnswer(client.Get("/v1/projects"), client);
  if (!projects.ok() || !(*projects)["data"].is_array()) return names;
  for (const Json& p : (*projects)["data"]) names[Field(p, "id")] = Field(p, "name");
  return names;
}

std::vector<std::string> TableRow(const std::string& key, const Json& row) {
  const Json& cost = row.contains("cost") && row["cost"].is_object() ? row["cost"] : Json();
  return {key.empty() ? "(none)" : key,
          Plain(row, "sessions"),
          Fixed(Number(row, "session_seconds") / 3600, 2),
          Plain(row, "executions"),
          Fixed(Number(row, "cpu_seconds"), 1),
          Fixed(Number(row, "peak_memory_bytes") / (1 << 20), 1),
          HumanBytes(static_cast<uint64_t>(Number(row, "bytes_uploaded"))),
          HumanBytes(static_cast<uint64_t>(Number(row, "bytes_downloaded"))),
          Fixed(Number(row, "storage_byte_hours") / 1e9, 3),
          cost.is_object() ? Fixed(Number(cost, "total"), 4) : "-"};
}

int Usage(const ClientFlags& flags, const UsageFlags& usage) {
  auto client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  std::string query = Query({{"group_by", usage.group_by},
                             {"from", usage.from},
                             {"to", usage.to},
                             {"project", usage.project}});
  auto report = JsonAnswer((*client)->Get("/v1/usage" + query), **client);
  if (!report.ok()) return Fail(report.status());
  if (flags.json) {
    std::cout << Dump(*report) << "\n";
    return 0;
  }
  const Json empty = Json::array();
  const Json& data =
      report->contains("data") && (*report)["data"].is_array() ? (*report)["data"] : empty;
  if (usage.csv) {
    std::cout << "key,sessions,session_seconds,executions,cpu_seconds,peak_memory_bytes,"
                 "bytes_uploaded,bytes_downloaded,storage_byte_hours,cost_sessions,cost_cpu,"
                 "cost_storage,cost_transfer,cost_total\n";
    for (const Json& row : data) {
      const Json& cost = row.contains("cost") && row["cost"].is_object() ? row["cost"] : Json();
      std::cout << CsvField(row.value("key", std::string()));
      for (const char* key :
           {"sessions", "session_seconds", "executions", "cpu_seconds", "peak_memory_bytes",
            "bytes_uploaded", "bytes_downloaded", "storage_byte_hours"}) {
        std::cout << "," << Plain(row, key);
      }
      for (const char* key : {"sessions", "cpu", "storage", "transfer", "total"}) {
        std::cout << "," << (cost.is_object() ? Plain(cost, key) : "0");
      }
      std::cout << "\n";
    }
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  std::map<std::string, std::string> names;
  if (usage.group_by == "project") names = ProjectNames(**client);
  for (const Json& row : data) {
    std::string key = row.value("key", std::string());
    auto name = names.find(key);
    rows.push_back(TableRow(name == names.end() ? key : name->second, row));
  }
  if (report->contains("total") && (*report)["total"].is_object()) {
    rows.push_back(TableRow("TOTAL", (*report)["total"]));
  }
  std::string group = report->value("group_by", usage.group_by);
  for (char& c : group) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string currency = report->value("currency", std::string());
  std::cout << "usage by " << Field(*report, "group_by") << " from " << Field(*report, "from")
            << " to " << Field(*report, "to") << "\n";
  PrintTable({group, "SESSIONS", "SESSION H", "EXECUTIONS", "CPU S", "PEAK MIB", "UPLOADED",
              "DOWNLOADED", "STORAGE GB-H", currency.empty() ? "COST" : "COST " + currency},
             rows);
  return 0;
}

}  // namespace

std::function<int()> RegisterUsageCommand(CLI::App& app) {
  struct State {
    ClientFlags client;
    UsageFlags usage;
  };
  auto state = std::make_shared<State>();
  CLI::App* command =
      app.add_subcommand("usage", "usage and cost by project, principal, agent or day");
  AddClientFlags(command, &state->client);
  command->add_option("--group-by", state->usage.group_by, "project, principal, agent or day")
      ->check(CLI::IsMember({"project", "principal", "agent", "day"}))
      ->capture_default_str();
  command->add_option("--from", state->usage.from,
                      "from this time (RFC 3339, or a date: 2026-01-31; default: the server's)");
  command->add_option("--to", state->usage.to, "until this time (exclusive; default: now)");
  command->add_option("--project", state->usage.project, "only this project (id or name)");
  command->add_flag("--csv", state->usage.csv, "comma-separated values, one row per group")
      ->excludes(command->get_option("--json"));
  return [state, command]() -> int {
    if (!command->parsed()) return -1;
    return Usage(state->client, state->usage);
  };
}

}  // namespace pycell::cli
