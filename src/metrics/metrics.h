// Metrics: pycell's Prometheus metrics (prometheus-cpp's registry and text format), named with the
// `pycell_` prefix and recorded through one typed method per event, so the names and labels live
// in one file (metrics.cc). Gauges that describe state (sessions running, files stored, the audit
// log's length) are not kept up to date by hand: a sampler set by the Service fills them just
// before each scrape.
//
// Thread-safety: every method may be called from any thread (prometheus-cpp's metrics are
// atomic; family lookups are locked inside the library).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pycell::metrics {

// Counts one bug caught by a catch at the top of a thread, loop or connection: an exception that
// escaped a handler or a background loop, which the process survived. `where` names the catcher
// with a fixed word ("http", "http_io", "session_refill", "retention_sweep", …), never a value
// that varies: it becomes the label of pycell_internal_errors_total{where=…}. Process-wide, so
// that code without a Metrics at hand can call it; every Metrics exports the counts at its
// scrapes. The caller logs what happened (with a request id where there is one). Thread-safe;
// it never throws and never allocates once `where` was seen.
void CountInternalError(std::string_view where);
// The total of CountInternalError calls since the process started (tests).
uint64_t InternalErrorCount();

// What the sampler reports, read at scrape time.
struct PoolState {
  std::string pool;
  double ready = 0;      // Warm sessions waiting.
  double active = 0;     // Handed out and running.
  double executing = 0;  // Running a cell now.
};
struct StateSample {
  std::vector<PoolState> pools;
  double files_stored = 0;
  double bytes_stored = 0;
  double audit_events = 0;            // The audit log's length (its last seq): every event
                                      // written, by anyone, since the database began.
  double sessions_over_expected = 0;  // Active sessions past usage.expected_session_s.
};

class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  void SessionCreated(const std::string& pool);
  void SessionEnded(const std::string& pool, const std::string& reason, double seconds);
  // One cell: its status ("ok", "error", "timeout", …) and wall time.
  void Execution(const std::string& status, double seconds);
  // "timeout_interrupted", "timeout_killed", "memory_kill", "crashed".
  void SandboxEvent(const std::string& event);
  void Upload(uint64_t bytes);
  void Download(uint64_t bytes);
  // `route` is the route's pattern ("/v1/sessions/{id}"), or "unmatched".
  void HttpRequest(const std::string& method, const std::string& route, int status, double seconds);
  void AuthFailure(const std::string& reason);
  void QuotaRefusal(const std::string& quota);
  void PoolRefill(double seconds);

  // Fills the state gauges before each scrape.
  void SetSampler(std::function<StateSample()> sampler);
  // The text exposition format (version 0.0.4) of every metric.
  std::string Scrape();

 private:
  struct Families;
  std::unique_ptr<Families> families_;
};

}  // namespace pycell::metrics
