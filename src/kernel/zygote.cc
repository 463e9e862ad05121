#include "kernel/zygote.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/json_reader.h"
#include "common/logging.h"
#include "kernel/policy_json.h"

namespace pycell::kernel {

using nlohmann::json;

namespace {

// The zygote runs from a sealed in-memory copy of this binary, not from its file: a session's
// /proc/self/exe then names nothing on the host, and nothing reached through it can be written
// (the CVE-2019-5736 pattern).
Result<UniqueFd> SealedCopyOfSelf() {
  UniqueFd self(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
  if (!self.valid()) return Status::FromErrno("open /proc/self/exe");
  UniqueFd copy(::memfd_create("pycell-zygote", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!copy.valid()) return Status::FromErrno("memfd_create");
  struct stat st {};
  if (::fstat(self.get(), &st) != 0) return Status::FromErrno("fstat /proc/self/exe");
  for (off_t done = 0; done < st.st_size;) {
    ssize_t n = ::sendfile(copy.get(), self.get(), nullptr, static_cast<size_t>(st.st_size - done));
    if (n <= 0) return Status::FromErrno("copy the binary for the zygote");
    done += n;
  }
  if (::fcntl(copy.get(), F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) !=
      0) {
    return Status::FromErrno("seal the zygote's binary");
  }
  return copy;
}

}  // namespace

Result<std::unique_ptr<Zygote>> Zygote::Start(const ZygoteOptions& options) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return Status::FromErrno("socketpair for the zygote");
  }
  UniqueFd ours(sv[0]), theirs(sv[1]);
  // The configuration travels as the first frame, not in argv or the environment: every session
  // inherits the zygote's initial environment block and command line (/proc/self/environ,
  // /proc/self/cmdline), so those hold nothing but neutral values.
  json config = {
      {"python", options.python}, {"preload", options.preload}, {"cache_dir", options.cache_dir}};
  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  std::vector<std::string> env = {
      "PATH=/usr/local/bin:/usr/bin:/bin",
      "LANG=C.UTF-8",
      "HOME=/tmp",
      // One thread per pool before any import: forking is only safe from a single thread.
      "OPENBLAS_NUM_THREADS=1",
      "OMP_NUM_THREADS=1",
      "MKL_NUM_THREADS=1",
      "NUMEXPR_NUM_THREADS=1",
      "GOTO_NUM_THREADS=1",
  };
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  char arg0[] = "pycell-zygote";
  char arg1[] = "__zygote";
  char* argv[] = {arg0, arg1, nullptr};

  ASSIGN_OR_RETURN(UniqueFd image, SealedCopyOfSelf());
  pid_t pid = ::fork();
  if (pid < 0) return Status::FromErrno("fork the zygote");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    // A server blocks SIGTERM and SIGINT to take them with sigwait; the mask survives exec and
    // fork, and a session's init must be able to receive the SIGINT that interrupts a cell.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (::dup2(theirs.get(), 3) < 0) ::_exit(126);
    if (::dup2(image.get(), 4) < 0) ::_exit(126);
    ::syscall(SYS_close_range, 5, ~0u, 0);
    ::fcntl(4, F_SETFD, FD_CLOEXEC);
    ::syscall(SYS_execveat, 4, "", argv, envp.data(), AT_EMPTY_PATH);
    ::_exit(127);
  }
  theirs.Reset();
  std::unique_ptr<Zygote> zygote(new Zygote(pid, std::move(ours)));
  MutexLock lock(zygote->mu_);  // Not shared yet; for the analysis.
  RETURN_IF_ERROR(WriteFrame(zygote->control_.get(), DumpJson(config)));
  auto ready = ReadFrame(zygote->control_.get(), zygote->reader_, options.start_timeout);
  if (!ready.ok()) {
    return ready.status().WithContext("the zygote did not start (preloading " +
                                      DumpJson(json(options.preload)) + ")");
  }
  json message = json::parse(ready->payload, nullptr, false);
  if (message.is_discarded() || message.value("type", "") != "ready") {
    return Status::Internal(
        "zygote failed to start: " +
        (message.is_object() ? message.value("message", ready->payload) : ready->payload));
  }
  LOG_DEBUG("zygote {} ready", pid);
  return zygote;
}

Zygote::~Zygote() {
  control_.Reset();
  if (!exited_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

bool Zygote::Alive() {
  MutexLock lock(mu_);
  if (exited_) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) exited_ = true;  // Reaped: it is gone.
  return !exited_;
}

Result<pid_t> Zygote::Spawn(const sandbox::Policy& policy, double cpus, const SessionFds& fds) {
  MutexLock lock(mu_);
  json request = {{"type", "spawn"}, {"policy", json::parse(EncodePolicy(policy))}, {"cpus", cpus}};
  std::vector<int> passed = {fds.stdout_write, fds.stderr_write, fds.control, fds.go_read};
  if (fds.lifeline >= 0) passed.push_back(fds.lifeline);
  RETURN_IF_ERROR(WriteFrame(control_.get(), DumpJson(request), passed));
  auto reply = ReadFrame(control_.get(), reader_, std::chrono::seconds(10));
  if (!reply.ok()) return reply.status().WithContext("zygote did not answer");
  json message = json::parse(reply->payload, nullptr, false);
  if (message.is_object() && message.value("type", "") == "spawned") {
    return message.value("pid", static_cast<pid_t>(-1));
  }
  return Status::Internal("zygote: " + (message.is_object()
                                            ? message.value("message", std::string("?"))
                                            : reply->payload));
}

}  // namespace pycell::kernel
