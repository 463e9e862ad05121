#include "kernel/kernel.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "common/fs.h"
#include "common/json_reader.h"
#include "common/logging.h"
#include "common/utf8.h"
#include "kernel/cell_protocol.h"

namespace pycell::kernel {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// Appends what is readable on `fd` to `text` up to `cap` bytes, dropping (and counting) the rest.
// Returns false at end of stream.
bool DrainPipe(int fd, std::string* text, bool* truncated, size_t cap,
               const std::function<void(std::string_view)>& observer) {
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno == EAGAIN;
    if (n == 0) return false;
    size_t room = cap > text->size() ? cap - text->size() : 0;
    size_t keep = std::min(room, static_cast<size_t>(n));
    if (keep > 0) {
      text->append(buf, keep);
      if (observer) observer(std::string_view(buf, keep));
    }
    if (keep < static_cast<size_t>(n)) *truncated = true;
  }
}

}  // namespace

Kernel::Kernel(pid_t init_pid, UniqueFd init_pidfd, UniqueFd control, UniqueFd stdout_read,
               UniqueFd stderr_read)
    : init_pid_(init_pid),
      init_pidfd_(std::move(init_pidfd)),
      control_(std::move(control)),
      stdout_(std::move(stdout_read)),
      stderr_(std::move(stderr_read)) {
  for (int fd : {control_.get(), stdout_.get(), stderr_.get()}) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
}

Kernel::~Kernel() { Kill(); }

void Kernel::Signal(int sig) {
  ::syscall(SYS_pidfd_send_signal, init_pidfd_.get(), sig, nullptr, 0);
}

void Kernel::Interrupt() {
  if (!dead_) Signal(SIGINT);
}

void Kernel::Kill() {
  if (!dead_.exchange(true)) Signal(SIGKILL);
}

bool Kernel::QuietAndAlive() const {
  if (dead_) return false;
  struct pollfd p {
    control_.get(), POLLIN, 0
  };
  return ::poll(&p, 1, 0) == 0;
}

Status Kernel::WaitReady(std::chrono::milliseconds timeout) {
  auto frame = ReadFrame(control_.get(), reader_, timeout);
  if (!frame.ok()) {
    Kill();
    // What the runner printed before it died is the best explanation there is.
    std::string err;
    bool truncated = false;
    DrainPipe(stderr_.get(), &err, &truncated, 4096, nullptr);
    return frame.status().WithContext("session did not start" +
                                      (err.empty() ? std::string() : " (stderr: " + err + ")"));
  }
  // Before the sandbox is in place the zygote's child may report why it failed ("error").
  auto message = ParseUntrustedJson(frame->payload, {kMaxFrameBytes, kMaxFrameDepth, 1024});
  if (message.ok() && message->is_object()) {
    auto type = OptionalStringField(*message, "type", "the first frame");
    if (type.ok() && *type == "ready") {
      if (!frame->fds.empty()) return Violated(ProtocolViolation("descriptors with 'ready'"));
      return Status::Ok();
    }
  }
  Kill();
  std::string why = frame->payload.substr(0, 4096);
  if (message.ok()) {
    auto text = OptionalStringField(*message, "message", "the first frame");
    if (text.ok() && *text) why = **text;
  }
  return Status::Internal("session failed to start: " + EscapeNonUtf8(why));
}

Status Kernel::Violated(Status violation) {
  {
    MutexLock lock(violation_mu_);
    if (violation_.empty()) violation_ = violation.message();
  }
  LOG_WARN("session (init pid {}): protocol violation: {}", init_pid_, violation.message());
  Kill();
  return violation;
}

std::string Kernel::violation() const {
  MutexLock lock(violation_mu_);
  return violation_;
}

