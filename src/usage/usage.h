// Usage and cost: what sessions, transfers and storage a period used, grouped by project,
// principal, agent or day, and priced with the configured prices. Computed from the records
// (sessions with their summed CPU and peak memory, usage events for transfers and deleted files,
// the files table for storage held now) when asked, so the numbers always agree with the records.
//
// Thread-safety: functions over a thread-safe store.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/status.h"
#include "store/metadata_store.h"

namespace pycell::usage {

struct UsageQuery {
  std::string group_by = "project";  // "project" | "principal" | "agent" | "day"
  int64_t from_ms = 0;
  int64_t to_ms = 0;       // Exclusive.
  std::string project_id;  // "" = every project (the caller's scope decides).
};

// What a group used over the period.
struct Totals {
  int64_t sessions = 0;
  double session_ms = 0;
  int64_t executions = 0;
  double cpu_ms = 0;
  int64_t peak_memory_bytes = 0;  // The largest of the group's sessions.
  int64_t bytes_uploaded = 0;
  int64_t bytes_downloaded = 0;
  double storage_byte_ms = 0;

  void Add(const Totals& other);
};

// A period's usage: one row per group (in key order: project id, principal, agent id or UTC day)
// and the total, with the prices in force when it was made.
struct Report {
  UsageQuery query;
  PriceConfig prices;
  struct Row {
    std::string key;
    Totals totals;
  };
  std::vector<Row> rows;
  Totals total;
};

// InvalidArgument for an unknown group_by or a period that ends before it starts.
Result<Report> MakeReport(store::MetadataStore& store, const PriceConfig& prices,
                          const UsageQuery& query, int64_t now_ms);

// The /v1/usage object (docs/access.md): the rows and the total, each with its costs.
nlohmann::json ReportJson(const Report& report);

}  // namespace pycell::usage
