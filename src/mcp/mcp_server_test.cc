// The JSON-RPC core of the MCP server with stand-in tools: every malformed message gets its
// proper error (never a crash), the method table answers, tool failures are tool results, and
// progress and cancellation reach the running tool.
#include "mcp/mcp_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "test_util.h"

namespace pycell::mcp {
namespace {

using auth::Permission;

class McpServerTest : public ::testing::Test {
 protected:
  McpServerTest() : server_(ServerInfo{"pycell", "test", ""}, Tools(), Authorizer()) {
    context_.caller.key_id = "key_test";
    context_.caller.role = auth::Role::kUser;
  }

  std::vector<Tool> Tools() {
    Tool echo;
    echo.name = "echo";
    echo.description = "returns its text";
    echo.input_schema = {{"type", "object"}, {"properties", {{"text", {{"type", "string"}}}}}};
    echo.output_schema = {{"type", "object"}, {"properties", {{"text", {{"type", "string"}}}}}};
    echo.handler = [](const Json& args, ToolContext&) -> Result<ToolResult> {
      if (!args.contains("text") || !args["text"].is_string()) {
        return Status::InvalidArgument("text is required");
      }
      ToolResult r;
      r.content.push_back({{"type", "text"}, {"text", args["text"]}});
      r.structured = {{"text", args["text"]}};
      return r;
    };
    Tool admin;
    admin.name = "admin_only";
    admin.description = "needs keys.manage";
    admin.input_schema = {{"type", "object"}};
    admin.handler = [](const Json&, ToolContext& ctx) -> Result<ToolResult> {
      RETURN_IF_ERROR(ctx.Require(Permission::kKeysManage));
      return ToolResult{};
    };
    Tool slow;
    slow.name = "slow";
    slow.description = "waits until cancelled or 5 s, reporting progress";
    slow.input_schema = {{"type", "object"}};
    slow.handler = [this](const Json&, ToolContext& ctx) -> Result<ToolResult> {
      ctx.Progress("started");
      ctx.OnCancel([this] {
        std::lock_guard<std::mutex> lock(mu_);
        interrupted_ = true;
        cv_.notify_all();
      });
      {
        std::lock_guard<std::mutex> lock(mu_);
        slow_started_ = true;
        cv_.notify_all();
      }
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::seconds(5), [this] { return interrupted_; });
      ToolResult r;
      r.content.push_back({{"type", "text"}, {"text", interrupted_ ? "interrupted" : "done"}});
      return r;
    };
    Tool thrower;
    thrower.name = "thrower";
    thrower.description = "a bug: reads a string as a number";
    thrower.input_schema = {{"type", "object"}};
    thrower.handler = [](const Json&, ToolContext&) -> Result<ToolResult> {
      Json j = "text";
      (void)j.get<int>();
      return ToolResult{};
    };
    return {echo, admin, slow, thrower};
  }

  Authorize Authorizer() {
    return [this](const auth::Caller& caller, Permission permission, const std::string& what) {
      denials_.push_back(what);
      if (auth::RoleAllows(caller.role, permission)) return Status::Ok();
      return Status::PermissionDenied("the role user may not do this");
    };
  }

  // Sends `text` as one message; the reply (null for notifications).
  Json Send(const std::string& text) {
    Parsed parsed = ParseMessage(text);
    if (!parsed.message) return parsed.error;
    if (parsed.message->kind != Message::Kind::kRequest) {
      server_.HandleNotification(*parsed.message, context_);
      return nullptr;
    }
    return server_.HandleRequest(*parsed.message, context_);
  }

  static int ErrorCode(const Json& reply) { return reply.at("error").at("code").get<int>(); }

