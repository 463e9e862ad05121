// soak_bench: many sessions running small cells at once for a long time, with uploads, downloads
// and session churn mixed in; then checks that the server gave back everything it took.
//
//   soak_bench --pycell build/pycell [--sessions 100] [--seconds 600] [--check] [--json FILE]
//
// It starts `pycell serve` on a free port with a fresh data dir, its own runtime dir and its own
// cgroup parent (so that nothing else on the machine is counted), and measures the server's
// resources once its warm pool is full: open descriptors, threads, RSS, processes (the server and
// every descendant: zygote, sessions, their children), cgroups, mounts under its folders, and files
// in its data dir. Then each of N workers, one keep-alive connection each, loops:
//   - a small cell that keeps state (`n += 1`) and checks that the session kept it;
//   - every --upload-every cells: 64 KiB of random numbers (a CSV) uploaded into its session, a
//   cell that
//     hashes them into an artifact, the artifact downloaded and compared with the hash computed
//     here, then both file records deleted;
//   - every --churn-every cells: its session ended and a new one created.
// At the end every session is ended, the pool refills, and the same resources are measured again:
// with --check, any count not back to its baseline (RSS: within --rss-slack-mb), or any failed
// request, makes the exit status 1. `make test` runs a short version (bench/CMakeLists.txt).
#include <dirent.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_server.h"
#include "samples.h"

namespace pycell::bench {
namespace {

namespace http = boost::beast::http;
using nlohmann::json;

struct Flags {
  std::string pycell = "build/pycell";
  std::string runtime_dir = "/run/pycell-soak";
  std::string json_path;
  int sessions = 100;
  int seconds = 600;
  int upload_every = 10;
  int churn_every = 50;
  int ready_sessions = 4;
  double rss_slack_mb = 128;
  bool check = false;
};

constexpr char kUsage[] =
    "usage: soak_bench --pycell PATH [options]\n"
    "  --sessions N        sessions at once, one worker each (default 100)\n"
    "  --seconds N         how long the workers run (default 600)\n"
    "  --upload-every N    an upload, a hashing cell and a download every N cells (default 10)\n"
    "  --churn-every N     a worker ends its session and starts another every N cells (default "
    "50)\n"
    "  --ready-sessions N  the server's warm pool (default 4)\n"
    "  --runtime-dir DIR   the server's runtime dir (default /run/pycell-soak)\n"
    "  --rss-slack-mb N    how far the server's RSS may end above its baseline (default 128)\n"
    "  --check             exit 1 when a request failed or a resource is not back to baseline\n"
    "  --json FILE         also write the results as JSON\n";

// ---- The server's resources, read from /proc, /sys/fs/cgroup and its folders. ----

struct Resources {
  int64_t fds = 0;
  int64_t threads = 0;
  int64_t rss_kb = 0;
  int64_t processes = 0;  // The server and all its descendants.
  int64_t cgroups = 0;    // Folders under the server's cgroup parent, every hierarchy.
  int64_t mounts = 0;     // Mount points under the runtime or data dir, in the server's namespace.
  int64_t data_files = 0;
  int64_t runtime_entries = 0;

