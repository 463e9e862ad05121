#include "diagnostics/diagnostics.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/unique_fd.h"
#include "diagnostics/sink_writer.h"
#include "test_util.h"

namespace pycell::diagnostics {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;

using pycell::testing::TempDir;

// The JSON lines of a file.
std::vector<Json> ReadLines(const std::string& path) {
  std::vector<Json> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(Json::parse(line));
  return lines;
}

// A tiny HTTP/1.1 receiver on 127.0.0.1, port 0: one connection at a time, one request per
// connection. It answers 500 to the first `fail_first` requests and 200 to the rest, or, when
// `stall`, reads the request and never answers.
class HttpReceiver {
 public:
  explicit HttpReceiver(int fail_first = 0, bool stall = false)
      : fail_first_(fail_first), stall_(stall) {
    listener_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    CHECK(listener_.valid());
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    CHECK(::listen(listener_.get(), 16) == 0);
    socklen_t length = sizeof(address);
    CHECK(::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~HttpReceiver() {
    stop_ = true;
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  // The bodies of the requests answered 200, in order.
  std::vector<Json> Batches() {
    std::lock_guard lock(mu_);
    return batches_;
  }
  int requests() const { return requests_; }

 private:
  // Waits for `fd` to be readable; false once the receiver stops.
  bool WaitReadable(int fd) {
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20) > 0) return true;
    }
    return false;
  }

  void Run() {
    while (WaitReadable(listener_.get())) {
      UniqueFd connection(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (connection.valid()) Serve(connection.get());
    }
  }

  void Serve(int fd) {
    std::string data;
    size_t header_end = std::string::npos;
    size_t content_length = 0;
    char buffer[65536];
    while (header_end == std::string::npos || data.size() < header_end + 4 + content_length) {
      if (!WaitReadable(fd)) return;
      ssize_t n = ::read(fd, buffer, sizeof(buffer));
      if (n <= 0) return;
      data.append(buffer, static_cast<size_t>(n));
      if (header_end == std::string::npos && (header_end = data.find("\r\n\r\n")) != data.npos) {
        std::string head = data.substr(0, header_end);
        for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        size_t at = head.find("content-length:");
        if (at != std::string::npos) content_length = std::stoul(head.substr(at + 15));
      }
    }
    ++requests_;
    if (stall_) {
      WaitReadable(fd);  // Until the client gives up or the receiver stops.
      return;
    }
    bool fail = requests_ <= fail_first_;
    if (!fail) {
      std::lock_guard lock(mu_);
      batches_.push_back(Json::parse(data.substr(header_end + 4)));
    }
    std::string answer = fail ? "HTTP/1.1 500 Internal Server Error\r\n" : "HTTP/1.1 200 OK\r\n";
    answer += "Content-Length: 0\r\nConnection: close\r\n\r\n";
    CHECK(::write(fd, answer.data(), answer.size()) == static_cast<ssize_t>(answer.size()));
  }

  const int fail_first_;
  const bool stall_;
  UniqueFd listener_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::mutex mu_;
  std::vector<Json> batches_;  // GUARDED_BY(mu_)
  std::thread thread_;
};

// A loopback URL nothing listens on: connections are refused at once.
std::string DeadUrl() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  socklen_t length = sizeof(address);
  CHECK(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0);
  return "http://127.0.0.1:" + std::to_string(ntohs(address.sin_port)) + "/hook";
}

// A Unix datagram socket standing in for the syslog daemon's /dev/log, read by a thread of its own
// (the kernel queues only a few datagrams for a socket nobody reads).
class SyslogReceiver {
 public:
  explicit SyslogReceiver(std::string path) : path_(std::move(path)) {
    fd_ = UniqueFd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path_.c_str(), sizeof(address.sun_path) - 1);
    CHECK(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    thread_ = std::thread([this] { Run(); });
  }
  ~SyslogReceiver() {
    stop_ = true;
    thread_.join();
  }
  const std::string& path() const { return path_; }
  // Every message received so far.
  std::vector<std::string> Messages() {
    std::lock_guard lock(mu_);
    return messages_;
  }

 private:
  void Run() {
    char buffer[65536];
    while (!stop_) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      ssize_t n = ::recv(fd_.get(), buffer, sizeof(buffer), 0);
      if (n <= 0) continue;
      std::lock_guard lock(mu_);
      messages_.emplace_back(buffer, static_cast<size_t>(n));
    }
  }

