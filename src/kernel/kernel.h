// Kernel: the server's handle on one session's processes — the init the zygote forked (whose host
// pid we signal) and the runner inside it (reached through the control socket and the stdout and
// stderr pipes). Execute() runs one cell and gathers what it produced.
//
// Thread-safety: one Execute at a time (the session enforces it); Interrupt() and Kill() may be
// called from any thread while Execute runs.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "common/unique_fd.h"
#include "kernel/frame.h"

namespace pycell::kernel {

// A Jupyter MIME bundle. Values are strings: base64 for binary types (image/png), JSON text for
// JSON types (application/json, *+json), the text itself otherwise.
struct MimeBundle {
  std::vector<std::pair<std::string, std::string>> data;
  std::string metadata_json = "{}";
  // application/json and the *+json types, whose values are JSON rather than text.
  static bool IsJsonType(const std::string& mime) {
    return mime == "application/json" || (mime.size() > 5 && mime.ends_with("+json"));
  }
};

struct Output {
  enum class Kind { kDisplay, kResult };
  Kind kind;
  MimeBundle bundle;
};

struct CellError {
  std::string ename;
  std::string evalue;
  std::vector<std::string> traceback;
};

enum class RunStatus {
  kOk,                 // The cell ran to its end.
  kError,              // The cell raised.
  kTimeout,            // Past its deadline; see timeout_action.
  kCrashed,            // The runner died (killed, out of memory, exited); the session is gone.
  kProtocolViolation,  // The control channel carried what the protocol forbids (cell_protocol.h);
                       // the session was killed for it.
};

struct KernelRun {
  RunStatus status = RunStatus::kOk;
  std::string timeout_action;  // "interrupted" or "killed", for kTimeout.
  std::string stdout_text;
  std::string stderr_text;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  std::vector<Output> outputs;
  bool outputs_truncated = false;  // Displays past max_display_bytes were dropped.
  std::optional<CellError> error;
  int execution_count = 0;
  double runner_duration_ms = 0;   // As the runner measured the cell.
  std::string protocol_violation;  // The rule broken, for kProtocolViolation.
};

struct ExecuteOptions {
  std::chrono::milliseconds timeout{60000};
  std::chrono::milliseconds interrupt_grace{3000};  // After the interrupt, before the kill.
  size_t max_output_bytes = 1 << 20;                // Per stream.
  size_t max_display_bytes = 32 << 20;              // All displays and results together.
  size_t max_outputs = 10000;  // Displays and results kept; later ones are dropped (truncated).
  size_t max_frames = 100000;  // Frames of any kind in one cell; past it: protocol violation.
};

// Called while the cell runs (for streaming); may be empty.
struct ExecuteObserver {
  std::function<void(std::string_view)> on_stdout;
  std::function<void(std::string_view)> on_stderr;
  std::function<void(const Output&)> on_output;
};

class Kernel;

// A session fork as the host holds it before admission (see Kernel::Fork).
struct ForkedKernel {
  std::unique_ptr<Kernel> kernel;  // The fork's: WaitReady once admitted.
  UniqueFd go;                     // One byte 'g' admits it, after its mounts and cgroup.
  pid_t pid = -1;                  // Host pid of the fork's first process (its init).
};

class Kernel {
 public:
  // `init_pidfd` refers to the session's init (pidfd_open), so that a signal can never reach a
  // process that reused its pid.
  Kernel(pid_t init_pid, UniqueFd init_pidfd, UniqueFd control, UniqueFd stdout_read,
         UniqueFd stderr_read);
  ~Kernel();  // Kill()s.

  // Waits for the runner's "ready" frame (or the sandbox's error report).
  Status WaitReady(std::chrono::milliseconds timeout);
  // Between cells the channel must be silent: anything readable on it (a frame a background
  // thread wrote after the last completion, descriptors) is a protocol violation, which kills the
  // session and is returned. Ok when silent. The caller makes sure no cell runs.
  Status CheckBetweenCells();
  // The rule the runner broke, once a violation killed the session; "" otherwise.
  std::string violation() const;
  Result<KernelRun> Execute(const std::string& code, const ExecuteOptions& options,
                            const ExecuteObserver& observer = {});
  // Between cells (the caller makes sure no cell runs): asks the runner to fork the session
  // (runner.py, "A session fork"; sandbox::ContainForkChild), finds the fork's first process
  // among this session's, and takes the host's ends of its pipes and control socket out of the
  // runner with pidfd_getfd, checking that each is what it claims to be. The fork then waits for
  // its go byte.
  Result<ForkedKernel> Fork(std::chrono::milliseconds timeout);
  // Sends the running cell a KeyboardInterrupt (SIGINT through the session's init).
  void Interrupt();
  // SIGKILLs the session's init; the kernel then ends every process of its pid namespace.
  void Kill();
  bool Dead() const { return dead_; }
  // True when the runner is alive and has nothing unread to say (a warm session's normal state).
  bool QuietAndAlive() const;
  // The execution count the last completion reported (a fork starts from its origin's).
  int64_t execution_count() const { return execution_count_; }
  void set_execution_count(int64_t count) { execution_count_ = count; }
  pid_t init_pid() const { return init_pid_; }

 private:
  void Signal(int sig);
  // Records the rule broken and kills the session; returns `violation` for the caller to pass on.
  Status Violated(Status violation) EXCLUDES(violation_mu_);

  pid_t init_pid_;
  UniqueFd init_pidfd_;
  UniqueFd control_;
  UniqueFd stdout_;
  UniqueFd stderr_;
  FrameReader reader_{kMaxFrameBytes, /*accept_fds=*/false};
  std::atomic<bool> dead_{false};
  int64_t execute_id_ = 0;  // Random, of the last execute sent; the runner echoes it in "done".
  int64_t execution_count_ = 0;  // As the last completion reported it.
  mutable Mutex violation_mu_;
  std::string violation_ GUARDED_BY(violation_mu_);
};

}  // namespace pycell::kernel
