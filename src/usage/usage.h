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

// The /v1/usage object (docs/access.md): one row per group and the total, with costs.
// InvalidArgument for an unknown group_by or a period that ends before it starts.
Result<nlohmann::json> Report(store::MetadataStore& store, const PriceConfig& prices,
                              const UsageQuery& query, int64_t now_ms);

}  // namespace pycell::usage
