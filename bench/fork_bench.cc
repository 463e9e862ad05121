// fork_bench: what a session fork (POST /v1/sessions/{id}/fork, SessionManager::ForkSession)
// costs, against what an agent does without one. Run as root:
//
//   build/bench/fork_bench [--mb 100] [--iterations 30] [--state-dir DIR]
//
// One origin session builds a pandas DataFrame of --mb megabytes of float64. Then, interleaved so
// that a change in the machine's load hits both alike, each iteration
//   fork:     forks the origin (until the fork's runner is ready) and runs `len(df)` in the fork;
//   baseline: takes a fresh session from the warm pool and builds the same DataFrame in it (the
//             other way to get a second copy of the state).
// Memory: the fork's processes' USS and PSS (smaps_rollup) right after its first cell, and the
// fork's cgroup's own charge, against the origin's.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "bench/process_memory.h"
#include "bench/samples.h"
#include "common/logging.h"
#include "kernel/zygote_main.h"
#include "sandbox/mount_ns.h"
#include "session/session_manager.h"

namespace pycell::bench {
namespace {

using Steady = std::chrono::steady_clock;

constexpr char kUsage[] =
    "usage: fork_bench [--mb N (100)] [--iterations N (30)] [--state-dir DIR]\n";

struct Flags {
  int mb = 100;
  int iterations = 30;
  std::string state_dir = PYCELL_BENCH_DEFAULT_STATE_DIR;
};

bool ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n%s", arg.c_str(), kUsage);
      return false;
    }
    std::string value = argv[++i];
    if (arg == "--mb" || arg == "--iterations") {
      char* end = nullptr;
      long n = std::strtol(value.c_str(), &end, 10);
      if (*end != '\0' || n < 1 || n > 100000) {
        std::fprintf(stderr, "%s: not a count: %s\n", arg.c_str(), value.c_str());
        return false;
      }
      (arg == "--mb" ? flags->mb : flags->iterations) = static_cast<int>(n);
    } else if (arg == "--state-dir") {
      flags->state_dir = value;
    } else {
      std::fprintf(stderr, "unknown flag %s\n%s", arg.c_str(), kUsage);
      return false;
    }
  }
  return true;
}

Status RunCell(session::Session& s, const std::string& code) {
  ASSIGN_OR_RETURN(session::ExecutionRecord record, s.Execute({code, std::chrono::seconds(120)}));
  if (record.status != "ok") {
    return Status::Internal("cell failed: " + code + "\n" + record.stderr_text +
                            (record.error ? record.error->evalue : ""));
  }
  return Status::Ok();
}

ProcessMemory MemoryOf(const session::Session& s) {
  ProcessMemory total;
  for (pid_t pid : s.ProcessIds()) {
    if (auto memory = ReadProcessMemory(pid)) total += *memory;
  }
  return total;
}

double Mb(uint64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

Status Run(const Flags& flags) {
  EngineConfig config;
  config.state_dir = flags.state_dir + "/fork-bench";
  config.runtime_dir = "/run/pycell-fork-bench";
  config.pool.ready_sessions = 2;
  config.pool.limits.memory_bytes = 4ull << 30;
  config.max_sessions = 16;
  ASSIGN_OR_RETURN(auto manager, session::SessionManager::Create(config));
  manager->WaitForWarmPool(std::chrono::seconds(60));

  const long rows = static_cast<long>(flags.mb) * (1 << 20) / 8 / 10;  // 10 float64 columns.
  const std::string build =
      "import numpy as np, pandas as pd\n"
      "df = pd.DataFrame(np.random.default_rng(7).random((" +
      std::to_string(rows) + ", 10)), columns=[f'c{i}' for i in range(10)])\n";
  ASSIGN_OR_RETURN(auto origin, manager->CreateSession());
  RETURN_IF_ERROR(RunCell(*origin, build));
  RETURN_IF_ERROR(RunCell(*origin, "assert df.memory_usage(index=False).sum() >= " +
                                       std::to_string(static_cast<long>(flags.mb) * 1000000)));
  ProcessMemory origin_memory = MemoryOf(*origin);

  Samples fork_ready, fork_first_cell, baseline;
  std::vector<double> fork_uss, fork_pss;
  for (int i = 0; i < flags.iterations; ++i) {
    auto started = Steady::now();
    ASSIGN_OR_RETURN(auto fork, manager->ForkSession(origin->id()));
    fork_ready.Add(Steady::now() - started);
    RETURN_IF_ERROR(RunCell(*fork, "len(df)"));
    fork_first_cell.Add(Steady::now() - started);
    ProcessMemory memory = MemoryOf(*fork);
    fork_uss.push_back(Mb(memory.uss_bytes));
    fork_pss.push_back(Mb(memory.pss_bytes));
    RETURN_IF_ERROR(manager->EndSession(fork->id()));

    started = Steady::now();
    ASSIGN_OR_RETURN(auto fresh, manager->CreateSession());
    RETURN_IF_ERROR(RunCell(*fresh, build + "len(df)"));
    baseline.Add(Steady::now() - started);
    RETURN_IF_ERROR(manager->EndSession(fresh->id()));
    manager->WaitForWarmPool(std::chrono::seconds(30));
  }
  std::sort(fork_uss.begin(), fork_uss.end());
  std::sort(fork_pss.begin(), fork_pss.end());

  char host[256] = "?";
  ::gethostname(host, sizeof host);
  std::printf("\npycell fork benchmark — %s, %u cores, a %d MB DataFrame, %d iterations\n", host,
              std::thread::hardware_concurrency(), flags.mb, flags.iterations);
  std::printf("origin session: USS %.1f MB, PSS %.1f MB\n\n", Mb(origin_memory.uss_bytes),
              Mb(origin_memory.pss_bytes));
  std::printf("%-58s %8s %8s %8s %8s\n", "latency (ms)", "p50", "p90", "min", "max");
  auto row = [](const char* name, const Samples& s) {
    Summary x = s.Summarize();
    std::printf("%-58s %8.2f %8.2f %8.2f %8.2f\n", name, x.p50, x.p90, x.min, x.max);
  };
  row("fork, until the fork's runner is ready", fork_ready);
  row("fork + first cell (len(df)) in the fork", fork_first_cell);
  row("baseline: fresh session + rebuild the DataFrame", baseline);
  std::printf("\nratio baseline / fork+first cell (p50): %.1fx\n",
              baseline.Summarize().p50 / fork_first_cell.Summarize().p50);
  std::printf("fork's processes after its first cell: USS %.1f MB, PSS %.1f MB (medians)\n",
              fork_uss[fork_uss.size() / 2], fork_pss[fork_pss.size() / 2]);
  return manager->EndSession(origin->id());
}

}  // namespace
}  // namespace pycell::bench

int main(int argc, char** argv) {
  if (int code; pycell::kernel::MaybeRunZygote(argc, argv, &code)) return code;
  pycell::bench::Flags flags;
  if (!pycell::bench::ParseFlags(argc, argv, &flags)) return 2;
  pycell::SetLogLevel("warn");
  if (::geteuid() != 0) {
    std::fprintf(stderr, "fork_bench starts sandboxed sessions: run it as root\n");
    return 2;
  }
  if (pycell::Status s = pycell::sandbox::mount_ns::PrivatizeHostMounts(); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  pycell::Status s = pycell::bench::Run(flags);
  if (!s.ok()) {
    std::fprintf(stderr, "fork benchmark failed: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
