#include "common/config.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <set>

#include "common/ip_address.h"

namespace pycell {

Status SessionLimits::Validate() const {
  if (memory_bytes < (64ull << 20)) {
    return Status::InvalidArgument("memory limit must be at least 64m (Python needs it to start)");
  }
  if (max_pids < 8) return Status::InvalidArgument("pids limit must be at least 8");
  if (!(cpus > 0 && cpus <= 1024)) return Status::InvalidArgument("cpus must be in (0, 1024]");
  if (execution_timeout.count() <= 0 || execution_timeout > max_execution_timeout) {
    return Status::InvalidArgument("timeout must be between 1 s and " +
                                   std::to_string(max_execution_timeout.count()) + " s");
  }
  if (data_bytes < (1ull << 20) || tmp_bytes < (1ull << 20)) {
    return Status::InvalidArgument("data and tmp quotas must be at least 1m");
  }
  return Status::Ok();
}

Status EngineConfig::Validate() const {
  if (state_dir.empty() || state_dir[0] != '/') {
    return Status::InvalidArgument("state dir must be an absolute path");
  }
  if (runtime_dir.empty() || runtime_dir[0] != '/') {
    return Status::InvalidArgument("runtime dir must be an absolute path");
  }
  if (max_sessions == 0) return Status::InvalidArgument("max_sessions must be at least 1");
  if (sessions_cpu_weight < 1 || sessions_cpu_weight > 10000) {
    return Status::InvalidArgument("engine.sessions_cpu_weight must be 1 to 10000");
  }
  return pool.limits.Validate();
}

Status ServerConfig::Validate() const {
  if (listen.find(':') == std::string::npos) {
    return Status::InvalidArgument("server.listen must be host:port, e.g. 127.0.0.1:8080");
  }
  if (data_dir.empty()) return Status::InvalidArgument("server.data_dir must not be empty");
  if (max_connections == 0) return Status::InvalidArgument("server.max_connections must be > 0");
  if (max_connections_per_address == 0) {
    return Status::InvalidArgument("server.max_connections_per_address must be > 0");
  }
  if (max_workers == 0) return Status::InvalidArgument("server.max_workers must be > 0");
  if (request_timeout.count() <= 0 || keep_alive_timeout.count() <= 0 ||
      header_timeout.count() <= 0) {
    return Status::InvalidArgument("server timeouts must be at least 1 s");
  }
  // The HTTP server hands the limit to Beast as 32 bits: "4g" would become 0 and refuse every
  // request (fuzz/config_file_fuzz checks that a parsed file can be used as is).
  if (max_header_bytes < 1024 || max_header_bytes > UINT32_MAX) {
    return Status::InvalidArgument("max_header_bytes must be ≥ 1k and < 4g");
  }
  if (!aca_prefix.empty() &&
      (aca_prefix[0] != '/' || aca_prefix.back() == '/' || aca_prefix == "/v1" ||
       aca_prefix.find_first_of("{}?#") != std::string::npos ||
       aca_prefix.find("//") != std::string::npos)) {
    return Status::InvalidArgument(
        "server.aca_prefix must be \"\" or a path such as \"/aca\" (leading slash, none at the "
        "end, "
        "not /v1)");
  }
  if (!metrics_listen.empty()) {
    // Without keys, so never beyond this machine.
    bool loopback = metrics_listen.rfind("127.", 0) == 0 ||
                    metrics_listen.rfind("[::1]:", 0) == 0 ||
                    metrics_listen.rfind("localhost:", 0) == 0;
    if (metrics_listen.find(':') == std::string::npos || !loopback) {
      return Status::InvalidArgument(
          "server.metrics_listen must be a loopback host:port such as 127.0.0.1:9464 (it "
          "answers without keys); leave it empty to serve /metrics on server.listen with keys");
    }
  }
  RETURN_IF_ERROR(ParseIpRanges(trusted_proxies, "server.trusted_proxies").status());
  return Status::Ok();
}

EngineConfig ServiceConfig::EngineFor(const PoolConfig& pool) const {
  EngineConfig config = engine;
  config.pool = pool;
  return config;
}

namespace {

template <size_t N>
bool OneOf(const std::array<std::string_view, N>& names, const std::string& value) {
  for (std::string_view name : names) {
    if (name == value) return true;
  }
  return false;
}

template <size_t N>
std::string ListOf(const std::array<std::string_view, N>& names) {
  std::string list;
  for (std::string_view name : names) list += (list.empty() ? "" : ", ") + std::string(name);
  return list;
}

Status ValidateDiagnosticSetting(const DiagnosticSetting& s, const std::string& where) {
  auto refuse = [&](const char* key, const std::string& why) {
    return Status::InvalidArgument(where + "." + key + ": " + why);
  };
  if (s.name.empty() || s.name.size() > 64) return refuse("name", "must be 1-64 characters");
  if (s.categories.empty()) {
    return refuse("categories", "name at least one of " + ListOf(kDiagnosticCategories));
  }
  for (const std::string& category : s.categories) {
    if (!OneOf(kDiagnosticCategories, category)) {
      return refuse("categories", "unknown category \"" + category + "\" (expected " +
                                      ListOf(kDiagnosticCategories) + ")");
    }
  }
  if (s.sink.empty()) return refuse("sink", "required: one of " + ListOf(kDiagnosticSinks));
  if (!OneOf(kDiagnosticSinks, s.sink)) {
    return refuse("sink",
                  "unknown sink \"" + s.sink + "\" (expected " + ListOf(kDiagnosticSinks) + ")");
  }
  if (s.queue_max < 1 || s.queue_max > 10'000'000) {
    return refuse("queue_max", "must be between 1 and 10000000 events");
  }
  if (s.max_retries > 100) return refuse("max_retries", "must be at most 100");
  if (s.backoff.count() < 1 || s.backoff.count() > 600'000) {
    return refuse("backoff_ms", "must be between 1 and 600000");
  }
  if (s.sink == "file") {
    if (s.path.empty()) return refuse("path", "required for a file sink");
    if (s.max_bytes < 1024) return refuse("max_bytes", "must be at least 1k");
    if (s.keep > 1000) return refuse("keep", "must be at most 1000");
  } else if (s.sink == "syslog") {
    if (!OneOf(kSyslogFacilities, s.facility)) {
      return refuse("facility", "unknown facility \"" + s.facility + "\" (expected " +
                                    ListOf(kSyslogFacilities) + ")");
    }
    if (s.ident.empty() || s.ident.size() > 48) return refuse("ident", "must be 1-48 characters");
    if (s.socket.empty() || s.socket[0] != '/' || s.socket.size() > 107) {
      return refuse("socket", "must be an absolute path of at most 107 bytes (a Unix socket)");
    }
  } else if (s.sink == "webhook") {
    if (s.url.empty()) return refuse("url", "required for a webhook sink");
    if (s.url.rfind("http://", 0) != 0 && s.url.rfind("https://", 0) != 0) {
      return refuse("url", "must be an http:// or https:// URL");
    }
    if (s.batch_max < 1 || s.batch_max > 10'000) {
      return refuse("batch_max", "must be between 1 and 10000 events");
    }
    if (s.flush_interval.count() < 0 || s.flush_interval.count() > 3'600'000) {
      return refuse("flush_interval_ms", "must be between 0 and 3600000");
    }
    if (s.timeout.count() < 1 || s.timeout.count() > 600'000) {
      return refuse("timeout_ms", "must be between 1 and 600000");
    }
  }
  return Status::Ok();
}

}  // namespace

Status ValidateDiagnosticSettings(const std::vector<DiagnosticSetting>& settings) {
  std::set<std::string> names;
  for (size_t i = 0; i < settings.size(); ++i) {
    std::string where = "diagnostic_settings[" + std::to_string(i) + "]";
    RETURN_IF_ERROR(ValidateDiagnosticSetting(settings[i], where));
    if (!names.insert(settings[i].name).second) {
      return Status::InvalidArgument(where + ".name: diagnostic setting \"" + settings[i].name +
                                     "\" is defined twice");
    }
  }
  return Status::Ok();
}

Status StoreConfig::Validate() const {
  if (!url.empty() && !postgresql()) {
    return Status::InvalidArgument(
        "store.url must be empty (SQLite in the data dir) or a postgresql:// URL");
  }
  return Status::Ok();
}

Status ServiceConfig::Validate() const {
  RETURN_IF_ERROR(server.Validate());
  RETURN_IF_ERROR(store.Validate());
  RETURN_IF_ERROR(ValidateDiagnosticSettings(diagnostic_settings));
  if (pools.empty()) return Status::InvalidArgument("at least one pool must be configured");
  for (size_t i = 0; i < pools.size(); ++i) {
    const PoolConfig& pool = pools[i];
    std::string where = "pools[" + std::to_string(i) + "]";
    if (pool.name.empty() || pool.name.size() > 64) {
      return Status::InvalidArgument(where + ".name must be 1-64 characters");
    }
    for (size_t j = 0; j < i; ++j) {
      if (pools[j].name == pool.name) {
        return Status::InvalidArgument(where + ".name: pool \"" + pool.name +
                                       "\" is defined twice");
      }
    }
    RETURN_IF_ERROR(EngineFor(pool).Validate().WithContext(where));
  }
  return Status::Ok();
}

Result<uint64_t> ParseByteSize(const std::string& text) {
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) {
    return Status::InvalidArgument("'" + text + "' is not a size (try 512m or 2g)");
  }
  char* end = nullptr;
  errno = 0;
  unsigned long long value = std::strtoull(text.c_str(), &end, 10);
  if (errno == ERANGE) return Status::InvalidArgument("'" + text + "' is too large");
  std::string suffix(end);
  uint64_t unit = 1;
  if (suffix == "" || suffix == "b")
    unit = 1;
  else if (suffix == "k" || suffix == "K" || suffix == "KiB")
    unit = 1ull << 10;
  else if (suffix == "m" || suffix == "M" || suffix == "MiB")
    unit = 1ull << 20;
  else if (suffix == "g" || suffix == "G" || suffix == "GiB")
    unit = 1ull << 30;
  else
    return Status::InvalidArgument("'" + text + "': unknown size unit (use k, m or g)");
  if (value > (UINT64_MAX / unit)) return Status::InvalidArgument("'" + text + "' is too large");
  return static_cast<uint64_t>(value * unit);
}

}  // namespace pycell
