#include "mcp/mcp_server.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "common/json_reader.h"

namespace pycell::mcp {
namespace {

constexpr std::chrono::seconds kProgressInterval{1};

Json Notification(const std::string& method, Json params) {
  return {{"jsonrpc", "2.0"}, {"method", method}, {"params", std::move(params)}};
}

bool IsValidId(const Json& id) { return id.is_string() || id.is_number_integer(); }

// A failed tool call as the tool result a model reads.
Json ToolError(const Status& status) {
  std::string text = status.message();
  if (!status.reason().empty()) text += " [" + status.reason() + "]";
  return {{"content", Json::array({{{"type", "text"}, {"text", text}}})}, {"isError", true}};
}

}  // namespace

const std::vector<std::string>& SupportedProtocolVersions() {
  static const std::vector<std::string> kVersions = {"2025-11-25", "2025-06-18", "2025-03-26"};
  return kVersions;
}

bool IsSupportedProtocolVersion(std::string_view version) {
  const auto& versions = SupportedProtocolVersions();
  return std::find(versions.begin(), versions.end(), version) != versions.end();
}

Json ErrorReply(const Json& id, int code, const std::string& message) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"error", {{"code", code}, {"message", message}}}};
}

Parsed ParseMessage(std::string_view text) {
  Parsed parsed;
  // Bounded before anything recursive sees it: a body nested 100 000 deep is an error reply.
  auto bounded = ParseUntrustedJson(text, JsonLimits{64u << 20, 32, 1u << 20});
  if (!bounded.ok()) {
    parsed.error = ErrorReply(
        nullptr, kParseError,
        "Parse error: the message is not usable JSON (" + bounded.status().message() + ")");
    return parsed;
  }
  Json j = std::move(*bounded);
  if (j.is_array()) {
    parsed.error = ErrorReply(nullptr, kInvalidRequest,
                              "Invalid Request: JSON-RPC batches are not supported (MCP removed "
                              "them in 2025-06-18); send one message per request");
    return parsed;
  }
  if (!j.is_object()) {
    parsed.error =
        ErrorReply(nullptr, kInvalidRequest, "Invalid Request: a message is a JSON object");
    return parsed;
  }
  Json id = j.contains("id") && IsValidId(j["id"]) ? j["id"] : Json(nullptr);
  auto invalid = [&](const std::string& why) {
    parsed.error = ErrorReply(id, kInvalidRequest, "Invalid Request: " + why);
    return parsed;
  };
  if (j.value("jsonrpc", Json()) != "2.0") return invalid("\"jsonrpc\" must be \"2.0\"");
  if (j.contains("id") && !IsValidId(j["id"])) {
    return invalid("\"id\" must be a string or an integer");
  }
  Message message;
  if (j.contains("method")) {
    if (!j["method"].is_string()) return invalid("\"method\" must be a string");
    message.method = j["method"].get<std::string>();
    message.kind = j.contains("id") ? Message::Kind::kRequest : Message::Kind::kNotification;
    if (j.contains("params") && !j["params"].is_null()) {
      if (!j["params"].is_object()) {
        parsed.error =
            ErrorReply(id, kInvalidParams, "Invalid params: \"params\" must be an object");
        return parsed;
      }
      message.params = j["params"];
    }
  } else if (j.contains("id") && (j.contains("result") || j.contains("error"))) {
    message.kind = Message::Kind::kResponse;
  } else {
    return invalid(
        "a message needs a \"method\" (request, notification) or a \"result\"/\"error\" "
        "with an \"id\" (response)");
  }
  message.id = id;
  parsed.message = std::move(message);
  return parsed;
}

// --- a tools/call in flight -----------------------------------------------------------------

struct McpServer::Running {
  Mutex mu;
  bool cancelled GUARDED_BY(mu) = false;
  std::function<void()> on_cancel GUARDED_BY(mu);
};

