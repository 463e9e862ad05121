// Keys, roles and scope: the pure parts of src/auth, and the directory over a real SQLite store.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <set>

#include "auth/api_key.h"
#include "auth/authenticator.h"
#include "auth/caller.h"
#include "auth/directory.h"
#include "auth/roles.h"
#include "common/clock.h"
#include "test_util.h"

namespace pycell::auth {
namespace {

TEST(ApiKeyTest, IssuedTokensParseBackAndMatchOnlyTheirSecret) {
  auto a = IssueKey();
  auto b = IssueKey();
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_NE(a->token, b->token);
  EXPECT_EQ(a->token.size(), 4 + 26 + 1 + 32u);
  auto parts = ParseToken(a->token);
  ASSERT_OK(parts);
  EXPECT_EQ(parts->key_id, a->id);
  EXPECT_TRUE(SecretMatches(parts->secret, a->secret_sha256));
  EXPECT_FALSE(SecretMatches(parts->secret, b->secret_sha256));
  EXPECT_EQ(a->token.find(a->secret_sha256), std::string::npos);  // The stored hash is not in it.
}

TEST(ApiKeyTest, MalformedTokensAreUnauthenticated) {
  auto key = IssueKey();
  ASSERT_OK(key);
  std::string t = key->token;
  for (const std::string& bad :
       {std::string(""), std::string("pyc_"), t.substr(0, t.size() - 1), t + "0",
        "pyk_" + t.substr(4), t.substr(0, 30) + "-" + t.substr(31),
        t.substr(0, t.size() - 1) + "U",  // 'u' is not in the alphabet.
        t.substr(0, 10) + "I" + t.substr(11), std::string(t.size(), 'a'),
        t.substr(0, 20) + std::string("\0", 1) + t.substr(21)}) {
    auto parsed = ParseToken(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    if (!parsed.ok()) {
      EXPECT_TRUE(parsed.status().IsUnauthenticated()) << bad;
    }
  }
}

TEST(RolesTest, EveryPermissionHasARowAndTheTableSaysWhatDocsSay) {
  std::set<std::string> names;
  for (int p = 0; p <= static_cast<int>(Permission::kKeysManage); ++p) {
    names.insert(PermissionName(static_cast<Permission>(p)));
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(Permission::kKeysManage) + 1);
  // The lines of docs/access.md that matter most.
  EXPECT_FALSE(RoleAllows(Role::kOperator, Permission::kFilesContent));
  EXPECT_FALSE(RoleAllows(Role::kOperator, Permission::kExecutionsRun));
  EXPECT_TRUE(RoleAllows(Role::kOperator, Permission::kSessionsEnd));
  EXPECT_FALSE(RoleAllows(Role::kAuditor, Permission::kFilesContent));
  EXPECT_FALSE(RoleAllows(Role::kAuditor, Permission::kExecutionsRun));
  EXPECT_TRUE(RoleAllows(Role::kAuditor, Permission::kAuditRead));
  EXPECT_FALSE(RoleAllows(Role::kUser, Permission::kAuditRead));
  EXPECT_FALSE(RoleAllows(Role::kUser, Permission::kKeysManage));
  for (int p = 0; p <= static_cast<int>(Permission::kKeysManage); ++p) {
    EXPECT_TRUE(RoleAllows(Role::kAdmin, static_cast<Permission>(p)));
  }
  EXPECT_EQ(ParseRole("auditor"), Role::kAuditor);
  EXPECT_FALSE(ParseRole("root").has_value());
}

TEST(ScopeTest, ProjectsAndSessionsAreSeenAsTheRolesSay) {
  Caller user;
  user.principal = "alice";
  user.project_id = "proj_a";
  user.role = Role::kUser;
  EXPECT_TRUE(SeesProject(user, "proj_a"));
  EXPECT_FALSE(SeesProject(user, "proj_b"));
  EXPECT_EQ(ProjectScope(user), "proj_a");
  EXPECT_TRUE(SeesSession(user, "proj_a", "alice", false));
  EXPECT_FALSE(SeesSession(user, "proj_a", "bob", false));
  EXPECT_TRUE(SeesSession(user, "proj_a", "bob", true));
  EXPECT_FALSE(SeesSession(user, "proj_b", "alice", true));
  Caller auditor = user;
  auditor.role = Role::kAuditor;
  EXPECT_TRUE(SeesSession(auditor, "proj_a", "bob", false));
  EXPECT_FALSE(SeesProject(auditor, "proj_b"));
  auditor.all_projects = true;
  EXPECT_TRUE(SeesProject(auditor, "proj_b"));
  EXPECT_EQ(ProjectScope(auditor), "");
  Caller op = user;
  op.role = Role::kOperator;
  EXPECT_TRUE(SeesSession(op, "proj_b", "carol", false));
}

class DirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::current_path().string() + "/auth-test-data";
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto store = store::OpenSqliteStore(dir_ + "/pycell.db");
    ASSERT_OK(store);
    store_ = std::move(*store);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string dir_;
  std::unique_ptr<store::MetadataStore> store_;
  FakeClock clock_;
};

TEST_F(DirectoryTest, BootstrapWritesOneAdminKeyPrivately) {
  auto made = Bootstrap(*store_, dir_ + "/admin.key", 1000);
  ASSERT_OK(made);
  EXPECT_TRUE(*made);
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/admin.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = Bootstrap(*store_, dir_ + "/admin.key", 2000);
  ASSERT_OK(again);
  EXPECT_FALSE(*again);  // Keys exist: nothing is made, the file is left alone.
  auto keys = store_->ListKeys("", true);
  ASSERT_OK(keys);
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].role, "admin");
  EXPECT_EQ((*keys)[0].project_id, store::kDefaultProjectId);
}

