#include "server/http_server.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <limits>
#include <optional>
#include <sstream>

#include "common/ids.h"
#include "common/ip_address.h"
#include "common/logging.h"
#include "metrics/metrics.h"

namespace pycell::server {
namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

// A connected socket as Beast's SyncReadStream and SyncWriteStream, with a deadline on every
// wait and an eventfd that aborts waits when the server stops (only between requests).
class FdStream {
 public:
  FdStream(int fd, int stop_fd) : fd_(fd), stop_fd_(stop_fd) {}

  // Absolute: the whole phase must end by then (reading a request's head).
  void SetDeadline(Clock::time_point deadline, bool stop_aborts) {
    deadline_ = deadline;
    idle_ = {};
    stop_aborts_ = stop_aborts;
  }
  // Relative: each read or write must make progress within `idle` (bodies, responses).
  void SetIdleTimeout(std::chrono::milliseconds idle) {
    idle_ = idle;
    stop_aborts_ = false;
  }

  template <class MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers, error_code& ec) {
    iovec iov[16];
    int count = ToIovec(buffers, iov);
    if (count == 0) return 0;
    Clock::time_point deadline = Deadline();
    for (;;) {
      ssize_t n = ::readv(fd_, iov, count);
      if (n > 0) {
        ec = {};
        return static_cast<size_t>(n);
      }
      if (n == 0) {
        ec = net::error::eof;
        return 0;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN) {
        ec = error_code(errno, boost::system::system_category());
        return 0;
      }
      if (!Wait(POLLIN, deadline, ec)) return 0;
    }
  }
  template <class MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers) {
    error_code ec;
    size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

  template <class ConstBufferSequence>
  size_t write_some(const ConstBufferSequence& buffers, error_code& ec) {
    iovec iov[16];
    int count = ToIovec(buffers, iov);
    if (count == 0) return 0;
    Clock::time_point deadline = Deadline();
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
        ec = error_code(errno, boost::system::system_category());
        return 0;
      }
      if (!Wait(POLLOUT, deadline, ec)) return 0;
    }
  }
  template <class ConstBufferSequence>
  size_t write_some(const ConstBufferSequence& buffers) {
    error_code ec;
    size_t n = write_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

  int fd() const { return fd_; }

 private:
  template <class Buffers>
  static int ToIovec(const Buffers& buffers, iovec* iov) {
    int count = 0;
    for (auto it = net::buffer_sequence_begin(buffers);
         it != net::buffer_sequence_end(buffers) && count < 16; ++it) {
      auto b = *it;
      if (b.size() == 0) continue;
      iov[count].iov_base = const_cast<void*>(static_cast<const void*>(b.data()));
      iov[count].iov_len = b.size();
      ++count;
    }
    return count;
  }

  Clock::time_point Deadline() const {
    return idle_.count() > 0 ? Clock::now() + idle_ : deadline_;
  }

  bool Wait(short events, Clock::time_point deadline, error_code& ec) {
    pollfd fds[2] = {{fd_, events, 0}, {stop_fd_, POLLIN, 0}};
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) {
        ec = beast::error::timeout;
        return false;
      }
      int n = ::poll(fds, stop_aborts_ ? 2 : 1, static_cast<int>(std::min<int64_t>(left.count(), 1 << 30)));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        ec = error_code(errno, boost::system::system_category());
        return false;
      }
      if (stop_aborts_ && (fds[1].revents & POLLIN)) {
        ec = net::error::operation_aborted;
        return false;
      }
      if (fds[0].revents) return true;
    }
  }

  int fd_;
  int stop_fd_;
  Clock::time_point deadline_ = Clock::time_point::max();
  std::chrono::milliseconds idle_{0};
  bool stop_aborts_ = false;
};

using HeaderParser = http::request_parser<http::empty_body>;

// Reads a streamed body through Beast's parser, into the handler's buffer.
class StreamedBody : public BodyReader {
 public:
  StreamedBody(FdStream* stream, beast::flat_buffer* buffer, HeaderParser&& header, uint64_t limit)
      : stream_(stream), buffer_(buffer), parser_(std::move(header)) {
    parser_.body_limit(limit);
    // A body of known length (not chunked) is read straight into the handler's buffer: Beast's
    // parser would read it into its own buffer first and copy it, 64 KiB at a time, which cost a
    // third of an upload's time. The head's Content-Length was checked against `limit` already.
    const auto& head = parser_.get();
    if (!head.chunked() && parser_.content_length()) raw_left_ = *parser_.content_length();
  }

