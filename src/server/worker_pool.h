// WorkerPool: the threads that run the HTTP server's synchronous request handlers. `keep_threads`
// start with the pool and stay; more are started when a job arrives and no thread is free, up to
// `max_threads`; past that, jobs wait their turn in arrival order. A thread idle for `idle_exit`
// ends, down to `keep_threads`, so that a burst of long requests (cells, streams) does not leave
// hundreds of threads behind; when the last extra one ends, free memory goes back to the system
// (malloc_trim).
//
// A job that throws is a bug: it is logged, counted (pycell_internal_errors_total{where=
// "http_worker"}) and the thread goes on.
//
// Thread-safety: every method may be called from any thread but a worker's own (Stop from a job
// would wait for itself).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <thread>
#include <vector>

#include "common/mutex.h"

namespace pycell::server {

class WorkerPool {
 public:
  WorkerPool(size_t max_threads, std::chrono::milliseconds idle_exit, size_t keep_threads = 2);
  ~WorkerPool();  // Stop().
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Runs `job` on a worker, now or when one is free. Never blocks. After Stop, drops it.
  void Submit(std::function<void()> job) EXCLUDES(mu_);
  // Lets the queued jobs run, then waits for every thread to end.
  void Stop() EXCLUDES(mu_);

  size_t threads() const EXCLUDES(mu_);  // Started and not yet ended.
  // Running a job now; waiting for a thread. Read without the lock (a moment's value): the HTTP
  // server asks after every request.
  size_t busy() const;
  size_t queued() const;

 private:
  void Loop() EXCLUDES(mu_);
  // Takes the threads that ended, to be joined outside the lock.
  std::vector<std::thread> TakeEnded() REQUIRES(mu_);

  const size_t max_threads_;
  const std::chrono::milliseconds idle_exit_;
  const size_t keep_threads_;

  mutable Mutex mu_;
  CondVar work_;   // A job was queued, or Stop.
  CondVar ended_;  // A thread ended.
  std::deque<std::function<void()>> queue_ GUARDED_BY(mu_);
  std::map<std::thread::id, std::thread> running_ GUARDED_BY(mu_);
  std::vector<std::thread> ended_threads_ GUARDED_BY(mu_);  // To join.
  size_t idle_ GUARDED_BY(mu_) = 0;                         // Waiting for a job.
  std::atomic<size_t> busy_{0};                             // Written under mu_.
  std::atomic<size_t> queued_count_{0};                     // queue_.size(), written under mu_.
  bool stopping_ GUARDED_BY(mu_) = false;
};

}  // namespace pycell::server
