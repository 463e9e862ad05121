// Frames: how the server, the zygote and a session's runner talk. A frame is a 4-byte big-endian
// length followed by that many bytes of UTF-8 JSON, on a SOCK_STREAM unix socket; a frame may
// carry descriptors (SCM_RIGHTS) with its first byte.
//
// Everything read here may come from sandboxed code: lengths are checked against a maximum before
// anything is allocated, and a malformed frame is an error, never a crash.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"

namespace pycell::kernel {

inline constexpr uint32_t kMaxFrameBytes = 64u << 20;

// Writes one frame; blocks until all of it is written, or DeadlineExceeded when the peer has not
// taken it all within `timeout` (a peer that stops reading cannot hold us forever). `fds` travel
// with its first bytes.
Status WriteFrame(int socket, std::string_view payload, const std::vector<int>& fds = {},
                  std::chrono::milliseconds timeout = std::chrono::seconds(30));

struct Frame {
  std::string payload;
  std::vector<UniqueFd> fds;
};

// Incremental reader for one socket: Feed() it whenever the socket is readable (non-blocking);
// Next() hands out complete frames. Used where a socket is polled alongside others.
class FrameReader {
 public:
  // `accept_fds` false: the peer may pass no descriptors at all; any that arrive are closed at
  // once and the reader fails (InvalidArgument), so a hostile peer cannot make us hold them.
  explicit FrameReader(uint32_t max_bytes = kMaxFrameBytes, bool accept_fds = true)
      : max_bytes_(max_bytes), accept_fds_(accept_fds) {}
  // Reads what is available. Returns Unavailable("closed") at end of stream, InvalidArgument for a
  // frame over the maximum, descriptors beyond what one frame may carry, or any descriptors when
  // they are not accepted.
  Status Feed(int socket);
  // The next complete frame, if any. A header over the maximum sets error().
  std::optional<Frame> Next();
  const Status& error() const { return error_; }
  // Bytes received and not yet handed out as frames.
  size_t buffered() const { return buffer_.size(); }

  static constexpr size_t kMaxFdsPerFrame = 16;

 private:
  // Descriptors and the bytes of buffer_ the same recvmsg returned, [begin, end). The kernel ends
  // a read after the message that carried descriptors, and a sender attaches them to a frame's
  // first bytes, so they belong to the last frame that starts within [begin, end).
  struct ReceivedFds {
    int64_t begin, end;
    std::vector<UniqueFd> fds;
  };
  uint32_t HeaderAt0() const;

  uint32_t max_bytes_;
  bool accept_fds_;
  std::string buffer_;
  std::vector<ReceivedFds> fds_;  // In arrival order.
  Status error_;
};

// Blocking read of the next frame through `reader` (which keeps what arrived beyond it), waiting
// at most `timeout` (DeadlineExceeded past it).
Result<Frame> ReadFrame(int socket, FrameReader& reader, std::chrono::milliseconds timeout);

}  // namespace pycell::kernel