namespace {

class CallToolContext : public ToolContext {
 public:
  CallToolContext(const CallContext& call, const Authorize& authorize, std::string tool,
                  Json progress_token, std::function<void(std::function<void()>)> on_cancel)
      : call_(call),
        authorize_(authorize),
        tool_(std::move(tool)),
        progress_token_(std::move(progress_token)),
        on_cancel_(std::move(on_cancel)),
        started_(std::chrono::steady_clock::now()) {}

  const auth::Caller& caller() const override { return call_.caller; }
  Status Require(auth::Permission permission) override {
    return authorize_(call_.caller, permission, "MCP tools/call " + tool_);
  }
  void Progress(const std::string& message) override {
    if (progress_token_.is_null() || !call_.notify) return;
    MutexLock lock(mu_);
    // Progress must increase with every notification: seconds since the call began.
    double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    last_progress_ = std::max(elapsed, last_progress_ + 0.001);
    Json params = {{"progressToken", progress_token_}, {"progress", last_progress_}};
    if (!message.empty()) params["message"] = message;
    call_.notify(Notification("notifications/progress", std::move(params)));
  }
  void OnCancel(std::function<void()> cancel) override { on_cancel_(std::move(cancel)); }
  bool wants_progress() const { return !progress_token_.is_null() && call_.notify != nullptr; }
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  }

 private:
  const CallContext& call_;
  const Authorize& authorize_;
  const std::string tool_;
  const Json progress_token_;
  std::function<void(std::function<void()>)> on_cancel_;
  const std::chrono::steady_clock::time_point started_;
  Mutex mu_;
  double last_progress_ GUARDED_BY(mu_) = 0;
};

// Sends a progress notification every kProgressInterval until destroyed, so that clients with
// request timeouts that progress resets keep waiting for a long cell.
class ProgressTicker {
 public:
  explicit ProgressTicker(CallToolContext* context) : context_(context) {
    if (!context->wants_progress()) return;
    thread_ = std::thread([this] {
      MutexLock lock(mu_);
      while (!cv_.WaitFor(mu_, kProgressInterval, [this]() REQUIRES(mu_) { return done_; })) {
        lock.Unlock();
        context_->Progress("running, " + std::to_string(static_cast<int>(context_->seconds())) +
                           " s");
        lock.Lock();
      }
    });
  }
  ~ProgressTicker() {
    if (!thread_.joinable()) return;
    {
      MutexLock lock(mu_);
      done_ = true;
    }
    cv_.NotifyAll();
    thread_.join();
  }

