// http_bench: pycell's service over HTTP on loopback, against its targets and a Jupyter kernel's
// round trip measured in the same run. `make bench-http` runs it; docs/benchmarks.md records a run.
//
//   http_bench --pycell build/pycell [--data-dir DIR] [--json FILE] [options, see kUsage]
//
// It starts `pycell serve` on a free port with a fresh data dir, then measures:
//   1. a trivial execution's round trip (POST /v1/sessions/{id}/executions {"code": "1"}) on one
//      keep-alive connection;
//   2. a new session from the warm pool and its first cell (POST /v1/sessions, then the cell),
//      each sample after the pool refilled;
//   3. executions per second with N sessions each driven by its own connection at once;
//   4. the upload of a large file (POST /v1/files, raw body) against OpenSSL's SHA-256 speed on
//      the same bytes in this process — the upload hashes while it writes, so hashing bounds it;
//   5. Jupyter: the same trivial cell through a kernel (jupyter_baseline.py).
// The client is Beast's synchronous HTTP over one socket per thread: thin enough that the figures
// are the server's.
#include <openssl/evp.h>
#include <unistd.h>

#include <atomic>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench_server.h"
#include "samples.h"

namespace pycell::bench {
namespace {

namespace http = boost::beast::http;
using nlohmann::json;

constexpr double kRoundTripTargetMs = 1.0;
constexpr double kNewSessionTargetMs = 15.0;
constexpr double kThroughputTarget = 1500.0;
constexpr double kUploadTargetRatio = 0.85;

struct Flags {
  std::string pycell = "build/pycell";
  std::string data_dir;
  std::string config_path;  // --config: passed to `pycell serve` (e.g. diagnostic settings).
  std::string runtime_dir = "/run/pycell-http-bench";
  std::string json_path;
  std::string jupyter_script = PYCELL_BENCH_JUPYTER_SCRIPT;
  std::string python = "/usr/bin/python3";
  int cells = 1000;
  int sessions = 30;    // New-session samples.
  int concurrent = 50;  // Sessions at once for throughput.
  int seconds = 10;     // Throughput run.
  uint64_t upload_mb = 512;
  bool jupyter = true;
};

constexpr char kUsage[] =
    "usage: http_bench --pycell PATH [options]\n"
    "  --data-dir DIR      server data dir (default: a new temporary folder)\n"
    "  --config FILE       the server's configuration file (default: none)\n"
    "  --cells N           trivial round trips (default 1000)\n"
    "  --sessions N        new-session samples (default 30)\n"
    "  --concurrent N      sessions at once for throughput (default 50)\n"
    "  --seconds N         throughput run length (default 10)\n"
    "  --upload-mb N       upload size (default 512)\n"
    "  --no-jupyter        skip the Jupyter baseline\n"
    "  --json FILE         also write the results as JSON\n";

using Client = HttpClient;

std::string NewSession(Client& c) {
  std::string body;
  int status = c.Request(http::verb::post, "/v1/sessions", "{}", &body);
  return Expect(status, body, 201, "create session")["id"];
}

void EndSession(Client& c, const std::string& id) {
  std::string body;
  c.Request(http::verb::delete_, "/v1/sessions/" + id, "", &body);
}

double RunCell(Client& c, const std::string& session, const std::string& code) {
  std::string body;
  Stopwatch w;
  int status = c.Request(http::verb::post, "/v1/sessions/" + session + "/executions",
                         json{{"code", code}}.dump(), &body);
  double ms = w.ElapsedMs();
  json record = Expect(status, body, 200, "execute");
  if (record["status"] != "ok") {
    std::cerr << "http_bench: the cell failed: " << body << "\n";
    std::exit(1);
  }
  return ms;
}

json SummaryJson(const Summary& s) {
  return {{"n", s.n},     {"p50", s.p50}, {"p90", s.p90},  {"p99", s.p99},
          {"min", s.min}, {"max", s.max}, {"mean", s.mean}};
}

void Print(const char* name, const Summary& s, double target) {
  std::printf("  %-34s p50 %8.3f ms  p90 %8.3f  p99 %8.3f  (n=%zu)", name, s.p50, s.p90, s.p99,
              s.n);
  if (target > 0) std::printf("  target ≤ %.1f ms: %s", target, s.p50 <= target ? "met" : "MISSED");
  std::printf("\n");
}

// OpenSSL SHA-256 over the same 1 MiB chunk, `bytes` in all: bytes per second.
double Sha256Throughput(const std::vector<char>& chunk, uint64_t bytes) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  Stopwatch w;
  for (uint64_t done = 0; done < bytes; done += chunk.size()) {
    EVP_DigestUpdate(ctx, chunk.data(), chunk.size());
  }
  unsigned char digest[32];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx, digest, &length);
  double seconds = w.ElapsedMs() / 1000.0;
  EVP_MD_CTX_free(ctx);
  return static_cast<double>(bytes) / seconds;
}

