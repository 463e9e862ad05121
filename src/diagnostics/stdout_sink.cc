// The stdout sink: JSON lines on standard output, for a service manager's journal or a container
// runtime's log. Every batch is one write where it fits, under a process-wide lock, so two
// stdout sinks never interleave within a line.
#include <unistd.h>

#include <cerrno>
#include <string>

#include "common/mutex.h"
#include "diagnostics/sink_writer.h"

namespace pycell::diagnostics {
namespace {

Mutex& StdoutMutex() {
  static Mutex mu;
  return mu;
}

class StdoutWriter : public SinkWriter {
 public:
  explicit StdoutWriter(int fd) : fd_(fd) {}

  Status Write(std::span<const std::string_view> events, size_t* delivered) override {
    *delivered = 0;
    std::string buffer;
    for (std::string_view event : events) {
      buffer.append(event);
      buffer.push_back('\n');
    }
    MutexLock lock(StdoutMutex());
    size_t written = 0;
    size_t next_line = 0;  // Index of the first event not yet wholly written.
    size_t line_end = events.empty() ? 0 : events[0].size() + 1;
    while (written < buffer.size()) {
      ssize_t n = ::write(fd_, buffer.data() + written, buffer.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        // Lines wholly out count as delivered; a half line cannot be taken back (a pipe), and is
        // written again whole on retry.
        return Status::FromErrno("write to standard output", n == 0 ? EIO : errno);
      }
      written += static_cast<size_t>(n);
      while (next_line < events.size() && line_end <= written) {
        ++*delivered;
        ++next_line;
        if (next_line < events.size()) line_end += events[next_line].size() + 1;
      }
    }
    return Status::Ok();
  }

 private:
  const int fd_;  // Not owned.
};

}  // namespace

std::unique_ptr<SinkWriter> OpenStdoutWriter(int fd) { return std::make_unique<StdoutWriter>(fd); }

}  // namespace pycell::diagnostics
