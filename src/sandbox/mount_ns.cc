#include "sandbox/mount_ns.h"

#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <utility>
#include <vector>

#include "common/fs.h"
#include "common/unique_fd.h"

namespace pycell::sandbox::mount_ns {
namespace {

Status Mount(const std::string& source, const std::string& target, const char* fstype,
             unsigned long flags, const std::string& data = "") {
  if (::mount(source.empty() ? nullptr : source.c_str(), target.c_str(), fstype, flags,
              data.empty() ? nullptr : data.c_str()) != 0) {
    return Status::FromErrno("mount(" + source + " -> " + target +
                             ", flags=" + std::to_string(flags) + ")");
  }
  return Status::Ok();
}

Status MakeFile(const std::string& path, const std::string& content, mode_t mode) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd.valid()) return Status::FromErrno("create " + path);
  if (!content.empty() &&
      ::write(fd.get(), content.data(), content.size()) != static_cast<ssize_t>(content.size())) {
    return Status::FromErrno("write " + path);
  }
  return Status::Ok();
}

Status MakeSymlink(const std::string& target, const std::string& link) {
  if (::symlink(target.c_str(), link.c_str()) != 0 && errno != EEXIST) {
    return Status::FromErrno("symlink " + link);
  }
  return Status::Ok();
}

