// HttpServer: HTTP/1.1 over TCP with Boost.Beast on Asio. An idle connection costs no thread: it
// is a socket and a coroutine waiting in an io_context; only a request whose head has arrived
// takes a thread, for as long as its handler runs.
//
// Two kinds of threads:
//  - io threads (a few, one io_context): accept; read each request's head with C++20 coroutines
//    (one per connection, on its own strand), under a deadline; refuse connections over the
//    limits with a 503; close idle connections. They never block and never run a handler.
//  - workers (WorkerPool: started on demand up to server.max_workers, ended when idle): once a
//    request's head has arrived, a worker takes the connection and does the rest of that request
//    synchronously, exactly as a thread per connection did: authorize, read the body, run the
//    Router's handler, write the response. Then it hands the connection back to its strand to
//    wait for the next head (keep-alive), or closes it — unless the next request's head is
//    there already or within 10 ms (a busy client's usually is) and no request waits for a
//    worker: then it serves that one too, with no hop between threads.
// Why the worker reads the body and writes the response itself, blocking on the socket (poll with
// deadlines) instead of asking the io side for every buffer: the handlers are synchronous, so the
// worker is held until the body is read and the response written either way; bytes passed through
// the io threads would cost two thread hops per buffer and save nothing. Uploads, downloads,
// Server-Sent Events and long cells therefore stream as before. The hand-over is the ordering:
// while a worker owns a connection no asynchronous operation is pending on it, and the worker
// gives it back by posting the next head's coroutine to the connection's strand.
//
// Limits: the head's size (431), a buffered body's size (413 before the body is read when
// Content-Length says so), a streamed body's size (upload routes); open connections in all
// (max_connections) and from one client address (max_connections_per_address; an IPv6 client by
// its /64; a trusted proxy is not limited per address): past either, the new connection gets a
// well-formed 503 and is closed, costing only the one who is over.
// Deadlines: a new connection's head must arrive within header_timeout; a kept-alive connection
// may wait keep_alive_timeout for the next request to begin, whose head then has header_timeout.
// Each read or write of a body or response must make progress within request_timeout, and a body
// must arrive at min_body_rate bytes/s or more, measured over every 10 s spent waiting for it
// (time the handler spends elsewhere does not count against the client): a slow body is cut off
// (408), with a valid key or without.
//
// The client of a request is its TCP peer, or — when the peer is in server.trusted_proxies — the
// address X-Forwarded-For names (ClientAddress in common/ip_address.h): Request::peer, which
// authentication and the logs use.
//
// An exception that escapes a handler is a bug: the request is answered 500 internal naming its
// request id, the log has the exception under that id, and pycell_internal_errors_total counts
// it (where="http"; "http_io" and "http_worker" for the catches at the top of the io threads and
// the workers). The connection and the server go on.
//
// Shutdown: StopAccepting closes the listener and closes the connections waiting for a head;
// requests in flight go on (their connections close after the response). WaitIdle waits for them,
// with a deadline; Join waits for every connection to close, then ends the threads.
//
// Thread-safety: methods may be called from any thread but the server's own; the Router must
// outlive the server.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/config.h"
#include "common/ip_address.h"
#include "common/mutex.h"
#include "common/status.h"
#include "server/router.h"
#include "server/worker_pool.h"

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
  size_t io_threads = 0;  // 0: one per core, at most 4.
};

class HttpServer {
 public:
  static Result<std::unique_ptr<HttpServer>> Start(HttpServerOptions options, const Router* router);
  ~HttpServer();  // StopAccepting + Join.

  uint16_t port() const { return port_; }
  const std::string& host() const { return host_; }

  void StopAccepting() EXCLUDES(mu_);
  // Waits until no request is being handled, or `timeout` passes. True when idle.
  bool WaitIdle(std::chrono::milliseconds timeout) EXCLUDES(mu_);
  // Waits for every connection to close; after StopAccepting, then ends the io threads and the
  // workers (without it, the server goes on accepting: a test may Join between connections).
  void Join() EXCLUDES(mu_);
  size_t in_flight() const { return in_flight_.load(); }
  size_t connections() const EXCLUDES(mu_);
  size_t worker_threads() const { return workers_.threads(); }

  class Connection;  // http_connection.h

 private:
  struct Io;  // http_server.cc: the io_context, its threads, the acceptor.

  explicit HttpServer(HttpServerOptions options, const Router* router);
  // The parts of http_server.cc that need the server's state; their signatures speak only
  // pycell's types (Beast and Asio stay in the .cc).
  void OnAccepted(std::shared_ptr<Connection> connection);
  void Serve(std::shared_ptr<Connection> connection);  // On a worker: one request.
  bool ServeRequest(Connection& connection);           // True to keep the connection for another.
  // On a worker, after a kept-alive request: true when the next request's whole head is
  // buffered already or arrives within kWorkerLinger (then connection.header is set).
  bool NextHeadNow(Connection& connection);
  void WaitForHead(std::shared_ptr<Connection> connection);  // Back to the io side.
  // Counts a new connection from `limit_key` ("" when not limited per address): nullptr when
  // admitted, else the 503 to send (then nothing was counted).
  const std::string* Admit(const std::string& limit_key) EXCLUDES(mu_);
  void ConnectionClosed(const std::string& limit_key) EXCLUDES(mu_);
  // Registers a connection waiting for its head (StopAccepting closes those); false when the
  // server is stopping.
  bool StartWaiting(Connection* connection, std::weak_ptr<Connection> weak) EXCLUDES(mu_);
  void StopWaiting(Connection* connection) EXCLUDES(mu_);
  bool IsWaiting(Connection* connection) const EXCLUDES(mu_);
  void RequestDone() EXCLUDES(mu_);

  const HttpServerOptions options_;
  const Router* router_;
  std::vector<IpRange> trusted_proxies_;  // server.trusted_proxies, parsed.
  std::string refuse_busy_;               // The 503s, serialized once.
  std::string refuse_per_address_;
  uint16_t port_ = 0;
  std::string host_;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> in_flight_{0};

  mutable Mutex mu_;
  CondVar cv_;
  size_t connections_ GUARDED_BY(mu_) = 0;
  std::unordered_map<std::string, uint32_t> per_address_ GUARDED_BY(mu_);
  std::unordered_map<Connection*, std::weak_ptr<Connection>> waiting_ GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point last_trim_ GUARDED_BY(mu_);  // The last malloc_trim.
  std::chrono::steady_clock::time_point last_refusal_log_ GUARDED_BY(mu_);
  bool joined_ GUARDED_BY(mu_) = false;

  WorkerPool workers_;
  std::unique_ptr<Io> io_;  // Last: destroyed (explicitly, in ~HttpServer) before the rest.
};

}  // namespace pycell::server
