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
// Host side: detaches the mount at `path`; missing mounts are fine.
Status Unmount(const std::string& path);

// Child side, as inside-root in the new mount namespace: builds the new root under
// <session_dir>/root, pivots into it and makes it read-only.
Status InitInChild(const Policy& policy);

}  // namespace pycell::sandbox::mount_ns