  std::string path_;
  UniqueFd fd_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::string> messages_;  // GUARDED_BY(mu_)
  std::thread thread_;
};

// The JSON object of a syslog message "<PRI>Mmm dd hh:mm:ss ident[pid]: {…}".
Json SyslogJson(const std::string& message) {
  return Json::parse(message.substr(message.find("]: ") + 3));
}

DiagnosticSetting Setting(std::string name, std::vector<std::string> categories, std::string sink) {
  DiagnosticSetting setting;
  setting.name = std::move(name);
  setting.categories = std::move(categories);
  setting.sink = std::move(sink);
  return setting;
}

DiagnosticSetting FileSetting(std::string name, std::vector<std::string> categories,
                              std::string path) {
  DiagnosticSetting setting = Setting(std::move(name), std::move(categories), "file");
  setting.path = std::move(path);
  return setting;
}

DiagnosticSetting WebhookSetting(std::string name, std::vector<std::string> categories,
                                 std::string url) {
  DiagnosticSetting setting = Setting(std::move(name), std::move(categories), "webhook");
  setting.url = std::move(url);
  setting.flush_interval = milliseconds(50);
  setting.backoff = milliseconds(10);
  return setting;
}

Diagnostics::SinkState StateOf(const Diagnostics& diagnostics, const std::string& name) {
  for (auto& state : diagnostics.States()) {
    if (state.name == name) return state;
  }
  ADD_FAILURE() << "no sink " << name;
  return {};
}

std::multiset<std::string> CategoriesOf(const std::vector<Json>& events) {
  std::multiset<std::string> categories;
  for (const Json& event : events) categories.insert(event.at("category").get<std::string>());
  return categories;
}

std::multiset<std::string> Times(std::vector<std::string> categories, int n) {
  std::multiset<std::string> out;
  for (const std::string& category : categories) {
    for (int i = 0; i < n; ++i) out.insert(category);
  }
  return out;
}

