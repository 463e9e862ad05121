#include "kernel/policy_json.h"

#include <nlohmann/json.hpp>
#include <string>

#include "test_util.h"

namespace pycell::kernel {
namespace {

using nlohmann::json;

// A policy with every field away from its default, so a dropped field shows.
sandbox::Policy SamplePolicy() {
  sandbox::Policy p;
  p.session_dir = "/var/lib/pycell/sessions/sess_01hz";
  p.hostname = "cell-7";
  p.host_uid_init = 100000;
  p.host_uid_user = 101000;
  p.host_gid_init = 200000;
  p.host_gid_user = 201000;
  p.readonly_binds = {"/usr", "/etc/ssl", "/lib64"};
  p.memory_bytes = 3ull << 30;
  p.max_pids = 77;
  p.cpus = 1.5;
  p.data_bytes = 5ull << 30;  // Over 32 bits on purpose.
  p.tmp_bytes = 300ull << 20;
  p.max_file_bytes = 123456789;
  p.max_open_files = 4096;
  p.seccomp = false;
  p.private_runtime = false;  // Not the default, so the round trip shows it is carried.
  return p;
}

TEST(PolicyJsonTest, RoundTripKeepsEveryField) {
  sandbox::Policy in = SamplePolicy();
  Result<sandbox::Policy> out = DecodePolicy(EncodePolicy(in));
  ASSERT_OK(out);
  EXPECT_EQ(out->session_dir, in.session_dir);
  EXPECT_EQ(out->hostname, in.hostname);
  EXPECT_EQ(out->host_uid_init, in.host_uid_init);
  EXPECT_EQ(out->host_uid_user, in.host_uid_user);
  EXPECT_EQ(out->host_gid_init, in.host_gid_init);
  EXPECT_EQ(out->host_gid_user, in.host_gid_user);
  EXPECT_EQ(out->readonly_binds, in.readonly_binds);
  EXPECT_EQ(out->memory_bytes, in.memory_bytes);
  EXPECT_EQ(out->max_pids, in.max_pids);
  EXPECT_EQ(out->cpus, in.cpus);
  EXPECT_EQ(out->data_bytes, in.data_bytes);
  EXPECT_EQ(out->tmp_bytes, in.tmp_bytes);
  EXPECT_EQ(out->max_file_bytes, in.max_file_bytes);
  EXPECT_EQ(out->max_open_files, in.max_open_files);
  EXPECT_EQ(out->seccomp, in.seccomp);
  EXPECT_EQ(out->private_runtime, in.private_runtime);
}

TEST(PolicyJsonTest, RoundTripKeepsAwkwardStrings) {
  sandbox::Policy in = SamplePolicy();
  in.session_dir = "/tmp/with \"quotes\", back\\slash and caf\xC3\xA9";
  in.readonly_binds = {};
  Result<sandbox::Policy> out = DecodePolicy(EncodePolicy(in));
  ASSERT_OK(out);
  EXPECT_EQ(out->session_dir, in.session_dir);
  EXPECT_TRUE(out->readonly_binds.empty());
}

TEST(PolicyJsonTest, MalformedJsonIsInvalidArgument) {
  const std::string encoded = EncodePolicy(SamplePolicy());
  const std::string inputs[] = {"",
                                "{",
                                "}",
                                "[]",
                                "null",
                                "42",
                                "\"policy\"",
                                "{\"session_dir\": }",
                                "not json at all",
                                encoded.substr(0, encoded.size() / 2),  // Truncated.
                                encoded + "garbage",                    // Trailing bytes.
                                std::string("{\"session_dir\":\"a\0b\"}", 21)};
  for (const std::string& input : inputs) {
    Result<sandbox::Policy> r = DecodePolicy(input);
    EXPECT_TRUE(r.status().IsInvalidArgument()) << "'" << input << "': " << r.status().ToString();
  }
}

TEST(PolicyJsonTest, EachMissingFieldIsInvalidArgument) {
  const json full = json::parse(EncodePolicy(SamplePolicy()));
  for (const auto& [key, value] : full.items()) {
    json partial = full;
    partial.erase(key);
    Result<sandbox::Policy> r = DecodePolicy(partial.dump());
    EXPECT_TRUE(r.status().IsInvalidArgument()) << "without " << key;
  }
}

TEST(PolicyJsonTest, WrongTypesAreInvalidArgument) {
  struct Case {
    const char* field;
    json value;
  };
  const Case cases[] = {
      {"session_dir", 42},        {"session_dir", nullptr},         {"hostname", json::array()},
      {"host_uid_init", "0"},     {"host_gid_user", "0"},           {"readonly_binds", "/usr"},
      {"readonly_binds", {1, 2}}, {"readonly_binds", {{"a", "b"}}}, {"memory_bytes", "2g"},
      {"memory_bytes", nullptr},  {"max_pids", json::object()},     {"cpus", "1.5"},
      {"data_bytes", false},      {"max_open_files", {1}},          {"seccomp", 1},
      {"seccomp", "true"},        {"private_runtime", 0},           {"private_runtime", nullptr},
  };
  for (const Case& c : cases) {
    json policy = json::parse(EncodePolicy(SamplePolicy()));
    policy[c.field] = c.value;
    Result<sandbox::Policy> r = DecodePolicy(policy.dump());
    EXPECT_TRUE(r.status().IsInvalidArgument())
        << c.field << " = " << c.value.dump() << ": " << r.status().ToString();
  }
}

TEST(PolicyJsonTest, ErrorNamesTheField) {
  json policy = json::parse(EncodePolicy(SamplePolicy()));
  policy.erase("max_pids");
  Result<sandbox::Policy> r = DecodePolicy(policy.dump());
  EXPECT_NE(r.status().message().find("max_pids"), std::string::npos) << r.status().message();
}

TEST(PolicyJsonTest, UnknownFieldsAreIgnored) {
  json policy = json::parse(EncodePolicy(SamplePolicy()));
  policy["added_later"] = {1, 2, 3};
  ASSERT_OK(DecodePolicy(policy.dump()));
}

// Regression test: this failed before the fix that came with it.
TEST(PolicyJsonTest, OutOfRangeNumbersAreInvalidArgument) {
  struct Case {
    const char* field;
    json value;
  };
  const Case cases[] = {
      {"host_uid_user", -1},   {"max_pids", -1},     {"max_pids", 4294967301ull},
      {"max_open_files", 1.5}, {"memory_bytes", -1}, {"memory_bytes", 1e30},
      {"host_gid_user", true}, {"max_pids", true},
  };
  for (const Case& c : cases) {
    json policy = json::parse(EncodePolicy(SamplePolicy()));
    policy[c.field] = c.value;
    Result<sandbox::Policy> r = DecodePolicy(policy.dump());
    EXPECT_TRUE(r.status().IsInvalidArgument()) << c.field << " = " << c.value.dump();
  }
}

}  // namespace
}  // namespace pycell::kernel
