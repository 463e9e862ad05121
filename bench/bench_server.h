// What the HTTP benchmarks (http_bench, soak_bench) share: `pycell serve` started as a child on a
// free port with a fresh data dir, and a thin keep-alive client — Beast's synchronous HTTP over one
// socket, thin enough that the figures are the server's.
#pragma once

#include <sys/types.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace pycell::bench {

// One keep-alive connection, sending `authorization` (e.g. "Bearer pyc_…") with every request.
class HttpClient {
 public:
  HttpClient(uint16_t port, std::string authorization);

  // Returns the status; the body in *body (when not null).
  int Request(boost::beast::http::verb verb, const std::string& target,
              const std::string& body_text, std::string* body,
              const char* content_type = "application/json");

  // Streams `bytes` bytes, `chunk` over and over, as a raw upload to `target` (POST).
  int Upload(const std::string& target, uint64_t bytes, const std::vector<char>& chunk,
             std::string* body);

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
  std::string authorization_;
};

// `pycell serve` as a child process. Start() exits the benchmark (status 1, saying why) when the
// server does not come up: a benchmark without its server has nothing to measure.
class BenchServer {
 public:
  struct Options {
    std::string pycell = "build/pycell";
    std::string data_dir;     // Empty: a new folder /tmp/pycell-<name>-XXXXXX.
    std::string runtime_dir;  // --runtime-dir
    std::string config_path;  // --config, when not empty.
    int ready_sessions = 4;
  };

  BenchServer(std::string name, Options options);
  ~BenchServer();  // Stop(), if still running.

  void Start();
  // SIGTERM, then waits for the exit, and removes the data dir if Start made it. Returns the exit
  // status (as waitpid's).
  int Stop();

  pid_t pid() const { return pid_; }
  uint16_t port() const { return port_; }
  const std::string& data_dir() const { return options_.data_dir; }
  // "Bearer <the admin key the server wrote at its first start>".
  const std::string& authorization() const { return authorization_; }
  HttpClient Client() const { return HttpClient(port_, authorization_); }
  // Polls /readyz (200 once every pool holds its warm sessions).
  bool WaitReady(int seconds) const;

 private:
  std::string name_;
  Options options_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  FILE* out_ = nullptr;
  bool made_data_dir_ = false;
  std::string authorization_;
};

// The body as JSON when the status is `expected`; otherwise prints what failed and exits 1.
nlohmann::json Expect(int status, const std::string& body, int expected, const char* what);

}  // namespace pycell::bench
