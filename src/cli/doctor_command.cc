// pycell doctor: which protections this host offers, and what the configuration would use.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/commands.h"
#include "sandbox/host_probe.h"
#include "sandbox/seccomp.h"

namespace pycell::cli {
namespace {

int Doctor(const EngineConfig& config) {
  sandbox::HostReport report = sandbox::ProbeHost();
  std::cout << "Host protections:\n";
  for (const sandbox::Protection& p : report.protections) {
    std::cout << "  [" << (p.available ? "yes" : " no") << "] " << p.name << "\n        "
              << p.detail << "\n";
  }
  bool python = ::access(config.python.c_str(), X_OK) == 0;
  std::cout << "\nThe configuration would use:\n"
            << "  runtime         " << config.python << (python ? "" : " (MISSING)") << "\n"
            << "  namespaces      user, mount, pid, net (loopback only), ipc, uts\n"
            << "  limits          memory " << (config.pool.limits.memory_bytes >> 20) << " MiB, "
            << config.pool.limits.max_pids << " pids, " << config.pool.limits.cpus
            << " cpu; /mnt/data " << (config.pool.limits.data_bytes >> 20) << " MiB, /tmp "
            << (config.pool.limits.tmp_bytes >> 20) << " MiB (tmpfs quotas)\n"
            << "  privilege       subordinate uid per session, no capabilities, no_new_privs\n"
            << "  seccomp         allowlist of " << sandbox::seccomp::AllowedSyscalls().size()
            << " system calls plus filtered clone, socket, ioctl, personality\n";
  bool ok = report.AllAvailable() && python;
  std::cout << "\n"
            << (ok ? "Every protection is available: sessions run fully contained.\n"
                   : "Some protections are missing: pycell refuses to start sessions unless "
                     "--allow-weaker-sandbox is given.\n");
  return ok ? 0 : 1;
}

}  // namespace

std::function<int()> RegisterDoctor(CLI::App& app) {
  auto config = std::make_shared<EngineConfig>();
  CLI::App* doctor =
      app.add_subcommand("doctor", "show which sandbox protections this host offers");
  doctor->add_option("--python", config->python, "the Python sessions run");
  return [config] { return Doctor(*config); };
}

}  // namespace pycell::cli