  McpServer server_;
  CallContext context_;
  std::vector<std::string> denials_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool slow_started_ = false;  // GUARDED_BY(mu_)
  bool interrupted_ = false;   // GUARDED_BY(mu_)
};

TEST_F(McpServerTest, MalformedJsonIsAParseErrorWithNullId) {
  for (const char* text : {"", "{", "not json", "{\"jsonrpc\": \"2.0\", \"id\": 1,", "\xff\xfe"}) {
    Json reply = Send(text);
    EXPECT_EQ(ErrorCode(reply), kParseError) << text;
    EXPECT_TRUE(reply["id"].is_null());
    EXPECT_EQ(reply["jsonrpc"], "2.0");
  }
}

TEST_F(McpServerTest, BatchesAreRefusedAsTheCurrentSpecificationHasNone) {
  Json reply = Send(
      R"([{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}])");
  EXPECT_EQ(ErrorCode(reply), kInvalidRequest);
  EXPECT_NE(reply["error"]["message"].get<std::string>().find("batch"), std::string::npos);
  EXPECT_EQ(ErrorCode(Send("[]")), kInvalidRequest);
}

TEST_F(McpServerTest, MessagesOfTheWrongShapeAreInvalidRequests) {
  EXPECT_EQ(ErrorCode(Send("42")), kInvalidRequest);
  EXPECT_EQ(ErrorCode(Send(R"("ping")")), kInvalidRequest);
  EXPECT_EQ(ErrorCode(Send(R"({"id":1,"method":"ping"})")), kInvalidRequest);  // No jsonrpc.
  EXPECT_EQ(ErrorCode(Send(R"({"jsonrpc":"1.0","id":1,"method":"ping"})")), kInvalidRequest);
  EXPECT_EQ(ErrorCode(Send(R"({"jsonrpc":"2.0","id":1,"method":7})")), kInvalidRequest);
  EXPECT_EQ(ErrorCode(Send(R"({"jsonrpc":"2.0","id":null,"method":"ping"})")), kInvalidRequest);
  EXPECT_EQ(ErrorCode(Send(R"({"jsonrpc":"2.0","id":{"a":1},"method":"ping"})")), kInvalidRequest);
  EXPECT_EQ(ErrorCode(Send(R"({"jsonrpc":"2.0","id":1})")), kInvalidRequest);
  Json reply = Send(R"({"jsonrpc":"2.0","id":"a","method":"ping","params":[1,2]})");
  EXPECT_EQ(ErrorCode(reply), kInvalidParams);
  EXPECT_EQ(reply["id"], "a");
}

TEST_F(McpServerTest, UnknownMethodIsMethodNotFoundWithTheRequestsId) {
  Json reply = Send(R"({"jsonrpc":"2.0","id":"x-1","method":"resources/list"})");
  EXPECT_EQ(ErrorCode(reply), kMethodNotFound);
  EXPECT_EQ(reply["id"], "x-1");
  // A notification of an unknown method gets nothing back.
  EXPECT_TRUE(Send(R"({"jsonrpc":"2.0","method":"notifications/whatever"})").is_null());
  // Responses (this server asks nothing) are ignored.
  EXPECT_TRUE(Send(R"({"jsonrpc":"2.0","id":5,"result":{}})").is_null());
}

TEST_F(McpServerTest, InitializeNegotiatesTheProtocolVersion) {
  Json reply = Send(
      R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})");
  ASSERT_TRUE(reply.contains("result")) << reply;
  EXPECT_EQ(reply["result"]["protocolVersion"], "2025-06-18");
  EXPECT_TRUE(reply["result"]["capabilities"].contains("tools"));
  EXPECT_EQ(reply["result"]["serverInfo"]["name"], "pycell");
  reply = Send(
      R"({"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"1999-01-01"}})");
  EXPECT_EQ(reply["result"]["protocolVersion"], SupportedProtocolVersions().front());
  EXPECT_EQ(ErrorCode(Send(R"({"jsonrpc":"2.0","id":3,"method":"initialize"})")), kInvalidParams);
  EXPECT_EQ(
      ErrorCode(
          Send(R"({"jsonrpc":"2.0","id":4,"method":"initialize","params":{"protocolVersion":5}})")),
      kInvalidParams);
}

TEST_F(McpServerTest, ToolsListCarriesSchemas) {
  Json reply = Send(R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})");
  ASSERT_TRUE(reply.contains("result")) << reply;
  const Json& tools = reply["result"]["tools"];
  ASSERT_EQ(tools.size(), 4u);
  EXPECT_EQ(tools[0]["name"], "echo");
  EXPECT_EQ(tools[0]["inputSchema"]["type"], "object");
  EXPECT_TRUE(tools[0].contains("outputSchema"));
  EXPECT_FALSE(tools[1].contains("outputSchema"));
  EXPECT_EQ(Send(R"({"jsonrpc":"2.0","id":2,"method":"ping"})")["result"], Json::object());
}

