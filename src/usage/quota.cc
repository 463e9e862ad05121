#include "usage/quota.h"

#include <chrono>
#include <string>

#include "common/clock.h"

namespace pycell::usage {
namespace {

constexpr int64_t kDayMs = 86'400'000;

Status Exceeded(const store::ProjectRow& project, const std::string& quota,
                const std::string& limit, const std::string& used, const std::string& resets) {
  return Status::ResourceExhausted("project " + project.name + " reached its quota " + quota +
                                   " (limit " + limit + ", used " + used + "); " + resets)
      .WithReason("quota_exceeded");
}

Status Daily(const store::ProjectRow& project, const std::string& quota, const std::string& limit,
             const std::string& used, int64_t now_ms) {
  int64_t reset = DayStartMs(now_ms) + kDayMs;
  return Exceeded(project, quota, limit, used, "it resets at " + FormatRfc3339Ms(reset))
      .WithRetryAfter((reset - now_ms + 999) / 1000);
}

std::string Number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

}  // namespace

std::string QuotaOf(const Status& status) {
  if (status.reason() != "quota_exceeded") return "";
  // Exceeded() wrote "… reached its quota <name> (limit …".
  static constexpr std::string_view kMarker = "reached its quota ";
  const std::string& m = status.message();
  size_t at = m.find(kMarker);
  if (at == std::string::npos) return "";
  at += kMarker.size();
  return m.substr(at, m.find(' ', at) - at);
}

int64_t DayStartMs(int64_t now_ms) { return now_ms - ((now_ms % kDayMs) + kDayMs) % kDayMs; }

Status CheckSessionQuotas(store::MetadataStore& store, const store::ProjectRow& project,
                          int64_t now_ms, int64_t pending) {
  if (project.quota_concurrent_sessions > 0) {
    ASSIGN_OR_RETURN(int64_t active, store.CountActiveSessions(project.id));
    active += pending;
    if (active >= project.quota_concurrent_sessions) {
      return Exceeded(project, "concurrent_sessions",
                      std::to_string(project.quota_concurrent_sessions), std::to_string(active),
                      "it frees up when one of the project's sessions ends");
    }
  }
  if (project.quota_sessions_per_day > 0) {
    ASSIGN_OR_RETURN(int64_t today, store.CountSessionsSince(project.id, DayStartMs(now_ms)));
    today += pending;
    if (today >= project.quota_sessions_per_day) {
      return Daily(project, "sessions_per_day", std::to_string(project.quota_sessions_per_day),
                   std::to_string(today), now_ms);
    }
  }
  return CheckCpuQuota(store, project, now_ms);
}

Status CheckCpuQuota(store::MetadataStore& store, const store::ProjectRow& project,
                     int64_t now_ms) {
  if (project.quota_cpu_hours_per_day <= 0) return Status::Ok();
  ASSIGN_OR_RETURN(double cpu_ms, store.CpuMsSince(project.id, DayStartMs(now_ms)));
  double hours = cpu_ms / 3.6e6;
  if (hours >= project.quota_cpu_hours_per_day) {
    return Daily(project, "cpu_hours_per_day", Number(project.quota_cpu_hours_per_day),
                 Number(hours), now_ms);
  }
  return Status::Ok();
}

Status CheckStorageQuota(store::MetadataStore& store, const store::ProjectRow& project,
                         int64_t adding_bytes) {
  if (project.quota_storage_bytes <= 0) return Status::Ok();
  ASSIGN_OR_RETURN(int64_t stored, store.StoredBytes(project.id));
  if (stored + adding_bytes > project.quota_storage_bytes) {
    return Exceeded(project, "storage_bytes", std::to_string(project.quota_storage_bytes),
                    std::to_string(stored) + " + " + std::to_string(adding_bytes) + " new",
                    "delete files (DELETE /v1/files/{id}) or ask an admin to raise it");
  }
  return Status::Ok();
}

}  // namespace pycell::usage
