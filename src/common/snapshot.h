// Snapshot<T>: a value that is replaced whole and read as it was at one moment — the
// configuration in force after a reload, the diagnostic settings with their sinks. A reader gets
// a shared_ptr it may keep as long as it likes; a writer swaps in a new value without waiting for
// readers. The mutex guards only the pointer, for the time of a copy.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <memory>
#include <utility>

#include "common/mutex.h"

namespace pycell {

template <typename T>
class Snapshot {
 public:
  Snapshot() = default;
  explicit Snapshot(std::shared_ptr<T> value) : value_(std::move(value)) {}

  // The value now (null when none was set).
  std::shared_ptr<T> Get() const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return value_;
  }
  // Puts `next` in place; returns the value it replaced.
  std::shared_ptr<T> Replace(std::shared_ptr<T> next) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    std::swap(value_, next);
    return next;
  }

 private:
  mutable Mutex mu_;
  std::shared_ptr<T> value_ GUARDED_BY(mu_);
};

}  // namespace pycell