  Result<size_t> Read(char* data, size_t size) override {
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
      if (ec) return Failure(ec);
      if (got > 0 || parser_.is_done()) return got;
    }
  }
  bool done() const { return raw_left_ ? *raw_left_ == 0 : parser_.is_done(); }

 private:
  // Content-Length bodies: first what Beast already buffered after the head, then the socket.
  Result<size_t> ReadRaw(char* data, size_t size) {
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
    if (ec) return Failure(ec);
    left -= n;
    return n;
  }

  static Status Failure(const error_code& ec) {
    if (ec == beast::error::timeout) {
      return Status::DeadlineExceeded("the client stopped sending the body")
          .WithReason("request_timeout");
    }
    return Status::InvalidArgument("the body ended early or is malformed: " + ec.message());
  }

  FdStream* stream_;
  beast::flat_buffer* buffer_;
  http::request_parser<http::buffer_body> parser_;
  std::optional<uint64_t> raw_left_;  // Set for Content-Length bodies: bytes still to read.
};

// Server-Sent Events and other responses written while the handler runs: chunked encoding.
class ChunkedResponse : public ResponseStream {
 public:
  ChunkedResponse(FdStream* stream, std::string request_id)
      : stream_(stream), request_id_(std::move(request_id)) {}

  Status Begin(int status, const std::vector<std::pair<std::string, std::string>>& headers) override {
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

  Status Write(std::string_view data) override {
    if (failed_) return Status::Unavailable("the client went away");
    if (data.empty()) return Status::Ok();
    error_code ec;
    net::write(*stream_, http::make_chunk(net::buffer(data.data(), data.size())), ec);
    if (ec) return Failed(ec);
    return Status::Ok();
  }

  Status End() {
    if (failed_) return Status::Unavailable("the client went away");
    error_code ec;
    net::write(*stream_, http::make_chunk_last(), ec);
    if (ec) return Failed(ec);
    return Status::Ok();
  }

  bool begun() const override { return begun_; }
  bool failed() const { return failed_; }

 private:
  Status Failed(const error_code& ec) {
    failed_ = true;
    return Status::Unavailable("writing to the client: " + ec.message());
  }
  FdStream* stream_;
  std::string request_id_;
  bool begun_ = false;
  bool failed_ = false;
};

// Writes a whole response (buffered or file body). False when the connection broke.
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
  http::response<http::string_body> res{static_cast<http::status>(response.status), 11};
  for (const auto& [name, value] : response.headers) res.set(name, value);
  res.set("X-Request-Id", request_id);
  res.keep_alive(keep_alive);
  if (head_only) {
    res.content_length(response.body.size());
    http::response_serializer<http::string_body> sr{res};
    http::write_header(stream, sr, ec);
    return !ec;
  }
  res.body() = std::move(response.body);
  res.prepare_payload();
  http::write(stream, res, ec);
  return !ec;
}

// The 500 for an exception that escaped a handler or the authorization: a bug. The log has what
// was thrown, under the request id the answer names; pycell_internal_errors_total counts it.
Status InternalError(const Request& request, std::string_view what) {
  LOG_ERROR("{} {} {}: internal error (a bug): an exception escaped the handler: {}",
            request.request_id, request.method, request.target, what);
  metrics::CountInternalError("http");
  return Status::Internal("internal error (a bug in pycell, not in the request); the server's "
                          "log has the details under request id " +
                          request.request_id)
      .WithReason("internal");
}

// Runs `fn` (a handler, or the authorization), catching what escapes it: the one catch per
// request (STYLE.md). `*threw` says whether it did.
template <class Fn>
auto Guarded(const Request& request, bool* threw, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::exception& e) {
    *threw = true;
    return InternalError(request, e.what());
  } catch (...) {
    *threw = true;
    return InternalError(request, "an exception of unknown type");
  }
}

// A whole 503 response (head and body) for a connection refused before any request was read,
// serialized by Beast so that its Content-Length is the body's. (It was a hand-written string
// that declared 100 bytes for a body of 94.)
std::string RefusalBytes(const std::string& message) {
  Response r = ErrorResponse(Status::Unavailable(message));  // With Retry-After: 1.
  http::response<http::string_body> res{static_cast<http::status>(r.status), 11};
  for (const auto& [name, value] : r.headers) res.set(name, value);
  res.keep_alive(false);
  res.body() = std::move(r.body);
  res.prepare_payload();
  std::ostringstream out;
  out << res;
  return out.str();
}

