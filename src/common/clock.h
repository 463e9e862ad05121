// Clock: the one source of time for pycell's logic, replaceable in tests so that a test can jump
// past an idle timeout without sleeping. RealClock is thread-safe; FakeClock is too.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "common/status.h"

namespace pycell {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time, for deadlines and durations.
  virtual std::chrono::steady_clock::time_point Now() const = 0;
  // Wall-clock time, for records people read.
  virtual std::chrono::system_clock::time_point WallNow() const = 0;

  // The process-wide real clock.
  static Clock* Real();
};

class FakeClock : public Clock {
 public:
  std::chrono::steady_clock::time_point Now() const override {
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(offset_ns_.load()));
  }
  std::chrono::system_clock::time_point WallNow() const override {
    return std::chrono::system_clock::time_point(std::chrono::nanoseconds(offset_ns_.load()));
  }
  void Advance(std::chrono::nanoseconds by) { offset_ns_ += by.count(); }

 private:
  std::atomic<int64_t> offset_ns_{1'000'000'000'000'000'000};  // 2001-09-09, safely positive.
};

// "2026-11-27T20:56:38.123Z"
std::string FormatRfc3339(std::chrono::system_clock::time_point t);
// The same of a time in milliseconds since the epoch.
std::string FormatRfc3339Ms(int64_t ms_since_epoch);
// Milliseconds since the epoch of an RFC 3339 time ("2026-11-27T20:56:38Z", with optional
// fraction and a Z or ±hh:mm offset) or a plain date ("2026-11-27", midnight UTC).
// InvalidArgument naming the text otherwise.
Result<int64_t> ParseRfc3339Ms(const std::string& text);

}  // namespace pycell
