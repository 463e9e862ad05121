// session_bench: pycell's session latencies and memory beside a Jupyter kernel's, in one run on
// one machine. `make bench` runs it; docs/benchmarks.md explains the figures and records a run.
//
//   session_bench [--state-dir DIR] [--iterations N] [--json FILE] [options, see --help]
//
// What it measures (each latency is a set of samples summarized as p50/p90/min/max):
//   1. a new session from the warm pool: CreateSession() with the pool full (each sample waits
//      for the refill first, so each is a true hand-over);
//   2. a new session with the pool empty: CreateSession() launching one (zygote fork, the whole
//      sandbox checklist, the runner's "ready"), then that session's first cell;
//   3. a trivial cell's round trip through Session::Execute, in process;
//   4. memory per idle session: K sessions alive, one trivial cell run in each, USS and PSS
//      summed over each session's processes;
//   5. where the time goes: the empty-pool launches of case 2 by phase (the engine's own
//      LaunchTimings), and each trivial cell of case 3 as the runner timed it (runner_ms);
//   6. the same figures for a Jupyter kernel (jupyter_baseline.py, run with /usr/bin/python3).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/config.h"
#include "common/logging.h"
#include "kernel/zygote_main.h"
#include "process_memory.h"
#include "samples.h"
#include "sandbox/mount_ns.h"
#include "session/session_manager.h"

#ifndef PYCELL_BENCH_DEFAULT_STATE_DIR
#define PYCELL_BENCH_DEFAULT_STATE_DIR "/var/lib/pycell"
#endif
#ifndef PYCELL_BENCH_JUPYTER_SCRIPT
#define PYCELL_BENCH_JUPYTER_SCRIPT "bench/jupyter_baseline.py"
#endif
#ifndef PYCELL_BENCH_PYTHON
#define PYCELL_BENCH_PYTHON "/usr/bin/python3"
#endif

namespace pycell::bench {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

// The targets.
constexpr double kWarmTargetMs = 10;
constexpr double kEmptyTargetMs = 40;
constexpr double kCellTargetMs = 0.5;
constexpr double kMemoryTargetMb = 15;

struct Flags {
  std::string state_dir = PYCELL_BENCH_DEFAULT_STATE_DIR;
  int iterations = 30;        // Session creations per case (and Jupyter kernel starts).
  int cell_iterations = 500;  // Trivial cells per code.
  int sessions = 8;           // Sessions (and kernels) alive at once for the memory figures.
  int pool = 4;               // Warm pool target for case 1.
  std::string json_path;
  std::string jupyter_script = PYCELL_BENCH_JUPYTER_SCRIPT;
  std::string python = PYCELL_BENCH_PYTHON;
  bool jupyter = true;
};

constexpr char kUsage[] =
    "usage: session_bench [options]\n"
    "  --state-dir DIR          the engine's state (the zygote's caches) "
    "(default " PYCELL_BENCH_DEFAULT_STATE_DIR
    ")\n"
    "  --iterations N           session creations per case, Jupyter kernel starts (default 30)\n"
    "  --cell-iterations N      trivial cells per code (default 500; Jupyter: N/2)\n"
    "  --sessions K             idle sessions / kernels weighed at once (default 8)\n"
    "  --pool P                 warm pool target (default 4)\n"
    "  --json FILE              also write every figure as JSON\n"
    "  --no-jupyter             skip the Jupyter baseline\n"
    "  --jupyter-script FILE    (default " PYCELL_BENCH_JUPYTER_SCRIPT
    ")\n"
    "  --python FILE            interpreter of the Jupyter baseline (default " PYCELL_BENCH_PYTHON
    ")\n";

// Returns false (after printing why) on a bad command line.
bool ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n%s", name, kUsage);
        return nullptr;
      }
      return argv[++i];
    };
    auto number = [&](const char* name, int* out) {
      const char* v = value(name);
      if (v == nullptr) return false;
      char* end = nullptr;
      long n = std::strtol(v, &end, 10);
      if (*end != '\0' || n < 0 || n > 1000000) {
        std::fprintf(stderr, "%s: not a count: %s\n", name, v);
        return false;
      }
      *out = static_cast<int>(n);
      return true;
    };
    auto text = [&](const char* name, std::string* out) {
      const char* v = value(name);
      if (v != nullptr) *out = v;
      return v != nullptr;
    };
    bool ok = true;
    if (arg == "--state-dir") {
      ok = text("--state-dir", &flags->state_dir);
    } else if (arg == "--iterations") {
      ok = number("--iterations", &flags->iterations);
    } else if (arg == "--cell-iterations") {
      ok = number("--cell-iterations", &flags->cell_iterations);
    } else if (arg == "--sessions") {
      ok = number("--sessions", &flags->sessions);
    } else if (arg == "--pool") {
      ok = number("--pool", &flags->pool);
    } else if (arg == "--json") {
      ok = text("--json", &flags->json_path);
    } else if (arg == "--jupyter-script") {
      ok = text("--jupyter-script", &flags->jupyter_script);
    } else if (arg == "--python") {
      ok = text("--python", &flags->python);
    } else if (arg == "--no-jupyter") {
      flags->jupyter = false;
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else {
      std::fprintf(stderr, "unknown flag %s\n%s", arg.c_str(), kUsage);
      return false;
    }
    if (!ok) return false;
  }
  if (flags->iterations < 1 || flags->cell_iterations < 1 || flags->sessions < 1 ||
      flags->pool < 1) {
    std::fprintf(stderr, "--iterations, --cell-iterations, --sessions and --pool must be >= 1\n");
    return false;
  }
  return true;
}

