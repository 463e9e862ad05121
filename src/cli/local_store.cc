#include "cli/local_store.h"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>

#include "common/clock.h"

namespace pycell::cli {

Result<std::unique_ptr<store::MetadataStore>> OpenDataDirStore(const std::string& data_dir) {
  std::string dir = data_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  std::string path = dir + "/pycell.db";
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      return Status::NotFound("no pycell database at " + path + " (is " + data_dir +
                              " the data dir `pycell serve` used?)");
    }
    return Status::FromErrno(path);
  }
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(path + ": not a regular file");
  auto opened = store::OpenSqliteStore(path);
  if (!opened.ok()) return opened.status().WithContext(path);
  return opened;
}

auth::Caller LocalCaller() {
  for (const char* name : {"SUDO_USER", "USER"}) {
    const char* value = std::getenv(name);
    if (value && *value) return auth::Caller::Local(value);
  }
  return auth::Caller::Local("root");
}

int64_t WallNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             Clock::Real()->WallNow().time_since_epoch())
      .count();
}

}  // namespace pycell::cli
