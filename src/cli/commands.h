// The `pycell` command's subcommands. Each registers its flags on the CLI11 app and returns the
// function that runs it; the function's result is the process exit code.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/config.h"

namespace CLI {
class App;
}

namespace pycell::cli {

// Flags every engine-starting subcommand shares (state dir, python, pool limits).
struct EngineFlags {
  EngineConfig config;
  std::string memory;  // "2g"; empty: the pool's default.
  int timeout_s = 0;   // 0: the pool's default.
  // Registers the flags on `command`.
  void Register(CLI::App* command);
  // Applies the string flags onto `config`. Prints and returns false on bad input.
  bool Resolve();
};

std::function<int()> RegisterRun(CLI::App& app);
std::function<int()> RegisterRepl(CLI::App& app);
std::function<int()> RegisterDoctor(CLI::App& app);
std::function<int()> RegisterServe(CLI::App& app);
// The client of a running server: files, sessions, exec. The returned function runs whichever of
// them was parsed, or returns -1 when none was.
std::function<int()> RegisterClientCommands(CLI::App& app);
// pycell keys … and pycell projects … (access_commands.cc), pycell audit … (audit_command.cc),
// pycell usage (usage_command.cc), pycell metrics … (metrics_command.cc): like
// RegisterClientCommands, -1 when none was parsed.
std::function<int()> RegisterAccessCommands(CLI::App& app);
std::function<int()> RegisterAuditCommand(CLI::App& app);
std::function<int()> RegisterUsageCommand(CLI::App& app);
std::function<int()> RegisterMetricsCommand(CLI::App& app);
// pycell show, pycell config check|diff (show_command.cc): -1 when none was parsed.
std::function<int()> RegisterNotebookCommand(CLI::App& app);
std::function<int()> RegisterShowCommands(CLI::App& app);
// pycell evidence export|verify (evidence_command.cc): -1 when neither was parsed.
std::function<int()> RegisterEvidenceCommand(CLI::App& app);
// pycell mcp (mcp_command.cc): MCP over stdio, bridged to a server's /mcp; -1 when not parsed.
std::function<int()> RegisterMcpCommand(CLI::App& app);
// pycell migrate --store URL (migrate_command.cc): -1 when not parsed.
std::function<int()> RegisterMigrateCommand(CLI::App& app);

// Exit codes shared by run and repl.
inline constexpr int kExitCellError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitTimeout = 124;
inline constexpr int kExitSessionEnded = 125;

}  // namespace pycell::cli
