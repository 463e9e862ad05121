// Boost 1.74's Asio detects C++20 coroutines with GCC only: with clang (the fuzz build) it looks
// for <experimental/coroutine>, which libstdc++ does not have. Clang 14 with libstdc++'s
// <coroutine> works; say so before any Asio header. (<utility>: awaitable.hpp uses std::exchange
// without including it.)
#if defined(__clang__) && defined(__cpp_impl_coroutine) && !defined(BOOST_ASIO_HAS_CO_AWAIT)
#define BOOST_ASIO_HAS_CO_AWAIT 1
#define BOOST_ASIO_HAS_STD_COROUTINE 1
#endif
#include "server/http_server.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <future>
#include <limits>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>

#include "common/ids.h"
#include "common/logging.h"
#include "metrics/metrics.h"

namespace pycell::server {
namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

// A body must arrive at server.min_body_rate over each window of this much time spent waiting.
constexpr std::chrono::seconds kBodyRateWindow{10};
// A refused connection is read from (and what it sent dropped) for this long before it is closed,
// so that its 503 is not lost to a reset; at most kMaxLingering of them at once.
constexpr std::chrono::seconds kRefusalLinger{1};
constexpr size_t kMaxLingering = 1024;
// Workers idle this long end (a few are kept).
constexpr std::chrono::seconds kWorkerIdleExit{30};
// After a kept-alive request, its worker waits this long for the next request's head before
// handing the connection back to the io side: a busy client's next request usually follows its
// response within microseconds (milliseconds on a saturated machine), and served on the same
// thread it costs no hop between threads. Not while requests wait for a worker.
constexpr std::chrono::milliseconds kWorkerLinger{10};

auto Awaitable(error_code& ec) { return net::redirect_error(net::use_awaitable, ec); }

// The completion of a coroutine: an exception that escaped it is a bug, logged and counted.
auto CatchEscaped(const char* where) {
  return [where](std::exception_ptr escaped) {
    if (!escaped) return;
    try {
      std::rethrow_exception(escaped);
    } catch (const std::exception& e) {
      LOG_ERROR("internal error (a bug): an exception escaped the HTTP server's {}: {}", where,
                e.what());
    } catch (...) {
      LOG_ERROR("internal error (a bug): an exception escaped the HTTP server's {}", where);
    }
    metrics::CountInternalError("http_io");
  };
}

// A connected socket, owned by a worker for one request, as Beast's SyncReadStream and
// SyncWriteStream: blocking reads and writes through poll, each with a deadline, and for the
// body a minimum rate.
class FdStream {
 public:
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
  size_t read_some(const MutableBufferSequence& buffers, error_code& ec) {
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

  // Waits until the socket is ready for `events`, `deadline` passes, or (reading a metered body)
  // a window of waiting ends with too little received.
  bool Wait(short events, Clock::time_point deadline, error_code& ec) {
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

  int fd_;
  std::chrono::milliseconds idle_{60000};
  uint64_t min_rate_ = 0;
  Clock::duration waited_{};  // In the current window, waiting for the body.
  uint64_t received_ = 0;     // In the current window.
  bool too_slow_ = false;
};

using HeaderParser = http::request_parser<http::empty_body>;

// The Status for a body that could not be read.
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

// Reads a streamed body through Beast's parser, into the handler's buffer.
class StreamedBody : public BodyReader {
 public:
  StreamedBody(FdStream* stream, beast::flat_buffer* buffer, HeaderParser&& header, uint64_t limit,
               uint64_t min_body_rate)
      : stream_(stream),
        buffer_(buffer),
        parser_(std::move(header)),
        min_body_rate_(min_body_rate) {
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
      if (ec) return BodyFailure(ec, *stream_, min_body_rate_);
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
    if (ec) return BodyFailure(ec, *stream_, min_body_rate_);
    left -= n;
    return n;
  }

  FdStream* stream_;
  beast::flat_buffer* buffer_;
  http::request_parser<http::buffer_body> parser_;
  uint64_t min_body_rate_;
  std::optional<uint64_t> raw_left_;  // Set for Content-Length bodies: bytes still to read.
};

// Server-Sent Events and other responses written while the handler runs: chunked encoding.
class ChunkedResponse : public ResponseStream {
 public:
  ChunkedResponse(FdStream* stream, std::string request_id)
      : stream_(stream), request_id_(std::move(request_id)) {}

  Status Begin(int status,
               const std::vector<std::pair<std::string, std::string>>& headers) override {
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

// A buffered response as Beast's message.
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

// The 500 for an exception that escaped a handler or the authorization: a bug. The log has what
// was thrown, under the request id the answer names; pycell_internal_errors_total counts it.
Status InternalError(const Request& request, std::string_view what) {
  LOG_ERROR("{} {} {}: internal error (a bug): an exception escaped the handler: {}",
            request.request_id, request.method, request.target, what);
  metrics::CountInternalError("http");
  return Status::Internal(
             "internal error (a bug in pycell, not in the request); the server's "
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
// serialized by Beast so that its Content-Length is the body's.
std::string RefusalBytes(const std::string& message) {
  Response r = ErrorResponse(Status::Unavailable(message));  // With Retry-After: 1.
  auto res = ToBeast(r, /*keep_alive=*/false, "");
  std::ostringstream out;
  out << res;
  return out.str();
}

// The client of a request from TCP peer `peer` ("10.0.0.1:5000", "[::1]:5000"): the peer itself,
// or, from a trusted proxy, the address X-Forwarded-For names (ClientAddress; without a port).
std::string ClientPeer(const std::string& peer, const IpAddress& address, const http::fields& head,
                       const std::vector<IpRange>& trusted) {
  if (trusted.empty()) return peer;
  std::string forwarded;
  auto [first, last] = head.equal_range("X-Forwarded-For");
  for (auto field = first; field != last; ++field) {
    if (!forwarded.empty()) forwarded += ", ";
    forwarded.append(field->value().data(), field->value().size());
  }
  IpAddress client = ClientAddress(address, forwarded, trusted);
  return client == address ? peer : client.ToString();
}

bool Trusted(const IpAddress& address, const std::vector<IpRange>& trusted) {
  return std::any_of(trusted.begin(), trusted.end(),
                     [&](const IpRange& range) { return range.Contains(address); });
}

// Raises the soft limit on open descriptors to the hard one: each connection is one. Says so when
// even that is less than max_connections needs.
void RaiseDescriptorLimit(uint32_t max_connections) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  // Sessions, the database and blobs need descriptors too: leave them 1024.
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < max_connections + 1024ull) {
    LOG_WARN(
        "server.max_connections is {}, but this process may open only {} descriptors "
        "(RLIMIT_NOFILE; systemd: LimitNOFILE=): connections past about {} will be refused",
        max_connections, limit.rlim_cur, limit.rlim_cur > 1024 ? limit.rlim_cur - 1024 : 0);
  }
}

}  // namespace

// The io side: the io_context, its threads, and the acceptor (on a strand of its own).
struct HttpServer::Io {
  // Declared before the context: coroutine frames the context destroys may still touch them.
  bool accepting = false;  // The accept loop was started (Start got that far).
  std::promise<void> accepting_ended;
  std::atomic<size_t> lingering{0};  // Refused connections still being drained.
  net::io_context context;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work{
      context.get_executor()};
  tcp::acceptor acceptor{net::make_strand(context)};
  std::vector<std::thread> threads;
};

// One accepted connection. Shared by the coroutine waiting for its head and, while a request
// runs, by that request's worker — never both at once (see the header). While the io side owns it,
// its socket is a tcp_stream registered with the io_context's reactor; a worker gets the bare
// descriptor, taken out of the reactor (Release) — else every request arriving on a busy
// connection would wake an io thread for nothing (edge-triggered epoll reports it, with no
// operation pending) — and the io side registers it again when it takes it back (Stream). Closing
// the last reference closes the socket and uncounts the connection.
class HttpServer::Connection {
 public:
  Connection(HttpServer* server, tcp::socket socket, tcp protocol, IpAddress peer_address,
             std::string peer_text, std::string key)
      : strand(socket.get_executor()),
        address(peer_address),
        peer(std::move(peer_text)),
        limit_key(std::move(key)),
        server_(server),
        protocol_(protocol) {
    stream_.emplace(std::move(socket));
  }
  ~Connection() { Close(); }

  // The io side's stream (on `strand`), registered again with the reactor if a worker had the
  // descriptor. REQUIRES: on the strand, no worker owns the connection.
  beast::tcp_stream& Stream() {
    if (!stream_) {
      tcp::socket socket(strand);
      error_code ec;
      socket.assign(protocol_, fd_.Release(), ec);
      stream_.emplace(std::move(socket));
    }
    return *stream_;
  }
  // Hands the descriptor to a worker: out of the reactor, no operation pending.
  void Release() {
    if (!stream_) return;
    error_code ec;
    stream_->expires_never();
    int fd = stream_->socket().release(ec);
    stream_.reset();
    fd_ = UniqueFd(fd);
  }
  // The descriptor, for a worker (after Release).
  int fd() const { return fd_.get(); }

  // Uncounts the connection, then closes it: a client that sees it closed may connect again at
  // once without finding its old connection still counted. By the connection's one owner.
  void Close() {
    if (closed_) return;
    closed_ = true;
    server_->ConnectionClosed(limit_key);
    if (stream_) {
      error_code ec;
      stream_->socket().close(ec);
    }
    fd_.Reset();
  }

  const net::any_io_executor strand;  // The connection's strand, for its whole life.
  beast::flat_buffer buffer;
  std::optional<HeaderParser> header;  // The head of the request being served.
  const IpAddress address;             // The TCP peer's.
  const std::string peer;              // "10.0.0.1:5000", "[::1]:5000"
  const std::string limit_key;         // Counted by, per address; "" for a trusted proxy.
  int requests = 0;                    // Served on this connection so far.

 private:
  HttpServer* server_;
  const tcp protocol_;
  std::optional<beast::tcp_stream> stream_;  // While the io side owns it.
  UniqueFd fd_;                              // While a worker owns it.
  bool closed_ = false;
};

namespace {

// The io side's coroutines. Each runs on its connection's strand.

// Drains a refused connection for a moment, so its 503 is not lost to a reset, then closes it.
net::awaitable<void> Linger(tcp::socket socket, std::atomic<size_t>* lingering) {
  beast::tcp_stream stream(std::move(socket));
  stream.expires_after(kRefusalLinger);
  char scratch[2048];
  size_t total = 0;
  for (;;) {
    error_code ec;
    size_t n = co_await stream.async_read_some(net::buffer(scratch), Awaitable(ec));
    total += n;
    if (ec || total > (64u << 10)) break;
  }
  --*lingering;
}

// Answers a request whose head could not be read (431, 400) and lets the connection close.
net::awaitable<void> AnswerBadHead(std::shared_ptr<HttpServer::Connection> c, Response response,
                                   std::chrono::seconds timeout) {
  auto res = ToBeast(response, /*keep_alive=*/false, "");
  beast::tcp_stream& stream = c->Stream();
  stream.expires_after(timeout);
  error_code ec;
  co_await http::async_write(stream, res, Awaitable(ec));
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

}  // namespace

HttpServer::HttpServer(HttpServerOptions options, const Router* router)
    : options_(std::move(options)),
      router_(router),
      workers_(options_.config.max_workers, kWorkerIdleExit) {}

Result<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions options,
                                                      const Router* router) {
  RETURN_IF_ERROR(options.config.Validate());
  ASSIGN_OR_RETURN(std::vector<IpRange> trusted,
                   ParseIpRanges(options.config.trusted_proxies, "server.trusted_proxies"));
  const std::string listen = options.config.listen;
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
  RaiseDescriptorLimit(options.config.max_connections);
  std::unique_ptr<HttpServer> server(new HttpServer(std::move(options), router));
  server->trusted_proxies_ = std::move(trusted);
  server->refuse_busy_ = RefusalBytes("too many connections; retry in a moment");
  server->refuse_per_address_ = RefusalBytes(
      "too many connections from your address (server.max_connections_per_address is " +
      std::to_string(server->options_.config.max_connections_per_address) +
      "); close idle ones, or retry in a moment");
  server->io_ = std::make_unique<Io>();
  Io& io = *server->io_;
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
    if (::listen(fd.get(), 4096) != 0) {
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
    error_code ec;
    io.acceptor.assign(a->ai_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd.get(), ec);
    if (ec) {
      last = Status::Internal("listening socket: " + ec.message());
      continue;
    }
    (void)fd.Release();  // The acceptor owns it now.
    server->host_ = text;
    break;
  }
  if (!io.acceptor.is_open()) return last;

  // The accept loop: one coroutine on the acceptor's strand.
  HttpServer* s = server.get();
  io.accepting = true;
  net::co_spawn(
      io.acceptor.get_executor(),
      [s]() -> net::awaitable<void> {
        Io& io_side = *s->io_;
        struct Ended {  // However the loop ends (an exception too), StopAccepting may go on.
          Io* io;
          ~Ended() { io->accepting_ended.set_value(); }
        } ended{&io_side};
        Clock::time_point last_warning;
        for (;;) {
          tcp::socket socket(net::make_strand(io_side.context));
          error_code ec;
          co_await io_side.acceptor.async_accept(socket, Awaitable(ec));
          if (!io_side.acceptor.is_open() || ec == net::error::operation_aborted) break;
          if (ec) {
            if (ec == net::error::no_descriptors || ec.value() == ENFILE || ec.value() == ENOBUFS ||
                ec.value() == ENOMEM) {
              // The listener stays readable: pause rather than spin.
              if (Clock::now() - last_warning > std::chrono::seconds(10)) {
                last_warning = Clock::now();
                LOG_WARN(
                    "accept: {}; pausing 100 ms (raise LimitNOFILE, or lower "
                    "server.max_connections)",
                    ec.message());
              }
              net::steady_timer pause(io_side.acceptor.get_executor(),
                                      std::chrono::milliseconds(100));
              co_await pause.async_wait(Awaitable(ec));
            }
            continue;
          }
          tcp::endpoint remote = socket.remote_endpoint(ec);
          if (ec) continue;  // Gone already.
          socket.set_option(tcp::no_delay(true), ec);
          socket.non_blocking(true, ec);
          IpAddress address;
          if (remote.address().is_v4()) {
            address = IpAddress::FromV4(remote.address().to_v4().to_uint());
          } else {
            auto bytes = remote.address().to_v6().to_bytes();
            address = IpAddress::FromV6(bytes.data());
          }
          std::string remote_port = std::to_string(remote.port());
          std::string peer = address.is_v4() ? address.ToString() + ":" + remote_port
                                             : "[" + address.ToString() + "]:" + remote_port;
          std::string limit_key =
              Trusted(address, s->trusted_proxies_) ? "" : address.ConnectionKey();
          if (const std::string* refusal = s->Admit(limit_key)) {
            int fd = socket.native_handle();
            (void)!::send(fd, refusal->data(), refusal->size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            ::shutdown(fd, SHUT_WR);
            if (io_side.lingering.load() < kMaxLingering) {
              ++io_side.lingering;
              auto executor = socket.get_executor();
              net::co_spawn(executor, Linger(std::move(socket), &io_side.lingering),
                            CatchEscaped("refusal"));
            }
            continue;  // Or closed here, with the socket.
          }
          s->OnAccepted(std::make_shared<Connection>(s, std::move(socket), remote.protocol(),
                                                     address, std::move(peer),
                                                     std::move(limit_key)));
        }
      },
      CatchEscaped("accept loop"));

  size_t threads = server->options_.io_threads;
  if (threads == 0) threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 4);
  for (size_t i = 0; i < threads; ++i) {
    io.threads.emplace_back([s] {
      for (;;) {
        try {
          s->io_->context.run();
          return;
        } catch (const std::exception& e) {
          LOG_ERROR("internal error (a bug): an exception escaped an HTTP io thread: {}", e.what());
        } catch (...) {
          LOG_ERROR("internal error (a bug): an exception escaped an HTTP io thread");
        }
        metrics::CountInternalError("http_io");
      }
    });
  }
  return server;
}

HttpServer::~HttpServer() {
  StopAccepting();
  Join();
  io_.reset();
}

const std::string* HttpServer::Admit(const std::string& limit_key) {
  MutexLock lock(mu_);
  const ServerConfig& config = options_.config;
  const std::string* refusal = nullptr;
  if (stopping_) {
    refusal = &refuse_busy_;
  } else if (connections_ >= config.max_connections) {
    refusal = &refuse_busy_;
  } else if (!limit_key.empty()) {
    auto it = per_address_.find(limit_key);
    if (it != per_address_.end() && it->second >= config.max_connections_per_address) {
      refusal = &refuse_per_address_;
    }
  }
  if (refusal) {
    auto now = Clock::now();
    if (now - last_refusal_log_ >= std::chrono::seconds(1)) {  // At most one line a second.
      last_refusal_log_ = now;
      if (refusal == &refuse_per_address_) {
        LOG_WARN("refusing connections from {}: {} open (server.max_connections_per_address)",
                 limit_key, config.max_connections_per_address);
      } else if (!stopping_) {
        LOG_WARN("refusing connections: {} open (server.max_connections)", connections_);
      }
    }
    return refusal;
  }
  ++connections_;
  if (!limit_key.empty()) ++per_address_[limit_key];
  return nullptr;
}

void HttpServer::ConnectionClosed(const std::string& limit_key) {
  bool trim = false;
  {
    MutexLock lock(mu_);
    if (!limit_key.empty()) {
      auto it = per_address_.find(limit_key);
      if (it != per_address_.end() && --it->second == 0) per_address_.erase(it);
    }
    // Handlers allocate in glibc's per-thread arenas, which keep what is freed; once no
    // connection is left, the free pages go back to the system, so that the server's RSS falls
    // back after a burst of load. At most once a second: a client without keep-alive empties the
    // server after every request.
    auto now = Clock::now();
    if (--connections_ == 0 && now - last_trim_ >= std::chrono::seconds(1)) {
      last_trim_ = now;
      trim = true;
    }
    cv_.NotifyAll();
  }
  if (trim) ::malloc_trim(0);  // After the reply: a few ms at most, on no request's path.
}

size_t HttpServer::connections() const {
  MutexLock lock(mu_);
  return connections_;
}

bool HttpServer::StartWaiting(Connection* connection, std::weak_ptr<Connection> weak) {
  MutexLock lock(mu_);
  if (stopping_) return false;
  waiting_.emplace(connection, std::move(weak));
  return true;
}

void HttpServer::StopWaiting(Connection* connection) {
  MutexLock lock(mu_);
  waiting_.erase(connection);
}

bool HttpServer::IsWaiting(Connection* connection) const {
  MutexLock lock(mu_);
  return waiting_.count(connection) > 0;
}

void HttpServer::OnAccepted(std::shared_ptr<Connection> connection) {
  WaitForHead(std::move(connection));
}

void HttpServer::WaitForHead(std::shared_ptr<Connection> connection) {
  auto executor = connection->strand;
  net::co_spawn(
      executor,
      [this, c = std::move(connection)]() -> net::awaitable<void> {
        if (!StartWaiting(c.get(), c)) co_return;  // Stopping: the connection closes.
        struct Unregister {  // On every way out of the wait (the coroutine may end early).
          HttpServer* server;
          Connection* connection;
          ~Unregister() { server->StopWaiting(connection); }
        } unregister{this, c.get()};
        const ServerConfig& config = options_.config;
        beast::tcp_stream& stream = c->Stream();
        error_code ec;
        if (c->requests > 0 && c->buffer.size() == 0) {
          // Kept alive: the next request may take keep_alive_timeout to begin.
          stream.expires_after(config.keep_alive_timeout);
          size_t n = co_await stream.async_read_some(c->buffer.prepare(1024), Awaitable(ec));
          c->buffer.commit(n);
        }
        if (!ec && stopping_) co_return;  // StopAccepting ran between the two reads.
        if (!ec) {
          // The whole head within header_timeout (of the accept, or of its first byte).
          stream.expires_after(config.header_timeout);
          c->header.emplace();
          c->header->header_limit(static_cast<uint32_t>(config.max_header_bytes));
          // Checked per route by the worker. (Not boost::none: Beast 1.74 compares a length
          // with an empty optional as "greater" and refuses every body.)
          c->header->body_limit(std::numeric_limits<std::uint64_t>::max());
          co_await http::async_read_header(stream, c->buffer, *c->header, Awaitable(ec));
        }
        if (ec) {
          // A client that went quiet or away, or a stop: close. A malformed head gets a 400.
          if (ec == http::error::header_limit) {
            Response r = ErrorResponse(
                Status::InvalidArgument("the request head is larger than " +
                                        std::to_string(config.max_header_bytes) + " bytes"));
            r.status = 431;
            co_await AnswerBadHead(c, std::move(r), config.request_timeout);
          } else if (ec != net::error::eof && ec != beast::error::timeout &&
                     ec != net::error::operation_aborted && ec != http::error::end_of_stream &&
                     ec != net::error::connection_reset && c->buffer.size() > 0) {
            Response r =
                ErrorResponse(Status::InvalidArgument("malformed HTTP request: " + ec.message()));
            co_await AnswerBadHead(c, std::move(r), config.request_timeout);
          }
          co_return;
        }
        // No longer waiting before a worker may own it: StopAccepting's cancel must not reach
        // the socket then (it checks, on this strand, whether the connection still waits).
        StopWaiting(c.get());
        c->Release();
        in_flight_++;
        workers_.Submit([this, c] { Serve(c); });
      },
      CatchEscaped("connection"));
}

void HttpServer::StopAccepting() {
  std::vector<std::shared_ptr<Connection>> idle;
  {
    MutexLock lock(mu_);
    if (stopping_.exchange(true) || !io_) return;
    for (auto& [raw, weak] : waiting_) {
      if (auto c = weak.lock()) idle.push_back(std::move(c));
    }
  }
  if (io_->accepting) {
    net::post(io_->acceptor.get_executor(), [this] {
      error_code ec;
      io_->acceptor.close(ec);
    });
    io_->accepting_ended.get_future().wait();
  }
  // Connections waiting for a head close; requests in flight go on.
  for (auto& c : idle) {
    auto executor = c->strand;
    net::post(executor, [this, c = std::move(c)] {
      // On the connection's strand: unless its head arrived meanwhile (a worker owns it then).
      if (IsWaiting(c.get())) c->Stream().cancel();
    });
  }
}

void HttpServer::RequestDone() {
  // Under mu_, so that WaitIdle cannot miss the wake-up between its check and its wait.
  MutexLock lock(mu_);
  in_flight_--;
  cv_.NotifyAll();
}

bool HttpServer::WaitIdle(std::chrono::milliseconds timeout) {
  MutexLock lock(mu_);
  return cv_.WaitFor(mu_, timeout, [&] { return in_flight_.load() == 0; });
}

void HttpServer::Join() {
  {
    MutexLock lock(mu_);
    cv_.Wait(mu_, [&]() REQUIRES(mu_) { return connections_ == 0; });
    if (!stopping_ || joined_ || !io_) return;  // Still accepting: the threads go on.
    joined_ = true;
  }
  workers_.Stop();
  io_->work.reset();
  io_->context.stop();  // Refused connections still lingering are dropped.
  for (std::thread& thread : io_->threads) thread.join();
}

void HttpServer::Serve(std::shared_ptr<Connection> c) {
  for (;;) {
    bool keep = false;
    try {
      keep = ServeRequest(*c);
    } catch (const std::exception& e) {  // A bug outside the handlers: this connection ends.
      LOG_ERROR("{}: internal error (a bug): the connection ends on an exception: {}", c->peer,
                e.what());
      metrics::CountInternalError("http");
    } catch (...) {
      LOG_ERROR("{}: internal error (a bug): the connection ends on an exception", c->peer);
      metrics::CountInternalError("http");
    }
    c->header.reset();
    RequestDone();
    if (!keep || stopping_) {
      c->Close();
      return;
    }
    if (!NextHeadNow(*c)) break;
    in_flight_++;
  }
  // An idle connection keeps no big buffer (an upload's 64 KiB).
  if (c->buffer.size() == 0) c->buffer.shrink_to_fit();
  WaitForHead(std::move(c));
}

bool HttpServer::NextHeadNow(Connection& c) {
  // A fresh parser over what is buffered: a head that is not whole leaves the buffer as it is,
  // for the io side to parse again from its start.
  auto parse = [&] {
    if (c.buffer.size() == 0) return false;
    c.header.emplace();
    c.header->header_limit(static_cast<uint32_t>(options_.config.max_header_bytes));
    c.header->body_limit(std::numeric_limits<std::uint64_t>::max());
    error_code ec;
    size_t used = c.header->put(c.buffer.data(), ec);
    if (ec || !c.header->is_header_done()) {
      c.header.reset();  // Incomplete, or malformed: the io side answers that.
      return false;
    }
    c.buffer.consume(used);
    return true;
  };
  if (parse()) return true;
  if (c.buffer.size() > 0) return false;  // Part of a head: the io side waits for the rest.
  // Waiting holds this worker: not while requests wait for one, nor when half are taken.
  if (workers_.queued() > 0 || workers_.busy() * 2 > options_.config.max_workers) return false;
  pollfd p = {c.fd(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(kWorkerLinger.count())) != 1) return false;
  auto space = c.buffer.prepare(16 << 10);
  ssize_t n = ::recv(c.fd(), space.data(), space.size(), MSG_DONTWAIT);
  if (n <= 0) return false;  // The end, or an error: the io side meets it again and closes.
  c.buffer.commit(static_cast<size_t>(n));
  return parse();
}

bool HttpServer::ServeRequest(Connection& c) {
  const ServerConfig& config = options_.config;
  FdStream stream(c.fd());
  stream.SetIdleTimeout(
      std::chrono::duration_cast<std::chrono::milliseconds>(config.request_timeout));
  auto started = Clock::now();
  HeaderParser& header = *c.header;
  c.requests++;

  auto& head = header.get();
  Request request;
  request.method = std::string(head.method_string());
  request.target = std::string(head.target());
  request.request_id = NewId("req_");
  request.peer = ClientPeer(c.peer, c.address, head, trusted_proxies_);
  for (const auto& field : head) {
    std::string name(field.name_string());
    for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    request.headers[name] = std::string(field.value());
  }
  if (header.content_length()) request.content_length = *header.content_length();
  bool keep_alive = head.keep_alive();
  bool head_only = request.method == "HEAD";
  bool body_unread = !header.is_done();
  if (body_unread) {
    // Beast reads as much as the buffer has room for, and a fresh flat_buffer grows in 512-byte
    // steps: an upload went through in 512-byte reads (and writes) until it had room for 64 KiB.
    c.buffer.reserve(64 << 10);
    stream.MeterBody(config.min_body_rate);
  }

  ChunkedResponse chunked(&stream, request.request_id);
  Result<Response> result = Status::Internal("unhandled");
  bool threw = false;
  bool answer = true;  // False when the client went away mid-body: nobody to answer.
  Status parsed = ParseTarget(request.target, &request.path, &request.query);
  Router::Match match;
  if (parsed.ok()) match = router_->Find(request.method, request.path);
  if (!parsed.ok()) {
    result = parsed;
  } else if (!match.route && !match.allowed.empty()) {
    std::string allow;
    for (const auto& m : match.allowed) allow += (allow.empty() ? "" : ", ") + m;
    Response r = ErrorResponse(Status::InvalidArgument(request.method + " is not allowed on " +
                                                       request.path + "; allowed: " + allow)
                                   .WithReason("method_not_allowed"));
    r.headers.emplace_back("Allow", allow);
    result = std::move(r);
  } else if (!match.route) {
    result =
        Status::NotFound("no route " + request.method + " " + request.path + "; see /openapi.json");
  } else if (Status allowed = Guarded(request, &threw,
                                      [&] { return router_->Authorize(&request, *match.route); });
             !allowed.ok()) {
    result = allowed;  // Before any body is read: a refused upload costs nothing.
  } else if (match.route->streams_body) {
    request.params = std::move(match.params);
    uint64_t limit = options_.max_streamed_body_bytes + (1 << 20);  // + multipart framing
    if (request.content_length && *request.content_length > limit) {
      result =
          Status::ResourceExhausted("the body (" + std::to_string(*request.content_length) +
                                    " bytes) is larger than the file limit of " +
                                    std::to_string(options_.max_streamed_body_bytes) + " bytes")
              .WithReason("payload_too_large");
    } else {
      StreamedBody body(&stream, &c.buffer, std::move(header), limit, config.min_body_rate);
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
      error_code ec;
      http::read(stream, c.buffer, full, ec);
      if (ec == http::error::body_limit) {
        result = Status::ResourceExhausted("the body is larger than " +
                                           std::to_string(config.max_json_body_bytes) + " bytes")
                     .WithReason("payload_too_large");
      } else if (ec == beast::error::timeout) {
        result = BodyFailure(ec, stream, config.min_body_rate);  // 408, then close.
      } else if (ec) {
        answer = false;  // Went away mid-body, or sent a malformed one: close.
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
  bool ok = answer;
  if (!answer) {
    status_code = 0;
  } else if (chunked.begun()) {
    status_code = 200;
    // After a bug mid-stream the stream is cut, not ended: the client must not take it whole.
    ok = !threw && !chunked.failed() && chunked.End().ok();
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
  if (answer) {
    if (options_.on_request) {
      options_.on_request(
          RequestLog{request.method, match.route ? match.route->pattern : "unmatched",
                     request.target, status_code, ms / 1000, request.request_id, request.peer,
                     request.caller.principal, request.caller.project_id});
    }
    LOG_INFO("{}{}{} {} {} {} {:.2f}ms {}", request.peer, request.peer == c.peer ? "" : " via ",
             request.peer == c.peer ? "" : c.peer, request.method, request.target, status_code, ms,
             request.request_id);
  }
  return ok && keep_alive;
}

}  // namespace pycell::server
