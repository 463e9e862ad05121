// HttpServer: HTTP/1.1 over TCP with Boost.Beast's parser and serializer, one thread per
// connection (requests on a connection are sequential anyway, a cell may run for minutes, and a
// thread that reads and writes in place has no hop between threads on the round trip — what the
// 1 ms target needs). Every read and write has a deadline: a client that stalls is cut off, and
// an idle keep-alive connection is closed after keep_alive_timeout.
//
// Limits: header size, buffered body size (413 before the body is read when Content-Length says
// so), streamed body size for upload routes, number of connections (503 past it).
//
// Shutdown: StopAccepting closes the listener and wakes idle connections (closed); requests in
// flight go on. WaitIdle waits for them, with a deadline; Join waits for every thread.
//
// Thread-safety: methods may be called from any thread; the Router must outlive the server.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/config.h"
#include "common/ip_address.h"
#include "common/status.h"
#include "common/unique_fd.h"
#include "server/router.h"

namespace pycell::server {

// One answered request, as the access log and the metrics see it.
struct RequestLog {
  std::string method;
  std::string route;   // The route's pattern ("/v1/sessions/{id}"), or "unmatched".
  std::string target;  // As sent, query included.
  int status = 0;
  double seconds = 0;
  std::string request_id;
  // The client: the TCP peer ("10.0.0.1:5000", "[::1]:5000"), or the address a trusted proxy's
  // X-Forwarded-For names ("198.51.100.7", without a port).
  std::string peer;
  std::string principal;  // "" when no key was checked (public routes, refusals).
  std::string project_id;
};

struct HttpServerOptions {
  ServerConfig config;
  uint64_t max_streamed_body_bytes = 512ull << 20;  // Upload routes.
  // Called once per answered request (metrics, the access log of diagnostic settings).
  std::function<void(const RequestLog&)> on_request;
};

class HttpServer {
 public:
  static Result<std::unique_ptr<HttpServer>> Start(HttpServerOptions options, const Router* router);
  ~HttpServer();  // StopAccepting + Join.

  uint16_t port() const { return port_; }
  const std::string& host() const { return host_; }

  void StopAccepting();
  // Waits until no request is being handled, or `timeout` passes. True when idle.
  bool WaitIdle(std::chrono::milliseconds timeout);
  // Waits for every connection thread to end.
  void Join();
  size_t in_flight() const { return in_flight_.load(); }

  class Connection;  // http_server.cc

 private:
  HttpServer(HttpServerOptions options, const Router* router)
      : options_(std::move(options)), router_(router) {}
  void AcceptLoop();
  void Serve(int fd, std::string peer);
  void RequestDone();

  const HttpServerOptions options_;
  const Router* router_;
  std::vector<IpRange> trusted_proxies_;  // server.trusted_proxies, parsed.
  UniqueFd listener_;
  UniqueFd stop_;  // eventfd, readable once stopping.
  uint16_t port_ = 0;
  std::string host_;
  std::thread accept_thread_;
  std::atomic<bool> stopping_{false};

  std::mutex mu_;
  std::condition_variable cv_;
  size_t connections_ = 0;  // GUARDED_BY(mu_)
  std::chrono::steady_clock::time_point last_trim_;  // GUARDED_BY(mu_): the last malloc_trim
  std::atomic<size_t> in_flight_{0};
};

}  // namespace pycell::server
