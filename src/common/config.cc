#include "common/config.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>

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
  return pool.limits.Validate();
}

Status ServerConfig::Validate() const {
  if (listen.find(':') == std::string::npos) {
    return Status::InvalidArgument("server.listen must be host:port, e.g. 127.0.0.1:8080");
  }
  if (data_dir.empty()) return Status::InvalidArgument("server.data_dir must not be empty");
  if (max_connections == 0) return Status::InvalidArgument("server.max_connections must be > 0");
  if (request_timeout.count() <= 0 || keep_alive_timeout.count() <= 0) {
    return Status::InvalidArgument("server timeouts must be at least 1 s");
  }
  if (max_header_bytes < 1024) return Status::InvalidArgument("max_header_bytes must be ≥ 1k");
  if (!metrics_listen.empty()) {
    // Without keys, so never beyond this machine.
    bool loopback = metrics_listen.rfind("127.", 0) == 0 || metrics_listen.rfind("[::1]:", 0) == 0 ||
                    metrics_listen.rfind("localhost:", 0) == 0;
    if (metrics_listen.find(':') == std::string::npos || !loopback) {
      return Status::InvalidArgument(
          "server.metrics_listen must be a loopback host:port such as 127.0.0.1:9464 (it "
          "answers without keys); leave it empty to serve /metrics on server.listen with keys");
    }
  }
  return Status::Ok();
}

EngineConfig ServiceConfig::EngineFor(const PoolConfig& pool) const {
  EngineConfig config = engine;
  config.pool = pool;
  return config;
}

Status ServiceConfig::Validate() const {
  RETURN_IF_ERROR(server.Validate());
  if (pools.empty()) return Status::InvalidArgument("at least one pool must be configured");
  for (size_t i = 0; i < pools.size(); ++i) {
    const PoolConfig& pool = pools[i];
    std::string where = "pools[" + std::to_string(i) + "]";
    if (pool.name.empty() || pool.name.size() > 64) {
      return Status::InvalidArgument(where + ".name must be 1-64 characters");
    }
    for (size_t j = 0; j < i; ++j) {
      if (pools[j].name == pool.name) {
        return Status::InvalidArgument(where + ".name: pool \"" + pool.name + "\" is defined twice");
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
  if (suffix == "" || suffix == "b") unit = 1;
  else if (suffix == "k" || suffix == "K" || suffix == "KiB") unit = 1ull << 10;
  else if (suffix == "m" || suffix == "M" || suffix == "MiB") unit = 1ull << 20;
  else if (suffix == "g" || suffix == "G" || suffix == "GiB") unit = 1ull << 30;
  else return Status::InvalidArgument("'" + text + "': unknown size unit (use k, m or g)");
  if (value > (UINT64_MAX / unit)) return Status::InvalidArgument("'" + text + "' is too large");
  return static_cast<uint64_t>(value * unit);
}

}  // namespace pycell
