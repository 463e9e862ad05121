#include "bench_server.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>

namespace pycell::bench {

namespace http = boost::beast::http;
namespace net = boost::asio;
using net::ip::tcp;

HttpClient::HttpClient(uint16_t port, std::string authorization)
    : socket_(io_), authorization_(std::move(authorization)) {
  socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  socket_.set_option(tcp::no_delay(true));
}

int HttpClient::Request(http::verb verb, const std::string& target, const std::string& body_text,
                        std::string* body, const char* content_type) {
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (!authorization_.empty()) req.set(http::field::authorization, authorization_);
  if (!body_text.empty() || verb == http::verb::post) {
    req.set(http::field::content_type, content_type);
    req.body() = body_text;
    req.prepare_payload();
  }
  http::write(socket_, req);
  http::response_parser<http::string_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  http::read(socket_, buffer_, parser);
  if (body) *body = std::move(parser.get().body());
  return parser.get().result_int();
}

int HttpClient::Upload(const std::string& target, uint64_t bytes, const std::vector<char>& chunk,
                       std::string* body) {
  http::request<http::empty_body> req{http::verb::post, target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::authorization, authorization_);
  req.set(http::field::content_type, "application/octet-stream");
  req.content_length(bytes);
  http::request_serializer<http::empty_body> sr{req};
  http::write_header(socket_, sr);
  uint64_t left = bytes;
  while (left > 0) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(left, chunk.size()));
    net::write(socket_, net::buffer(chunk.data(), n));
    left -= n;
  }
  http::response_parser<http::string_body> parser;
  http::read(socket_, buffer_, parser);
  if (body) *body = std::move(parser.get().body());
  return parser.get().result_int();
}

BenchServer::BenchServer(std::string name, Options options)
    : name_(std::move(name)), options_(std::move(options)) {}

BenchServer::~BenchServer() {
  if (pid_ > 0) Stop();
}

void BenchServer::Start() {
  if (options_.data_dir.empty()) {
    std::string pattern = "/tmp/pycell-" + name_ + "-XXXXXX";
    std::vector<char> tmpl(pattern.begin(), pattern.end());
    tmpl.push_back('\0');
    if (!mkdtemp(tmpl.data())) {
      std::perror("mkdtemp");
      std::exit(1);
    }
    options_.data_dir = tmpl.data();
    made_data_dir_ = true;
  }
  // The server, on a free port; its first line names the port.
  int out[2];
  if (pipe(out) != 0) {
    std::perror("pipe");
    std::exit(1);
  }
  std::string ready = std::to_string(options_.ready_sessions);
  std::vector<const char*> args = {options_.pycell.c_str(), "serve",      "--listen",
                                   "127.0.0.1:0",           "--data-dir", options_.data_dir.c_str(),
                                   "--ready-sessions",      ready.c_str()};
  if (!options_.runtime_dir.empty()) {
    args.push_back("--runtime-dir");
    args.push_back(options_.runtime_dir.c_str());
  }
  if (!options_.config_path.empty()) {
    args.push_back("--config");
    args.push_back(options_.config_path.c_str());
  }
  args.push_back(nullptr);
  pid_ = fork();
  if (pid_ == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    execv(options_.pycell.c_str(), const_cast<char* const*>(args.data()));
    _exit(127);
  }
  close(out[1]);
  out_ = fdopen(out[0], "r");
  char line[512] = {};
  if (fgets(line, sizeof line, out_)) {
    const char* at = std::strstr(line, "http://127.0.0.1:");
    if (at) port_ = static_cast<uint16_t>(std::atoi(at + std::strlen("http://127.0.0.1:")));
  }
  if (port_ == 0 || !WaitReady(120)) {
    std::cerr << name_ << ": the server did not start: " << line << "\n";
    kill(pid_, SIGKILL);
    std::exit(1);
  }
  std::ifstream key_file(options_.data_dir + "/admin.key");
  std::string key;
  std::getline(key_file, key);
  if (key.empty()) {
    std::cerr << name_ << ": the server wrote no " << options_.data_dir << "/admin.key\n";
    kill(pid_, SIGKILL);
    std::exit(1);
  }
  authorization_ = "Bearer " + key;
}

int BenchServer::Stop() {
  int wstatus = 0;
  if (pid_ <= 0) return wstatus;
  kill(pid_, SIGTERM);
  waitpid(pid_, &wstatus, 0);
  pid_ = -1;
  if (out_) fclose(out_);
  out_ = nullptr;
  std::error_code ignored;
  if (made_data_dir_) std::filesystem::remove_all(options_.data_dir, ignored);
  return wstatus;
}

bool BenchServer::WaitReady(int seconds) const {
  for (int i = 0; i < seconds * 10; ++i) {
    try {
      HttpClient c(port_, "");
      std::string body;
      if (c.Request(http::verb::get, "/readyz", "", &body) == 200) return true;
    } catch (const std::exception&) {
    }
    usleep(100000);
  }
  return false;
}

nlohmann::json Expect(int status, const std::string& body, int expected, const char* what) {
  if (status != expected) {
    std::cerr << what << ": HTTP " << status << " (expected " << expected << "): " << body << "\n";
    std::exit(1);
  }
  return nlohmann::json::parse(body, nullptr, false);
}

}  // namespace pycell::bench
