// Mutex, MutexLock and CondVar: std::mutex and std::condition_variable with the thread-safety
// attributes libstdc++ leaves out (common/thread_annotations.h), so that clang checks who holds
// what: a member declared `GUARDED_BY(mu_)` may be touched only where `mu_` is held.
//
//   mutable Mutex mu_;
//   CondVar changed_;
//   std::deque<Job> queue_ GUARDED_BY(mu_);
//
//   MutexLock lock(mu_);
//   changed_.Wait(mu_, [&]() REQUIRES(mu_) { return !queue_.empty(); });
//
// All three are thread-safe, neither copyable nor movable, and cost what the std types cost.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "common/thread_annotations.h"

namespace pycell {

// A non-recursive mutex.
class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  // Takes the mutex if it is free; never waits. True when taken.
  [[nodiscard]] bool TryLock() TRY_ACQUIRE(true) { return mu_.try_lock(); }

  // The std::mutex underneath, for CondVar's waits. Locking it directly bypasses the analysis.
  std::mutex& native() { return mu_; }

 private:
  std::mutex mu_;
};

// Holds a Mutex from construction to the end of its scope. Unlock() and Lock() drop it around
// slow work and take it back; the destructor releases it only if it is held then.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.Lock(); }
  // Takes over a mutex the caller holds already (after `if (mu.TryLock())`).
  MutexLock(Mutex& mu, std::adopt_lock_t) REQUIRES(mu) : mu_(mu) {}
  // Holds nothing yet: Lock() takes the mutex, on the paths that need it.
  MutexLock(Mutex& mu, std::defer_lock_t) EXCLUDES(mu) : mu_(mu), held_(false) {}
  ~MutexLock() RELEASE() {
    if (held_) mu_.Unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void Lock() ACQUIRE() {
    mu_.Lock();
    held_ = true;
  }
  void Unlock() RELEASE() {
    mu_.Unlock();
    held_ = false;
  }

 private:
  Mutex& mu_;
  bool held_ = true;
};

// A condition variable waited on with a Mutex the caller holds; every wait returns holding it.
// A predicate runs with the mutex held: written `[&]() REQUIRES(mu_) { ... }`, its body is
// checked as such.
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  void NotifyOne() { cv_.notify_one(); }
  void NotifyAll() { cv_.notify_all(); }

  // Waits for a notification (or a spurious wake-up).
  void Wait(Mutex& mu) REQUIRES(mu) {
    Borrowed lock(mu);
    cv_.wait(lock.get());
  }
  // Waits until `ready()` is true.
  template <class Predicate>
  void Wait(Mutex& mu, Predicate ready) REQUIRES(mu) {
    Borrowed lock(mu);
    cv_.wait(lock.get(), std::move(ready));
  }
  // Waits for a notification, a spurious wake-up or the end of `timeout`.
  template <class Rep, class Period>
  std::cv_status WaitFor(Mutex& mu, const std::chrono::duration<Rep, Period>& timeout)
      REQUIRES(mu) {
    Borrowed lock(mu);
    return cv_.wait_for(lock.get(), timeout);
  }
  // Waits until `ready()` is true or `timeout` has passed; returns `ready()`'s last value.
  template <class Rep, class Period, class Predicate>
  bool WaitFor(Mutex& mu, const std::chrono::duration<Rep, Period>& timeout, Predicate ready)
      REQUIRES(mu) {
    Borrowed lock(mu);
    return cv_.wait_for(lock.get(), timeout, std::move(ready));
  }
  // Waits until `ready()` is true or `deadline` has come; returns `ready()`'s last value.
  template <class Clock, class Duration, class Predicate>
  bool WaitUntil(Mutex& mu, const std::chrono::time_point<Clock, Duration>& deadline,
                 Predicate ready) REQUIRES(mu) {
    Borrowed lock(mu);
    return cv_.wait_until(lock.get(), deadline, std::move(ready));
  }

 private:
  // A std::unique_lock over the held mutex for the length of one wait; the mutex is still held
  // when it goes (its MutexLock releases it), whatever happened in between.
  class Borrowed {
   public:
    explicit Borrowed(Mutex& mu) : lock_(mu.native(), std::adopt_lock) {}
    ~Borrowed() { lock_.release(); }
    std::unique_lock<std::mutex>& get() { return lock_; }

   private:
    std::unique_lock<std::mutex> lock_;
  };

  std::condition_variable cv_;
};

}  // namespace pycell
