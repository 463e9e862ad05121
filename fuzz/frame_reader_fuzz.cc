// The runner's frames (kernel/frame.h): the bytes and descriptors sandboxed code can put on a
// session's control socket, read by kernel::FrameReader as the Kernel and the Zygote read them.
//
// Input: the byte stream the runner writes (4-byte big-endian length, payload, and so on). It goes
// through a real Unix socket pair, in pieces of sizes drawn from the input's hash, some carrying
// descriptors (SCM_RIGHTS; now and then more than a frame may carry). After each piece the reader
// is fed and drained. Checked, beyond ASan and UBSan:
//  - the frames that come out are exactly the complete frames of the stream, in order, up to the
//    first error (a length over the limit, too many descriptors);
//  - at the end of the stream Feed says "closed" (or that a length is over the limit, when the
//    frame after the last complete one claims too much);
//  - no descriptor leaks: the ones handed out with frames and the ones the reader still holds are
//    closed with them (as many descriptors are open after a run as before).
#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_input.h"
#include "kernel/frame.h"

namespace pycell::fuzz {
namespace {

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "frame_reader_fuzz: %s\n", what);
  std::abort();
}

// How many descriptors the process has open (the entries of /proc/self/fd, less the one
// listing them).
size_t OpenFdCount() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) Fail("cannot list /proc/self/fd");
  size_t count = 0;
  while (const dirent* entry = ::readdir(dir)) count += entry->d_name[0] != '.';
  ::closedir(dir);
  return count - 1;
}

// The frames a correct reader yields from `stream`: every complete one up to the end or the first
// length over `max_bytes` (then `*over_limit` is set).
std::vector<std::string> ExpectedFrames(std::string_view stream, uint32_t max_bytes,
                                        bool* over_limit) {
  std::vector<std::string> frames;
  *over_limit = false;
  while (stream.size() >= 4) {
    uint32_t n = (static_cast<uint32_t>(static_cast<unsigned char>(stream[0])) << 24) |
                 (static_cast<uint32_t>(static_cast<unsigned char>(stream[1])) << 16) |
                 (static_cast<uint32_t>(static_cast<unsigned char>(stream[2])) << 8) |
                 static_cast<uint32_t>(static_cast<unsigned char>(stream[3]));
    if (n > max_bytes) *over_limit = true;
    if (n > max_bytes || stream.size() - 4 < n) break;
    frames.emplace_back(stream.substr(4, n));
    stream.remove_prefix(4 + n);
  }
  return frames;
}

// Sends `piece` with `fd_count` copies of /dev/null attached, on a non-blocking socket; while the
// socket is full, `make_room` reads from the other end.
template <typename MakeRoom>
void Send(int socket, std::string_view piece, size_t fd_count, MakeRoom make_room) {
  std::vector<int> fds;
  for (size_t i = 0; i < fd_count; ++i) fds.push_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  while (!piece.empty()) {
    iovec iov{const_cast<char*>(piece.data()), piece.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<char> control;
    if (!fds.empty()) {
      control.resize(CMSG_SPACE(sizeof(int) * fds.size()));
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
      cmsg->cmsg_level = SOL_SOCKET;
      cmsg->cmsg_type = SCM_RIGHTS;
      cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t sent = ::sendmsg(socket, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0 && errno == EAGAIN) {
      if (!make_room()) break;  // The reader gave up: the rest is never read.
      continue;
    }
    if (sent < 0) Fail("sendmsg on the socket pair failed");
    piece.remove_prefix(static_cast<size_t>(sent));
    for (int fd : fds) ::close(fd);  // The copies in flight are the kernel's now.
    fds.clear();
  }
  for (int fd : fds) ::close(fd);
}

void Run(std::string_view stream) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) Fail("socketpair");
  UniqueFd runner(pair[0]), server(pair[1]);

  bool over_limit = false;
  const std::vector<std::string> expected =
      ExpectedFrames(stream, kernel::kMaxFrameBytes, &over_limit);
  std::vector<kernel::Frame> received;
  kernel::FrameReader reader;
  Chooser chooser(stream);
  Status failed;
  std::string_view rest = stream;
  auto drain = [&] {
    while (std::optional<kernel::Frame> frame = reader.Next()) {
      received.push_back(std::move(*frame));
    }
  };
  auto feed = [&] {
    if (failed.ok()) failed = reader.Feed(server.get());
    drain();
    if (failed.ok() && !reader.error().ok()) failed = reader.error();
    return failed.ok();
  };
  while (!rest.empty() && failed.ok()) {
    size_t n = std::min(PieceSize(chooser, 100000), rest.size());
    size_t fd_count = 0;
    if (chooser.OneIn(4)) {
      fd_count = chooser.OneIn(16) ? kernel::FrameReader::kMaxFdsPerFrame + chooser.Between(1, 4)
                                   : chooser.Between(1, 3);
    }
    Send(runner.get(), rest.substr(0, n), fd_count, feed);
    rest.remove_prefix(n);
    feed();
  }
  if (failed.ok()) {
    // The whole stream went in without an error: at its end every complete frame is out and
    // Feed says "closed" — or, when the frame after the last complete one claims more than the
    // limit, that the length is over it. (One Feed may stop early — a read ends at a message that
    // carried descriptors — so, as ReadFrame does when poll says readable, it is called again.)
    runner.Reset();
    for (int i = 0; i < 1000 && feed(); ++i) {
    }
    StatusCode want = over_limit ? StatusCode::kInvalidArgument : StatusCode::kUnavailable;
    if (failed.code() != want) {
      std::fprintf(stderr, "end of stream: %s\n", failed.ToString().c_str());
      Fail("the end of the stream was not reported as closed");
    }
    if (received.size() != expected.size()) {
      std::fprintf(stderr, "received %zu frames, expected %zu\n", received.size(), expected.size());
      Fail("a complete frame was lost or one was made up");
    }
  }
  // After an error, what came out must still be the stream's frames, in order.
  if (received.size() > expected.size()) Fail("more frames than the stream holds");
  for (size_t i = 0; i < received.size(); ++i) {
    if (received[i].payload != expected[i]) Fail("a frame's payload differs from the stream's");
    for (const UniqueFd& fd : received[i].fds) {
      if (::fcntl(fd.get(), F_GETFD) < 0) Fail("a frame carries a closed descriptor");
    }
  }
}

}  // namespace
}  // namespace pycell::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace pycell::fuzz;
  // Per input: libFuzzer itself has files open at some times (a corpus directory while loading).
  const size_t before = OpenFdCount();
  Run(std::string_view(reinterpret_cast<const char*>(bytes), size));
  if (OpenFdCount() != before) Fail("a descriptor leaked");
  return 0;
}
