// SafeDir: the server's only way into a folder that sandboxed code can write (a session's
// /mnt/data). Every open is relative to a directory descriptor and resolved with
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV) — or,
// where the kernel lacks openat2, component by component with O_NOFOLLOW — so a link the code
// planted is never followed, whatever it points at. Only regular files are read or listed; a
// walk never crosses a mount point and stops at fixed bounds of depth and entries.
//
// Thread-safety: const methods may run concurrently; the folder itself may change under us at
// any time (that is the point), and every method copes with it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"

namespace pycell::files {

struct FileState {
  uint64_t bytes = 0;
  int64_t mtime_ns = 0;
  uint64_t inode = 0;
  bool operator==(const FileState&) const = default;
};

// Relative path ("out/chart.png") -> state, regular files only.
using DirSnapshot = std::map<std::string, FileState>;

struct FileChange {
  std::string path;
  uint64_t bytes = 0;
  bool created = false;  // false: an existing file changed.
};

struct WalkLimits {
  int max_depth = 16;
  size_t max_entries = 100000;
};

class SafeDir {
 public:
  // Opens `path` itself (which the server created, so it may be followed) as the root.
  static Result<SafeDir> Open(const std::string& path);

  Result<DirSnapshot> Snapshot(const WalkLimits& limits = {}) const;
  // Opens a regular file beneath the root for reading. NotFound / PermissionDenied (for links,
  // devices, folders and anything outside).
  Result<UniqueFd> OpenFileForRead(const std::string& relative_path) const;
  // Creates a new regular file `name` (no '/', not "." or "..") at the root, owned by uid/gid,
  // and copies `source_fd`'s content into it. Refuses to replace anything already there.
  Status CreateFileFrom(const std::string& name, int source_fd, uid_t uid, gid_t gid) const;
  // The same, replacing a file or link named `name` in one step: the copy is written under a
  // temporary name and renamed over it, so the folder never holds a half file or no file at
  // all. A folder named `name` is refused (FailedPrecondition).
  Status ReplaceFileFrom(const std::string& name, int source_fd, uid_t uid, gid_t gid) const;
  // Copies the regular file `relative_path` to `dest_path` on the host (created 0644, replacing
  // a regular file there). Never follows a link on the session's side. A file of more than
  // `max_bytes` (when it is opened, or by growing during the copy) is refused, and nothing is
  // left at `dest_path`.
  Status CopyOut(const std::string& relative_path, const std::string& dest_path,
                 uint64_t max_bytes = UINT64_MAX) const;
  // Removes the file or link `relative_path` beneath the root (a link itself, never its target;
  // no link followed on the way). NotFound when absent; folders are refused.
  Status RemoveFile(const std::string& relative_path) const;
  // Copies the whole tree into the empty folder `dest` (a session fork's /mnt/data or /tmp):
  // folders, regular files (holes kept: a sparse file stays sparse) and symbolic links as links
  // (never followed), all owned by uid/gid, modes without set-id bits; anything else (FIFOs,
  // sockets, devices) and other mounts are left out. Stops at `limits`.
  Status CopyTreeTo(const std::string& dest, uid_t uid, gid_t gid,
                    const WalkLimits& limits = {}) const;

  int fd() const { return root_.get(); }

 private:
  explicit SafeDir(UniqueFd root) : root_(std::move(root)) {}
  UniqueFd root_;
};

// Created and changed files between two snapshots, in path order.
std::vector<FileChange> DiffSnapshots(const DirSnapshot& before, const DirSnapshot& after);

// True for a safe single file name: not empty, no '/', no NUL, not "." or "..", ≤ 255 bytes.
bool IsSafeFileName(const std::string& name);

}  // namespace pycell::files
