#include "files/safe_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <functional>

#include "common/ids.h"

namespace pycell::files {
namespace {

// openat2 beneath `dirfd`; falls back to a walk with O_NOFOLLOW on every component.
int OpenBeneath(int dirfd, const std::string& relative, int flags, mode_t mode = 0) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_NOFOLLOW | O_CLOEXEC);
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  int fd = static_cast<int>(::syscall(SYS_openat2, dirfd, relative.c_str(), &how, sizeof how));
  if (fd >= 0 || errno != ENOSYS) return fd;

  // Fallback: descend one component at a time, refusing links, ".." and other file systems
  // (by device: without openat2 the kernel predates mount ids in statx too).
  struct stat root_st {};
  if (::fstat(dirfd, &root_st) != 0) return -1;
  auto same_device = [&](int opened) {
    struct stat st {};
    if (opened >= 0 && ::fstat(opened, &st) == 0 && st.st_dev != root_st.st_dev) {
      ::close(opened);
      errno = EXDEV;
      return -1;
    }
    return opened;
  };
  UniqueFd current(::fcntl(dirfd, F_DUPFD_CLOEXEC, 0));
  size_t start = 0;
  while (true) {
    size_t slash = relative.find('/', start);
    std::string part =
        relative.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part.empty() || part == "." || part == "..") {
      errno = EXDEV;
      return -1;
    }
    if (slash == std::string::npos) {
      return same_device(
          ::openat(current.get(), part.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode));
    }
    int next = same_device(
        ::openat(current.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (next < 0) return -1;
    current.Reset(next);
    start = slash + 1;
  }
}

Status ErrnoStatus(const std::string& what, int err) {
  if (err == ELOOP || err == EXDEV || err == ENOTDIR || err == ENXIO) {
    return Status::PermissionDenied(what +
                                    ": not a plain path beneath the folder (links, "
                                    "'..' and other mounts are refused)");
  }
  return Status::FromErrno(what, err);
}

// The entries of one folder of a walk, with the checks every walk makes: "." and ".." skipped,
// each entry counted in `*entries` against the limit (`what` ends the message of going past it),
// entries that vanished meanwhile or sit on another mount (not `root_dev`) left out. `visit`
// gets the name and the lstat of each; an error from it ends the walk.
Status ForEachEntry(int dirfd, dev_t root_dev, const WalkLimits& limits, size_t* entries,
                    const std::string& what,
                    const std::function<Status(const std::string&, const struct stat&)>& visit) {
  int dup = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup < 0) return Status::FromErrno("reopen folder");
  DIR* dir = ::fdopendir(dup);
  if (dir == nullptr) {
    ::close(dup);
    return Status::FromErrno("fdopendir");
  }
  Status result;
  while (struct dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    if (++*entries > limits.max_entries) {
      result = Status::ResourceExhausted("more than " + std::to_string(limits.max_entries) +
                                         " entries " + what);
      break;
    }
    struct stat st {};
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // Raced.
    if (st.st_dev != root_dev) continue;  // Another mount: never crossed.
    result = visit(name, st);
    if (!result.ok()) break;
  }
  ::closedir(dir);
  return result;
}

}  // namespace

bool IsSafeFileName(const std::string& name) {
  return !name.empty() && name.size() <= 255 && name != "." && name != ".." &&
         name.find('/') == std::string::npos && name.find('\0') == std::string::npos;
}

Result<SafeDir> SafeDir::Open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno("open folder " + path);
  return SafeDir(std::move(fd));
}

