// User namespace: the session's ids. Inside, 0 is the sandbox's init and 1000 ("pycell") runs the
// code; on the host both are unprivileged subordinate ids, different for every session.
#pragma once

#include <sys/types.h>

#include "common/status.h"
#include "sandbox/policy.h"

namespace pycell::sandbox::user_ns {

// Host side, for a child cloned with CLONE_NEWUSER and waiting: writes its uid_map, setgroups
// ("deny") and gid_map. REQUIRES: CAP_SETUID and CAP_SETGID in the parent namespace (root).
Status InitFromParent(pid_t child, const Policy& policy);

// Child side, first thing after the maps exist: become inside-root (keeps the namespace's
// capabilities, so that the mount steps may run).
Status BecomeInsideRoot();

// Child side, last before seccomp: drop supplementary groups and switch to inside uid/gid 1000.
// The kernel clears every capability on the way.
Status DropToUser();

}  // namespace pycell::sandbox::user_ns
