#include "sandbox/cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/logging.h"

namespace pycell::sandbox {
namespace cgroup_files {

Status Write(const std::string& path, const std::string& value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_CREAT, 0644);
  if (fd < 0) return Status::FromErrno("open " + path);
  ssize_t n = ::write(fd, value.data(), value.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(value.size())) {
    return Status::FromErrno("write '" + value + "' to " + path, err);
  }
  return Status::Ok();
}

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

uint64_t ReadKeyed(const std::string& path, const std::string& key) {
  std::istringstream in(Read(path));
  std::string k;
  uint64_t v;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return 0;
}

std::optional<uint64_t> ReadNumber(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string text;
  std::getline(in, text);
  if (in.bad() || text.empty() || text.size() > 20) return std::nullopt;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<uint64_t> ReadKeyedNumber(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() <= key.size() || line.compare(0, key.size(), key) != 0 ||
        line[key.size()] != ' ') {
      continue;
    }
    const char* begin = line.data() + key.size() + 1;
    const char* end = line.data() + line.size();
    uint64_t value = 0;
    auto [at, ec] = std::from_chars(begin, end, value);
    if (ec != std::errc() || at != end) return std::nullopt;
    return value;
  }
  return std::nullopt;
}

}  // namespace cgroup_files

namespace {

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep)) out.push_back(item);
  return out;
}

}  // namespace

Result<CgroupLayout> CgroupLayout::Detect(const std::string& mountinfo) {
  std::ifstream in(mountinfo);
  if (!in) return Status::Internal("cannot read " + mountinfo);
  CgroupLayout layout;
  std::string line;
  // mountinfo: id parent major:minor root mountpoint options [optional...] - fstype source super
  while (std::getline(in, line)) {
    auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::vector<std::string> left = Split(line.substr(0, dash), ' ');
    std::vector<std::string> right = Split(line.substr(dash + 3), ' ');
    if (left.size() < 5 || right.size() < 3) continue;
    const std::string& mount_point = left[4];
    if (right[0] == "cgroup2" && layout.v2_root_.empty()) {
      layout.v2_root_ = mount_point;
    } else if (right[0] == "cgroup") {
      for (const std::string& option : Split(right[2], ',')) {
        if (option == "memory" || option == "pids" || option == "cpu" || option == "cpuacct") {
          layout.v1_roots_.emplace(option, mount_point);
        }
      }
    }
  }
  if (!layout.v2_root_.empty()) {
    std::istringstream controllers(cgroup_files::Read(layout.v2_root_ + "/cgroup.controllers"));
    std::string c;
    while (controllers >> c) layout.v2_controllers_.push_back(c);
  }
  return layout;
}

CgroupLayout CgroupLayout::ForTest(CgroupVersion version, const std::string& root) {
  CgroupLayout layout;
  if (version == CgroupVersion::kV2) {
    layout.v2_root_ = root;
    layout.v2_controllers_ = {"memory", "pids", "cpu"};
  } else if (version == CgroupVersion::kV1) {
    for (const char* c : {"memory", "pids", "cpu", "cpuacct"}) {
      layout.v1_roots_[c] = root + "/" + c;
    }
  }
  return layout;
}

CgroupVersion CgroupLayout::VersionOf(const std::string& controller) const {
  if (std::find(v2_controllers_.begin(), v2_controllers_.end(), controller) !=
      v2_controllers_.end()) {
    return CgroupVersion::kV2;
  }
  if (v1_roots_.count(controller)) return CgroupVersion::kV1;
  return CgroupVersion::kNone;
}

std::string CgroupLayout::RootOf(const std::string& controller) const {
  switch (VersionOf(controller)) {
    case CgroupVersion::kV2:
      return v2_root_;
    case CgroupVersion::kV1:
      return v1_roots_.at(controller);
    case CgroupVersion::kNone:
      break;
  }
  return "";
}