TEST(DiagnosticsTest, EachSinkReceivesExactlyTheCategoriesItLists) {
  TempDir dir;
  HttpReceiver receiver;
  SyslogReceiver syslog(dir.path() + "/log");
  UniqueFd stdout_file(
      ::open((dir.path() + "/stdout").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  Environment environment;
  environment.stdout_fd = stdout_file.get();
  DiagnosticSetting to_syslog = Setting("to-syslog", {"security", "audit"}, "syslog");
  to_syslog.socket = syslog.path();
  to_syslog.facility = "local3";
  to_syslog.ident = "pycell-test";
  auto diagnostics = Diagnostics::Create(
      {FileSetting("audit-file", {"audit", "security"}, dir.path() + "/audit.jsonl"),
       FileSetting("exec-file", {"executions"}, dir.path() + "/sub/dir/exec.jsonl"),
       Setting("console", {"sessions", "requests"}, "stdout"), to_syslog,
       WebhookSetting("hook", {"requests", "executions", "sessions"}, receiver.url())},
      environment);
  ASSERT_OK(diagnostics);

  constexpr int kEach = 20;
  for (int i = 0; i < kEach; ++i) {
    for (std::string_view category : kDiagnosticCategories) {
      (*diagnostics)->Emit(category, {{"seq", i}, {"request_id", "req_" + std::to_string(i)}});
    }
  }
  ASSERT_TRUE((*diagnostics)->Flush(milliseconds(5000)));

  auto audit = ReadLines(dir.path() + "/audit.jsonl");
  EXPECT_EQ(CategoriesOf(audit), Times({"audit", "security"}, kEach));
  EXPECT_EQ(CategoriesOf(ReadLines(dir.path() + "/sub/dir/exec.jsonl")),
            Times({"executions"}, kEach));
  EXPECT_EQ(CategoriesOf(ReadLines(dir.path() + "/stdout")),
            Times({"sessions", "requests"}, kEach));
  std::vector<Json> from_syslog;
  for (const std::string& message : syslog.Messages()) {
    // local3.info = 19 * 8 + 6.
    EXPECT_EQ(message.rfind("<158>", 0), 0u) << message;
    EXPECT_NE(message.find(" pycell-test[" + std::to_string(::getpid()) + "]: {"),
              std::string::npos)
        << message;
    from_syslog.push_back(SyslogJson(message));
  }
  EXPECT_EQ(CategoriesOf(from_syslog), Times({"security", "audit"}, kEach));
  std::vector<Json> from_hook;
  for (const Json& batch : receiver.Batches()) {
    ASSERT_TRUE(batch.is_array());
    for (const Json& event : batch) from_hook.push_back(event);
  }
  EXPECT_EQ(CategoriesOf(from_hook), Times({"requests", "executions", "sessions"}, kEach));

  // The caller's fields are kept; "time" is added; order within a sink is emission order.
  ASSERT_EQ(audit.size(), 2u * kEach);
  EXPECT_EQ(audit[0].at("request_id"), "req_0");
  EXPECT_EQ(audit[0].at("seq"), 0);
  EXPECT_EQ(audit.back().at("seq"), kEach - 1);
  EXPECT_TRUE(audit[0].at("time").get<std::string>().ends_with("Z"));

  for (const auto& state : (*diagnostics)->States()) {
    EXPECT_EQ(state.sent, state.categories.size() * kEach) << state.name;
    EXPECT_EQ(state.failed, 0u) << state.name;
    EXPECT_EQ(state.dropped, 0u) << state.name;
    EXPECT_EQ(state.queued, 0u) << state.name;
    EXPECT_EQ(state.last_error, "") << state.name;
  }
  auto states = (*diagnostics)->States();
  ASSERT_EQ(states.size(), 5u);
  EXPECT_EQ(states[3].name, "to-syslog");
  EXPECT_EQ(states[3].sink, "syslog");
  EXPECT_EQ(states[3].categories, (std::vector<std::string>{"security", "audit"}));
}

TEST(DiagnosticsTest, FieldsTheCallerSetsWinAndBadUtf8IsReplaced) {
  TempDir dir;
  auto diagnostics = Diagnostics::Create({FileSetting("f", {"audit"}, dir.path() + "/a.jsonl")});
  ASSERT_OK(diagnostics);
  (*diagnostics)->Emit(kAudit, {{"time", "2026-01-02T03:04:05Z"}, {"category", "mine"}});
  (*diagnostics)->Emit(kAudit, {{"code", std::string("print('\xff')")}});
  (*diagnostics)->Emit(kSecurity, {{"not", "routed"}});  // No setting lists it.
  ASSERT_TRUE((*diagnostics)->Flush(milliseconds(2000)));
  auto lines = ReadLines(dir.path() + "/a.jsonl");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].at("time"), "2026-01-02T03:04:05Z");
  EXPECT_EQ(lines[0].at("category"), "mine");
  EXPECT_EQ(lines[1].at("code"), "print('\xEF\xBF\xBD')");
}

TEST(DiagnosticsTest, ARotatedFileKeepsEveryEvent) {
  TempDir dir;
  std::string path = dir.path() + "/audit.jsonl";
  DiagnosticSetting setting = FileSetting("audit", {"audit"}, path);
  setting.max_bytes = 1024;
  setting.keep = 400;
  auto diagnostics = Diagnostics::Create({setting});
  ASSERT_OK(diagnostics);

  constexpr int kThreads = 4, kEach = 500;  // ~100 bytes each: ~200 rotations.
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        (*diagnostics)->Emit(kAudit, {{"thread", t}, {"seq", i}, {"padding", "0123456789"}});
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_TRUE((*diagnostics)->Flush(milliseconds(5000)));

  std::map<int, std::vector<int>> seen;  // thread -> seqs, oldest file first.
  int files = 0;
  for (int i = setting.keep; i >= 0; --i) {
    std::string file = i == 0 ? path : path + "." + std::to_string(i);
    if (!std::filesystem::exists(file)) continue;
    ++files;
    EXPECT_LE(std::filesystem::file_size(file), setting.max_bytes) << file;
    for (const Json& event : ReadLines(file)) {
      seen[event.at("thread").get<int>()].push_back(event.at("seq").get<int>());
    }
  }
  EXPECT_GT(files, 100);
  EXPECT_LT(files, static_cast<int>(setting.keep));  // Nothing fell off the end.
  ASSERT_EQ(seen.size(), static_cast<size_t>(kThreads));
  for (const auto& [thread, seqs] : seen) {
    ASSERT_EQ(seqs.size(), static_cast<size_t>(kEach)) << "thread " << thread;
    for (int i = 0; i < kEach; ++i) ASSERT_EQ(seqs[i], i) << "thread " << thread;
  }
  EXPECT_EQ(StateOf(**diagnostics, "audit").sent, static_cast<uint64_t>(kThreads * kEach));
}