// A bind mount made read-only. In a user namespace the remount must keep the flags the kernel
// locked on the source (nosuid, nodev, noexec, atime), so they are read from the source first.
Status BindReadOnly(const std::string& source, const std::string& target, bool allow_exec) {
  RETURN_IF_ERROR(Mount(source, target, nullptr, MS_BIND | MS_REC));
  struct statvfs st {};
  if (::statvfs(source.c_str(), &st) != 0) return Status::FromErrno("statvfs " + source);
  unsigned long flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV;
  if (!allow_exec || (st.f_flag & ST_NOEXEC)) flags |= MS_NOEXEC;
  if (st.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (st.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (st.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  return Mount("", target, nullptr, flags);
}

// The folders above `path` under `root` ("/etc" for "/etc/ssl").
Status MakeParents(const std::string& root, const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    RETURN_IF_ERROR(MakeDir(root + path.substr(0, slash), 0755));
  }
  return Status::Ok();
}

// The link `source` made again at `path` under `root`, with the same target.
Status CopySymlink(const std::string& root, const std::string& path, const std::string& source) {
  char target[PATH_MAX];
  ssize_t n = ::readlink(source.c_str(), target, sizeof target);
  if (n < 0 || n == static_cast<ssize_t>(sizeof target)) {
    return Status::FromErrno("readlink " + source);
  }
  RETURN_IF_ERROR(MakeParents(root, path));
  return MakeSymlink(std::string(target, static_cast<size_t>(n)), root + path);
}

// Binds `source` (the host path `path`, or the same file seen through a private layer) at `path`
// under `root`, creating the mount point as a file or a folder to match. Missing sources are
// skipped: not every host has every /etc entry.
Status BindHostPath(const std::string& root, const std::string& path, const std::string& source) {
  struct stat st {};
  if (::stat(source.c_str(), &st) != 0) return Status::Ok();
  RETURN_IF_ERROR(MakeParents(root, path));
  std::string target = root + path;
  if (S_ISDIR(st.st_mode)) {
    RETURN_IF_ERROR(MakeDir(target, 0755));
  } else {
    RETURN_IF_ERROR(MakeFile(target, "", 0644));
  }
  return BindReadOnly(source, target, /*allow_exec=*/path == "/usr");
}

// The read-only host paths, each seen through a private overlay of its top folder ("/usr",
// "/etc") rather than bound straight. File locks belong to inodes, and a bind shares the host's:
// two sessions locking /usr/bin/python3 would see each other's locks, a channel between sessions
// that must not talk (security case 75). An overlay's inodes belong to its superblock, so each
// session's view has inodes of its own, while reads, mmap and the page cache still go to the
// host's files. The overlays are staged under <root>/.layers, their entries bound into place,
// and the staging detached: only the chosen entries of /etc stay reachable.
//
// An overlay without an upper layer needs two lower ones; the second is <root>/run, empty and
// read-only, named relative to `root` (the working folder here) so the session's mountinfo
// shows no host path.
Status BindPrivateRuntime(const std::string& root, const std::vector<std::string>& paths) {
  const std::string staging = root + "/.layers";
  RETURN_IF_ERROR(MakeDir(staging, 0700));
  std::vector<std::pair<std::string, std::string>> layers;  // top folder, where it is staged
  for (const std::string& path : paths) {
    std::string top = path.substr(0, path.find('/', 1));
    auto layer =
        std::find_if(layers.begin(), layers.end(), [&](const auto& l) { return l.first == top; });
    if (layer == layers.end()) {
      struct stat st {};
      if (::stat(top.c_str(), &st) != 0) continue;  // A missing entry, as BindHostPath skips.
      if (!S_ISDIR(st.st_mode) || top.find_first_of(",:\\") != std::string::npos) {
        return Status::InvalidArgument("read-only path " + path +
                                       " is not under a host folder an overlay can show");
      }
      std::string at = staging + "/" + std::to_string(layers.size());
      RETURN_IF_ERROR(MakeDir(at, 0700));
      unsigned long flags = MS_RDONLY | MS_NOSUID | MS_NODEV | (top == "/usr" ? 0 : MS_NOEXEC);
      RETURN_IF_ERROR(Mount("overlay", at, "overlay", flags, "lowerdir=" + top + ":run"));
      layer = layers.insert(layers.end(), {top, at});
    }
    std::string source = layer->second + path.substr(top.size());
    struct stat link {};
    if (::lstat(source.c_str(), &link) == 0 && S_ISLNK(link.st_mode)) {
      // /etc/localtime, /etc/os-release: a bind would follow the link on the host, to a host
      // inode; the same link in the new root resolves there, into the session's own /usr.
      RETURN_IF_ERROR(CopySymlink(root, path, source));
      continue;
    }
    RETURN_IF_ERROR(BindHostPath(root, path, source));
  }
  for (const auto& [top, at] : layers) {
    if (::umount2(at.c_str(), MNT_DETACH) != 0) return Status::FromErrno("detach " + at);
    ::rmdir(at.c_str());
  }
  if (::rmdir(staging.c_str()) != 0) return Status::FromErrno("remove " + staging);
  return Status::Ok();
}

constexpr const char* kDeviceNodes[] = {"null", "zero", "full", "random", "urandom"};

// The session's /dev: a read-only tmpfs with its own device nodes (bound from `devices`, made by
// the host with MountDeviceNodes: a bind of the host's /dev/null would share its inode, and so
// its locks, with every session), the fd links and a private /dev/shm.
Status BuildDev(const std::string& dev, const std::string& devices, uint64_t shm_bytes) {
  RETURN_IF_ERROR(Mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755"));
  for (const char* node : kDeviceNodes) {
    std::string target = dev + "/" + node;
    RETURN_IF_ERROR(MakeFile(target, "", 0666));
    RETURN_IF_ERROR(Mount(devices + "/" + node, target, nullptr, MS_BIND));
  }
  RETURN_IF_ERROR(MakeSymlink("/proc/self/fd", dev + "/fd"));
  RETURN_IF_ERROR(MakeSymlink("/proc/self/fd/0", dev + "/stdin"));
  RETURN_IF_ERROR(MakeSymlink("/proc/self/fd/1", dev + "/stdout"));
  RETURN_IF_ERROR(MakeSymlink("/proc/self/fd/2", dev + "/stderr"));
  RETURN_IF_ERROR(MakeDir(dev + "/shm", 01777));
  // POSIX semaphores and shared memory (multiprocessing) live here; private to this session.
  RETURN_IF_ERROR(Mount("tmpfs", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                        "size=" + std::to_string(shm_bytes) + ",mode=1777"));
  return Mount("", dev, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC);
}

constexpr char kPasswd[] =
    "root:x:0:0:sandbox init:/nonexistent:/usr/sbin/nologin\n"
    "pycell:x:1000:1000:pycell session:/tmp:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
constexpr char kGroup[] = "root:x:0:\npycell:x:1000:\nnogroup:x:65534:\n";
constexpr char kHosts[] = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n";

}  // namespace

Status PrivatizeHostMounts() {
  if (::unshare(CLONE_NEWNS) != 0) return Status::FromErrno("unshare(CLONE_NEWNS)");
  return Mount("", "/", nullptr, MS_REC | MS_PRIVATE);
}

Status MountQuotaTmpfs(const std::string& path, uint64_t bytes, uid_t uid, gid_t gid) {
  // nr_inodes bounds "a billion small files" as size bounds bytes.
  uint64_t inodes = bytes / 4096 + 1024;
  // noexec: only /usr holds programs (docs/sandbox.md, "What may execute"); the session's binds of
  // this mount inherit the flag and cannot clear it (it is locked in their user namespace).
  return Mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
               "size=" + std::to_string(bytes) + ",nr_inodes=" + std::to_string(inodes) +
                   ",mode=0700,uid=" + std::to_string(uid) + ",gid=" + std::to_string(gid));
}

Status MountDeviceNodes(const std::string& path) {
  // Device nodes open only on a filesystem mounted without nodev by the initial user namespace:
  // this tmpfs, not one the session mounts.
  RETURN_IF_ERROR(
      Mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=4k,nr_inodes=16,mode=0755"));
  for (const char* node : kDeviceNodes) {
    std::string host = std::string("/dev/") + node;
    struct stat st {};
    if (::stat(host.c_str(), &st) != 0) return Status::FromErrno("stat " + host);
    if (!S_ISCHR(st.st_mode))
      return Status::FailedPrecondition(host + " is not a character device");
    std::string made = path + "/" + node;
    if (::mknod(made.c_str(), S_IFCHR | 0666, st.st_rdev) != 0)
      return Status::FromErrno("mknod " + made);
    if (::chmod(made.c_str(), 0666) != 0)
      return Status::FromErrno("chmod " + made);  // Past the umask.
  }
  return Mount("", path, nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC);
}

Status Unmount(const std::string& path) {
  if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    return Status::FromErrno("umount " + path);
  }
  return Status::Ok();
}

namespace {
Result<ino_t> MountNamespaceOf(pid_t pid) {
  struct stat st {};
  std::string path = "/proc/" + std::to_string(pid) + "/ns/mnt";
  if (::stat(path.c_str(), &st) != 0) return Status::FromErrno("stat " + path);
  return st.st_ino;
}
}  // namespace

Status ReplaceForkMounts(pid_t pid, pid_t origin_pid, const std::string& session_dir,
                         uint64_t shm_bytes) {
  ASSIGN_OR_RETURN(ino_t target, MountNamespaceOf(pid));
  ASSIGN_OR_RETURN(ino_t ours, MountNamespaceOf(::getpid()));
  ASSIGN_OR_RETURN(ino_t origin, MountNamespaceOf(origin_pid));
  if (target == ours || target == origin) {
    return Status::FailedPrecondition("the fork did not get a mount namespace of its own");
  }
  UniqueFd ns(::open(("/proc/" + std::to_string(pid) + "/ns/mnt").c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns.valid()) return Status::FromErrno("open the fork's mount namespace");
  // Detached copies of the host folders' mounts, made here where their paths mean something.
  auto clone_tree = [](const std::string& path) -> Result<UniqueFd> {
    UniqueFd fd(static_cast<int>(
        ::syscall(SYS_open_tree, AT_FDCWD, path.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)));
    if (!fd.valid()) return Status::FromErrno("open_tree " + path);
    return fd;
  };
  ASSIGN_OR_RETURN(UniqueFd data, clone_tree(session_dir + "/data"));
  ASSIGN_OR_RETURN(UniqueFd tmp, clone_tree(session_dir + "/tmp"));
  // The origin's device nodes would be shared with it (and so their locks): the fork's own.
  constexpr size_t kNodes = sizeof(kDeviceNodes) / sizeof(kDeviceNodes[0]);
  UniqueFd nodes[kNodes];
  std::string node_targets[kNodes];
  for (size_t i = 0; i < kNodes; ++i) {
    ASSIGN_OR_RETURN(nodes[i], clone_tree(session_dir + "/devices/" + kDeviceNodes[i]));
    node_targets[i] = std::string("/dev/") + kDeviceNodes[i];
  }
  std::string shm_options = "size=" + std::to_string(shm_bytes) + ",mode=1777";
  // After fork, only system calls: the parent has other threads.
  pid_t child = ::fork();
  if (child < 0) return Status::FromErrno("fork (mount helper)");
  if (child == 0) {
    if (::setns(ns.get(), CLONE_NEWNS) != 0) ::_exit(10);
    if (::syscall(SYS_move_mount, data.get(), "", AT_FDCWD, "/mnt/data", MOVE_MOUNT_F_EMPTY_PATH) !=
        0) {
      ::_exit(11);
    }
    if (::syscall(SYS_move_mount, tmp.get(), "", AT_FDCWD, "/tmp", MOVE_MOUNT_F_EMPTY_PATH) != 0) {
      ::_exit(12);
    }
    if (::mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                shm_options.c_str()) != 0) {
      ::_exit(13);
    }
    for (size_t i = 0; i < kNodes; ++i) {
      if (::syscall(SYS_move_mount, nodes[i].get(), "", AT_FDCWD, node_targets[i].c_str(),
                    MOVE_MOUNT_F_EMPTY_PATH) != 0) {
        ::_exit(14);
      }
    }
    ::_exit(0);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::Ok();
  static const char* const kSteps[] = {"enter its mount namespace", "mount /mnt/data", "mount /tmp",
                                       "mount /dev/shm", "mount its device nodes"};
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return Status::Internal(std::string("could not give the fork its folders: ") +
                          (code >= 10 && code <= 14 ? kSteps[code - 10] : "helper died") +
                          " failed");
}

Status InitInChild(const Policy& policy) {
  const std::string root = policy.session_dir + "/root";
  // Nothing done here may reach the host (or the server's) mount table.
  RETURN_IF_ERROR(Mount("", "/", nullptr, MS_REC | MS_PRIVATE));
  RETURN_IF_ERROR(Mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755"));

  for (const char* dir : {"/etc", "/proc", "/dev", "/tmp", "/mnt", "/mnt/data", "/run"}) {
    RETURN_IF_ERROR(MakeDir(root + dir, 0755));
  }
  // Debian's merged /usr: the top-level program folders are links into /usr.
  for (const char* dir : {"bin", "sbin", "lib", "lib64"}) {
    RETURN_IF_ERROR(MakeSymlink(std::string("usr/") + dir, root + "/" + dir));
  }
  // Relative names below (the overlays' empty layer) are relative to the new root.
  if (::chdir(root.c_str()) != 0) return Status::FromErrno("chdir " + root);
  if (policy.private_runtime) {
    RETURN_IF_ERROR(BindPrivateRuntime(root, policy.readonly_binds));
  } else {
    for (const std::string& path : policy.readonly_binds) {
      RETURN_IF_ERROR(BindHostPath(root, path, path));
    }
  }
  RETURN_IF_ERROR(MakeFile(root + "/etc/passwd", kPasswd, 0644));
  RETURN_IF_ERROR(MakeFile(root + "/etc/group", kGroup, 0644));
  RETURN_IF_ERROR(MakeFile(root + "/etc/hosts", kHosts, 0644));
  RETURN_IF_ERROR(MakeFile(root + "/etc/hostname", policy.hostname + "\n", 0644));
  RETURN_IF_ERROR(MakeFile(root + "/etc/resolv.conf", "", 0644));

  // /proc of the new pid namespace (we are its pid 1), with /proc/sys read-only.
  RETURN_IF_ERROR(Mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC));
  RETURN_IF_ERROR(Mount(root + "/proc/sys", root + "/proc/sys", nullptr, MS_BIND | MS_REC));
  RETURN_IF_ERROR(Mount("", root + "/proc/sys", nullptr,
                        MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC));
  RETURN_IF_ERROR(
      BuildDev(root + "/dev", policy.session_dir + "/devices", policy.tmp_bytes / 4 + 1));

  RETURN_IF_ERROR(Mount(policy.session_dir + "/tmp", root + "/tmp", nullptr, MS_BIND));
  RETURN_IF_ERROR(Mount(policy.session_dir + "/data", root + "/mnt/data", nullptr, MS_BIND));

  // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only ours.
  if (::chdir(root.c_str()) != 0) return Status::FromErrno("chdir " + root);
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return Status::FromErrno("pivot_root");
  if (::umount2(".", MNT_DETACH) != 0) return Status::FromErrno("detach old root");
  if (::chdir("/") != 0) return Status::FromErrno("chdir /");
  return Mount("", "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV);
}

}  // namespace pycell::sandbox::mount_ns
