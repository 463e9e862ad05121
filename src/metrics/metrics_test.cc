#include "metrics/metrics.h"

#include <gtest/gtest.h>

namespace pycell::metrics {
namespace {

bool Has(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

TEST(MetricsTest, RecordedEventsShowInTheScrapeWithTheirLabels) {
  Metrics m;
  m.SessionCreated("default");
  m.SessionEnded("default", "closed", 12);
  m.Execution("ok", 0.002);
  m.Execution("ok", 0.003);
  m.Execution("timeout", 1.5);
  m.SandboxEvent("timeout_interrupted");
  m.Upload(100);
  m.Upload(50);
  m.Download(7);
  m.HttpRequest("GET", "/v1/files/{id}", 404, 0.001);
  m.AuthFailure("wrong_secret");
  m.QuotaRefusal("sessions_per_day");
  std::string text = m.Scrape();
  EXPECT_TRUE(Has(text, "pycell_sessions_created_total{pool=\"default\"} 1")) << text;
  EXPECT_TRUE(Has(text, "pycell_sessions_ended_total{pool=\"default\",reason=\"closed\"} 1"));
  EXPECT_TRUE(Has(text, "pycell_executions_total{status=\"ok\"} 2"));
  EXPECT_TRUE(Has(text, "pycell_execution_duration_seconds_count 3"));
  EXPECT_TRUE(Has(text, "pycell_sandbox_events_total{event=\"timeout_interrupted\"} 1"));
  EXPECT_TRUE(Has(text, "pycell_transfer_bytes_total{direction=\"upload\"} 150"));
  EXPECT_TRUE(Has(text, "pycell_transfers_total{direction=\"download\"} 1"));
  EXPECT_TRUE(Has(text,
                  "pycell_http_requests_total{method=\"GET\",route=\"/v1/files/{id}\","
                  "status=\"404\"} 1"));
  EXPECT_TRUE(Has(text, "pycell_auth_failures_total{reason=\"wrong_secret\"} 1"));
  EXPECT_TRUE(Has(text, "pycell_quota_refusals_total{quota=\"sessions_per_day\"} 1"));
  EXPECT_TRUE(Has(text, "# TYPE pycell_execution_duration_seconds histogram"));
}

TEST(MetricsTest, StateGaugesComeFromTheSamplerAndTheAuditCounterNeverGoesBack) {
  Metrics m;
  double audit = 10;
  m.SetSampler([&] {
    StateSample s;
    s.pools.push_back({"default", 2, 3, 1});
    s.files_stored = 4;
    s.bytes_stored = 400;
    s.audit_events = audit;
    return s;
  });
  std::string text = m.Scrape();
  EXPECT_TRUE(Has(text, "pycell_pool_sessions{pool=\"default\",state=\"ready\"} 2")) << text;
  EXPECT_TRUE(Has(text, "pycell_pool_sessions{pool=\"default\",state=\"executing\"} 1"));
  EXPECT_TRUE(Has(text, "pycell_stored_bytes 400"));
  EXPECT_TRUE(Has(text, "pycell_audit_events_total 10"));
  audit = 15;
  EXPECT_TRUE(Has(m.Scrape(), "pycell_audit_events_total 15"));
  audit = 3;  // A counter does not go back (the log is append-only; a smaller number is a lie).
  EXPECT_TRUE(Has(m.Scrape(), "pycell_audit_events_total 15"));
}

TEST(MetricsTest, InternalErrorsAreCountedProcessWideAndShownAtZeroFromTheStart) {
  Metrics m;
  uint64_t before = InternalErrorCount();
  std::string text = m.Scrape();
  EXPECT_TRUE(Has(text, "pycell_internal_errors_total{where=\"http\"} " + std::to_string(before)))
      << text;
  EXPECT_TRUE(Has(text, "# TYPE pycell_internal_errors_total counter"));
  CountInternalError("http");
  CountInternalError("test_loop");
  CountInternalError("test_loop");
  EXPECT_EQ(InternalErrorCount(), before + 3);
  // Every Metrics shows the same process-wide counts, also one made after the errors.
  Metrics later;
  for (Metrics* metrics : {&m, &later}) {
    text = metrics->Scrape();
    EXPECT_TRUE(
        Has(text, "pycell_internal_errors_total{where=\"http\"} " + std::to_string(before + 1)))
        << text;
    EXPECT_TRUE(Has(text, "pycell_internal_errors_total{where=\"test_loop\"} 2")) << text;
  }
}

}  // namespace
}  // namespace pycell::metrics
