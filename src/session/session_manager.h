// SessionManager: makes, finds and ends sessions of one pool. It owns the pool's zygote, keeps a
// few contained sessions ready (refilled by a background thread) so that creating a session is a
// hand-over, caps how many sessions live at once, and ends sessions that have been idle too long
// or lived too long.
//
// Thread-safety: every public method may be called from any thread. Sessions are shared_ptrs: a
// caller still holding one after it ended gets FailedPrecondition from it, never a crash.
#pragma once

#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "common/clock.h"
#include "common/config.h"
#include "common/mutex.h"
#include "kernel/zygote.h"
#include "sandbox/cgroup.h"
#include "sandbox/subids.h"
#include "session/session.h"

namespace pycell::session {

struct SessionOptions {
  // Limits below the pool's; a session with limits of its own is started fresh (not taken from
  // the warm pool, whose sessions were contained with the pool's limits).
  std::optional<uint64_t> memory_bytes;
  std::optional<std::chrono::seconds> execution_timeout;
  // Whose session it is: no project may hold more than its share of the pool
  // (EngineConfig::SessionShare). "" counts as a project of its own.
  std::string project_id;
};

// Where the time of one cold launch went (for benchmarks and logs), in milliseconds.
struct LaunchTimings {
  double prepare_ms = 0;  // Folder, ids, tmpfs quotas, cgroup, pipes.
  double spawn_ms = 0;    // The zygote's clone, request to reply.
  double admit_ms = 0;    // Id maps, "go", cgroup membership, "admitted".
  double ready_ms = 0;  // Until the runner said "ready" (the child's checklist, Python after fork).
  double total_ms = 0;
};

class SessionManager {
 public:
  // Starts the zygote (imports the pool's modules: about a second) and the refill thread.
  // `clock` must outlive the manager. REQUIRES: the process's mounts are private
  // (sandbox::mount_ns::PrivatizeHostMounts) and we are root, unless allow_weaker_sandbox.
  static Result<std::unique_ptr<SessionManager>> Create(const EngineConfig& config,
                                                        Clock* clock = Clock::Real());
  ~SessionManager();  // Ends every session; stops the zygote.

  Result<std::shared_ptr<Session>> CreateSession(const SessionOptions& options = {});
  // A new session with a copy of `origin_id`'s live state — its variables (the runner's process
  // forked copy-on-write into a new user, mount and pid namespace) and its /mnt/data and /tmp
  // (copied) — in a cgroup of its own with the origin's limits. Between cells only. The fork
  // runs inside the origin's processes: ending the origin ends it (kOriginEnded), and its
  // activity keeps the origin from going idle.
  Result<std::shared_ptr<Session>> ForkSession(const std::string& origin_id);
  Result<std::shared_ptr<Session>> Get(const std::string& id) const;
  Status EndSession(const std::string& id, EndReason reason = EndReason::kClosed);

  // Ends sessions past their idle timeout or lifetime, and sessions whose control channel spoke
  // between cells (a protocol violation). A thread of its own calls it every second, whatever
  // the pool's refills are doing; tests call it after moving a FakeClock.
  void ExpireSessions() EXCLUDES(expire_mu_, mu_);
  // Blocks until the pool holds its target of ready sessions (or `timeout` passes).
  bool WaitForWarmPool(std::chrono::milliseconds timeout);
  // Sets how many ready sessions the pool keeps; lowering it drops the ready sessions above
  // it (0 stops refilling: benchmarks of the cold path).
  void SetPoolTarget(uint32_t ready_sessions);
  uint32_t PoolTarget() const;
  // The limits of sessions created from now on (a configuration reload). Ready sessions were
  // contained with the old limits: they are dropped and the pool refills with the new ones.
  // Running sessions keep the limits they started with. REQUIRES: limits.Validate() is OK.
  void SetLimits(const SessionLimits& limits);
  SessionLimits Limits() const;

  // Called after every successful cold launch (the pool's refills included), on the launching
  // thread. Set it before launches start, or with the pool at its target.
  void SetLaunchObserver(std::function<void(const LaunchTimings&)> observer);
  // Called once for each handed-out session the manager lets go of — ended by EndSession, by
  // expiry, by its own cell (memory, crash; noticed at the next expiry pass), or at shutdown —
  // after Session::End, on the thread that ended it, without the manager's lock held. Set it
  // before sessions are created.
  void SetEndObserver(std::function<void(const Session&)> observer);

