// Zygote: the server's handle on one pool's zygote process (see zygote_main.h for the other side).
// Start() launches `pycell __zygote` and waits until its Python has imported the pool's modules;
// Spawn() asks it to fork one session and returns the session init's host pid.
//
// Thread-safety: Spawn may be called from any thread; requests are serialized (the zygote forks
// one child at a time anyway).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "common/unique_fd.h"
#include "kernel/frame.h"
#include "sandbox/policy.h"

namespace pycell::kernel {

struct ZygoteOptions {
  std::string python = "/usr/bin/python3";  // sys.executable inside sessions.
  std::vector<std::string> preload;         // Modules imported once, shared by every session.
  std::string cache_dir;                    // Matplotlib's font cache and IPython's folder.
  std::chrono::milliseconds start_timeout{60000};
};

// The descriptors a session is born with, created by the caller (who keeps the other ends).
struct SessionFds {
  int stdout_write = -1;
  int stderr_write = -1;
  int control = -1;   // The session's end of its control socket.
  int go_read = -1;   // The session waits for one byte here before containing itself.
  int lifeline = -1;  // Read end of the server's lifeline pipe (see sandbox::ContainChild).
};

class Zygote {
 public:
  static Result<std::unique_ptr<Zygote>> Start(const ZygoteOptions& options);
  ~Zygote();  // Kills the zygote (sessions it forked live on until their server ends them).

  Result<pid_t> Spawn(const sandbox::Policy& policy, double cpus, const SessionFds& fds)
      EXCLUDES(mu_);
  pid_t pid() const { return pid_; }
  // False once the zygote process has exited (it is reaped here).
  bool Alive() EXCLUDES(mu_);

 private:
  Zygote(pid_t pid, UniqueFd control) : pid_(pid), control_(std::move(control)) {}
  pid_t pid_;
  Mutex mu_;
  UniqueFd control_ GUARDED_BY(mu_);  // For each request/reply pair.
  FrameReader reader_ GUARDED_BY(mu_);
  bool exited_ GUARDED_BY(mu_) = false;
};

}  // namespace pycell::kernel