// The client of a request from TCP peer `peer` ("10.0.0.1:5000", "[::1]:5000"): the peer itself,
// or, from a trusted proxy, the address X-Forwarded-For names (ClientAddress; without a port).
std::string ClientPeer(const std::string& peer, const http::fields& head,
                       const std::vector<IpRange>& trusted) {
  if (trusted.empty()) return peer;
  auto address = IpAddress::Parse(peer, /*allow_port=*/true);
  if (!address) return peer;
  std::string forwarded;
  auto [first, last] = head.equal_range("X-Forwarded-For");
  for (auto field = first; field != last; ++field) {
    if (!forwarded.empty()) forwarded += ", ";
    forwarded.append(field->value().data(), field->value().size());
  }
  IpAddress client = ClientAddress(*address, forwarded, trusted);
  return client == *address ? peer : client.ToString();
}

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions options,
                                                      const Router* router) {
  RETURN_IF_ERROR(options.config.Validate());
  const std::string& listen = options.config.listen;
  size_t colon = listen.rfind(':');
  std::string host = listen.substr(0, colon), port = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0) {
    return Status::InvalidArgument("server.listen " + listen + ": " + gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses(found, freeaddrinfo);
  ASSIGN_OR_RETURN(std::vector<IpRange> trusted,
                   ParseIpRanges(options.config.trusted_proxies, "server.trusted_proxies"));
  std::unique_ptr<HttpServer> server(new HttpServer(std::move(options), router));
  server->trusted_proxies_ = std::move(trusted);
  Status last = Status::InvalidArgument("server.listen " + listen + ": no address");
  for (addrinfo* a = found; a; a = a->ai_next) {
    UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
    if (!fd.valid()) {
      last = Status::FromErrno("socket");
      continue;
    }
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0) {
      last = Status::FromErrno("bind " + listen);
      if (errno == EADDRINUSE) {
        last = Status::Unavailable("cannot listen on " + listen +
                                   ": the address is in use (another pycell serve?); choose "
                                   "another with --listen");
      }
      continue;
    }
    if (::listen(fd.get(), 1024) != 0) {
      last = Status::FromErrno("listen");
      continue;
    }
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &length);
    char text[INET6_ADDRSTRLEN] = {};
    if (bound.ss_family == AF_INET) {
      auto* in = reinterpret_cast<sockaddr_in*>(&bound);
      ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
      server->port_ = ntohs(in->sin_port);
    } else {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&bound);
      ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
      server->port_ = ntohs(in6->sin6_port);
    }
    server->host_ = text;
    server->listener_ = std::move(fd);
    break;
  }
  if (!server->listener_.valid()) return last;
  server->stop_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!server->stop_.valid()) return Status::FromErrno("eventfd");
  server->accept_thread_ = std::thread([s = server.get()] { s->AcceptLoop(); });
  return server;
}

HttpServer::~HttpServer() {
  StopAccepting();
  Join();
}

void HttpServer::StopAccepting() {
  if (stopping_.exchange(true)) return;
  uint64_t one = 1;
  (void)!::write(stop_.get(), &one, sizeof one);
  if (accept_thread_.joinable()) accept_thread_.join();
  listener_.Reset();
}

void HttpServer::RequestDone() {
  // Under mu_, so that WaitIdle cannot miss the wake-up between its check and its wait.
  std::lock_guard<std::mutex> lock(mu_);
  in_flight_--;
  cv_.notify_all();
}

bool HttpServer::WaitIdle(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return in_flight_.load() == 0; });
}

void HttpServer::Join() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return connections_ == 0; });
}

