#include "server/overlapped_writer.h"

namespace pycell::server {

OverlappedWriter::OverlappedWriter(std::function<Status(std::string_view)> sink)
    : sink_(std::move(sink)), thread_([this] { Loop(); }) {}

OverlappedWriter::~OverlappedWriter() {
  (void)Drain();
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  cv_.NotifyAll();
  thread_.join();
}

void OverlappedWriter::Write(std::string_view data) {
  if (data.empty()) return;
  {
    MutexLock lock(mu_);
    queue_.push_back(data);
  }
  cv_.NotifyAll();
}

Status OverlappedWriter::Drain() {
  MutexLock lock(mu_);
  cv_.Wait(mu_, [&]() REQUIRES(mu_) { return queue_.empty() && !busy_; });
  return failure_;
}

void OverlappedWriter::Loop() {
  MutexLock lock(mu_);
  while (true) {
    cv_.Wait(mu_, [&]() REQUIRES(mu_) { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // Stopping, nothing left.
    std::string_view data = queue_.front();
    queue_.pop_front();
    if (!failure_.ok()) {
      cv_.NotifyAll();
      continue;
    }
    busy_ = true;
    lock.Unlock();
    Status status = sink_(data);
    lock.Lock();
    busy_ = false;
    if (failure_.ok()) failure_ = status;
    cv_.NotifyAll();
  }
}

}  // namespace pycell::server
