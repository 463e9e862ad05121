// The worker's side of a request on the wire, in Beast's terms: FdStream (a connected socket as
// Beast's SyncReadStream and SyncWriteStream, with deadlines and a minimum body rate),
// StreamedBody (an upload's body, read into the handler's buffer), ChunkedResponse (a response
// written while the handler runs), ToBeast and WriteResponse (a whole response), and BodyFailure
// (the Status for a body that could not be read).
//
// Internal to the server library (pycell_server): included only by its .cc files, which is why
// Beast's types may appear here; public headers such as http_server.h speak pycell's types only.
//
// Ownership: an FdStream borrows the descriptor (the connection owns it); StreamedBody and
// ChunkedResponse borrow the FdStream (and the connection's buffer) for one request.
// Thread-safety: none; each object is used by the one worker that serves the request.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "server/router.h"

namespace pycell::server {

// A connected socket, owned by a worker for one request, as Beast's SyncReadStream and
// SyncWriteStream: blocking reads and writes through poll, each with a deadline, and for the
// body a minimum rate.
class FdStream {
 public:
  // A body must arrive at server.min_body_rate over each window of this much time spent waiting.
  static constexpr std::chrono::seconds kBodyRateWindow{10};

  explicit FdStream(int fd) : fd_(fd) {}

  // Each read or write must make progress within `idle`.
  void SetIdleTimeout(std::chrono::milliseconds idle) { idle_ = idle; }
  // From now on reads are a request body's: at least `bytes_per_second` × the window must arrive
  // per kBodyRateWindow spent waiting for it (0: no minimum). Waiting for a write does not count.
  void MeterBody(uint64_t bytes_per_second) {
    min_rate_ = bytes_per_second;
    waited_ = {};
    received_ = 0;
  }
  // The last timeout was the minimum body rate's, not the idle timeout's.
  bool too_slow() const { return too_slow_; }

  template <class MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers, boost::system::error_code& ec) {
    iovec iov[16];
    int count = ToIovec(buffers, iov);
    if (count == 0) return 0;
    const Clock::time_point deadline = Clock::now() + idle_;
    for (;;) {
      ssize_t n = ::readv(fd_, iov, count);
      if (n > 0) {
        ec = {};
        received_ += static_cast<uint64_t>(n);
        return static_cast<size_t>(n);
      }
      if (n == 0) {
        ec = boost::asio::error::eof;
        return 0;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN) {
        ec = boost::system::error_code(errno, boost::system::system_category());
        return 0;
      }
      if (!Wait(POLLIN, deadline, ec)) return 0;
    }
  }
  template <class MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers) {
    boost::system::error_code ec;
    size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

  template <class ConstBufferSequence>
  size_t write_some(const ConstBufferSequence& buffers, boost::system::error_code& ec) {
    iovec iov[16];
    int count = ToIovec(buffers, iov);
    if (count == 0) return 0;
    const Clock::time_point deadline = Clock::now() + idle_;
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(count);
    for (;;) {
      ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
      if (n >= 0) {
        ec = {};
        return static_cast<size_t>(n);
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN) {
        ec = boost::system::error_code(errno, boost::system::system_category());
        return 0;
      }
      if (!Wait(POLLOUT, deadline, ec)) return 0;
    }
  }
  template <class ConstBufferSequence>
  size_t write_some(const ConstBufferSequence& buffers) {
    boost::system::error_code ec;
    size_t n = write_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  using Clock = std::chrono::steady_clock;

  template <class Buffers>
  static int ToIovec(const Buffers& buffers, iovec* iov) {
    int count = 0;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers) && count < 16; ++it) {
      auto b = *it;
      if (b.size() == 0) continue;
      iov[count].iov_base = const_cast<void*>(static_cast<const void*>(b.data()));
      iov[count].iov_len = b.size();
      ++count;
    }
    return count;
  }

  // Waits until the socket is ready for `events`, `deadline` passes, or (reading a metered body)
  // a window of waiting ends with too little received.
  bool Wait(short events, Clock::time_point deadline, boost::system::error_code& ec);

  int fd_;
  std::chrono::milliseconds idle_{60000};
  uint64_t min_rate_ = 0;
  Clock::duration waited_{};  // In the current window, waiting for the body.
  uint64_t received_ = 0;     // In the current window.
  bool too_slow_ = false;
};

using HeaderParser = boost::beast::http::request_parser<boost::beast::http::empty_body>;

// The Status for a body that could not be read.
Status BodyFailure(const boost::system::error_code& ec, const FdStream& stream,
                   uint64_t min_body_rate);

// Reads a streamed body through Beast's parser, into the handler's buffer.
class StreamedBody : public BodyReader {
 public:
  StreamedBody(FdStream* stream, boost::beast::flat_buffer* buffer, HeaderParser&& header,
               uint64_t limit, uint64_t min_body_rate);

  Result<size_t> Read(char* data, size_t size) override;
  bool done() const { return raw_left_ ? *raw_left_ == 0 : parser_.is_done(); }

 private:
  // Content-Length bodies: first what Beast already buffered after the head, then the socket.
  Result<size_t> ReadRaw(char* data, size_t size);

  FdStream* stream_;
  boost::beast::flat_buffer* buffer_;
  boost::beast::http::request_parser<boost::beast::http::buffer_body> parser_;
  uint64_t min_body_rate_;
  std::optional<uint64_t> raw_left_;  // Set for Content-Length bodies: bytes still to read.
};

// Server-Sent Events and other responses written while the handler runs: chunked encoding.
class ChunkedResponse : public ResponseStream {
 public:
  ChunkedResponse(FdStream* stream, std::string request_id)
      : stream_(stream), request_id_(std::move(request_id)) {}

  Status Begin(int status,
               const std::vector<std::pair<std::string, std::string>>& headers) override;
  Status Write(std::string_view data) override;
  Status End();

  bool begun() const override { return begun_; }
  bool failed() const { return failed_; }

 private:
  Status Failed(const boost::system::error_code& ec);
  FdStream* stream_;
  std::string request_id_;
  bool begun_ = false;
  bool failed_ = false;
};

// A buffered response as Beast's message.
boost::beast::http::response<boost::beast::http::string_body> ToBeast(
    Response& response, bool keep_alive, const std::string& request_id);

// Writes a whole response (buffered or file body). False when the connection broke.
bool WriteResponse(FdStream& stream, Response& response, bool head_only, bool keep_alive,
                   const std::string& request_id);

}  // namespace pycell::server
