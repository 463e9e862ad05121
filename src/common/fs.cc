#include "common/fs.h"

#include <sys/stat.h>

#include <cerrno>

namespace pycell {

Status MakeDir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) return Status::FromErrno("mkdir " + path);
  return Status::Ok();
}

Status MakeDirs(const std::string& path, mode_t mode) {
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    RETURN_IF_ERROR(MakeDir(path.substr(0, slash), mode));
    if (slash == std::string::npos) return Status::Ok();
  }
}

}  // namespace pycell
