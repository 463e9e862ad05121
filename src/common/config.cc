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
