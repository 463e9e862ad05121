// Router: the table of routes — method, path pattern ("/v1/files/{id}/content"), the permission
// it needs and handler — and the request and response types handlers speak. Authorize is the one
// place a request's key is checked against its route's permission, before the handler runs (and
// before an upload's body is read). Handlers are functions from a Request to a
// Result<Response>; a non-OK Result becomes the API's error body. Nothing here knows Beast: the
// HTTP server (http_server.cc) translates.
//
// Thread-safety: routes are added before the server starts; Match is then const and may run on
// any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "auth/caller.h"
#include "auth/roles.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace pycell::server {

// A request body read while the handler runs (routes that stream, such as uploads).
class BodyReader {
 public:
  virtual ~BodyReader() = default;
  // Reads up to `size` bytes; 0 at the end of the body. Errors: DeadlineExceeded when the client
  // stalls, InvalidArgument when the body is malformed or ends early, ResourceExhausted past the
  // body limit.
  virtual Result<size_t> Read(char* data, size_t size) = 0;
};

// A response written while the handler runs (Server-Sent Events): Begin sends the head, each
// Write one chunk at once.
class ResponseStream {
 public:
  virtual ~ResponseStream() = default;
  virtual Status Begin(int status,
                       const std::vector<std::pair<std::string, std::string>>& headers) = 0;
  virtual Status Write(std::string_view data) = 0;
  virtual bool begun() const = 0;
};

struct Request {
  std::string method;                          // "GET", "POST", …
  std::string target;                          // As sent: "/v1/files?purpose=input"
  std::string path;                            // Percent-decoded per segment: "/v1/files"
  std::map<std::string, std::string> query;    // Decoded; the last of repeated keys wins.
  std::map<std::string, std::string> params;   // From the pattern: {"id": "file_…"}
  std::map<std::string, std::string> headers;  // Names lower-case.
  std::string body;                            // Buffered routes.
  BodyReader* body_reader = nullptr;           // Streaming routes.
  std::optional<uint64_t> content_length;
  std::string request_id;
  std::string peer;     // "127.0.0.1:51234"
  auth::Caller caller;  // Set by Router::Authorize (empty on public routes).

  // The header's value, or "" when absent. `name` lower-case.
  const std::string& Header(const std::string& name) const;
  // The query parameter, or "".
  const std::string& Query(const std::string& name) const;
};

// A file's bytes [offset, offset + length) as the body.
struct FileBody {
  UniqueFd fd;
  uint64_t offset = 0;
  uint64_t length = 0;
};

struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::optional<FileBody> file;  // Instead of body.
  bool streamed = false;         // The handler wrote it through the ResponseStream.

  // A JSON body (already serialized).
  static Response Json(int status, std::string json);
};

// The error body {"error": {"code", "message"}} and HTTP status for a failed Status.
Response ErrorResponse(const Status& status);
int HttpStatusFor(const Status& status);
std::string ErrorCodeFor(const Status& status);

using Handler = std::function<Result<Response>(Request&, ResponseStream&)>;

struct Route {
  std::string method;
  std::string pattern;  // Segments; "{name}" matches one non-empty segment.
  auth::Permission permission = auth::Permission::kPublic;
  Handler handler;
  bool streams_body = false;  // The handler reads the body itself (uploads).
};

class Router {
 public:
  void Add(Route route);

  // Turns a request's Authorization header into its Caller (set on the request), or the 401/429
  // to answer. Installed once, before the server starts.
  using Authenticate = std::function<Result<auth::Caller>(const Request&)>;
  // Records a refusal of `caller` for lacking `route`'s permission and returns the 403.
  using Deny = std::function<Status(const auth::Caller&, const Route&)>;
  void SetAuthentication(Authenticate authenticate, Deny deny);
  // OK when `route` is public, or the request's key is valid and its role holds the route's
  // permission (then request->caller is set). Object scope (projects, sessions) is the
  // Service's to check.
  Status Authorize(Request* request, const Route& route) const;

  struct Match {
    const Route* route = nullptr;
    std::map<std::string, std::string> params;
    std::vector<std::string> allowed;  // When the path exists but not for this method (405).
  };
  Match Find(const std::string& method, const std::string& path) const;
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
  Authenticate authenticate_;
  Deny deny_;
};

// Splits a request target into decoded path and query (libcurl's URL parser). InvalidArgument
// for a target that is not an origin-form path.
Status ParseTarget(const std::string& target, std::string* path,
                   std::map<std::string, std::string>* query);

}  // namespace pycell::server
