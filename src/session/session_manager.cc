#include "session/session_manager.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "common/fs.h"
#include "common/ids.h"
#include "common/logging.h"
#include "files/safe_dir.h"
#include "metrics/metrics.h"
#include "sandbox/contain.h"
#include "sandbox/host_probe.h"
#include "sandbox/mount_ns.h"

namespace pycell::session {
namespace {

// A folder with exactly `mode`, whatever the umask or an earlier run left.
Status MakeDirWithMode(const std::string& path, mode_t mode) {
  RETURN_IF_ERROR(MakeDir(path, mode));
  if (::chmod(path.c_str(), mode) != 0) return Status::FromErrno("chmod " + path);
  return Status::Ok();
}

// Sessions' inits run as unprivileged uids and bind their folders by path: every folder above
// must let others through.
Status CheckReachableByAll(const std::string& path) {
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    std::string prefix = slash == std::string::npos ? path : path.substr(0, slash);
    struct stat st {};
    if (::stat(prefix.c_str(), &st) != 0) return Status::FromErrno("stat " + prefix);
    if (!(st.st_mode & S_IXOTH)) {
      return Status::FailedPrecondition(
          prefix + " is not reachable by other users (mode " + std::to_string(st.st_mode & 0777) +
          " in octal digits); sessions run as unprivileged uids and must pass through it: choose "
          "another runtime dir or chmod o+x it");
    }
    if (slash == std::string::npos) return Status::Ok();
  }
}

struct Pipe {
  UniqueFd read, write;
};

// Releases whatever a launch or a fork made if it returns early (unless `r` is reset).
struct ReleaseOnReturn {
  SessionResources* r;
  ~ReleaseOnReturn() {
    if (r) ReleaseSessionResources(r);
  }
};
Result<Pipe> MakePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Status::FromErrno("pipe");
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

}  // namespace

Result<std::unique_ptr<SessionManager>> SessionManager::Create(const EngineConfig& config,
                                                               Clock* clock) {
  RETURN_IF_ERROR(config.Validate());
  // The engine writes to pipes whose readers are sessions that can die at any moment (a fork's
  // "go" byte while its origin is being ended): a write error, never a signal that ends the
  // process that hosts every session. (Sockets are written with MSG_NOSIGNAL already.)
  ::signal(SIGPIPE, SIG_IGN);
  std::unique_ptr<SessionManager> manager(new SessionManager(config, clock));
  bool root = ::geteuid() == 0;
  if (!root) {
    return Status::FailedPrecondition(
        "pycell's sandbox needs root (cgroup limits, disk quotas, a uid per session); run as "
        "root, and see `pycell doctor` for what this host offers");
  }
  ASSIGN_OR_RETURN(manager->cgroups_, sandbox::CgroupLayout::Detect());
  manager->use_cgroups_ = manager->cgroups_.Complete();
  if (!manager->use_cgroups_ && !config.allow_weaker_sandbox) {
    return Status::FailedPrecondition(
        "this host lacks the memory, pids or cpu cgroup controller, so sessions would run "
        "without limits; see `pycell doctor`, or opt in with --allow-weaker-sandbox");
  }
  if (manager->use_cgroups_) {
    // All sessions together weigh engine.sessions_cpu_weight against the groups beside theirs,
    // where the server and its zygote run: spinning sessions leave the control plane its share.
    Status weighed = sandbox::Cgroup::SetParentCpuWeight(manager->cgroups_, config.cgroup_parent,
                                                         config.sessions_cpu_weight);
    if (!weighed.ok()) LOG_WARN("{}", weighed.ToString());
  }
  sandbox::Protection runtime = sandbox::ProbePrivateRuntime();
  manager->private_runtime_ = runtime.available;
  if (!runtime.available) {
    if (!config.allow_weaker_sandbox) {
      return Status::FailedPrecondition(runtime.detail +
                                        "; see `pycell doctor`, or opt in with "
                                        "--allow-weaker-sandbox");
    }
    LOG_WARN("weaker sandbox (--allow-weaker-sandbox): {}", runtime.detail);
  }
  auto ids = sandbox::ReadSubIds("root");
  if (!ids.ok()) return ids.status();
  manager->ids_ = *ids;
  int lifeline[2];
  if (::pipe2(lifeline, O_CLOEXEC) != 0) return Status::FromErrno("pipe2 (lifeline)");
  manager->lifeline_read_.Reset(lifeline[0]);
  manager->lifeline_write_.Reset(lifeline[1]);

  RETURN_IF_ERROR(MakeDirs(config.state_dir, 0700));
  RETURN_IF_ERROR(MakeDirWithMode(config.state_dir + "/cache", 0700));
  RETURN_IF_ERROR(MakeDirs(config.runtime_dir, 0711));
  RETURN_IF_ERROR(MakeDirWithMode(config.runtime_dir, 0711));
  RETURN_IF_ERROR(MakeDirWithMode(config.runtime_dir + "/sessions", 0711));
  RETURN_IF_ERROR(CheckReachableByAll(config.runtime_dir + "/sessions"));
  if (size_t swept = manager->SweepLeftovers(); swept > 0) {
    LOG_WARN("removed {} session folder(s) left by a pycell that did not shut down", swept);
  }

  manager->zygote_options_.python = config.python;
  manager->zygote_options_.preload = config.pool.preload;
  manager->zygote_options_.cache_dir = config.state_dir + "/cache";
  RETURN_IF_ERROR(manager->LiveZygote().status());
  {
    MutexLock lock(manager->mu_);  // No other thread yet; for the analysis.
    manager->pool_target_ = config.pool.ready_sessions;
    manager->limits_ = config.pool.limits;
  }
  manager->refill_thread_ = std::thread([m = manager.get()] { m->RefillLoop(); });
  manager->expiry_thread_ = std::thread([m = manager.get()] { m->ExpiryLoop(); });
  return manager;
}

