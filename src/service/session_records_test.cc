// SessionRecords and SessionReservations: the sessions part's state, alone.
#include "service/session_records.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "test_util.h"

namespace pycell::service {
namespace {

store::SessionRow Row(const std::string& id, int64_t created_at_ms = 0) {
  store::SessionRow row;
  row.id = id;
  row.status = "active";
  row.created_at_ms = created_at_ms;
  return row;
}

TEST(SessionRecordsTest, AnUpdateThatEndsTheRecordTakesItOut) {
  SessionRecords records;
  records.Add(Row("sess_a"));
  auto counted = records.Update("sess_a", [](store::SessionRow* r) { r->execution_count += 1; });
  ASSERT_TRUE(counted.has_value());
  EXPECT_EQ(counted->execution_count, 1);
  EXPECT_EQ(records.Find("sess_a")->execution_count, 1);
  auto ended = records.Update("sess_a", [](store::SessionRow* r) { r->status = "ended"; });
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->status, "ended");
  EXPECT_FALSE(records.Find("sess_a").has_value());
  EXPECT_FALSE(records.Update("sess_a", [](store::SessionRow*) { ADD_FAILURE(); }).has_value());
}

TEST(SessionRecordsTest, AnEndTakesTheRecordWhoEndedItAndTheLongFlag) {
  SessionRecords records;
  records.Add(Row("sess_a", 0));
  records.Add(Row("sess_b", 9000));
  auto long_running = records.FlagLongRunning(10000, 5000);
  EXPECT_EQ(long_running.count, 1);
  ASSERT_EQ(long_running.newly_flagged.size(), 1u);
  EXPECT_EQ(long_running.newly_flagged[0].id, "sess_a");
  EXPECT_TRUE(records.FlagLongRunning(10000, 5000).newly_flagged.empty());  // Flagged once.
  auth::Caller alice;
  alice.principal = "alice";
  records.SetEndedBy("sess_a", alice);
  SessionRecords::Ended ended = records.TakeEnded("sess_a");
  ASSERT_TRUE(ended.row && ended.by);
  EXPECT_EQ(ended.by->principal, "alice");
  EXPECT_EQ(records.FlaggedLongRunning(), 0u);
  ended = records.TakeEnded("sess_a");  // Twice: nothing left.
  EXPECT_FALSE(ended.row || ended.by);
}

TEST(SessionRecordsTest, AnUnrecordedEndShowsUntilRecorded) {
  SessionRecords records;
  store::SessionRow ended = Row("sess_a");
  ended.status = "ended";
  ended.end_reason = "closed";
  records.KeepUnrecorded({ended, {}});
  store::SessionRow stored = Row("sess_a");
  records.OverlayUnrecorded(&stored);
  EXPECT_EQ(stored.end_reason, "closed");
  EXPECT_EQ(records.Unrecorded().size(), 1u);
  records.Recorded("sess_a");
  store::SessionRow again = Row("sess_a");
  records.OverlayUnrecorded(&again);
  EXPECT_EQ(again.status, "active");
}

TEST(SessionReservationsTest, ConcurrentCreationsCannotPassTheQuota) {
  SessionReservations reservations;
  constexpr int kLimit = 3;
  std::atomic<int> granted{0}, refused{0};
  std::vector<std::thread> threads;
  std::vector<SessionReservations::Reservation> held;
  Mutex held_mu;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&] {
      auto r = reservations.Reserve("proj_1", [](int64_t reserved) {
        return reserved < kLimit ? Status::Ok() : Status::ResourceExhausted("full");
      });
      if (!r.ok()) {
        ++refused;
        return;
      }
      ++granted;
      MutexLock lock(held_mu);
      held.push_back(std::move(*r));
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(granted.load(), kLimit);
  EXPECT_EQ(refused.load(), 16 - kLimit);
  // A released slot (or a destroyed reservation) can be taken again; another project is apart.
  held[0].Release();
  held.pop_back();
  int64_t seen = -1;
  auto again = reservations.Reserve("proj_1", [&](int64_t reserved) {
    seen = reserved;
    return Status::Ok();
  });
  ASSERT_OK(again);
  EXPECT_EQ(seen, kLimit - 2);
  auto other = reservations.Reserve("proj_2", [&](int64_t reserved) {
    seen = reserved;
    return Status::Ok();
  });
  ASSERT_OK(other);
  EXPECT_EQ(seen, 0);
}

}  // namespace
}  // namespace pycell::service