std::vector<std::string> CgroupLayout::Describe() const {
  std::vector<std::string> lines;
  for (const char* c : kCgroupControllers) {
    switch (VersionOf(c)) {
      case CgroupVersion::kV2:
        lines.push_back(std::string(c) + ": cgroup v2 at " + v2_root_);
        break;
      case CgroupVersion::kV1:
        lines.push_back(std::string(c) + ": cgroup v1 at " + v1_roots_.at(c));
        break;
      case CgroupVersion::kNone:
        lines.push_back(std::string(c) + ": not available");
        break;
    }
  }
  return lines;
}

bool CgroupLayout::Complete() const {
  return std::all_of(std::begin(kCgroupControllers), std::end(kCgroupControllers),
                     [&](const char* c) { return VersionOf(c) != CgroupVersion::kNone; });
}

Result<std::unique_ptr<Cgroup>> Cgroup::Create(const CgroupLayout& layout,
                                               const std::string& parent, const std::string& name,
                                               const CgroupLimits& limits) {
  if (!layout.Complete()) {
    return Status::FailedPrecondition(
        "this host lacks a cgroup controller pycell needs (memory, pids, cpu); run "
        "`pycell doctor`");
  }
  std::unique_ptr<Cgroup> group(new Cgroup());
  for (const std::string& controller : ControllersFor(layout)) {
    CgroupVersion version = layout.VersionOf(controller);
    std::string parent_dir = layout.RootOf(controller) + "/" + parent;
    std::string dir = parent_dir + "/" + name;
    if (!group->AddToPart(version, controller, dir)) {  // Its folder exists already.
      if (version == CgroupVersion::kV1) {
        RETURN_IF_ERROR(cgroup_v1::ApplyLimits(controller, dir, limits));
      }
      continue;
    }
    if (::mkdir(parent_dir.c_str(), 0755) != 0 && errno != EEXIST) {
      return Status::FromErrno("mkdir " + parent_dir);
    }
    if (version == CgroupVersion::kV2) RETURN_IF_ERROR(cgroup_v2::EnableControllers(parent_dir));
    if (::mkdir(dir.c_str(), 0755) != 0) return Status::FromErrno("mkdir " + dir);
    if (version == CgroupVersion::kV2) {
      RETURN_IF_ERROR(cgroup_v2::ApplyLimits(dir, limits));
    } else {
      RETURN_IF_ERROR(cgroup_v1::ApplyLimits(controller, dir, limits));
    }
  }
  return group;
}

Status Cgroup::RemoveLeftover(const CgroupLayout& layout, const std::string& parent,
                              const std::string& name) {
  std::unique_ptr<Cgroup> group(new Cgroup());
  for (const std::string& controller : ControllersFor(layout)) {
    CgroupVersion version = layout.VersionOf(controller);
    if (version == CgroupVersion::kNone) continue;
    std::string dir = layout.RootOf(controller) + "/" + parent + "/" + name;
    if (::access(dir.c_str(), F_OK) == 0) group->AddToPart(version, controller, dir);
  }
  // The pids part lists every process; without one, any part does.
  if (group->PartFor("pids") == nullptr && !group->parts_.empty()) {
    group->parts_.front().controllers.push_back("pids");
  }
  return group->Destroy();
}

std::vector<std::string> Cgroup::ControllersFor(const CgroupLayout& layout) {
  std::vector<std::string> controllers(std::begin(kCgroupControllers),
                                       std::end(kCgroupControllers));
  if (layout.VersionOf("cpuacct") == CgroupVersion::kV1) controllers.push_back("cpuacct");
  return controllers;
}

bool Cgroup::AddToPart(CgroupVersion version, const std::string& controller,
                       const std::string& dir) {
  for (Part& part : parts_) {
    if (part.dir == dir) {
      part.controllers.push_back(controller);
      return false;
    }
  }
  parts_.push_back({version, {controller}, dir});
  return true;
}

Cgroup::~Cgroup() {
  Status s = Destroy();
  if (!s.ok()) LOG_WARN("cgroup cleanup: {}", s.ToString());
}

const Cgroup::Part* Cgroup::PartFor(const std::string& controller) const {
  for (const Part& p : parts_) {
    if (p.version == CgroupVersion::kV2 ||
        std::find(p.controllers.begin(), p.controllers.end(), controller) != p.controllers.end()) {
      return &p;
    }
  }
  return nullptr;
}