Status Kernel::CheckBetweenCells() {
  if (dead_) return Status::Ok();
  if (reader_.buffered() == 0) {
    struct pollfd p {
      control_.get(), POLLIN, 0
    };
    if (::poll(&p, 1, 0) <= 0) return Status::Ok();
  }
  Status fed = reader_.Feed(control_.get());
  if (reader_.buffered() > 0) return Violated(ProtocolViolation("a frame between cells"));
  if (!fed.ok() && fed.IsInvalidArgument()) return Violated(ProtocolViolation(fed.message()));
  return Status::Ok();  // Closed: the runner died; the pool finds it gone.
}

namespace {

uint64_t RandomU64() {
  static thread_local std::mt19937_64 generator{std::random_device{}()};
  return generator();
}

// The pids of `pid` in each pid namespace it is in, from the host's down to its own (NSpid).
std::vector<pid_t> NamespacePids(pid_t pid) {
  std::vector<pid_t> pids;
  auto status = ReadSmallFile("/proc/" + std::to_string(pid) + "/status");
  if (!status.ok()) return pids;  // Exited meanwhile.
  size_t at = status->find("\nNSpid:");
  if (at == std::string::npos) return pids;
  std::istringstream fields(status->substr(at + 7, status->find('\n', at + 1) - at - 7));
  for (pid_t p; fields >> p;) pids.push_back(p);
  return pids;
}

// The child of `parent` (a host pid; the init of a session, or of a fork) whose pid in the
// parent's own pid namespace is `ns_pid`.
Result<pid_t> FindChildByNsPid(pid_t parent, pid_t ns_pid) {
  size_t level = NamespacePids(parent).size();
  if (level == 0) return Status::NotFound("the session's init is gone");
  ASSIGN_OR_RETURN(std::string list, ReadSmallFile("/proc/" + std::to_string(parent) + "/task/" +
                                                   std::to_string(parent) + "/children"));
  std::istringstream children(list);
  for (pid_t child; children >> child;) {
    std::vector<pid_t> pids = NamespacePids(child);
    if (pids.size() >= level && pids[level - 1] == ns_pid) return child;
  }
  return Status::NotFound("no process " + std::to_string(ns_pid) + " in the session");
}

// `count` small non-negative integers (descriptor numbers) in an array.
Result<std::vector<int>> IntArray(const json& object, const char* key, size_t count) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_array() || it->size() != count) {
    return Status::InvalidArgument("not an array of " + std::to_string(count));
  }
  std::vector<int> out;
  for (const json& item : *it) {
    if (!item.is_number_integer() || item.get<int64_t>() < 0 || item.get<int64_t>() > 1 << 20) {
      return Status::InvalidArgument("not a descriptor number");
    }
    out.push_back(static_cast<int>(item.get<int64_t>()));
  }
  return out;
}

// Reads the frame the fork handshake expects next: `want`, or "fork_failed" with the runner's
// message. Anything else (a display a background thread wrote, a forged answer, descriptors) is a
// protocol violation: between cells the channel carries nothing but the handshake.
Result<json> AwaitFrame(int socket, FrameReader& reader, const std::string& want,
                        Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (left.count() <= 0)
    return Status::DeadlineExceeded("the runner did not answer '" + want + "'");
  auto frame = ReadFrame(socket, reader, left);
  if (!frame.ok()) {
    if (frame.status().IsInvalidArgument()) return ProtocolViolation(frame.status().message());
    return frame.status();
  }
  if (!frame->fds.empty()) return ProtocolViolation("descriptors passed during a fork");
  JsonLimits limits{kMaxFrameBytes, kMaxFrameDepth, 1024};
  auto message = ParseUntrustedJson(frame->payload, limits);
  if (!message.ok() || !message->is_object()) {
    return ProtocolViolation("a fork answer that is not a small JSON object");
  }
  auto type = StringField(*message, "type", "a fork answer");
  if (!type.ok()) return ProtocolViolation(type.status().message());
  if (*type == want) return std::move(*message);
  if (*type == "fork_failed") {
    auto why = StringField(*message, "message", "the 'fork_failed' frame");
    if (!why.ok()) return ProtocolViolation(why.status().message());
    return Status::FailedPrecondition("the session could not fork: " + *why);
  }
  return ProtocolViolation("a frame of type '" + *type + "' while waiting for '" + want + "'");
}

}  // namespace

