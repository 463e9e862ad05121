// The configuration file of `pycell serve` (docs/configuration.md): ParseConfig — toml++'s parser
// (compiled in here, header-only, so that it is instrumented too), the schema reader with its
// ranges and unknown-key checks, ServiceConfig::Validate — then what `pycell config diff`, GET
// /v1/config and a reload do with a parsed file: ConfigToJson (webhook URLs redacted through
// libcurl), FlattenJson, DiffConfigJson against the defaults.
//
// Input: a TOML file.
// Checked, beyond ASan and UBSan: a file that parses applies the same way twice (parsing it over
// its own result changes nothing), and what it sets can be used as is — the HTTP server hands
// server.max_header to Beast as a 32-bit limit.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/config_file.h"
#include "common/config_json.h"

namespace pycell::fuzz {
namespace {

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "config_file_fuzz: %s\n", what);
  std::abort();
}

std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace
}  // namespace pycell::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace pycell;
  using namespace pycell::fuzz;
  std::string_view text(reinterpret_cast<const char*>(bytes), size);
  Result<ServiceConfig> config = ParseConfig(text, "fuzz.toml");
  if (!config.ok()) return 0;
  if (!config->Validate().ok()) Fail("ParseConfig returned a configuration that does not validate");
  if (config->server.max_header_bytes > UINT32_MAX) {
    Fail("server.max_header is accepted past what the HTTP server's 32-bit header limit holds");
  }

  static const nlohmann::json kDefaults = ConfigToJson(ServiceConfig{});
  nlohmann::json json = ConfigToJson(*config);
  (void)Dump(json);
  (void)FlattenJson(json);
  for (const ConfigChange& change : DiffConfigJson(kDefaults, json)) {
    (void)Dump(change.before);
    (void)Dump(change.after);
  }

  Result<ServiceConfig> twice = ParseConfig(text, "fuzz.toml", *config);
  if (!twice.ok()) Fail("a file that parsed does not parse over its own result");
  if (!DiffConfigJson(json, ConfigToJson(*twice)).empty()) {
    Fail("applying the same file twice changes the configuration");
  }
  return 0;
}