SessionManager::~SessionManager() {
  std::deque<std::shared_ptr<Session>> ready;
  std::map<std::string, std::shared_ptr<Session>> sessions;
  {
    MutexLock lock(mu_);
    stopping_ = true;
    ready.swap(ready_);
    sessions.swap(sessions_);
  }
  cv_.NotifyAll();
  if (refill_thread_.joinable()) refill_thread_.join();
  if (expiry_thread_.joinable()) expiry_thread_.join();
  for (auto& s : ready) s->End(EndReason::kShutdown);
  for (auto& [id, s] : sessions) {
    s->End(EndReason::kShutdown);
    if (end_observer_) end_observer_(*s);
  }
}

Result<std::shared_ptr<Session>> SessionManager::Launch(const SessionLimits& limits) {
  using Steady = std::chrono::steady_clock;
  auto ms_since = [](Steady::time_point t) {
    return std::chrono::duration<double, std::milli>(Steady::now() - t).count();
  };
  const auto started = Steady::now();
  LaunchTimings timings;
  SessionResources r;
  r.id = NewId("sess_");
  r.dir = config_.runtime_dir + "/sessions/" + r.id;
  ReleaseOnReturn guard{&r};

  ASSIGN_OR_RETURN(auto lease, sandbox::IdLease::Acquire(*ids_));
  r.ids.emplace(std::move(lease));
  const sandbox::IdLease& ids = *r.ids;
  r.user_uid = ids.user_uid();
  r.user_gid = ids.user_gid();
  RETURN_IF_ERROR(PrepareHost(&r, limits, r.user_uid, r.user_gid));

  sandbox::Policy policy;
  policy.session_dir = r.dir;
  policy.host_uid_init = ids.init_uid();
  policy.host_uid_user = ids.user_uid();
  policy.host_gid_init = ids.init_gid();
  policy.host_gid_user = ids.user_gid();
  policy.readonly_binds = sandbox::DefaultReadonlyBinds();
  policy.private_runtime = private_runtime_;
  policy.memory_bytes = limits.memory_bytes;
  policy.max_pids = limits.max_pids;
  policy.cpus = limits.cpus;
  policy.data_bytes = limits.data_bytes;
  policy.tmp_bytes = limits.tmp_bytes;
  policy.max_file_bytes = limits.max_file_bytes;
  policy.max_open_files = limits.max_open_files;

  ASSIGN_OR_RETURN(Pipe out, MakePipe());
  ASSIGN_OR_RETURN(Pipe err, MakePipe());
  ASSIGN_OR_RETURN(Pipe go, MakePipe());
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return Status::FromErrno("socketpair");
  }
  UniqueFd control(sv[0]), child_control(sv[1]);
  kernel::SessionFds fds{out.write.get(), err.write.get(), child_control.get(), go.read.get(),
                         lifeline_read_.get()};
  ASSIGN_OR_RETURN(std::shared_ptr<kernel::Zygote> zygote, LiveZygote());
  timings.prepare_ms = ms_since(started);
  auto step = Steady::now();
  ASSIGN_OR_RETURN(pid_t pid, zygote->Spawn(policy, limits.cpus, fds));
  timings.spawn_ms = ms_since(step);
  out.write.Reset();
  err.write.Reset();
  child_control.Reset();
  go.read.Reset();
  // The child waits for our go byte, so its pid cannot be reused before the pidfd pins it.
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd.valid()) return Status::FromErrno("pidfd_open of the new session");
  r.kernel = std::make_unique<kernel::Kernel>(pid, std::move(pidfd), std::move(control),
                                              std::move(out.read), std::move(err.read));
  // The child builds its root while we move it into its cgroup (the first write to a v1
  // cgroup.procs can take milliseconds); it forks the code's process only once admitted.
  step = Steady::now();
  RETURN_IF_ERROR(sandbox::MapIds(pid, policy));
  if (::write(go.write.get(), "g", 1) != 1) return Status::FromErrno("start the session");
  if (r.cgroup) RETURN_IF_ERROR(r.cgroup->AddProcess(pid));
  if (::write(go.write.get(), "a", 1) != 1) return Status::FromErrno("admit the session");
  timings.admit_ms = ms_since(step);
  step = Steady::now();
  RETURN_IF_ERROR(r.kernel->WaitReady(std::chrono::seconds(30)));
  timings.ready_ms = ms_since(step);

  guard.r = nullptr;
  auto session = std::make_shared<Session>(std::move(r), limits, config_.interrupt_grace, clock_);
  timings.total_ms = ms_since(started);
  std::function<void(const LaunchTimings&)> observer;
  {
    MutexLock lock(mu_);
    observer = launch_observer_;
  }
  if (observer) observer(timings);
  return session;
}

