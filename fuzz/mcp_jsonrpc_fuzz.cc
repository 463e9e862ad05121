// MCP's JSON-RPC 2.0 messages: mcp::ParseMessage and the McpServer's method table (initialize,
// ping, tools/list, tools/call with arguments, _meta.progressToken and a tool's failures,
// notifications/cancelled), as POST /mcp (server/mcp_routes.cc) and `pycell mcp` hand them over.
// The tools are stand-ins with the real tools' shapes (an argument check, a permission check that
// is refused, progress and cancellation): pycell's own tools (mcp_tools.cc) call the Service and
// are left to the API tests.
//
// Input: newline-separated messages, as on `pycell mcp`'s stdio; each is parsed and handled in
// turn by one server, so a cancellation can meet a call.
// Checked, beyond ASan and UBSan: every reply is a JSON-RPC 2.0 response to the request's id, or
// an error reply; no exception escapes.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_input.h"
#include "mcp/mcp_server.h"

namespace pycell::fuzz {
namespace {

using mcp::Json;

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "mcp_jsonrpc_fuzz: %s\n", what);
  std::abort();
}

std::vector<mcp::Tool> StandInTools() {
  mcp::Tool echo;
  echo.name = "execute_python";
  echo.description = "checks its arguments as execute_python does, then echoes the code";
  echo.input_schema = {{"type", "object"}, {"properties", {{"code", {{"type", "string"}}}}}};
  echo.handler = [](const Json& args, mcp::ToolContext& context) -> Result<mcp::ToolResult> {
    if (!args.contains("code") || !args["code"].is_string()) {
      return Status::InvalidArgument("code is required: a string of Python");
    }
    if (args.contains("timeout_s") && !args["timeout_s"].is_null()) {
      if (!args["timeout_s"].is_number() || args["timeout_s"].get<double>() < 1) {
        return Status::InvalidArgument("timeout_s must be a number of seconds ≥ 1");
      }
    }
    RETURN_IF_ERROR(context.Require(auth::Permission::kExecutionsRun));
    context.OnCancel([] {});
    context.Progress("stdout: " + args["code"].get<std::string>().substr(0, 200));
    mcp::ToolResult result;
    result.content.push_back({{"type", "text"}, {"text", args["code"]}});
    result.structured = {{"stdout", args["code"]}};
    return result;
  };
  mcp::Tool refused;
  refused.name = "create_key";
  refused.description = "needs keys.manage, which the caller lacks";
  refused.input_schema = {{"type", "object"}};
  refused.handler = [](const Json&, mcp::ToolContext& context) -> Result<mcp::ToolResult> {
    RETURN_IF_ERROR(context.Require(auth::Permission::kKeysManage));
    return mcp::ToolResult{};
  };
  return {echo, refused};
}

bool IsErrorReply(const Json& reply) {
  return reply.is_object() && reply.value("jsonrpc", "") == "2.0" && reply.contains("id") &&
         reply.contains("error") && reply["error"].is_object() && reply["error"].contains("code") &&
         reply["error"]["code"].is_number_integer();
}

}  // namespace
}  // namespace pycell::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace pycell;
  using namespace pycell::fuzz;
  static mcp::McpServer* server = new mcp::McpServer(
      mcp::ServerInfo{"pycell", "fuzz", "stand-in tools"}, StandInTools(),
      [](const auth::Caller& caller, auth::Permission permission, const std::string& what) {
        if (auth::RoleAllows(caller.role, permission)) return Status::Ok();
        return Status::PermissionDenied(what + " needs " + auth::PermissionName(permission));
      });
  mcp::CallContext context;
  context.caller.key_id = "key_fuzz";
  context.caller.role = auth::Role::kUser;
  context.scope = "mcp_fuzz";
  size_t notifications = 0;
  context.notify = [&](const Json& notification) {
    ++notifications;
    (void)notification.dump(-1, ' ', false, Json::error_handler_t::replace);
  };

  std::string_view rest(reinterpret_cast<const char*>(bytes), size);
  for (int i = 0; i < 16 && !rest.empty(); ++i) {
    auto [line, after] = SplitFirstLine(rest);
    rest = after;
    mcp::Parsed parsed = mcp::ParseMessage(line);
    if (!parsed.message) {
      if (!IsErrorReply(parsed.error)) Fail("ParseMessage failed without an error reply");
      (void)parsed.error.dump(-1, ' ', false, Json::error_handler_t::replace);
      continue;
    }
    const mcp::Message& message = *parsed.message;
    if (message.kind != mcp::Message::Kind::kRequest) {
      server->HandleNotification(message, context);
      continue;
    }
    Json reply = server->HandleRequest(message, context);
    if (reply.is_null()) continue;  // Cancelled.
    if (!reply.is_object() || reply.value("jsonrpc", "") != "2.0" || !reply.contains("id") ||
        reply["id"] != message.id || (reply.contains("result") == reply.contains("error"))) {
      Fail("a reply that is not a JSON-RPC 2.0 response to the request");
    }
    (void)reply.dump(-1, ' ', false, Json::error_handler_t::replace);
  }
  return 0;
}
