// SinkWriter: the one thing a diagnostic sink does differently from the others — put a batch of
// events somewhere. Queues, batching, retries with backoff and the sent/failed/dropped counts are
// shared work, done once by Diagnostics' per-sink worker (diagnostics.cc), never by a writer.
//
// Internal to src/diagnostics. Ownership: each writer belongs to one worker thread and is only
// ever called from it (not thread-safe, and needs not be); it is destroyed after that thread is
// joined.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/config.h"
#include "common/status.h"

namespace pycell::diagnostics {

class SinkWriter {
 public:
  virtual ~SinkWriter() = default;

  // Delivers `events` (each one serialized JSON object, no newline), in order. Sets *delivered
  // to how many of the first events are in place, whatever the outcome: the worker counts them
  // as sent and retries only the rest. OK means all of them; otherwise the status says why the
  // rest were not (Unavailable for a receiver or a socket, Internal for a failed system call).
  virtual Status Write(std::span<const std::string_view> events, size_t* delivered) = 0;
};

// file: JSON lines appended to setting.path, rotated by size (file_sink.cc). Creates missing
// parent folders; fails now when the file cannot be opened, so a bad path stops the start.
Result<std::unique_ptr<SinkWriter>> OpenFileWriter(const DiagnosticSetting& setting);

// stdout: JSON lines written to `fd` (standard output outside tests) (stdout_sink.cc).
std::unique_ptr<SinkWriter> OpenStdoutWriter(int fd);

// syslog: one datagram per event in the format syslog(3) sends (RFC 3164,
// "<PRI>Mmm dd hh:mm:ss ident[pid]: {json}") to the Unix socket setting.socket (/dev/log by
// default), connected again after any failure (syslog_sink.cc). A daemon that stops reading makes a
// send fail after a while instead of blocking forever, and soon after *cancel turns true.
std::unique_ptr<SinkWriter> OpenSyslogWriter(const DiagnosticSetting& setting, Clock* clock,
                                             const std::atomic<bool>* cancel);

// webhook: one HTTP POST of a JSON array per batch; a 2xx answer delivers all of it, anything
// else none (webhook_sink.cc). A transfer in progress is abandoned soon after *cancel turns true.
Result<std::unique_ptr<SinkWriter>> OpenWebhookWriter(const DiagnosticSetting& setting,
                                                      const std::atomic<bool>* cancel);

// The syslog(3) facility code of a name from kSyslogFacilities; -1 for any other name.
int SyslogFacilityCode(const std::string& name);

}  // namespace pycell::diagnostics
