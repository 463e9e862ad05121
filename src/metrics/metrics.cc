#include "metrics/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <atomic>
#include <map>
#include <sstream>

#include "common/mutex.h"

namespace pycell::metrics {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;

// Every metric pycell exports: its name, help and labels are here and nowhere else.
struct Metrics::Families {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();

  Family<Counter>& sessions_created = prometheus::BuildCounter()
                                          .Name("pycell_sessions_created_total")
                                          .Help("Sessions handed out to callers, by pool.")
                                          .Register(*registry);
  Family<Counter>& sessions_ended =
      prometheus::BuildCounter()
          .Name("pycell_sessions_ended_total")
          .Help(
              "Sessions ended, by pool and reason (closed, idle, lifetime, memory, crashed, ...).")
          .Register(*registry);
  Family<Histogram>& session_duration = prometheus::BuildHistogram()
                                            .Name("pycell_session_duration_seconds")
                                            .Help("How long sessions lived, from hand-out to end.")
                                            .Register(*registry);
  Family<Counter>& executions =
      prometheus::BuildCounter()
          .Name("pycell_executions_total")
          .Help("Cells run, by status (ok, error, timeout, crashed, interrupted).")
          .Register(*registry);
  Family<Histogram>& execution_duration = prometheus::BuildHistogram()
                                              .Name("pycell_execution_duration_seconds")
                                              .Help("Wall time of cells, request to last output.")
                                              .Register(*registry);
  Family<Counter>& sandbox_events = prometheus::BuildCounter()
                                        .Name("pycell_sandbox_events_total")
                                        .Help(
                                            "Sandbox enforcement: timeouts (interrupted or "
                                            "killed), memory kills, crashed runners.")
                                        .Register(*registry);
  Family<Counter>& transfers = prometheus::BuildCounter()
                                   .Name("pycell_transfers_total")
                                   .Help("File uploads and downloads, by direction.")
                                   .Register(*registry);
  Family<Counter>& transfer_bytes = prometheus::BuildCounter()
                                        .Name("pycell_transfer_bytes_total")
                                        .Help("Bytes uploaded and downloaded, by direction.")
                                        .Register(*registry);
  Family<Counter>& http_requests =
      prometheus::BuildCounter()
          .Name("pycell_http_requests_total")
          .Help("HTTP requests answered, by method, route pattern and status.")
          .Register(*registry);
  Family<Histogram>& http_duration =
      prometheus::BuildHistogram()
          .Name("pycell_http_request_duration_seconds")
          .Help("HTTP request latency, head read to response written, by method and route pattern.")
          .Register(*registry);
  Family<Counter>& auth_failures =
      prometheus::BuildCounter()
          .Name("pycell_auth_failures_total")
          .Help("Refused authentications and authorizations, by reason.")
          .Register(*registry);
  Family<Counter>& quota_refusals = prometheus::BuildCounter()
                                        .Name("pycell_quota_refusals_total")
                                        .Help("Requests refused past a project quota, by quota.")
                                        .Register(*registry);
  Family<Counter>& audit_events GUARDED_BY(audit_follow_mu) =
      prometheus::BuildCounter()
          .Name("pycell_audit_events_total")
          .Help("Events in the audit log (every event written since the database began).")
          .Register(*registry);
  Family<Histogram>& pool_refill = prometheus::BuildHistogram()
                                       .Name("pycell_pool_refill_seconds")
                                       .Help("Time to launch one warm session into a pool.")
                                       .Register(*registry);
  Family<Gauge>& pool_sessions =
      prometheus::BuildGauge()
          .Name("pycell_pool_sessions")
          .Help(
              "Sessions of each pool by state: ready (warm, waiting), active (handed out), "
              "executing (running a cell).")
          .Register(*registry);
  Family<Gauge>& files_stored = prometheus::BuildGauge()
                                    .Name("pycell_files_stored")
                                    .Help("File records in the store (inputs and outputs).")
                                    .Register(*registry);
  Family<Gauge>& bytes_stored =
      prometheus::BuildGauge()
          .Name("pycell_stored_bytes")
          .Help("Bytes of the stored files' records (shared contents counted once per record).")
          .Register(*registry);
  Family<Counter>& internal_errors =
      prometheus::BuildCounter()
          .Name("pycell_internal_errors_total")
          .Help(
              "Bugs caught: exceptions that escaped a request handler or a background loop, by "
              "the catcher (where). Should stay 0; the log has each one, with its request id.")
          .Register(*registry);
  Family<Gauge>& over_expected =
      prometheus::BuildGauge()
          .Name("pycell_sessions_over_expected_duration")
          .Help("Active sessions running longer than usage.expected_session_s.")
          .Register(*registry);

