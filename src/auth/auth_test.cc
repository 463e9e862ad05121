// Keys, roles and scope: the pure parts of src/auth, and the directory over a real SQLite store.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <thread>

#include "auth/api_key.h"
#include "auth/authenticator.h"
#include "auth/caller.h"
#include "auth/directory.h"
#include "auth/roles.h"
#include "common/clock.h"
#include "common/ip_address.h"
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

  std::string wrong_secret =
      key->token.substr(0, key->token.size() - 1) + (key->token.back() == '0' ? "1" : "0");
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
    EXPECT_TRUE(
        authenticator.Authenticate("Bearer x", "10.0.0.9:1", "").status().IsUnauthenticated());
  }
  auto limited = authenticator.Authenticate("Bearer x", "10.0.0.9:2", "");
  EXPECT_EQ(limited.status().reason(), "too_many_failures");
  EXPECT_GT(limited.status().retry_after_s(), 0);
  // Another address is not affected.
  EXPECT_TRUE(
      authenticator.Authenticate("Bearer x", "10.0.0.10:1", "").status().IsUnauthenticated());
  clock_.Advance(Authenticator::kFailureWindow);
  EXPECT_TRUE(
      authenticator.Authenticate("Bearer x", "10.0.0.9:3", "").status().IsUnauthenticated());
}

// Issue 16, row 8: 20 wrong keys from one address locked out the valid keys sent from it too —
// behind a reverse proxy, everyone. The lockout refuses failures only.
class LockoutTest : public DirectoryTest {
 protected:
  void SetUp() override {
    DirectoryTest::SetUp();
    Caller admin = Caller::Local("test");
    auto key = CreateKey(*store_, admin, {"alice", "", "user", false}, 1000);
    ASSERT_OK(key);
    valid_ = "Bearer " + key->token;
    wrong_secret_ = "Bearer " + key->token.substr(0, key->token.size() - 1) +
                    (key->token.back() == '0' ? "1" : "0");
    auto revoked = CreateKey(*store_, admin, {"bob", "", "user", false}, 1000);
    ASSERT_OK(revoked);
    ASSERT_OK(RevokeKey(*store_, admin, revoked->row.id, 1500));
    revoked_ = "Bearer " + revoked->token;
  }
  // Sends failures from `peer` until the address is locked out.
  void LockOut(Authenticator& authenticator, const std::string& peer) {
    for (int i = 0; i < Authenticator::kMaxFailures; ++i) {
      ASSERT_TRUE(authenticator.Authenticate(wrong_secret_, peer, "").status().IsUnauthenticated());
    }
    ASSERT_EQ(authenticator.Authenticate(wrong_secret_, peer, "").status().reason(),
              "too_many_failures");
  }
  size_t DeniedEvents() {
    store::AuditFilter denied;
    denied.action = "auth.denied";
    denied.limit = 10000;
    auto events = store_->ListAudit(denied);
    EXPECT_TRUE(events.ok());
    return events.ok() ? events->size() : 0;
  }
  std::string valid_, wrong_secret_, revoked_;
};