Result<ForkedKernel> Kernel::Fork(std::chrono::milliseconds timeout) {
  if (dead_) return Status::FailedPrecondition("the session's process has ended");
  RETURN_IF_ERROR(CheckBetweenCells());
  auto deadline = Clock::now() + timeout;
  RETURN_IF_ERROR(WriteFrame(control_.get(), R"({"type":"fork"})"));
  auto answer = AwaitFrame(control_.get(), reader_, "forked", deadline);
  if (IsProtocolViolation(answer.status())) return Violated(answer.status());
  if (!answer.ok()) return answer.status();
  const json& forked = *answer;
  auto ns_pid_field = IntField(forked, "pid", 2, 1 << 22, "the 'forked' frame");
  auto numbers = IntArray(forked, "fds", 4);
  if (!ns_pid_field.ok() || !numbers.ok()) {
    return Violated(ProtocolViolation("the 'forked' frame: 'pid' and four 'fds' expected"));
  }
  pid_t ns_pid = static_cast<pid_t>(*ns_pid_field);
  // From here on the fork's first process exists: any failure must end it.
  ForkedKernel result;
  ASSIGN_OR_RETURN(result.pid, FindChildByNsPid(init_pid_, ns_pid));
  UniqueFd fork_pidfd(static_cast<int>(::syscall(SYS_pidfd_open, result.pid, 0)));
  if (!fork_pidfd.valid()) return Status::FromErrno("pidfd_open of the fork");
  auto kill_fork = [&] { ::syscall(SYS_pidfd_send_signal, fork_pidfd.get(), SIGKILL, nullptr, 0); };
  ASSIGN_OR_RETURN(pid_t worker, FindChildByNsPid(init_pid_, 2));
  UniqueFd worker_pidfd(static_cast<int>(::syscall(SYS_pidfd_open, worker, 0)));
  if (!worker_pidfd.valid()) {
    kill_fork();
    return Status::FromErrno("pidfd_open of the session's runner");
  }
  // stdout, stderr, go: pipes; control: a unix socket. Anything else is refused.
  UniqueFd taken[4];
  for (int i = 0; i < 4; ++i) {
    int number = (*numbers)[i];
    taken[i].Reset(static_cast<int>(::syscall(SYS_pidfd_getfd, worker_pidfd.get(), number, 0)));
    struct stat st {};
    bool fits = taken[i].valid() && ::fstat(taken[i].get(), &st) == 0 &&
                (i == 2 ? S_ISSOCK(st.st_mode) : S_ISFIFO(st.st_mode));
    if (!fits) {
      kill_fork();
      return Violated(
          ProtocolViolation("the 'forked' frame names descriptors that are not the fork's pipes "
                            "and socket"));
    }
  }
  if (Status s = WriteFrame(control_.get(), R"({"type":"fork_release"})"); !s.ok()) {
    kill_fork();
    return s;
  }
  if (auto released = AwaitFrame(control_.get(), reader_, "released", deadline); !released.ok()) {
    kill_fork();
    if (IsProtocolViolation(released.status())) return Violated(released.status());
    return released.status();
  }
  ::fcntl(taken[3].get(), F_SETFD, FD_CLOEXEC);
  result.go = std::move(taken[3]);
  result.kernel = std::make_unique<Kernel>(result.pid, std::move(fork_pidfd), std::move(taken[2]),
                                           std::move(taken[0]), std::move(taken[1]));
  result.kernel->set_execution_count(execution_count_);
  return result;
}

