#include "aca/aca_api.h"

#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "aca/identifier_sessions.h"
#include "test_util.h"

namespace pycell::aca {
namespace {

TEST(AcaApiVersion, LegacyCurrentAndUnknown) {
  ASSERT_OK(ParseApiVersion("2024-02-02-preview"));
  EXPECT_EQ(*ParseApiVersion("2024-02-02-preview"), Contract::kLegacy);
  EXPECT_EQ(*ParseApiVersion("2024-08-02-preview"), Contract::kLegacy);
  EXPECT_EQ(*ParseApiVersion("2024-10-02-preview"), Contract::kCurrent);
  EXPECT_EQ(*ParseApiVersion("2025-10-02-preview"), Contract::kCurrent);
  auto unknown = ParseApiVersion("2023-01-01");
  ASSERT_FALSE(unknown.ok());
  EXPECT_TRUE(unknown.status().IsInvalidArgument());
  EXPECT_NE(unknown.status().message().find("2024-02-02-preview"), std::string::npos);
  EXPECT_FALSE(ParseApiVersion("").ok());
}

TEST(AcaIdentifier, LengthAndCharacters) {
  EXPECT_OK(CheckIdentifier("abcd"));
  EXPECT_OK(CheckIdentifier("0f8fad5b-d9cb-469f-a165-70867728950e"));
  EXPECT_OK(CheckIdentifier("a|-&^%$#(){}[];<>"));
  EXPECT_OK(CheckIdentifier(std::string(128, 'x')));
  EXPECT_FALSE(CheckIdentifier("abc").ok());
  EXPECT_FALSE(CheckIdentifier(std::string(129, 'x')).ok());
  EXPECT_FALSE(CheckIdentifier("has space").ok());
  EXPECT_FALSE(CheckIdentifier("dots.not.allowed").ok());
  EXPECT_FALSE(CheckIdentifier("slash/no").ok());
  EXPECT_FALSE(CheckIdentifier(std::string("nul\0byte", 8)).ok());
  EXPECT_FALSE(CheckIdentifier("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9").ok());
}

TEST(AcaExecute, LegacyBodyAsLangChainSendsIt) {
  auto r = ParseLegacyExecute(
      R"j({"properties": {"codeInputType": "inline", "executionType": "synchronous", "code": "1+1"}})j");
  ASSERT_OK(r);
  EXPECT_EQ(r->code, "1+1");
  EXPECT_FALSE(r->timeout.has_value());
  EXPECT_FALSE(r->asynchronous);
}

TEST(AcaExecute, LegacyBodyAsSemanticKernelSendsIt) {
  auto r = ParseLegacyExecute(
      R"j({"properties": {"codeInputType": "inline", "executionType": "synchronous", "code": "x", "timeoutInSeconds": 100}})j");
  ASSERT_OK(r);
  EXPECT_EQ(r->timeout->count(), 100);
}

TEST(AcaExecute, CurrentBody) {
  auto r = ParseExecution(
      R"j({"identifier": "test-identifier", "codeInputType": "Inline", "executionType": "Asynchronous", "code": "print(1)", "timeoutInSeconds": 5, "outputStreamsMaxLength": 10})j");
  ASSERT_OK(r);
  EXPECT_TRUE(r->asynchronous);
  EXPECT_EQ(*r->output_streams_max_length, 10u);
}

TEST(AcaExecute, HostileBodies) {
  for (const char* body : {"", "null", "[]", "\"x\"", "{", "{\"properties\": 5}",
                           "{\"properties\": {}}", "{\"properties\": {\"code\": 5}}",
                           "{\"properties\": {\"code\": \"1\", \"codeInputType\": \"url\"}}",
                           "{\"properties\": {\"code\": \"1\", \"executionType\": 7}}",
                           "{\"properties\": {\"code\": \"1\", \"timeoutInSeconds\": -1}}",
                           "{\"properties\": {\"code\": \"1\", \"timeoutInSeconds\": 0.5}}",
                           "{\"properties\": {\"code\": \"1\", \"timeoutInSeconds\": 86401}}",
                           "{\"properties\": {\"code\": \"1\", \"timeoutInSeconds\": \"9\"}}",
                           "{\"properties\": {\"code\": \"1\", \"timeoutInSeconds\": 1e300}}",
                           "{\"properties\": {\"code\": \"\xff\xfe\"}}"}) {
    auto r = ParseLegacyExecute(body);
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_TRUE(r.status().IsInvalidArgument()) << body;
  }
  // The one timeout rule (common/json_reader.h), as REST and MCP read timeout_s: a fraction is
  // rounded down.
  auto fraction = ParseLegacyExecute(R"j({"properties": {"code": "1", "timeoutInSeconds": 1.5}})j");
  ASSERT_TRUE(fraction.ok());
  EXPECT_EQ(fraction->timeout->count(), 1);
  EXPECT_FALSE(ParseExecution(R"j({"code": "1", "outputStreamsMaxLength": -3})j").ok());
  EXPECT_FALSE(ParseExecution(R"j({"properties": {"code": "1"}})j").ok());
  // Deep nesting is refused or parsed without exhausting the stack.
  std::string deep = "{\"properties\": {\"code\": \"1\", \"x\": " + std::string(100000, '[') +
                     std::string(100000, ']') + "}}";
  (void)ParseLegacyExecute(deep);
}

// A record as the store holds it, read back as the service hands it out.
session::ExecutionRecord Execution(const std::string& status, Json outputs, Json error = nullptr,
                                   const std::string& stdout_text = "out\n") {
  Json stored = {{"id", "exec_1"},        {"session_id", "sess_1"}, {"status", status},
                 {"stdout", stdout_text}, {"stderr", ""},           {"outputs", outputs},
                 {"error", error},        {"duration_ms", 12}};
  auto record = session::ExecutionRecord::FromJson(stored.dump());
  EXPECT_TRUE(record.ok());
  return record.ok() ? *record : session::ExecutionRecord{};
}

TEST(AcaResponse, LegacySuccessWithNumberResult) {
  auto e = Execution(
      "ok", Json::array({{{"output_type", "execute_result"}, {"data", {{"text/plain", "42"}}}}}));
  Json r = LegacyExecuteResponse(e)["properties"];
  EXPECT_EQ(r["status"], "Success");
  EXPECT_EQ(r["result"], 42);
  EXPECT_EQ(r["stdout"], "out\n");
  EXPECT_EQ(r["stderr"], "");
  EXPECT_EQ(r["executionTimeInMilliseconds"], 12);
}

TEST(AcaResponse, ImageResultWins) {
  auto e = Execution(
      "ok",
      Json::array({{{"output_type", "display_data"}, {"data", {{"image/png", "iVBORw0K\nGgo="}}}},
                   {{"output_type", "execute_result"}, {"data", {{"text/plain", "'text'"}}}}}));
  Json result = LegacyExecuteResponse(e)["properties"]["result"];
  EXPECT_EQ(result["type"], "image");
  EXPECT_EQ(result["format"], "png");
  EXPECT_EQ(result["base64_data"], "iVBORw0KGgo=");
}

TEST(AcaResponse, FailureCarriesTheTraceback) {
  auto e =
      Execution("error", Json::array(),
                {{"ename", "ZeroDivisionError"},
                 {"evalue", "division by zero"},
                 {"traceback", Json::array({"Traceback", "ZeroDivisionError: division by zero"})}});
  Json legacy = LegacyExecuteResponse(e)["properties"];
  EXPECT_EQ(legacy["status"], "Failure");
  EXPECT_NE(legacy["stderr"].get<std::string>().find("ZeroDivisionError"), std::string::npos);
  Json current = ExecutionResponse(e, "ident-1", false);
  EXPECT_EQ(current["status"], "Failed");
  EXPECT_EQ(current["identifier"], "ident-1");
  EXPECT_EQ(current["executionType"], "Synchronous");
  EXPECT_EQ(current["result"]["executionTimeInMilliseconds"], 12);
}

TEST(AcaResponse, OutputStreamsCutOnCharacterBoundary) {
  auto e = Execution("ok", Json::array(), nullptr, "h\xc3\xa9llo");
  Json r = ExecutionResponse(e, "ident-1", false, 2);
  EXPECT_EQ(r["result"]["stdout"], "h");
  // Bytes that are not UTF-8 are counted as the U+FFFD they are sent as.
  session::ExecutionRecord invalid;
  invalid.id = "exec_1";
  invalid.status = "ok";
  invalid.stdout_text = "\xff\xff\xff";
  Json cut = ExecutionResponse(invalid, "ident-1", false, 3);
  EXPECT_EQ(cut["result"]["stdout"], "\xEF\xBF\xBD");
  // A record missing every field still shapes.
  Json empty = ExecutionResponse(session::ExecutionRecord{}, "ident-1", true);
  EXPECT_EQ(empty["status"], "Failed");
  EXPECT_EQ(LegacyExecuteResponse(session::ExecutionRecord{})["properties"]["result"], "");
}

TEST(AcaFiles, NamesRelativeToMntData) {
  EXPECT_EQ(*SessionFileName("/mnt/data/x.csv", true), "x.csv");
  EXPECT_EQ(*SessionFileName("x.csv", true), "x.csv");
  EXPECT_EQ(*SessionFileName("sub/x.csv", false), "sub/x.csv");
  for (const char* bad :
       {"", "/mnt/data", "/mnt/data/", "..", "../x", "a/../b", "/etc/passwd", "a//b", "./a"}) {
    EXPECT_FALSE(SessionFileName(bad, false).ok()) << bad;
  }
  EXPECT_FALSE(SessionFileName("sub/x.csv", true).ok());
  EXPECT_FALSE(SessionFileName(std::string("a\0b", 3), false).ok());
}

TEST(AcaFiles, ListingShapes) {
  std::vector<service::SessionFile> listing = {{"a.csv", 5, 1735689600000000000}};
  Json legacy = FileList(listing, Contract::kLegacy);
  EXPECT_EQ(legacy["value"][0]["properties"]["filename"], "a.csv");
  EXPECT_EQ(legacy["value"][0]["properties"]["size"], 5);
  EXPECT_EQ(legacy["value"][0]["properties"]["lastModifiedTime"], "2025-01-01T00:00:00.000Z");
  Json current = FileList(listing, Contract::kCurrent);
  EXPECT_EQ(current["value"][0]["name"], "a.csv");
  EXPECT_EQ(current["value"][0]["sizeInBytes"], 5);
  EXPECT_EQ(current["value"][0]["type"], "File");
  ASSERT_OK(FindFile(listing, "a.csv"));
  EXPECT_TRUE(FindFile(listing, "b.csv").status().IsNotFound());
  EXPECT_EQ(FileList({}, Contract::kLegacy)["value"].size(), 0u);
}

TEST(AcaSession, Shape) {
  store::SessionRow row;
  row.id = "sess_1";
  row.status = "active";
  row.created_at_ms = 1735689600000;  // 2025-01-01T00:00:00Z
  row.expires_at_ms = 1735693200000;
  Json s = SessionResponse(row, "ident-1");
  EXPECT_EQ(s["identifier"], "ident-1");
  EXPECT_EQ(s["createdAt"], "2025-01-01T00:00:00.000Z");
  EXPECT_EQ(s["lastAccessedAt"], "2025-01-01T00:00:00.000Z");
  EXPECT_EQ(s["expireAt"], "2025-01-01T01:00:00.000Z");
  EXPECT_EQ(s["status"], "Running");
  row.status = "ended";
  EXPECT_TRUE(SessionResponse(row, "ident-1")["expireAt"].is_null());
  EXPECT_EQ(SessionResponse(row, "ident-1")["status"], "Stopped");
  EXPECT_TRUE(SessionList({s})["nextLink"].is_null());
}

// An identifier map over a fake service: sessions "sess_1", "sess_2", … live until erased from
// `live`.
struct FakeSessions {
  int made = 0;
  std::set<std::string> live;
  IdentifierSessions map{[this](const auth::Caller&, const std::string&) -> Result<std::string> {
                           std::string id = "sess_" + std::to_string(++made);
                           live.insert(id);
                           return id;
                         },
                         [this](const auth::Caller&, const std::string& id) {
                           return live.count(id) ? Status::Ok() : Status::NotFound("ended");
                         }};
};

TEST(IdentifierSessionsTest, OwnedByPrincipalAndRemadeWhenEnded) {
  FakeSessions fake;
  IdentifierSessions& map = fake.map;
  std::set<std::string>& live = fake.live;
  auth::Caller alice, bob;
  alice.principal = "alice";
  alice.project_id = "proj_1";
  bob.principal = "bob";
  bob.project_id = "proj_1";
  EXPECT_TRUE(map.Resolve(alice, "ident", false).status().IsNotFound());
  std::string a1 = *map.Resolve(alice, "ident", true);
  EXPECT_EQ(*map.Resolve(alice, "ident", true), a1);
  EXPECT_EQ(*map.Resolve(alice, "ident", false), a1);
  std::string b1 = *map.Resolve(bob, "ident", true);
  EXPECT_NE(a1, b1);
  EXPECT_EQ(map.List(alice).size(), 1u);
  live.erase(a1);
  EXPECT_TRUE(map.Resolve(alice, "ident", false).status().IsNotFound());
  EXPECT_TRUE(map.List(alice).empty());
  std::string a2 = *map.Resolve(alice, "ident", true);
  EXPECT_NE(a2, a1);
  map.Forget(alice, "ident");
  EXPECT_TRUE(map.Resolve(alice, "ident", false).status().IsNotFound());
}

TEST(IdentifierSessionsTest, PrunedWhenItsSessionEnds) {
  FakeSessions fake;
  IdentifierSessions& map = fake.map;
  std::set<std::string>& live = fake.live;
  auth::Caller alice;
  alice.principal = "alice";
  alice.project_id = "proj_1";
  for (int i = 0; i < 100; ++i) {
    std::string id = *map.Resolve(alice, "ident-" + std::to_string(i), true);
    live.erase(id);
    map.Prune(id);
  }
  EXPECT_EQ(map.size(), 0u);  // 100 identifiers used once and ended: none kept.
  // An identifier remade since its first session: that session's late end keeps the new one.
  std::string first = *map.Resolve(alice, "kept", true);
  live.erase(first);
  std::string second = *map.Resolve(alice, "kept", true);
  EXPECT_NE(first, second);
  map.Prune(first);
  EXPECT_EQ(*map.Resolve(alice, "kept", false), second);
  // Forgotten and made again under the same key: the old session's end leaves the new entry.
  map.Forget(alice, "kept");
  std::string third = *map.Resolve(alice, "kept", true);
  map.Prune(second);
  EXPECT_EQ(*map.Resolve(alice, "kept", false), third);
  map.Prune(third);
  EXPECT_EQ(map.size(), 0u);
  map.Prune("sess_unknown");  // No identifier names it: nothing happens.
}

TEST(IdentifierSessionsTest, ConcurrentFirstUseMakesOneSession) {
  std::atomic<int> made{0};
  IdentifierSessions map(
      [&](const auth::Caller&, const std::string&) -> Result<std::string> {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        return "sess_" + std::to_string(++made);
      },
      [&](const auth::Caller&, const std::string&) { return Status::Ok(); });
  auth::Caller caller;
  caller.principal = "p";
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] { EXPECT_EQ(*map.Resolve(caller, "same", true), "sess_1"); });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(made.load(), 1);
}

}  // namespace
}  // namespace pycell::aca