Result<DirSnapshot> SafeDir::Snapshot(const WalkLimits& limits) const {
  DirSnapshot snapshot;
  struct stat root_st {};
  if (::fstat(root_.get(), &root_st) != 0) return Status::FromErrno("fstat session folder");
  size_t entries = 0;
  std::function<Status(int, const std::string&, int)> walk =
      [&](int dirfd, const std::string& prefix, int depth) -> Status {
    return ForEachEntry(dirfd, root_st.st_dev, limits, &entries, "under /mnt/data; listing stopped",
                        [&](const std::string& name, const struct stat& st) -> Status {
                          std::string path = prefix.empty() ? name : prefix + "/" + name;
                          if (S_ISREG(st.st_mode)) {
                            snapshot[path] = {static_cast<uint64_t>(st.st_size),
                                              st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec,
                                              static_cast<uint64_t>(st.st_ino)};
                          } else if (S_ISDIR(st.st_mode) && depth < limits.max_depth) {
                            // RESOLVE_NO_XDEV: a bind mount of the same file system is refused too.
                            UniqueFd child(OpenBeneath(dirfd, name, O_RDONLY | O_DIRECTORY));
                            if (!child.valid())
                              return Status::Ok();  // A link, a mount, or removed meanwhile.
                            return walk(child.get(), path, depth + 1);
                          }
                          return Status::Ok();
                        });
  };
  Status s = walk(root_.get(), "", 0);
  if (!s.ok() && !s.IsResourceExhausted()) return s;
  return snapshot;
}

