// Diagnostics: routes diagnostic events to the sinks of the diagnostic settings
// (`[[diagnostic_settings]]`, docs/configuration.md), like Azure's diagnostic settings. Callers
// Emit an event under one category (audit, executions, sessions, requests, security); every
// setting that lists the category gets a copy, as one JSON line (file, stdout), one syslog
// message or an element of a webhook's JSON array batch.
//
// Emit never waits for I/O: each sink has its own bounded queue and worker thread, so a slow disk,
// a stopped syslog daemon or a dead webhook receiver never slows a request or a cell. A full
// queue drops the new event and counts it; a failed write is retried with exponential backoff,
// then counted as failed. States() shows the counts (`pycell diagnostic-settings list`).
//
// Ownership: the owner (the Service) keeps the one instance; replacing the settings (SIGHUP)
// means creating a new instance and closing the old one.
// Thread-safety: every method may be called from any thread, concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/config.h"
#include "common/mutex.h"
#include "common/status.h"

namespace pycell::diagnostics {

// The categories (kDiagnosticCategories), for callers of Emit.
inline constexpr std::string_view kAudit = "audit";
inline constexpr std::string_view kExecutions = "executions";
inline constexpr std::string_view kSessions = "sessions";
inline constexpr std::string_view kRequests = "requests";
inline constexpr std::string_view kSecurity = "security";

// What the sinks write to, replaceable in tests; the defaults are the real ones.
struct Environment {
  Clock* clock = Clock::Real();  // The "time" of events, and syslog's timestamp.
  int stdout_fd = 1;             // Where stdout sinks write.
};

class Diagnostics {
 public:
  // One sink's state, for `pycell diagnostic-settings list`.
  struct SinkState {
    std::string name;  // The setting's name.
    std::string sink;  // "file", "stdout", "syslog" or "webhook".
    std::vector<std::string> categories;
    uint64_t sent = 0;       // Delivered (written, accepted by the receiver).
    uint64_t failed = 0;     // Given up on after max_retries retries (or at Close).
    uint64_t dropped = 0;    // Never attempted: the queue was full, or emitted after Close.
    uint64_t queued = 0;     // Waiting now (not counting a batch being written).
    std::string last_error;  // The most recent failed attempt, kept after recovery; "" if none.
  };

  // Validates `settings` (InvalidArgument naming the key, as ValidateDiagnosticSettings), opens
  // the files (Internal naming the setting and the path if one cannot be) and starts one worker
  // thread per setting. No settings: a Diagnostics that drops nothing and sends nothing.
  static Result<std::unique_ptr<Diagnostics>> Create(const std::vector<DiagnosticSetting>& settings,
                                                     Environment environment = {});

  // Close(kCloseDeadline).
  ~Diagnostics();
  Diagnostics(const Diagnostics&) = delete;
  Diagnostics& operator=(const Diagnostics&) = delete;

  // Hands `event` to every sink whose setting lists `category`, adding "category" and "time"
  // (RFC 3339, UTC) unless the event has them. Fields are the caller's (a "request_id", …);
  // strings that are not UTF-8 are written with U+FFFD in place of the bad bytes.
  // REQUIRES: category is one of kDiagnosticCategories and event is a JSON object (bugs: CHECK).
  void Emit(std::string_view category, const nlohmann::json& event);

  // Whether any setting lists `category` (so a caller can skip building events nobody wants).
  bool Wants(std::string_view category) const;

  // Every sink's state, in the settings' order.
  std::vector<SinkState> States() const;

  // Sends what is queued now without waiting for batches to fill, and waits until every sink's
  // queue is empty and nothing is being written, or `timeout` passes. True when all drained
  // (delivered, or failed after the retries).
  bool Flush(std::chrono::milliseconds timeout);

  // Flushes for up to `flush_deadline`, then stops the workers — a batch in a retry's backoff
  // or a webhook transfer is abandoned and counted as failed, events still queued as dropped —
  // and joins them. Later Emits are dropped (and counted). Idempotent.
  void Close(std::chrono::milliseconds flush_deadline) EXCLUDES(close_mu_);
  static constexpr std::chrono::milliseconds kCloseDeadline{2000};

 private:
  class Worker;
  Diagnostics();

  std::vector<std::unique_ptr<Worker>> workers_;  // Fixed after Create.
  // routes_[i]: the workers of the settings listing kDiagnosticCategories[i]. Fixed after Create.
  std::vector<std::vector<Worker*>> routes_;
  Clock* clock_ = nullptr;
  Mutex close_mu_;
  bool closed_ GUARDED_BY(close_mu_) = false;
};

}  // namespace pycell::diagnostics
