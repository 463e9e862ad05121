// The configuration as JSON: what GET /v1/config shows, what `pycell config diff` compares a file
// against, and what sessions record as their limits. One rendering, so that a file parsed by the
// CLI and the server's live configuration compare field by field. Secrets are redacted here:
// a webhook URL's user, password and query (where tokens go) read "redacted", its fragment is
// dropped — so `config diff` cannot see a changed token, only a changed host or path.
//
// Thread-safety: pure functions.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/config.h"

namespace pycell {

nlohmann::json LimitsToJson(const SessionLimits& limits);
nlohmann::json ConfigToJson(const ServiceConfig& config);
nlohmann::json DiagnosticSettingToJson(const DiagnosticSetting& setting);
// `url` with its user, password and query replaced by "redacted" and no fragment.
std::string RedactUrl(const std::string& url);

// "a.b[2].c" → value, for every leaf of `json` (objects and arrays descended into).
std::map<std::string, nlohmann::json> FlattenJson(const nlohmann::json& json);

// One leaf that differs between two configurations (as ConfigToJson renders them); a leaf only
// one side has is null on the other. `pycell config diff` and reloads both use it.
struct ConfigChange {
  std::string key;  // "pools[0].limits.memory_bytes"
  nlohmann::json before;
  nlohmann::json after;
};
// Every differing leaf, in key order.
std::vector<ConfigChange> DiffConfigJson(const nlohmann::json& before, const nlohmann::json& after);

}  // namespace pycell
