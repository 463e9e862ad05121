#include "server/router.h"

#include <curl/curl.h>

#include <memory>
#include <nlohmann/json.hpp>

namespace pycell::server {
namespace {

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t end = s.find(sep, start);
    parts.push_back(s.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return parts;
}

// Percent-decodes with libcurl; `plus_is_space` for query strings (form encoding).
Result<std::string> Unescape(std::string text, bool plus_is_space) {
  if (plus_is_space) {
    for (char& c : text) {
      if (c == '+') c = ' ';
    }
  }
  int length = 0;
  char* decoded = curl_easy_unescape(nullptr, text.data(), static_cast<int>(text.size()), &length);
  if (!decoded) return Status::InvalidArgument("cannot decode the request target");
  std::string out(decoded, static_cast<size_t>(length));
  curl_free(decoded);
  return out;
}

}  // namespace

const std::string& Request::Header(const std::string& name) const {
  static const std::string kEmpty;
  auto it = headers.find(name);
  return it == headers.end() ? kEmpty : it->second;
}

const std::string& Request::Query(const std::string& name) const {
  static const std::string kEmpty;
  auto it = query.find(name);
  return it == query.end() ? kEmpty : it->second;
}

Response Response::Json(int status, std::string json) {
  Response r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/json");
  r.body = std::move(json);
  return r;
}

int HttpStatusFor(const Status& status) {
  const std::string& reason = status.reason();
  if (reason == "session_expired" || reason == "session_killed" || reason == "session_closed") {
    return 410;
  }
  if (reason == "payload_too_large") return 413;
  if (reason == "insufficient_storage") return 507;
  if (reason == "unsupported_media_type") return 415;
  if (reason == "method_not_allowed") return 405;
  if (reason == "request_timeout") return 408;
  switch (status.code()) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kPermissionDenied:
      return 403;
    case StatusCode::kFailedPrecondition:
      return 409;
    case StatusCode::kResourceExhausted:
      return 429;
    case StatusCode::kDeadlineExceeded:
      return 504;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kInternal:
      return 500;
    case StatusCode::kUnauthenticated:
      return 401;
  }
  return 500;
}

std::string ErrorCodeFor(const Status& status) {
  if (!status.reason().empty()) return status.reason();
  switch (status.code()) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kInvalidArgument:
      return "invalid_request";
    case StatusCode::kNotFound:
      return "not_found";
    case StatusCode::kPermissionDenied:
      return "permission_denied";
    case StatusCode::kFailedPrecondition:
      return "conflict";
    case StatusCode::kResourceExhausted:
      return "limit_reached";
    case StatusCode::kDeadlineExceeded:
      return "timeout";
    case StatusCode::kUnavailable:
      return "unavailable";
    case StatusCode::kInternal:
      return "internal";
    case StatusCode::kUnauthenticated:
      return "unauthenticated";
  }
  return "internal";
}

Response ErrorResponse(const Status& status) {
  nlohmann::json body = {
      {"error", {{"code", ErrorCodeFor(status)}, {"message", status.message()}}}};
  Response r = Response::Json(HttpStatusFor(status),
                              body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  if (status.retry_after_s() > 0) {
    r.headers.emplace_back("Retry-After", std::to_string(status.retry_after_s()));
  } else if (r.status == 503) {
    r.headers.emplace_back("Retry-After", "1");
  }
  if (r.status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"pycell\"");
  return r;
}

void Router::Add(Route route) { routes_.push_back(std::move(route)); }

void Router::SetAuthentication(Authenticate authenticate, Deny deny) {
  authenticate_ = std::move(authenticate);
  deny_ = std::move(deny);
}

Status Router::Authorize(Request* request, const Route& route) const {
  if (route.permission == auth::Permission::kPublic) return Status::Ok();
  // A router without authentication refuses every non-public route: failing closed.
  if (!authenticate_ || !deny_) return Status::Unauthenticated("authentication is not set up");
  ASSIGN_OR_RETURN(request->caller, authenticate_(*request));
  if (!auth::RoleAllows(request->caller.role, route.permission)) {
    return deny_(request->caller, route);
  }
  return Status::Ok();
}

Router::Match Router::Find(const std::string& method, const std::string& path) const {
  Match match;
  std::vector<std::string> segments = Split(path, '/');
  for (const Route& route : routes_) {
    std::vector<std::string> pattern = Split(route.pattern, '/');
    if (pattern.size() != segments.size()) continue;
    std::map<std::string, std::string> params;
    bool ok = true;
    for (size_t i = 0; i < pattern.size() && ok; ++i) {
      const std::string& p = pattern[i];
      if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
        if (segments[i].empty())
          ok = false;
        else
          params[p.substr(1, p.size() - 2)] = segments[i];
      } else {
        ok = p == segments[i];
      }
    }
    if (!ok) continue;
    if (route.method == method || (method == "HEAD" && route.method == "GET")) {
      match.route = &route;
      match.params = std::move(params);
      return match;
    }
    match.allowed.push_back(route.method);
  }
  return match;
}

Status ParseTarget(const std::string& target, std::string* path,
                   std::map<std::string, std::string>* query) {
  if (target.empty() || target[0] != '/') {
    return Status::InvalidArgument("the request target must be a path starting with '/'");
  }
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> url(curl_url(), curl_url_cleanup);
  std::string full = "http://localhost" + target;
  if (curl_url_set(url.get(), CURLUPART_URL, full.c_str(), CURLU_PATH_AS_IS) != CURLUE_OK) {
    return Status::InvalidArgument("the request target is not a valid URL path");
  }
  char* raw_path = nullptr;
  if (curl_url_get(url.get(), CURLUPART_PATH, &raw_path, 0) != CURLUE_OK) {
    return Status::InvalidArgument("the request target has no path");
  }
  std::string encoded_path(raw_path);
  curl_free(raw_path);
  path->clear();
  std::vector<std::string> segments = Split(encoded_path, '/');
  for (size_t i = 0; i < segments.size(); ++i) {
    ASSIGN_OR_RETURN(std::string segment, Unescape(segments[i], false));
    if (segment.find('/') != std::string::npos || segment.find('\0') != std::string::npos) {
      return Status::InvalidArgument("a path segment may not encode '/' or NUL");
    }
    if (i > 0) *path += "/";
    *path += segment;
  }
  query->clear();
  char* raw_query = nullptr;
  if (curl_url_get(url.get(), CURLUPART_QUERY, &raw_query, 0) == CURLUE_OK) {
    std::string q(raw_query);
    curl_free(raw_query);
    for (const std::string& pair : Split(q, '&')) {
      if (pair.empty()) continue;
      size_t eq = pair.find('=');
      ASSIGN_OR_RETURN(std::string key, Unescape(pair.substr(0, eq), true));
      std::string value;
      if (eq != std::string::npos) {
        ASSIGN_OR_RETURN(value, Unescape(pair.substr(eq + 1), true));
      }
      (*query)[key] = value;
    }
  }
  return Status::Ok();
}

}  // namespace pycell::server
