// Small JSON helpers shared by the Service's source files (service.cc, evidence_export.cc,
// notebook_export.cc). Internal to src/service.
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

namespace pycell::service {

// RFC 3339 (UTC, milliseconds) of a time in ms since the epoch; null for 0 ("never").
nlohmann::json TimeOrNull(int64_t ms);

}  // namespace pycell::service
