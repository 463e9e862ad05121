#include "server/router.h"

#include <gtest/gtest.h>

#include "server/overlapped_writer.h"
#include "test_util.h"

namespace pycell::server {
namespace {

TEST(ParseTargetTest, SplitsPathAndDecodesQuery) {
  std::string path;
  std::map<std::string, std::string> query;
  ASSERT_OK(ParseTarget("/v1/files?purpose=input&limit=5&name=a+b%26c&empty", &path, &query));
  EXPECT_EQ(path, "/v1/files");
  EXPECT_EQ(query["purpose"], "input");
  EXPECT_EQ(query["limit"], "5");
  EXPECT_EQ(query["name"], "a b&c");
  EXPECT_EQ(query.count("empty"), 1u);
}

TEST(ParseTargetTest, DecodesPathSegmentsButRefusesEncodedSlashAndNul) {
  std::string path;
  std::map<std::string, std::string> query;
  ASSERT_OK(ParseTarget("/v1/files/caf%C3%A9", &path, &query));
  EXPECT_EQ(path, "/v1/files/caf\xC3\xA9");
  EXPECT_TRUE(ParseTarget("/v1/files/a%2Fb", &path, &query).IsInvalidArgument());
  EXPECT_TRUE(ParseTarget("/v1/files/a%00b", &path, &query).IsInvalidArgument());
  EXPECT_TRUE(ParseTarget("http://evil/v1/files", &path, &query).IsInvalidArgument());
  EXPECT_TRUE(ParseTarget("*", &path, &query).IsInvalidArgument());
  EXPECT_TRUE(ParseTarget("", &path, &query).IsInvalidArgument());
}

TEST(ParseTargetTest, DotSegmentsDoNotEscapeRoutes) {
  std::string path;
  std::map<std::string, std::string> query;
  // Kept as written (no normalization): "/v1/files/../sessions" matches no route.
  ASSERT_OK(ParseTarget("/v1/files/../sessions", &path, &query));
  Router router;
  router.Add({"GET", "/v1/sessions", auth::Permission::kPublic, nullptr});
  router.Add({"GET", "/v1/files/{id}", auth::Permission::kPublic, nullptr});
  EXPECT_EQ(router.Find("GET", path).route, nullptr);
}

TEST(RouterTest, MatchesPatternsAndReportsAllowedMethods) {
  Router router;
  router.Add({"GET", "/v1/files/{id}", auth::Permission::kPublic, nullptr});
  router.Add({"DELETE", "/v1/files/{id}", auth::Permission::kPublic, nullptr});
  router.Add({"GET", "/v1/files/{id}/content", auth::Permission::kPublic, nullptr});
  auto match = router.Find("GET", "/v1/files/file_1");
  ASSERT_NE(match.route, nullptr);
  EXPECT_EQ(match.params["id"], "file_1");
  EXPECT_NE(router.Find("HEAD", "/v1/files/file_1").route, nullptr);  // HEAD goes with GET.
  auto wrong = router.Find("PUT", "/v1/files/file_1");
  EXPECT_EQ(wrong.route, nullptr);
  EXPECT_EQ(wrong.allowed, (std::vector<std::string>{"GET", "DELETE"}));
  EXPECT_EQ(router.Find("GET", "/v1/files/").route, nullptr);  // An empty id is no id.
  EXPECT_EQ(router.Find("GET", "/v1/files/a/b").route, nullptr);
}

TEST(ErrorResponseTest, TypedReasonsPickTheStatus) {
  EXPECT_EQ(HttpStatusFor(Status::FailedPrecondition("x").WithReason("session_expired")), 410);
  EXPECT_EQ(HttpStatusFor(Status::FailedPrecondition("x").WithReason("session_busy")), 409);
  EXPECT_EQ(HttpStatusFor(Status::ResourceExhausted("x").WithReason("payload_too_large")), 413);
  EXPECT_EQ(HttpStatusFor(Status::ResourceExhausted("x").WithReason("insufficient_storage")), 507);
  EXPECT_EQ(HttpStatusFor(Status::NotFound("x")), 404);
  Response r = ErrorResponse(Status::InvalidArgument("bad \"thing\""));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body, R"({"error":{"code":"invalid_request","message":"bad \"thing\""}})");
}

TEST(OverlappedWriterTest, KeepsOrderAndReportsTheFirstFailure) {
  std::string written;
  int calls = 0;
  OverlappedWriter writer([&](std::string_view data) -> Status {
    ++calls;
    if (data == "bad") return Status::Internal("disk full");
    written.append(data);
    return Status::Ok();
  });
  writer.Write("a");
  writer.Write("b");
  ASSERT_OK(writer.Drain());
  writer.Write("c");
  ASSERT_OK(writer.Drain());
  EXPECT_EQ(written, "abc");
  writer.Write("bad");
  writer.Write("d");  // Skipped: the writer failed.
  Status s = writer.Drain();
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_EQ(written, "abc");
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(writer.Drain().code(), StatusCode::kInternal);  // Sticky.
}

}  // namespace
}  // namespace pycell::server

namespace pycell::server {
namespace {

TEST(AuthorizeTest, PublicRoutesNeedNoKeyAndOthersFailClosedWithoutAuthentication) {
  Router router;
  Route open{"GET", "/healthz", auth::Permission::kPublic, nullptr};
  Route guarded{"GET", "/v1/files", auth::Permission::kFilesRead, nullptr};
  Request request;
  EXPECT_OK(router.Authorize(&request, open));
  EXPECT_TRUE(router.Authorize(&request, guarded).IsUnauthenticated());
}

TEST(AuthorizeTest, TheRoleMustHoldTheRoutesPermission) {
  Router router;
  std::vector<std::string> denied;
  router.SetAuthentication(
      [](const Request& r) -> Result<auth::Caller> {
        if (r.Header("authorization") != "Bearer good") return Status::Unauthenticated("no");
        auth::Caller c;
        c.principal = "alice";
        c.role = auth::Role::kAuditor;
        return c;
      },
      [&](const auth::Caller& c, const Route& route) {
        denied.push_back(c.principal + " " + route.pattern);
        return Status::PermissionDenied("no");
      });
  Request request;
  request.headers["authorization"] = "Bearer good";
  Route audit{"GET", "/v1/audit", auth::Permission::kAuditRead, nullptr};
  Route run{"POST", "/v1/sessions/{id}/executions", auth::Permission::kExecutionsRun, nullptr};
  EXPECT_OK(router.Authorize(&request, audit));
  EXPECT_EQ(request.caller.principal, "alice");
  EXPECT_TRUE(router.Authorize(&request, run).IsPermissionDenied());
  EXPECT_EQ(denied, (std::vector<std::string>{"alice /v1/sessions/{id}/executions"}));
  Request stranger;
  stranger.headers["authorization"] = "Bearer bad";
  EXPECT_TRUE(router.Authorize(&stranger, audit).IsUnauthenticated());
}

}  // namespace
}  // namespace pycell::server
