// Helpers shared by pycell's GoogleTest tests.
#pragma once

#include <gtest/gtest.h>

#include "common/status.h"

// ASSERT_OK(status_or_result): fails with the status's message when it is not OK.
#define ASSERT_OK(expr)                                                         \
  do {                                                                          \
    const auto& pycell_assert_ok_ = (expr);                                     \
    ASSERT_TRUE(::pycell::testing::StatusOf(pycell_assert_ok_).ok())            \
        << ::pycell::testing::StatusOf(pycell_assert_ok_).ToString();           \
  } while (0)
#define EXPECT_OK(expr)                                                         \
  do {                                                                          \
    const auto& pycell_expect_ok_ = (expr);                                     \
    EXPECT_TRUE(::pycell::testing::StatusOf(pycell_expect_ok_).ok())            \
        << ::pycell::testing::StatusOf(pycell_expect_ok_).ToString();           \
  } while (0)

namespace pycell::testing {
inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}
}  // namespace pycell::testing
