#include "sandbox/contain.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sandbox/caps.h"
#include "sandbox/mount_ns.h"
#include "sandbox/net_ns.h"
#include "sandbox/rlimits.h"
#include "sandbox/seccomp.h"
#include "sandbox/user_ns.h"
#include "sandbox/uts_ipc.h"

namespace pycell::sandbox {

const unsigned long kCloneFlags =
    CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;

const unsigned long kForkCloneFlags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_PARENT;

namespace {

pid_t worker_pid = -1;  // Init only: the worker's pid (2) for signal forwarding.

void ForwardSignal(int sig) {
  if (worker_pid > 0) ::kill(worker_pid, sig);
}

void NoteChild(int) {}  // SIGCHLD only has to interrupt ppoll.

Status CloseFrom(int first) {
  if (::syscall(SYS_close_range, first, ~0u, 0) != 0) return Status::FromErrno("close_range");
  return Status::Ok();
}

// Every signal back to its default action and unblocked: the zygote's choices (SIGCHLD ignored)
// must not leak into code that runs subprocesses.
Status ResetSignals() {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::sigaction(sig, &dfl, nullptr);  // Fails only for invalid numbers (32, 33).
  }
  sigset_t none;
  sigemptyset(&none);
  if (::sigprocmask(SIG_SETMASK, &none, nullptr) != 0) return Status::FromErrno("sigprocmask");
  return Status::Ok();
}

// Standard input becomes the session's own /dev/null: the zygote's, opened before the session's
// root existed, is the host's node, whose locks every session would share.
Status ReopenStdin() {
  int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null < 0) return Status::FromErrno("open /dev/null");
  int moved = ::dup2(null, 0);
  int err = errno;
  ::close(null);
  if (moved != 0) return Status::FromErrno("dup2 /dev/null to 0", err);
  return Status::Ok();
}

// The worker's half: from inside-root with every capability of the namespace to uid 1000 with
// none, and seccomp last.
Status ContainWorker(const Policy& policy, const seccomp::Program& program) {
  RETURN_IF_ERROR(ResetSignals());
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return Status::FromErrno("PR_SET_PDEATHSIG");
  RETURN_IF_ERROR(ReopenStdin());
  RETURN_IF_ERROR(rlimits::InitInChild(policy));
  RETURN_IF_ERROR(caps::DropBoundingAndAmbient());
  RETURN_IF_ERROR(user_ns::DropToUser());
  RETURN_IF_ERROR(caps::DropAll(/*dumpable=*/true));
  if (policy.seccomp) RETURN_IF_ERROR(seccomp::Install(program));
  return Status::Ok();
}

// Reaps whatever has exited; exits with the worker's status once the worker is among them.
void ReapChildren() {
  while (true) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid == 0) return;
    if (pid < 0 && errno == EINTR) continue;
    if (pid < 0) ::_exit(125);  // No children left: the worker is gone.
    if (pid == worker_pid) {
      // Our exit ends the pid namespace: the kernel kills every process left in it.
      ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
  }
}

// The init's half: no descriptors but the lifeline, no capabilities, seccomp (`program`, or
// none when the filter is in place already); then reap until the worker exits, or the lifeline
// hangs up (the server is gone: end the session with it).
[[noreturn]] void RunInit(const seccomp::Program* program, int lifeline_fd) {
  if (lifeline_fd >= 0 && lifeline_fd != 0) {
    ::dup2(lifeline_fd, 0);
    lifeline_fd = 0;
  }
  (void)CloseFrom(lifeline_fd >= 0 ? 1 : 0);
  struct sigaction child {};
  child.sa_handler = NoteChild;
  ::sigaction(SIGCHLD, &child, nullptr);
  struct sigaction forward {};
  forward.sa_handler = ForwardSignal;
  ::sigaction(SIGINT, &forward, nullptr);  // The server's interrupt.
  ::sigaction(SIGTERM, &forward, nullptr);
  // Whatever mask the zygote inherited, the init must take the signals it forwards.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  (void)caps::DropBoundingAndAmbient();
  if (!caps::DropAllExcept(CAP_KILL, /*dumpable=*/false).ok()) ::_exit(125);
  if (program != nullptr && !seccomp::Install(*program).ok()) ::_exit(125);
  // SIGCHLD stays blocked except inside ppoll, so a child that exits between the reaping and the
  // wait still interrupts the wait.
  sigset_t chld, during_wait;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &chld, &during_wait);
  sigdelset(&during_wait, SIGCHLD);
  while (true) {
    ReapChildren();
    pollfd lifeline{lifeline_fd, POLLIN, 0};
    int n = ::ppoll(&lifeline, lifeline_fd >= 0 ? 1 : 0, nullptr, &during_wait);
    if (n > 0 && lifeline.revents != 0) ::_exit(137);  // The server is gone.
  }
}

}  // namespace

