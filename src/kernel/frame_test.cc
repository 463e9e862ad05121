#include "kernel/frame.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace pycell::kernel {
namespace {

using std::chrono::milliseconds;

struct SocketPair {
  UniqueFd writer;
  UniqueFd reader;
};

SocketPair MakeSocketPair() {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// The bytes WriteFrame puts on the wire for `payload`.
std::string Encode(std::string_view payload, uint32_t claimed_length) {
  std::string out = {static_cast<char>(claimed_length >> 24),
                     static_cast<char>(claimed_length >> 16),
                     static_cast<char>(claimed_length >> 8), static_cast<char>(claimed_length)};
  out.append(payload);
  return out;
}
std::string Encode(std::string_view payload) {
  return Encode(payload, static_cast<uint32_t>(payload.size()));
}

void WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    ASSERT_GT(n, 0);
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

TEST(FrameTest, RoundTrip) {
  SocketPair sockets = MakeSocketPair();
  ASSERT_OK(WriteFrame(sockets.writer.get(), R"({"type":"execute"})"));
  FrameReader reader;
  Result<Frame> frame = ReadFrame(sockets.reader.get(), reader, milliseconds(1000));
  ASSERT_OK(frame);
  EXPECT_EQ(frame->payload, R"({"type":"execute"})");
  EXPECT_TRUE(frame->fds.empty());
}

TEST(FrameTest, EmptyPayloadRoundTrips) {
  SocketPair sockets = MakeSocketPair();
  ASSERT_OK(WriteFrame(sockets.writer.get(), ""));
  FrameReader reader;
  Result<Frame> frame = ReadFrame(sockets.reader.get(), reader, milliseconds(1000));
  ASSERT_OK(frame);
  EXPECT_EQ(frame->payload, "");
}

TEST(FrameTest, LargeFrameRoundTripsThroughAFullSocket) {
  SocketPair sockets = MakeSocketPair();
  std::string payload(4 << 20, 'x');
  for (size_t i = 0; i < payload.size(); i += 4097) payload[i] = static_cast<char>('a' + i % 26);
  Status written;
  std::thread writer([&] { written = WriteFrame(sockets.writer.get(), payload); });
  FrameReader reader;
  Result<Frame> frame = ReadFrame(sockets.reader.get(), reader, milliseconds(10000));
  writer.join();
  ASSERT_OK(written);
  ASSERT_OK(frame);
  EXPECT_TRUE(frame->payload == payload);
}

TEST(FrameTest, SeveralFramesInOneWriteComeOutSeparately) {
  SocketPair sockets = MakeSocketPair();
  WriteAll(sockets.writer.get(), Encode("one") + Encode("") + Encode("three"));
  FrameReader reader;
  ASSERT_OK(reader.Feed(sockets.reader.get()));
  std::vector<std::string> payloads;
  while (auto frame = reader.Next()) payloads.push_back(frame->payload);
  EXPECT_EQ(payloads, (std::vector<std::string>{"one", "", "three"}));
  EXPECT_FALSE(reader.Next().has_value());
}

TEST(FrameTest, FrameSplitAcrossTinyWritesArrivesWhole) {
  SocketPair sockets = MakeSocketPair();
  std::string bytes = Encode("split into one-byte writes");
  FrameReader reader;
  for (size_t i = 0; i < bytes.size(); ++i) {
    EXPECT_FALSE(reader.Next().has_value()) << "frame complete after only " << i << " bytes";
    WriteAll(sockets.writer.get(), bytes.substr(i, 1));
    ASSERT_OK(reader.Feed(sockets.reader.get()));
  }
  std::optional<Frame> frame = reader.Next();
  ASSERT_TRUE(frame.has_value());
  EXPECT_EQ(frame->payload, "split into one-byte writes");
}

TEST(FrameTest, DescriptorsArriveAndWork) {
  SocketPair sockets = MakeSocketPair();
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  UniqueFd pipe_read(pipe_fds[0]), pipe_write(pipe_fds[1]);
  UniqueFd dev_null(::open("/dev/null", O_RDONLY | O_CLOEXEC));

  ASSERT_OK(WriteFrame(sockets.writer.get(), "fds", {pipe_write.get(), dev_null.get()}));
  pipe_write.Reset();  // Only the received copy keeps the pipe's write end open now.
  FrameReader reader;
  Result<Frame> frame = ReadFrame(sockets.reader.get(), reader, milliseconds(1000));
  ASSERT_OK(frame);
  EXPECT_EQ(frame->payload, "fds");
  ASSERT_EQ(frame->fds.size(), 2u);
  EXPECT_NE(::fcntl(frame->fds[0].get(), F_GETFD) & FD_CLOEXEC, 0) << "received without CLOEXEC";

  ASSERT_EQ(::write(frame->fds[0].get(), "ping", 4), 4);
  frame->fds[0].Reset();
  char buf[8] = {};
  EXPECT_EQ(::read(pipe_read.get(), buf, sizeof buf), 4);
  EXPECT_STREQ(buf, "ping");
  EXPECT_EQ(::read(pipe_read.get(), buf, sizeof buf), 0) << "a stray copy of the fd stayed open";
}

// Regression test: this failed before the fix that came with it.
TEST(FrameTest, DescriptorsStayWithTheFrameThatCarriedThem) {
  SocketPair sockets = MakeSocketPair();
  UniqueFd dev_null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  ASSERT_OK(WriteFrame(sockets.writer.get(), "plain"));
  ASSERT_OK(WriteFrame(sockets.writer.get(), "with fd", {dev_null.get()}));
  FrameReader reader;
  ASSERT_OK(reader.Feed(sockets.reader.get()));
  std::optional<Frame> plain = reader.Next();
  std::optional<Frame> with_fd = reader.Next();
  ASSERT_TRUE(plain.has_value() && with_fd.has_value());
  EXPECT_EQ(plain->fds.size(), 0u);
  EXPECT_EQ(with_fd->fds.size(), 1u);
}

// Regression test: this failed before the fix that came with it.
TEST(FrameTest, AllDescriptorsOfAFrameArrive) {
  SocketPair sockets = MakeSocketPair();
  std::vector<UniqueFd> owned;
  std::vector<int> fds;
  for (int i = 0; i < 10; ++i) {
    owned.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    fds.push_back(owned.back().get());
  }
  ASSERT_OK(WriteFrame(sockets.writer.get(), "ten", fds));
  FrameReader reader;
  Result<Frame> frame = ReadFrame(sockets.reader.get(), reader, milliseconds(1000));
  ASSERT_OK(frame);
  EXPECT_EQ(frame->fds.size(), 10u);
}

TEST(FrameTest, HeaderOverMaximumIsRefusedBeforeThePayloadArrives) {
  SocketPair sockets = MakeSocketPair();
  WriteAll(sockets.writer.get(), "\xFF\xFF\xFF\xFF");  // 4 GiB announced, nothing sent.
  FrameReader reader;
  Status s = reader.Feed(sockets.reader.get());
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_FALSE(reader.Next().has_value());
  // The reader stays failed: later data is not taken as a fresh frame.
  WriteAll(sockets.writer.get(), Encode("ok"));
  EXPECT_TRUE(reader.Feed(sockets.reader.get()).IsInvalidArgument());
  EXPECT_FALSE(reader.Next().has_value());
}

TEST(FrameTest, ReaderMaximumIsHonoured) {
  SocketPair sockets = MakeSocketPair();
  WriteAll(sockets.writer.get(), Encode(std::string(16, 'a')) + Encode("", 17));
  FrameReader reader(/*max_bytes=*/16);
  Result<Frame> at_limit = ReadFrame(sockets.reader.get(), reader, milliseconds(1000));
  ASSERT_OK(at_limit);
  EXPECT_EQ(at_limit->payload.size(), 16u);
  WriteAll(sockets.writer.get(), "more");
  Result<Frame> over = ReadFrame(sockets.reader.get(), reader, milliseconds(1000));
  EXPECT_TRUE(over.status().IsInvalidArgument()) << over.status().ToString();
}

// Regression test: this failed before the fix that came with it.
TEST(FrameTest, HeaderOverMaximumBehindAValidFrameFailsFast) {
  SocketPair sockets = MakeSocketPair();
  WriteAll(sockets.writer.get(), Encode("fine") + "\xFF\xFF\xFF\xFF");
  FrameReader reader;
  ASSERT_OK(ReadFrame(sockets.reader.get(), reader, milliseconds(1000)));
  Result<Frame> next = ReadFrame(sockets.reader.get(), reader, milliseconds(200));
  EXPECT_TRUE(next.status().IsInvalidArgument()) << next.status().ToString();
}

TEST(FrameTest, WriteFrameRefusesPayloadOverMaximum) {
  SocketPair sockets = MakeSocketPair();
  std::string too_big(kMaxFrameBytes + 1, 'x');
  EXPECT_TRUE(WriteFrame(sockets.writer.get(), too_big).IsInvalidArgument());
}

TEST(FrameTest, EndOfStreamIsAnError) {
  SocketPair sockets = MakeSocketPair();
  sockets.writer.Reset();
  FrameReader reader;
  Result<Frame> frame = ReadFrame(sockets.reader.get(), reader, milliseconds(1000));
  EXPECT_EQ(frame.status().code(), StatusCode::kUnavailable) << frame.status().ToString();
}

TEST(FrameTest, EndOfStreamInsideAFrameIsAnError) {
  SocketPair sockets = MakeSocketPair();
  WriteAll(sockets.writer.get(), Encode("abc", 10));  // Promises 10 bytes, sends 3.
  sockets.writer.Reset();
  FrameReader reader;
  Result<Frame> frame = ReadFrame(sockets.reader.get(), reader, milliseconds(1000));
  EXPECT_EQ(frame.status().code(), StatusCode::kUnavailable) << frame.status().ToString();
}

TEST(FrameTest, FrameSentJustBeforeCloseIsDelivered) {
  SocketPair sockets = MakeSocketPair();
  ASSERT_OK(WriteFrame(sockets.writer.get(), "last words"));
  sockets.writer.Reset();
  FrameReader reader;
  Result<Frame> frame = ReadFrame(sockets.reader.get(), reader, milliseconds(1000));
  ASSERT_OK(frame);
  EXPECT_EQ(frame->payload, "last words");
}

// Regression test: this failed before the fix that came with it.
TEST(FrameTest, FrameOfExactlyTheReadBufferSizeBeforeCloseIsDelivered) {
  SocketPair sockets = MakeSocketPair();
  ASSERT_OK(WriteFrame(sockets.writer.get(), std::string(65536 - 4, 'x')));
  sockets.writer.Reset();
  FrameReader reader;
  Result<Frame> frame = ReadFrame(sockets.reader.get(), reader, milliseconds(1000));
  ASSERT_OK(frame);
  EXPECT_EQ(frame->payload.size(), 65532u);
}

TEST(FrameTest, ReadFrameTimesOut) {
  SocketPair sockets = MakeSocketPair();
  FrameReader reader;
  auto start = std::chrono::steady_clock::now();
  Result<Frame> frame = ReadFrame(sockets.reader.get(), reader, milliseconds(50));
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(frame.status().IsDeadlineExceeded()) << frame.status().ToString();
  EXPECT_GE(elapsed, milliseconds(45));
  EXPECT_LT(elapsed, milliseconds(2000));
}

TEST(FrameTest, ReadFrameTimesOutOnAPartialFrame) {
  SocketPair sockets = MakeSocketPair();
  WriteAll(sockets.writer.get(), Encode("abc", 100));
  FrameReader reader;
  Result<Frame> frame = ReadFrame(sockets.reader.get(), reader, milliseconds(50));
  EXPECT_TRUE(frame.status().IsDeadlineExceeded()) << frame.status().ToString();
}

// Bytes a hostile peer might send: mostly random, sometimes a plausible header with a random
// or lying body, so the reader gets past the length check as well as failing it.
std::string HostileBytes(std::mt19937& rng, uint32_t max_bytes) {
  std::string out;
  size_t target = std::uniform_int_distribution<size_t>(0, 32768)(rng);
  while (out.size() < target) {
    switch (rng() % 3) {
      case 0:
        out.push_back(static_cast<char>(rng()));
        break;
      case 1: {
        uint32_t length = rng() % (max_bytes + 2);  // Sometimes one over the limit.
        std::string body(std::min<uint32_t>(length, rng() % 2048), '\0');
        for (char& c : body) c = static_cast<char>(rng());
        out += Encode(body, length);
        break;
      }
      case 2:
        out += Encode("", rng());
        break;
    }
  }
  return out;
}

TEST(FrameTest, HostileGarbageNeverCrashes) {
  std::mt19937 rng(20240611);
  for (int round = 0; round < 300; ++round) {
    SCOPED_TRACE(round);
    SocketPair sockets = MakeSocketPair();
    uint32_t max_bytes = round % 2 ? kMaxFrameBytes : 1024;
    WriteAll(sockets.writer.get(), HostileBytes(rng, max_bytes));
    sockets.writer.Reset();
    FrameReader reader(max_bytes);
    Status fed;
    for (int feeds = 0; feeds < 100 && fed.ok(); ++feeds) {
      fed = reader.Feed(sockets.reader.get());
      while (auto frame = reader.Next()) EXPECT_LE(frame->payload.size(), max_bytes);
    }
    EXPECT_FALSE(fed.ok()) << "the stream ended, so the reader must have said so";
    EXPECT_TRUE(fed.IsInvalidArgument() || fed.code() == StatusCode::kUnavailable)
        << fed.ToString();
  }
}

}  // namespace
}  // namespace pycell::kernel