void Progress(const std::string& line) { std::fprintf(stderr, "[pycell] %s\n", line.c_str()); }

std::string Fixed(double x, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, x);
  return buf;
}

json ToJson(const Summary& s) {
  return {{"n", s.n},     {"p50", s.p50}, {"p90", s.p90},
          {"min", s.min}, {"max", s.max}, {"mean", s.mean}};
}
Summary SummaryFromJson(const json& j) {
  Summary s;
  if (!j.is_object()) return s;
  s.n = j.value("n", size_t{0});
  s.p50 = j.value("p50", 0.0);
  s.p90 = j.value("p90", 0.0);
  s.min = j.value("min", 0.0);
  s.max = j.value("max", 0.0);
  s.mean = j.value("mean", 0.0);
  return s;
}

double Median(std::vector<double> xs) {
  if (xs.empty()) return 0;
  std::sort(xs.begin(), xs.end());
  size_t mid = xs.size() / 2;
  return xs.size() % 2 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2;
}
constexpr double kMb = 1024.0 * 1024.0;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The machine, for the record: nproc, memory, kernel, CPU model.
json Machine() {
  json m;
  m["nproc"] = std::thread::hardware_concurrency();
  std::istringstream cpuinfo(ReadFile("/proc/cpuinfo"));
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      m["cpu"] = line.substr(line.find(':') + 2);
      break;
    }
  }
  std::istringstream meminfo(ReadFile("/proc/meminfo"));
  for (std::string line; std::getline(meminfo, line);) {
    if (line.rfind("MemTotal:", 0) == 0) {
      m["mem_total_gb"] = std::stod(line.substr(9)) / kMb;
      break;
    }
  }
  std::string release = ReadFile("/proc/sys/kernel/osrelease");
  if (!release.empty() && release.back() == '\n') release.pop_back();
  m["kernel"] = release;
  return m;
}

// Everything the pycell half measured.
struct PycellResults {
  double engine_start_ms = 0;  // SessionManager::Create: the zygote imports the preloads.
  double pool_fill_ms = 0;     // Then until the pool held its target.
  Samples warm_create, warm_end;
  Samples empty_create, empty_first_cell, empty_end;
  std::map<std::string, Samples> cell;                 // By code.
  std::vector<double> session_uss_mb, session_pss_mb;  // One per idle session.
  std::vector<double> init_uss_mb, worker_uss_mb;      // The two halves of a session's USS.
  std::optional<ProcessMemory> zygote;
  // Empty-pool launches by phase, as the engine timed them (SessionManager::LaunchTimings).
  std::vector<std::pair<std::string, Samples>> phases;
  std::map<std::string, Samples> runner_cell;  // By code: the cell alone, as the runner timed it.
};

