#include "server/worker_pool.h"

#include <malloc.h>

#include <algorithm>
#include <exception>

#include "common/logging.h"
#include "metrics/metrics.h"

namespace pycell::server {

WorkerPool::WorkerPool(size_t max_threads, std::chrono::milliseconds idle_exit, size_t keep_threads)
    : max_threads_(max_threads == 0 ? 1 : max_threads),
      idle_exit_(idle_exit),
      keep_threads_(std::min(keep_threads, max_threads_)) {
  // The kept threads start now: at rest the pool always holds exactly them.
  MutexLock lock(mu_);
  for (size_t i = 0; i < keep_threads_; ++i) {
    std::thread thread([this] { Loop(); });
    running_.emplace(thread.get_id(), std::move(thread));
  }
}

WorkerPool::~WorkerPool() { Stop(); }

void WorkerPool::Submit(std::function<void()> job) {
  std::vector<std::thread> ended;
  {
    MutexLock lock(mu_);
    if (stopping_) return;
    queue_.push_back(std::move(job));
    queued_count_.store(queue_.size(), std::memory_order_relaxed);
    ended = TakeEnded();
    // Every queued job has an idle thread to take it (they have been woken, or will be): wake
    // one more; otherwise start a thread while the bound allows.
    if (queue_.size() <= idle_) {
      work_.NotifyOne();
    } else if (running_.size() < max_threads_) {
      std::thread thread([this] { Loop(); });
      running_.emplace(thread.get_id(), std::move(thread));
    }
  }
  for (std::thread& thread : ended) thread.join();
}

void WorkerPool::Stop() {
  std::vector<std::thread> ended;
  {
    MutexLock lock(mu_);
    stopping_ = true;
    work_.NotifyAll();
    ended_.Wait(mu_, [&]() REQUIRES(mu_) { return running_.empty(); });
    ended = TakeEnded();
  }
  for (std::thread& thread : ended) thread.join();
}

size_t WorkerPool::threads() const {
  MutexLock lock(mu_);
  return running_.size();
}

size_t WorkerPool::busy() const { return busy_.load(std::memory_order_relaxed); }

size_t WorkerPool::queued() const { return queued_count_.load(std::memory_order_relaxed); }

std::vector<std::thread> WorkerPool::TakeEnded() {
  std::vector<std::thread> ended;
  ended.swap(ended_threads_);
  return ended;
}

void WorkerPool::Loop() {
  MutexLock lock(mu_);
  for (;;) {
    while (queue_.empty() && !stopping_) {
      ++idle_;
      bool woken = work_.WaitFor(mu_, idle_exit_,
                                 [&]() REQUIRES(mu_) { return !queue_.empty() || stopping_; });
      --idle_;
      if (!woken && running_.size() > keep_threads_) break;  // Idle long enough: end.
    }
    if (queue_.empty()) break;  // Stopping (or idle), with nothing left to run.
    std::function<void()> job = std::move(queue_.front());
    queue_.pop_front();
    queued_count_.store(queue_.size(), std::memory_order_relaxed);
    busy_.fetch_add(1, std::memory_order_relaxed);
    lock.Unlock();
    try {
      job();
    } catch (const std::exception& e) {
      LOG_ERROR("internal error (a bug): an exception escaped a request's job: {}", e.what());
      metrics::CountInternalError("http_worker");
    } catch (...) {
      LOG_ERROR("internal error (a bug): an exception of unknown type escaped a request's job");
      metrics::CountInternalError("http_worker");
    }
    job = nullptr;  // Whatever it held is released outside the lock.
    lock.Lock();
    busy_.fetch_sub(1, std::memory_order_relaxed);
  }
  // This thread ends: its handle goes to be joined by the next Submit or Stop.
  auto self = running_.find(std::this_thread::get_id());
  ended_threads_.push_back(std::move(self->second));
  running_.erase(self);
  ended_.NotifyAll();
  bool last_idle_exit = !stopping_ && running_.size() == keep_threads_;
  lock.Unlock();
  // The pool shrank back to rest after a burst: what the ended threads' arenas hold in free
  // pages goes back to the system (glibc keeps it otherwise).
  if (last_idle_exit) ::malloc_trim(0);
}

}  // namespace pycell::server
