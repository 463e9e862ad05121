// Helpers shared by pycell's GoogleTest tests.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/status.h"

// ASSERT_OK(status_or_result): fails with the status's message when it is not OK.
#define ASSERT_OK(expr)                                               \
  do {                                                                \
    const auto& pycell_assert_ok_ = (expr);                           \
    ASSERT_TRUE(::pycell::testing::StatusOf(pycell_assert_ok_).ok())  \
        << ::pycell::testing::StatusOf(pycell_assert_ok_).ToString(); \
  } while (0)
#define EXPECT_OK(expr)                                               \
  do {                                                                \
    const auto& pycell_expect_ok_ = (expr);                           \
    EXPECT_TRUE(::pycell::testing::StatusOf(pycell_expect_ok_).ok())  \
        << ::pycell::testing::StatusOf(pycell_expect_ok_).ToString(); \
  } while (0)

namespace pycell::testing {

// A folder made with mkdtemp under /tmp, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/pycell-test-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) std::abort();
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  // Makes the folder `relative` (and its parents) inside; returns its path.
  std::string Make(const std::string& relative) const {
    std::filesystem::create_directories(path_ + "/" + relative);
    return path_ + "/" + relative;
  }

 private:
  std::string path_;
};

inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}
}  // namespace pycell::testing
