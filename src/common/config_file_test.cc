#include "common/config_file.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "test_util.h"

namespace pycell {
namespace {

// The message names the offending key, so a typo is found at once.
void ExpectRefused(const std::string& text, const std::string& key) {
  auto config = ParseConfig(text, "test.toml");
  ASSERT_FALSE(config.ok()) << text;
  EXPECT_TRUE(config.status().IsInvalidArgument());
  EXPECT_NE(config.status().message().find(key), std::string::npos)
      << "expected '" << key << "' in: " << config.status().message();
}

TEST(ConfigFileTest, EmptyFileKeepsTheDefaults) {
  auto config = ParseConfig("", "test.toml");
  ASSERT_OK(config.status());
  EXPECT_EQ(config->server.listen, "127.0.0.1:8080");
  ASSERT_EQ(config->pools.size(), 1u);
  EXPECT_EQ(config->pools[0].name, "default");
  EXPECT_EQ(config->pools[0].limits.memory_bytes, 2ull << 30);
  EXPECT_EQ(config->retention.input_files, std::chrono::hours(24 * 30));
}

TEST(ConfigFileTest, TheExampleFileParsesToTheDefaults) {
  std::ifstream in(std::string(PYCELL_SOURCE_DIR) + "/pycell.example.toml");
  ASSERT_TRUE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  auto config = ParseConfig(text.str(), "pycell.example.toml");
  ASSERT_OK(config.status());
  ServiceConfig defaults;
  EXPECT_EQ(config->server.listen, defaults.server.listen);
  EXPECT_EQ(config->pools[0].limits.memory_bytes, defaults.pools[0].limits.memory_bytes);
  EXPECT_EQ(config->pools[0].limits.idle_timeout, defaults.pools[0].limits.idle_timeout);
  EXPECT_EQ(config->pools[0].preload, defaults.pools[0].preload);
}

TEST(ConfigFileTest, ReadsPoolsAndLimits) {
  auto config = ParseConfig(R"(
[server]
listen = "0.0.0.0:9000"
[[pools]]
name = "small"
ready_sessions = 1
preload = ["numpy"]
[pools.limits]
memory = "512m"
execution_timeout_s = 30
[[pools]]
name = "big"
[pools.limits]
memory = 4294967296
)", "test.toml");
  ASSERT_OK(config.status());
  EXPECT_EQ(config->server.listen, "0.0.0.0:9000");
  ASSERT_EQ(config->pools.size(), 2u);
  EXPECT_EQ(config->pools[0].name, "small");
  EXPECT_EQ(config->pools[0].limits.memory_bytes, 512ull << 20);
  EXPECT_EQ(config->pools[0].limits.execution_timeout, std::chrono::seconds(30));
  EXPECT_EQ(config->pools[0].preload, std::vector<std::string>{"numpy"});
  EXPECT_EQ(config->pools[1].limits.memory_bytes, 4ull << 30);
}

TEST(ConfigFileTest, RefusesWhatIsWrongAndSaysWhere) {
  ExpectRefused("[server]\nlisen = \"x:1\"\n", "server.lisen");
  ExpectRefused("[server]\nlisten = 8080\n", "server.listen");
  ExpectRefused("[server]\nlisten = \"nocolon\"\n", "server.listen");
  ExpectRefused("[serverr]\n", "serverr");
  ExpectRefused("[[pools]]\nname = \"a\"\n[pools.limits]\nmemroy = \"1g\"\n", "pools[0].limits.memroy");
  ExpectRefused("[[pools]]\nname = \"a\"\n[pools.limits]\nmemory = \"lots\"\n", "pools[0].limits.memory");
  ExpectRefused("[[pools]]\nname = \"a\"\n[pools.limits]\nmemory = \"1m\"\n", "memory");
  ExpectRefused("[[pools]]\nname = \"a\"\n[[pools]]\nname = \"a\"\n", "defined twice");
  ExpectRefused("[[pools]]\nname = \"a\"\nready_sessions = -1\n", "pools[0].ready_sessions");
  ExpectRefused("[engine]\nmax_sessions = \"many\"\n", "engine.max_sessions");
  ExpectRefused("[retention]\ninput_files_days = 1.5\n", "retention.input_files_days");
  ExpectRefused("pools = 3\n", "pools");
  ExpectRefused("[prices]\nprice_per_cpu_hour = -1\n", "prices.price_per_cpu_hour");
  ExpectRefused("[prices]\nprice_per_sesion = 0.03\n", "prices.price_per_sesion");
  ExpectRefused("[prices]\ncurrency = \"\"\n", "prices.currency");
  ExpectRefused("[usage]\nexpected_session_s = -5\n", "usage.expected_session_s");
  ExpectRefused("[server]\nmetrics_listen = \"0.0.0.0:9464\"\n", "server.metrics_listen");
}

TEST(ConfigFileTest, PricesAndUsageAreRead) {
  auto config = ParseConfig(
      "[prices]\ncurrency = \"EUR\"\nprice_per_session = 0.03\nprice_per_cpu_hour = 2\n"
      "[usage]\nexpected_session_s = 600\n",
      "t.toml");
  ASSERT_OK(config);
  EXPECT_EQ(config->prices.currency, "EUR");
  EXPECT_DOUBLE_EQ(config->prices.per_session, 0.03);
  EXPECT_DOUBLE_EQ(config->prices.per_cpu_hour, 2);  // An integer is a number too.
  EXPECT_EQ(config->usage.expected_session, std::chrono::seconds(600));
}

TEST(ConfigFileTest, SyntaxErrorsNameTheLine) {
  auto config = ParseConfig("[server]\nlisten = \"unterminated\n", "bad.toml");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("bad.toml:2"), std::string::npos)
      << config.status().message();
}

TEST(ConfigFileTest, MissingFileIsAClearError) {
  auto config = LoadConfigFile("/nonexistent/pycell.toml");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("/nonexistent/pycell.toml"), std::string::npos);
}

}  // namespace
}  // namespace pycell