  Mutex sampler_mu;
  std::function<StateSample()> sampler GUARDED_BY(sampler_mu);
  // Held while a scrape brings audit_events up to the log's length: two scrapes at once would
  // both add the same difference.
  Mutex audit_follow_mu;
};

namespace {

// CountInternalError's counts, process-wide (few names; a map under a mutex is plenty).
struct InternalErrors {
  Mutex mu;
  std::map<std::string, uint64_t, std::less<>> by_where GUARDED_BY(mu);
  std::atomic<uint64_t> total{0};
};
InternalErrors& TheInternalErrors() {
  static InternalErrors* errors = new InternalErrors;  // Never destroyed: threads may outlive main.
  return *errors;
}

// Seconds: 1 ms to 10 min, roughly ×2.5 apart.
const Histogram::BucketBoundaries kLatencyBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
// Session lives: 1 s to 1 day.
const Histogram::BucketBoundaries kSessionBuckets = {1,    10,   30,   60,    300,   600,
                                                     1800, 3600, 7200, 14400, 43200, 86400};

}  // namespace

void CountInternalError(std::string_view where) {
  InternalErrors& errors = TheInternalErrors();
  errors.total++;
  MutexLock lock(errors.mu);
  auto it = errors.by_where.find(where);
  if (it == errors.by_where.end()) it = errors.by_where.emplace(std::string(where), 0).first;
  it->second++;
}

uint64_t InternalErrorCount() { return TheInternalErrors().total.load(); }

Metrics::Metrics() : families_(std::make_unique<Families>()) {
  // Always in the scrape, at 0 until the first bug: an alert can watch it from the start.
  families_->internal_errors.Add({{"where", "http"}});
}
Metrics::~Metrics() = default;

void Metrics::SessionCreated(const std::string& pool) {
  families_->sessions_created.Add({{"pool", pool}}).Increment();
}

void Metrics::SessionEnded(const std::string& pool, const std::string& reason, double seconds) {
  families_->sessions_ended.Add({{"pool", pool}, {"reason", reason}}).Increment();
  families_->session_duration.Add({}, kSessionBuckets).Observe(seconds);
}

void Metrics::Execution(const std::string& status, double seconds) {
  families_->executions.Add({{"status", status}}).Increment();
  families_->execution_duration.Add({}, kLatencyBuckets).Observe(seconds);
}

void Metrics::SandboxEvent(const std::string& event) {
  families_->sandbox_events.Add({{"event", event}}).Increment();
}

void Metrics::Upload(uint64_t bytes) {
  families_->transfers.Add({{"direction", "upload"}}).Increment();
  families_->transfer_bytes.Add({{"direction", "upload"}}).Increment(static_cast<double>(bytes));
}

void Metrics::Download(uint64_t bytes) {
  families_->transfers.Add({{"direction", "download"}}).Increment();
  families_->transfer_bytes.Add({{"direction", "download"}}).Increment(static_cast<double>(bytes));
}

void Metrics::HttpRequest(const std::string& method, const std::string& route, int status,
                          double seconds) {
  families_->http_requests
      .Add({{"method", method}, {"route", route}, {"status", std::to_string(status)}})
      .Increment();
  families_->http_duration.Add({{"method", method}, {"route", route}}, kLatencyBuckets)
      .Observe(seconds);
}

void Metrics::AuthFailure(const std::string& reason) {
  families_->auth_failures.Add({{"reason", reason}}).Increment();
}

void Metrics::QuotaRefusal(const std::string& quota) {
  families_->quota_refusals.Add({{"quota", quota}}).Increment();
}

void Metrics::PoolRefill(double seconds) {
  families_->pool_refill.Add({}, kLatencyBuckets).Observe(seconds);
}

void Metrics::SetSampler(std::function<StateSample()> sampler) {
  MutexLock lock(families_->sampler_mu);
  families_->sampler = std::move(sampler);
}

std::string Metrics::Scrape() {
  std::function<StateSample()> sampler;
  {
    MutexLock lock(families_->sampler_mu);
    sampler = families_->sampler;
  }
  if (sampler) {
    StateSample sample = sampler();
    for (const PoolState& p : sample.pools) {
      families_->pool_sessions.Add({{"pool", p.pool}, {"state", "ready"}}).Set(p.ready);
      families_->pool_sessions.Add({{"pool", p.pool}, {"state", "active"}}).Set(p.active);
      families_->pool_sessions.Add({{"pool", p.pool}, {"state", "executing"}}).Set(p.executing);
    }
    families_->files_stored.Add({}).Set(sample.files_stored);
    families_->bytes_stored.Add({}).Set(sample.bytes_stored);
    families_->over_expected.Add({}).Set(sample.sessions_over_expected);
    // A counter follows the log's length: it only ever grows, as the log does.
    {
      MutexLock lock(families_->audit_follow_mu);
      Counter& audit = families_->audit_events.Add({});
      if (sample.audit_events > audit.Value()) {
        audit.Increment(sample.audit_events - audit.Value());
      }
    }
  }
  {
    InternalErrors& errors = TheInternalErrors();
    MutexLock lock(errors.mu);
    for (const auto& [where, count] : errors.by_where) {
      Counter& counter = families_->internal_errors.Add({{"where", where}});
      if (static_cast<double>(count) > counter.Value()) {
        counter.Increment(static_cast<double>(count) - counter.Value());
      }
    }
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families_->registry->Collect());
  return out.str();
}

}  // namespace pycell::metrics