TEST(DiagnosticsTest, RotationKeepsOnlyKeepFiles) {
  TempDir dir;
  std::string path = dir.path() + "/a.jsonl";
  DiagnosticSetting setting = FileSetting("a", {"audit"}, path);
  setting.max_bytes = 1024;
  setting.keep = 2;
  auto diagnostics = Diagnostics::Create({setting});
  ASSERT_OK(diagnostics);
  for (int i = 0; i < 200; ++i) (*diagnostics)->Emit(kAudit, {{"seq", i}});
  ASSERT_TRUE((*diagnostics)->Flush(milliseconds(2000)));
  EXPECT_TRUE(std::filesystem::exists(path + ".1"));
  EXPECT_TRUE(std::filesystem::exists(path + ".2"));
  EXPECT_FALSE(std::filesystem::exists(path + ".3"));
  auto newest = ReadLines(path);
  ASSERT_FALSE(newest.empty());
  EXPECT_EQ(newest.back().at("seq"), 199);
  EXPECT_LT(ReadLines(path + ".2").back().at("seq").get<int>(),
            ReadLines(path + ".1").front().at("seq").get<int>());
}

TEST(DiagnosticsTest, WebhookBatchesByCountAndByTime) {
  HttpReceiver receiver;
  DiagnosticSetting setting = WebhookSetting("hook", {"requests"}, receiver.url());
  setting.batch_max = 10;
  setting.flush_interval = milliseconds(300);
  auto diagnostics = Diagnostics::Create({setting});
  ASSERT_OK(diagnostics);

  for (int i = 0; i < 35; ++i) (*diagnostics)->Emit(kRequests, {{"seq", i}});
  // Three full batches go at once; the last 5 after the interval, without a Flush.
  for (int waited = 0; waited < 3000 && StateOf(**diagnostics, "hook").sent < 35; waited += 10) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  auto batches = receiver.Batches();
  ASSERT_EQ(batches.size(), 4u);
  int next = 0;
  for (size_t b = 0; b < batches.size(); ++b) {
    EXPECT_EQ(batches[b].size(), b < 3 ? 10u : 5u);
    for (const Json& event : batches[b]) EXPECT_EQ(event.at("seq"), next++);
  }

  // Flush sends a partial batch at once.
  (*diagnostics)->Emit(kRequests, {{"seq", 35}});
  ASSERT_TRUE((*diagnostics)->Flush(milliseconds(2000)));
  EXPECT_EQ(receiver.Batches().size(), 5u);
  EXPECT_EQ(StateOf(**diagnostics, "hook").sent, 36u);
}

TEST(DiagnosticsTest, WebhookRetriesAfterServerErrorsAndDelivers) {
  HttpReceiver receiver(/*fail_first=*/2);
  DiagnosticSetting setting = WebhookSetting("hook", {"audit"}, receiver.url());
  setting.max_retries = 3;
  auto diagnostics = Diagnostics::Create({setting});
  ASSERT_OK(diagnostics);
  for (int i = 0; i < 5; ++i) (*diagnostics)->Emit(kAudit, {{"seq", i}});
  ASSERT_TRUE((*diagnostics)->Flush(milliseconds(3000)));
  EXPECT_EQ(receiver.requests(), 3);
  ASSERT_EQ(receiver.Batches().size(), 1u);
  EXPECT_EQ(receiver.Batches()[0].size(), 5u);
  auto state = StateOf(**diagnostics, "hook");
  EXPECT_EQ(state.sent, 5u);
  EXPECT_EQ(state.failed, 0u);
  EXPECT_NE(state.last_error.find("HTTP 500"), std::string::npos) << state.last_error;
  EXPECT_EQ(state.last_error.find("/hook"), std::string::npos) << "the path is not shown";
}

