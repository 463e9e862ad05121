// Policy: everything the sandbox needs to contain one session, on the host side (folders,
// subordinate ids, cgroup limits) and inside the child (mounts, rlimits, seccomp).
//
// A plain value: built by the session layer from the pool's limits, copied into the zygote, read by
// the checklist in contain.h. Nothing in it knows about Python.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace pycell::sandbox {

struct Policy {
  // Host folder of this session: root/ (mount point of the new root), data/ and tmp/ (quota'd
  // tmpfs mounted by the host side, bound to /mnt/data and /tmp inside), devices/ (the session's
  // own device nodes, made by the host side, bound into /dev).
  std::string session_dir;
  std::string hostname = "pycell";

  // Host ids the two inside ids map to: inside 0 (the sandbox's init) and inside 1000 (the code).
  uid_t host_uid_init = 0;
  uid_t host_uid_user = 0;
  gid_t host_gid_init = 0;
  gid_t host_gid_user = 0;
  static constexpr uid_t kInsideUser = 1000;

  // Host paths bound read-only into the new root at the same place (e.g. "/usr", "/etc/ssl").
  // Missing paths are skipped.
  std::vector<std::string> readonly_binds;
  // Shows them through an overlay of their own per session (own inodes, so no file lock crosses
  // sessions) instead of plain binds. Off only where the host cannot mount overlayfs in a user
  // namespace and the operator allowed a weaker sandbox.
  bool private_runtime = true;

  // Resource limits.
  uint64_t memory_bytes = 0;
  uint32_t max_pids = 0;
  double cpus = 0;
  uint64_t data_bytes = 0;      // quota of /mnt/data
  uint64_t tmp_bytes = 0;       // quota of /tmp (and /dev/shm)
  uint64_t max_file_bytes = 0;  // RLIMIT_FSIZE
  uint32_t max_open_files = 0;  // RLIMIT_NOFILE

  bool seccomp = true;  // Off only for `pycell doctor`-style experiments; never in a pool.
};

// The files of the minimal /etc every session gets, besides generated passwd/group/hosts.
std::vector<std::string> DefaultReadonlyBinds();

}  // namespace pycell::sandbox