TEST_F(McpServerTest, ToolsCallWithWrongParamsIsInvalidParams) {
  EXPECT_EQ(ErrorCode(Send(R"({"jsonrpc":"2.0","id":1,"method":"tools/call"})")), kInvalidParams);
  EXPECT_EQ(
      ErrorCode(Send(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":3}})")),
      kInvalidParams);
  EXPECT_EQ(
      ErrorCode(Send(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nope"}})")),
      kInvalidParams);
  EXPECT_EQ(
      ErrorCode(Send(
          R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":[1]}})")),
      kInvalidParams);
}

TEST_F(McpServerTest, ToolResultsAndToolErrors) {
  Json ok = Send(
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}})");
  ASSERT_TRUE(ok.contains("result")) << ok;
  EXPECT_EQ(ok["result"]["isError"], false);
  EXPECT_EQ(ok["result"]["content"][0]["text"], "hi");
  EXPECT_EQ(ok["result"]["structuredContent"]["text"], "hi");

  Json bad = Send(
      R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{}}})");
  ASSERT_TRUE(bad.contains("result")) << bad;
  EXPECT_EQ(bad["result"]["isError"], true);
  EXPECT_EQ(bad["result"]["content"][0]["text"], "text is required");
  EXPECT_FALSE(bad["result"].contains("structuredContent"));

  Json denied =
      Send(R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"admin_only"}})");
  EXPECT_EQ(denied["result"]["isError"], true) << denied;
  ASSERT_FALSE(denials_.empty());
  EXPECT_EQ(denials_.back(), "MCP tools/call admin_only");

  // A bug in a tool becomes an internal error reply, not a crash.
  Json thrown =
      Send(R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"thrower"}})");
  EXPECT_EQ(ErrorCode(thrown), kInternalError);
}

TEST_F(McpServerTest, ProgressIsSentAndIncreasesAndCancellationInterrupts) {
  std::mutex notes_mu;
  std::vector<Json> notes;
  context_.notify = [&](const Json& note) {
    std::lock_guard<std::mutex> lock(notes_mu);
    notes.push_back(note);
  };
  Json reply = Json::object();
  std::thread call([&] {
    reply = Send(
        R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"slow","_meta":{"progressToken":"tok"}}})");
  });
  {
    std::unique_lock<std::mutex> lock(mu_);
    ASSERT_TRUE(cv_.wait_for(lock, std::chrono::seconds(5), [this] { return slow_started_; }));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));  // At least one tick.
  // A cancellation of another id, or from another key, changes nothing.
  EXPECT_TRUE(
      Send(R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":8}})")
          .is_null());
  Send(
      R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"user"}})");
  call.join();
  EXPECT_TRUE(interrupted_);
  EXPECT_TRUE(reply.is_null()) << reply;  // A cancelled request gets no reply.
  std::lock_guard<std::mutex> lock(notes_mu);
  ASSERT_GE(notes.size(), 2u);
  double last = -1;
  for (const Json& note : notes) {
    EXPECT_EQ(note["method"], "notifications/progress");
    EXPECT_EQ(note["params"]["progressToken"], "tok");
    EXPECT_GT(note["params"]["progress"].get<double>(), last);
    last = note["params"]["progress"].get<double>();
  }
  EXPECT_EQ(notes[0]["params"]["message"], "started");
  // Malformed cancellations are ignored.
  EXPECT_TRUE(Send(R"({"jsonrpc":"2.0","method":"notifications/cancelled"})").is_null());
  EXPECT_TRUE(
      Send(R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":[1]}})")
          .is_null());
}

TEST_F(McpServerTest, NoProgressWithoutAToken) {
  int notes = 0;
  context_.notify = [&](const Json&) { ++notes; };
  Json reply = Send(
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}})");
  EXPECT_EQ(reply["result"]["isError"], false);
  EXPECT_EQ(notes, 0);
}

}  // namespace
}  // namespace pycell::mcp
