#include "common/status.h"

#include <cerrno>
#include <memory>
#include <string>

#include "test_util.h"

namespace pycell {
namespace {

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_TRUE(Status::Ok().ok());
}

TEST(StatusTest, FactoriesSetCodeAndMessage) {
  struct Case {
    Status status;
    StatusCode code;
    const char* name;
  };
  const Case cases[] = {
      {Status::InvalidArgument("m"), StatusCode::kInvalidArgument, "INVALID_ARGUMENT"},
      {Status::NotFound("m"), StatusCode::kNotFound, "NOT_FOUND"},
      {Status::PermissionDenied("m"), StatusCode::kPermissionDenied, "PERMISSION_DENIED"},
      {Status::FailedPrecondition("m"), StatusCode::kFailedPrecondition, "FAILED_PRECONDITION"},
      {Status::ResourceExhausted("m"), StatusCode::kResourceExhausted, "RESOURCE_EXHAUSTED"},
      {Status::DeadlineExceeded("m"), StatusCode::kDeadlineExceeded, "DEADLINE_EXCEEDED"},
      {Status::Unavailable("m"), StatusCode::kUnavailable, "UNAVAILABLE"},
      {Status::Internal("m"), StatusCode::kInternal, "INTERNAL"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_FALSE(c.status.ok());
    EXPECT_EQ(c.status.code(), c.code);
    EXPECT_EQ(c.status.message(), "m");
    EXPECT_EQ(StatusCodeName(c.code), c.name);
    EXPECT_EQ(c.status.ToString(), std::string(c.name) + ": m");
  }
}

TEST(StatusTest, EachPredicateMatchesOnlyItsCode) {
  EXPECT_TRUE(Status::NotFound("x").IsNotFound());
  EXPECT_TRUE(Status::InvalidArgument("x").IsInvalidArgument());
  EXPECT_TRUE(Status::FailedPrecondition("x").IsFailedPrecondition());
  EXPECT_TRUE(Status::ResourceExhausted("x").IsResourceExhausted());
  EXPECT_TRUE(Status::DeadlineExceeded("x").IsDeadlineExceeded());

  Status internal = Status::Internal("x");
  EXPECT_FALSE(internal.IsNotFound());
  EXPECT_FALSE(internal.IsInvalidArgument());
  EXPECT_FALSE(internal.IsFailedPrecondition());
  EXPECT_FALSE(internal.IsResourceExhausted());
  EXPECT_FALSE(internal.IsDeadlineExceeded());
  EXPECT_FALSE(Status::Ok().IsNotFound());
}

TEST(StatusTest, WithContextPrefixesMessageAndKeepsCode) {
  Status s = Status::NotFound("no such session").WithContext("attach");
  EXPECT_TRUE(s.IsNotFound());
  EXPECT_EQ(s.message(), "attach: no such session");
  EXPECT_EQ(s.ToString(), "NOT_FOUND: attach: no such session");
  EXPECT_EQ(s.WithContext("request").message(), "request: attach: no such session");
}

TEST(StatusTest, WithContextOnOkStaysOk) {
  Status s = Status::Ok().WithContext("anything");
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.message(), "");
}

TEST(StatusTest, FromErrnoMapsErrnoToCode) {
  struct Case {
    int err;
    StatusCode code;
  };
  const Case cases[] = {
      {ENOENT, StatusCode::kNotFound},          {EACCES, StatusCode::kPermissionDenied},
      {EPERM, StatusCode::kPermissionDenied},   {ENOSPC, StatusCode::kResourceExhausted},
      {EDQUOT, StatusCode::kResourceExhausted}, {EMFILE, StatusCode::kResourceExhausted},
      {ENFILE, StatusCode::kResourceExhausted}, {EIO, StatusCode::kInternal},
      {EINVAL, StatusCode::kInternal},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.err);
    EXPECT_EQ(Status::FromErrno("op", c.err).code(), c.code);
  }
}

