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
#include <sys/socket.h>

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
#include <thread>
#include <utility>

#include "common/ids.h"
#include "common/logging.h"
#include "metrics/metrics.h"
#include "server/http_admission.h"
#include "server/http_connection.h"
#include "server/http_stream.h"

namespace pycell::server {
namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

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
