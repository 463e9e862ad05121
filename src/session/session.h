// Session: one sandboxed, stateful Python — its processes (a Kernel), its host resources (folder,
// quota'd /mnt/data and /tmp, cgroup, subordinate ids) and its lifetime. Made by SessionManager;
// shared by pointer with whoever is using it.
//
// Thread-safety: every method may be called from any thread. Execute runs one cell at a time; a
// second caller gets FailedPrecondition ("busy") at once rather than waiting. End() may be called
// while a cell runs: it kills the processes and the cell returns as crashed.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/config.h"
#include "common/status.h"
#include "common/unique_fd.h"
#include "files/safe_dir.h"
#include "kernel/kernel.h"
#include "sandbox/cgroup.h"
#include "sandbox/subids.h"
#include "session/execution.h"

namespace pycell::session {

enum class EndReason {
  kNone,                // Still running.
  kClosed,              // Ended by its user.
  kIdle,                // No execution for idle_timeout.
  kLifetime,            // Reached active_lifetime.
  kMemory,              // The kernel killed it for exceeding its memory limit.
  kKilledAfterTimeout,  // A cell ignored its interrupt past the grace period.
  kCrashed,             // Its runner died otherwise (e.g. killed itself).
  kShutdown,            // The engine stopped.
};
const char* EndReasonName(EndReason reason);

// Everything a session holds on the host, released in order by Session::End.
struct SessionResources {
  std::string id;
  std::string dir;  // <runtime>/sessions/<id>: root/, data/, tmp/
  // An flock on `dir` held for the session's life: a folder nobody holds is a leftover of a
  // process that died without cleaning up (SessionManager sweeps those at start).
  UniqueFd dir_lock;
  std::optional<sandbox::IdLease> ids;
  std::unique_ptr<sandbox::Cgroup> cgroup;
  std::unique_ptr<kernel::Kernel> kernel;
  bool data_mounted = false;
  bool tmp_mounted = false;
};

// Kills what runs and releases what is held, in the safe order: processes, cgroup, mounts,
// folders, ids. Idempotent.
void ReleaseSessionResources(SessionResources* resources);

struct ExecuteRequest {
  std::string code;
  std::optional<std::chrono::seconds> timeout;  // Default: the session's limit.
};

class Session {
 public:
  Session(SessionResources resources, SessionLimits limits, std::chrono::milliseconds grace,
          Clock* clock);
  ~Session();  // End(kShutdown) if still running.

  const std::string& id() const { return resources_.id; }
  const SessionLimits& limits() const { return limits_; }
  // The default timeout of this session's cells (within limits().max_execution_timeout).
  void SetExecutionTimeout(std::chrono::seconds timeout);

  Result<ExecutionRecord> Execute(const ExecuteRequest& request,
                                  const kernel::ExecuteObserver& observer = {});
  void Interrupt();

  // Files in /mnt/data.
  Status PutFile(const std::string& name, int source_fd);
  Result<files::DirSnapshot> ListFiles() const;
  Status CopyFileOut(const std::string& relative_path, const std::string& dest_path) const;
  // Opens a regular file under /mnt/data for reading, never following a link the code planted.
  Result<UniqueFd> OpenFile(const std::string& relative_path) const;

  // Kills the processes and releases every host resource; the first reason sticks.
  void End(EndReason reason);
  EndReason end_reason() const;
  bool busy() const;

  // Restarts the clocks: a warm session handed to a user begins its life now.
  void MarkHandedOver();
  std::chrono::steady_clock::time_point created_at() const;
  std::chrono::steady_clock::time_point last_active_at() const;
  // When it will end on its own: the earlier of idle and lifetime expiry.
  std::chrono::steady_clock::time_point expires_at() const;
  // Host pids of the session's processes (its init, the runner, whatever the code started).
  std::vector<pid_t> ProcessIds() const;
  // Host folder of the session (<state>/sessions/<id>); empty once ended.
  std::string dir() const;
  // For the pool: the processes are gone (zygote killed, …) though nobody called End.
  bool ProcessGone() const;

 private:
  void ReleaseLocked();  // REQUIRES: state_mu_ held.

  SessionLimits limits_;
  std::chrono::milliseconds interrupt_grace_;
  Clock* clock_;

  std::mutex exec_mu_;  // Held for a whole cell; try_lock gives "busy".

  mutable std::mutex state_mu_;
  SessionResources resources_;  // GUARDED_BY(state_mu_) for release; kernel_ calls are thread-safe.
  EndReason end_reason_ = EndReason::kNone;         // GUARDED_BY(state_mu_)
  std::chrono::steady_clock::time_point created_;   // GUARDED_BY(state_mu_)
  std::chrono::steady_clock::time_point last_active_;  // GUARDED_BY(state_mu_)
  bool running_cell_ = false;                       // GUARDED_BY(state_mu_)
};

}  // namespace pycell::session
