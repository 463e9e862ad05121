#include "server/http_admission.h"

#include <sys/resource.h>

#include <algorithm>
#include <boost/beast/http.hpp>
#include <sstream>

#include "common/logging.h"
#include "server/http_stream.h"
#include "server/router.h"

namespace pycell::server {

std::string RefusalBytes(const std::string& message) {
  Response r = ErrorResponse(Status::Unavailable(message));  // With Retry-After: 1.
  auto res = ToBeast(r, /*keep_alive=*/false, "");
  std::ostringstream out;
  out << res;
  return out.str();
}

std::string ClientPeer(const std::string& peer, const IpAddress& address,
                       const boost::beast::http::fields& head,
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

}  // namespace pycell::server
