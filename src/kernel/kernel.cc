#include "kernel/kernel.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <sstream>
#include <nlohmann/json.hpp>

#include "common/fs.h"
#include "common/logging.h"

namespace pycell::kernel {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

bool MimeBundle::IsJsonType(const std::string& mime) const {
  return mime == "application/json" || (mime.size() > 5 && mime.ends_with("+json"));
}

namespace {

MimeBundle BundleFromJson(const json& message) {
  MimeBundle bundle;
  const json& data = message.contains("data") ? message["data"] : json::object();
  if (data.is_object()) {
    for (const auto& [mime, value] : data.items()) {
      bundle.data.emplace_back(mime, value.is_string() ? value.get<std::string>() : value.dump());
    }
  }
  if (message.contains("metadata") && message["metadata"].is_object()) {
    bundle.metadata_json = message["metadata"].dump();
  }
  return bundle;
}

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
  struct pollfd p {control_.get(), POLLIN, 0};
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
  json message = json::parse(frame->payload, nullptr, false);
  if (message.is_object() && message.value("type", "") == "ready") return Status::Ok();
  Kill();
  std::string why = message.is_object() ? message.value("message", frame->payload) : frame->payload;
  return Status::Internal("session failed to start: " + why);
}

namespace {

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
  ASSIGN_OR_RETURN(std::string list,
                   ReadSmallFile("/proc/" + std::to_string(parent) + "/task/" +
                                 std::to_string(parent) + "/children"));
  std::istringstream children(list);
  for (pid_t child; children >> child;) {
    std::vector<pid_t> pids = NamespacePids(child);
    if (pids.size() >= level && pids[level - 1] == ns_pid) return child;
  }
  return Status::NotFound("no process " + std::to_string(ns_pid) + " in the session");
}

// Reads frames until one of type `want` (a display a background thread sent meanwhile is not
// it), or fails with the runner's message.
Result<json> AwaitFrame(int socket, FrameReader& reader, const std::string& want,
                        Clock::time_point deadline) {
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return Status::DeadlineExceeded("the runner did not answer '" + want + "'");
    ASSIGN_OR_RETURN(Frame frame, ReadFrame(socket, reader, left));
    json message = json::parse(frame.payload, nullptr, false);
    if (!message.is_object()) continue;
    std::string type = message.value("type", "");
    if (type == want) return message;
    if (type == "fork_failed") {
      return Status::FailedPrecondition("the session could not fork: " +
                                        message.value("message", std::string("?")));
    }
  }
}

}  // namespace

Result<ForkedKernel> Kernel::Fork(std::chrono::milliseconds timeout) {
  if (dead_) return Status::FailedPrecondition("the session's process has ended");
  auto deadline = Clock::now() + timeout;
  RETURN_IF_ERROR(WriteFrame(control_.get(), R"({"type":"fork"})"));
  ASSIGN_OR_RETURN(json forked, AwaitFrame(control_.get(), reader_, "forked", deadline));
  const json& numbers = forked.contains("fds") ? forked["fds"] : json();
  pid_t ns_pid = forked.value("pid", 0);
  if (!numbers.is_array() || numbers.size() != 4 || ns_pid <= 1) {
    return Status::Internal("the runner's fork answer is malformed");
  }
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
    int number = numbers[i].is_number_integer() ? numbers[i].get<int>() : -1;
    taken[i].Reset(static_cast<int>(::syscall(SYS_pidfd_getfd, worker_pidfd.get(), number, 0)));
    struct stat st {};
    bool fits = taken[i].valid() && ::fstat(taken[i].get(), &st) == 0 &&
                (i == 2 ? S_ISSOCK(st.st_mode) : S_ISFIFO(st.st_mode));
    if (!fits) {
      kill_fork();
      return Status::Internal("the runner's fork descriptors are not its pipes and socket");
    }
  }
  if (Status s = WriteFrame(control_.get(), R"({"type":"fork_release"})"); !s.ok()) {
    kill_fork();
    return s;
  }
  if (auto released = AwaitFrame(control_.get(), reader_, "released", deadline); !released.ok()) {
    kill_fork();
    return released.status();
  }
  ::fcntl(taken[3].get(), F_SETFD, FD_CLOEXEC);
  result.go = std::move(taken[3]);
  result.kernel = std::make_unique<Kernel>(result.pid, std::move(fork_pidfd), std::move(taken[2]),
                                           std::move(taken[0]), std::move(taken[1]));
  return result;
}

Result<KernelRun> Kernel::Execute(const std::string& code, const ExecuteOptions& options,
                                  const ExecuteObserver& observer) {
  if (dead_) return Status::FailedPrecondition("the session's process has ended");
  KernelRun run;
  // Output left over from background processes since the last cell belongs to this one.
  DrainPipe(stdout_.get(), &run.stdout_text, &run.stdout_truncated, options.max_output_bytes,
            observer.on_stdout);
  DrainPipe(stderr_.get(), &run.stderr_text, &run.stderr_truncated, options.max_output_bytes,
            observer.on_stderr);
  if (Status s = WriteFrame(control_.get(), json({{"type", "execute"}, {"code", code}})
                                           .dump(-1, ' ', false, json::error_handler_t::replace));
      !s.ok()) {
    Kill();
    run.status = RunStatus::kCrashed;
    return run;
  }
  auto deadline = Clock::now() + options.timeout;
  size_t display_bytes = 0;
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
    bool done = false;
    while (auto frame = reader_.Next()) {
      json message = json::parse(frame->payload, nullptr, false);
      if (!message.is_object()) continue;
      std::string type = message.value("type", "");
      if (type == "display" || type == "result") {
        display_bytes += frame->payload.size();
        if (display_bytes > options.max_display_bytes) {
          run.outputs_truncated = true;  // Keep reading (the runner must not block), keep none.
          continue;
        }
        Output output{type == "result" ? Output::Kind::kResult : Output::Kind::kDisplay,
                      BundleFromJson(message)};
        if (observer.on_output) observer.on_output(output);
        run.outputs.push_back(std::move(output));
      } else if (type == "error") {
        CellError error;
        error.ename = message.value("ename", "");
        error.evalue = message.value("evalue", "");
        if (message.contains("traceback") && message["traceback"].is_array()) {
          for (const auto& line : message["traceback"]) {
            if (line.is_string()) error.traceback.push_back(line.get<std::string>());
          }
        }
        run.error = std::move(error);
      } else if (type == "done") {
        run.status = message.value("status", "") == "ok" ? RunStatus::kOk : RunStatus::kError;
        run.execution_count = message.value("execution_count", 0);
        run.runner_duration_ms = message.value("duration_ms", 0.0);
        done = true;
      }
    }
    if (done) {
      if (interrupted) {
        run.status = RunStatus::kTimeout;
        run.timeout_action = "interrupted";
      }
      break;
    }
    if (!fed.ok()) {
      // The runner is gone (or sent garbage): the session cannot go on.
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