Status Cgroup::AddProcess(pid_t pid) {
  for (const Part& p : parts_) {
    RETURN_IF_ERROR(cgroup_files::Write(p.dir + "/cgroup.procs", std::to_string(pid)));
  }
  return Status::Ok();
}

namespace {

Status WriteCpuWeight(CgroupVersion version, const std::string& dir, uint32_t weight) {
  weight = std::clamp<uint32_t>(weight, 1, 10000);
  if (version == CgroupVersion::kV2) {
    return cgroup_files::Write(dir + "/cpu.weight", std::to_string(weight));
  }
  uint64_t shares = std::max<uint64_t>(2, uint64_t{weight} * 1024 / 100);
  return cgroup_files::Write(dir + "/cpu.shares", std::to_string(shares));
}

}  // namespace

Status Cgroup::SetCpuWeight(uint32_t weight) {
  const Part* part = PartFor("cpu");
  if (part == nullptr) return Status::Ok();  // No CPU controller: nothing to weigh.
  return WriteCpuWeight(part->version, part->dir, weight);
}

Status Cgroup::SetParentCpuWeight(const CgroupLayout& layout, const std::string& parent,
                                  uint32_t weight) {
  CgroupVersion version = layout.VersionOf("cpu");
  if (version == CgroupVersion::kNone) return Status::Ok();
  std::string dir = layout.RootOf("cpu") + "/" + parent;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return Status::FromErrno("mkdir " + dir);
  return WriteCpuWeight(version, dir, weight).WithContext("the sessions' CPU weight");
}

CgroupUsage Cgroup::ReadUsage() const {
  CgroupUsage usage;
  for (const Part& p : parts_) {
    if (p.version == CgroupVersion::kV2) {
      cgroup_v2::ReadUsage(p.dir, &usage);
    } else {
      for (const std::string& c : p.controllers) cgroup_v1::ReadUsage(c, p.dir, &usage);
    }
  }
  return usage;
}

void Cgroup::ResetPeak() {
  for (const Part& p : parts_) {
    if (p.version == CgroupVersion::kV2) {
      cgroup_v2::ResetPeak(p.dir);
    } else {
      for (const std::string& c : p.controllers) cgroup_v1::ResetPeak(c, p.dir);
    }
  }
}

Status Cgroup::KillAll() {
  // Every process of a session is in every part; the pids part (or any) lists them all.
  const Part* part = PartFor("pids");
  if (part == nullptr || destroyed_) return Status::Ok();
  if (part->version == CgroupVersion::kV2) {
    (void)cgroup_files::Write(part->dir + "/cgroup.kill", "1");
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (true) {
    std::istringstream procs(cgroup_files::Read(part->dir + "/cgroup.procs"));
    bool any = false;
    pid_t pid;
    while (procs >> pid) {
      any = true;
      ::kill(pid, SIGKILL);
    }
    if (!any) return Status::Ok();
    if (std::chrono::steady_clock::now() > deadline) {
      return Status::Internal("processes of " + part->dir + " survived SIGKILL for 5 s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

Status Cgroup::Destroy() {
  if (destroyed_) return Status::Ok();
  RETURN_IF_ERROR(KillAll());
  Status result;
  for (const Part& p : parts_) {
    // An emptied group can still be "busy" for a moment while the kernel finishes the exits.
    for (int attempt = 0; attempt < 500; ++attempt) {
      if (::rmdir(p.dir.c_str()) == 0 || errno == ENOENT) break;
      if (errno != EBUSY) {
        result = Status::FromErrno("rmdir " + p.dir);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  destroyed_ = true;
  return result;
}

std::vector<pid_t> Cgroup::Processes() const {
  std::vector<pid_t> pids;
  const Part* part = PartFor("pids");
  if (part == nullptr || destroyed_) return pids;
  std::istringstream procs(cgroup_files::Read(part->dir + "/cgroup.procs"));
  pid_t pid;
  while (procs >> pid) pids.push_back(pid);
  return pids;
}

std::vector<std::string> Cgroup::Paths() const {
  std::vector<std::string> out;
  for (const Part& p : parts_) out.push_back(p.dir);
  return out;
}

}  // namespace pycell::sandbox
