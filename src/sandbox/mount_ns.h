// Mount namespace: the session's file system view — a read-only root made of the runtime, its own
// /proc, a minimal /dev, a quota'd /tmp and a writable /mnt/data — and, on the host side, the
// quota'd tmpfs folders those two are bound from.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "common/status.h"
#include "sandbox/policy.h"

namespace pycell::sandbox::mount_ns {

// Host side, once per process before any session: moves the calling process into a mount
// namespace of its own with every mount private, so that sessions' mounts never appear on the
// host and all vanish with the process. REQUIRES: single-threaded; CAP_SYS_ADMIN.
Status PrivatizeHostMounts();

// Host side: mounts a tmpfs of `bytes` at `path` (which must exist), owned by uid/gid, mode 0700.
// Writing past `bytes` fails with ENOSPC inside the sandbox; the host disk is never touched.
Status MountQuotaTmpfs(const std::string& path, uint64_t bytes, uid_t uid, gid_t gid);
// Host side: mounts a read-only tmpfs at `path` (which must exist) holding the session's own
// null, zero, full, random and urandom nodes, made with the host's device numbers.
Status MountDeviceNodes(const std::string& path);
// Host side: detaches the mount at `path`; missing mounts are fine.
Status Unmount(const std::string& path);

// Host side, for a session fork: in the mount namespace of `pid` (the fork's first process,
// which waits for it), puts the fork's own host folders under `session_dir` over the copies of
// its origin's: data/ and tmp/ (quota'd tmpfs, holding copies of the origin's files) over
// /mnt/data and /tmp, the device nodes of devices/ over those in /dev, and a fresh tmpfs of
// `shm_bytes` over /dev/shm. Refuses a namespace that is the caller's or `origin_pid`'s: the
// origin's folders must never be covered. The work happens in a short-lived child process
// (setns needs a single thread); nothing it does follows a path the session could have changed
// but the mount points, which sit on the session's read-only root.
Status ReplaceForkMounts(pid_t pid, pid_t origin_pid, const std::string& session_dir,
                         uint64_t shm_bytes);

// Child side, as inside-root in the new mount namespace: builds the new root under
// <session_dir>/root, pivots into it and makes it read-only.
Status InitInChild(const Policy& policy);

}  // namespace pycell::sandbox::mount_ns
