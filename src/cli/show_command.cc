// pycell show, pycell config check|diff (issue 6): the live state of a server from its own
// answers, and a configuration file checked or compared against the live one.
//
//   pycell show [--json]             GET /v1/service: version, build, uptime, addresses, data
//                                    dir and store, host protections, pools, keys by role, and
//                                    the configuration (retention, prices, …).
//   pycell config check FILE         parses and validates FILE as `pycell serve` would, without
//                                    starting anything; exit 0 when valid, 1 with the reason.
//   pycell config diff FILE          FILE (with defaults filled in) against GET /v1/config, one
//                                    line per differing field; exit 0 when equal, 1 when not.
//   pycell diagnostic-settings list  GET /v1/diagnostic-settings: each setting's sink and
//                                    categories, with events sent, failed, dropped and queued.
#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/client_common.h"
#include "cli/commands.h"
#include "common/config_file.h"
#include "common/config_json.h"
#include "common/json_reader.h"

namespace pycell::cli {
namespace {

int Show(const ClientFlags& flags) {
  auto client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  auto info = JsonAnswer((*client)->Get("/v1/service"), **client);
  if (!info.ok()) return Fail(info.status());
  if (flags.json) {
    std::cout << info->dump(2) << "\n";
    return 0;
  }
  const Json& i = *info;
  const Json build = i.value("build", Json::object());
  std::cout << "pycell " << Field(i, "version") << " (commit " << Field(build, "commit") << ", "
            << Field(build, "type") << ", " << Field(build, "compiler") << ")\n"
            << "  started     " << Field(i, "started_at") << " (up " << Field(i, "uptime_s")
            << " s)\n"
            << "  listen      " << Field(i, "listen") << "\n"
            << "  metrics     " << Field(i, "metrics_listen") << "\n"
            << "  data dir    " << Field(i, "data_dir") << "\n";
  const Json store = i.value("store", Json::object());
  std::cout << "  store       " << Field(store, "backend") << " " << Field(store, "path")
            << " (schema " << Field(store, "schema_version") << ")\n";
  const Json evidence_key = i.value("evidence_public_key", Json::object());
  std::cout << "  evidence    Ed25519 key sha256 " << Field(evidence_key, "sha256")
            << " (PEM: GET /v1/evidence/public-key, or `pycell show --json`)\n";
  std::cout << "  keys        ";
  const Json roles = i.value("keys_by_role", Json::object());
  bool first = true;
  for (const auto& [role, count] : roles.items()) {
    std::cout << (first ? "" : ", ") << role << " " << DumpJson(count);
    first = false;
  }
  std::cout << "\n\nHost protections:\n";
  for (const Json& p : i.value("host_protections", Json::array())) {
    std::cout << "  [" << (p.value("available", false) ? "yes" : " no") << "] " << Field(p, "name")
              << "\n";
  }
  std::cout << "\nPools:\n";
  for (const Json& p : i.value("pools", Json::array())) {
    const Json limits = p.value("limits", Json::object());
    std::cout << "  " << Field(p, "name") << ": ready " << Field(p, "ready") << "/"
              << Field(p, "target_ready") << ", active " << Field(p, "active") << ", executing "
              << Field(p, "executing") << "; memory " << Field(limits, "memory_bytes") << " B, "
              << Field(limits, "max_pids") << " pids, " << Field(limits, "cpus")
              << " cpu, cell timeout " << Field(limits, "execution_timeout_s") << " s\n";
  }
  std::cout << "\nConfiguration:\n";
  const Json config = i.value("config", Json::object());
  for (const auto& [key, value] : FlattenJson(config)) {
    if (key.rfind("pools", 0) == 0) continue;  // Shown above.
    std::cout << "  " << key << " = " << Dump(value) << "\n";
  }
  return 0;
}

int Check(const std::string& path) {
  auto config = LoadConfigFile(path);
  if (!config.ok()) {
    std::cerr << "pycell config check: " << config.status().message() << "\n";
    return 1;
  }
  std::cout << path << ": valid (" << config->pools.size() << " pool"
            << (config->pools.size() == 1 ? "" : "s") << ")\n";
  return 0;
}

int Diff(const ClientFlags& flags, const std::string& path) {
  auto expected = LoadConfigFile(path);
  if (!expected.ok()) {
    std::cerr << "pycell config diff: " << expected.status().message() << "\n";
    return kExitUsage;
  }
  auto client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  auto live = JsonAnswer((*client)->Get("/v1/config"), **client);
  if (!live.ok()) return Fail(live.status());
  live->erase("object");
  Json differences = Json::array();
  for (const ConfigChange& change : DiffConfigJson(*live, ConfigToJson(*expected))) {
    differences.push_back(
        {{"key", change.key}, {"expected", change.after}, {"live", change.before}});
  }
  if (flags.json) {
    std::cout << Json{{"equal", differences.empty()}, {"differences", differences}}.dump(2) << "\n";
  } else if (differences.empty()) {
    std::cout << "the live configuration matches " << path << "\n";
  } else {
    for (const Json& d : differences) {
      std::cout << Field(d, "key") << ": expected " << Dump(d["expected"]) << ", live "
                << Dump(d["live"]) << "\n";
    }
    std::cout << differences.size() << " difference" << (differences.size() == 1 ? "" : "s")
              << " between " << path << " and the live configuration\n";
  }
  return differences.empty() ? 0 : 1;
}

int ListDiagnosticSettings(const ClientFlags& flags) {
  auto client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  auto list = JsonAnswer((*client)->Get("/v1/diagnostic-settings"), **client);
  if (!list.ok()) return Fail(list.status());
  if (flags.json) {
    std::cout << list->dump(2) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const Json& d : list->value("data", Json::array())) {
    std::string categories;
    for (const Json& c : d.value("categories", Json::array())) {
      categories += (categories.empty() ? "" : ",") + (c.is_string() ? c.get<std::string>() : "");
    }
    rows.push_back({Field(d, "name"), Field(d, "sink"), categories, Field(d, "sent"),
                    Field(d, "failed"), Field(d, "dropped"), Field(d, "queued"),
                    Field(d, "last_error")});
  }
  if (rows.empty()) {
    std::cout << "no diagnostic settings (add [[diagnostic_settings]] to the configuration)\n";
    return 0;
  }
  PrintTable({"NAME", "SINK", "CATEGORIES", "SENT", "FAILED", "DROPPED", "QUEUED", "LAST ERROR"},
             rows);
  return 0;
}

}  // namespace

std::function<int()> RegisterShowCommands(CLI::App& app) {
  struct State {
    ClientFlags client;
    std::string path;
    Subcommands subcommands{&client};
    CLI::App* show = nullptr;
  };
  auto state = std::make_shared<State>();
  State& s = *state;
  s.show = app.add_subcommand("show",
                              "the live state of a server: version, addresses, pools, "
                              "protections, keys by role, configuration");
  AddClientFlags(s.show, &s.client);
  CLI::App* config = app.add_subcommand("config",
                                        "check a configuration file, or compare it "
                                        "with a server's live configuration");
  config->require_subcommand(1);
  CLI::App* check = config->add_subcommand("check", "validate a file without starting anything");
  check->add_option("file", s.path, "the TOML file")->required();
  s.subcommands
      .Add(config, "diff",
           "compare a file with the live configuration; exit 1 when "
           "they differ",
           [&s] { return Diff(s.client, s.path); })
      ->add_option("file", s.path, "the expected TOML file")
      ->required();
  CLI::App* diagnostic =
      app.add_subcommand("diagnostic-settings",
                         "where log categories go (audit, executions, sessions, requests, "
                         "security) and how each sink is doing");
  diagnostic->require_subcommand(1);
  s.subcommands.Add(diagnostic, "list", "each setting with events sent, failed, dropped, queued",
                    [&s] { return ListDiagnosticSettings(s.client); });
  return [state, check]() -> int {
    if (state->show->parsed()) return Show(state->client);
    if (check->parsed()) return Check(state->path);
    return state->subcommands.Run();
  };
}

}  // namespace pycell::cli
