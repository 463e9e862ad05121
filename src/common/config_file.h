// The configuration file of `pycell serve` (TOML, see docs/configuration.md): read into the one
// policy schema (config.h), whose defaults apply to every key the file leaves out. Unknown keys,
// wrong types and invalid values are errors that name the key ("pools[0].limits.memory: …"), so
// a typo never silently falls back to a default.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "common/config.h"
#include "common/status.h"

namespace pycell {

// Parses TOML `text` over `base` (the defaults, or what flags set earlier). `source` names the
// text in messages (a path).
Result<ServiceConfig> ParseConfig(std::string_view text, const std::string& source,
                                  ServiceConfig base = {});
Result<ServiceConfig> LoadConfigFile(const std::string& path, ServiceConfig base = {});

}  // namespace pycell