Status Check(const Result<session::ExecutionRecord>& record, const std::string& code) {
  if (!record.ok()) return record.status();
  if (record->status != "ok") {
    return Status::Internal("cell `" + code + "` ended " + record->status + ": " +
                            record->stderr_text);
  }
  return Status::Ok();
}

Status RunCell(session::Session& s, const std::string& code) {
  return Check(s.Execute({code, std::nullopt}), code);
}

// Cases 1-4, with one SessionManager.
Status MeasureSessions(const Flags& flags, const EngineConfig& config, PycellResults* out) {
  Stopwatch start;
  ASSIGN_OR_RETURN(auto manager, session::SessionManager::Create(config));
  out->engine_start_ms = start.ElapsedMs();
  Progress("engine started in " + Fixed(out->engine_start_ms, 0) + " ms (zygote preloads)");
  Stopwatch fill;
  if (!manager->WaitForWarmPool(std::chrono::minutes(2))) {
    return Status::DeadlineExceeded("the warm pool did not fill in 2 minutes");
  }
  out->pool_fill_ms = fill.ElapsedMs();
  Progress("pool of " + std::to_string(flags.pool) + " warm in " + Fixed(out->pool_fill_ms, 0) +
           " ms");

  // 1. Warm hand-over.
  for (int i = 0; i < flags.iterations; ++i) {
    if (!manager->WaitForWarmPool(std::chrono::minutes(1))) {
      return Status::DeadlineExceeded("the warm pool did not refill in a minute");
    }
    Stopwatch create;
    ASSIGN_OR_RETURN(auto s, manager->CreateSession());
    out->warm_create.Add(create.Elapsed());
    Stopwatch end;
    RETURN_IF_ERROR(manager->EndSession(s->id()));
    out->warm_end.Add(end.Elapsed());
  }
  Progress("warm pool: p50 " + Fixed(out->warm_create.Summarize().p50, 3) + " ms");

  // 2. Empty pool: nothing launches in the background from here on. The refill of the last warm
  // sample must land first, or it would land in the emptied pool (see docs/benchmarks.md).
  if (!manager->WaitForWarmPool(std::chrono::minutes(1))) {
    return Status::DeadlineExceeded("the warm pool did not refill in a minute");
  }
  manager->SetPoolTarget(0);
  std::mutex phases_mu;
  out->phases = {{"prepare (folder, ids, tmpfs, cgroup)", {}},
                 {"spawn (zygote clone round trip)", {}},
                 {"admit (id maps, cgroup join)", {}},
                 {"ready (child checklist, runner start)", {}},
                 {"total", {}}};
  manager->SetLaunchObserver([&](const session::LaunchTimings& t) {
    std::lock_guard<std::mutex> lock(phases_mu);
    double values[] = {t.prepare_ms, t.spawn_ms, t.admit_ms, t.ready_ms, t.total_ms};
    for (size_t k = 0; k < std::size(values); ++k) out->phases[k].second.Add(values[k]);
  });
  for (int i = 0; i < flags.iterations; ++i) {
    Stopwatch create;
    ASSIGN_OR_RETURN(auto s, manager->CreateSession());
    out->empty_create.Add(create.Elapsed());
    Stopwatch first;
    RETURN_IF_ERROR(RunCell(*s, "1"));
    out->empty_first_cell.Add(first.Elapsed());
    Stopwatch end;
    RETURN_IF_ERROR(manager->EndSession(s->id()));
    out->empty_end.Add(end.Elapsed());
  }
  manager->SetLaunchObserver(nullptr);
  Progress("empty pool: p50 " + Fixed(out->empty_create.Summarize().p50, 1) + " ms");

  // 3. Trivial cells on one session, the two codes interleaved so that a change in the machine's
  // load hits both alike.
  {
    ASSIGN_OR_RETURN(auto s, manager->CreateSession());
    for (int i = -50; i < flags.cell_iterations; ++i) {  // The first 50 warm up.
      for (const std::string code : {"1", "pass"}) {
        Stopwatch cell;
        auto record = s->Execute({code, std::nullopt});
        if (i >= 0) out->cell[code].Add(cell.Elapsed());
        if (i >= 0 && record.ok()) out->runner_cell[code].Add(record->runner_ms);
        RETURN_IF_ERROR(Check(record, code));
      }
    }
    for (const std::string code : {"1", "pass"}) {
      Progress("cell `" + code + "`: p50 " + Fixed(out->cell[code].Summarize().p50, 3) + " ms");
    }
    RETURN_IF_ERROR(manager->EndSession(s->id()));
  }

  // 4. Memory of K idle sessions (and of the zygote they share pages with).
  std::vector<std::shared_ptr<session::Session>> idle;
  for (int i = 0; i < flags.sessions; ++i) {
    ASSIGN_OR_RETURN(auto s, manager->CreateSession());
    RETURN_IF_ERROR(RunCell(*s, "1"));
    idle.push_back(std::move(s));
  }
  std::this_thread::sleep_for(milliseconds(500));  // Let them settle into idle.
  pid_t zygote = -1;
  for (const auto& s : idle) {
    std::vector<pid_t> pids = s->ProcessIds();
    if (pids.empty()) return Status::Internal("session " + s->id() + " lists no processes");
    ProcessMemory total;
    for (pid_t pid : pids) {
      auto memory = ReadProcessMemory(pid);
      if (!memory) continue;
      total += *memory;
      // The init's parent is the zygote; the worker's parent is the init.
      pid_t parent = ParentOf(pid);
      bool is_init = std::find(pids.begin(), pids.end(), parent) == pids.end();
      if (is_init) zygote = parent;
      (is_init ? out->init_uss_mb : out->worker_uss_mb).push_back(memory->uss_bytes / kMb);
    }
    out->session_uss_mb.push_back(total.uss_bytes / kMb);
    out->session_pss_mb.push_back(total.pss_bytes / kMb);
  }
  if (zygote > 0) out->zygote = ReadProcessMemory(zygote);
  Progress("memory: USS " + Fixed(Median(out->session_uss_mb), 1) + " MB, PSS " +
           Fixed(Median(out->session_pss_mb), 1) + " MB per idle session");
  for (const auto& s : idle) RETURN_IF_ERROR(manager->EndSession(s->id()));
  return Status::Ok();
}

