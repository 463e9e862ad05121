// idle_bench: what idle connections cost the server (issue 16, "Idle connections cost no
// thread"), and the trivial cell's round trip and throughput, for one build against another in
// the same run. docs/benchmarks.md records a run.
//
//   idle_bench --pycell build/pycell [--baseline /tmp/pycell-baseline] [options, see kUsage]
//
// Each round starts each binary's `pycell serve` in turn (the order alternates between rounds, so
// that drift in the machine's load does not favour one) and measures:
//   1. a trivial execution's round trip (POST /v1/sessions/{id}/executions {"code": "1"}) on one
//      keep-alive connection, 1000 times after 50 warm-up calls;
//   2. executions per second with 50 sessions, each driven by its own connection, for 10 s;
//   3. with N idle connections held (each served one GET /healthz, then idle; 50 per client
//      address, from 127.0.1.1 on, so that no address reaches the per-address limit): the
//      server's threads and RSS, and a valid request's latency — GET /v1/me with the admin key,
//      on a kept-alive connection and on a new connection each time — against the same on the
//      same server before the idle connections were opened. The baseline gets --baseline-idle
//      idle connections (default 0: skipped; a thread-per-connection server needs a thread each).
// The server's configuration raises keep_alive_timeout_s (the idle connections must outlive the
// measurement) and max_connections; both builds know these keys.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
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

constexpr double kIdleP99TargetMs = 50.0;

struct Flags {
  std::string pycell = "build/pycell";
  std::string baseline;  // Another build to compare with, in the same run.
  std::string runtime_dir = "/run/pycell-idle-bench";
  std::string json_path;
  int idle = 10000;
  int baseline_idle = 0;
  int requests = 2000;  // Valid requests timed, per kind.
  int cells = 1000;
  int concurrent = 50;
  int seconds = 10;
  int rounds = 2;
};

constexpr char kUsage[] =
    "usage: idle_bench --pycell PATH [options]\n"
    "  --baseline PATH     another build, measured in the same run (e.g. /tmp/pycell-baseline)\n"
    "  --idle N            idle connections held (default 10000)\n"
    "  --baseline-idle N   idle connections for the baseline (default 0: not measured)\n"
    "  --requests N        valid requests timed, per kind (default 2000)\n"
    "  --cells N           trivial round trips (default 1000)\n"
    "  --concurrent N      sessions at once for throughput (default 50)\n"
    "  --seconds N         throughput run length (default 10)\n"
    "  --rounds N          rounds of each build (default 2)\n"
    "  --json FILE         also write the results as JSON\n";

json SummaryJson(const Summary& s) {
  return {{"n", s.n}, {"p50", s.p50}, {"p90", s.p90}, {"p99", s.p99}, {"max", s.max}};
}

void Print(const char* name, const Summary& s) {
  std::printf("    %-40s p50 %8.3f ms  p90 %8.3f  p99 %8.3f  max %8.3f  (n=%zu)\n", name, s.p50,
              s.p90, s.p99, s.max, s.n);
}

std::string NewSession(HttpClient& c) {
  std::string body;
  int status = c.Request(http::verb::post, "/v1/sessions", "{}", &body);
  return Expect(status, body, 201, "create session")["id"];
}

void EndSession(HttpClient& c, const std::string& id) {
  std::string body;
  c.Request(http::verb::delete_, "/v1/sessions/" + id, "", &body);
}

double RunCell(HttpClient& c, const std::string& session) {
  std::string body;
  Stopwatch w;
  int status = c.Request(http::verb::post, "/v1/sessions/" + session + "/executions",
                         "{\"code\":\"1\"}", &body);
  double ms = w.ElapsedMs();
  json record = Expect(status, body, 200, "execute");
  if (record["status"] != "ok") {
    std::cerr << "idle_bench: the cell failed: " << body << "\n";
    std::exit(1);
  }
  return ms;
}

