// HttpServer::Connection (declared in http_server.h): one accepted connection, handed between
// the io side and the worker serving its request.
//
// Internal to the server library (pycell_server): included only by its .cc files (http_server.cc),
// which is why Asio's and Beast's types may appear here; http_server.h only declares the class.
//
// Ownership and thread-safety: shared by the coroutine waiting for its head and a request's
// worker, never both at once (below); the owner of the moment is the only one to use it.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <optional>
#include <string>
#include <utility>

#include "common/ip_address.h"
#include "common/unique_fd.h"
#include "server/http_server.h"
#include "server/http_stream.h"

namespace pycell::server {

// One accepted connection. Shared by the coroutine waiting for its head and, while a request
// runs, by that request's worker — never both at once (see http_server.h). While the io side owns
// it, its socket is a tcp_stream registered with the io_context's reactor; a worker gets the bare
// descriptor, taken out of the reactor (Release) — else every request arriving on a busy
// connection would wake an io thread for nothing (edge-triggered epoll reports it, with no
// operation pending) — and the io side registers it again when it takes it back (Stream). Closing
// the last reference closes the socket and uncounts the connection.
class HttpServer::Connection {
 public:
  using tcp = boost::asio::ip::tcp;

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
  boost::beast::tcp_stream& Stream() {
    if (!stream_) {
      tcp::socket socket(strand);
      boost::system::error_code ec;
      socket.assign(protocol_, fd_.Release(), ec);
      stream_.emplace(std::move(socket));
    }
    return *stream_;
  }
  // Hands the descriptor to a worker: out of the reactor, no operation pending.
  void Release() {
    if (!stream_) return;
    boost::system::error_code ec;
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
      boost::system::error_code ec;
      stream_->socket().close(ec);
    }
    fd_.Reset();
  }

  const boost::asio::any_io_executor strand;  // The connection's strand, for its whole life.
  boost::beast::flat_buffer buffer;
  std::optional<HeaderParser> header;  // The head of the request being served.
  const IpAddress address;             // The TCP peer's.
  const std::string peer;              // "10.0.0.1:5000", "[::1]:5000"
  const std::string limit_key;         // Counted by, per address; "" for a trusted proxy.
  int requests = 0;                    // Served on this connection so far.

 private:
  HttpServer* server_;
  const tcp protocol_;
  std::optional<boost::beast::tcp_stream> stream_;  // While the io side owns it.
  UniqueFd fd_;                                     // While a worker owns it.
  bool closed_ = false;
};

}  // namespace pycell::server