TEST_F(DirectoryTest, AuthenticatesValidKeysAndRefusesTheRestWithAnAuditEvent) {
  Authenticator authenticator(store_.get(), &clock_);
  Caller admin = Caller::Local("test");
  ProjectSpec spec;
  spec.name = "finance";
  auto project = CreateProject(*store_, admin, spec, 1000);
  ASSERT_OK(project);
  auto key = CreateKey(*store_, admin, {"alice", "finance", "user", false}, 1000);
  ASSERT_OK(key);
  auto caller = authenticator.Authenticate("Bearer " + key->token, "10.0.0.1:5000", "req_1");
  ASSERT_OK(caller);
  EXPECT_EQ(caller->principal, "alice");
  EXPECT_EQ(caller->project_id, project->id);
  EXPECT_EQ(caller->role, Role::kUser);

  std::string wrong_secret = key->token.substr(0, key->token.size() - 1) +
                             (key->token.back() == '0' ? "1" : "0");
  for (const std::string& header : {std::string(""), std::string("Basic abc"),
                                    std::string("Bearer nonsense"), "Bearer " + wrong_secret}) {
    auto refused = authenticator.Authenticate(header, "10.0.0.2:5000", "req_2");
    EXPECT_TRUE(refused.status().IsUnauthenticated()) << header;
  }
  ASSERT_OK(RevokeKey(*store_, admin, key->row.id, 2000));
  EXPECT_TRUE(authenticator.Authenticate("Bearer " + key->token, "10.0.0.1:5000", "req_3")
                  .status()
                  .IsUnauthenticated());
  store::AuditFilter denied;
  denied.action = "auth.denied";
  auto events = store_->ListAudit(denied);
  ASSERT_OK(events);
  EXPECT_EQ(events->size(), 5u);
}

TEST_F(DirectoryTest, ManyFailuresFromOneAddressAreRateLimitedUntilTheWindowPasses) {
  Authenticator authenticator(store_.get(), &clock_);
  for (int i = 0; i < Authenticator::kMaxFailures; ++i) {
    EXPECT_TRUE(authenticator.Authenticate("Bearer x", "10.0.0.9:1", "").status().IsUnauthenticated());
  }
  auto limited = authenticator.Authenticate("Bearer x", "10.0.0.9:2", "");
  EXPECT_EQ(limited.status().reason(), "too_many_failures");
  EXPECT_GT(limited.status().retry_after_s(), 0);
  // Another address is not affected.
  EXPECT_TRUE(authenticator.Authenticate("Bearer x", "10.0.0.10:1", "").status().IsUnauthenticated());
  clock_.Advance(Authenticator::kFailureWindow);
  EXPECT_TRUE(authenticator.Authenticate("Bearer x", "10.0.0.9:3", "").status().IsUnauthenticated());
}

TEST_F(DirectoryTest, KeysAndProjectsAreCheckedOnTheWayIn) {
  Caller admin = Caller::Local("test");
  EXPECT_FALSE(CreateKey(*store_, admin, {"", "", "user", false}, 1).ok());
  EXPECT_FALSE(CreateKey(*store_, admin, {"bob", "", "root", false}, 1).ok());
  EXPECT_FALSE(CreateKey(*store_, admin, {"bob", "", "user", true}, 1).ok());  // all_projects.
  EXPECT_TRUE(CreateKey(*store_, admin, {"bob", "nosuch", "user", false}, 1).status().IsNotFound());
  ProjectSpec bad;
  bad.name = "Finance!";
  EXPECT_FALSE(CreateProject(*store_, admin, bad, 1).ok());
  ProjectSpec ok;
  ok.name = "ops";
  ASSERT_OK(CreateProject(*store_, admin, ok, 1));
  EXPECT_EQ(CreateProject(*store_, admin, ok, 1).status().reason(), "already_exists");
}

}  // namespace
}  // namespace pycell::auth