 private:
  CallToolContext* context_;
  Mutex mu_;
  CondVar cv_;
  bool done_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace

// --- the method table -----------------------------------------------------------------------

McpServer::McpServer(ServerInfo info, std::vector<Tool> tools, Authorize authorize,
                     ResolveResource resolve, Json resource_templates)
    : info_(std::move(info)),
      tools_(std::move(tools)),
      authorize_(std::move(authorize)),
      resolve_(std::move(resolve)),
      resource_templates_(std::move(resource_templates)),
      methods_([&] {
        std::map<std::string, MethodFn> methods = {
            {"initialize", &McpServer::Initialize},
            {"ping", &McpServer::Ping},
            {"tools/list", &McpServer::ListTools},
            {"tools/call", &McpServer::CallTool},
        };
        if (resolve_) {
          methods["resources/read"] = &McpServer::ReadResource;
          methods["resources/list"] = &McpServer::ListResources;
          methods["resources/templates/list"] = &McpServer::ListResourceTemplates;
        }
        return methods;
      }()) {}

Json McpServer::HandleRequest(const Message& request, const CallContext& context) {
  auto method = methods_.find(request.method);
  if (method == methods_.end()) {
    return ErrorReply(request.id, kMethodNotFound, "Method not found: " + request.method);
  }
  Result<Json> result = [&]() -> Result<Json> {
    try {
      return (this->*(method->second))(request, context);
    } catch (const std::exception& e) {
      // A bug (a JSON type error in a handler); the client gets an error, the server lives on.
      return Status::Internal(std::string("internal error: ") + e.what());
    }
  }();
  if (!result.ok()) {
    int code = result.status().reason() == "resource_not_found" ? kResourceNotFound
               : result.status().IsInvalidArgument() || result.status().IsNotFound()
                   ? kInvalidParams
                   : kInternalError;
    return ErrorReply(request.id, code, result.status().message());
  }
  if (result->is_null()) return nullptr;  // Cancelled: no reply.
  return {{"jsonrpc", "2.0"}, {"id", request.id}, {"result", std::move(*result)}};
}

void McpServer::HandleNotification(const Message& message, const CallContext& context) {
  if (message.kind != Message::Kind::kNotification) return;
  if (message.method == "notifications/cancelled") Cancelled(message, context);
  // notifications/initialized and any other notification need nothing from this server.
}

Result<Json> McpServer::Initialize(const Message& request, const CallContext&) {
  const Json& params = request.params;
  if (!params.is_object() || !params.contains("protocolVersion") ||
      !params["protocolVersion"].is_string()) {
    return Status::InvalidArgument(
        "Invalid params: initialize needs params.protocolVersion (a string)");
  }
  std::string asked = params["protocolVersion"].get<std::string>();
  std::string version =
      IsSupportedProtocolVersion(asked) ? asked : SupportedProtocolVersions().front();
  Json capabilities = {{"tools", {{"listChanged", false}}}};
  if (resolve_) capabilities["resources"] = {{"listChanged", false}, {"subscribe", false}};
  Json result = {{"protocolVersion", version},
                 {"capabilities", std::move(capabilities)},
                 {"serverInfo", {{"name", info_.name}, {"version", info_.version}}}};
  if (!info_.instructions.empty()) result["instructions"] = info_.instructions;
  return result;
}

Result<Json> McpServer::Ping(const Message&, const CallContext&) { return Json::object(); }

Result<Json> McpServer::ListTools(const Message&, const CallContext&) {
  Json list = Json::array();
  for (const Tool& tool : tools_) {
    Json t = {
        {"name", tool.name}, {"description", tool.description}, {"inputSchema", tool.input_schema}};
    if (!tool.title.empty()) t["title"] = tool.title;
    if (!tool.output_schema.is_null()) t["outputSchema"] = tool.output_schema;
    list.push_back(std::move(t));
  }
  return Json{{"tools", std::move(list)}};
}

std::string McpServer::RunningKey(const CallContext& context, const Json& id) {
  return context.caller.key_id + "\n" + context.scope + "\n" + DumpJson(id);
}

Result<Json> McpServer::CallTool(const Message& request, const CallContext& context) {
  const Json& params = request.params;
  if (!params.is_object() || !params.contains("name") || !params["name"].is_string()) {
    return Status::InvalidArgument("Invalid params: tools/call needs params.name (a string)");
  }
  std::string name = params["name"].get<std::string>();
  auto tool =
      std::find_if(tools_.begin(), tools_.end(), [&](const Tool& t) { return t.name == name; });
  if (tool == tools_.end()) return Status::NotFound("Unknown tool: " + name);
  Json arguments = params.contains("arguments") ? params["arguments"] : Json::object();
  if (arguments.is_null()) arguments = Json::object();
  if (!arguments.is_object()) {
    return Status::InvalidArgument("Invalid params: params.arguments must be an object");
  }
  Json progress_token;
  if (params.contains("_meta") && params["_meta"].is_object() &&
      params["_meta"].contains("progressToken") && IsValidId(params["_meta"]["progressToken"])) {
    progress_token = params["_meta"]["progressToken"];
  }

  auto running = std::make_shared<Running>();
  std::string key = RunningKey(context, request.id);
  {
    MutexLock lock(mu_);
    running_[key] = running;
  }
  // Unregistered however the call ends (a handler's exception is caught in HandleRequest).
  struct Unregister {
    McpServer* server;
    const std::string& key;
    const std::shared_ptr<Running>& running;
    ~Unregister() {
      MutexLock lock(server->mu_);
      auto it = server->running_.find(key);
      if (it != server->running_.end() && it->second == running) server->running_.erase(it);
    }
  } unregister{this, key, running};
  auto on_cancel = [running](std::function<void()> cancel) {
    MutexLock lock(running->mu);
    if (running->cancelled) {
      lock.Unlock();
      cancel();
      return;
    }
    running->on_cancel = std::move(cancel);
  };
  CallToolContext tool_context(context, authorize_, name, progress_token, on_cancel);
  Result<ToolResult> outcome = Status::Internal("the tool did not run");
  {
    ProgressTicker ticker(&tool_context);
    outcome = tool->handler(arguments, tool_context);
  }
  bool cancelled = false;
  {
    MutexLock lock(running->mu);
    cancelled = running->cancelled;
    running->on_cancel = nullptr;
  }
  if (cancelled) return Json(nullptr);
  if (!outcome.ok()) return ToolError(outcome.status());
  Json result = {{"content", std::move(outcome->content)}, {"isError", outcome->is_error}};
  if (!outcome->structured.is_null()) result["structuredContent"] = std::move(outcome->structured);
  return result;
}

Result<Json> McpServer::ReadResource(const Message& request, const CallContext& context) {
  const Json& params = request.params;
  if (!params.is_object() || !params.contains("uri") || !params["uri"].is_string()) {
    return Status::InvalidArgument("Invalid params: resources/read needs params.uri (a string)");
  }
  std::string uri = params["uri"].get<std::string>();
  auto call = resolve_(uri);
  if (!call.ok()) {
    return Status::NotFound("Resource not found: " + uri + " (" + call.status().message() + ")")
        .WithReason("resource_not_found");
  }
  auto tool = std::find_if(tools_.begin(), tools_.end(),
                           [&](const Tool& t) { return t.name == call->tool; });
  if (tool == tools_.end()) return Status::Internal("no tool " + call->tool + " for " + uri);
  CallToolContext tool_context(context, authorize_, call->tool, Json(),
                               [](std::function<void()>) {});
  Result<ToolResult> ran = tool->handler(call->arguments, tool_context);
  if (!ran.ok()) {
    if (!ran.status().IsNotFound()) return ran.status();
    return Status::NotFound("Resource not found: " + uri + " (" + ran.status().message() + ")")
        .WithReason("resource_not_found");
  }
  const ToolResult& outcome = *ran;
  for (const Json& item : outcome.content) {
    if (item.value("type", "") == "resource" && item.contains("resource")) {
      return Json{{"contents", Json::array({item["resource"]})}};
    }
  }
  std::string why = outcome.content.empty() ? std::string("no content")
                                            : outcome.content[0].value("text", std::string());
  return Status::NotFound("Resource not found: " + uri + " (" + why + ")")
      .WithReason("resource_not_found");
}

Result<Json> McpServer::ListResources(const Message&, const CallContext&) {
  // Files are many and short-lived: they are reached by the links tools return and by the
  // templates, not listed.
  return Json{{"resources", Json::array()}};
}

Result<Json> McpServer::ListResourceTemplates(const Message&, const CallContext&) {
  return Json{{"resourceTemplates", resource_templates_}};
}

void McpServer::Cancelled(const Message& notification, const CallContext& context) {
  const Json& params = notification.params;
  if (!params.is_object() || !params.contains("requestId") || !IsValidId(params["requestId"]))
    return;
  std::shared_ptr<Running> running;
  {
    MutexLock lock(mu_);
    auto it = running_.find(RunningKey(context, params["requestId"]));
    if (it == running_.end())
      return;  // Finished already, or never ours: ignored, as the spec says.
    running = it->second;
  }
  std::function<void()> cancel;
  {
    MutexLock lock(running->mu);
    running->cancelled = true;
    cancel = std::move(running->on_cancel);
    running->on_cancel = nullptr;
  }
  if (cancel) cancel();
}

}  // namespace pycell::mcp
