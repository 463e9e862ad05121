// What this host offers the sandbox, for `pycell doctor` and for the check at start that refuses
// to run weaker than configured.
#pragma once

#include <string>
#include <vector>

#include "sandbox/cgroup.h"

namespace pycell::sandbox {

struct Protection {
  std::string name;  // "user namespaces"
  bool available;
  std::string detail;  // What was found, or what to do about it.
};

struct HostReport {
  std::vector<Protection> protections;
  bool AllAvailable() const;
};

// Probes by trying (a throwaway child in new namespaces, a seccomp query, openat2 on "/"), not by
// reading version numbers.
HostReport ProbeHost();

// Whether a session can mount its own read-only overlay of /usr (Policy::private_runtime).
Protection ProbePrivateRuntime();

}  // namespace pycell::sandbox
