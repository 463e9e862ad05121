#include "sandbox/rlimits.h"

#include <sys/resource.h>

#include <string>

namespace pycell::sandbox::rlimits {
namespace {
// Lowers both soft and hard limits to `value` (never raises: a hard limit above the current one
// needs a privilege the sandbox does not have).
Status Set(int resource, const char* name, rlim_t value) {
  struct rlimit current {};
  if (::getrlimit(resource, &current) == 0 && current.rlim_max != RLIM_INFINITY &&
      current.rlim_max < value) {
    value = current.rlim_max;
  }
  struct rlimit limit {
    value, value
  };
  if (::setrlimit(resource, &limit) != 0) {
    return Status::FromErrno(std::string("setrlimit(") + name + ", " + std::to_string(value) + ")");
  }
  return Status::Ok();
}
}  // namespace

Status InitInChild(const Policy& policy) {
  RETURN_IF_ERROR(Set(RLIMIT_CORE, "RLIMIT_CORE", 0));
  if (policy.max_file_bytes > 0) {
    RETURN_IF_ERROR(Set(RLIMIT_FSIZE, "RLIMIT_FSIZE", policy.max_file_bytes));
  }
  if (policy.max_open_files > 0) {
    RETURN_IF_ERROR(Set(RLIMIT_NOFILE, "RLIMIT_NOFILE", policy.max_open_files));
  }
  // The session's host uid is its own, so RLIMIT_NPROC counts only this session's processes.
  if (policy.max_pids > 0) RETURN_IF_ERROR(Set(RLIMIT_NPROC, "RLIMIT_NPROC", policy.max_pids));
  RETURN_IF_ERROR(Set(RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE", 1 << 20));
  // Whatever the server was started with, a session gets no real-time or raised priority and
  // a small amount of locked memory.
  RETURN_IF_ERROR(Set(RLIMIT_RTPRIO, "RLIMIT_RTPRIO", 0));
  RETURN_IF_ERROR(Set(RLIMIT_NICE, "RLIMIT_NICE", 0));
  RETURN_IF_ERROR(Set(RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK", 8 << 20));
  return Status::Ok();
}

}  // namespace pycell::sandbox::rlimits