void HttpServer::AcceptLoop() {
  for (;;) {
    pollfd fds[2] = {{listener_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    int n = ::poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (fds[1].revents & POLLIN) return;
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    int fd = ::accept4(listener_.get(), reinterpret_cast<sockaddr*>(&peer), &length,
                       SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        LOG_WARN("accept: out of file descriptors; pausing 100 ms");
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      continue;
    }
    char host[INET6_ADDRSTRLEN] = {};
    uint16_t port = 0;
    if (peer.ss_family == AF_INET) {
      auto* in = reinterpret_cast<sockaddr_in*>(&peer);
      ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
      port = ntohs(in->sin_port);
    } else if (peer.ss_family == AF_INET6) {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&peer);
      ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
      port = ntohs(in6->sin6_port);
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bool over = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      over = connections_ >= options_.config.max_connections;
      if (!over) ++connections_;
    }
    if (over) {
      static const std::string busy = RefusalBytes("too many connections; retry in a moment");
      (void)!::send(fd, busy.data(), busy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      ::close(fd);
      continue;
    }
    std::string peer_text = peer.ss_family == AF_INET6
                                ? "[" + std::string(host) + "]:" + std::to_string(port)
                                : std::string(host) + ":" + std::to_string(port);
    std::thread([this, fd, peer_text] {
      try {
        Serve(fd, peer_text);
      } catch (const std::exception& e) {  // A bug outside the handlers: this connection ends.
        LOG_ERROR("{}: internal error (a bug): the connection ends on an exception: {}", peer_text,
                  e.what());
        metrics::CountInternalError("http");
      } catch (...) {
        LOG_ERROR("{}: internal error (a bug): the connection ends on an exception", peer_text);
        metrics::CountInternalError("http");
      }
      ::close(fd);
      bool trim = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        // Each connection's thread allocates in one of glibc's per-thread arenas, which keep
        // what is freed; once no connection is left, the free pages go back to the system, so
        // that the server's RSS falls back after a burst of load. At most once a second: a
        // client without keep-alive empties the server after every request.
        auto now = std::chrono::steady_clock::now();
        if (--connections_ == 0 && now - last_trim_ >= std::chrono::seconds(1)) {
          last_trim_ = now;
          trim = true;
        }
        cv_.notify_all();
      }
      if (trim) ::malloc_trim(0);  // After the reply: a few ms at most, on no request's path.
    }).detach();
  }
}

void HttpServer::Serve(int fd, std::string peer) {
  const ServerConfig& config = options_.config;
  FdStream stream(fd, stop_.get());
  // Beast reads as much as the buffer has room for, and a fresh flat_buffer grows in 512-byte
  // steps: an upload went through in 512-byte reads (and writes) until it had room for 64 KiB.
  beast::flat_buffer buffer;
  buffer.reserve(64 << 10);
  auto request_idle = std::chrono::duration_cast<std::chrono::milliseconds>(config.request_timeout);
  for (;;) {
    if (stopping_) return;
    stream.SetDeadline(Clock::now() + config.keep_alive_timeout, /*stop_aborts=*/true);
    HeaderParser header;
    header.header_limit(static_cast<uint32_t>(config.max_header_bytes));
    // Checked per route below. (Not boost::none: Beast 1.74 compares a length with an empty
    // optional as "greater" and refuses every body.)
    header.body_limit(std::numeric_limits<std::uint64_t>::max());
    error_code ec;
    http::read_header(stream, buffer, header, ec);
    if (ec) {
      // A client that went quiet or away, or a stop: close. A malformed head gets a 400.
      if (ec == http::error::header_limit) {
        Response r = ErrorResponse(
            Status::InvalidArgument("the request head is larger than " +
                                    std::to_string(config.max_header_bytes) + " bytes"));
        r.status = 431;
        stream.SetIdleTimeout(request_idle);
        WriteResponse(stream, r, false, false, "");
      } else if (ec != net::error::eof && ec != beast::error::timeout &&
                 ec != net::error::operation_aborted && ec != http::error::end_of_stream &&
                 buffer.size() > 0) {
        Response r = ErrorResponse(Status::InvalidArgument("malformed HTTP request: " + ec.message()));
        stream.SetIdleTimeout(request_idle);
        WriteResponse(stream, r, false, false, "");
      }
      return;
    }
    in_flight_++;
    stream.SetIdleTimeout(request_idle);
    auto started = Clock::now();

    auto& head = header.get();
    Request request;
    request.method = std::string(head.method_string());
    request.target = std::string(head.target());
    request.request_id = NewId("req_");
    request.peer = ClientPeer(peer, head, trusted_proxies_);
    for (const auto& field : head) {
      std::string name(field.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      request.headers[name] = std::string(field.value());
    }
    if (header.content_length()) request.content_length = *header.content_length();
    bool keep_alive = head.keep_alive();
    bool head_only = request.method == "HEAD";
    bool body_unread = !header.is_done();

    ChunkedResponse chunked(&stream, request.request_id);
    Result<Response> result = Status::Internal("unhandled");
    bool threw = false;
    Status parsed = ParseTarget(request.target, &request.path, &request.query);
    Router::Match match;
    if (parsed.ok()) match = router_->Find(request.method, request.path);
    if (!parsed.ok()) {
      result = parsed;
    } else if (!match.route && !match.allowed.empty()) {
      std::string allow;
      for (const auto& m : match.allowed) allow += (allow.empty() ? "" : ", ") + m;
      Response r = ErrorResponse(Status::InvalidArgument(
          request.method + " is not allowed on " + request.path + "; allowed: " + allow)
                                     .WithReason("method_not_allowed"));
      r.headers.emplace_back("Allow", allow);
      result = std::move(r);
    } else if (!match.route) {
      result = Status::NotFound("no route " + request.method + " " + request.path +
                                "; see /openapi.json");
    } else if (Status allowed = Guarded(request, &threw,
                                        [&] { return router_->Authorize(&request, *match.route); });
               !allowed.ok()) {
      result = allowed;  // Before any body is read: a refused upload costs nothing.
    } else if (match.route->streams_body) {
      request.params = std::move(match.params);
      uint64_t limit = options_.max_streamed_body_bytes + (1 << 20);  // + multipart framing
      if (request.content_length && *request.content_length > limit) {
        result = Status::ResourceExhausted("the body (" + std::to_string(*request.content_length) +
                                           " bytes) is larger than the file limit of " +
                                           std::to_string(options_.max_streamed_body_bytes) +
                                           " bytes")
                     .WithReason("payload_too_large");
      } else {
        StreamedBody body(&stream, &buffer, std::move(header), limit);
        request.body_reader = &body;
        result = Guarded(request, &threw, [&] { return match.route->handler(request, chunked); });
        body_unread = !body.done();
      }
    } else {
      request.params = std::move(match.params);
      if (request.content_length && *request.content_length > config.max_json_body_bytes) {
        result = Status::ResourceExhausted("the body is larger than " +
                                           std::to_string(config.max_json_body_bytes) + " bytes")
                     .WithReason("payload_too_large");
      } else {
        http::request_parser<http::string_body> full(std::move(header));
        full.body_limit(config.max_json_body_bytes);
        http::read(stream, buffer, full, ec);
        if (ec == http::error::body_limit) {
          result = Status::ResourceExhausted("the body is larger than " +
                                             std::to_string(config.max_json_body_bytes) + " bytes")
                       .WithReason("payload_too_large");
        } else if (ec) {
          RequestDone();
          return;  // Timed out or went away mid-body: nobody to answer.
        } else {
          body_unread = false;
          request.body = std::move(full.get().body());
          result = Guarded(request, &threw, [&] { return match.route->handler(request, chunked); });
        }
      }
    }
    // An unread body cannot be skipped safely: answer, then close.
    if (body_unread) keep_alive = false;
    if (stopping_) keep_alive = false;
    int status_code = 0;
    bool ok = true;
    if (chunked.begun()) {
      // After a bug mid-stream the stream is cut, not ended: the client must not take it whole.
      ok = !threw && !chunked.failed() && chunked.End().ok();
      status_code = 200;
      if (!result.ok()) {
        LOG_WARN("{} {} {}: {}", request.request_id, request.method, request.path,
                 result.status().ToString());
      }
    } else {
      Response response = result.ok() ? std::move(*result) : ErrorResponse(result.status());
      status_code = response.status;
      if (!result.ok() && status_code == 500 && !threw) {  // The log keeps the whole status.
        LOG_WARN("{} {} {}: {}", request.request_id, request.method, request.path,
                 result.status().ToString());
      }
      ok = WriteResponse(stream, response, head_only, keep_alive, request.request_id);
    }
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
    if (options_.on_request) {
      options_.on_request(RequestLog{request.method,
                                     match.route ? match.route->pattern : "unmatched",
                                     request.target, status_code, ms / 1000, request.request_id,
                                     request.peer, request.caller.principal,
                                     request.caller.project_id});
    }
    LOG_INFO("{}{}{} {} {} {} {:.2f}ms {}", request.peer, request.peer == peer ? "" : " via ",
             request.peer == peer ? "" : peer, request.method, request.target, status_code, ms,
             request.request_id);
    RequestDone();
    if (!ok || !keep_alive) {
      ::shutdown(fd, SHUT_WR);
      return;
    }
  }
}

}  // namespace pycell::server