TEST(DiagnosticsTest, WebhookGivesUpAfterMaxRetriesAndCountsFailed) {
  HttpReceiver receiver(/*fail_first=*/1000);
  DiagnosticSetting setting = WebhookSetting("hook", {"audit"}, receiver.url());
  setting.max_retries = 2;
  auto diagnostics = Diagnostics::Create({setting});
  ASSERT_OK(diagnostics);
  for (int i = 0; i < 4; ++i) (*diagnostics)->Emit(kAudit, {{"seq", i}});
  ASSERT_TRUE((*diagnostics)->Flush(milliseconds(3000)));
  EXPECT_EQ(receiver.requests(), 3);  // The first attempt and two retries.
  auto state = StateOf(**diagnostics, "hook");
  EXPECT_EQ(state.sent, 0u);
  EXPECT_EQ(state.failed, 4u);
  EXPECT_EQ(state.dropped, 0u);
}

TEST(DiagnosticsTest, WebhookQueueFullDropsAndCountsWhileTheReceiverIsDown) {
  DiagnosticSetting setting = WebhookSetting("hook", {"security"}, DeadUrl());
  setting.queue_max = 5;
  setting.batch_max = 1;
  setting.flush_interval = milliseconds(0);
  setting.max_retries = 100;
  setting.backoff = milliseconds(5000);
  auto diagnostics = Diagnostics::Create({setting});
  ASSERT_OK(diagnostics);

  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 50; ++i) (*diagnostics)->Emit(kSecurity, {{"seq", i}});
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(500));
  // One event in the worker's hands (in its backoff), five queued, the rest dropped.
  auto state = StateOf(**diagnostics, "hook");
  EXPECT_GE(state.dropped, 44u);
  EXPECT_LE(state.dropped, 45u);
  EXPECT_EQ(state.sent, 0u);
  EXPECT_LE(state.queued, 5u);
  EXPECT_FALSE((*diagnostics)->Flush(milliseconds(50)));
  EXPECT_NE(StateOf(**diagnostics, "hook").last_error.find("POST http://127.0.0.1:"),
            std::string::npos);

  start = std::chrono::steady_clock::now();
  (*diagnostics)->Close(milliseconds(0));
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(1000));
  (*diagnostics)->Emit(kSecurity, {{"seq", 50}});  // After Close: dropped.
  state = StateOf(**diagnostics, "hook");
  EXPECT_EQ(state.sent + state.failed + state.dropped, 51u);
  EXPECT_EQ(state.queued, 0u);
}

TEST(DiagnosticsTest, EmitDoesNotWaitForAStalledReceiver) {
  HttpReceiver receiver(/*fail_first=*/0, /*stall=*/true);
  DiagnosticSetting setting = WebhookSetting("hook", {"executions"}, receiver.url());
  setting.batch_max = 1;
  setting.timeout = milliseconds(60000);
  auto diagnostics = Diagnostics::Create({setting});
  ASSERT_OK(diagnostics);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 5000; ++i) (*diagnostics)->Emit(kExecutions, {{"seq", i}});
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(1000));
  // Close abandons the transfer in progress (libcurl's progress callback sees the cancel).
  start = std::chrono::steady_clock::now();
  (*diagnostics)->Close(milliseconds(100));
  // libcurl calls the progress callback about once a second while it waits for an answer.
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2500));
  auto state = StateOf(**diagnostics, "hook");
  EXPECT_EQ(state.sent, 0u);
  EXPECT_EQ(state.failed, 1u);  // The batch in the abandoned transfer.
  EXPECT_EQ(state.dropped, 4999u);
}

TEST(DiagnosticsTest, ASyslogSinkWithoutADaemonCountsFailures) {
  TempDir dir;
  DiagnosticSetting setting = Setting("sys", {"security"}, "syslog");
  setting.socket = dir.path() + "/no-daemon";
  setting.max_retries = 0;
  auto diagnostics = Diagnostics::Create({setting});
  ASSERT_OK(diagnostics);
  (*diagnostics)->Emit(kSecurity, {{"event", "login_failed"}});
  ASSERT_TRUE((*diagnostics)->Flush(milliseconds(2000)));
  auto state = StateOf(**diagnostics, "sys");
  EXPECT_EQ(state.failed, 1u);
  EXPECT_NE(state.last_error.find("syslog daemon"), std::string::npos) << state.last_error;
}

