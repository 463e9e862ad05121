// UTS and IPC namespaces: a host name of the session's own, and System V IPC objects (shared
// memory, semaphores, queues) that no other session can see. The IPC namespace needs no setup
// beyond being new; the host name does.
#pragma once

#include <string>

#include "common/status.h"

namespace pycell::sandbox::uts_ipc {

// Child side, with CAP_SYS_ADMIN in the new UTS namespace.
Status InitInChild(const std::string& hostname);

}  // namespace pycell::sandbox::uts_ipc
