// Small file-system helpers for folders the server itself owns (never for folders sandboxed code
// can write: those go through files::SafeDir).
#pragma once

#include <sys/types.h>

#include <string>

#include "common/status.h"

namespace pycell {

// Creates `path` with `mode` (less the umask) unless it exists already.
Status MakeDir(const std::string& path, mode_t mode);
// Creates every missing folder of the absolute `path`, each with `mode`.
Status MakeDirs(const std::string& path, mode_t mode);
// The whole of a small file the host controls (a /proc entry, a cgroup file): at most `max_bytes`.
Result<std::string> ReadSmallFile(const std::string& path, size_t max_bytes = 1 << 20);

}  // namespace pycell
