#include "sandbox/seccomp.h"

#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <linux/sockios.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <memory>

#include "common/unique_fd.h"
#include "sandbox/contain.h"

namespace pycell::sandbox::seccomp {
namespace {

// Grouped by purpose. Anything absent is refused: in particular ptrace, process_vm_*, mount and
// the new mount API, pivot_root, chroot, unshare, setns, bpf, io_uring_*, keyctl, add_key,
// request_key, perf_event_open, userfaultfd, module loading, kexec, reboot, swap, acct, quotactl,
// *_by_handle_at, modify_ldt, kcmp, iopl/ioperm, clock and time setting, syslog, fanotify,
// pidfd_getfd, move_pages, migrate_pages, process_madvise.
const char* const kAllowed[] = {
    // Files and descriptors.
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "preadv",
    "pwritev",
    "preadv2",
    "pwritev2",
    "open",
    "openat",
    "openat2",
    "creat",
    "close",
    "close_range",
    "lseek",
    "dup",
    "dup2",
    "dup3",
    "fcntl",
    "flock",
    "fsync",
    "fdatasync",
    "syncfs",
    "sync",
    "sync_file_range",
    "truncate",
    "ftruncate",
    "fallocate",
    "fadvise64",
    "readahead",
    "sendfile",
    "splice",
    "tee",
    "vmsplice",
    "copy_file_range",
    "stat",
    "fstat",
    "lstat",
    "newfstatat",
    "statx",
    "statfs",
    "fstatfs",
    "access",
    "faccessat",
    "faccessat2",
    "getdents",
    "getdents64",
    "getcwd",
    "chdir",
    "fchdir",
    "rename",
    "renameat",
    "renameat2",
    "mkdir",
    "mkdirat",
    "rmdir",
    "link",
    "linkat",
    "unlink",
    "unlinkat",
    "symlink",
    "symlinkat",
    "readlink",
    "readlinkat",
    "chmod",
    "fchmod",
    "fchmodat",
    "chown",
    "fchown",
    "lchown",
    "fchownat",
    "umask",
    "utime",
    "utimes",
    "utimensat",
    "futimesat",
    "mknod",
    "mknodat",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "getxattr",
    "lgetxattr",
    "fgetxattr",
    "listxattr",
    "llistxattr",
    "flistxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "pipe",
    "pipe2",
    "inotify_init",
    "inotify_init1",
    "inotify_add_watch",
    "inotify_rm_watch",
    "eventfd",
    "eventfd2",
    "signalfd",
    "signalfd4",
    "timerfd_create",
    "timerfd_settime",
    "timerfd_gettime",
    // Waiting and polling.
    "poll",
    "ppoll",
    "select",
    "pselect6",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "futex",
    "futex_waitv",
    "set_robust_list",
    "get_robust_list",
    "nanosleep",
    "clock_nanosleep",
    "pause",
    "sched_yield",
    "restart_syscall",
    // Memory.
    "brk",
    "mmap",
    "munmap",
    "mremap",
    "mprotect",
    "msync",
    "mincore",
    "madvise",
    "mlock",
    "mlock2",
    "munlock",
    "mlockall",
    "munlockall",
    "membarrier",
    "get_mempolicy",
    "set_mempolicy",
    "mbind",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    // Processes and signals.
    "fork",
    "vfork",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "wait4",
    "waitid",
    "kill",
    "tgkill",
    "tkill",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "rt_sigpending",
    "rt_sigtimedwait",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "rt_sigsuspend",
    "sigaltstack",
    "pidfd_open",
    "pidfd_send_signal",
    "set_tid_address",
    "arch_prctl",
    "prctl",
    "rseq",
    "getpid",
    "getppid",
    "gettid",
    "getpgid",
    "setpgid",
    "getpgrp",
    "getsid",
    "setsid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getresuid",
    "getresgid",
    "getgroups",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setfsuid",
    "setfsgid",
    "setgroups",
    "capget",
    "capset",
    "getpriority",
    "setpriority",
    "sched_getaffinity",
    "sched_setaffinity",
    "sched_getparam",
    "sched_setparam",
    "sched_getscheduler",
    "sched_setscheduler",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_rr_get_interval",
    "sched_getattr",
    "sched_setattr",
    "getrlimit",
    "setrlimit",
    "prlimit64",
    "getrusage",
    "times",
    "landlock_create_ruleset",
    "landlock_add_rule",
    "landlock_restrict_self",
    "seccomp",
    // Time and system information.
    "time",
    "gettimeofday",
    "clock_gettime",
    "clock_getres",
    "getitimer",
    "setitimer",
    "alarm",
    "timer_create",
    "timer_settime",
    "timer_gettime",
    "timer_getoverrun",
    "timer_delete",
    "uname",
    "sysinfo",
    "getcpu",
    "getrandom",
    // Sockets (the network namespace is empty; socket() itself is filtered below).
    "connect",
    "accept",
    "accept4",
    "bind",
    "listen",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "sendmmsg",
    "recvmmsg",
    "shutdown",
    "getsockname",
    "getpeername",
    "setsockopt",
    "getsockopt",
    // System V and POSIX IPC (private to the session's IPC namespace).
    "shmget",
    "shmat",
    "shmdt",
    "shmctl",
    "semget",
    "semop",
    "semtimedop",
    "semctl",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedreceive",
    "mq_notify",
    "mq_getsetattr",
};

// ioctl commands a Python program uses on terminals, pipes and sockets. TIOCSTI and TIOCLINUX
// (typing into a terminal) are not among them.
const unsigned long kAllowedIoctls[] = {
    TCGETS,       TCSETS,       TCSETSW,     TCSETSF,     TIOCGWINSZ, TIOCSWINSZ,    TIOCGPGRP,
    FIONREAD,     FIONBIO,      FIOCLEX,     FIONCLEX,    FIOASYNC,   TIOCOUTQ,      SIOCGIFCONF,
    SIOCGIFFLAGS, SIOCGIFINDEX, SIOCGIFNAME, SIOCGIFADDR, SIOCGIFMTU, SIOCGIFHWADDR,
};

constexpr uint64_t kNamespaceFlags = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
                                     CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;

struct ContextDeleter {
  void operator()(scmp_filter_ctx ctx) const { seccomp_release(ctx); }
};

Status Check(int rc, const std::string& what) {
  if (rc < 0) return Status::FromErrno("seccomp: " + what, -rc);
  return Status::Ok();
}

}  // namespace

const std::vector<std::string>& AllowedSyscalls() {
  static const std::vector<std::string> names(std::begin(kAllowed), std::end(kAllowed));
  return names;
}

Result<Program> Compile() {
  std::unique_ptr<void, ContextDeleter> ctx(seccomp_init(SCMP_ACT_ERRNO(EPERM)));
  if (!ctx) return Status::Internal("seccomp_init failed");
  scmp_filter_ctx c = ctx.get();
  // Only the native architecture: a 32-bit (int 0x80) or x32 call kills the process.
  RETURN_IF_ERROR(Check(seccomp_attr_set(c, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS),
                        "bad-arch action"));
  for (const char* name : kAllowed) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;  // Not on this architecture.
    RETURN_IF_ERROR(Check(seccomp_rule_add(c, SCMP_ACT_ALLOW, nr, 0), name));
  }
  RETURN_IF_ERROR(
      Check(seccomp_rule_add(c, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0), "clone3"));
  // An anonymous file is the one writable place that is not a noexec mount, so a program written
  // into one could be run (execve of /proc/self/fd/N). ENOSYS, as for a kernel without it:
  // libraries that use memfd_create fall back to a temporary file.
  RETURN_IF_ERROR(Check(seccomp_rule_add(c, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(memfd_create), 0),
                        "memfd_create"));
  RETURN_IF_ERROR(Check(seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                                         SCMP_A0(SCMP_CMP_MASKED_EQ, kNamespaceFlags, 0)),
                        "clone"));
  // A session fork (contain.h: kForkCloneFlags): exactly these flags, nothing added or removed.
  RETURN_IF_ERROR(Check(seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                                         SCMP_A0(SCMP_CMP_EQ, kForkCloneFlags | SIGCHLD)),
                        "clone (session fork)"));
  for (int domain : {AF_UNIX, AF_INET, AF_INET6}) {
    RETURN_IF_ERROR(Check(seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                                           SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(domain))),
                          "socket"));
  }
  RETURN_IF_ERROR(
      Check(seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2,
                             SCMP_A0(SCMP_CMP_EQ, AF_NETLINK), SCMP_A2(SCMP_CMP_EQ, NETLINK_ROUTE)),
            "socket(netlink)"));
  RETURN_IF_ERROR(Check(
      seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX)),
      "socketpair"));
  for (unsigned long request : kAllowedIoctls) {
    RETURN_IF_ERROR(Check(seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                           SCMP_A1(SCMP_CMP_MASKED_EQ, 0xFFFFFFFFul, request)),
                          "ioctl"));
  }
  for (uint64_t persona : {0ul, 0xFFFFFFFFul}) {
    RETURN_IF_ERROR(Check(seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(personality), 1,
                                           SCMP_A0(SCMP_CMP_MASKED_EQ, 0xFFFFFFFFul, persona)),
                          "personality"));
  }
  // libseccomp 2.5 exports to a descriptor only.
  UniqueFd memory(::memfd_create("pycell-seccomp", MFD_CLOEXEC));
  if (!memory.valid()) return Status::FromErrno("memfd_create for the seccomp program");
  RETURN_IF_ERROR(Check(seccomp_export_bpf(c, memory.get()), "export"));
  off_t size = ::lseek(memory.get(), 0, SEEK_END);
  if (size <= 0 || size % sizeof(struct sock_filter) != 0) {
    return Status::Internal("seccomp: exported program has an odd size");
  }
  Program program;
  program.bpf.resize(static_cast<size_t>(size));
  if (::pread(memory.get(), program.bpf.data(), program.bpf.size(), 0) != size) {
    return Status::FromErrno("read the seccomp program");
  }
  return program;
}

Status Install(const Program& program) {
  struct sock_fprog prog {};
  prog.len = static_cast<unsigned short>(program.bpf.size() / sizeof(struct sock_filter));
  prog.filter = reinterpret_cast<struct sock_filter*>(const_cast<char*>(program.bpf.data()));
  if (prog.len == 0) return Status::Internal("seccomp: empty program");
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
    return Status::FromErrno("seccomp(SECCOMP_SET_MODE_FILTER)");
  }
  return Status::Ok();
}

}  // namespace pycell::sandbox::seccomp