// Case 6: runs the Jupyter script and returns its JSON.
Result<json> RunJupyterBaseline(const Flags& flags) {
  std::string command = "'" + flags.python + "' '" + flags.jupyter_script + "' --iterations " +
                        std::to_string(flags.iterations) + " --cell-iterations " +
                        std::to_string(std::max(1, flags.cell_iterations / 2)) + " --kernels " +
                        std::to_string(flags.sessions);
  Progress("running the Jupyter baseline: " + command);
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return Status::FromErrno("popen " + command);
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) text.append(buf, n);
  int rc = ::pclose(pipe);
  if (rc != 0) {
    return Status::Internal("the Jupyter baseline failed (exit " +
                            std::to_string(WIFEXITED(rc) ? WEXITSTATUS(rc) : -1) + ")");
  }
  json result = json::parse(text, nullptr, false);
  if (result.is_discarded()) return Status::Internal("the Jupyter baseline printed no JSON");
  return result;
}

// ---- Output --------------------------------------------------------------------------------

void PrintLatencies(const std::vector<std::pair<std::string, Summary>>& rows) {
  std::printf("\n%-58s %6s %10s %10s %10s %10s\n", "latency (ms)", "n", "p50", "p90", "min", "max");
  for (const auto& [name, s] : rows) {
    if (s.n == 0) continue;
    std::printf("%-58s %6zu %10.3f %10.3f %10.3f %10.3f\n", name.c_str(), s.n, s.p50, s.p90, s.min,
                s.max);
  }
}

