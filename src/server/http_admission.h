// How HttpServer admits a connection and names its client: the 503 a refused connection gets
// (RefusalBytes), whether a peer is a trusted proxy and so not limited per address (Trusted), the
// client a trusted proxy's X-Forwarded-For names (ClientPeer), and the descriptor limit that
// server.max_connections needs (RaiseDescriptorLimit). The counting itself is HttpServer::Admit's.
//
// Internal to the server library (pycell_server): included only by its .cc files, which is why
// Beast's types may appear here; public headers such as http_server.h speak pycell's types only.
//
// Thread-safety: plain functions of their arguments (RaiseDescriptorLimit changes the process's
// RLIMIT_NOFILE; the server calls it once, at Start).
#pragma once

#include <boost/beast/http/fields.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "common/ip_address.h"

namespace pycell::server {

// A whole 503 response (head and body) for a connection refused before any request was read,
// serialized by Beast so that its Content-Length is the body's.
std::string RefusalBytes(const std::string& message);

// The client of a request from TCP peer `peer` ("10.0.0.1:5000", "[::1]:5000"): the peer itself,
// or, from a trusted proxy, the address X-Forwarded-For names (ClientAddress; without a port).
std::string ClientPeer(const std::string& peer, const IpAddress& address,
                       const boost::beast::http::fields& head, const std::vector<IpRange>& trusted);

// Whether `address` is in server.trusted_proxies: such a peer is not limited per address.
bool Trusted(const IpAddress& address, const std::vector<IpRange>& trusted);

// Raises the soft limit on open descriptors to the hard one: each connection is one. Says so when
// even that is less than max_connections needs.
void RaiseDescriptorLimit(uint32_t max_connections);

}  // namespace pycell::server
