// Seccomp: the last step before code runs. An allowlist of the system calls a Python data stack
// needs; everything else fails with EPERM. Calls that are allowed only with certain arguments:
// clone (never with namespace flags), socket (unix, inet, inet6, and netlink route), ioctl
// (terminal and socket queries, the command compared on its low 32 bits), personality (query
// only). clone3 fails with ENOSYS so that glibc falls back to clone, whose flags we can see. A
// system call of another architecture (int 0x80, x32) kills the process.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace pycell::sandbox::seccomp {

// The filter compiled to classic BPF. Compiling (libseccomp) allocates a lot; a zygote does it
// once before forking, so each session's processes only install it (no allocation, no copied
// pages).
struct Program {
  std::string bpf;  // struct sock_filter[], as bytes.
};
Result<Program> Compile();

// Child side, after no_new_privs. Installs `program` on the calling thread and its future
// children, for good. Async-signal-safe.
Status Install(const Program& program);

// The names of the system calls the filter allows without conditions (for doctor and tests).
const std::vector<std::string>& AllowedSyscalls();

}  // namespace pycell::sandbox::seccomp
