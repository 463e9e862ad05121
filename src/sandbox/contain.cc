#include "sandbox/contain.h"

#include <linux/capability.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

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

namespace {

pid_t worker_pid = -1;  // Init only: the worker's pid (2) for signal forwarding.

void ForwardSignal(int sig) {
  if (worker_pid > 0) ::kill(worker_pid, sig);
}

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

// The worker's half: from inside-root with every capability of the namespace to uid 1000 with
// none, and seccomp last.
Status ContainWorker(const Policy& policy) {
  RETURN_IF_ERROR(ResetSignals());
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return Status::FromErrno("PR_SET_PDEATHSIG");
  RETURN_IF_ERROR(rlimits::InitInChild(policy));
  RETURN_IF_ERROR(caps::DropBoundingAndAmbient());
  RETURN_IF_ERROR(user_ns::DropToUser());
  RETURN_IF_ERROR(caps::DropAll(/*dumpable=*/true));
  if (policy.seccomp) RETURN_IF_ERROR(seccomp::InstallFilter());
  return Status::Ok();
}

// The init's half: no descriptors, no capabilities, seccomp; then reap until the worker exits.
[[noreturn]] void RunInit(const Policy& policy) {
  (void)CloseFrom(0);
  struct sigaction forward {};
  forward.sa_handler = ForwardSignal;
  ::sigaction(SIGINT, &forward, nullptr);   // The server's interrupt.
  ::sigaction(SIGTERM, &forward, nullptr);
  (void)caps::DropBoundingAndAmbient();
  if (!caps::DropAllExcept(CAP_KILL, /*dumpable=*/false).ok()) ::_exit(125);
  if (policy.seccomp && !seccomp::InstallFilter().ok()) ::_exit(125);
  while (true) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0 && errno == EINTR) continue;
    if (pid < 0) ::_exit(125);  // No children left: the worker is gone.
    if (pid == worker_pid) {
      // Our exit ends the pid namespace: the kernel kills every process left in it.
      ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
  }
}

}  // namespace

pid_t CloneContained() {
  return static_cast<pid_t>(
      ::syscall(SYS_clone, kCloneFlags | SIGCHLD, nullptr, nullptr, nullptr, 0));
}

Status AdmitChild(pid_t child, const Policy& policy, Cgroup* cgroup) {
  RETURN_IF_ERROR(user_ns::InitFromParent(child, policy));
  if (cgroup != nullptr) RETURN_IF_ERROR(cgroup->AddProcess(child));
  return Status::Ok();
}

Status ContainChild(const Policy& policy, int keep_fds) {
  RETURN_IF_ERROR(CloseFrom(keep_fds));
  RETURN_IF_ERROR(user_ns::BecomeInsideRoot());
  RETURN_IF_ERROR(mount_ns::InitInChild(policy));
  RETURN_IF_ERROR(net_ns::InitInChild());
  RETURN_IF_ERROR(uts_ipc::InitInChild(policy.hostname));

  worker_pid = ::fork();
  if (worker_pid < 0) return Status::FromErrno("fork the session worker");
  if (worker_pid == 0) return ContainWorker(policy);
  RunInit(policy);
}

}  // namespace pycell::sandbox
