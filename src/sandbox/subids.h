// Subordinate ids: the unprivileged host uids and gids sessions run as. The range comes from
// /etc/subuid and /etc/subgid (the entry of the user pycell runs as — root, normally); each live
// session leases a slot of two ids (its init and its code), so no two sessions share a uid, even
// across pycell processes: the lease is an flock on /run/pycell/ids/<slot>, released by the
// kernel when its holder dies.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "common/status.h"
#include "common/unique_fd.h"

namespace pycell::sandbox {

struct SubIdRange {
  uint32_t uid_base = 0, uid_count = 0;
  uint32_t gid_base = 0, gid_count = 0;
};

// The first range of `user` in each file. NotFound when either file has none.
Result<SubIdRange> ReadSubIds(const std::string& user, const std::string& subuid = "/etc/subuid",
                              const std::string& subgid = "/etc/subgid");

class IdLease {
 public:
  static Result<IdLease> Acquire(const SubIdRange& range,
                                 const std::string& lock_dir = "/run/pycell/ids");
  uid_t init_uid() const { return uid_; }
  uid_t user_uid() const { return uid_ + 1; }
  gid_t init_gid() const { return gid_; }
  gid_t user_gid() const { return gid_ + 1; }

 private:
  IdLease(uid_t uid, gid_t gid, UniqueFd lock) : uid_(uid), gid_(gid), lock_(std::move(lock)) {}
  uid_t uid_;
  gid_t gid_;
  UniqueFd lock_;
};

}  // namespace pycell::sandbox
