// Samples: latencies of one benchmark, and their summary (p50, p90, min, max, mean) in ms.
// A plain value; not thread-safe.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <numeric>
#include <vector>

namespace pycell::bench {

struct Summary {
  size_t n = 0;
  double p50 = 0, p90 = 0, p99 = 0, min = 0, max = 0, mean = 0;
};

class Samples {
 public:
  void Add(double ms) { ms_.push_back(ms); }
  void Add(std::chrono::steady_clock::duration d) {
    Add(std::chrono::duration<double, std::milli>(d).count());
  }
  bool empty() const { return ms_.empty(); }
  void Merge(const Samples& other) { ms_.insert(ms_.end(), other.ms_.begin(), other.ms_.end()); }

  // Percentiles interpolate linearly between ranks (as numpy's default and the Jupyter script).
  Summary Summarize() const {
    Summary s;
    if (ms_.empty()) return s;
    std::vector<double> xs = ms_;
    std::sort(xs.begin(), xs.end());
    auto percentile = [&](double p) {
      double rank = p * static_cast<double>(xs.size() - 1);
      size_t lo = static_cast<size_t>(rank);
      size_t hi = std::min(lo + 1, xs.size() - 1);
      return xs[lo] + (xs[hi] - xs[lo]) * (rank - static_cast<double>(lo));
    };
    s.n = xs.size();
    s.p50 = percentile(0.5);
    s.p90 = percentile(0.9);
    s.p99 = percentile(0.99);
    s.min = xs.front();
    s.max = xs.back();
    s.mean = std::accumulate(xs.begin(), xs.end(), 0.0) / static_cast<double>(xs.size());
    return s;
  }

 private:
  std::vector<double> ms_;
};

// Times one call: `Stopwatch w; ...; samples.Add(w.Elapsed());`
class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  std::chrono::steady_clock::duration Elapsed() const {
    return std::chrono::steady_clock::now() - start_;
  }
  double ElapsedMs() const { return std::chrono::duration<double, std::milli>(Elapsed()).count(); }

 private:
  std::chrono::steady_clock::time_point start_;
};

}  // namespace pycell::bench
