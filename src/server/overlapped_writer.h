// OverlappedWriter: runs a sink's writes (an upload's hashing and disk writes) on a thread of its
// own, so that they overlap with reading the next piece of the body from the network. On the
// 2-core reference machine, where the benchmark's client shares the cores, it gains little (a
// 512 MB upload to tmpfs went from 0.52 to 0.55 of OpenSSL's SHA-256 speed); with cores to
// spare, hashing and receiving run side by side.
//
// The caller queues views into its buffers with Write and calls Drain before it reuses a buffer
// whose views were queued: Drain waits until every queued write is done and returns the first
// failure (later writes after a failure are skipped).
//
// Thread-safety: one producer thread; the sink runs on the writer's thread.
#pragma once

#include <deque>
#include <functional>
#include <string_view>
#include <thread>

#include "common/mutex.h"
#include "common/status.h"

namespace pycell::server {

class OverlappedWriter {
 public:
  explicit OverlappedWriter(std::function<Status(std::string_view)> sink);
  ~OverlappedWriter();  // Drains, then stops the thread.

  // Queues `data`, which must stay valid until the next Drain returns.
  void Write(std::string_view data) EXCLUDES(mu_);
  Status Drain() EXCLUDES(mu_);

 private:
  void Loop() EXCLUDES(mu_);

  std::function<Status(std::string_view)> sink_;
  Mutex mu_;
  CondVar cv_;
  std::deque<std::string_view> queue_ GUARDED_BY(mu_);
  bool busy_ GUARDED_BY(mu_) = false;  // The thread is in sink_.
  bool stopping_ GUARDED_BY(mu_) = false;
  Status failure_ GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace pycell::server
