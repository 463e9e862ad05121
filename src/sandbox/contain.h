// contain: the checklist that turns a freshly cloned process into a session sandbox, read top to
// bottom in contain.cc. One function per side:
//
//   host (the server)                      child (cloned by the zygote with kCloneFlags)
//   ------------------------------------   -----------------------------------------------------
//   MapIds: uid/gid maps, then "go"    ──▶ waits for "go", then ContainChild: inside-root;
//   JoinCgroup, then "admitted"       ──▶    mounts; loopback; host name (meanwhile the host
//                                            moves it into its cgroup); waits for "admitted";
//                                            forks the worker (pid 2), and as pid 1 reaps until
//                                            the worker exits. The worker drops to uid 1000,
//                                            loses every capability, sets rlimits and
//                                            no_new_privs, and installs seccomp last.
//
// Nothing here knows about Python: the caller runs whatever it wants in the worker once
// ContainChild returns there.
#pragma once

#include <sys/types.h>

#include "common/status.h"
#include "sandbox/cgroup.h"
#include "sandbox/policy.h"
#include "sandbox/seccomp.h"

namespace pycell::sandbox {

// The namespaces every session gets: user, mount, pid, network, IPC, UTS.
extern const unsigned long kCloneFlags;

// clone(2) with kCloneFlags | SIGCHLD: returns twice like fork (0 in the child, which is pid 1
// of a new pid namespace), or -1 with errno.
pid_t CloneContained();

// A session fork (see ContainForkChild): a new user namespace that owns a new mount and a new pid
// namespace, the child given to the origin's init as parent. Network, IPC and UTS stay the
// origin's. The seccomp filter lets the code's process clone with exactly these flags and no
// other namespace flags (docs/sandbox.md says why that gives the code nothing to use).
extern const unsigned long kForkCloneFlags;

// clone(2) with kForkCloneFlags: returns twice like fork, or -1 with errno.
pid_t CloneForFork();

// Host side, while the child waits for "go": writes its uid and gid maps.
Status MapIds(pid_t child, const Policy& policy);

// Child side. `keep_fds` descriptors (0..keep_fds-1) pass to the worker; `admission_fd` (which
// must be >= keep_fds) gives one byte once the host has put the child in its cgroup — nothing
// runs in the worker before it; everything else is closed. `program` is the seccomp filter,
// compiled before the fork. Returns only in the worker, contained, with OK; an error is
// returned in whichever process found it (init or worker), which should report it and _exit.
// The init never returns: it exits with the worker's status (128+signal for a signal).
//
// `lifeline_fd` (< keep_fds, or -1) is the read end of a pipe whose write end only the server
// holds: when the server dies, however it dies, the pipe hangs up and the init exits, which ends
// the session. (The zygote dying does not: sessions outlive it.) The worker does not keep it.
Status ContainChild(const Policy& policy, int keep_fds, int admission_fd, int lifeline_fd,
                    const seccomp::Program& program);

// Child side of a session fork, in the process cloned with kForkCloneFlags by the origin's code
// process (pid 1 of its own pid namespace, with every capability of its own user namespace and
// the origin's seccomp filter). Maps its user and group 1000 onto the origin's 1000, then waits
// for one byte 'g' on `admission_fd`: the host has replaced /mnt/data, /tmp and /dev/shm in its
// mount namespace by the fork's own copies (mount_ns::ReplaceForkMounts) and moved it into the
// fork's cgroup. It then forks the worker, which drops every capability, returns to `cwd` (so a
// relative path resolves in the fork's /mnt/data, not the origin's) and returns OK; the first
// process stays as the fork's init (as in ContainChild) and never returns. Descriptors are kept
// as the caller left them, as after fork(2); `admission_fd` is closed.
Status ContainForkChild(int admission_fd, const std::string& cwd);

}  // namespace pycell::sandbox