// The server's "Threads:" and "VmRSS:" (kB) from /proc.
std::pair<long, long> ThreadsAndRssKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  long threads = 0, rss = 0;
  while (std::getline(in, line)) {
    if (line.rfind("Threads:", 0) == 0) threads = std::stol(line.substr(8));
    if (line.rfind("VmRSS:", 0) == 0) rss = std::stol(line.substr(6));
  }
  return {threads, rss};
}

// The server's CPU time so far (user + system, all its threads), in ms: what a figure cost it,
// less sensitive than wall time to what else the machine runs.
double CpuMs(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; fields >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);  // utime, stime
    if (i == 15) break;
  }
  return ticks * 1000.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Reads one response with a Content-Length body from a blocking socket: its status, or 0.
int ReadResponse(int fd) {
  std::string data;
  char buffer[4096];
  size_t head_end = std::string::npos;
  while (head_end == std::string::npos) {
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) return 0;
    data.append(buffer, static_cast<size_t>(n));
    head_end = data.find("\r\n\r\n");
  }
  size_t length = 0;
  size_t at = data.find("Content-Length: ");
  if (at == std::string::npos) at = data.find("content-length: ");
  if (at != std::string::npos && at < head_end) length = std::stoul(data.substr(at + 16));
  while (data.size() < head_end + 4 + length) {
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) return 0;
    data.append(buffer, static_cast<size_t>(n));
  }
  return data.size() > 12 ? std::stoi(data.substr(9, 3)) : 0;
}

// A connection from `source` that was served one GET /healthz and stays open: its descriptor, or
// -1 (and a message once) when the server refused or closed it.
int OpenIdle(uint16_t port, const std::string& source) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in from{};
  from.sin_family = AF_INET;
  ::inet_pton(AF_INET, source.c_str(), &from.sin_addr);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    ::close(fd);
    return -1;
  }
  static const char kRequest[] = "GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n";
  if (::send(fd, kRequest, sizeof kRequest - 1, MSG_NOSIGNAL) != sizeof kRequest - 1 ||
      ReadResponse(fd) != 200) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// GET /v1/me with the admin key on a new connection, closed after: milliseconds, or -1.
double FreshRequest(uint16_t port, const std::string& authorization) {
  Stopwatch w;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    ::close(fd);
    return -1;
  }
  std::string request =
      "GET /v1/me HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
      "Authorization: " +
      authorization + "\r\n\r\n";
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  int status = ReadResponse(fd);
  ::close(fd);
  return status == 200 ? w.ElapsedMs() : -1;
}

// Valid requests: on a kept-alive connection, and on a new connection each.
json ValidRequests(const BenchServer& server, int n, const char* when) {
  HttpClient c = server.Client();
  std::string body;
  Samples kept, fresh;
  int failed = 0;
  for (int i = 0; i < 50; ++i) c.Request(http::verb::get, "/v1/me", "", &body);  // Warm-up.
  for (int i = 0; i < n; ++i) {
    Stopwatch w;
    int status = c.Request(http::verb::get, "/v1/me", "", &body);
    if (status == 200)
      kept.Add(w.ElapsedMs());
    else
      failed++;
  }
  for (int i = 0; i < n / 4; ++i) {
    double ms = FreshRequest(server.port(), server.authorization());
    if (ms >= 0)
      fresh.Add(ms);
    else
      failed++;
  }
  std::string a = std::string("GET /v1/me, kept-alive, ") + when;
  std::string b = std::string("GET /v1/me, new connection, ") + when;
  Print(a.c_str(), kept.Summarize());
  Print(b.c_str(), fresh.Summarize());
  if (failed) std::printf("    %d valid requests FAILED\n", failed);
  return {{"kept_alive_ms", SummaryJson(kept.Summarize())},
          {"new_connection_ms", SummaryJson(fresh.Summarize())},
          {"failed", failed}};
}

