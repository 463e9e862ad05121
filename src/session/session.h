// Session: one sandboxed, stateful Python — its processes (a Kernel), its host resources (folder,
// quota'd /mnt/data and /tmp, cgroup, subordinate ids) and its lifetime. Made by SessionManager;
// shared by pointer with whoever is using it.
//
// Thread-safety: every method may be called from any thread. Execute runs one cell at a time; a
// second caller gets FailedPrecondition ("busy") at once rather than waiting. End() may be called
// while a cell runs: it kills the processes and the cell returns as crashed.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/config.h"
#include "common/mutex.h"
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
  kOriginEnded,         // A fork whose origin ended (its processes live inside the origin's).
  kProtocolViolation,   // Its control channel carried what the protocol forbids (cell_protocol.h).
};
const char* EndReasonName(EndReason reason);

// Everything a session holds on the host, released in order by Session::End.
struct SessionResources {
  std::string id;
  std::string dir;  // <runtime>/sessions/<id>: root/, data/, tmp/, devices/
  // An flock on `dir` held for the session's life: a folder nobody holds is a leftover of a
  // process that died without cleaning up (SessionManager sweeps those at start).
  UniqueFd dir_lock;
  std::optional<sandbox::IdLease> ids;
  // Host uid and gid of the code: the lease's, or for a fork (which has none) its origin's.
  uid_t user_uid = 0;
  gid_t user_gid = 0;
  std::unique_ptr<sandbox::Cgroup> cgroup;
  std::unique_ptr<kernel::Kernel> kernel;
  bool data_mounted = false;
  bool tmp_mounted = false;
  bool devices_mounted = false;
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

  const std::string& id() const { return id_; }
  const SessionLimits& limits() const { return limits_; }
  // The default timeout of this session's cells (within limits().max_execution_timeout). Before
  // the session is shared: limits() is read without a lock.
  void SetExecutionTimeout(std::chrono::seconds timeout);

  Result<ExecutionRecord> Execute(const ExecuteRequest& request,
                                  const kernel::ExecuteObserver& observer = {});
  void Interrupt();

  // Files in /mnt/data.
  Status PutFile(const std::string& name, int source_fd);
  // PutFile replacing a file of that name in one step (files::SafeDir::ReplaceFileFrom).
  Status ReplaceFile(const std::string& name, int source_fd);
  Result<files::DirSnapshot> ListFiles() const;
  // Removes a file (or a link, never what it points at) under /mnt/data; not a folder.
  Status RemoveFile(const std::string& relative_path);
  Status CopyFileOut(const std::string& relative_path, const std::string& dest_path,
                     uint64_t max_bytes = UINT64_MAX) const;
  // Opens a regular file under /mnt/data for reading, never following a link the code planted.
  Result<UniqueFd> OpenFile(const std::string& relative_path) const;

  // The first half of a fork (SessionManager::ForkSession does the rest): between cells — a
  // running cell gives FailedPrecondition ("busy") — runs `copy_files` (the caller copies
  // /mnt/data and /tmp) and has the runner fork, holding the cell lock throughout so that the
  // fork's files and memory are of one moment.
  Result<kernel::ForkedKernel> ForkProcesses(const std::function<Status()>& copy_files);
  // Host uid and gid the code runs as (a fork runs as the same); nullopt once ended.
  std::optional<std::pair<uid_t, gid_t>> UserIds() const;
  // Host pid of the session's init, or -1 once ended.
  pid_t InitPid() const;
  // A fork lives inside its origin's processes: it expires with it, and its cells count as
  // activity of the origin so that the origin does not go idle under it.
  void SetOrigin(const std::shared_ptr<Session>& origin);
  const std::string& origin_id() const { return origin_id_; }
  // The project the session is charged to (set once, before the session is shared).
  void SetProject(std::string project_id) { project_id_ = std::move(project_id); }
  const std::string& project_id() const { return project_id_; }
  bool OriginEnded() const;

  // Between cells the control channel must be silent (Kernel::CheckBetweenCells). Checks it when
  // no cell or fork runs (skips, Ok, when one does), without ever making a cell that starts
  // meanwhile busy; a violation ends the session with kProtocolViolation and is returned.
  Status CheckBetweenCells();
  // The rule the session broke, once it ended for a protocol violation; "" otherwise.
  std::string protocol_violation() const;

  // Kills the processes and releases every host resource; the first reason sticks.
  void End(EndReason reason);
  EndReason end_reason() const;
  bool busy() const;

  // Restarts the clocks: a warm session handed to a user begins its life now.
  void MarkHandedOver();
  // A session's cgroup starts with a high CPU weight (kStartingCpuWeight against its siblings'
  // 100), so that its start and its first cell stay quick while other sessions spin; the weight
  // falls to the default after its first cell, or kCpuBoost after it was handed over, whichever
  // comes first (the expiry pass calls EndCpuBoostIfDue), so a spinning first cell keeps it for
  // at most that long.
  static constexpr uint32_t kStartingCpuWeight = 2000;
  static constexpr std::chrono::seconds kCpuBoost{2};
  void EndCpuBoostIfDue(std::chrono::steady_clock::time_point now);
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
  void ReleaseLocked() REQUIRES(state_mu_);
  void EndCpuBoostLocked() REQUIRES(state_mu_);
  // Ends the session for the violation the kernel reported.
  void EndForViolationLocked(const std::string& rule) REQUIRES(state_mu_);
  void Touch() EXCLUDES(state_mu_);

  const std::string id_;    // resources_.id, which never changes: read without a lock.
  std::string origin_id_;   // Set once, before the session is shared.
  std::string project_id_;  // Set once, before the session is shared.
  std::weak_ptr<Session> origin_;

  // SetExecutionTimeout changes it (under exec_mu_) before the session is handed out; read
  // without a lock from then on.
  SessionLimits limits_;
  std::chrono::milliseconds interrupt_grace_;
  Clock* clock_;

  Mutex exec_mu_;  // Held for a whole cell; TryLock gives "busy".

  mutable Mutex state_mu_;
  SessionResources resources_ GUARDED_BY(state_mu_);  // For release; kernel_ calls are thread-safe.
  EndReason end_reason_ GUARDED_BY(state_mu_) = EndReason::kNone;
  std::chrono::steady_clock::time_point created_ GUARDED_BY(state_mu_);
  std::chrono::steady_clock::time_point last_active_ GUARDED_BY(state_mu_);
  bool running_cell_ GUARDED_BY(state_mu_) = false;  // A cell or a fork uses the kernel.
  std::string protocol_violation_ GUARDED_BY(state_mu_);
  bool cpu_boosted_ GUARDED_BY(state_mu_) = true;
  std::optional<std::chrono::steady_clock::time_point> boost_ends_ GUARDED_BY(state_mu_);
};

}  // namespace pycell::session
