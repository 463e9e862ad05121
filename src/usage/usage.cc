#include "usage/usage.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "usage/quota.h"

namespace pycell::usage {
namespace {

using Json = nlohmann::json;

constexpr int64_t kDayMs = 86'400'000;
constexpr double kHourMs = 3.6e6;
constexpr double kGb = 1e9;
constexpr double kMonthHours = 730;

// To `digits` decimals, as the JSON shows them (1e-3 * n is not exact in binary; n / 1e3 is
// closer).
double Round(double v, int digits) {
  double scale = std::pow(10.0, digits);
  return std::round(v * scale) / scale;
}

Json ToJson(const Totals& t, const PriceConfig& prices) {
  double cpu_hours = t.cpu_ms / kHourMs;
  double storage_byte_hours = t.storage_byte_ms / kHourMs;
  double cost_sessions = static_cast<double>(t.sessions) * prices.per_session;
  double cost_cpu = cpu_hours * prices.per_cpu_hour;
  double cost_storage = storage_byte_hours / kGb / kMonthHours * prices.per_gb_month;
  double cost_transfer =
      static_cast<double>(t.bytes_uploaded + t.bytes_downloaded) / kGb * prices.per_gb_transferred;
  const int cent = 6;  // Costs to a millionth: small sessions cost fractions of a cent.
  return {{"sessions", t.sessions},
          {"session_seconds", Round(t.session_ms / 1000, 3)},
          {"executions", t.executions},
          {"cpu_seconds", Round(t.cpu_ms / 1000, 3)},
          {"peak_memory_bytes", t.peak_memory_bytes},
          {"bytes_uploaded", t.bytes_uploaded},
          {"bytes_downloaded", t.bytes_downloaded},
          {"storage_byte_hours", Round(storage_byte_hours, 3)},
          {"cost",
           {{"sessions", Round(cost_sessions, cent)},
            {"cpu", Round(cost_cpu, cent)},
            {"storage", Round(cost_storage, cent)},
            {"transfer", Round(cost_transfer, cent)},
            {"total", Round(cost_sessions + cost_cpu + cost_storage + cost_transfer, cent)}}}};
}

std::string DayOf(int64_t ms) { return FormatRfc3339Ms(ms).substr(0, 10); }

class Grouper {
 public:
  Grouper(const UsageQuery& query) : query_(query) {}

  // The row of a record with these attributes at time `ms`.
  Totals& Row(const std::string& project, const std::string& principal, const std::string& agent,
              int64_t ms) {
    return rows_[KeyOf(project, principal, agent, ms)];
  }

  // Storage of `bytes` held over [start, end), clipped to the period; split by day when grouping
  // by day.
  void AddStorage(const std::string& project, const std::string& principal, int64_t bytes,
                  int64_t start, int64_t end) {
    start = std::max(start, query_.from_ms);
    end = std::min(end, query_.to_ms);
    while (start < end) {
      int64_t piece_end = end;
      if (query_.group_by == "day") piece_end = std::min(end, DayStartMs(start) + kDayMs);
      Row(project, principal, "", start).storage_byte_ms +=
          static_cast<double>(bytes) * static_cast<double>(piece_end - start);
      start = piece_end;
    }
  }

  const std::map<std::string, Totals>& rows() const { return rows_; }

 private:
  std::string KeyOf(const std::string& project, const std::string& principal,
                    const std::string& agent, int64_t ms) const {
    if (query_.group_by == "project") return project;
    if (query_.group_by == "principal") return principal;
    if (query_.group_by == "agent") return agent;
    return DayOf(ms);
  }

  const UsageQuery& query_;
  std::map<std::string, Totals> rows_;
};

}  // namespace

void Totals::Add(const Totals& o) {
  sessions += o.sessions;
  session_ms += o.session_ms;
  executions += o.executions;
  cpu_ms += o.cpu_ms;
  peak_memory_bytes = std::max(peak_memory_bytes, o.peak_memory_bytes);
  bytes_uploaded += o.bytes_uploaded;
  bytes_downloaded += o.bytes_downloaded;
  storage_byte_ms += o.storage_byte_ms;
}

Result<Report> MakeReport(store::MetadataStore& store, const PriceConfig& prices,
                          const UsageQuery& query, int64_t now_ms) {
  const std::string& g = query.group_by;
  if (g != "project" && g != "principal" && g != "agent" && g != "day") {
    return Status::InvalidArgument("group_by must be project, principal, agent or day");
  }
  if (query.to_ms <= query.from_ms) {
    return Status::InvalidArgument("the period is empty: `to` must be after `from`");
  }
  Grouper grouper(query);
  const int64_t until = std::min(query.to_ms, now_ms);

  ASSIGN_OR_RETURN(auto sessions,
                   store.SessionsCreated(query.from_ms, query.to_ms, query.project_id));
  for (const store::SessionRow& s : sessions) {
    Totals& t = grouper.Row(s.project_id, s.principal, s.agent_id, s.created_at_ms);
    t.sessions += 1;
    int64_t end = s.ended_at_ms > 0 ? s.ended_at_ms : now_ms;
    t.session_ms += static_cast<double>(std::max<int64_t>(0, end - s.created_at_ms));
    t.executions += s.execution_count;
    t.cpu_ms += s.cpu_ms;
    t.peak_memory_bytes = std::max(t.peak_memory_bytes, s.peak_memory_bytes);
  }

  ASSIGN_OR_RETURN(auto events, store.UsageEvents(query.from_ms, query.to_ms, query.project_id));
  for (const store::UsageEvent& e : events) {
    if (e.kind == "storage_bytes") {
      grouper.AddStorage(e.project_id, e.principal, e.amount, e.start_ms, e.time_ms);
      continue;
    }
    if (e.time_ms < query.from_ms || e.time_ms >= query.to_ms) continue;
    Totals& t = grouper.Row(e.project_id, e.principal, e.agent_id, e.time_ms);
    if (e.kind == "upload_bytes") t.bytes_uploaded += e.amount;
    if (e.kind == "download_bytes") t.bytes_downloaded += e.amount;
  }

  // Files stored now: held from their creation until now (a deleted file left a storage event).
  ASSIGN_OR_RETURN(auto files, store.FilesCreatedBefore(query.to_ms, query.project_id));
  for (const store::FileRow& f : files) {
    grouper.AddStorage(f.project_id, f.principal, f.bytes, f.created_at_ms, until);
  }

  Report report{.query = query, .prices = prices, .rows = {}, .total = {}};
  report.rows.reserve(grouper.rows().size());
  for (const auto& [key, totals] : grouper.rows()) {
    report.rows.push_back({key, totals});
    report.total.Add(totals);
  }
  return report;
}

Json ReportJson(const Report& report) {
  const PriceConfig& prices = report.prices;
  Json data = Json::array();
  for (const Report::Row& row : report.rows) {
    Json item = ToJson(row.totals, prices);
    item["key"] = row.key;
    data.push_back(std::move(item));
  }
  return Json{{"object", "usage"},
              {"from", FormatRfc3339Ms(report.query.from_ms)},
              {"to", FormatRfc3339Ms(report.query.to_ms)},
              {"group_by", report.query.group_by},
              {"currency", prices.currency},
              {"prices",
               {{"price_per_session", prices.per_session},
                {"price_per_cpu_hour", prices.per_cpu_hour},
                {"price_per_gb_month", prices.per_gb_month},
                {"price_per_gb_transferred", prices.per_gb_transferred}}},
              {"data", std::move(data)},
              {"total", ToJson(report.total, prices)}};
}

}  // namespace pycell::usage
