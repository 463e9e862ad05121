// The configuration as JSON: what GET /v1/config shows, what `pycell config diff` compares a file
// against, and what sessions record as their limits. One rendering, so that a file parsed by the
// CLI and the server's live configuration compare field by field. Nothing secret is in the
// configuration today; fields that could hold secrets must be redacted here when they appear.
//
// Thread-safety: pure functions.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "common/config.h"

namespace pycell {

nlohmann::json LimitsToJson(const SessionLimits& limits);
nlohmann::json ConfigToJson(const ServiceConfig& config);

// "a.b[2].c" → value, for every leaf of `json` (objects and arrays descended into).
std::map<std::string, nlohmann::json> FlattenJson(const nlohmann::json& json);

}  // namespace pycell
