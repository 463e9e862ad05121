#include "diagnostics/diagnostics.h"

#include <algorithm>
#include <deque>
#include <nlohmann/json.hpp>
#include <span>
#include <thread>
#include <utility>

#include "common/logging.h"
#include "common/mutex.h"
#include "diagnostics/sink_writer.h"

namespace pycell::diagnostics {
namespace {

using SteadyTime = std::chrono::steady_clock::time_point;

// Local sinks (file, stdout, syslog) write what gathered within a few milliseconds of the first
// event, this many at a time: under load one write(2) carries many lines instead of one each
// (measured in docs/benchmarks.md, "Diagnostic settings").
constexpr size_t kLocalBatchMax = 1024;
constexpr std::chrono::milliseconds kLocalBatchWindow{5};
// Backoff doubles up to this.
constexpr std::chrono::milliseconds kMaxBackoff{60'000};
// Drops are logged at most this often (each drop is counted in States()).
constexpr std::chrono::seconds kDropLogInterval{60};

int CategoryIndex(std::string_view category) {
  for (size_t i = 0; i < kDiagnosticCategories.size(); ++i) {
    if (kDiagnosticCategories[i] == category) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace

// One setting's queue and the thread that empties it into the setting's SinkWriter: batching,
// retries with backoff and the counts live here, once for every kind of sink.
class Diagnostics::Worker {
 public:
  static Result<std::unique_ptr<Worker>> Start(const DiagnosticSetting& setting,
                                               const Environment& environment) {
    std::unique_ptr<Worker> worker(new Worker(setting));
    if (setting.sink == "file") {
      ASSIGN_OR_RETURN(worker->writer_, OpenFileWriter(setting));
    } else if (setting.sink == "stdout") {
      worker->writer_ = OpenStdoutWriter(environment.stdout_fd);
    } else if (setting.sink == "syslog") {
      worker->writer_ = OpenSyslogWriter(setting, environment.clock, &worker->cancel_);
    } else if (setting.sink == "webhook") {
      ASSIGN_OR_RETURN(worker->writer_, OpenWebhookWriter(setting, &worker->cancel_));
    } else {
      CHECK(false && "sink not validated");
    }
    worker->thread_ = std::thread([w = worker.get()] { w->Run(); });
    return worker;
  }

  ~Worker() { Stop(); }

  void Enqueue(const std::shared_ptr<const std::string>& event) {
    bool wake = false;
    {
      MutexLock lock(mu_);
      if (stopping_ || queue_.size() >= setting_.queue_max) {
        ++dropped_;
        ++dropped_unlogged_;  // Logged by the worker: the caller never waits for a log write.
        return;
      }
      queue_.push_back({event, std::chrono::steady_clock::now()});
      // The worker waits for a first event, then for its batch window or a full batch: only
      // those two moments need a wake-up (one per event costs a context switch per event).
      wake = queue_.size() == 1 || queue_.size() >= batch_max_;
    }
    if (wake) wake_.NotifyOne();
  }

  // Asks for what is queued to be written now, not when a batch fills.
  void RequestFlush() {
    {
      MutexLock lock(mu_);
      if (queue_.empty() && !busy_) return;
      flush_requested_ = true;
    }
    wake_.NotifyOne();
  }

  // True when the queue is empty and no batch is in hand before `deadline`.
  bool WaitIdle(SteadyTime deadline) {
    MutexLock lock(mu_);
    return idle_.WaitUntil(mu_, deadline, [&]() REQUIRES(mu_) { return queue_.empty() && !busy_; });
  }

  // Abandons what is left (see Close) and joins the thread. Idempotent.
  void Stop() {
    {
      MutexLock lock(mu_);
      stopping_ = true;
      cancel_ = true;
    }
    wake_.NotifyAll();
    if (thread_.joinable()) thread_.join();
  }

  SinkState State() const {
    MutexLock lock(mu_);
    return {setting_.name, setting_.sink, setting_.categories, sent_,
            failed_,       dropped_,      queue_.size(),       last_error_};
  }

 private:
  struct Pending {
    std::shared_ptr<const std::string> event;  // Shared by every sink the event goes to.
    SteadyTime queued_at;
  };

  explicit Worker(const DiagnosticSetting& setting)
      : setting_(setting),
        batch_max_(setting.sink == "webhook" ? setting.batch_max : kLocalBatchMax),
        batch_window_(setting.sink == "webhook" ? setting.flush_interval : kLocalBatchWindow) {}

  void Run() {
    MutexLock lock(mu_);
    while (true) {
      wake_.Wait(mu_, [&]() REQUIRES(mu_) { return cancel_ || !queue_.empty(); });
      if (cancel_) break;
      if (batch_window_.count() > 0) {
        // Wait for a full batch, but not longer than the window from the oldest event.
        wake_.WaitUntil(mu_, queue_.front().queued_at + batch_window_, [&]() REQUIRES(mu_) {
          return cancel_ || flush_requested_ || queue_.size() >= batch_max_;
        });
        if (cancel_) break;
      }
      size_t take = std::min(batch_max_, queue_.size());
      std::vector<std::shared_ptr<const std::string>> held;
      std::vector<std::string_view> batch;
      held.reserve(take);
      batch.reserve(take);
      for (size_t i = 0; i < take; ++i) {
        held.push_back(std::move(queue_.front().event));
        batch.push_back(*held.back());
        queue_.pop_front();
      }
      busy_ = true;
      Deliver(batch);
      busy_ = false;
      if (queue_.empty()) {
        flush_requested_ = false;
        idle_.NotifyAll();
      }
      LogDrops();
    }
    dropped_ += queue_.size();
    queue_.clear();
    busy_ = false;
    idle_.NotifyAll();
  }

  // Says how many events were dropped, at most once every kDropLogInterval.
  // Releases mu_ while logging.
  void LogDrops() REQUIRES(mu_) {
    auto now = std::chrono::steady_clock::now();
    if (dropped_unlogged_ == 0 || now - last_drop_log_ < kDropLogInterval) return;
    uint64_t dropped = std::exchange(dropped_unlogged_, 0);
    last_drop_log_ = now;
    mu_.Unlock();
    LOG_WARN("diagnostic setting {}: dropped {} events: its queue ({} events) was full",
             setting_.name, dropped, setting_.queue_max);
    mu_.Lock();
  }

  // Writes `batch`, retrying what was not delivered after backoff, backoff·2, … up to
  // max_retries times; what is still not delivered then is failed.
  // Releases mu_ while writing and waiting.
  void Deliver(std::span<const std::string_view> batch) REQUIRES(mu_) {
    size_t done = 0;
    uint32_t retries = 0;
    std::chrono::milliseconds backoff = setting_.backoff;
    while (true) {
      mu_.Unlock();
      size_t delivered = 0;
      Status status = writer_->Write(batch.subspan(done), &delivered);
      mu_.Lock();
      CHECK(delivered <= batch.size() - done);
      done += delivered;
      sent_ += delivered;
      if (status.ok() && done == batch.size()) {
        if (failing_) {
          failing_ = false;
          mu_.Unlock();
          LOG_INFO("diagnostic setting {}: delivering again", setting_.name);
          mu_.Lock();
        }
        return;
      }
      last_error_ = status.ok() ? "incomplete write" : status.message();
      if (retries >= setting_.max_retries || cancel_) break;
      ++retries;
      if (wake_.WaitFor(mu_, backoff, [&] { return cancel_.load(); })) break;
      backoff = std::min(backoff * 2, kMaxBackoff);
    }
    failed_ += batch.size() - done;
    bool first_failure = !failing_ && !cancel_;
    failing_ = true;
    if (first_failure) {
      std::string error = last_error_;
      mu_.Unlock();
      LOG_WARN(
          "diagnostic setting {} ({}): {} events failed after {} retries: {}; further "
          "failures are counted, not logged, until it delivers again",
          setting_.name, setting_.sink, batch.size() - done, retries, error);
      mu_.Lock();
    }
  }

  const DiagnosticSetting setting_;
  const size_t batch_max_;
  const std::chrono::milliseconds batch_window_;  // 0: write at once.
  std::unique_ptr<SinkWriter> writer_;            // Used by thread_ only, once started.
  // Close's deadline passed: abandon the batch in hand. Set under mu_; read without it by the
  // webhook's transfer.
  std::atomic<bool> cancel_{false};

  mutable Mutex mu_;
  CondVar wake_;  // To the thread: events, a flush, Stop.
  CondVar idle_;  // To WaitIdle: the queue is empty and no batch in hand.
  std::deque<Pending> queue_ GUARDED_BY(mu_);
  bool busy_ GUARDED_BY(mu_) = false;  // A batch is being delivered.
  bool flush_requested_ GUARDED_BY(mu_) = false;
  bool stopping_ GUARDED_BY(mu_) = false;
  bool failing_ GUARDED_BY(mu_) = false;           // The last batch failed (logged once).
  uint64_t dropped_unlogged_ GUARDED_BY(mu_) = 0;  // Not yet in the log.
  SteadyTime last_drop_log_ GUARDED_BY(mu_);
  uint64_t sent_ GUARDED_BY(mu_) = 0;
  uint64_t failed_ GUARDED_BY(mu_) = 0;
  uint64_t dropped_ GUARDED_BY(mu_) = 0;
  std::string last_error_ GUARDED_BY(mu_);
  std::thread thread_;  // Started last in Start, joined in Stop.
};

Diagnostics::Diagnostics() : routes_(kDiagnosticCategories.size()) {}

Diagnostics::~Diagnostics() { Close(kCloseDeadline); }

Result<std::unique_ptr<Diagnostics>> Diagnostics::Create(
    const std::vector<DiagnosticSetting>& settings, Environment environment) {
  RETURN_IF_ERROR(ValidateDiagnosticSettings(settings));
  std::unique_ptr<Diagnostics> diagnostics(new Diagnostics());
  diagnostics->clock_ = environment.clock;
  for (const DiagnosticSetting& setting : settings) {
    auto worker = Worker::Start(setting, environment);
    if (!worker.ok()) {
      return worker.status().WithContext("diagnostic setting \"" + setting.name + "\"");
    }
    for (const std::string& category : setting.categories) {
      diagnostics->routes_[CategoryIndex(category)].push_back(worker->get());
    }
    diagnostics->workers_.push_back(std::move(*worker));
  }
  return diagnostics;
}

void Diagnostics::Emit(std::string_view category, const nlohmann::json& event) {
  int index = CategoryIndex(category);
  CHECK(index >= 0);
  CHECK(event.is_object());
  const std::vector<Worker*>& targets = routes_[index];
  if (targets.empty()) return;
  nlohmann::json record = event;
  if (!record.contains("category")) record["category"] = category;
  if (!record.contains("time")) record["time"] = FormatRfc3339(clock_->WallNow());
  auto line = std::make_shared<const std::string>(
      record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  for (Worker* worker : targets) worker->Enqueue(line);
}

bool Diagnostics::Wants(std::string_view category) const {
  int index = CategoryIndex(category);
  return index >= 0 && !routes_[index].empty();
}

std::vector<Diagnostics::SinkState> Diagnostics::States() const {
  std::vector<SinkState> states;
  for (const auto& worker : workers_) states.push_back(worker->State());
  return states;
}

bool Diagnostics::Flush(std::chrono::milliseconds timeout) {
  SteadyTime deadline = std::chrono::steady_clock::now() + timeout;
  for (const auto& worker : workers_) worker->RequestFlush();
  bool drained = true;
  for (const auto& worker : workers_) drained = worker->WaitIdle(deadline) && drained;
  return drained;
}

void Diagnostics::Close(std::chrono::milliseconds flush_deadline) {
  MutexLock lock(close_mu_);
  if (closed_) return;
  closed_ = true;
  Flush(flush_deadline);
  for (const auto& worker : workers_) worker->Stop();
}

}  // namespace pycell::diagnostics