  json ToJson() const {
    return {{"fds", fds},
            {"threads", threads},
            {"rss_kb", rss_kb},
            {"processes", processes},
            {"cgroups", cgroups},
            {"mounts", mounts},
            {"data_files", data_files},
            {"runtime_entries", runtime_entries}};
  }
};

std::vector<std::string> ListDir(const std::string& path) {
  std::vector<std::string> names;
  DIR* dir = opendir(path.c_str());
  if (!dir) return names;
  while (dirent* e = readdir(dir)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(dir);
  return names;
}

bool IsDir(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Entries below `path` (not counting itself); `dirs_only`: folders only.
int64_t CountTree(const std::string& path, bool dirs_only) {
  int64_t n = 0;
  for (const std::string& name : ListDir(path)) {
    std::string child = path + "/" + name;
    bool dir = IsDir(child);
    if (dir || !dirs_only) ++n;
    if (dir) n += CountTree(child, dirs_only);
  }
  return n;
}

int64_t StatusField(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::atoll(line.c_str() + field.size() + 1);
  }
  return -1;
}

int64_t CountDescendants(pid_t root) {
  std::map<pid_t, std::vector<pid_t>> children;
  for (const std::string& name : ListDir("/proc")) {
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in("/proc/" + name + "/stat");
    std::string stat;
    std::getline(in, stat);
    size_t close = stat.rfind(')');  // The command may hold spaces and parentheses.
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    children[ppid].push_back(static_cast<pid_t>(std::atoi(name.c_str())));
  }
  int64_t n = 0;
  std::vector<pid_t> todo = {root};
  while (!todo.empty()) {
    pid_t p = todo.back();
    todo.pop_back();
    ++n;
    for (pid_t c : children[p]) todo.push_back(c);
  }
  return n;
}

int64_t CountCgroups(const std::string& parent) {
  int64_t n = 0;
  std::set<std::string> seen;  // v1 hierarchies may be co-mounted under two names (cpu,cpuacct).
  auto add = [&](const std::string& dir) {
    char real[PATH_MAX];
    if (!IsDir(dir) || !realpath(dir.c_str(), real) || !seen.insert(real).second) return;
    n += 1 + CountTree(dir, /*dirs_only=*/true);
  };
  add("/sys/fs/cgroup/" + parent);
  for (const std::string& hierarchy : ListDir("/sys/fs/cgroup")) {
    add("/sys/fs/cgroup/" + hierarchy + "/" + parent);
  }
  return n;
}

int64_t CountMounts(pid_t pid, const std::vector<std::string>& under) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/mountinfo");
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, mount_point;
    fields >> id >> parent >> dev >> root >> mount_point;
    for (const std::string& prefix : under) {
      if (mount_point.rfind(prefix, 0) == 0) {
        ++n;
        break;
      }
    }
  }
  return n;
}

Resources Measure(pid_t server, const std::string& cgroup_parent, const std::string& data_dir,
                  const std::string& runtime_dir) {
  Resources r;
  r.fds = static_cast<int64_t>(ListDir("/proc/" + std::to_string(server) + "/fd").size());
  r.threads = StatusField(server, "Threads");
  r.rss_kb = StatusField(server, "VmRSS");
  r.processes = CountDescendants(server);
  r.cgroups = CountCgroups(cgroup_parent);
  r.mounts = CountMounts(server, {data_dir, runtime_dir});
  r.data_files = CountTree(data_dir, /*dirs_only=*/false);
  r.runtime_entries = CountTree(runtime_dir, /*dirs_only=*/false);
  return r;
}

// ---- The workers. ----

std::string Sha256Hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

struct Tally {
  Samples cell, upload, download, create, end;
  std::map<std::string, int64_t> errors;  // "what: HTTP status" → how many.
  int64_t cells = 0, uploads = 0, downloads = 0, sessions = 0;
  std::string first_error;

  void Merge(const Tally& o) {
    cell.Merge(o.cell);
    upload.Merge(o.upload);
    download.Merge(o.download);
    create.Merge(o.create);
    end.Merge(o.end);
    for (const auto& [k, v] : o.errors) errors[k] += v;
    cells += o.cells;
    uploads += o.uploads;
    downloads += o.downloads;
    sessions += o.sessions;
    if (first_error.empty()) first_error = o.first_error;
  }
};

class Worker {
 public:
  Worker(const BenchServer& server, const Flags& flags, int index)
      : server_(server),
        flags_(flags),
        random_(static_cast<uint64_t>(index) * 7919 + 1),
        index_(index) {}

  void Run(const std::atomic<bool>& stop) {
    std::unique_ptr<HttpClient> client = Connect();
    int64_t done = 0;
    while (!stop) {
      try {
        if (session_.empty() && !NewSession(*client)) {
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          continue;
        }
        ++done;
        if (flags_.upload_every > 0 && done % flags_.upload_every == 0) {
          RoundTripAFile(*client);
        } else {
          SmallCell(*client);
        }
        if (flags_.churn_every > 0 && done % flags_.churn_every == 0) EndSession(*client);
      } catch (const std::exception& e) {
        // The connection broke (the server closed it, or a timeout): counted, then a new one.
        Fail("connection", 0, e.what());
        client = Connect();
      }
    }
    try {
      if (!session_.empty()) EndSession(*client);
    } catch (const std::exception& e) {
      Fail("end session", 0, e.what());
    }
  }

  const Tally& tally() const { return tally_; }

