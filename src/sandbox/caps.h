// Capabilities and privilege bits: after these, the process can never regain privilege — every
// capability set is empty (bounding, ambient, inheritable, permitted, effective), no_new_privs is
// set so setuid files and file capabilities give nothing.
#pragma once

#include "common/status.h"

namespace pycell::sandbox::caps {

// Child side, while still inside-root (emptying the bounding set needs CAP_SETPCAP).
Status DropBoundingAndAmbient();
// Child side, after the uid switch: clears whatever is left and sets no_new_privs. `dumpable`:
// the uid switch made the process non-dumpable; the code's process turns it back on so that its
// own /proc/self works as usual (seccomp keeps ptrace away), the sandbox's init stays off.
Status DropAll(bool dumpable);
// As DropAll, but keeps `cap` (permitted and effective) — for the sandbox's init, which keeps
// CAP_KILL of its own namespace so it can pass the server's interrupt to the code's process,
// which runs as another uid.
Status DropAllExcept(int cap, bool dumpable);

}  // namespace pycell::sandbox::caps
