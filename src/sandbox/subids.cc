#include "sandbox/subids.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "common/fs.h"

namespace pycell::sandbox {
namespace {

bool ReadRange(const std::string& path, const std::string& user, uint32_t* base, uint32_t* count) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string name, start, length;
    if (!std::getline(fields, name, ':') || !std::getline(fields, start, ':') ||
        !std::getline(fields, length)) {
      continue;
    }
    if (name != user) continue;
    char* end = nullptr;
    unsigned long b = std::strtoul(start.c_str(), &end, 10);
    if (*end != '\0') continue;
    unsigned long c = std::strtoul(length.c_str(), &end, 10);
    if (*end != '\0' || c < 2 || b == 0) continue;
    *base = static_cast<uint32_t>(b);
    *count = static_cast<uint32_t>(c);
    return true;
  }
  return false;
}

}  // namespace

Result<SubIdRange> ReadSubIds(const std::string& user, const std::string& subuid,
                              const std::string& subgid) {
  SubIdRange range;
  if (!ReadRange(subuid, user, &range.uid_base, &range.uid_count)) {
    return Status::NotFound("no subordinate uid range for '" + user + "' in " + subuid +
                            " (add one: usermod --add-subuids 1000000-1065535 " + user + ")");
  }
  if (!ReadRange(subgid, user, &range.gid_base, &range.gid_count)) {
    return Status::NotFound("no subordinate gid range for '" + user + "' in " + subgid +
                            " (add one: usermod --add-subgids 1000000-1065535 " + user + ")");
  }
  return range;
}

Result<IdLease> IdLease::Acquire(const SubIdRange& range, const std::string& lock_dir) {
  RETURN_IF_ERROR(MakeDirs(lock_dir, 0700));
  uint32_t slots = std::min(range.uid_count, range.gid_count) / 2;
  if (slots == 0) return Status::FailedPrecondition("subordinate id range is empty");
  uint32_t start = 0;
  if (getrandom(&start, sizeof start, 0) != sizeof start) start = 0;
  for (uint32_t i = 0; i < slots; ++i) {
    uint32_t slot = (start + i) % slots;
    std::string path = lock_dir + "/" + std::to_string(slot);
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd.valid()) return Status::FromErrno("open " + path);
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) {
      return IdLease(range.uid_base + 2 * slot, range.gid_base + 2 * slot, std::move(fd));
    }
  }
  return Status::ResourceExhausted("every subordinate id slot is in use");
}

}  // namespace pycell::sandbox