TEST_F(LockoutTest, AValidKeyIsAcceptedFromALockedOutAddress) {
  Authenticator authenticator(store_.get(), &clock_);
  LockOut(authenticator, "10.0.0.9:1");
  // The same address, any port, many times: the valid key always gets in.
  for (int i = 0; i < 3 * Authenticator::kMaxFailures; ++i) {
    auto caller = authenticator.Authenticate(valid_, "10.0.0.9:" + std::to_string(2000 + i), "");
    ASSERT_OK(caller);
    EXPECT_EQ(caller->principal, "alice");
  }
  // Every kind of failure from that address is a 429 with Retry-After, not a 401.
  for (const std::string& header :
       {std::string(""), std::string("Basic abc"), std::string("Bearer nonsense"), wrong_secret_,
        revoked_, std::string("Bearer pyc_") + std::string(26, '0') + "_" + std::string(32, '0')}) {
    auto refused = authenticator.Authenticate(header, "10.0.0.9:3", "");
    EXPECT_EQ(refused.status().reason(), "too_many_failures") << header;
    EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted) << header;  // 429
    EXPECT_GT(refused.status().retry_after_s(), 0) << header;
    EXPECT_LE(refused.status().retry_after_s(),
              std::chrono::seconds(Authenticator::kFailureWindow).count() + 1);
  }
  // A valid key does not reset the count either: failures stay refused after it.
  ASSERT_OK(authenticator.Authenticate(valid_, "10.0.0.9:4", ""));
  EXPECT_EQ(authenticator.Authenticate(wrong_secret_, "10.0.0.9:5", "").status().reason(),
            "too_many_failures");
  // The lockout ends with its window.
  clock_.Advance(Authenticator::kFailureWindow);
  EXPECT_TRUE(
      authenticator.Authenticate(wrong_secret_, "10.0.0.9:6", "").status().IsUnauthenticated());
  ASSERT_OK(authenticator.Authenticate(valid_, "10.0.0.9:7", ""));
}

TEST_F(LockoutTest, LockedOutFailuresAreNotAuditedOneByOne) {
  Authenticator authenticator(store_.get(), &clock_);
  size_t before = DeniedEvents();
  LockOut(authenticator, "10.0.0.9:1");
  for (int i = 0; i < 500; ++i) {
    EXPECT_FALSE(authenticator.Authenticate(wrong_secret_, "10.0.0.9:1", "").ok());
  }
  EXPECT_EQ(DeniedEvents() - before, static_cast<size_t>(Authenticator::kMaxFailures));
}

TEST_F(LockoutTest, AddressesAreParsedNotCutAtTheLastColon) {
  Authenticator authenticator(store_.get(), &clock_);
  // IPv6 with a port, in brackets: the address is the part inside.
  LockOut(authenticator, "[2001:db8::7]:5000");
  EXPECT_EQ(authenticator.Authenticate(wrong_secret_, "[2001:db8::7]:6000", "").status().reason(),
            "too_many_failures");
  // A bare IPv6 address (a client named by X-Forwarded-For) is the same client.
  EXPECT_EQ(authenticator.Authenticate(wrong_secret_, "2001:db8::7", "").status().reason(),
            "too_many_failures");
  ASSERT_OK(authenticator.Authenticate(valid_, "2001:db8::7", ""));
  // Another /64 is another client; the same /64 is the same one (a host holds a whole /64).
  EXPECT_TRUE(authenticator.Authenticate(wrong_secret_, "[2001:db8:0:1::7]:5000", "")
                  .status()
                  .IsUnauthenticated());
  EXPECT_EQ(authenticator.Authenticate(wrong_secret_, "[2001:db8::8]:5000", "").status().reason(),
            "too_many_failures");
  // IPv4, with and without a port, is one client; a neighbour is not.
  LockOut(authenticator, "192.0.2.1:80");
  EXPECT_EQ(authenticator.Authenticate("", "192.0.2.1", "").status().reason(), "too_many_failures");
  EXPECT_TRUE(authenticator.Authenticate("", "192.0.2.10:80", "").status().IsUnauthenticated());
  ASSERT_OK(authenticator.Authenticate(valid_, "192.0.2.1:81", ""));
}

