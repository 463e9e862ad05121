#include "sandbox/caps.h"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace pycell::sandbox::caps {

Status DropBoundingAndAmbient() {
  for (int cap = 0; cap <= 63; ++cap) {
    if (::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0) break;  // Past the kernel's last cap.
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      return Status::FromErrno("PR_CAPBSET_DROP " + std::to_string(cap));
    }
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) {
    return Status::FromErrno("PR_CAP_AMBIENT_CLEAR_ALL");
  }
  return Status::Ok();
}

Status DropAll(bool dumpable) { return DropAllExcept(-1, dumpable); }

Status DropAllExcept(int cap, bool dumpable) {
  struct __user_cap_header_struct header {
    _LINUX_CAPABILITY_VERSION_3, 0
  };
  struct __user_cap_data_struct data[2] = {};
  if (cap >= 0) {
    data[cap / 32].permitted = data[cap / 32].effective = 1u << (cap % 32);
  }
  if (::syscall(SYS_capset, &header, data) != 0) return Status::FromErrno("capset(empty)");
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return Status::FromErrno("PR_SET_NO_NEW_PRIVS");
  if (::prctl(PR_SET_DUMPABLE, dumpable ? 1 : 0, 0, 0, 0) != 0)
    return Status::FromErrno("PR_SET_DUMPABLE");
  return Status::Ok();
}

}  // namespace pycell::sandbox::caps