json MeasureOne(const Flags& flags, const std::string& pycell, int idle,
                const std::string& config_path) {
  BenchServer server("idle-bench", {.pycell = pycell,
                                    .runtime_dir = flags.runtime_dir,
                                    .config_path = config_path,
                                    .ready_sessions = 4});
  server.Start();
  json result = {{"pycell", pycell}};
  std::printf("  %s\n", pycell.c_str());

  // 1. Trivial round trip.
  {
    HttpClient c = server.Client();
    std::string session = NewSession(c);
    for (int i = 0; i < 50; ++i) RunCell(c, session);
    Samples samples;
    double cpu = CpuMs(server.pid());
    for (int i = 0; i < flags.cells; ++i) samples.Add(RunCell(c, session));
    cpu = CpuMs(server.pid()) - cpu;
    EndSession(c, session);
    Print("trivial execution round trip", samples.Summarize());
    std::printf("    %-40s %8.3f ms of CPU per execution\n", "server CPU, round trips",
                cpu / flags.cells);
    result["round_trip_ms"] = SummaryJson(samples.Summarize());
    result["round_trip_server_cpu_ms"] = cpu / flags.cells;
  }

  // 2. Throughput.
  {
    std::vector<std::unique_ptr<HttpClient>> clients;
    std::vector<std::string> sessions;
    for (int i = 0; i < flags.concurrent; ++i) {
      clients.push_back(std::make_unique<HttpClient>(server.port(), server.authorization()));
      sessions.push_back(NewSession(*clients.back()));
    }
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> done{0};
    std::vector<Samples> latencies(static_cast<size_t>(flags.concurrent));
    std::vector<std::thread> threads;
    Stopwatch w;
    double cpu = CpuMs(server.pid());
    for (size_t i = 0; i < clients.size(); ++i) {
      threads.emplace_back([&, i] {
        while (!stop) {
          latencies[i].Add(RunCell(*clients[i], sessions[i]));
          done++;
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::seconds(flags.seconds));
    stop = true;
    for (auto& t : threads) t.join();
    double rate = static_cast<double>(done.load()) / (w.ElapsedMs() / 1000.0);
    cpu = CpuMs(server.pid()) - cpu;
    Samples all;
    for (auto& l : latencies) all.Merge(l);
    std::printf("    %-40s %8.0f executions/s (%d sessions), server CPU %.3f ms per execution\n",
                "throughput", rate, flags.concurrent, cpu / static_cast<double>(done.load()));
    result["throughput_server_cpu_ms"] = cpu / static_cast<double>(done.load());
    Print("latency under that load", all.Summarize());
    result["throughput_per_s"] = rate;
    result["throughput_latency_ms"] = SummaryJson(all.Summarize());
    for (size_t i = 0; i < clients.size(); ++i) EndSession(*clients[i], sessions[i]);
  }

  // 3. Idle connections.
  if (idle > 0) {
    auto [threads_before, rss_before] = ThreadsAndRssKb(server.pid());
    result["valid_without_idle"] = ValidRequests(server, flags.requests, "no idle connections");
    std::vector<int> held;
    int refused = 0;
    Stopwatch opening;
    for (int i = 0; i < idle; ++i) {
      // 50 per address: 127.0.1.1, 127.0.1.2, …
      int a = 256 + i / 50;
      std::string source = "127.0." + std::to_string(a / 256) + "." + std::to_string(a % 256);
      int fd = OpenIdle(server.port(), source);
      if (fd < 0)
        refused++;
      else
        held.push_back(fd);
    }
    double open_s = opening.ElapsedMs() / 1000;
    std::this_thread::sleep_for(std::chrono::seconds(1));
    auto [threads_idle, rss_idle] = ThreadsAndRssKb(server.pid());
    std::printf(
        "    %d idle connections held (%d refused or failed; opened in %.1f s): server "
        "threads %ld -> %ld, RSS %.1f -> %.1f MB\n",
        static_cast<int>(held.size()), refused, open_s, threads_before, threads_idle,
        rss_before / 1024.0, rss_idle / 1024.0);
    json with = ValidRequests(server, flags.requests, "idle connections held");
    double p99 = with["kept_alive_ms"]["p99"];
    double p99_new = with["new_connection_ms"]["p99"];
    std::printf(
        "    valid request p99 with %d idle: %.2f ms kept-alive, %.2f ms new connection; "
        "target < %.0f ms: %s\n",
        static_cast<int>(held.size()), p99, p99_new, kIdleP99TargetMs,
        std::max(p99, p99_new) < kIdleP99TargetMs && with["failed"] == 0 ? "met" : "MISSED");
    // And a cell's round trip with them held.
    {
      HttpClient c = server.Client();
      std::string session = NewSession(c);
      for (int i = 0; i < 20; ++i) RunCell(c, session);
      Samples samples;
      for (int i = 0; i < flags.cells / 2; ++i) samples.Add(RunCell(c, session));
      EndSession(c, session);
      Print("trivial round trip, idle connections held", samples.Summarize());
      with["round_trip_ms"] = SummaryJson(samples.Summarize());
    }
    with["idle_held"] = held.size();
    with["idle_refused"] = refused;
    with["threads_before"] = threads_before;
    with["threads_idle"] = threads_idle;
    with["rss_before_kb"] = rss_before;
    with["rss_idle_kb"] = rss_idle;
    result["valid_with_idle"] = with;
    for (int fd : held) ::close(fd);
  }
  server.Stop();
  return result;
}

int Main(const Flags& flags) {
  // Every idle connection is a descriptor here too.
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur != RLIM_INFINITY &&
      limit.rlim_cur < static_cast<rlim_t>(std::max(flags.idle, flags.baseline_idle)) + 200) {
    std::fprintf(stderr, "idle_bench: only %llu descriptors allowed (ulimit -n)\n",
                 static_cast<unsigned long long>(limit.rlim_cur));
    return 1;
  }
  char config_path[] = "/tmp/pycell-idle-bench-XXXXXX";
  int fd = ::mkstemp(config_path);
  if (fd < 0) return 1;
  ::close(fd);
  std::ofstream(config_path) << "[server]\nkeep_alive_timeout_s = 900\nmax_connections = "
                             << std::max(flags.idle, flags.baseline_idle) + 1000 << "\n";
  std::printf("idle_bench: %u cores, %d idle connections, %d round(s)\n",
              std::thread::hardware_concurrency(), flags.idle, flags.rounds);
  json runs = json::array();
  for (int round = 0; round < flags.rounds; ++round) {
    std::printf("round %d\n", round + 1);
    std::vector<std::pair<std::string, int>> order = {{flags.pycell, flags.idle}};
    if (!flags.baseline.empty()) {
      order.emplace_back(flags.baseline, flags.baseline_idle);
      if (round % 2 == 0) std::swap(order[0], order[1]);  // The baseline first, then second.
    }
    for (const auto& [pycell, idle] : order) {
      json r = MeasureOne(flags, pycell, idle, config_path);
      r["round"] = round + 1;
      r["baseline"] = pycell == flags.baseline;
      runs.push_back(r);
    }
  }
  ::unlink(config_path);
  if (!flags.json_path.empty()) {
    std::ofstream(flags.json_path)
        << json{{"cores", std::thread::hardware_concurrency()}, {"runs", runs}}.dump(2) << "\n";
  }
  return 0;
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
    else if (arg == "--baseline")
      flags.baseline = next();
    else if (arg == "--json")
      flags.json_path = next();
    else if (arg == "--idle")
      flags.idle = std::stoi(next());
    else if (arg == "--baseline-idle")
      flags.baseline_idle = std::stoi(next());
    else if (arg == "--requests")
      flags.requests = std::stoi(next());
    else if (arg == "--cells")
      flags.cells = std::stoi(next());
    else if (arg == "--concurrent")
      flags.concurrent = std::stoi(next());
    else if (arg == "--seconds")
      flags.seconds = std::stoi(next());
    else if (arg == "--rounds")
      flags.rounds = std::stoi(next());
    else {
      std::cerr << pycell::bench::kUsage;
      return 2;
    }
  }
  return pycell::bench::Main(flags);
}
