// Resource limits (setrlimit): per-process bounds that back up the cgroup — no core dumps, a cap
// on one file's size, on open descriptors, and on processes of the session's uid.
#pragma once

#include "common/status.h"
#include "sandbox/policy.h"

namespace pycell::sandbox::rlimits {

// Child side, before dropping privilege (raising a hard limit needs it; we only lower).
Status InitInChild(const Policy& policy);

}  // namespace pycell::sandbox::rlimits
