// pycell: the server (later), its client, and the sandbox's zygote (hidden subcommand).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/commands.h"
#include "common/build_info.h"
#include "common/logging.h"
#include "kernel/zygote_main.h"

int main(int argc, char** argv) {
  // The zygote is this same binary, re-executed by the engine with its socket on descriptor 3.
  if (int code; pycell::kernel::MaybeRunZygote(argc, argv, &code)) return code;
  CLI::App app{"pycell: a self-hosted, sandboxed Python code interpreter"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "pycell " PYCELL_VERSION " (commit " PYCELL_GIT_COMMIT
                                    ", " PYCELL_BUILD_TYPE ")");
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "debug, info, warn or error")->capture_default_str();
  std::function<int()> run = pycell::cli::RegisterRun(app);
  std::function<int()> repl = pycell::cli::RegisterRepl(app);
  std::function<int()> doctor = pycell::cli::RegisterDoctor(app);
  std::function<int()> serve = pycell::cli::RegisterServe(app);
  std::function<int()> client = pycell::cli::RegisterClientCommands(app);
  std::function<int()> access = pycell::cli::RegisterAccessCommands(app);
  std::function<int()> audit = pycell::cli::RegisterAuditCommand(app);
  std::function<int()> usage = pycell::cli::RegisterUsageCommand(app);
  std::function<int()> metrics = pycell::cli::RegisterMetricsCommand(app);
  std::function<int()> show = pycell::cli::RegisterShowCommands(app);
  std::function<int()> notebook = pycell::cli::RegisterNotebookCommand(app);
  std::function<int()> evidence = pycell::cli::RegisterEvidenceCommand(app);
  std::function<int()> mcp = pycell::cli::RegisterMcpCommand(app);
  std::function<int()> migrate = pycell::cli::RegisterMigrateCommand(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : pycell::cli::kExitUsage;
  }
  pycell::SetLogLevel(log_level.c_str());
  if (app.got_subcommand("run")) return run();
  if (app.got_subcommand("repl")) return repl();
  if (app.got_subcommand("doctor")) return doctor();
  if (app.got_subcommand("serve")) return serve();
  for (const auto& command :
       {client, access, audit, usage, metrics, show, evidence, notebook, mcp, migrate}) {
    if (int code = command(); code >= 0) return code;
  }
  return pycell::cli::kExitUsage;
}