Result<KernelRun> Kernel::Execute(const std::string& code, const ExecuteOptions& options,
                                  const ExecuteObserver& observer) {
  if (dead_) return Status::FailedPrecondition("the session's process has ended");
  KernelRun run;
  auto violated = [&](Status violation) {
    run.status = RunStatus::kProtocolViolation;
    run.protocol_violation = Violated(std::move(violation)).message();
  };
  // Output left over from background processes since the last cell belongs to this one.
  DrainPipe(stdout_.get(), &run.stdout_text, &run.stdout_truncated, options.max_output_bytes,
            observer.on_stdout);
  DrainPipe(stderr_.get(), &run.stderr_text, &run.stderr_truncated, options.max_output_bytes,
            observer.on_stderr);
  if (Status quiet = CheckBetweenCells(); !quiet.ok()) {
    run.status = RunStatus::kProtocolViolation;
    run.protocol_violation = quiet.message();
    return run;
  }
  // Unpredictable, so that code which has not read the runner's memory cannot forge a completion.
  execute_id_ = static_cast<int64_t>(RandomU64() >> 1);
  CellProtocol protocol(execute_id_, execution_count_, options);
  const auto sent = Clock::now();
  if (Status s =
          WriteFrame(control_.get(),
                     DumpJson(json({{"type", "execute"}, {"id", execute_id_}, {"code", code}})));
      !s.ok()) {
    Kill();
    run.status = RunStatus::kCrashed;
    return run;
  }
  auto deadline = sent + options.timeout;
  bool interrupted = false;
  bool stdout_open = true, stderr_open = true;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      if (!interrupted) {
        interrupted = true;
        Interrupt();
        deadline = Clock::now() + options.interrupt_grace;
        continue;
      }
      Kill();
      run.status = RunStatus::kTimeout;
      run.timeout_action = "killed";
      break;
    }
    struct pollfd fds[3] = {{control_.get(), POLLIN, 0},
                            {stdout_open ? stdout_.get() : -1, POLLIN, 0},
                            {stderr_open ? stderr_.get() : -1, POLLIN, 0}};
    int rc = ::poll(fds, 3, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (rc < 0 && errno != EINTR) return Status::FromErrno("poll session");
    if (fds[1].revents) {
      stdout_open = DrainPipe(stdout_.get(), &run.stdout_text, &run.stdout_truncated,
                              options.max_output_bytes, observer.on_stdout);
    }
    if (fds[2].revents) {
      stderr_open = DrainPipe(stderr_.get(), &run.stderr_text, &run.stderr_truncated,
                              options.max_output_bytes, observer.on_stderr);
    }
    if (!fds[0].revents) continue;
    Status fed = reader_.Feed(control_.get());
    Status broken;
    while (broken.ok()) {
      auto frame = reader_.Next();
      if (!frame) break;
      double elapsed_ms = std::chrono::duration<double, std::milli>(Clock::now() - sent).count();
      broken = protocol.OnFrame(frame->payload, frame->fds.size(), elapsed_ms, &run, observer);
    }
    if (broken.ok() && !reader_.error().ok() && reader_.error().IsInvalidArgument()) {
      broken = ProtocolViolation(reader_.error().message());  // Oversized frame, descriptors.
    }
    if (!broken.ok()) {
      violated(std::move(broken));
      break;
    }
    if (protocol.done()) {
      execution_count_ = run.execution_count;
      if (interrupted) {
        run.status = RunStatus::kTimeout;
        run.timeout_action = "interrupted";
      }
      break;
    }
    if (!fed.ok()) {
      // The runner is gone: the session cannot go on.
      if (!fed.message().starts_with("closed")) LOG_WARN("session protocol: {}", fed.ToString());
      Kill();
      run.status = interrupted ? RunStatus::kTimeout : RunStatus::kCrashed;
      if (interrupted) run.timeout_action = "killed";
      break;
    }
  }
  // Everything written before "done" (or before death) is already in the pipes.
  DrainPipe(stdout_.get(), &run.stdout_text, &run.stdout_truncated, options.max_output_bytes,
            observer.on_stdout);
  DrainPipe(stderr_.get(), &run.stderr_text, &run.stderr_truncated, options.max_output_bytes,
            observer.on_stderr);
  return run;
}

}  // namespace pycell::kernel
