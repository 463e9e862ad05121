// cgroup v2: one unified hierarchy. Memory through memory.max with swap off (memory.swap.max),
// processes through pids.max, CPU through cpu.max; use from memory.peak, cpu.stat and the oom_kill
// counter of memory.events. cgroup.kill ends every process at once.
#include <cmath>

#include "sandbox/cgroup.h"

namespace pycell::sandbox::cgroup_v2 {

using cgroup_files::Read;
using cgroup_files::ReadKeyed;
using cgroup_files::Write;

Status EnableControllers(const std::string& parent_dir) {
  // The parent holds no processes of its own (v2's "no internal processes" rule), so enabling is
  // allowed; controllers already enabled are not an error.
  for (const char* c : kCgroupControllers) {
    Status s = Write(parent_dir + "/cgroup.subtree_control", std::string("+") + c);
    if (!s.ok()) {
      return s.WithContext(std::string("enable the ") + c +
                           " controller for pycell's cgroups (is it delegated to us?)");
    }
  }
  return Status::Ok();
}

Status ApplyLimits(const std::string& dir, const CgroupLimits& limits) {
  if (limits.memory_bytes > 0) {
    RETURN_IF_ERROR(Write(dir + "/memory.max", std::to_string(limits.memory_bytes)));
    (void)Write(dir + "/memory.swap.max", "0");  // Absent where swap accounting is off.
  }
  if (limits.max_pids > 0)
    RETURN_IF_ERROR(Write(dir + "/pids.max", std::to_string(limits.max_pids)));
  if (limits.cpus > 0) {
    constexpr int kPeriodUs = 100000;
    RETURN_IF_ERROR(Write(dir + "/cpu.max", std::to_string(static_cast<int64_t>(
                                                std::llround(limits.cpus * kPeriodUs))) +
                                                " " + std::to_string(kPeriodUs)));
  }
  return Status::Ok();
}

void ReadUsage(const std::string& dir, CgroupUsage* usage) {
  usage->memory_peak_bytes = cgroup_files::ReadNumber(dir + "/memory.peak");
  usage->memory_current_bytes = std::strtoull(Read(dir + "/memory.current").c_str(), nullptr, 10);
  usage->oom_kills = ReadKeyed(dir + "/memory.events", "oom_kill");
  usage->pids_current = std::strtoull(Read(dir + "/pids.current").c_str(), nullptr, 10);
  usage->cpu_ns = cgroup_files::ReadKeyedNumber(dir + "/cpu.stat", "usage_usec");
  if (usage->cpu_ns && *usage->cpu_ns > UINT64_MAX / 1000) usage->cpu_ns.reset();
  if (usage->cpu_ns) *usage->cpu_ns *= 1000;
}

void ResetPeak(const std::string& dir) {
  // Linux 6.12+ resets the peak for the writer's file descriptor only; older kernels refuse. The
  // record then reports the session's peak so far, which is still an upper bound.
  (void)dir;
}

}  // namespace pycell::sandbox::cgroup_v2
