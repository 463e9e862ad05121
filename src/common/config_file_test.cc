#include "common/config_file.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/config_json.h"
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
  EXPECT_TRUE(config->diagnostic_settings.empty());
}

// The example's diagnostic settings are commented out; uncommented, they are a valid setting.
TEST(ConfigFileTest, TheExampleDiagnosticSettingsParseWhenUncommented) {
  std::ifstream in(std::string(PYCELL_SOURCE_DIR) + "/pycell.example.toml");
  ASSERT_TRUE(in.good());
  std::string text;
  bool in_example = false;
  for (std::string line; std::getline(in, line);) {
    if (line == "# [[diagnostic_settings]]") in_example = true;
    if (in_example && line.rfind("# ", 0) == 0) text += line.substr(2) + "\n";
    if (in_example && line == "#") text += "\n";
  }
  ASSERT_FALSE(text.empty());
  auto config = ParseConfig(text, "uncommented example");
  ASSERT_OK(config);
  EXPECT_EQ(config->diagnostic_settings.size(), 3u);
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
)",
                            "test.toml");
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
  ExpectRefused("[[pools]]\nname = \"a\"\n[pools.limits]\nmemroy = \"1g\"\n",
                "pools[0].limits.memroy");
  ExpectRefused("[[pools]]\nname = \"a\"\n[pools.limits]\nmemory = \"lots\"\n",
                "pools[0].limits.memory");
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
  ExpectRefused("[store]\nurl = \"mysql://db/pycell\"\n", "store.url");
  ExpectRefused("[store]\nuri = \"postgresql://db/pycell\"\n", "store.uri");
}

TEST(ConfigFileTest, TheStoreIsSqliteUnlessAPostgresqlUrlIsGivenAndTheUrlIsNeverShown) {
  auto sqlite = ParseConfig("", "t.toml");
  ASSERT_OK(sqlite);
  EXPECT_FALSE(sqlite->store.postgresql());
  EXPECT_EQ(ConfigToJson(*sqlite)["store"]["backend"], "sqlite");
  auto postgres = ParseConfig(
      "[store]\nurl = \"postgresql://pycell:s3cret@db.internal:5432/pycell\"\n", "t.toml");
  ASSERT_OK(postgres);
  EXPECT_TRUE(postgres->store.postgresql());
  const std::string shown = ConfigToJson(*postgres).dump();
  EXPECT_NE(shown.find("\"backend\":\"postgresql\""), std::string::npos) << shown;
  EXPECT_EQ(shown.find("s3cret"), std::string::npos) << shown;
  EXPECT_EQ(shown.find("db.internal"), std::string::npos) << shown;
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

TEST(ConfigFileTest, ReadsDiagnosticSettings) {
  auto config = ParseConfig(R"(
[[diagnostic_settings]]
name = "audit-to-file"
categories = ["audit", "security"]
sink = "file"
path = "/var/log/pycell/audit.jsonl"
max_bytes = "10m"
keep = 3

[[diagnostic_settings]]
name = "siem"
categories = ["security"]
sink = "webhook"
url = "https://siem.example/ingest"
batch_max = 50
flush_interval_ms = 2000
max_retries = 8
backoff_ms = 250
queue_max = 500
timeout_ms = 3000

[[diagnostic_settings]]
name = "journal"
categories = ["requests"]
sink = "syslog"
facility = "local0"
ident = "pycell-api"
)",
                            "t.toml");
  ASSERT_OK(config);
  ASSERT_EQ(config->diagnostic_settings.size(), 3u);
  const DiagnosticSetting& file = config->diagnostic_settings[0];
  EXPECT_EQ(file.name, "audit-to-file");
  EXPECT_EQ(file.categories, (std::vector<std::string>{"audit", "security"}));
  EXPECT_EQ(file.sink, "file");
  EXPECT_EQ(file.path, "/var/log/pycell/audit.jsonl");
  EXPECT_EQ(file.max_bytes, 10ull << 20);
  EXPECT_EQ(file.keep, 3u);
  EXPECT_EQ(file.queue_max, DiagnosticSetting().queue_max);  // Defaults where left out.
  const DiagnosticSetting& hook = config->diagnostic_settings[1];
  EXPECT_EQ(hook.url, "https://siem.example/ingest");
  EXPECT_EQ(hook.batch_max, 50u);
  EXPECT_EQ(hook.flush_interval, std::chrono::milliseconds(2000));
  EXPECT_EQ(hook.max_retries, 8u);
  EXPECT_EQ(hook.backoff, std::chrono::milliseconds(250));
  EXPECT_EQ(hook.queue_max, 500u);
  EXPECT_EQ(hook.timeout, std::chrono::milliseconds(3000));
  EXPECT_EQ(config->diagnostic_settings[2].facility, "local0");
  EXPECT_EQ(config->diagnostic_settings[2].ident, "pycell-api");
  EXPECT_TRUE(ParseConfig("", "t.toml")->diagnostic_settings.empty());
}

// A [[diagnostic_settings]] table "a" for the audit category, with `rest` after.
std::string AuditSetting(const std::string& rest) {
  return "[[diagnostic_settings]]\nname = \"a\"\ncategories = [\"audit\"]\n" + rest;
}

TEST(ConfigFileTest, RefusesWrongDiagnosticSettingsAndSaysWhere) {
  const std::string file = AuditSetting("sink = \"file\"\npath = \"/tmp/a.jsonl\"\n");
  ASSERT_OK(ParseConfig(file, "t.toml"));
  ExpectRefused(file + "pth = \"x\"\n", "diagnostic_settings[0].pth");
  ExpectRefused(file + "url = \"http://127.0.0.1:1/\"\n", "diagnostic_settings[0].url");
  ExpectRefused(file + "keep = \"3\"\n", "diagnostic_settings[0].keep");
  ExpectRefused(file + "keep = -1\n", "diagnostic_settings[0].keep");
  ExpectRefused(file + "max_bytes = \"1q\"\n", "diagnostic_settings[0].max_bytes");
  ExpectRefused(file + file, "diagnostic_settings[1].name");
  ExpectRefused(file + AuditSetting("sink = \"kafka\"\nurl = \"x\"\n"),
                "diagnostic_settings[1].sink");
  ExpectRefused(AuditSetting(""), "diagnostic_settings[0].sink");
  ExpectRefused(AuditSetting("sink = \"file\"\n"), "diagnostic_settings[0].path");
  ExpectRefused(AuditSetting("sink = \"webhook\"\nbatch_max = 10\n"), "diagnostic_settings[0].url");
  ExpectRefused(AuditSetting("sink = \"syslog\"\nfacility = \"kern\"\n"),
                "diagnostic_settings[0].facility");
  ExpectRefused("[[diagnostic_settings]]\nname = \"a\"\ncategories = [\"audits\"]\n",
                "diagnostic_settings[0].categories");
  ExpectRefused("[[diagnostic_settings]]\nname = \"a\"\ncategories = \"audit\"\n",
                "diagnostic_settings[0].categories");
  ExpectRefused("diagnostic_settings = 1\n", "diagnostic_settings");
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
