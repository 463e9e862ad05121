// CellProtocol: the server's side of one cell on a session's control channel, as a state machine
// that trusts nothing it is sent.
//
// The runner shares its process with the user's code, so every frame on the control socket may
// have been written by that code (or by a child it passed the socket to): each one is hostile
// input. For one execute (id N) the channel must carry, in any order, zero or more `display`,
// `result` and `error` frames, then exactly one `done` frame echoing N, whose reported figures are
// plausible. Anything else is a *protocol violation* — a frame that is not bounded JSON, an unknown
// type, a field of the wrong type or range, a `done` for another execute or with an execution
// count that does not follow the last one, more frames in one cell than the limit, descriptors
// passed on the socket — and the caller ends the session (only that session) for it.
//
// Plain logic, no I/O: Kernel::Execute feeds it the frames it reads; the fuzz target
// `cell_protocol` feeds it whole frame sequences.
//
// Thread-safety: none; one cell, one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "kernel/kernel.h"

namespace pycell::kernel {

// The Status reason of every violation (Status::reason()); its message is the rule broken.
inline constexpr const char* kProtocolViolation = "protocol_violation";
Status ProtocolViolation(std::string rule);
bool IsProtocolViolation(const Status& status);

// Bounds on what one frame's JSON may be.
inline constexpr size_t kMaxFrameDepth = 64;
inline constexpr size_t kMaxFrameValues = 1u << 20;

class CellProtocol {
 public:
  // `execute_id`: the id sent with the execute; `last_execution_count`: the count the previous
  // completion reported (0 for a fresh session). The limits come from `options`.
  CellProtocol(int64_t execute_id, int64_t last_execution_count, const ExecuteOptions& options);

  // Takes one frame of this cell: `fd_count` descriptors came with it, `elapsed_ms` is the time
  // since the execute was sent, as the host measures it. Fills `run` (outputs, error, and on the
  // completion its status, count and runner time) and tells `observer` of each kept output.
  // Returns a protocol violation (IsProtocolViolation) to end the session; Ok otherwise.
  Status OnFrame(std::string_view payload, size_t fd_count, double elapsed_ms, KernelRun* run,
                 const ExecuteObserver& observer);
  // True once the one completion arrived; any frame after it is a violation.
  bool done() const { return done_; }
  size_t frames() const { return frames_; }

 private:
  int64_t execute_id_;
  int64_t last_execution_count_;
  size_t max_frames_;
  size_t max_outputs_;
  size_t max_display_bytes_;
  size_t frames_ = 0;
  size_t display_bytes_ = 0;
  bool done_ = false;
};

// Checks a frame the runner sends outside any cell ("ready" at start): bounded JSON, an object
// with a string "type". Returns the type.
Result<std::string> FrameType(std::string_view payload);

}  // namespace pycell::kernel
