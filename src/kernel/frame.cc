#include "kernel/frame.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace pycell::kernel {

Status WriteFrame(int socket, std::string_view payload, const std::vector<int>& fds,
                  std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  if (payload.size() > kMaxFrameBytes) return Status::InvalidArgument("frame too large");
  uint32_t n = static_cast<uint32_t>(payload.size());
  unsigned char header[4] = {static_cast<unsigned char>(n >> 24),
                             static_cast<unsigned char>(n >> 16),
                             static_cast<unsigned char>(n >> 8), static_cast<unsigned char>(n)};
  std::string data(reinterpret_cast<char*>(header), 4);
  data.append(payload);
  size_t sent = 0;
  bool fds_sent = fds.empty();
  while (sent < data.size()) {
    struct iovec iov {
      data.data() + sent, data.size() - sent
    };
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<char> control;
    if (!fds_sent) {
      control.resize(CMSG_SPACE(sizeof(int) * fds.size()));
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
      cmsg->cmsg_level = SOL_SOCKET;
      cmsg->cmsg_type = SCM_RIGHTS;
      cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t w = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return Status::DeadlineExceeded("the peer stopped reading frames");
        struct pollfd p {
          socket, POLLOUT, 0
        };
        ::poll(&p, 1, static_cast<int>(left.count()));
        continue;
      }
      return Status::FromErrno("send frame");
    }
    fds_sent = true;
    sent += static_cast<size_t>(w);
  }
  return Status::Ok();
}

uint32_t FrameReader::HeaderAt0() const {
  return (static_cast<uint32_t>(static_cast<unsigned char>(buffer_[0])) << 24) |
         (static_cast<uint32_t>(static_cast<unsigned char>(buffer_[1])) << 16) |
         (static_cast<uint32_t>(static_cast<unsigned char>(buffer_[2])) << 8) |
         static_cast<uint32_t>(static_cast<unsigned char>(buffer_[3]));
}

Status FrameReader::Feed(int socket) {
  if (!error_.ok()) return error_;
  char buf[65536];
  while (true) {
    struct iovec iov {
      buf, sizeof buf
    };
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerFrame)];
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t r = ::recvmsg(socket, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return Status::Ok();
      return error_ = Status::FromErrno("receive frame");
    }
    int64_t begin = static_cast<int64_t>(buffer_.size());
    ReceivedFds received{begin, begin + (r > 0 ? r : 0), {}};
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
          received.fds.emplace_back(fd);
        }
      }
    }
    if (!received.fds.empty() && !accept_fds_) {
      size_t count = received.fds.size();
      received.fds.clear();  // Closed here and now.
      return error_ = Status::InvalidArgument("descriptors passed on the control socket (" +
                                              std::to_string(count) + "); none are accepted");
    }
    if (!received.fds.empty()) fds_.push_back(std::move(received));
    if (msg.msg_flags & MSG_CTRUNC) {
      return error_ = Status::InvalidArgument("more descriptors than a frame may carry");
    }
    if (r == 0) return error_ = Status::Unavailable("closed");
    buffer_.append(buf, static_cast<size_t>(r));
    if (buffer_.size() >= 4 && HeaderAt0() > max_bytes_) {
      return error_ = Status::InvalidArgument("frame of " + std::to_string(HeaderAt0()) +
                                              " bytes is over the limit");
    }
    if (static_cast<size_t>(r) < sizeof buf) return Status::Ok();
  }
}

std::optional<Frame> FrameReader::Next() {
  if (buffer_.size() < 4) return std::nullopt;
  uint32_t n = HeaderAt0();
  if (n > max_bytes_) {
    if (error_.ok()) {
      error_ =
          Status::InvalidArgument("frame of " + std::to_string(n) + " bytes is over the limit");
    }
    return std::nullopt;
  }
  size_t total = 4 + static_cast<size_t>(n);
  if (buffer_.size() < total) return std::nullopt;
  Frame frame;
  frame.payload = buffer_.substr(4, n);
  buffer_.erase(0, total);
  // This frame starts at 0 and the next one at `total`: it owns a batch whose read began at or
  // before 0 and ended by `total` (no later frame starts within that read).
  const int64_t next = static_cast<int64_t>(total);
  std::vector<ReceivedFds> rest;
  for (ReceivedFds& batch : fds_) {
    if (batch.begin <= 0 && batch.end <= next) {
      for (UniqueFd& fd : batch.fds) frame.fds.push_back(std::move(fd));
    } else {
      batch.begin -= next;
      batch.end -= next;
      rest.push_back(std::move(batch));
    }
  }
  fds_ = std::move(rest);
  return frame;
}

Result<Frame> ReadFrame(int socket, FrameReader& reader, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (auto frame = reader.Next()) return std::move(*frame);
    if (!reader.error().ok()) return reader.error();  // Includes a peer that closed.
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Status::DeadlineExceeded("no frame within the deadline");
    struct pollfd p {
      socket, POLLIN, 0
    };
    int rc = ::poll(&p, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno != EINTR) return Status::FromErrno("poll");
    if (rc > 0) (void)reader.Feed(socket);  // Errors surface after the frames before them.
  }
}
}  // namespace pycell::kernel
