// Network namespace: the session's own, empty but for a loopback interface that is brought up so
// that code can talk to itself (a local server, multiprocessing managers). No route leaves it.
#pragma once

#include "common/status.h"

namespace pycell::sandbox::net_ns {

// Child side, with CAP_NET_ADMIN in the new network namespace.
Status InitInChild();

}  // namespace pycell::sandbox::net_ns
