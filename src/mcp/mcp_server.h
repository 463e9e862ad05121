// McpServer: the protocol core of pycell's Model Context Protocol server (docs/mcp.md) — one
// JSON-RPC 2.0 message in, its reply out. Every method is in one table (mcp_server.cc:
// initialize, ping, tools/list, tools/call, notifications/initialized, notifications/cancelled)
// and every tool in another (the Tool list it is built with; pycell's are in mcp_tools.h). It
// knows no transport: the Streamable HTTP binding (server/mcp_routes.cc) hands it one POST body
// at a time and sends what it answers, and `pycell mcp` bridges stdio to that binding.
//
// Failures become protocol replies, never exceptions that escape: a body that is not JSON is a
// Parse error (-32700), a batch or a malformed message an Invalid Request (-32600), an unknown
// method -32601, params of the wrong shape -32602. A tool's own failure (bad arguments, a
// refused permission, a session that ended) is a tool result with isError: true and the reason
// in its text, so that a model can read it and correct itself.
//
// Progress and cancellation: a tools/call whose params carry _meta.progressToken gets
// notifications/progress through CallContext::notify once a second while it runs, and whenever
// the tool reports something (output of a cell). notifications/cancelled for a running call
// runs what the tool registered with ToolContext::OnCancel (interrupting the cell); a cancelled
// call gets no reply (HandleRequest returns null), as the specification asks.
//
// Thread-safety: every method may be called from any thread, for many calls at once.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/caller.h"
#include "auth/roles.h"
#include "common/mutex.h"
#include "common/status.h"

namespace pycell::mcp {

using Json = nlohmann::json;

// JSON-RPC 2.0 error codes (and MCP's use of them).
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;
inline constexpr int kRequestCancelled = -32800;
inline constexpr int kResourceNotFound = -32002;  // MCP, "Resources": an unknown URI.

// The protocol revisions this server speaks, newest first; initialize answers the client's when
// it is one of them, else the newest.
const std::vector<std::string>& SupportedProtocolVersions();
bool IsSupportedProtocolVersion(std::string_view version);

// A JSON-RPC error response to `id` (null when unknown).
Json ErrorReply(const Json& id, int code, const std::string& message);

// One incoming message, checked against JSON-RPC 2.0's shapes.
struct Message {
  enum class Kind { kRequest, kNotification, kResponse };
  Kind kind = Kind::kRequest;
  Json id;             // Requests and responses: a string or an integer.
  std::string method;  // Requests and notifications.
  Json params;         // An object, or null when absent.
};

// Parses one transport message (one POST body, one stdio line). Either `message` is set, or
// `error` holds the JSON-RPC error reply to send (Parse error, Invalid Request — a batch is one:
// MCP since 2025-06-18 has no batches).
struct Parsed {
  std::optional<Message> message;
  Json error;
};
Parsed ParseMessage(std::string_view text);

// What a running tool may use besides its arguments.
class ToolContext {
 public:
  virtual ~ToolContext() = default;
  virtual const auth::Caller& caller() const = 0;
  // OK when the caller's role holds `permission`; otherwise the refusal (audited, as a REST
  // route's), which the tool returns as its error.
  virtual Status Require(auth::Permission permission) = 0;
  // Reports that something happened (a chunk of output): a progress notification when the
  // client asked for them, else nothing.
  virtual void Progress(const std::string& message) = 0;
  // What cancelling this call does; run at once when it was cancelled already.
  virtual void OnCancel(std::function<void()> cancel) = 0;
};

// A tool's answer: `content` blocks for the model, `structured` matching its output schema.
// A non-OK Result becomes a result with isError: true and the message as text.
struct ToolResult {
  Json content = Json::array();
  Json structured;        // An object (or null: none).
  bool is_error = false;  // The tool ran but what it ran failed (a cell that raised).
};
using ToolHandler = std::function<Result<ToolResult>(const Json& arguments, ToolContext& context)>;

struct Tool {
  std::string name;
  std::string title;
  std::string description;
  Json input_schema;   // JSON Schema of the arguments (an object schema).
  Json output_schema;  // JSON Schema of structuredContent, or null.
  ToolHandler handler;
};

// Checks `caller` against `permission` for `what` (e.g. "MCP tools/call execute_python"); the
// HTTP binding passes the same check the router makes for REST routes.
using Authorize = std::function<Status(const auth::Caller& caller, auth::Permission permission,
                                       const std::string& what)>;

// Where one incoming message came from, and how to reach its client while it is handled.
struct CallContext {
  auth::Caller caller;
  // Which client conversation: the MCP session id, or "" (stateless clients, stdio bridge).
  // Together with the caller's key it scopes request ids for cancellation.
  std::string scope;
  // Sends a notification to the client now (an SSE event); empty when the reply cannot
  // stream (then no progress is sent).
  std::function<void(const Json& notification)> notify;
};

// Resources are read through a tool: a URI names a tool call (e.g. pycell://files/{id} is
// download_file {file_id}), whose embedded resource is the content, with the tool's permission
// checks. NotFound for a URI the server does not serve.
struct ResourceCall {
  std::string tool;
  Json arguments;
};
using ResolveResource = std::function<Result<ResourceCall>(const std::string& uri)>;

struct ServerInfo {
  std::string name = "pycell";
  std::string version;
  std::string instructions;
};

class McpServer {
 public:
  // With `resolve`, the server offers resources (resources/read, resources/list,
  // resources/templates/list with `resource_templates`); without, it has none.
  McpServer(ServerInfo info, std::vector<Tool> tools, Authorize authorize,
            ResolveResource resolve = nullptr, Json resource_templates = Json::array());

  // The reply to a request (a result or an error), or null when the request was cancelled.
  Json HandleRequest(const Message& request, const CallContext& context);
  // Acts on a notification (or a response, which this server never asks for: ignored).
  void HandleNotification(const Message& message, const CallContext& context);

  const std::vector<Tool>& tools() const { return tools_; }

 private:
  struct Running;  // A tools/call in flight (cancellation state); mcp_server.cc.
  using MethodFn = Result<Json> (McpServer::*)(const Message&, const CallContext&);

  Result<Json> Initialize(const Message& request, const CallContext& context);
  Result<Json> Ping(const Message& request, const CallContext& context);
  Result<Json> ListTools(const Message& request, const CallContext& context);
  Result<Json> CallTool(const Message& request, const CallContext& context);
  Result<Json> ReadResource(const Message& request, const CallContext& context);
  Result<Json> ListResources(const Message& request, const CallContext& context);
  Result<Json> ListResourceTemplates(const Message& request, const CallContext& context);
  void Cancelled(const Message& notification, const CallContext& context);

  static std::string RunningKey(const CallContext& context, const Json& id);

  const ServerInfo info_;
  const std::vector<Tool> tools_;
  const Authorize authorize_;
  const ResolveResource resolve_;
  const Json resource_templates_;
  const std::map<std::string, MethodFn> methods_;
  Mutex mu_;
  std::map<std::string, std::shared_ptr<Running>> running_ GUARDED_BY(mu_);
};

}  // namespace pycell::mcp