pid_t CloneContained() {
  return static_cast<pid_t>(
      ::syscall(SYS_clone, kCloneFlags | SIGCHLD, nullptr, nullptr, nullptr, 0));
}

Status MapIds(pid_t child, const Policy& policy) { return user_ns::InitFromParent(child, policy); }

Status ContainChild(const Policy& policy, int keep_fds, int admission_fd, int lifeline_fd,
                    const seccomp::Program& program) {
  if (admission_fd < keep_fds) return Status::Internal("admission_fd must not be kept");
  if (::dup2(admission_fd, keep_fds) < 0) return Status::FromErrno("dup2 admission fd");
  admission_fd = keep_fds;
  RETURN_IF_ERROR(CloseFrom(keep_fds + 1));
  // The root below is built with mkdir and open, whose modes the umask trims: whatever the
  // server was started with (systemd's UMask=0077), the session's folders must be 0755 and its
  // files 0644, or uid 1000 cannot enter them. The session's code inherits this umask too.
  ::umask(022);
  RETURN_IF_ERROR(user_ns::BecomeInsideRoot());
  RETURN_IF_ERROR(mount_ns::InitInChild(policy));
  RETURN_IF_ERROR(net_ns::InitInChild());
  RETURN_IF_ERROR(uts_ipc::InitInChild(policy.hostname));

  // Whatever the worker runs must be in the session's cgroup: its processes inherit it.
  char admitted = 0;
  while (::read(admission_fd, &admitted, 1) < 0 && errno == EINTR) {
  }
  if (admitted != 'a') return Status::Unavailable("the host did not admit the session");
  ::close(admission_fd);

  worker_pid = ::fork();
  if (worker_pid < 0) return Status::FromErrno("fork the session worker");
  if (worker_pid == 0) {
    if (lifeline_fd >= 0) ::close(lifeline_fd);
    return ContainWorker(policy, program);
  }
  RunInit(policy.seccomp ? &program : nullptr, lifeline_fd);
}

pid_t CloneForFork() {
  return static_cast<pid_t>(
      ::syscall(SYS_clone, kForkCloneFlags | SIGCHLD, nullptr, nullptr, nullptr, 0));
}

namespace {
Status WriteSelf(const char* name, const char* content) {
  int fd = ::open(name, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(std::string("open ") + name);
  ssize_t n = ::write(fd, content, ::strlen(content));
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(::strlen(content))) {
    return Status::FromErrno(std::string("write ") + name, err);
  }
  return Status::Ok();
}
}  // namespace

Status ContainForkChild(int admission_fd, const std::string& cwd) {
  // The one mapping an unprivileged owner may write for its own namespace: its own ids.
  RETURN_IF_ERROR(WriteSelf("/proc/self/setgroups", "deny"));
  RETURN_IF_ERROR(WriteSelf("/proc/self/uid_map", "1000 1000 1\n"));
  RETURN_IF_ERROR(WriteSelf("/proc/self/gid_map", "1000 1000 1\n"));
  char admitted = 0;
  while (::read(admission_fd, &admitted, 1) < 0 && errno == EINTR) {
  }
  if (admitted != 'g') return Status::Unavailable("the host did not admit the fork");
  ::close(admission_fd);
  worker_pid = ::fork();
  if (worker_pid < 0) return Status::FromErrno("fork the session worker");
  if (worker_pid == 0) {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return Status::FromErrno("PR_SET_PDEATHSIG");
    RETURN_IF_ERROR(ReopenStdin());  // The origin's would be shared with it.
    RETURN_IF_ERROR(caps::DropBoundingAndAmbient());
    RETURN_IF_ERROR(caps::DropAll(/*dumpable=*/true));
    if (::chdir(cwd.c_str()) != 0 && ::chdir("/mnt/data") != 0) {
      return Status::FromErrno("chdir " + cwd);
    }
    return Status::Ok();
  }
  // Nothing of the code's may keep the init's descriptors busy (its pipes to the server).
  (void)CloseFrom(0);
  RunInit(/*program=*/nullptr, /*lifeline_fd=*/-1);
}

}  // namespace pycell::sandbox
