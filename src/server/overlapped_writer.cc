#include "server/overlapped_writer.h"

namespace pycell::server {

OverlappedWriter::OverlappedWriter(std::function<Status(std::string_view)> sink)
    : sink_(std::move(sink)), thread_([this] { Loop(); }) {}

OverlappedWriter::~OverlappedWriter() {
  (void)Drain();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void OverlappedWriter::Write(std::string_view data) {
  if (data.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(data);
  }
  cv_.notify_all();
}

Status OverlappedWriter::Drain() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return queue_.empty() && !busy_; });
  return failure_;
}

void OverlappedWriter::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // Stopping, nothing left.
    std::string_view data = queue_.front();
    queue_.pop_front();
    if (!failure_.ok()) {
      cv_.notify_all();
      continue;
    }
    busy_ = true;
    lock.unlock();
    Status status = sink_(data);
    lock.lock();
    busy_ = false;
    if (failure_.ok()) failure_ = status;
    cv_.notify_all();
  }
}

}  // namespace pycell::server