int Main(const Flags& flags) {
  BenchServer server("http-bench", {.pycell = flags.pycell,
                                    .data_dir = flags.data_dir,
                                    .runtime_dir = flags.runtime_dir,
                                    .config_path = flags.config_path,
                                    .ready_sessions = 4});
  server.Start();
  json results = {{"cores", std::thread::hardware_concurrency()}};
  std::printf("pycell over HTTP on loopback (%u cores)\n", std::thread::hardware_concurrency());

  // 1. Trivial round trip.
  {
    Client c = server.Client();
    std::string session = NewSession(c);
    for (int i = 0; i < 50; ++i) RunCell(c, session, "1");  // Warm-up.
    Samples samples;
    for (int i = 0; i < flags.cells; ++i) samples.Add(RunCell(c, session, "1"));
    EndSession(c, session);
    Summary s = samples.Summarize();
    Print("trivial execution round trip", s, kRoundTripTargetMs);
    results["round_trip_ms"] = SummaryJson(s);
  }

  // 2. New session (warm pool) + first cell.
  {
    Client c = server.Client();
    Samples create, total;
    for (int i = 0; i < flags.sessions; ++i) {
      server.WaitReady(30);  // The pool refilled: each sample is a hand-over.
      usleep(200000);
      Stopwatch w;
      std::string session = NewSession(c);
      double created = w.ElapsedMs();
      RunCell(c, session, "1");
      total.Add(w.ElapsedMs());
      create.Add(created);
      EndSession(c, session);
    }
    Print("new session (warm pool)", create.Summarize(), 0);
    Print("new session + first cell", total.Summarize(), kNewSessionTargetMs);
    results["new_session_ms"] = SummaryJson(create.Summarize());
    results["new_session_first_cell_ms"] = SummaryJson(total.Summarize());
  }

  // 3. Throughput: N sessions, one connection each, trivial cells back to back.
  {
    std::vector<std::unique_ptr<Client>> clients;
    std::vector<std::string> sessions;
    for (int i = 0; i < flags.concurrent; ++i) {
      clients.push_back(std::make_unique<Client>(server.port(), server.authorization()));
      sessions.push_back(NewSession(*clients.back()));
    }
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> done{0};
    std::vector<Samples> latencies(static_cast<size_t>(flags.concurrent));
    std::vector<std::thread> threads;
    Stopwatch w;
    for (int i = 0; i < flags.concurrent; ++i) {
      threads.emplace_back([&, i] {
        while (!stop) {
          latencies[static_cast<size_t>(i)].Add(
              RunCell(*clients[static_cast<size_t>(i)], sessions[static_cast<size_t>(i)], "1"));
          done++;
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::seconds(flags.seconds));
    stop = true;
    for (auto& t : threads) t.join();
    double seconds = w.ElapsedMs() / 1000.0;
    Samples all;
    for (auto& l : latencies) all.Merge(l);
    Print("  latency under that load", all.Summarize(), 0);
    results["throughput_latency_ms"] = SummaryJson(all.Summarize());
    double rate = static_cast<double>(done.load()) / seconds;
    std::printf("  %-34s %8.0f executions/s over %d sessions  target ≥ %.0f: %s\n", "throughput",
                rate, flags.concurrent, kThroughputTarget,
                rate >= kThroughputTarget ? "met" : "MISSED");
    results["throughput_per_s"] = rate;
    results["throughput_sessions"] = flags.concurrent;
    for (int i = 0; i < flags.concurrent; ++i)
      EndSession(*clients[static_cast<size_t>(i)], sessions[static_cast<size_t>(i)]);
  }

  // 4. Upload vs OpenSSL SHA-256.
  {
    std::vector<char> chunk(1 << 20);
    std::mt19937_64 random(42);
    for (size_t i = 0; i < chunk.size(); i += 8) {
      uint64_t v = random();
      std::memcpy(&chunk[i], &v, 8);
    }
    uint64_t bytes = flags.upload_mb << 20;
    double sha = Sha256Throughput(chunk, bytes);
    Client c = server.Client();
    std::string body;
    Stopwatch w;
    // Random bytes pass as a pickle (binary content): the whole path runs, fsync and rename too.
    int status = c.Upload("/v1/files?filename=big.pkl", bytes, chunk, &body);
    double seconds = w.ElapsedMs() / 1000.0;
    Expect(status, body, 201, "upload");
    double rate = static_cast<double>(bytes) / seconds;
    std::printf(
        "  %-34s %8.0f MB/s (%.2f s for %llu MB); OpenSSL SHA-256 %.0f MB/s; ratio %.2f  "
        "target ≥ %.2f: %s\n",
        "upload", rate / 1e6, seconds, static_cast<unsigned long long>(flags.upload_mb), sha / 1e6,
        rate / sha, kUploadTargetRatio, rate / sha >= kUploadTargetRatio ? "met" : "MISSED");
    results["upload_bytes_per_s"] = rate;
    results["sha256_bytes_per_s"] = sha;
    results["upload_status"] = status;
  }

  server.Stop();

  // 5. Jupyter's round trip, same machine, same run.
  if (flags.jupyter) {
    std::string command = flags.python + " " + flags.jupyter_script +
                          " --iterations 2 --cell-iterations 300 --kernels 1 2>/dev/null";
    FILE* p = popen(command.c_str(), "r");
    std::string text;
    char buf[4096];
    while (p && fgets(buf, sizeof buf, p)) text += buf;
    if (p) pclose(p);
    json j = json::parse(text, nullptr, false);
    if (!j.is_discarded() && j.contains("cell_ms")) {
      double p50 = j["cell_ms"]["1"]["p50"];
      double ours = results["round_trip_ms"]["p50"];
      std::printf("  %-34s p50 %8.3f ms  (pycell over HTTP is %.1fx faster)\n",
                  "Jupyter kernel round trip (ZMQ)", p50, p50 / ours);
      results["jupyter_cell_ms"] = j["cell_ms"]["1"];
    } else {
      std::printf("  Jupyter baseline failed to run\n");
    }
  }
  if (!flags.json_path.empty()) std::ofstream(flags.json_path) << results.dump(2) << "\n";
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
    else if (arg == "--data-dir")
      flags.data_dir = next();
    else if (arg == "--config")
      flags.config_path = next();
    else if (arg == "--json")
      flags.json_path = next();
    else if (arg == "--cells")
      flags.cells = std::stoi(next());
    else if (arg == "--sessions")
      flags.sessions = std::stoi(next());
    else if (arg == "--concurrent")
      flags.concurrent = std::stoi(next());
    else if (arg == "--seconds")
      flags.seconds = std::stoi(next());
    else if (arg == "--upload-mb")
      flags.upload_mb = std::stoull(next());
    else if (arg == "--no-jupyter")
      flags.jupyter = false;
    else {
      std::cerr << pycell::bench::kUsage;
      return 2;
    }
  }
  return pycell::bench::Main(flags);
}
