#include "common/config.h"

#include <cmath>
#include <limits>
#include <string>

#include "test_util.h"

namespace pycell {
namespace {

TEST(ParseByteSizeTest, AcceptsEachUnit) {
  struct Case {
    const char* text;
    uint64_t bytes;
  };
  const Case cases[] = {{"1024", 1024},
                        {"0", 0},
                        {"10b", 10},
                        {"64k", 64ull << 10},
                        {"64K", 64ull << 10},
                        {"64KiB", 64ull << 10},
                        {"512m", 512ull << 20},
                        {"512M", 512ull << 20},
                        {"512MiB", 512ull << 20},
                        {"2g", 2ull << 30},
                        {"2G", 2ull << 30},
                        {"2GiB", 2ull << 30}};
  for (const Case& c : cases) {
    Result<uint64_t> r = ParseByteSize(c.text);
    ASSERT_OK(r);
    EXPECT_EQ(*r, c.bytes) << c.text;
  }
}

TEST(ParseByteSizeTest, RejectsUnknownUnits) {
  for (const char* text : {"2x", "2gb", "2 g", "2T", "2kk", "1.5g", "2g ", "12e3"}) {
    Result<uint64_t> r = ParseByteSize(text);
    EXPECT_TRUE(r.status().IsInvalidArgument()) << text << ": " << r.status().ToString();
  }
}

TEST(ParseByteSizeTest, RejectsTextThatIsNotANumber) {
  for (const char* text : {"", "g", "m512", " 512m", "+512m", "0x10", "lots"}) {
    Result<uint64_t> r = ParseByteSize(text);
    EXPECT_TRUE(r.status().IsInvalidArgument()) << "'" << text << "'";
  }
}

TEST(ParseByteSizeTest, RejectsNegative) {
  Result<uint64_t> r = ParseByteSize("-1");
  EXPECT_TRUE(r.status().IsInvalidArgument());
  EXPECT_TRUE(ParseByteSize("-2g").status().IsInvalidArgument());
}

TEST(ParseByteSizeTest, RejectsProductThatOverflows) {
  // 2^34 GiB = 2^64 bytes: one more than uint64_t holds.
  EXPECT_TRUE(ParseByteSize("17179869184g").status().IsInvalidArgument());
  EXPECT_TRUE(ParseByteSize("18014398509481984k").status().IsInvalidArgument());
  // Just below the limit still works.
  Result<uint64_t> r = ParseByteSize("17179869183g");
  ASSERT_OK(r);
  EXPECT_EQ(*r, 17179869183ull << 30);
}

TEST(ParseByteSizeTest, AcceptsLargestPlainByteCount) {
  Result<uint64_t> r = ParseByteSize("18446744073709551615");
  ASSERT_OK(r);
  EXPECT_EQ(*r, std::numeric_limits<uint64_t>::max());
}

// Regression test: this failed before the fix that came with it.
TEST(ParseByteSizeTest, RejectsNumberTooLargeForSixtyFourBits) {
  EXPECT_TRUE(ParseByteSize("18446744073709551616").status().IsInvalidArgument());
  EXPECT_TRUE(ParseByteSize("99999999999999999999999b").status().IsInvalidArgument());
}

TEST(SessionLimitsTest, DefaultsAreValid) { EXPECT_OK(SessionLimits().Validate()); }

TEST(SessionLimitsTest, RejectsMemoryBelow64m) {
  SessionLimits limits;
  limits.memory_bytes = (64ull << 20) - 1;
  EXPECT_TRUE(limits.Validate().IsInvalidArgument());
  limits.memory_bytes = 64ull << 20;
  EXPECT_OK(limits.Validate());
}

TEST(SessionLimitsTest, RejectsFewerThanEightPids) {
  SessionLimits limits;
  limits.max_pids = 7;
  EXPECT_TRUE(limits.Validate().IsInvalidArgument());
  limits.max_pids = 8;
  EXPECT_OK(limits.Validate());
}

TEST(SessionLimitsTest, RejectsCpusOutsideRange) {
  SessionLimits limits;
  for (double cpus : {0.0, -1.0, 1024.5, std::numeric_limits<double>::infinity()}) {
    limits.cpus = cpus;
    EXPECT_TRUE(limits.Validate().IsInvalidArgument()) << cpus;
  }
  for (double cpus : {0.01, 1.5, 1024.0}) {
    limits.cpus = cpus;
    EXPECT_OK(limits.Validate());
  }
}

// Regression test: this failed before the fix that came with it.
TEST(SessionLimitsTest, RejectsNanCpus) {
  SessionLimits limits;
  limits.cpus = std::nan("");
  EXPECT_TRUE(limits.Validate().IsInvalidArgument());
}

TEST(SessionLimitsTest, RejectsTimeoutOutsideOneSecondToMaximum) {
  SessionLimits limits;
  limits.execution_timeout = std::chrono::seconds(0);
  EXPECT_TRUE(limits.Validate().IsInvalidArgument());
  limits.execution_timeout = std::chrono::seconds(-5);
  EXPECT_TRUE(limits.Validate().IsInvalidArgument());

  limits.execution_timeout = limits.max_execution_timeout + std::chrono::seconds(1);
  Status s = limits.Validate();
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(s.message().find("600"), std::string::npos) << s.message();

  limits.execution_timeout = limits.max_execution_timeout;
  EXPECT_OK(limits.Validate());
}

TEST(SessionLimitsTest, RejectsQuotasBelowOneMegabyte) {
  SessionLimits limits;
  limits.data_bytes = (1ull << 20) - 1;
  EXPECT_TRUE(limits.Validate().IsInvalidArgument());
  limits = SessionLimits();
  limits.tmp_bytes = 0;
  EXPECT_TRUE(limits.Validate().IsInvalidArgument());
}

TEST(EngineConfigTest, DefaultsAreValid) { EXPECT_OK(EngineConfig().Validate()); }

TEST(EngineConfigTest, RejectsStateDirThatIsNotAbsolute) {
  EngineConfig config;
  for (const char* dir : {"", "var/lib/pycell", "./state", "~/pycell"}) {
    config.state_dir = dir;
    EXPECT_TRUE(config.Validate().IsInvalidArgument()) << "'" << dir << "'";
  }
}

TEST(EngineConfigTest, RejectsZeroSessions) {
  EngineConfig config;
  config.max_sessions = 0;
  EXPECT_TRUE(config.Validate().IsInvalidArgument());
}

TEST(EngineConfigTest, ValidatesThePoolLimits) {
  EngineConfig config;
  config.pool.limits.max_pids = 1;
  Status s = config.Validate();
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(s.message().find("pids"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace pycell