TEST(DiagnosticsTest, ASyslogDaemonThatStopsReadingDoesNotHangClose) {
  // Regression: a blocking send to a full /dev/log queue never returned, and Close joined forever.
  TempDir dir;
  std::string path = dir.path() + "/log";
  UniqueFd deaf(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  ASSERT_EQ(::bind(deaf.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  DiagnosticSetting setting = Setting("sys", {"audit"}, "syslog");
  setting.socket = path;
  auto diagnostics = Diagnostics::Create({setting});
  ASSERT_OK(diagnostics);
  for (int i = 0; i < 100; ++i) (*diagnostics)->Emit(kAudit, {{"seq", i}});
  EXPECT_FALSE((*diagnostics)->Flush(milliseconds(100)));
  auto start = std::chrono::steady_clock::now();
  (*diagnostics)->Close(milliseconds(0));
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(1000));
  auto state = StateOf(**diagnostics, "sys");
  EXPECT_GT(state.sent, 0u);  // What the kernel queued for the socket.
  EXPECT_LT(state.sent, 100u);
  EXPECT_EQ(state.sent + state.failed + state.dropped, 100u);
}

TEST(DiagnosticsTest, EveryFacilityNameHasACode) {
  for (std::string_view name : kSyslogFacilities) {
    EXPECT_GE(SyslogFacilityCode(std::string(name)), 0) << name;
  }
  EXPECT_EQ(SyslogFacilityCode("kern"), -1);
}

TEST(DiagnosticsTest, NoSettingsIsFine) {
  auto diagnostics = Diagnostics::Create({});
  ASSERT_OK(diagnostics);
  (*diagnostics)->Emit(kAudit, {{"a", 1}});
  EXPECT_TRUE((*diagnostics)->Flush(milliseconds(10)));
  EXPECT_TRUE((*diagnostics)->States().empty());
}

void ExpectRefused(const std::vector<DiagnosticSetting>& settings, const std::string& key) {
  auto diagnostics = Diagnostics::Create(settings);
  ASSERT_FALSE(diagnostics.ok());
  EXPECT_TRUE(diagnostics.status().IsInvalidArgument()) << diagnostics.status().ToString();
  EXPECT_NE(diagnostics.status().message().find(key), std::string::npos)
      << "expected '" << key << "' in: " << diagnostics.status().message();
}

TEST(DiagnosticsTest, ConfigurationErrorsNameTheKey) {
  TempDir dir;
  DiagnosticSetting good = FileSetting("good", {"audit"}, dir.path() + "/a.jsonl");
  ExpectRefused({good, Setting("x", {"audit"}, "kafka")}, "diagnostic_settings[1].sink");
  ExpectRefused({good, Setting("x", {"audit"}, "")}, "diagnostic_settings[1].sink");
  ExpectRefused({FileSetting("x", {"audits"}, "/tmp/x")}, "diagnostic_settings[0].categories");
  ExpectRefused({FileSetting("x", {}, "/tmp/x")}, "diagnostic_settings[0].categories");
  ExpectRefused({Setting("x", {"audit"}, "file")}, "diagnostic_settings[0].path");
  ExpectRefused({Setting("x", {"audit"}, "webhook")}, "diagnostic_settings[0].url");
  ExpectRefused({WebhookSetting("x", {"audit"}, "ftp://127.0.0.1/")}, "diagnostic_settings[0].url");
  ExpectRefused({good, good}, "diagnostic_settings[1].name");
  DiagnosticSetting no_name = good;
  no_name.name = "";
  ExpectRefused({no_name}, "diagnostic_settings[0].name");
  DiagnosticSetting syslog = Setting("s", {"audit"}, "syslog");
  syslog.facility = "kern";
  ExpectRefused({syslog}, "diagnostic_settings[0].facility");
  DiagnosticSetting small = good;
  small.max_bytes = 10;
  ExpectRefused({small}, "diagnostic_settings[0].max_bytes");
  DiagnosticSetting no_queue = good;
  no_queue.queue_max = 0;
  ExpectRefused({no_queue}, "diagnostic_settings[0].queue_max");

  // A file that cannot be opened stops Create, naming the setting and the path.
  auto diagnostics = Diagnostics::Create({FileSetting("bad", {"audit"}, "/proc/nope/a.jsonl")});
  ASSERT_FALSE(diagnostics.ok());
  EXPECT_NE(diagnostics.status().message().find("\"bad\""), std::string::npos);
  EXPECT_NE(diagnostics.status().message().find("/proc/nope"), std::string::npos);
}

}  // namespace
}  // namespace pycell::diagnostics
