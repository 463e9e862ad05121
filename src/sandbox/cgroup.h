// Cgroups: memory, pids and CPU limits of one session, and what it used.
//
// Hosts differ: some have the unified hierarchy (cgroup v2), some the per-controller hierarchies
// of v1 (this project's CI machine), some a mix. CgroupLayout says, controller by controller,
// where each one is; Cgroup then drives each controller in its own version (cgroup_v1.cc,
// cgroup_v2.cc). All paths are rooted at a configurable prefix so tests can run on a plain folder.
//
// Thread-safety: a Cgroup is used by the one session that owns it; CgroupLayout is immutable.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace pycell::sandbox {

enum class CgroupVersion { kNone, kV1, kV2 };

// The controllers a session needs.
inline constexpr const char* kCgroupControllers[] = {"memory", "pids", "cpu"};

class CgroupLayout {
 public:
  // Reads /proc/self/mountinfo (or the given file) and the v2 root's cgroup.controllers.
  static Result<CgroupLayout> Detect(const std::string& mountinfo = "/proc/self/mountinfo");
  // For tests: a layout that puts every controller under `root` in `version`.
  static CgroupLayout ForTest(CgroupVersion version, const std::string& root);

  CgroupVersion VersionOf(const std::string& controller) const;
  // The folder of the controller's hierarchy root ("/sys/fs/cgroup/memory", "/sys/fs/cgroup").
  std::string RootOf(const std::string& controller) const;
  // "memory: v1 at /sys/fs/cgroup/memory", one line a controller, for doctor.
  std::vector<std::string> Describe() const;
  // True when every controller in kCgroupControllers is available in some version.
  bool Complete() const;

 private:
  std::string v2_root_;                          // Empty when there is no v2 hierarchy.
  std::vector<std::string> v2_controllers_;      // Enabled at v2_root_.
  std::map<std::string, std::string> v1_roots_;  // controller -> mount point.
};

struct CgroupLimits {
  uint64_t memory_bytes = 0;  // 0: no limit.
  uint32_t max_pids = 0;
  double cpus = 0;  // 1.5 = one and a half cores.
};

struct CgroupUsage {
  // Total CPU time used by the group, and the highest memory use since the last ResetPeak:
  // nullopt when the host could not read them (never a made-up number).
  std::optional<uint64_t> cpu_ns;
  std::optional<uint64_t> memory_peak_bytes;
  uint64_t memory_current_bytes = 0;
  uint64_t oom_kills = 0;  // Processes the kernel killed for exceeding memory.
  uint64_t pids_current = 0;
};

class Cgroup {
 public:
  // Creates <root-of-controller>/<parent>/<name> for each controller and applies the limits.
  static Result<std::unique_ptr<Cgroup>> Create(const CgroupLayout& layout,
                                                const std::string& parent, const std::string& name,
                                                const CgroupLimits& limits);
  ~Cgroup();  // Destroy() if not done.

  // Kills the processes of, and removes, a group a dead process left behind
  // (<root-of-each-controller>/<parent>/<name>); missing folders are fine.
  static Status RemoveLeftover(const CgroupLayout& layout, const std::string& parent,
                               const std::string& name);

  Status AddProcess(pid_t pid);
  // The group's CPU weight against its siblings, in cgroup v2's units (1 to 10000; 100 is the
  // default): cpu.weight on v2, cpu.shares (weight * 1024 / 100) on v1.
  Status SetCpuWeight(uint32_t weight);
  // The same for <root-of-the-cpu-controller>/<parent>, the group every session is a child of
  // (made if missing): its weight against the groups beside it, the server's among them.
  static Status SetParentCpuWeight(const CgroupLayout& layout, const std::string& parent,
                                   uint32_t weight);
  CgroupUsage ReadUsage() const;
  // Starts a new peak-memory window (per execution), where the kernel allows it.
  void ResetPeak();
  // SIGKILLs every process in the group and waits (bounded) until it is empty.
  Status KillAll();
  // KillAll, then removes the folders. Idempotent.
  Status Destroy();

  // Host pids of the processes in the group.
  std::vector<pid_t> Processes() const;
  // Folders this group made, one per hierarchy (for tests and leak checks).
  std::vector<std::string> Paths() const;

 private:
  struct Part {
    CgroupVersion version;
    std::vector<std::string> controllers;  // For v1, those this folder serves ("cpu,cpuacct").
    std::string dir;
  };
  Cgroup() = default;
  const Part* PartFor(const std::string& controller) const;
  // Files `controller` under the part at `dir`, making that part if there is none yet. True
  // when the part is new (v2 and co-mounted v1 controllers share one folder).
  bool AddToPart(CgroupVersion version, const std::string& controller, const std::string& dir);
  // The controllers a session's group is made of on this layout (cpuacct too, on v1).
  static std::vector<std::string> ControllersFor(const CgroupLayout& layout);

  std::vector<Part> parts_;
  bool destroyed_ = false;
};

namespace cgroup_v1 {
Status ApplyLimits(const std::string& controller, const std::string& dir, const CgroupLimits&);
void ReadUsage(const std::string& controller, const std::string& dir, CgroupUsage* usage);
void ResetPeak(const std::string& controller, const std::string& dir);
}  // namespace cgroup_v1

namespace cgroup_v2 {
// Makes the controllers available to the children of `parent_dir` (cgroup.subtree_control).
Status EnableControllers(const std::string& parent_dir);
Status ApplyLimits(const std::string& dir, const CgroupLimits&);
void ReadUsage(const std::string& dir, CgroupUsage* usage);
void ResetPeak(const std::string& dir);
}  // namespace cgroup_v2

// Small file helpers shared by both versions.
namespace cgroup_files {
Status Write(const std::string& path, const std::string& value);
// The file's content, or "" when it cannot be read.
std::string Read(const std::string& path);
// The number after `key` in a "key value" per line file (memory.stat, cpu.stat), or 0.
uint64_t ReadKeyed(const std::string& path, const std::string& key);
// Strict forms for counters that are billed: nullopt when the file cannot be read, the key is
// absent or the text is not a decimal number (a descriptor shortage must never read as 0, nor a
// half-read file as some other number).
std::optional<uint64_t> ReadNumber(const std::string& path);
std::optional<uint64_t> ReadKeyedNumber(const std::string& path, const std::string& key);
}  // namespace cgroup_files

}  // namespace pycell::sandbox
