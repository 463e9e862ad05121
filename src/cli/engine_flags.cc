#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/commands.h"

namespace pycell::cli {

void EngineFlags::Register(CLI::App* command) {
  command->add_option("--state-dir", config.state_dir, "folder for caches and records")
      ->capture_default_str();
  command
      ->add_option("--runtime-dir", config.runtime_dir,
                   "folder for live sessions' mount points (every parent needs o+x)")
      ->capture_default_str();
  command->add_option("--python", config.python, "the Python sessions run")->capture_default_str();
  command->add_option("--memory", memory, "memory limit of the session, e.g. 512m or 2g");
  command->add_option("--timeout", timeout_s, "seconds one cell may run (then interrupted)");
  command->add_flag("--allow-weaker-sandbox", config.allow_weaker_sandbox,
                    "run even where a protection is missing (see pycell doctor)");
}

bool EngineFlags::Resolve() {
  if (!memory.empty()) {
    auto bytes = ParseByteSize(memory);
    if (!bytes.ok()) {
      std::cerr << "pycell: --memory: " << bytes.status().message() << "\n";
      return false;
    }
    config.pool.limits.memory_bytes = *bytes;
  }
  if (timeout_s != 0) {
    if (timeout_s < 0 || timeout_s > config.pool.limits.max_execution_timeout.count()) {
      std::cerr << "pycell: --timeout must be between 1 and "
                << config.pool.limits.max_execution_timeout.count() << " seconds\n";
      return false;
    }
    config.pool.limits.execution_timeout = std::chrono::seconds(timeout_s);
  }
  Status valid = config.Validate();
  if (!valid.ok()) {
    std::cerr << "pycell: " << valid.message() << "\n";
    return false;
  }
  return true;
}

}  // namespace pycell::cli
