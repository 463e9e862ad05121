#include "sandbox/host_probe.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "sandbox/contain.h"
#include "sandbox/subids.h"

namespace pycell::sandbox {
namespace {

Protection ProbeNamespaces() {
  pid_t pid = CloneContained();
  if (pid == 0) ::_exit(0);
  if (pid < 0) {
    int err = errno;
    return {"namespaces (user, mount, pid, net, ipc, uts)", false,
            std::string("clone failed: ") + std::strerror(err) +
                " (unprivileged user namespaces may be disabled: "
                "sysctl kernel.unprivileged_userns_clone=1, or run as root)"};
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {"namespaces (user, mount, pid, net, ipc, uts)", true, "a test child entered all six"};
}

// A throwaway child mounts a read-only overlay of /usr in new namespaces, as a session does.
Protection TryPrivateRuntime() {
  const char* name = "private read-only runtime (overlayfs in a user namespace)";
  pid_t pid = CloneContained();
  if (pid == 0) {
    // As a session's init does (mount_ns::InitInChild); only system calls: we may have threads.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(2);
    if (::mount("tmpfs", "/tmp", "tmpfs", 0, "size=4k") != 0) ::_exit(3);
    if (::mount("overlay", "/usr", "overlay", MS_RDONLY, "lowerdir=/usr:/tmp") != 0) ::_exit(4);
    ::_exit(0);
  }
  if (pid < 0) return {name, false, std::string("clone failed: ") + std::strerror(errno)};
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    return {name, true,
            "each session sees /usr and /etc through an overlay of its own, so no "
            "file lock crosses sessions"};
  }
  return {name, false,
          "a test child could not mount a read-only overlay of /usr (needs Linux 5.11 or later "
          "with overlayfs): sessions would share the inodes of /usr and /etc, so their file "
          "locks would be a channel between sessions"};
}

Protection ProbeSeccomp() {
  std::ifstream actions("/proc/sys/kernel/seccomp/actions_avail");
  std::string list((std::istreambuf_iterator<char>(actions)), {});
  if (::prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0 && errno == EINVAL) {
    return {"seccomp filters", false, "the kernel was built without CONFIG_SECCOMP_FILTER"};
  }
  bool kill_process = list.find("kill_process") != std::string::npos;
  return {"seccomp filters", kill_process,
          kill_process ? "allowlist with kill_process for other architectures"
                       : "kernel lacks SECCOMP_RET_KILL_PROCESS"};
}

Protection ProbeOpenat2() {
  struct open_how how {};
  how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(::syscall(SYS_openat2, AT_FDCWD, ".", &how, sizeof how));
  if (fd < 0) {
    return {"openat2 (safe reads of session folders)", false,
            std::string("openat2: ") + std::strerror(errno) +
                "; pycell falls back to O_NOFOLLOW per path component"};
  }
  ::close(fd);
  return {"openat2 (safe reads of session folders)", true,
          "RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS"};
}

}  // namespace

Protection ProbePrivateRuntime() {
  // The host's answer does not change while we run: probed once per process, however many ask
  // (the service's report and every pool's engine).
  static const Protection probed = TryPrivateRuntime();
  return probed;
}

bool HostReport::AllAvailable() const {
  for (const Protection& p : protections) {
    if (!p.available) return false;
  }
  return true;
}

HostReport ProbeHost() {
  HostReport report;
  bool root = ::geteuid() == 0;
  report.protections.push_back(
      {"running as root", root,
       root ? "quota'd tmpfs, cgroups and subordinate ids available"
            : "not root: no cgroup limits, no disk quota, one uid for every session"});
  report.protections.push_back(ProbeNamespaces());
  report.protections.push_back(ProbePrivateRuntime());

  auto layout = CgroupLayout::Detect();
  std::string detail;
  if (layout.ok()) {
    for (const std::string& line : layout->Describe())
      detail += (detail.empty() ? "" : "; ") + line;
  } else {
    detail = layout.status().message();
  }
  report.protections.push_back(
      {"cgroups (memory, pids, cpu)", layout.ok() && layout->Complete() && root, detail});

  struct passwd* pw = ::getpwuid(::geteuid());
  std::string user = pw ? pw->pw_name : "root";
  auto range = ReadSubIds(user);
  report.protections.push_back({"subordinate ids", range.ok(),
                                range.ok() ? "uids " + std::to_string(range->uid_base) + "+" +
                                                 std::to_string(range->uid_count) + ", gids " +
                                                 std::to_string(range->gid_base) + "+" +
                                                 std::to_string(range->gid_count)
                                           : range.status().message()});
  report.protections.push_back(ProbeSeccomp());
  report.protections.push_back(ProbeOpenat2());
  return report;
}

}  // namespace pycell::sandbox