Status SessionManager::PrepareHost(SessionResources* r, const SessionLimits& limits, uid_t uid,
                                   gid_t gid) {
  // The session's init runs as an unprivileged host uid and must traverse these to bind them.
  RETURN_IF_ERROR(MakeDirWithMode(r->dir, 0711));
  r->dir_lock.Reset(::open(r->dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!r->dir_lock.valid() || ::flock(r->dir_lock.get(), LOCK_EX | LOCK_NB) != 0) {
    return Status::FromErrno("lock " + r->dir);
  }
  RETURN_IF_ERROR(MakeDirWithMode(r->dir + "/root", 0755));
  RETURN_IF_ERROR(MakeDirWithMode(r->dir + "/data", 0700));
  RETURN_IF_ERROR(MakeDirWithMode(r->dir + "/tmp", 0700));
  RETURN_IF_ERROR(
      sandbox::mount_ns::MountQuotaTmpfs(r->dir + "/data", limits.data_bytes, uid, gid));
  r->data_mounted = true;
  RETURN_IF_ERROR(sandbox::mount_ns::MountQuotaTmpfs(r->dir + "/tmp", limits.tmp_bytes, uid, gid));
  r->tmp_mounted = true;
  RETURN_IF_ERROR(MakeDirWithMode(r->dir + "/devices", 0755));
  RETURN_IF_ERROR(sandbox::mount_ns::MountDeviceNodes(r->dir + "/devices"));
  r->devices_mounted = true;
  if (use_cgroups_) {
    sandbox::CgroupLimits cg{limits.memory_bytes, limits.max_pids, limits.cpus};
    ASSIGN_OR_RETURN(r->cgroup,
                     sandbox::Cgroup::Create(cgroups_, config_.cgroup_parent, r->id, cg));
    Status weighed = r->cgroup->SetCpuWeight(Session::kStartingCpuWeight);
    if (!weighed.ok()) LOG_WARN("session {}: {}", r->id, weighed.ToString());
  }
  return Status::Ok();
}

Result<std::shared_ptr<Session>> SessionManager::ForkSession(const std::string& origin_id) {
  ASSIGN_OR_RETURN(std::shared_ptr<Session> origin, Get(origin_id));
  const std::string project = origin->project_id();
  {
    MutexLock lock(mu_);
    RETURN_IF_ERROR(AdmitFairly(project));
  }
  struct Unadmit {
    SessionManager* m;
    const std::string& project;
    ~Unadmit() {
      MutexLock lock(m->mu_);
      m->UnadmitLocked(project);
    }
  } unadmit{this, project};
  auto user = origin->UserIds();
  std::string origin_dir = origin->dir();
  pid_t origin_init = origin->InitPid();
  if (!user || origin_dir.empty() || origin_init < 0) {
    return Status::FailedPrecondition("session " + origin_id + " has ended; it cannot be forked");
  }
  const SessionLimits limits = origin->limits();
  SessionResources r;
  r.id = NewId("sess_");
  r.dir = config_.runtime_dir + "/sessions/" + r.id;
  ReleaseOnReturn guard{&r};
  // No id lease of its own: the fork runs as the origin's uids, inside the origin's pid
  // namespace, and cannot outlive it.
  r.user_uid = user->first;
  r.user_gid = user->second;
  RETURN_IF_ERROR(PrepareHost(&r, limits, r.user_uid, r.user_gid));
  auto copy_files = [&]() -> Status {
    for (const char* sub : {"/data", "/tmp"}) {
      ASSIGN_OR_RETURN(files::SafeDir from, files::SafeDir::Open(origin_dir + sub));
      RETURN_IF_ERROR(from.CopyTreeTo(r.dir + sub, user->first, user->second)
                          .WithContext(std::string("copy the origin's ") +
                                       (sub[1] == 'd' ? "/mnt/data" : "/tmp")));
    }
    return Status::Ok();
  };
  ASSIGN_OR_RETURN(kernel::ForkedKernel forked, origin->ForkProcesses(copy_files));
  r.kernel = std::move(forked.kernel);
  // The two waits of admission overlap: the mount helper's fork and setns, and the cgroup
  // write (milliseconds on v1: it waits for an RCU grace period).
  Status mounted;
  std::thread mounter([&] {
    mounted = sandbox::mount_ns::ReplaceForkMounts(forked.pid, origin_init, r.dir,
                                                   limits.tmp_bytes / 4 + 1);
  });
  Status joined = r.cgroup ? r.cgroup->AddProcess(forked.pid) : Status::Ok();
  mounter.join();
  RETURN_IF_ERROR(mounted);
  RETURN_IF_ERROR(joined);
  if (::write(forked.go.get(), "g", 1) != 1) return Status::FromErrno("admit the fork");
  RETURN_IF_ERROR(r.kernel->WaitReady(std::chrono::seconds(30)));

  guard.r = nullptr;
  auto session = std::make_shared<Session>(std::move(r), limits, config_.interrupt_grace, clock_);
  session->SetOrigin(origin);
  session->SetProject(project);
  {
    MutexLock lock(mu_);
    if (stopping_) {
      session->End(EndReason::kShutdown);
      return Status::Unavailable("the engine is stopping");
    }
    sessions_[session->id()] = session;
  }
  return session;
}

size_t SessionManager::SweepLeftovers() {
  const std::string sessions = config_.runtime_dir + "/sessions";
  DIR* listing = ::opendir(sessions.c_str());
  if (listing == nullptr) return 0;
  std::vector<std::string> names;
  while (struct dirent* entry = ::readdir(listing)) {
    if (IsValidId(entry->d_name, "sess_")) names.emplace_back(entry->d_name);
  }
  ::closedir(listing);
  size_t swept = 0;
  for (const std::string& name : names) {
    SessionResources r;
    r.id = name;
    r.dir = sessions + "/" + name;
    r.dir_lock.Reset(::open(r.dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!r.dir_lock.valid() || ::flock(r.dir_lock.get(), LOCK_EX | LOCK_NB) != 0) continue;
    if (use_cgroups_) {
      Status s = sandbox::Cgroup::RemoveLeftover(cgroups_, config_.cgroup_parent, name);
      if (!s.ok()) LOG_WARN("leftover session {}: {}", name, s.ToString());
    }
    // Its mounts died with the mount namespace of the process that made them; what is left is
    // empty folders (or, if someone mounted them by hand, mounts we detach).
    r.data_mounted = r.tmp_mounted = r.devices_mounted = true;
    ReleaseSessionResources(&r);
    ++swept;
  }
  return swept;
}

Result<std::shared_ptr<kernel::Zygote>> SessionManager::LiveZygote() {
  MutexLock lock(zygote_mu_);
  if (zygote_ && zygote_->Alive()) return zygote_;
  if (zygote_) LOG_WARN("pool {}: the zygote died; starting a new one", config_.pool.name);
  zygote_.reset();
  ASSIGN_OR_RETURN(std::unique_ptr<kernel::Zygote> fresh, kernel::Zygote::Start(zygote_options_));
  zygote_ = std::move(fresh);
  return zygote_;
}

void SessionManager::RefillLoop() {
  MutexLock lock(mu_);
  while (!stopping_) {
    bool room = ready_.size() + launching_ < pool_target_ &&
                sessions_.size() + ready_.size() + launching_ < config_.max_sessions;
    if (!room) {
      cv_.WaitFor(mu_, std::chrono::seconds(1));
      continue;
    }
    ++launching_;
    SessionLimits limits = limits_;
    uint64_t generation = limits_generation_;
    lock.Unlock();
    auto session = Launch(limits);
    lock.Lock();
    --launching_;
    if (!session.ok()) {
      LOG_WARN("pool {}: could not start a session: {}", config_.pool.name,
               session.status().ToString());
      cv_.WaitFor(mu_, std::chrono::seconds(1));  // Do not spin on a broken host.
      continue;
    }
    // Stopped, the target was lowered, or the limits changed while it launched.
    if (stopping_ || ready_.size() >= pool_target_ || generation != limits_generation_) {
      (*session)->End(EndReason::kShutdown);
      if (stopping_) break;
      continue;
    }
    ready_.push_back(std::move(*session));
    cv_.NotifyAll();
  }
}

void SessionManager::ExpiryLoop() {
  MutexLock lock(mu_);
  while (!stopping_) {
    cv_.WaitFor(mu_, std::chrono::seconds(1));
    if (stopping_) break;
    lock.Unlock();
    try {
      ExpireSessions();
    } catch (const std::exception& e) {  // A bug; the loop must go on expiring sessions.
      LOG_ERROR("pool {}: expiry pass failed: {}", config_.pool.name, e.what());
      metrics::CountInternalError("session_expiry");
    }
    lock.Lock();
  }
}

Status SessionManager::AdmitLocked(const std::string& project_id, const Waiter* self) const {
  // The share first: a project past it is refused at once, whether or not the pool is full.
  const size_t share = config_.SessionShare();
  size_t held = 0;
  if (auto it = admitting_.find(project_id); it != admitting_.end()) held = it->second;
  for (const auto& [id, s] : sessions_) held += s->project_id() == project_id ? 1 : 0;
  if (self != nullptr) {
    for (const Waiter& w : waiting_) {
      if (w.seq < self->seq && w.project_id == project_id) ++held;
    }
  }
  if (held >= share) {
    return Status::ResourceExhausted("this project holds " + std::to_string(held) +
                                     " of the pool's " + std::to_string(config_.max_sessions) +
                                     " sessions, its share (engine." +
                                     "max_sessions_per_project = " + std::to_string(share) +
                                     "); end one of its sessions and retry")
        .WithReason("pool_share_exceeded");
  }
  size_t admitting = 0;
  for (const auto& [project, n] : admitting_) admitting += n;
  if (sessions_.size() + admitting >= config_.max_sessions) {
    return Status::ResourceExhausted("the limit of " + std::to_string(config_.max_sessions) +
                                     " concurrent sessions is reached; end one and retry");
  }
  return Status::Ok();
}

bool SessionManager::FirstInLineLocked(const Waiter& self) const {
  std::map<std::string, size_t> held = admitting_;
  for (const auto& [id, s] : sessions_) ++held[s->project_id()];
  auto rank = [&](const Waiter& w) {
    auto it = held.find(w.project_id);
    return std::make_pair(it == held.end() ? size_t{0} : it->second, w.seq);
  };
  const auto mine = rank(self);
  for (const Waiter& w : waiting_) {
    if (w.seq != self.seq && rank(w) < mine) return false;
  }
  return true;
}

Status SessionManager::AdmitFairly(const std::string& project_id) {
  Status admitted = AdmitLocked(project_id);
  if (admitted.ok() && waiting_.empty()) {
    ++admitting_[project_id];
    return admitted;
  }
  if (admitted.reason() == "pool_share_exceeded" || config_.admission_wait.count() == 0) {
    return admitted;
  }
  // In line: the pool is full, or others wait for the slot that is free.
  auto self = waiting_.insert(waiting_.end(), Waiter{project_id, ++waiter_seq_});
  const auto deadline = std::chrono::steady_clock::now() + config_.admission_wait;
  while (true) {
    if (stopping_) {
      admitted = Status::Unavailable("the pool is stopping");
      break;
    }
    admitted = AdmitLocked(project_id, &*self);
    if (admitted.reason() == "pool_share_exceeded") break;
    if (admitted.ok() && FirstInLineLocked(*self)) {
      ++admitting_[project_id];
      break;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      admitted = Status::ResourceExhausted(
          "the limit of " + std::to_string(config_.max_sessions) +
          " concurrent sessions is reached, and no slot came free for this project "
          "within " +
          std::to_string(config_.admission_wait.count()) +
          " ms (engine.admission_wait_ms); end a session and retry");
      break;
    }
    // Slots free up when sessions end (cv_ is told); the poll is a backstop.
    cv_.WaitFor(mu_, std::min<std::chrono::steady_clock::duration>(deadline - now,
                                                                   std::chrono::milliseconds(250)));
  }
  waiting_.erase(self);
  cv_.NotifyAll();  // The next in line may be the one the slot goes to now.
  return admitted;
}

void SessionManager::UnadmitLocked(const std::string& project_id) {
  auto it = admitting_.find(project_id);
  if (it == admitting_.end()) return;
  if (--it->second == 0) admitting_.erase(it);
  cv_.NotifyAll();
}

Result<std::shared_ptr<Session>> SessionManager::CreateSession(const SessionOptions& options) {
  SessionLimits limits = Limits();
  bool custom = false;
  if (options.memory_bytes && *options.memory_bytes != limits.memory_bytes) {
    if (*options.memory_bytes > limits.memory_bytes) {
      return Status::InvalidArgument("memory above the pool's limit of " +
                                     std::to_string(limits.memory_bytes) + " bytes");
    }
    limits.memory_bytes = *options.memory_bytes;
    custom = true;
  }
  if (options.execution_timeout) {
    if (*options.execution_timeout > limits.max_execution_timeout) {
      return Status::InvalidArgument("timeout above the pool's maximum of " +
                                     std::to_string(limits.max_execution_timeout.count()) + " s");
    }
    limits.execution_timeout = *options.execution_timeout;
  }
  RETURN_IF_ERROR(limits.Validate());

  // From its admission until it is registered the session holds a slot in admitting_; a cold
  // launch takes a second or more, with the slot held and not the lock.
  std::shared_ptr<Session> session;
  {
    MutexLock lock(mu_);
    RETURN_IF_ERROR(AdmitFairly(options.project_id));
    while (!custom && !ready_.empty()) {
      session = std::move(ready_.front());
      ready_.pop_front();
      if (!session->ProcessGone()) break;
      session->End(EndReason::kCrashed);  // Died while waiting (e.g. zygote killed).
      session.reset();
    }
    cv_.NotifyAll();  // The refill thread has room now.
  }
  if (session) {
    session->MarkHandedOver();
    if (options.execution_timeout) session->SetExecutionTimeout(*options.execution_timeout);
  } else {
    auto launched = Launch(limits);
    if (!launched.ok()) {
      MutexLock lock(mu_);
      UnadmitLocked(options.project_id);
      return launched.status();
    }
    session = std::move(*launched);
  }
  session->SetProject(options.project_id);
  MutexLock lock(mu_);
  UnadmitLocked(options.project_id);
  sessions_[session->id()] = session;
  return session;
}

Result<std::shared_ptr<Session>> SessionManager::Get(const std::string& id) const {
  MutexLock lock(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return Status::NotFound("no session " + id);
  return it->second;
}

Status SessionManager::EndSession(const std::string& id, EndReason reason) {
  std::shared_ptr<Session> session;
  {
    MutexLock lock(mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) {
      // An expiry pass may have taken it and be ending it now: wait for that pass, so that "not
      // found" means its end is on record (the pass holds expire_mu_ until it has reported it).
      lock.Unlock();
      MutexLock pass(expire_mu_);
      return Status::NotFound("no session " + id);
    }
    session = std::move(it->second);
    sessions_.erase(it);
  }
  session->End(reason);
  if (end_observer_) end_observer_(*session);
  cv_.NotifyAll();
  ExpireSessions();  // Its forks, whose processes ended with it.
  return Status::Ok();
}

void SessionManager::ExpireSessions() {
  MutexLock pass(expire_mu_);
  ExpireSessionsLocked();
}

void SessionManager::ExpireSessionsLocked() {
  // Again until nothing ends: a fork is found ended only once its origin was.
  for (bool any = true; any;) any = ExpireOnce();
}

bool SessionManager::ExpireOnce() {
  // Between cells a session's control channel is silent; one that spoke (a frame a background
  // thread wrote after the completion, say) ends here for the violation, within a second, rather
  // than at its next cell. Checked without mu_: a violation's end unmounts and kills.
  const auto steady_now = std::chrono::steady_clock::now();
  for (const std::shared_ptr<Session>& s : Sessions()) {
    (void)s->CheckBetweenCells();
    s->EndCpuBoostIfDue(steady_now);
  }
  std::vector<std::pair<std::shared_ptr<Session>, EndReason>> expired;
  auto now = clock_->Now();
  {
    MutexLock lock(mu_);
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      const auto& s = it->second;
      EndReason reason = EndReason::kNone;
      if (s->end_reason() != EndReason::kNone) {
        reason = s->end_reason();  // Ended by its own cell (memory, crash): forget it.
      } else if (s->OriginEnded() ||
                 (!s->origin_id().empty() && sessions_.count(s->origin_id()) == 0)) {
        // Its origin ended, or is being ended by another thread that took it out of the
        // registry and has not called End yet: either way its processes die with it.
        reason = EndReason::kOriginEnded;
      } else if (now - s->created_at() >= s->limits().active_lifetime) {
        reason = EndReason::kLifetime;
      } else if (!s->busy() && now - s->last_active_at() >= s->limits().idle_timeout) {
        reason = EndReason::kIdle;
      }
      if (reason != EndReason::kNone) {
        expired.emplace_back(it->second, reason);
        it = sessions_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& [session, reason] : expired) {
    session->End(reason);
    if (end_observer_) end_observer_(*session);
  }
  if (!expired.empty()) cv_.NotifyAll();
  return !expired.empty();
}

bool SessionManager::WaitForWarmPool(std::chrono::milliseconds timeout) {
  MutexLock lock(mu_);
  return cv_.WaitFor(mu_, timeout, [&]() REQUIRES(mu_) { return ready_.size() >= pool_target_; });
}

void SessionManager::SetPoolTarget(uint32_t ready_sessions) {
  std::deque<std::shared_ptr<Session>> dropped;
  {
    MutexLock lock(mu_);
    pool_target_ = ready_sessions;
    while (ready_.size() > pool_target_) {
      dropped.push_back(std::move(ready_.back()));
      ready_.pop_back();
    }
  }
  cv_.NotifyAll();
  for (auto& s : dropped) s->End(EndReason::kShutdown);
}

uint32_t SessionManager::PoolTarget() const {
  MutexLock lock(mu_);
  return pool_target_;
}

void SessionManager::SetLimits(const SessionLimits& limits) {
  std::deque<std::shared_ptr<Session>> dropped;
  {
    MutexLock lock(mu_);
    limits_ = limits;
    ++limits_generation_;
    dropped.swap(ready_);
  }
  cv_.NotifyAll();
  for (auto& s : dropped) s->End(EndReason::kShutdown);
}

SessionLimits SessionManager::Limits() const {
  MutexLock lock(mu_);
  return limits_;
}

void SessionManager::SetLaunchObserver(std::function<void(const LaunchTimings&)> observer) {
  MutexLock lock(mu_);
  launch_observer_ = std::move(observer);
}

void SessionManager::SetEndObserver(std::function<void(const Session&)> observer) {
  end_observer_ = std::move(observer);
}

std::vector<std::shared_ptr<Session>> SessionManager::Sessions() const {
  MutexLock lock(mu_);
  std::vector<std::shared_ptr<Session>> out;
  for (const auto& [id, s] : sessions_) out.push_back(s);
  return out;
}

size_t SessionManager::ReadyCount() const {
  MutexLock lock(mu_);
  return ready_.size();
}

size_t SessionManager::ActiveCount() const {
  MutexLock lock(mu_);
  return sessions_.size();
}

}  // namespace pycell::session