TEST(StatusTest, FromErrnoMessageNamesTheCallAndTheError) {
  Status s = Status::FromErrno("open /x", ENOENT);
  EXPECT_EQ(s.message(), "open /x: No such file or directory");
}

TEST(StatusTest, FromErrnoDefaultsToCurrentErrno) {
  errno = EACCES;
  Status s = Status::FromErrno("chmod");
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(s.message(), "chmod: Permission denied");
}

TEST(ResultTest, HoldsValue) {
  Result<int> r = 42;
  ASSERT_OK(r);
  EXPECT_EQ(r.value(), 42);
  EXPECT_EQ(*r, 42);
  EXPECT_TRUE(r.status().ok());
}

TEST(ResultTest, HoldsStatus) {
  Result<int> r = Status::NotFound("gone");
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsNotFound());
  EXPECT_EQ(r.status().message(), "gone");
}

TEST(ResultTest, ArrowReachesMembers) {
  Result<std::string> r = std::string("hello");
  EXPECT_EQ(r->size(), 5u);
  r->append("!");
  EXPECT_EQ(*r, "hello!");
}

TEST(ResultTest, MoveOnlyValueCanBeMovedOut) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
  std::unique_ptr<int> p = std::move(r).value();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 7);
}

// Regression test: this failed before the fix that came with it.
TEST(ResultDeathTest, BuildingFromAnOkStatusIsABug) {
  EXPECT_DEATH(
      {
        Result<int> r = Status::Ok();
        (void)r;
      },
      "CHECK failed");
}

// Helpers that exercise the macros the way production code does.
Status FailIfNegative(int x) {
  if (x < 0) return Status::InvalidArgument("negative");
  return Status::Ok();
}

Status CheckBoth(int a, int b, int* steps) {
  RETURN_IF_ERROR(FailIfNegative(a));
  ++*steps;
  RETURN_IF_ERROR(FailIfNegative(b));
  ++*steps;
  return Status::Ok();
}

Result<int> Half(int x) {
  if (x % 2 != 0) return Status::InvalidArgument("odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int half, Half(x));
  ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

Result<std::unique_ptr<int>> Boxed(int x) {
  if (x == 0) return Status::NotFound("zero");
  return std::make_unique<int>(x);
}

Status UnboxInto(int x, int* out) {
  ASSIGN_OR_RETURN(std::unique_ptr<int> box, Boxed(x));
  *out = *box;
  return Status::Ok();
}

TEST(StatusMacrosTest, ReturnIfErrorContinuesOnOk) {
  int steps = 0;
  EXPECT_OK(CheckBoth(1, 2, &steps));
  EXPECT_EQ(steps, 2);
}

TEST(StatusMacrosTest, ReturnIfErrorStopsAtFirstError) {
  int steps = 0;
  Status s = CheckBoth(1, -2, &steps);
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_EQ(steps, 1);

  steps = 0;
  EXPECT_TRUE(CheckBoth(-1, 2, &steps).IsInvalidArgument());
  EXPECT_EQ(steps, 0);
}

TEST(StatusMacrosTest, AssignOrReturnAssignsValues) {
  Result<int> r = Quarter(12);
  ASSERT_OK(r);
  EXPECT_EQ(*r, 3);
}

TEST(StatusMacrosTest, AssignOrReturnPropagatesStatus) {
  Result<int> r = Quarter(6);  // 6 / 2 = 3 is odd.
  EXPECT_TRUE(r.status().IsInvalidArgument());
  EXPECT_EQ(r.status().message(), "odd");
}

TEST(StatusMacrosTest, AssignOrReturnMovesMoveOnlyValues) {
  int out = 0;
  EXPECT_OK(UnboxInto(5, &out));
  EXPECT_EQ(out, 5);
  EXPECT_TRUE(UnboxInto(0, &out).IsNotFound());
}

}  // namespace
}  // namespace pycell