struct TableRow {
  std::string metric;
  std::optional<double> pycell, jupyter;
  std::string unit;
  std::optional<double> target;  // pycell must be <= target.
};

void PrintTable(const std::vector<TableRow>& rows) {
  std::printf("\n| %-50s | %10s | %10s | %14s | %9s | %4s |\n", "metric (p50 / median)", "pycell",
              "jupyter", "jupyter/pycell", "target", "met");
  std::printf("|%s|%s|%s|%s|%s|%s|\n", std::string(52, '-').c_str(), std::string(12, '-').c_str(),
              std::string(12, '-').c_str(), std::string(16, '-').c_str(),
              std::string(11, '-').c_str(), std::string(6, '-').c_str());
  for (const TableRow& r : rows) {
    auto cell = [&](std::optional<double> v) {
      if (!v) return std::string("—");
      return Fixed(*v, *v < 1 ? 3 : (*v < 100 ? 2 : 0)) + " " + r.unit;
    };
    std::string ratio = "—";
    if (r.pycell && r.jupyter && *r.pycell > 0) ratio = Fixed(*r.jupyter / *r.pycell, 1) + "x";
    std::string target =
        r.target ? "≤ " + Fixed(*r.target, *r.target < 1 ? 1 : 0) + " " + r.unit : std::string("—");
    std::string met = !r.target ? "" : (r.pycell && *r.pycell <= *r.target ? "yes" : "NO");
    // Multi-byte "—" and "≤" need their width made up by hand.
    auto pad = [](const std::string& s, int width) {
      int visible = 0;
      for (unsigned char c : s) visible += (c & 0xC0) != 0x80;
      return std::string(width > visible ? width - visible : 0, ' ') + s;
    };
    std::printf("| %-50s | %s | %s | %s | %s | %4s |\n", r.metric.c_str(),
                pad(cell(r.pycell), 10).c_str(), pad(cell(r.jupyter), 10).c_str(),
                pad(ratio, 14).c_str(), pad(target, 9).c_str(), met.c_str());
  }
}

