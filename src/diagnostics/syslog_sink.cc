// The syslog sink. It speaks to the local syslog daemon the way syslog(3) does — RFC 3164
// datagrams on the Unix socket /dev/log — rather than through syslog(3) itself, whose openlog()
// state (ident, facility) is one per process: two settings with different idents would overwrite
// each other's, and a failure would be silent. Here every setting keeps its own socket and ident,
// a missing daemon is an error that States() shows, and tests can listen on a socket of their own.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

#include "common/unique_fd.h"
#include "diagnostics/sink_writer.h"

namespace pycell::diagnostics {
namespace {

// How long a send may wait for a daemon whose queue is full (Linux queues only
// net.unix.max_dgram_qlen datagrams, 10 by default, on a socket nobody reads).
constexpr std::chrono::milliseconds kSendTimeout{5000};
constexpr int kPollSliceMs = 50;  // How often a waiting send looks at the cancel flag.

class SyslogWriter : public SinkWriter {
 public:
  SyslogWriter(const DiagnosticSetting& setting, Clock* clock, const std::atomic<bool>* cancel)
      : socket_path_(setting.socket),
        ident_(setting.ident),
        priority_(SyslogFacilityCode(setting.facility) | LOG_INFO),
        clock_(clock),
        cancel_(cancel) {
    CHECK(SyslogFacilityCode(setting.facility) >= 0);
  }

  Status Write(std::span<const std::string_view> events, size_t* delivered) override {
    *delivered = 0;
    if (!socket_.valid()) RETURN_IF_ERROR(Connect());
    for (std::string_view event : events) {
      Status sent = Send(Header() + std::string(event));
      if (!sent.ok()) {
        socket_.Reset();  // The daemon may have restarted: connect again at the next attempt.
        return sent;
      }
      ++*delivered;
    }
    return Status::Ok();
  }

 private:
  Status Connect() {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (socket_path_.size() >= sizeof(address.sun_path)) {
      return Status::Internal("syslog socket path too long: " + socket_path_);
    }
    std::memcpy(address.sun_path, socket_path_.c_str(), socket_path_.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return Status::FromErrno("socket(AF_UNIX)");
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      return Status::Unavailable("connect to " + socket_path_ + ": " + std::strerror(errno) +
                                 " (is a syslog daemon running?)");
    }
    socket_ = std::move(fd);
    return Status::Ok();
  }

  Status Send(const std::string& message) {
    auto deadline = std::chrono::steady_clock::now() + kSendTimeout;
    while (::send(socket_.get(), message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        return Status::FromErrno("send to " + socket_path_);
      }
      if (cancel_->load()) return Status::Unavailable("send to " + socket_path_ + ": cancelled");
      if (std::chrono::steady_clock::now() >= deadline) {
        return Status::Unavailable("send to " + socket_path_ +
                                   ": the syslog daemon has not read for " +
                                   std::to_string(kSendTimeout.count()) + " ms");
      }
      pollfd p{socket_.get(), POLLOUT, 0};
      ::poll(&p, 1, kPollSliceMs);
    }
    return Status::Ok();
  }

  // "<PRI>Mmm dd hh:mm:ss ident[pid]: ", local time, as glibc's syslog(3).
  std::string Header() const {
    std::time_t now = std::chrono::system_clock::to_time_t(clock_->WallNow());
    std::tm local{};
    ::localtime_r(&now, &local);
    char stamp[32];
    std::strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &local);
    return "<" + std::to_string(priority_) + ">" + stamp + " " + ident_ + "[" +
           std::to_string(::getpid()) + "]: ";
  }

  const std::string socket_path_;
  const std::string ident_;
  const int priority_;
  Clock* const clock_;
  const std::atomic<bool>* const cancel_;  // Owned by the worker.
  UniqueFd socket_;                        // Invalid until connected, and after a failed send.
};

}  // namespace

int SyslogFacilityCode(const std::string& name) {
  static const std::pair<const char*, int> kCodes[] = {
      {"user", LOG_USER},         {"daemon", LOG_DAEMON}, {"auth", LOG_AUTH},
      {"authpriv", LOG_AUTHPRIV}, {"syslog", LOG_SYSLOG}, {"local0", LOG_LOCAL0},
      {"local1", LOG_LOCAL1},     {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3},
      {"local4", LOG_LOCAL4},     {"local5", LOG_LOCAL5}, {"local6", LOG_LOCAL6},
      {"local7", LOG_LOCAL7}};
  for (const auto& [facility, code] : kCodes) {
    if (name == facility) return code;
  }
  return -1;
}

std::unique_ptr<SinkWriter> OpenSyslogWriter(const DiagnosticSetting& setting, Clock* clock,
                                             const std::atomic<bool>* cancel) {
  return std::make_unique<SyslogWriter>(setting, clock, cancel);
}

}  // namespace pycell::diagnostics
