#include "session/session.h"

#include <poll.h>
#include <unistd.h>

#include "common/ids.h"
#include "common/logging.h"
#include "kernel/cell_protocol.h"
#include "sandbox/mount_ns.h"

namespace pycell::session {

const char* EndReasonName(EndReason reason) {
  switch (reason) {
    case EndReason::kNone:
      return "";
    case EndReason::kClosed:
      return "closed";
    case EndReason::kIdle:
      return "idle";
    case EndReason::kLifetime:
      return "lifetime";
    case EndReason::kMemory:
      return "memory";
    case EndReason::kKilledAfterTimeout:
      return "killed_after_timeout";
    case EndReason::kCrashed:
      return "crashed";
    case EndReason::kShutdown:
      return "shutdown";
    case EndReason::kOriginEnded:
      return "origin_ended";
    case EndReason::kProtocolViolation:
      return "protocol_violation";
  }
  return "";
}

Session::Session(SessionResources resources, SessionLimits limits, std::chrono::milliseconds grace,
                 Clock* clock)
    : id_(resources.id),
      limits_(std::move(limits)),
      interrupt_grace_(grace),
      clock_(clock),
      resources_(std::move(resources)),
      created_(clock->Now()),
      last_active_(created_),
      boost_ends_(std::chrono::steady_clock::now() + kCpuBoost) {}

Session::~Session() { End(EndReason::kShutdown); }

namespace {
void MarkTruncation(std::string* text, bool truncated, uint64_t cap) {
  if (truncated) {
    *text += "\n[pycell: output truncated at " + std::to_string(cap) + " bytes]\n";
  }
}
}  // namespace

Result<ExecutionRecord> Session::Execute(const ExecuteRequest& request,
                                         const kernel::ExecuteObserver& observer) {
  if (!exec_mu_.TryLock()) {
    return Status::FailedPrecondition("session " + id() +
                                      " is running another cell; wait for it or interrupt it")
        .WithReason("session_busy");
  }
  MutexLock exec_lock(exec_mu_, std::adopt_lock);
  auto timeout = request.timeout.value_or(limits_.execution_timeout);
  if (timeout.count() <= 0 || timeout > limits_.max_execution_timeout) {
    return Status::InvalidArgument("timeout must be between 1 and " +
                                   std::to_string(limits_.max_execution_timeout.count()) + " s");
  }
  kernel::Kernel* kernel;
  sandbox::Cgroup* cgroup;
  std::string data_dir;
  {
    MutexLock lock(state_mu_);
    if (end_reason_ != EndReason::kNone) {
      return Status::FailedPrecondition("session " + id() + " has ended (" +
                                        EndReasonName(end_reason_) + "); create a new one");
    }
    running_cell_ = true;
    kernel = resources_.kernel.get();
    cgroup = resources_.cgroup.get();
    data_dir = resources_.dir + "/data";
  }

  ExecutionRecord record;
  record.id = NewId("exec_");
  record.session_id = id();
  record.code = request.code;
  record.started_at = clock_->WallNow();

  auto data = files::SafeDir::Open(data_dir);
  files::DirSnapshot before;
  if (data.ok()) {
    auto snap = data->Snapshot();
    if (snap.ok()) before = std::move(*snap);
  }
  sandbox::CgroupUsage usage_before;
  if (cgroup) {
    cgroup->ResetPeak();
    usage_before = cgroup->ReadUsage();
  }
  Touch();
  auto started = clock_->Now();
  kernel::ExecuteOptions options;
  options.timeout = timeout;
  options.interrupt_grace = interrupt_grace_;
  options.max_output_bytes = limits_.max_output_bytes;
  auto run = kernel->Execute(request.code, options, observer);
  record.duration_ms = std::chrono::duration<double, std::milli>(clock_->Now() - started).count();

  EndReason ends = EndReason::kNone;
  if (run.ok()) {
    switch (run->status) {
      case kernel::RunStatus::kOk:
        record.status = "ok";
        break;
      case kernel::RunStatus::kError:
        record.status = "error";
        break;
      case kernel::RunStatus::kTimeout:
        record.status = "timeout";
        break;
      case kernel::RunStatus::kCrashed:
        record.status = "crashed";
        break;
      case kernel::RunStatus::kProtocolViolation:
        // The session is killed; what it reported cannot be trusted, so none of it is kept
        // (stdout and stderr, read from the host's pipes up to the violation, stay).
        record.status = "crashed";
        record.protocol_violation = run->protocol_violation;
        ends = EndReason::kProtocolViolation;
        run->outputs.clear();
        run->error.reset();
        run->execution_count = 0;
        run->runner_duration_ms = 0;
        break;
    }
    record.timeout_action = run->timeout_action;
    record.stdout_text = std::move(run->stdout_text);
    record.stderr_text = std::move(run->stderr_text);
    record.stdout_truncated = run->stdout_truncated;
    record.stderr_truncated = run->stderr_truncated;
    MarkTruncation(&record.stdout_text, record.stdout_truncated, limits_.max_output_bytes);
    MarkTruncation(&record.stderr_text, record.stderr_truncated, limits_.max_output_bytes);
    record.outputs = std::move(run->outputs);
    record.outputs_truncated = run->outputs_truncated;
    record.error = std::move(run->error);
    record.execution_count = run->execution_count;
    record.runner_ms = run->runner_duration_ms;
  } else {
    record.status = "crashed";
    record.stderr_text = run.status().ToString();
  }
  if (cgroup) {
    sandbox::CgroupUsage usage_after = cgroup->ReadUsage();
    if (usage_before.cpu_ns && usage_after.cpu_ns && *usage_after.cpu_ns >= *usage_before.cpu_ns) {
      record.cpu_ms = static_cast<double>(*usage_after.cpu_ns - *usage_before.cpu_ns) / 1e6;
    } else {
      record.cpu_measured = false;
      record.unmeasured_reason = "the session's CPU counter could not be read";
    }
    if (usage_after.memory_peak_bytes) {
      record.peak_memory_bytes = *usage_after.memory_peak_bytes;
    } else {
      record.peak_memory_measured = false;
      if (!record.unmeasured_reason.empty()) record.unmeasured_reason += "; ";
      record.unmeasured_reason += "the session's peak memory could not be read";
    }
    if (ends == EndReason::kNone && (record.status == "crashed" || record.status == "timeout")) {
      if (usage_after.oom_kills > usage_before.oom_kills) ends = EndReason::kMemory;
    }
  }
  if (ends == EndReason::kNone && record.status == "crashed") ends = EndReason::kCrashed;
  if (ends == EndReason::kNone && record.timeout_action == "killed") {
    ends = EndReason::kKilledAfterTimeout;
  }
  if (ends == EndReason::kMemory && !record.error) {
    record.error =
        kernel::CellError{"MemoryError",
                          "the session exceeded its memory limit of " +
                              std::to_string(limits_.memory_bytes) + " bytes and was ended",
                          {}};
  }
  if (ends == EndReason::kNone && data.ok()) {
    auto after = data->Snapshot();
    if (after.ok()) record.files = files::DiffSnapshots(before, *after);
  }

  if (auto origin = origin_.lock()) origin->Touch();
  MutexLock lock(state_mu_);
  running_cell_ = false;
  last_active_ = clock_->Now();
  if (cpu_boosted_) EndCpuBoostLocked();
  if (ends != EndReason::kNone && end_reason_ == EndReason::kNone) {
    end_reason_ = ends;
    if (ends == EndReason::kProtocolViolation) protocol_violation_ = record.protocol_violation;
  }
  if (end_reason_ != EndReason::kNone) {
    record.session_end_reason = EndReasonName(end_reason_);
    ReleaseLocked();
  }
  return record;
}

void Session::SetExecutionTimeout(std::chrono::seconds timeout) {
  MutexLock exec_lock(exec_mu_);
  limits_.execution_timeout = timeout;
}

void Session::Interrupt() {
  MutexLock lock(state_mu_);
  if (resources_.kernel) resources_.kernel->Interrupt();
}

Status Session::PutFile(const std::string& name, int source_fd) {
  MutexLock lock(state_mu_);
  if (end_reason_ != EndReason::kNone) return Status::FailedPrecondition("session has ended");
  ASSIGN_OR_RETURN(auto dir, files::SafeDir::Open(resources_.dir + "/data"));
  return dir.CreateFileFrom(name, source_fd, resources_.user_uid, resources_.user_gid);
}

Status Session::ReplaceFile(const std::string& name, int source_fd) {
  MutexLock lock(state_mu_);
  if (end_reason_ != EndReason::kNone) return Status::FailedPrecondition("session has ended");
  ASSIGN_OR_RETURN(auto dir, files::SafeDir::Open(resources_.dir + "/data"));
  return dir.ReplaceFileFrom(name, source_fd, resources_.user_uid, resources_.user_gid);
}

Status Session::RemoveFile(const std::string& relative_path) {
  MutexLock lock(state_mu_);
  if (end_reason_ != EndReason::kNone) return Status::FailedPrecondition("session has ended");
  ASSIGN_OR_RETURN(auto dir, files::SafeDir::Open(resources_.dir + "/data"));
  return dir.RemoveFile(relative_path);
}

Result<files::DirSnapshot> Session::ListFiles() const {
  MutexLock lock(state_mu_);
  if (end_reason_ != EndReason::kNone) return Status::FailedPrecondition("session has ended");
  ASSIGN_OR_RETURN(auto dir, files::SafeDir::Open(resources_.dir + "/data"));
  return dir.Snapshot();
}

Status Session::CopyFileOut(const std::string& relative_path, const std::string& dest,
                            uint64_t max_bytes) const {
  MutexLock lock(state_mu_);
  if (end_reason_ != EndReason::kNone) return Status::FailedPrecondition("session has ended");
  ASSIGN_OR_RETURN(auto dir, files::SafeDir::Open(resources_.dir + "/data"));
  return dir.CopyOut(relative_path, dest, max_bytes);
}

Result<UniqueFd> Session::OpenFile(const std::string& relative_path) const {
  MutexLock lock(state_mu_);
  if (end_reason_ != EndReason::kNone) return Status::FailedPrecondition("session has ended");
  ASSIGN_OR_RETURN(auto dir, files::SafeDir::Open(resources_.dir + "/data"));
  return dir.OpenFileForRead(relative_path);
}

void Session::End(EndReason reason) {
  MutexLock lock(state_mu_);
  if (end_reason_ == EndReason::kNone) end_reason_ = reason;
  if (resources_.kernel) resources_.kernel->Kill();
  if (!running_cell_) ReleaseLocked();  // Else the running Execute releases on its way out.
}

void Session::ReleaseLocked() { ReleaseSessionResources(&resources_); }

void ReleaseSessionResources(SessionResources* r) {
  if (r->kernel) {
    r->kernel->Kill();
    r->kernel.reset();
  }
  if (r->cgroup) {
    Status s = r->cgroup->Destroy();
    if (!s.ok()) LOG_WARN("session {}: {}", r->id, s.ToString());
    r->cgroup.reset();
  }
  if (r->dir.empty()) return;
  if (r->data_mounted) {
    (void)sandbox::mount_ns::Unmount(r->dir + "/data");
    r->data_mounted = false;
  }
  if (r->tmp_mounted) {
    (void)sandbox::mount_ns::Unmount(r->dir + "/tmp");
    r->tmp_mounted = false;
  }
  if (r->devices_mounted) {
    (void)sandbox::mount_ns::Unmount(r->dir + "/devices");
    r->devices_mounted = false;
  }
  for (const char* sub : {"/root", "/data", "/tmp", "/devices", ""}) {
    ::rmdir((r->dir + sub).c_str());
  }
  r->dir.clear();
  r->dir_lock.Reset();
  r->ids.reset();  // Last: the uids are free only once no process runs as them.
}

EndReason Session::end_reason() const {
  MutexLock lock(state_mu_);
  return end_reason_;
}

bool Session::busy() const {
  MutexLock lock(state_mu_);
  return running_cell_;
}

void Session::MarkHandedOver() {
  MutexLock lock(state_mu_);
  created_ = last_active_ = clock_->Now();
  boost_ends_ = std::chrono::steady_clock::now() + kCpuBoost;
}

void Session::EndCpuBoostIfDue(std::chrono::steady_clock::time_point now) {
  MutexLock lock(state_mu_);
  if (cpu_boosted_ && boost_ends_ && now >= *boost_ends_) EndCpuBoostLocked();
}

void Session::EndCpuBoostLocked() {
  cpu_boosted_ = false;
  if (!resources_.cgroup) return;
  Status s = resources_.cgroup->SetCpuWeight(100);
  if (!s.ok()) LOG_WARN("session {}: {}", resources_.id, s.ToString());
}

std::chrono::steady_clock::time_point Session::created_at() const {
  MutexLock lock(state_mu_);
  return created_;
}

std::chrono::steady_clock::time_point Session::last_active_at() const {
  MutexLock lock(state_mu_);
  return last_active_;
}

std::chrono::steady_clock::time_point Session::expires_at() const {
  std::chrono::steady_clock::time_point own;
  {
    MutexLock lock(state_mu_);
    own = std::min(created_ + limits_.active_lifetime, last_active_ + limits_.idle_timeout);
  }
  if (auto origin = origin_.lock()) own = std::min(own, origin->expires_at());
  return own;
}

void Session::Touch() {
  if (auto origin = origin_.lock()) origin->Touch();
  MutexLock lock(state_mu_);
  last_active_ = clock_->Now();
}

void Session::SetOrigin(const std::shared_ptr<Session>& origin) {
  origin_ = origin;
  origin_id_ = origin->id();
}

bool Session::OriginEnded() const {
  if (origin_id_.empty()) return false;
  auto origin = origin_.lock();
  return !origin || origin->end_reason() != EndReason::kNone;
}

std::optional<std::pair<uid_t, gid_t>> Session::UserIds() const {
  MutexLock lock(state_mu_);
  if (end_reason_ != EndReason::kNone || !resources_.kernel) return std::nullopt;
  return std::make_pair(resources_.user_uid, resources_.user_gid);
}

pid_t Session::InitPid() const {
  MutexLock lock(state_mu_);
  return resources_.kernel ? resources_.kernel->init_pid() : -1;
}

Result<kernel::ForkedKernel> Session::ForkProcesses(const std::function<Status()>& copy_files) {
  if (!exec_mu_.TryLock()) {
    return Status::FailedPrecondition("session " + id() +
                                      " is running a cell; fork it between cells")
        .WithReason("session_busy");
  }
  MutexLock exec_lock(exec_mu_, std::adopt_lock);
  kernel::Kernel* kernel;
  {
    MutexLock lock(state_mu_);
    if (end_reason_ != EndReason::kNone) {
      return Status::FailedPrecondition("session " + id() + " has ended (" +
                                        EndReasonName(end_reason_) + "); it cannot be forked");
    }
    // Busy while it forks, as while a cell runs: an End() meanwhile kills the processes but
    // leaves the kernel (its descriptors) to be released here, after the fork is done with it.
    running_cell_ = true;
    kernel = resources_.kernel.get();
  }
  Touch();
  Status copied = copy_files();
  Result<kernel::ForkedKernel> forked =
      copied.ok() ? kernel->Fork(std::chrono::seconds(10)) : Result<kernel::ForkedKernel>(copied);
  MutexLock lock(state_mu_);
  running_cell_ = false;
  if (kernel::IsProtocolViolation(forked.status()))
    EndForViolationLocked(forked.status().message());
  if (end_reason_ != EndReason::kNone) {
    ReleaseLocked();
    if (forked.ok()) {
      // Ended while it forked: the fork lives inside these processes, which are gone.
      return Status::FailedPrecondition("session " + id() + " ended (" +
                                        EndReasonName(end_reason_) + ") while it was forked");
    }
  }
  return forked;
}

Status Session::CheckBetweenCells() {
  // Under state_mu_ only, never exec_mu_ (taking that would make a cell that starts meanwhile
  // answer "busy"): a cell or a fork marks running_cell_ under state_mu_ before it touches the
  // kernel, and reads the channel itself from then on.
  MutexLock lock(state_mu_);
  if (running_cell_ || end_reason_ != EndReason::kNone || !resources_.kernel) return Status::Ok();
  Status quiet = resources_.kernel->CheckBetweenCells();
  if (kernel::IsProtocolViolation(quiet)) EndForViolationLocked(quiet.message());
  return quiet;
}

void Session::EndForViolationLocked(const std::string& rule) {
  if (end_reason_ == EndReason::kNone) {
    end_reason_ = EndReason::kProtocolViolation;
    protocol_violation_ = rule;
  }
  if (resources_.kernel) resources_.kernel->Kill();
  if (!running_cell_) ReleaseLocked();
}

std::string Session::protocol_violation() const {
  MutexLock lock(state_mu_);
  return protocol_violation_;
}

std::vector<pid_t> Session::ProcessIds() const {
  MutexLock lock(state_mu_);
  return resources_.cgroup ? resources_.cgroup->Processes() : std::vector<pid_t>{};
}

std::string Session::dir() const {
  MutexLock lock(state_mu_);
  return resources_.dir;
}

bool Session::ProcessGone() const {
  MutexLock lock(state_mu_);
  if (!resources_.kernel || resources_.kernel->Dead()) return true;
  return !resources_.kernel->QuietAndAlive();
}

}  // namespace pycell::session
