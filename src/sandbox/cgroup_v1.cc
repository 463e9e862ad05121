// cgroup v1: one hierarchy per controller. Memory through memory.limit_in_bytes (and the
// memory+swap limit where swap accounting exists, so that swap is no way around it), processes
// through pids.max, CPU through the CFS quota; use from memory.max_usage_in_bytes, cpuacct.usage
// and the oom_kill counter of memory.oom_control.
#include <unistd.h>

#include <cmath>

#include "sandbox/cgroup.h"

namespace pycell::sandbox::cgroup_v1 {

using cgroup_files::Read;
using cgroup_files::ReadKeyed;
using cgroup_files::Write;

Status ApplyLimits(const std::string& controller, const std::string& dir,
                   const CgroupLimits& limits) {
  if (controller == "memory" && limits.memory_bytes > 0) {
    RETURN_IF_ERROR(Write(dir + "/memory.limit_in_bytes", std::to_string(limits.memory_bytes)));
    if (::access((dir + "/memory.memsw.limit_in_bytes").c_str(), F_OK) == 0) {
      RETURN_IF_ERROR(
          Write(dir + "/memory.memsw.limit_in_bytes", std::to_string(limits.memory_bytes)));
    }
    (void)Write(dir + "/memory.swappiness", "0");
  } else if (controller == "pids" && limits.max_pids > 0) {
    RETURN_IF_ERROR(Write(dir + "/pids.max", std::to_string(limits.max_pids)));
  } else if (controller == "cpu" && limits.cpus > 0) {
    constexpr int kPeriodUs = 100000;
    RETURN_IF_ERROR(Write(dir + "/cpu.cfs_period_us", std::to_string(kPeriodUs)));
    RETURN_IF_ERROR(Write(dir + "/cpu.cfs_quota_us", std::to_string(static_cast<int64_t>(
                                                         std::llround(limits.cpus * kPeriodUs)))));
  }
  return Status::Ok();
}

void ReadUsage(const std::string& controller, const std::string& dir, CgroupUsage* usage) {
  if (controller == "memory") {
    usage->memory_peak_bytes = cgroup_files::ReadNumber(dir + "/memory.max_usage_in_bytes");
    usage->memory_current_bytes =
        std::strtoull(Read(dir + "/memory.usage_in_bytes").c_str(), nullptr, 10);
    usage->oom_kills = ReadKeyed(dir + "/memory.oom_control", "oom_kill");
  } else if (controller == "pids") {
    usage->pids_current = std::strtoull(Read(dir + "/pids.current").c_str(), nullptr, 10);
  } else if (controller == "cpuacct") {
    usage->cpu_ns = cgroup_files::ReadNumber(dir + "/cpuacct.usage");
  }
}

void ResetPeak(const std::string& controller, const std::string& dir) {
  if (controller == "memory") (void)Write(dir + "/memory.max_usage_in_bytes", "0");
}

}  // namespace pycell::sandbox::cgroup_v1
