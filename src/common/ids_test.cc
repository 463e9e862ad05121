#include "common/ids.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace pycell {
namespace {

constexpr std::string_view kCrockford = "0123456789abcdefghjkmnpqrstvwxyz";

TEST(NewIdTest, IsPrefixThen26CrockfordCharacters) {
  std::string id = NewId("sess_");
  ASSERT_EQ(id.size(), 5u + 26u);
  EXPECT_EQ(id.substr(0, 5), "sess_");
  for (char c : id.substr(5)) {
    EXPECT_NE(kCrockford.find(c), std::string_view::npos) << "unexpected character " << c;
  }
  EXPECT_TRUE(IsValidId(id, "sess_"));
}

TEST(NewIdTest, EveryPrefixRoundTripsThroughIsValidId) {
  for (const char* prefix : {"sess_", "exec_", "file_", "key_"}) {
    EXPECT_TRUE(IsValidId(NewId(prefix), prefix)) << prefix;
  }
}

TEST(NewIdTest, ManyIdsAreUnique) {
  constexpr int kCount = 100000;
  std::set<std::string> seen;
  for (int i = 0; i < kCount; ++i) seen.insert(NewId("exec_"));
  EXPECT_EQ(seen.size(), static_cast<size_t>(kCount));
}

TEST(NewIdTest, UniqueAcrossThreads) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 5000;
  std::vector<std::vector<std::string>> made(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&made, t] {
      for (int i = 0; i < kPerThread; ++i) made[t].push_back(NewId("file_"));
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<std::string> seen;
  for (const auto& ids : made) seen.insert(ids.begin(), ids.end());
  EXPECT_EQ(seen.size(), static_cast<size_t>(kThreads * kPerThread));
}

TEST(NewIdTest, IdsMadeMillisecondsApartSortByTime) {
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    ids.push_back(NewId("sess_"));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
}

TEST(NewIdTest, LeadingTimeDigitsAreStableWithinARun) {
  // 48 bits of milliseconds: the first characters change only every ~9 years.
  std::string a = NewId("");
  std::string b = NewId("");
  EXPECT_EQ(a.substr(0, 4), b.substr(0, 4));
}

TEST(IsValidIdTest, RejectsWrongPrefix) {
  std::string id = NewId("sess_");
  EXPECT_FALSE(IsValidId(id, "exec_"));
  EXPECT_FALSE(IsValidId("SESS_" + id.substr(5), "sess_"));
  EXPECT_FALSE(IsValidId(id.substr(5), "sess_"));
}

TEST(IsValidIdTest, RejectsWrongLength) {
  std::string id = NewId("sess_");
  EXPECT_FALSE(IsValidId(id + "0", "sess_"));
  EXPECT_FALSE(IsValidId(id.substr(0, id.size() - 1), "sess_"));
  EXPECT_FALSE(IsValidId("sess_", "sess_"));
  EXPECT_FALSE(IsValidId("", "sess_"));
}

TEST(IsValidIdTest, RejectsCharactersOutsideTheAlphabet) {
  std::string id = NewId("sess_");
  // Crockford leaves out i, l, o and u; ids are lower case.
  for (char bad : {'i', 'l', 'o', 'u', 'A', 'Z', '-', '_', '.', '/', ' ', '\0', '\n', '\xff'}) {
    std::string tampered = id;
    tampered[10] = bad;
    EXPECT_FALSE(IsValidId(tampered, "sess_")) << "character code " << static_cast<int>(bad);
  }
}

TEST(IsValidIdTest, RejectsPathTricks) {
  EXPECT_FALSE(IsValidId("sess_../../etc", "sess_"));
  EXPECT_FALSE(IsValidId("sess_/etc/passwd", "sess_"));
  // Right length, hostile content.
  std::string with_nul = "sess_" + std::string(26, '0');
  with_nul[15] = '\0';
  const std::string tricks[] = {
      "sess_../../../../../../../etc/x",
      "sess_" + std::string(23, '0') + "/..",
      "sess_" + std::string(23, '0') + "%2f",
      with_nul,
  };
  for (const std::string& trick : tricks) {
    ASSERT_EQ(trick.size(), 31u) << trick;
    EXPECT_FALSE(IsValidId(trick, "sess_")) << trick;
  }
}

}  // namespace
}  // namespace pycell
