#include "sandbox/policy.h"

namespace pycell::sandbox {

std::vector<std::string> DefaultReadonlyBinds() {
  // /usr holds the whole runtime on a merged-/usr Debian. The /etc entries are the ones the
  // dynamic loader, Python's data stack and TLS need; nothing with secrets (no shadow, no ssh).
  return {"/usr",
          "/etc/alternatives",  // Debian's BLAS/LAPACK are chosen through these links.
          "/etc/ld.so.cache",
          "/etc/ld.so.conf",
          "/etc/ld.so.conf.d",
          "/etc/localtime",
          "/etc/matplotlibrc",
          "/etc/fonts",
          "/etc/ssl",
          "/etc/mime.types",
          "/etc/python3",
          "/etc/python3.11",
          "/etc/os-release",
          "/etc/debian_version"};
}

}  // namespace pycell::sandbox
