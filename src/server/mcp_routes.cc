#include "server/mcp_routes.h"

#include <curl/curl.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "common/build_info.h"
#include "common/mutex.h"
#include "mcp/mcp_server.h"
#include "mcp/mcp_sessions.h"
#include "mcp/mcp_tools.h"

namespace pycell::server {
namespace {

using mcp::Json;
using service::Service;

constexpr int kSessionNotFound = -32001;  // With HTTP 404: the client must initialize again.

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

Response JsonRpc(int status, const Json& message) { return Response::Json(status, Dump(message)); }

// The MCP endpoint's state: the protocol core with pycell's tools, and the open MCP sessions.
struct McpEndpoint {
  explicit McpEndpoint(Service* service)
      : server(
            mcp::ServerInfo{"pycell", PYCELL_VERSION,
                            "pycell runs Python in sandboxed, stateful sessions. Call "
                            "execute_python with code; reuse the session_id it returns to "
                            "keep variables and files. Files live in /mnt/data."},
            mcp::PycellTools(service),
            // The router's check for a route (Router::Authorize), for each tool's permission:
            // the role must hold it, and a refusal is audited as auth.denied.
            [service](const auth::Caller& caller, auth::Permission permission,
                      const std::string& what) -> Status {
              if (auth::RoleAllows(caller.role, permission)) return Status::Ok();
              return service->authenticator().Deny(caller, permission, what);
            },
            mcp::PycellResource, mcp::PycellResourceTemplates()) {}
  mcp::McpServer server;
  mcp::McpSessions sessions;
};

// The transport's guard against DNS rebinding (MCP, "Streamable HTTP", security warning): a
// request that carries an Origin (a browser's) must come from this server's own host or from
// loopback. Clients outside browsers send none.
Status CheckOrigin(const Request& request) {
  const std::string& origin = request.Header("origin");
  if (origin.empty()) return Status::Ok();
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> url(curl_url(), curl_url_cleanup);
  char* host = nullptr;
  char* port = nullptr;
  bool parsed = url && curl_url_set(url.get(), CURLUPART_URL, origin.c_str(), 0) == CURLUE_OK &&
                curl_url_get(url.get(), CURLUPART_HOST, &host, 0) == CURLUE_OK;
  std::string origin_host = parsed && host ? host : "";
  std::string origin_port;
  if (parsed && curl_url_get(url.get(), CURLUPART_PORT, &port, 0) == CURLUE_OK && port) {
    origin_port = port;
  }
  curl_free(host);
  curl_free(port);
  std::string authority = origin_host + (origin_port.empty() ? "" : ":" + origin_port);
  bool loopback = origin_host == "localhost" || origin_host == "127.0.0.1" ||
                  origin_host == "[::1]" || origin_host == "::1";
  if (parsed &&
      (loopback || authority == request.Header("host") || origin_host == request.Header("host"))) {
    return Status::Ok();
  }
  return Status::PermissionDenied("Origin " + origin +
                                  " may not call /mcp: only this server's own origin and "
                                  "loopback are allowed (DNS rebinding guard)");
}

Result<Response> Post(McpEndpoint& endpoint, Request& request, ResponseStream& stream) {
  RETURN_IF_ERROR(CheckOrigin(request));
  const std::string& version = request.Header("mcp-protocol-version");
  if (!version.empty() && !mcp::IsSupportedProtocolVersion(version)) {
    std::string supported;
    for (const auto& v : mcp::SupportedProtocolVersions())
      supported += (supported.empty() ? "" : ", ") + v;
    return JsonRpc(400, mcp::ErrorReply(nullptr, mcp::kInvalidRequest,
                                        "Unsupported MCP-Protocol-Version " + version +
                                            "; supported: " + supported));
  }
  const std::string& session_id = request.Header("mcp-session-id");
  if (!session_id.empty()) {
    if (Status s = endpoint.sessions.Use(session_id, request.caller); !s.ok()) {
      return JsonRpc(404, mcp::ErrorReply(nullptr, kSessionNotFound, s.message()));
    }
  }
  mcp::Parsed parsed = mcp::ParseMessage(request.body);
  if (!parsed.message) return JsonRpc(400, parsed.error);
  const mcp::Message& message = *parsed.message;
  mcp::CallContext context{request.caller, session_id, {}};
  if (message.kind != mcp::Message::Kind::kRequest) {
    endpoint.server.HandleNotification(message, context);
    Response accepted;
    accepted.status = 202;
    return accepted;
  }

  bool event_stream = message.method == "tools/call" &&
                      request.Header("accept").find("text/event-stream") != std::string::npos;
  if (!event_stream) {
    Json reply = endpoint.server.HandleRequest(message, context);
    if (reply.is_null())
      reply = mcp::ErrorReply(message.id, mcp::kRequestCancelled, "Request cancelled");
    Response response = JsonRpc(200, reply);
    if (message.method == "initialize" && reply.contains("result")) {
      std::string id = endpoint.sessions.Open(request.caller, reply["result"]["protocolVersion"]);
      response.headers.emplace_back("Mcp-Session-Id", id);
    }
    return response;
  }

  // Server-Sent Events: the head at once (so clients see the call is taken), progress
  // notifications as the tool reports, then the reply; no reply when the call was cancelled.
  std::vector<std::pair<std::string, std::string>> headers = {{"Content-Type", "text/event-stream"},
                                                              {"Cache-Control", "no-store"}};
  if (!session_id.empty()) headers.emplace_back("Mcp-Session-Id", session_id);
  Mutex write_mu;  // Guards `stream`: progress notifications come from other threads.
  auto send = [&](const Json& event) {
    MutexLock lock(write_mu);
    if (!stream.begun() && !stream.Begin(200, headers).ok()) return;
    (void)stream.Write("event: message\ndata: " + Dump(event) + "\n\n");
  };
  {
    MutexLock lock(write_mu);
    (void)stream.Begin(200, headers);
  }
  context.notify = send;
  Json reply = endpoint.server.HandleRequest(message, context);
  if (!reply.is_null()) send(reply);
  Response done;
  done.streamed = true;
  return done;
}

Result<Response> Delete(McpEndpoint& endpoint, const Request& request) {
  RETURN_IF_ERROR(CheckOrigin(request));
  const std::string& session_id = request.Header("mcp-session-id");
  if (session_id.empty()) {
    return Status::InvalidArgument(
        "DELETE /mcp ends the MCP session named by the Mcp-Session-Id header");
  }
  RETURN_IF_ERROR(endpoint.sessions.End(session_id, request.caller));
  Response ended;
  ended.status = 204;
  return ended;
}

}  // namespace

void AddMcpRoutes(Router* router, Service* service) {
  auto endpoint = std::make_shared<McpEndpoint>(service);
  using P = auth::Permission;
  router->Add(
      Route{"POST", "/mcp", P::kWhoAmI,
            [endpoint](Request& r, ResponseStream& stream) { return Post(*endpoint, r, stream); },
            false});
  router->Add(Route{"DELETE", "/mcp", P::kWhoAmI,
                    [endpoint](Request& r, ResponseStream&) { return Delete(*endpoint, r); },
                    false});
}

}  // namespace pycell::server
