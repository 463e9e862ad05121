#include "server/http_stream.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>

namespace pycell::server {
namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using boost::system::error_code;

}  // namespace

bool FdStream::Wait(short events, Clock::time_point deadline, error_code& ec) {
  for (;;) {
    const Clock::time_point now = Clock::now();
    const bool metered = events == POLLIN && min_rate_ > 0;
    Clock::time_point until = deadline;
    if (metered) until = std::min(until, now + (kBodyRateWindow - waited_));
    auto left = std::chrono::ceil<std::chrono::milliseconds>(until - now).count();
    pollfd fd = {fd_, events, 0};
    int n = ::poll(&fd, 1, static_cast<int>(std::clamp<int64_t>(left, 0, 1 << 30)));
    if (n < 0 && errno != EINTR) {
      ec = error_code(errno, boost::system::system_category());
      return false;
    }
    const Clock::time_point after = Clock::now();
    if (metered) {
      waited_ += std::chrono::duration_cast<Clock::duration>(after - now);
      if (waited_ >= kBodyRateWindow) {
        uint64_t due = min_rate_ * static_cast<uint64_t>(kBodyRateWindow.count());
        if (received_ < due) {
          too_slow_ = true;
          ec = beast::error::timeout;
          return false;
        }
        waited_ = {};
        received_ = 0;
      }
    }
    if (n > 0) return true;
    if (after >= deadline) {
      ec = beast::error::timeout;
      return false;
    }
  }
}

Status BodyFailure(const error_code& ec, const FdStream& stream, uint64_t min_body_rate) {
  if (ec == beast::error::timeout && stream.too_slow()) {
    return Status::DeadlineExceeded("the body came slower than " + std::to_string(min_body_rate) +
                                    " bytes/s (server.min_body_rate)")
        .WithReason("request_timeout");
  }
  if (ec == beast::error::timeout) {
    return Status::DeadlineExceeded("the client stopped sending the body")
        .WithReason("request_timeout");
  }
  return Status::InvalidArgument("the body ended early or is malformed: " + ec.message());
}

StreamedBody::StreamedBody(FdStream* stream, beast::flat_buffer* buffer, HeaderParser&& header,
                           uint64_t limit, uint64_t min_body_rate)
    : stream_(stream), buffer_(buffer), parser_(std::move(header)), min_body_rate_(min_body_rate) {
  parser_.body_limit(limit);
  // A body of known length (not chunked) is read straight into the handler's buffer: Beast's
  // parser would read it into its own buffer first and copy it, 64 KiB at a time, which cost a
  // third of an upload's time. The head's Content-Length was checked against `limit` already.
  const auto& head = parser_.get();
  if (!head.chunked() && parser_.content_length()) raw_left_ = *parser_.content_length();
}

Result<size_t> StreamedBody::Read(char* data, size_t size) {
  if (raw_left_) return ReadRaw(data, size);
  if (parser_.is_done()) return size_t{0};
  for (;;) {
    parser_.get().body().data = data;
    parser_.get().body().size = size;
    error_code ec;
    http::read_some(*stream_, *buffer_, parser_, ec);
    size_t got = size - parser_.get().body().size;
    if (ec == http::error::need_buffer) ec = {};
    if (ec == http::error::body_limit) {
      return Status::ResourceExhausted("the body is larger than the limit")
          .WithReason("payload_too_large");
    }
    if (ec) return BodyFailure(ec, *stream_, min_body_rate_);
    if (got > 0 || parser_.is_done()) return got;
  }
}

Result<size_t> StreamedBody::ReadRaw(char* data, size_t size) {
  uint64_t& left = *raw_left_;
  if (left == 0 || size == 0) return size_t{0};
  size_t want = static_cast<size_t>(std::min<uint64_t>(left, size));
  if (buffer_->size() > 0) {
    size_t n = std::min(want, buffer_->size());
    net::buffer_copy(net::buffer(data, n), buffer_->data());
    buffer_->consume(n);
    left -= n;
    return n;
  }
  error_code ec;
  size_t n = stream_->read_some(net::buffer(data, want), ec);
  if (ec) return BodyFailure(ec, *stream_, min_body_rate_);
  left -= n;
  return n;
}

Status ChunkedResponse::Begin(int status,
                              const std::vector<std::pair<std::string, std::string>>& headers) {
  http::response<http::empty_body> res{static_cast<http::status>(status), 11};
  for (const auto& [name, value] : headers) res.set(name, value);
  res.set("X-Request-Id", request_id_);
  res.chunked(true);
  http::response_serializer<http::empty_body> sr{res};
  error_code ec;
  http::write_header(*stream_, sr, ec);
  begun_ = true;
  if (ec) return Failed(ec);
  return Status::Ok();
}

Status ChunkedResponse::Write(std::string_view data) {
  if (failed_) return Status::Unavailable("the client went away");
  if (data.empty()) return Status::Ok();
  error_code ec;
  net::write(*stream_, http::make_chunk(net::buffer(data.data(), data.size())), ec);
  if (ec) return Failed(ec);
  return Status::Ok();
}

Status ChunkedResponse::End() {
  if (failed_) return Status::Unavailable("the client went away");
  error_code ec;
  net::write(*stream_, http::make_chunk_last(), ec);
  if (ec) return Failed(ec);
  return Status::Ok();
}

Status ChunkedResponse::Failed(const error_code& ec) {
  failed_ = true;
  return Status::Unavailable("writing to the client: " + ec.message());
}

http::response<http::string_body> ToBeast(Response& response, bool keep_alive,
                                          const std::string& request_id) {
  http::response<http::string_body> res{static_cast<http::status>(response.status), 11};
  for (const auto& [name, value] : response.headers) res.set(name, value);
  if (!request_id.empty()) res.set("X-Request-Id", request_id);
  res.keep_alive(keep_alive);
  res.body() = std::move(response.body);
  res.prepare_payload();
  return res;
}

bool WriteResponse(FdStream& stream, Response& response, bool head_only, bool keep_alive,
                   const std::string& request_id) {
  error_code ec;
  if (response.file) {
    http::response<http::empty_body> res{static_cast<http::status>(response.status), 11};
    for (const auto& [name, value] : response.headers) res.set(name, value);
    res.set("X-Request-Id", request_id);
    res.content_length(response.file->length);
    res.keep_alive(keep_alive);
    http::response_serializer<http::empty_body> sr{res};
    http::write_header(stream, sr, ec);
    if (ec) return false;
    if (head_only) return true;
    std::vector<char> chunk(1 << 20);
    uint64_t offset = response.file->offset, left = response.file->length;
    while (left > 0) {
      ssize_t n = ::pread(response.file->fd.get(), chunk.data(),
                          std::min<uint64_t>(left, chunk.size()), static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;  // The blob shrank: cut the connection rather than lie.
      net::write(stream, net::buffer(chunk.data(), static_cast<size_t>(n)), ec);
      if (ec) return false;
      offset += static_cast<uint64_t>(n);
      left -= static_cast<uint64_t>(n);
    }
    return true;
  }
  if (head_only) {
    http::response<http::string_body> res{static_cast<http::status>(response.status), 11};
    for (const auto& [name, value] : response.headers) res.set(name, value);
    res.set("X-Request-Id", request_id);
    res.keep_alive(keep_alive);
    res.content_length(response.body.size());
    http::response_serializer<http::string_body> sr{res};
    http::write_header(stream, sr, ec);
    return !ec;
  }
  auto res = ToBeast(response, keep_alive, request_id);
  http::write(stream, res, ec);
  return !ec;
}

}  // namespace pycell::server