Result<UniqueFd> SafeDir::OpenFileForRead(const std::string& relative_path) const {
  if (relative_path.empty() || relative_path[0] == '/') {
    return Status::InvalidArgument("path must be relative to /mnt/data");
  }
  UniqueFd fd(OpenBeneath(root_.get(), relative_path, O_RDONLY | O_NONBLOCK));
  if (!fd.valid()) return ErrnoStatus("open " + relative_path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::FromErrno("fstat " + relative_path);
  if (!S_ISREG(st.st_mode)) {
    return Status::PermissionDenied(relative_path + " is not a regular file");
  }
  // Back to blocking reads (O_NONBLOCK only kept a FIFO from hanging the open).
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
  return fd;
}

namespace {
// Copies `from` (from its current offset) to `to`: shares the extents where the file system can
// (a reflink on btrfs or XFS: no bytes copied, copy-on-write, so neither side can change the
// other), else copies inside the kernel (sendfile; tmpfs, ext4, across file systems), else reads
// and writes.
Status CopyFd(int from, int to, const std::string& what) {
  if (::ioctl(to, FICLONE, from) == 0) return Status::Ok();
  bool kernel_copy = true;
  while (kernel_copy) {
    ssize_t n = ::sendfile(to, from, nullptr, 1 << 30);
    if (n > 0) continue;
    if (n == 0) return Status::Ok();
    if (errno == EINTR) continue;
    if (errno == EINVAL || errno == ENOSYS) {
      kernel_copy = false;  // Not a file sendfile can read: the plain loop below.
    } else {
      return Status::FromErrno("copy " + what);
    }
  }
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(from, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("read " + what);
    if (n == 0) return Status::Ok();
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::write(to, buf + off, static_cast<size_t>(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return Status::FromErrno("write " + what);
      off += w;
    }
  }
}
}  // namespace

Status SafeDir::CreateFileFrom(const std::string& name, int source_fd, uid_t uid, gid_t gid) const {
  if (!IsSafeFileName(name)) {
    return Status::InvalidArgument("'" + name + "' is not a plain file name (no '/', '.' or '..')");
  }
  UniqueFd out(::openat(root_.get(), name.c_str(),
                        O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!out.valid()) {
    if (errno == EEXIST) return Status::FailedPrecondition(name + " already exists in /mnt/data");
    return Status::FromErrno("create " + name);
  }
  Status s = ::fchown(out.get(), uid, gid) == 0 ? CopyFd(source_fd, out.get(), name)
                                                : Status::FromErrno("chown " + name);
  if (!s.ok()) ::unlinkat(root_.get(), name.c_str(), 0);  // No half file behind an error.
  return s;
}

Status SafeDir::ReplaceFileFrom(const std::string& name, int source_fd, uid_t uid,
                                gid_t gid) const {
  if (!IsSafeFileName(name)) {
    return Status::InvalidArgument("'" + name + "' is not a plain file name (no '/', '.' or '..')");
  }
  struct stat there {};
  if (::fstatat(root_.get(), name.c_str(), &there, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISDIR(there.st_mode)) {
    return Status::FailedPrecondition(name + " is a folder in /mnt/data; it is not replaced");
  }
  const std::string temp = "." + NewId("pycell-upload-");
  RETURN_IF_ERROR(CreateFileFrom(temp, source_fd, uid, gid));
  // renameat replaces a file or a link (the link itself, never its target) atomically.
  if (::renameat(root_.get(), temp.c_str(), root_.get(), name.c_str()) != 0) {
    Status s = Status::FromErrno("replace " + name);
    ::unlinkat(root_.get(), temp.c_str(), 0);
    return s;
  }
  return Status::Ok();
}

Status SafeDir::CopyOut(const std::string& relative_path, const std::string& dest_path,
                        uint64_t max_bytes) const {
  ASSIGN_OR_RETURN(UniqueFd in, OpenFileForRead(relative_path));
  struct stat st {};
  if (::fstat(in.get(), &st) != 0) return Status::FromErrno("fstat " + relative_path);
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return Status::ResourceExhausted(relative_path + " has " + std::to_string(st.st_size) +
                                     " bytes, more than the " + std::to_string(max_bytes) +
                                     " left to copy");
  }
  std::string temp = dest_path + ".pycell-partial";
  UniqueFd out(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!out.valid()) return Status::FromErrno("create " + temp);
  Status s = CopyFd(in.get(), out.get(), relative_path);
  struct stat copied {};
  if (s.ok() &&
      (::fstat(out.get(), &copied) != 0 || static_cast<uint64_t>(copied.st_size) > max_bytes)) {
    s = Status::ResourceExhausted(relative_path + " grew past the " + std::to_string(max_bytes) +
                                  " bytes left to copy");
  }
  if (s.ok() && ::rename(temp.c_str(), dest_path.c_str()) != 0) {
    s = Status::FromErrno("rename to " + dest_path);
  }
  if (!s.ok()) ::unlink(temp.c_str());
  return s;
}

Status SafeDir::RemoveFile(const std::string& relative_path) const {
  size_t slash = relative_path.rfind('/');
  std::string parent = slash == std::string::npos ? "" : relative_path.substr(0, slash);
  std::string name = slash == std::string::npos ? relative_path : relative_path.substr(slash + 1);
  if (relative_path.empty() || relative_path[0] == '/' || !IsSafeFileName(name)) {
    return Status::InvalidArgument("'" + relative_path + "' is not a path under /mnt/data");
  }
  UniqueFd dir(parent.empty() ? ::fcntl(root_.get(), F_DUPFD_CLOEXEC, 0)
                              : OpenBeneath(root_.get(), parent, O_RDONLY | O_DIRECTORY));
  if (!dir.valid()) {
    if (errno == ENOENT) return Status::NotFound("no file " + relative_path + " in /mnt/data");
    return ErrnoStatus("open the folder of " + relative_path, errno);
  }
  struct stat st {};
  if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return Status::NotFound("no file " + relative_path + " in /mnt/data");
    return Status::FromErrno("stat " + relative_path);
  }
  if (S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument(relative_path + " is a folder; only files are removed");
  }
  if (::unlinkat(dir.get(), name.c_str(), 0) != 0) {
    if (errno == ENOENT) return Status::NotFound("no file " + relative_path + " in /mnt/data");
    return ErrnoStatus("remove " + relative_path, errno);
  }
  return Status::Ok();
}

namespace {
// Copies the data of `from` into `to` segment by segment (SEEK_DATA / SEEK_HOLE), so the holes
// of a sparse file stay holes instead of becoming zeros that fill the destination's quota.
Status CopySparse(int from, int to, off_t size, const std::string& what) {
  off_t data = 0;
  while (data < size) {
    data = ::lseek(from, data, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // Only a hole is left.
      return Status::FromErrno("seek " + what);
    }
    off_t hole = ::lseek(from, data, SEEK_HOLE);
    if (hole < 0) return Status::FromErrno("seek " + what);
    if (::lseek(to, data, SEEK_SET) < 0) return Status::FromErrno("seek copy of " + what);
    off_t offset = data;
    while (offset < hole) {
      ssize_t n = ::sendfile(to, from, &offset, static_cast<size_t>(hole - offset));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::FromErrno("copy " + what);
      if (n == 0) break;  // Shrunk meanwhile.
    }
    data = hole;
  }
  if (::ftruncate(to, size) != 0) return Status::FromErrno("size copy of " + what);
  return Status::Ok();
}
}  // namespace

Status SafeDir::CopyTreeTo(const std::string& dest, uid_t uid, gid_t gid,
                           const WalkLimits& limits) const {
  UniqueFd dest_root(::open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dest_root.valid()) return Status::FromErrno("open " + dest);
  struct stat root_st {};
  if (::fstat(root_.get(), &root_st) != 0) return Status::FromErrno("fstat session folder");
  size_t entries = 0;
  std::function<Status(int, int, const std::string&, int)> copy =
      [&](int from_dir, int to_dir, const std::string& prefix, int depth) -> Status {
    return ForEachEntry(
        from_dir, root_st.st_dev, limits, &entries, "to copy; the fork was not made",
        [&](const std::string& name, const struct stat& st) -> Status {
          std::string path = prefix.empty() ? name : prefix + "/" + name;
          mode_t mode = st.st_mode & 0777;
          if (S_ISDIR(st.st_mode)) {
            if (depth >= limits.max_depth) return Status::Ok();
            UniqueFd child(OpenBeneath(from_dir, name, O_RDONLY | O_DIRECTORY));
            if (!child.valid()) return Status::Ok();  // Replaced by a link or removed meanwhile.
            if (::mkdirat(to_dir, name.c_str(), 0700) != 0) {
              return Status::FromErrno("create folder " + path);
            }
            UniqueFd to_child(
                ::openat(to_dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
            if (!to_child.valid()) return Status::FromErrno("open copy of " + path);
            RETURN_IF_ERROR(copy(child.get(), to_child.get(), path, depth + 1));
            if (::fchown(to_child.get(), uid, gid) != 0 ||
                ::fchmod(to_child.get(), mode | S_IRWXU) != 0) {
              return Status::FromErrno("set owner of " + path);
            }
          } else if (S_ISREG(st.st_mode)) {
            UniqueFd in(OpenBeneath(from_dir, name, O_RDONLY | O_NONBLOCK));
            if (!in.valid()) return Status::Ok();
            struct stat in_st {};
            if (::fstat(in.get(), &in_st) != 0 || !S_ISREG(in_st.st_mode)) return Status::Ok();
            UniqueFd out(::openat(to_dir, name.c_str(),
                                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
            if (!out.valid()) return Status::FromErrno("create copy of " + path);
            RETURN_IF_ERROR(CopySparse(in.get(), out.get(), in_st.st_size, path));
            if (::fchown(out.get(), uid, gid) != 0 || ::fchmod(out.get(), mode) != 0) {
              return Status::FromErrno("set owner of " + path);
            }
          } else if (S_ISLNK(st.st_mode)) {
            char target[4096];
            ssize_t n = ::readlinkat(from_dir, name.c_str(), target, sizeof target - 1);
            if (n < 0) return Status::Ok();
            target[n] = '\0';
            if (::symlinkat(target, to_dir, name.c_str()) != 0 ||
                ::fchownat(to_dir, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
              return Status::FromErrno("copy link " + path);
            }
          }
          return Status::Ok();
        });
  };
  return copy(root_.get(), dest_root.get(), "", 0);
}

std::vector<FileChange> DiffSnapshots(const DirSnapshot& before, const DirSnapshot& after) {
  std::vector<FileChange> changes;
  for (const auto& [path, state] : after) {
    auto it = before.find(path);
    if (it == before.end()) {
      changes.push_back({path, state.bytes, true});
    } else if (!(it->second == state)) {
      changes.push_back({path, state.bytes, false});
    }
  }
  return changes;
}

}  // namespace pycell::files
