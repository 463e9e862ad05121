#include "sandbox/user_ns.h"

#include <fcntl.h>
#include <grp.h>
#include <unistd.h>

#include <string>

#include "common/unique_fd.h"

namespace pycell::sandbox::user_ns {
namespace {

Status WriteProcFile(pid_t pid, const char* name, const std::string& content) {
  std::string path = "/proc/" + std::to_string(pid) + "/" + name;
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno("open " + path);
  if (::write(fd.get(), content.data(), content.size()) != static_cast<ssize_t>(content.size())) {
    return Status::FromErrno("write '" + content + "' to " + path +
                             " (is the subordinate id range free and are we root?)");
  }
  return Status::Ok();
}

}  // namespace

Status InitFromParent(pid_t child, const Policy& policy) {
  std::string uid_map = "0 " + std::to_string(policy.host_uid_init) + " 1\n" +
                        std::to_string(Policy::kInsideUser) + " " +
                        std::to_string(policy.host_uid_user) + " 1\n";
  std::string gid_map = "0 " + std::to_string(policy.host_gid_init) + " 1\n" +
                        std::to_string(Policy::kInsideUser) + " " +
                        std::to_string(policy.host_gid_user) + " 1\n";
  RETURN_IF_ERROR(WriteProcFile(child, "uid_map", uid_map));
  RETURN_IF_ERROR(WriteProcFile(child, "setgroups", "deny"));
  return WriteProcFile(child, "gid_map", gid_map);
}

Status BecomeInsideRoot() {
  if (::setresgid(0, 0, 0) != 0) return Status::FromErrno("setresgid(0) inside the namespace");
  if (::setresuid(0, 0, 0) != 0) return Status::FromErrno("setresuid(0) inside the namespace");
  return Status::Ok();
}

Status DropToUser() {
  // setgroups is denied in this namespace (see InitFromParent), and the cloned process's
  // supplementary groups are unmapped host groups that show as "nogroup"; they grant nothing
  // inside, and files of the host's groups are not in the new root.
  constexpr uid_t kUser = Policy::kInsideUser;
  if (::setresgid(kUser, kUser, kUser) != 0) return Status::FromErrno("setresgid(1000)");
  if (::setresuid(kUser, kUser, kUser) != 0) return Status::FromErrno("setresuid(1000)");
  if (::getuid() != kUser || ::geteuid() != kUser) {
    return Status::Internal("uid did not change to 1000");
  }
  return Status::Ok();
}

}  // namespace pycell::sandbox::user_ns
