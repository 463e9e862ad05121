#include "common/clock.h"

#include <cctype>
#include <cstdio>
#include <ctime>

namespace pycell {
namespace {
class RealClock : public Clock {
 public:
  std::chrono::steady_clock::time_point Now() const override {
    return std::chrono::steady_clock::now();
  }
  std::chrono::system_clock::time_point WallNow() const override {
    return std::chrono::system_clock::now();
  }
};
}  // namespace

Clock* Clock::Real() {
  static RealClock clock;
  return &clock;
}

std::string FormatRfc3339(std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

std::string FormatRfc3339Ms(int64_t ms_since_epoch) {
  return FormatRfc3339(
      std::chrono::system_clock::time_point(std::chrono::milliseconds(ms_since_epoch)));
}

Result<int64_t> ParseRfc3339Ms(const std::string& text) {
  auto invalid = [&] {
    return Status::InvalidArgument("\"" + text.substr(0, 64) +
                                   "\" is not a time; use RFC 3339, e.g. 2026-11-27T20:56:38Z, "
                                   "or a date, e.g. 2026-11-27");
  };
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d%n", &year, &month, &day, &consumed) != 3 ||
      consumed != 10) {
    return invalid();
  }
  size_t pos = 10;
  int64_t millis = 0, offset_s = 0;
  if (pos < text.size()) {
    if (text[pos] != 'T' && text[pos] != 't' && text[pos] != ' ') return invalid();
    if (std::sscanf(text.c_str() + pos + 1, "%2d:%2d:%2d%n", &hour, &minute, &second, &consumed) !=
            3 ||
        consumed != 8) {
      return invalid();
    }
    pos += 9;
    if (pos < text.size() && text[pos] == '.') {
      int digits = 0;
      for (++pos; pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos])); ++pos) {
        if (digits++ < 3) millis = millis * 10 + (text[pos] - '0');
      }
      if (digits == 0) return invalid();
      for (; digits < 3; ++digits) millis *= 10;
    }
    if (pos >= text.size()) return invalid();
    if (text[pos] == 'Z' || text[pos] == 'z') {
      ++pos;
    } else if (text[pos] == '+' || text[pos] == '-') {
      int oh = 0, om = 0;
      if (std::sscanf(text.c_str() + pos + 1, "%2d:%2d%n", &oh, &om, &consumed) != 2 ||
          consumed != 5 || oh > 23 || om > 59) {
        return invalid();
      }
      offset_s = (text[pos] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
      pos += 6;
    } else {
      return invalid();
    }
    if (pos != text.size()) return invalid();
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return invalid();
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  std::time_t seconds = timegm(&tm);
  return (static_cast<int64_t>(seconds) - offset_s) * 1000 + millis;
}

}  // namespace pycell