int Run(const Flags& flags) {
  EngineConfig config;
  config.state_dir = flags.state_dir;
  config.pool.ready_sessions = static_cast<uint32_t>(flags.pool);
  config.max_sessions = static_cast<uint32_t>(std::max(64, flags.sessions + flags.pool + 2));
  if (Status s = config.Validate(); !s.ok()) {
    std::fprintf(stderr, "config: %s\n", s.ToString().c_str());
    return 2;
  }
  json machine = Machine();
  Progress("machine: " + machine.dump());

  PycellResults pycell;
  if (Status s = MeasureSessions(flags, config, &pycell); !s.ok()) {
    std::fprintf(stderr, "session benchmark failed: %s\n", s.ToString().c_str());
    return 1;
  }
  json jupyter = json::object();
  if (flags.jupyter) {
    auto result = RunJupyterBaseline(flags);
    if (!result.ok()) {
      std::fprintf(stderr, "%s\n", result.status().ToString().c_str());
      return 1;
    }
    jupyter = std::move(*result);
  }

  // ---- Report.
  Summary warm = pycell.warm_create.Summarize();
  Summary empty = pycell.empty_create.Summarize();
  Summary first = pycell.empty_first_cell.Summarize();
  Summary cell1 = pycell.cell["1"].Summarize();
  Summary cell_pass = pycell.cell["pass"].Summarize();
  auto jsum = [&](const json& j) { return SummaryFromJson(j); };
  Summary j_start = jsum(jupyter.value("start_ms", json()));
  Summary j_start_preload = jsum(jupyter.value("start_with_preload_ms", json()));
  Summary j_first = jsum(jupyter.value("first_cell_ms", json()));
  json j_cells = jupyter.value("cell_ms", json::object());
  Summary j_cell1 = jsum(j_cells.value("1", json()));
  Summary j_cell_pass = jsum(j_cells.value("pass", json()));
  json j_memory = jupyter.value("memory", json::object());
  auto jmem = [&](const char* phase, const char* key) -> std::optional<double> {
    if (!j_memory.contains(phase)) return std::nullopt;
    return j_memory[phase].value(key, 0.0);
  };
  auto opt = [](const Summary& s) -> std::optional<double> {
    return s.n ? std::optional<double>(s.p50) : std::nullopt;
  };

  std::printf("\npycell session benchmark — %s, %s cores, kernel %s\n",
              machine.value("cpu", std::string("?")).c_str(),
              std::to_string(machine.value("nproc", 0)).c_str(),
              machine.value("kernel", std::string("?")).c_str());
  std::printf("engine start (zygote preloads %zu modules): %.0f ms; pool of %d filled in %.0f ms\n",
              config.pool.preload.size(), pycell.engine_start_ms, flags.pool, pycell.pool_fill_ms);
  PrintLatencies({
      {"pycell: new session, warm pool (CreateSession)", warm},
      {"pycell: end session (warm case, EndSession)", pycell.warm_end.Summarize()},
      {"pycell: new session, empty pool (CreateSession)", empty},
      {"pycell: first cell `1` in that new session", first},
      {"pycell: end session (empty case, EndSession)", pycell.empty_end.Summarize()},
      {"pycell: trivial cell `1` (Session::Execute)", cell1},
      {"pycell: trivial cell `pass` (Session::Execute)", cell_pass},
      {"pycell: cell `1`, inside the runner (IPython run_cell)",
       pycell.runner_cell["1"].Summarize()},
      {"pycell: cell `pass`, inside the runner", pycell.runner_cell["pass"].Summarize()},
      {"jupyter: kernel start (start_kernel+wait_for_ready)", j_start},
      {"jupyter: kernel start + import preloads", j_start_preload},
      {"jupyter: first cell `1` in that kernel", j_first},
      {"jupyter: trivial cell `1` (BlockingKernelClient)", j_cell1},
      {"jupyter: trivial cell `pass` (BlockingKernelClient)", j_cell_pass},
  });
  if (!pycell.phases.empty()) {
    std::vector<std::pair<std::string, Summary>> rows;
    for (const auto& [name, samples] : pycell.phases) {
      rows.emplace_back("  " + name, samples.Summarize());
    }
    std::printf("\nempty-pool launch, step by step (the engine's own LaunchTimings):");
    PrintLatencies(rows);
  }
  std::printf(
      "\nmemory per idle session (%d alive, one cell run in each): USS %.1f MB (init %.1f, "
      "worker %.1f), PSS %.1f MB",
      flags.sessions, Median(pycell.session_uss_mb), Median(pycell.init_uss_mb),
      Median(pycell.worker_uss_mb), Median(pycell.session_pss_mb));
  if (pycell.zygote) {
    std::printf(
        "; the zygote they fork from: USS %.1f MB, PSS %.1f MB, RSS %.1f MB (once per pool)",
        pycell.zygote->uss_bytes / kMb, pycell.zygote->pss_bytes / kMb,
        pycell.zygote->rss_bytes / kMb);
  }
  std::printf("\n");

  std::vector<TableRow> rows = {
      {"new session, warm pool (jupyter: no pool)", opt(warm), std::nullopt, "ms", kWarmTargetMs},
      {"new session, empty pool (jupyter: start+import)", opt(empty), opt(j_start_preload), "ms",
       kEmptyTargetMs},
      {"  jupyter kernel start without imports", std::nullopt, opt(j_start), "ms", std::nullopt},
      {"first cell `1` in a new session", opt(first), opt(j_first), "ms", std::nullopt},
      {"trivial cell `1`, round trip", opt(cell1), opt(j_cell1), "ms", kCellTargetMs},
      {"trivial cell `pass`, round trip", opt(cell_pass), opt(j_cell_pass), "ms", std::nullopt},
      {"private memory (USS) per idle session", Median(pycell.session_uss_mb),
       jmem("preloaded", "uss_mb_median"), "MB", kMemoryTargetMb},
      {"PSS per idle session", Median(pycell.session_pss_mb), jmem("preloaded", "pss_mb_median"),
       "MB", std::nullopt},
      {"  jupyter USS without imports", std::nullopt, jmem("bare", "uss_mb_median"), "MB",
       std::nullopt},
      {"  jupyter PSS without imports", std::nullopt, jmem("bare", "pss_mb_median"), "MB",
       std::nullopt},
  };
  PrintTable(rows);
  std::fflush(stdout);

  if (!flags.json_path.empty()) {
    json out;
    out["machine"] = machine;
    out["flags"] = {{"state_dir", flags.state_dir},
                    {"iterations", flags.iterations},
                    {"cell_iterations", flags.cell_iterations},
                    {"sessions", flags.sessions},
                    {"pool", flags.pool}};
    json p;
    p["engine_start_ms"] = pycell.engine_start_ms;
    p["pool_fill_ms"] = pycell.pool_fill_ms;
    p["warm_create_ms"] = ToJson(warm);
    p["warm_end_ms"] = ToJson(pycell.warm_end.Summarize());
    p["empty_create_ms"] = ToJson(empty);
    p["empty_first_cell_ms"] = ToJson(first);
    p["empty_end_ms"] = ToJson(pycell.empty_end.Summarize());
    p["cell_ms"] = {{"1", ToJson(cell1)}, {"pass", ToJson(cell_pass)}};
    p["memory"] = {{"sessions", flags.sessions},
                   {"uss_mb", pycell.session_uss_mb},
                   {"pss_mb", pycell.session_pss_mb},
                   {"init_uss_mb", pycell.init_uss_mb},
                   {"worker_uss_mb", pycell.worker_uss_mb},
                   {"uss_mb_median", Median(pycell.session_uss_mb)},
                   {"pss_mb_median", Median(pycell.session_pss_mb)}};
    if (pycell.zygote) {
      p["memory"]["zygote"] = {{"uss_mb", pycell.zygote->uss_bytes / kMb},
                               {"pss_mb", pycell.zygote->pss_bytes / kMb},
                               {"rss_mb", pycell.zygote->rss_bytes / kMb}};
    }
    for (const auto& [name, samples] : pycell.phases) {
      p["launch_phases_ms"].push_back({{"phase", name}, {"summary", ToJson(samples.Summarize())}});
    }
    for (auto& [code, samples] : pycell.runner_cell) {
      p["runner_cell_ms"][code] = ToJson(samples.Summarize());
    }
    out["pycell"] = p;
    out["jupyter"] = jupyter;
    out["targets"] = {{"warm_create_p50_ms", kWarmTargetMs},
                      {"empty_create_p50_ms", kEmptyTargetMs},
                      {"cell_p50_ms", kCellTargetMs},
                      {"uss_per_session_mb", kMemoryTargetMb}};
    std::ofstream file(flags.json_path);
    file << out.dump(2) << "\n";
    if (!file) {
      std::fprintf(stderr, "could not write %s\n", flags.json_path.c_str());
      return 1;
    }
    Progress("wrote " + flags.json_path);
  }
  return 0;
}

}  // namespace
}  // namespace pycell::bench

int main(int argc, char** argv) {
  // This binary is also the zygote of the sessions it starts (see zygote_main.h).
  if (int code; pycell::kernel::MaybeRunZygote(argc, argv, &code)) return code;
  pycell::bench::Flags flags;
  if (!pycell::bench::ParseFlags(argc, argv, &flags)) return 2;
  pycell::SetLogLevel("warn");
  if (::geteuid() != 0) {
    std::fprintf(stderr, "session_bench starts sandboxed sessions: run it as root\n");
    return 2;
  }
  // Sessions' mounts stay in this process's own mount namespace. Must happen while the process
  // has one thread.
  if (pycell::Status s = pycell::sandbox::mount_ns::PrivatizeHostMounts(); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  return pycell::bench::Run(flags);
}
