#include "kernel/kernel.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>

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
