// `pycell mcp`: the Model Context Protocol over stdio (docs/mcp.md), for desktop agents that
// spawn their MCP servers as processes. Each line on stdin is one JSON-RPC message, forwarded to
// a running server's /mcp (Streamable HTTP, --url/--key as every client command); each message
// the server answers — the reply, and the progress notifications an event stream carries before
// it — is written to stdout as one line. Messages are forwarded concurrently, so that a
// notifications/cancelled can reach the server while the call it cancels still runs. Nothing but
// MCP messages goes to stdout; failures are also reported on stderr.
//
// The bridge holds no MCP session (it does not send Mcp-Session-Id): the server serves such
// clients statelessly.
#include <CLI/CLI.hpp>
#include <iostream>
#include <thread>
#include <vector>

#include "cli/client_common.h"
#include "cli/commands.h"
#include "common/mutex.h"

namespace pycell::cli {
namespace {

class StdoutWriter {
 public:
  void Write(const Json& message) {
    MutexLock lock(mu_);
    std::cout << Dump(message) << "\n" << std::flush;
  }

 private:
  Mutex mu_;
};

Json RpcError(const Json& id, int code, const std::string& message) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"error", {{"code", code}, {"message", message}}}};
}

// Forwards one message and writes what comes back. `id` is the request's (null: a notification,
// whose failures go to stderr only).
void Forward(const ClientFlags& flags, const std::string& line, const Json& id, StdoutWriter* out) {
  auto fail = [&](const std::string& message) {
    std::cerr << "pycell mcp: " << message << "\n";
    if (!id.is_null()) out->Write(RpcError(id, -32603, message));
  };
  auto client = Connect(flags);
  if (!client.ok()) return fail(client.status().message());
  auto response = (*client)->PostJsonForEvents("/mcp", line, [&](const ServerSentEvent& event) {
    if (event.event != "message") return;
    Json message = Json::parse(event.data, nullptr, false);
    if (!message.is_discarded()) out->Write(message);
  });
  if (!response.ok()) return fail(Explain(response.status(), **client).message());
  if (response->body.empty()) return;  // An event stream (written already), or 202 Accepted.
  Json message = Json::parse(response->body, nullptr, false);
  if (!message.is_discarded() && message.is_object() && message.contains("jsonrpc")) {
    // An error about the message itself names no id; the client matches replies by id.
    if (message.contains("error") && message["id"].is_null() && !id.is_null()) message["id"] = id;
    if (!id.is_null() || message.contains("error")) out->Write(message);
    if (!response->ok())
      std::cerr << "pycell mcp: " << message["error"].value("message", "") << "\n";
    return;
  }
  if (!response->ok()) return fail(HttpError(*response, **client).message());
  fail("the server answered /mcp with something that is not JSON-RPC (HTTP " +
       std::to_string(response->status) + ")");
}

int Bridge(const ClientFlags& flags) {
  StdoutWriter out;
  std::vector<std::thread> calls;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Json message = Json::parse(line, nullptr, false);
    if (message.is_discarded()) {
      out.Write(RpcError(nullptr, -32700, "Parse error: the line is not valid JSON"));
      continue;
    }
    // Anything JSON goes to the server, which judges it; only the id is needed here.
    Json id = message.is_object() && message.contains("id") && message.contains("method")
                  ? message["id"]
                  : Json(nullptr);
    calls.emplace_back(Forward, std::cref(flags), line, id, &out);
  }
  for (std::thread& call : calls) call.join();
  return 0;
}

}  // namespace

std::function<int()> RegisterMcpCommand(CLI::App& app) {
  auto flags = std::make_shared<ClientFlags>();
  CLI::App* command = app.add_subcommand(
      "mcp", "MCP over stdio: forwards JSON-RPC lines to a server's /mcp (for desktop agents)");
  AddClientFlags(command, flags.get());
  return [flags, command]() -> int {
    if (!command->parsed()) return -1;
    return Bridge(*flags);
  };
}

}  // namespace pycell::cli