 private:
  std::unique_ptr<HttpClient> Connect() {
    for (;;) {
      try {
        return std::make_unique<HttpClient>(server_.port(), server_.authorization());
      } catch (const std::exception& e) {
        Fail("connect", 0, e.what());
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    }
  }

  void Fail(const std::string& what, int status, const std::string& body) {
    tally_.errors[what + ": HTTP " + std::to_string(status)]++;
    if (tally_.first_error.empty()) {
      tally_.first_error = "worker " + std::to_string(index_) + ": " + what + ": HTTP " +
                           std::to_string(status) + ": " + body.substr(0, 300);
    }
  }

  bool NewSession(HttpClient& c) {
    std::string body;
    Stopwatch w;
    int status = c.Request(http::verb::post, "/v1/sessions", "{}", &body);
    if (status != 201) {
      Fail("create session", status, body);
      return false;
    }
    tally_.create.Add(w.ElapsedMs());
    session_ = json::parse(body)["id"];
    counter_ = 0;
    tally_.sessions++;
    return true;
  }

  void EndSession(HttpClient& c) {
    std::string body;
    Stopwatch w;
    int status = c.Request(http::verb::delete_, "/v1/sessions/" + session_, "", &body);
    if (status != 200)
      Fail("end session", status, body);
    else
      tally_.end.Add(w.ElapsedMs());
    session_.clear();
  }

  // Runs `code`; the record when it ran to "ok", else null (counted as a failure).
  json Cell(HttpClient& c, const std::string& code) {
    std::string body;
    Stopwatch w;
    int status = c.Request(http::verb::post, "/v1/sessions/" + session_ + "/executions",
                           json{{"code", code}}.dump(), &body);
    double ms = w.ElapsedMs();
    if (status != 200) {
      Fail("execute", status, body);
      if (status == 404 || status == 410) session_.clear();  // Gone: the next loop makes one.
      return nullptr;
    }
    json record = json::parse(body, nullptr, false);
    if (!record.is_object() || record.value("status", "") != "ok") {
      Fail("execute (cell failed)", status, body);
      return nullptr;
    }
    tally_.cell.Add(ms);
    tally_.cells++;
    return record;
  }

  void SmallCell(HttpClient& c) {
    json record = Cell(c, "n = globals().get('n', 0) + 1\nprint(n, sum(range(1000)))");
    if (record.is_null()) return;
    ++counter_;
    std::string expected = std::to_string(counter_) + " 499500\n";
    if (record.value("stdout", "") != expected) {
      Fail("execute (state lost)", 200, "expected " + expected + ", got " + record.dump());
      counter_ = 0;  // Resynchronise on the session's own count: one failure, not all after.
      session_.clear();
    }
  }

  void RoundTripAFile(HttpClient& c) {
    // 64 KiB of random numbers as a CSV: the server checks that content matches its type, and
    // raw random bytes now and then look like something else (zlib, say).
    std::string bytes = "a,b\n";
    while (bytes.size() < (64 << 10)) {
      bytes += std::to_string(random_() % 1000000) + "," + std::to_string(random_() % 1000) + "\n";
    }
    std::string name = "in" + std::to_string(tally_.uploads) + ".csv";
    std::string body;
    Stopwatch w;
    int status = c.Request(http::verb::post, "/v1/sessions/" + session_ + "/files?filename=" + name,
                           bytes, &body, "application/octet-stream");
    if (status != 201) {
      Fail("upload", status, body);
      return;
    }
    tally_.upload.Add(w.ElapsedMs());
    tally_.uploads++;
    json placed = json::parse(body, nullptr, false);
    std::vector<std::string> file_ids;
    if (placed.is_object() && placed.contains("data")) {
      for (const json& f : placed["data"]) {
        if (f.contains("file_id")) file_ids.push_back(f["file_id"]);
      }
    }
    json record = Cell(c,
                       "import hashlib\n"
                       "with open('/mnt/data/" +
                           name +
                           "', 'rb') as f: d = f.read()\n"
                           "with open('/mnt/data/" +
                           name +
                           ".sha256', 'w') as f: "
                           "f.write(hashlib.sha256(d).hexdigest())\n");
    if (!record.is_null()) {
      std::string artifact_id;
      for (const json& a : record.value("artifacts", json::array())) {
        if (a.value("filename", "") == name + ".sha256") artifact_id = a.value("id", "");
      }
      if (artifact_id.empty()) {
        Fail("artifact missing", 200, record.dump());
      } else {
        file_ids.push_back(artifact_id);
        Stopwatch d;
        status = c.Request(http::verb::get, "/v1/files/" + artifact_id + "/content", "", &body);
        if (status != 200) {
          Fail("download", status, body);
        } else if (body != Sha256Hex(bytes)) {
          Fail("download (wrong bytes)", status, body);
        } else {
          tally_.download.Add(d.ElapsedMs());
          tally_.downloads++;
        }
      }
    }
    for (const std::string& id : file_ids) {
      status = c.Request(http::verb::delete_, "/v1/files/" + id, "", &body);
      if (status != 200 && status != 204) Fail("delete file", status, body);
    }
    // The session's own copies go with the session.
  }

  const BenchServer& server_;
  const Flags& flags_;
  std::mt19937_64 random_;
  int index_;
  std::string session_;
  int64_t counter_ = 0;
  Tally tally_;
};

json SummaryJson(const Summary& s) {
  return {{"n", s.n},     {"p50", s.p50}, {"p90", s.p90},  {"p99", s.p99},
          {"min", s.min}, {"max", s.max}, {"mean", s.mean}};
}

void Print(const char* name, Samples& samples) {
  Summary s = samples.Summarize();
  std::printf("  %-22s p50 %8.2f ms  p99 %8.2f  max %8.2f  (n=%zu)\n", name, s.p50, s.p99, s.max,
              s.n);
}

int Main(const Flags& flags) {
  // Its own cgroup parent and runtime dir: the counts are this server's alone.
  std::string cgroup_parent = "pycell-soak-" + std::to_string(getpid());
  char config_tmpl[] = "/tmp/pycell-soak-config-XXXXXX";
  int config_fd = mkstemp(config_tmpl);
  if (config_fd < 0) {
    std::perror("mkstemp");
    return 1;
  }
  close(config_fd);
  // Every worker's connection comes from 127.0.0.1: the per-address limit must allow them all.
  std::ofstream(config_tmpl) << "[server]\nmax_connections_per_address = " << flags.sessions + 16
                             << "\n"
                             << "[engine]\n"
                             << "max_sessions = " << flags.sessions + flags.ready_sessions + 8
                             << "\ncgroup_parent = \"" << cgroup_parent << "\"\n";
  BenchServer server("soak", {.pycell = flags.pycell,
                              .runtime_dir = flags.runtime_dir,
                              .config_path = config_tmpl,
                              .ready_sessions = flags.ready_sessions});
  server.Start();
  auto measure = [&] {
    return Measure(server.pid(), cgroup_parent, server.data_dir(), flags.runtime_dir);
  };
  // The baseline: the pool full, nothing else going on.
  server.WaitReady(120);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  Resources before = measure();

  std::printf(
      "soak: %d sessions, %d s, an upload every %d cells, a new session every %d (%u cores)\n",
      flags.sessions, flags.seconds, flags.upload_every, flags.churn_every,
      std::thread::hardware_concurrency());
  std::fflush(stdout);
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < flags.sessions; ++i) {
    workers.push_back(std::make_unique<Worker>(server, flags, i));
  }
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  Stopwatch wall;
  for (auto& w : workers) threads.emplace_back([&stop, &w] { w->Run(stop); });
  // Peaks, sampled every 5 s while the load runs.
  Resources peak;
  for (int t = 0; t < flags.seconds; ++t) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    if (t % 5 == 4) {
      Resources now = measure();
      peak.fds = std::max(peak.fds, now.fds);
      peak.threads = std::max(peak.threads, now.threads);
      peak.rss_kb = std::max(peak.rss_kb, now.rss_kb);
      peak.processes = std::max(peak.processes, now.processes);
      peak.cgroups = std::max(peak.cgroups, now.cgroups);
      peak.mounts = std::max(peak.mounts, now.mounts);
      peak.data_files = std::max(peak.data_files, now.data_files);
      peak.runtime_entries = std::max(peak.runtime_entries, now.runtime_entries);
    }
  }
  stop = true;
  for (auto& t : threads) t.join();
  double seconds = wall.ElapsedMs() / 1000.0;
  Tally all;
  for (auto& w : workers) all.Merge(w->tally());
  workers.clear();  // Closes every connection.

