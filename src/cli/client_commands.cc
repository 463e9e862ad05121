// Placeholder while the client commands are written (see the helper's task).
#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace pycell::cli {
std::function<int()> RegisterClientCommands(CLI::App&) {
  return [] { return -1; };
}
}  // namespace pycell::cli
