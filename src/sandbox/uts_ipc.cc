#include "sandbox/uts_ipc.h"

#include <unistd.h>

namespace pycell::sandbox::uts_ipc {

Status InitInChild(const std::string& hostname) {
  if (::sethostname(hostname.data(), hostname.size()) != 0) return Status::FromErrno("sethostname");
  if (::setdomainname("", 0) != 0) return Status::FromErrno("setdomainname");
  return Status::Ok();
}

}  // namespace pycell::sandbox::uts_ipc