  // Back to rest: the pool refilled, the ended sessions' processes reaped. Settling takes a few
  // seconds (the pool refills one session at a time); wait up to a minute for the counts.
  server.WaitReady(120);
  Resources after;
  for (int i = 0; i < 60; ++i) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    after = measure();
    if (after.processes == before.processes && after.cgroups == before.cgroups &&
        after.mounts == before.mounts && after.fds == before.fds &&
        after.threads == before.threads && after.data_files == before.data_files &&
        after.runtime_entries == before.runtime_entries) {
      break;
    }
  }

  double rate = static_cast<double>(all.cells) / seconds;
  std::printf(
      "  %-22s %8.1f cells/s over %.0f s (%lld cells, %lld sessions, %lld uploads, "
      "%lld downloads)\n",
      "throughput", rate, seconds, static_cast<long long>(all.cells),
      static_cast<long long>(all.sessions), static_cast<long long>(all.uploads),
      static_cast<long long>(all.downloads));
  Print("cell round trip", all.cell);
  Print("upload 64 KiB", all.upload);
  Print("download", all.download);
  Print("new session", all.create);
  Print("end session", all.end);
  int64_t failures = 0;
  for (const auto& [what, n] : all.errors) {
    std::printf("  failed: %-40s %lld\n", what.c_str(), static_cast<long long>(n));
    failures += n;
  }
  if (!all.first_error.empty()) std::printf("  first failure: %s\n", all.first_error.c_str());

  std::printf("  %-16s %10s %10s %10s\n", "resource", "before", "peak", "after");
  json b = before.ToJson(), p = peak.ToJson(), a = after.ToJson();
  bool back = true;
  for (const auto& [key, value] : b.items()) {
    int64_t v0 = value, v1 = a[key];
    bool ok =
        key == "rss_kb" ? v1 <= v0 + static_cast<int64_t>(flags.rss_slack_mb * 1024) : v1 == v0;
    back = back && ok;
    std::printf("  %-16s %10lld %10lld %10lld  %s\n", key.c_str(), static_cast<long long>(v0),
                static_cast<long long>(p[key].get<int64_t>()), static_cast<long long>(v1),
                ok ? "" : "NOT BACK");
  }
  int stop_status = server.Stop();
  unlink(config_tmpl);
  std::printf("  server stopped: exit status %d\n",
              WIFEXITED(stop_status) ? WEXITSTATUS(stop_status) : -1);

  if (!flags.json_path.empty()) {
    json results = {{"cores", std::thread::hardware_concurrency()},
                    {"sessions", flags.sessions},
                    {"seconds", seconds},
                    {"cells", all.cells},
                    {"cells_per_s", rate},
                    {"uploads", all.uploads},
                    {"downloads", all.downloads},
                    {"sessions_created", all.sessions},
                    {"cell_ms", SummaryJson(all.cell.Summarize())},
                    {"upload_ms", SummaryJson(all.upload.Summarize())},
                    {"download_ms", SummaryJson(all.download.Summarize())},
                    {"new_session_ms", SummaryJson(all.create.Summarize())},
                    {"failures", all.errors},
                    {"before", b},
                    {"peak", p},
                    {"after", a}};
    std::ofstream(flags.json_path) << results.dump(2) << "\n";
  }
  if (!flags.check) return 0;
  bool ok = failures == 0 && back && all.cells > 0 && all.downloads > 0 && WIFEXITED(stop_status) &&
            WEXITSTATUS(stop_status) == 0;
  std::printf("soak: %s\n", ok ? "passed" : "FAILED");
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace pycell::bench

int main(int argc, char** argv) {
  pycell::bench::Flags flags;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << pycell::bench::kUsage;
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--pycell")
      flags.pycell = next();
    else if (arg == "--sessions")
      flags.sessions = std::stoi(next());
    else if (arg == "--seconds")
      flags.seconds = std::stoi(next());
    else if (arg == "--upload-every")
      flags.upload_every = std::stoi(next());
    else if (arg == "--churn-every")
      flags.churn_every = std::stoi(next());
    else if (arg == "--ready-sessions")
      flags.ready_sessions = std::stoi(next());
    else if (arg == "--runtime-dir")
      flags.runtime_dir = next();
    else if (arg == "--rss-slack-mb")
      flags.rss_slack_mb = std::stod(next());
    else if (arg == "--json")
      flags.json_path = next();
    else if (arg == "--check")
      flags.check = true;
    else {
      std::cerr << pycell::bench::kUsage;
      return 2;
    }
  }
  if (flags.sessions < 1 || flags.seconds < 1) {
    std::cerr << pycell::bench::kUsage;
    return 2;
  }
  return pycell::bench::Main(flags);
}