  // The handed-out sessions that are still registered.
  std::vector<std::shared_ptr<Session>> Sessions() const;
  size_t ReadyCount() const;
  size_t ActiveCount() const;
  // The configuration the pool was created with (its limits and ready target: Limits(),
  // PoolTarget()).
  const EngineConfig& config() const { return config_; }

 private:
  SessionManager(EngineConfig config, Clock* clock) : config_(std::move(config)), clock_(clock) {}
  // Builds and contains one session (the cold path). Does not register it.
  Result<std::shared_ptr<Session>> Launch(const SessionLimits& limits) EXCLUDES(mu_);
  // The host side of a new session: its folder (locked), quota'd data and tmp, its cgroup.
  Status PrepareHost(SessionResources* r, const SessionLimits& limits, uid_t uid, gid_t gid);
  void RefillLoop() EXCLUDES(mu_);
  void ExpiryLoop() EXCLUDES(mu_);
  // A request for a session waiting for a slot in a full pool (engine.admission_wait).
  struct Waiter {
    std::string project_id;
    uint64_t seq = 0;  // Arrival order.
  };
  // Refuses a new session of `project_id` when the pool or the project's share of it is full,
  // counting launches in flight and, for the share, the project's requests waiting ahead of
  // `self`.
  Status AdmitLocked(const std::string& project_id, const Waiter* self = nullptr) const
      REQUIRES(mu_);
  // Admits a new session of `project_id` and counts it in admitting_ (the caller moves it to
  // sessions_ or takes it back with UnadmitLocked). When the pool is full the request waits up
  // to engine.admission_wait, in line with the others: a freed slot goes to the waiting project
  // holding the fewest sessions, the earliest among equals. A project past its share is refused
  // at once.
  Status AdmitFairly(const std::string& project_id) REQUIRES(mu_);
  // Whether `self` is the waiter a free slot goes to.
  bool FirstInLineLocked(const Waiter& self) const REQUIRES(mu_);
  // Takes back one admission of `project_id` (its creation failed or it was registered).
  void UnadmitLocked(const std::string& project_id) REQUIRES(mu_);
  void ExpireSessionsLocked() REQUIRES(expire_mu_) EXCLUDES(mu_);
  // One pass of ExpireSessions; true when it ended something.
  bool ExpireOnce() REQUIRES(expire_mu_) EXCLUDES(mu_);
  // Removes session folders (and their cgroups) that no live process holds: leftovers of a
  // pycell that was killed. Returns how many.
  size_t SweepLeftovers();

  const EngineConfig config_;
  Clock* const clock_;
  // Returns the zygote, starting a new one if the last one died (killed, crashed).
  Result<std::shared_ptr<kernel::Zygote>> LiveZygote() EXCLUDES(zygote_mu_);

  kernel::ZygoteOptions zygote_options_;
  // The lifeline: every session's init holds a read end, only this process the write end, so
  // that sessions end when the process that manages them dies, however it dies.
  UniqueFd lifeline_read_;
  UniqueFd lifeline_write_;
  Mutex zygote_mu_;
  std::shared_ptr<kernel::Zygote> zygote_ GUARDED_BY(zygote_mu_);
  sandbox::CgroupLayout cgroups_;
  std::optional<sandbox::SubIdRange> ids_;
  bool use_cgroups_ = false;
  bool private_runtime_ = true;  // sandbox::Policy::private_runtime for every session.

  // Held for a whole expiry pass: sessions a pass took from the registry are ended and reported
  // before EndSession, which waits for it when it finds one missing, says "not found". Taken
  // before mu_, never while mu_ is held.
  Mutex expire_mu_;
  mutable Mutex mu_;
  CondVar cv_;
  std::deque<std::shared_ptr<Session>> ready_ GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<Session>> sessions_ GUARDED_BY(mu_);  // Handed out.
  uint32_t pool_target_ GUARDED_BY(mu_) = 0;
  SessionLimits limits_ GUARDED_BY(mu_);
  uint64_t limits_generation_ GUARDED_BY(mu_) = 0;  // +1 at each SetLimits
  size_t launching_ GUARDED_BY(mu_) = 0;
  // Sessions being created or forked for users, by project, not yet in sessions_.
  std::map<std::string, size_t> admitting_ GUARDED_BY(mu_);
  std::list<Waiter> waiting_ GUARDED_BY(mu_);
  uint64_t waiter_seq_ GUARDED_BY(mu_) = 0;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::function<void(const LaunchTimings&)> launch_observer_ GUARDED_BY(mu_);
  std::function<void(const Session&)> end_observer_;  // Set before use; then read-only.
  std::thread refill_thread_;
  std::thread expiry_thread_;
};

}  // namespace pycell::session