TEST_F(LockoutTest, ValidKeysGetInWhileManyThreadsFailFromTheSameAddress) {
  Authenticator authenticator(store_.get(), &clock_);
  std::atomic<int> refused_valid{0}, accepted_wrong{0}, answered_failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 60; ++i) {
        if (t % 2 == 0) {
          if (!authenticator.Authenticate(valid_, "10.1.1.1:1", "").ok()) refused_valid++;
        } else {
          auto r = authenticator.Authenticate(wrong_secret_, "10.1.1.1:2", "");
          if (r.ok()) accepted_wrong++;
          if (r.status().IsUnauthenticated() || r.status().reason() == "too_many_failures") {
            answered_failures++;
          }
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(refused_valid.load(), 0);
  EXPECT_EQ(accepted_wrong.load(), 0);
  EXPECT_EQ(answered_failures.load(), 3 * 60);
}

TEST(IpAddressTest, ParsesAddressesAndTheFormsProxiesWrite) {
  auto v4 = IpAddress::Parse("10.0.0.1");
  ASSERT_TRUE(v4);
  EXPECT_TRUE(v4->is_v4());
  EXPECT_EQ(v4->ToString(), "10.0.0.1");
  EXPECT_EQ(IpAddress::Parse("::ffff:10.0.0.1"), v4);  // Mapped: the same client.
  auto v6 = IpAddress::Parse("2001:DB8:0:0::1");
  ASSERT_TRUE(v6);
  EXPECT_FALSE(v6->is_v4());
  EXPECT_EQ(v6->ToString(), "2001:db8::1");
  EXPECT_EQ(v6->ConnectionKey(), "2001:db8::/64");
  EXPECT_EQ(IpAddress::Parse("10.0.0.1:8080", true), v4);
  EXPECT_EQ(IpAddress::Parse("[2001:db8::1]:443", true), v6);
  EXPECT_EQ(IpAddress::Parse("[2001:db8::1]", true), v6);
  EXPECT_EQ(IpAddress::Parse("2001:db8::1", true), v6);
  for (const char* bad :
       {"", " ", "unknown", "_hidden", "localhost", "10.0.0", "10.0.0.256",
        "10.0.0.1:", "10.0.0.1:http", "10.0.0.1:123456", "[10.0.0.1]", "[2001:db8::1",
        "[2001:db8::1]x", "fe80::1%eth0", "10.0.0.1 ", "1.2.3.4.5", "::1::2", "0x0a000001"}) {
    EXPECT_FALSE(IpAddress::Parse(bad, true)) << bad;
  }
  EXPECT_FALSE(IpAddress::Parse("10.0.0.1:80"));  // Without allow_port: no port.
}

TEST(IpRangeTest, ParsesCidrsAndRefusesMistakes) {
  auto ten = IpRange::Parse("10.0.0.0/8");
  ASSERT_OK(ten);
  EXPECT_TRUE(ten->Contains(*IpAddress::Parse("10.255.1.2")));
  EXPECT_TRUE(ten->Contains(*IpAddress::Parse("::ffff:10.1.2.3")));
  EXPECT_FALSE(ten->Contains(*IpAddress::Parse("11.0.0.1")));
  EXPECT_FALSE(ten->Contains(*IpAddress::Parse("::a00:1")));  // Not IPv4-mapped.
  auto one = IpRange::Parse("192.0.2.7");
  ASSERT_OK(one);
  EXPECT_EQ(one->ToString(), "192.0.2.7/32");
  EXPECT_TRUE(one->Contains(*IpAddress::Parse("192.0.2.7")));
  EXPECT_FALSE(one->Contains(*IpAddress::Parse("192.0.2.6")));
  auto v6 = IpRange::Parse("2001:db8::/33");
  ASSERT_OK(v6);
  EXPECT_TRUE(v6->Contains(*IpAddress::Parse("2001:db8:7fff::1")));
  EXPECT_FALSE(v6->Contains(*IpAddress::Parse("2001:db8:8000::1")));
  auto all = IpRange::Parse("0.0.0.0/0");
  ASSERT_OK(all);
  EXPECT_TRUE(all->Contains(*IpAddress::Parse("203.0.113.9")));
  EXPECT_FALSE(all->Contains(*IpAddress::Parse("2001:db8::1")));  // IPv4's /0 is IPv4 only.
  for (const char* bad :
       {"", "10.0.0.0/33", "10.0.0.1/8", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8/8",
        "2001:db8::/129", "2001:db8::1/32", "proxy.local", "10.0.0.0/ 8", "10.0.0.0/0008"}) {
    EXPECT_FALSE(IpRange::Parse(bad).ok()) << bad;
  }
  auto listed = ParseIpRanges({"10.0.0.0/8", "bad"}, "server.trusted_proxies");
  ASSERT_FALSE(listed.ok());
  EXPECT_NE(listed.status().message().find("server.trusted_proxies[1]"), std::string::npos);
}

TEST(ClientAddressTest, XForwardedForCountsOnlyFromTrustedProxies) {
  auto ranges = ParseIpRanges({"10.0.0.0/8", "::1"}, "trusted");
  ASSERT_OK(ranges);
  const auto& trusted = *ranges;
  auto ip = [](const char* text) { return *IpAddress::Parse(text); };
  // An untrusted peer: the header is ignored, whatever it says.
  EXPECT_EQ(ClientAddress(ip("203.0.113.5"), "198.51.100.1", trusted), ip("203.0.113.5"));
  EXPECT_EQ(ClientAddress(ip("203.0.113.5"), "10.0.0.1", trusted), ip("203.0.113.5"));
  EXPECT_EQ(ClientAddress(ip("203.0.113.5"), "garbage", trusted), ip("203.0.113.5"));
  // No trusted proxies at all (the default): never the header.
  EXPECT_EQ(ClientAddress(ip("10.0.0.2"), "198.51.100.1", {}), ip("10.0.0.2"));
  // A trusted proxy: the rightmost untrusted entry. What the client wrote to the left (a
  // spoofed address) does not count.
  EXPECT_EQ(ClientAddress(ip("10.0.0.2"), "198.51.100.1", trusted), ip("198.51.100.1"));
  EXPECT_EQ(ClientAddress(ip("10.0.0.2"), "1.1.1.1, 198.51.100.1", trusted), ip("198.51.100.1"));
  EXPECT_EQ(ClientAddress(ip("10.0.0.2"), "1.1.1.1, 198.51.100.1, 10.9.9.9", trusted),
            ip("198.51.100.1"));
  EXPECT_EQ(ClientAddress(ip("10.0.0.2"), "1.1.1.1,198.51.100.1:4711 ,10.9.9.9,", trusted),
            ip("198.51.100.1"));
  EXPECT_EQ(ClientAddress(ip("::1"), "[2001:db8::5]:443", trusted), ip("2001:db8::5"));
  // A client cannot pass itself off as trusted to reach further left: the walk stops at the
  // first untrusted entry.
  EXPECT_EQ(ClientAddress(ip("10.0.0.2"), "8.8.8.8, 10.0.0.3, 198.51.100.1", trusted),
            ip("198.51.100.1"));
  // No header, or only trusted hops: the leftmost trusted address seen.
  EXPECT_EQ(ClientAddress(ip("10.0.0.2"), "", trusted), ip("10.0.0.2"));
  EXPECT_EQ(ClientAddress(ip("10.0.0.2"), " , ", trusted), ip("10.0.0.2"));
  EXPECT_EQ(ClientAddress(ip("10.0.0.2"), "10.0.0.7, 10.0.0.8", trusted), ip("10.0.0.7"));
  // A malformed entry ends the walk at the nearest trusted hop, never at something unparsed.
  EXPECT_EQ(ClientAddress(ip("10.0.0.2"), "198.51.100.1, unknown", trusted), ip("10.0.0.2"));
  EXPECT_EQ(ClientAddress(ip("10.0.0.2"), "198.51.100.1, unknown, 10.0.0.8", trusted),
            ip("10.0.0.8"));
  // A huge header is walked at most 64 hops from the right.
  std::string many;
  for (int i = 0; i < 10000; ++i) many += "10.0.0.9, ";
  many += "10.0.0.1";
  EXPECT_TRUE(ClientAddress(ip("10.0.0.2"), "198.51.100.1, " + many, trusted).is_v4());
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
