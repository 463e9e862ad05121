// HttpServer in process, on a free loopback port, with stand-in routes: what a connection sees
// (framing, refusals, deadlines) and what the server survives (a handler that throws).
#include "server/http_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>
#include <vector>

#include "metrics/metrics.h"
#include "server/worker_pool.h"
#include "test_util.h"

namespace pycell::server {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;

// A server with a few routes, and blocking clients of it.
class HttpServerTest : public ::testing::Test {
 protected:
  void Start(ServerConfig config = {}) {
    config.listen = "127.0.0.1:0";
    router_.Add({"GET", "/ok", auth::Permission::kPublic,
                 [](Request&, ResponseStream&) -> Result<Response> {
                   return Response::Json(200, "{\"ok\":true}");
                 }});
    router_.Add({"GET", "/throws", auth::Permission::kPublic,
                 [](Request&, ResponseStream&) -> Result<Response> {
                   throw std::runtime_error("a handler's bug");
                 }});
    router_.Add({"GET", "/throws-int", auth::Permission::kPublic,
                 [](Request&, ResponseStream&) -> Result<Response> { throw 42; }});
    // Three chunks 300 ms apart, then the end.
    router_.Add({"GET", "/stream", auth::Permission::kPublic,
                 [](Request&, ResponseStream& out) -> Result<Response> {
                   RETURN_IF_ERROR(out.Begin(200, {{"Content-Type", "text/plain"}}));
                   for (int i = 0; i < 3; ++i) {
                     RETURN_IF_ERROR(out.Write("chunk " + std::to_string(i) + "\n"));
                     std::this_thread::sleep_for(std::chrono::milliseconds(300));
                   }
                   Response r;
                   r.streamed = true;
                   return r;
                 }});
    router_.Add({"GET", "/stream-then-throw", auth::Permission::kPublic,
                 [](Request&, ResponseStream& out) -> Result<Response> {
                   RETURN_IF_ERROR(out.Begin(200, {{"Content-Type", "text/plain"}}));
                   RETURN_IF_ERROR(out.Write("partial\n"));
                   throw std::runtime_error("mid-stream bug");
                 }});
    // Reads the whole body through the BodyReader and answers its length.
    router_.Add({"POST", "/upload", auth::Permission::kPublic,
                 [](Request& request, ResponseStream&) -> Result<Response> {
                   std::vector<char> buffer(1 << 16);
                   uint64_t total = 0;
                   for (;;) {
                     ASSIGN_OR_RETURN(size_t n,
                                      request.body_reader->Read(buffer.data(), buffer.size()));
                     if (n == 0) break;
                     total += n;
                   }
                   return Response::Json(200, "{\"bytes\":" + std::to_string(total) + "}");
                 },
                 /*streams_body=*/true});
    router_.Add({"GET", "/sleep", auth::Permission::kPublic,
                 [](Request&, ResponseStream&) -> Result<Response> {
                   std::this_thread::sleep_for(std::chrono::milliseconds(800));
                   return Response::Json(200, "{}");
                 }});
    HttpServerOptions options;
    options.config = config;
    auto started = HttpServer::Start(options, &router_);
    ASSERT_OK(started);
    server_ = std::move(*started);
  }
  void TearDown() override { server_.reset(); }

  tcp::socket Connect(const char* source = "127.0.0.1") {
    tcp::socket socket(io_);
    socket.open(tcp::v4());
    socket.bind(tcp::endpoint(net::ip::make_address(source), 0));
    socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server_->port()));
    return socket;
  }

  // Reads until the server closes `socket`: everything it sent.
  static std::string ReadToClose(tcp::socket& socket) {
    std::string all;
    beast::error_code ec;
    for (;;) {
      char chunk[4096];
      size_t n = socket.read_some(net::buffer(chunk), ec);
      if (ec) break;
      all.append(chunk, n);
    }
    return all;
  }

  // Parses exactly one whole response from `bytes` (nothing may follow it).
  static http::response<http::string_body> ParseOne(const std::string& bytes) {
    http::response_parser<http::string_body> parser;
    parser.eager(true);
    beast::error_code ec;
    size_t used = parser.put(net::buffer(bytes), ec);
    EXPECT_FALSE(ec) << ec.message() << "\n" << bytes;
    EXPECT_TRUE(parser.is_done()) << bytes;
    EXPECT_EQ(used, bytes.size()) << "bytes after the declared body:\n" << bytes;
    return parser.release();
  }

  static size_t Threads() {
    size_t n = 0;
    for ([[maybe_unused]] const auto& entry :
         std::filesystem::directory_iterator("/proc/self/task")) {
      ++n;
    }
    return n;
  }

  // Sends GET `target` on `socket` and reads the whole response.
  http::response<http::string_body> Get(tcp::socket& socket, const std::string& target) {
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, "test");
    http::write(socket, req);
    http::response<http::string_body> res;
    http::read(socket, buffer_, res);
    return res;
  }

  net::io_context io_;
  beast::flat_buffer buffer_;
  Router router_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, AnExceptionInAHandlerIsA500WithTheRequestIdAndIsCounted) {
  Start();
  tcp::socket socket = Connect();
  for (const char* target : {"/throws", "/throws-int"}) {
    uint64_t before = metrics::InternalErrorCount();
    auto res = Get(socket, target);
    EXPECT_EQ(res.result_int(), 500) << target;
    auto body = nlohmann::json::parse(res.body());
    EXPECT_EQ(body["error"]["code"], "internal") << res.body();
    std::string request_id(res["X-Request-Id"]);
    ASSERT_FALSE(request_id.empty());
    EXPECT_NE(body["error"]["message"].get<std::string>().find(request_id), std::string::npos)
        << res.body();
    EXPECT_EQ(metrics::InternalErrorCount(), before + 1);
    // The handler's exception does not leak its text to the client.
    EXPECT_EQ(res.body().find("a handler's bug"), std::string::npos);
  }
  // The same connection goes on serving.
  auto ok = Get(socket, "/ok");
  EXPECT_EQ(ok.result_int(), 200);
}

TEST_F(HttpServerTest, TheOverload503IsWellFormed) {
  ServerConfig config;
  config.max_connections = 2;
  Start(config);
  tcp::socket a = Connect(), b = Connect();
  EXPECT_EQ(Get(a, "/ok").result_int(), 200);
  EXPECT_EQ(Get(b, "/ok").result_int(), 200);
  tcp::socket c = Connect();
  auto res = ParseOne(ReadToClose(c));
  EXPECT_EQ(res.result_int(), 503);
  EXPECT_FALSE(res.keep_alive());
  EXPECT_EQ(res["Retry-After"], "1");
  auto body = nlohmann::json::parse(res.body());
  EXPECT_EQ(body["error"]["code"], "unavailable");
  EXPECT_EQ(server_->connections(), 2u);
}

TEST_F(HttpServerTest, ThePerAddressLimitRefusesOnlyTheAddressOverIt) {
  ServerConfig config;
  config.max_connections_per_address = 3;
  Start(config);
  std::vector<tcp::socket> held;
  for (int i = 0; i < 3; ++i) held.push_back(Connect("127.0.0.2"));
  EXPECT_EQ(Get(held[0], "/ok").result_int(), 200);
  tcp::socket over = Connect("127.0.0.2");
  auto res = ParseOne(ReadToClose(over));
  EXPECT_EQ(res.result_int(), 503);
  EXPECT_NE(res.body().find("max_connections_per_address"), std::string::npos) << res.body();
  // Another address is not affected.
  tcp::socket other = Connect("127.0.0.3");
  EXPECT_EQ(Get(other, "/ok").result_int(), 200);
  // Once one closes, the address may connect again.
  held.pop_back();
  for (int i = 0; i < 100 && server_->connections() > 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  tcp::socket again = Connect("127.0.0.2");
  EXPECT_EQ(Get(again, "/ok").result_int(), 200);
}

TEST_F(HttpServerTest, TrustedProxiesAreNotLimitedPerAddress) {
  ServerConfig config;
  config.max_connections_per_address = 2;
  config.trusted_proxies = {"127.0.0.5"};
  Start(config);
  std::vector<tcp::socket> held;
  for (int i = 0; i < 5; ++i) {
    held.push_back(Connect("127.0.0.5"));
    EXPECT_EQ(Get(held.back(), "/ok").result_int(), 200);
  }
}

TEST_F(HttpServerTest, IdleConnectionsCostNoThread) {
  ServerConfig config;
  config.max_connections_per_address = 1000;
  Start(config);
  {
    tcp::socket warm = Connect();
    EXPECT_EQ(Get(warm, "/ok").result_int(), 200);
  }
  size_t before = Threads();
  std::vector<tcp::socket> idle;
  for (int i = 0; i < 300; ++i) idle.push_back(Connect("127.0.0.2"));
  for (int i = 0; i < 100 && server_->connections() < 300; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(server_->connections(), 300u);
  EXPECT_LT(Threads(), before + 5);
  tcp::socket socket = Connect();
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(Get(socket, "/ok").result_int(), 200);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(500));
}

TEST_F(HttpServerTest, AHeadMustArriveWithinHeaderTimeoutButKeepAliveMayWaitLonger) {
  ServerConfig config;
  config.header_timeout = std::chrono::seconds(1);
  config.keep_alive_timeout = std::chrono::seconds(30);
  Start(config);
  auto started = std::chrono::steady_clock::now();
  tcp::socket silent = Connect();
  tcp::socket partial = Connect();
  net::write(partial, net::buffer(std::string("GET /ok HTTP/1.1\r\nHost: x\r\n")));
  EXPECT_EQ(ReadToClose(silent), "");
  EXPECT_EQ(ReadToClose(partial), "");
  auto took = std::chrono::steady_clock::now() - started;
  EXPECT_GE(took, std::chrono::milliseconds(900));
  EXPECT_LT(took, std::chrono::seconds(4));
  // After a request, the connection may be idle longer than header_timeout.
  tcp::socket kept = Connect();
  EXPECT_EQ(Get(kept, "/ok").result_int(), 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(Get(kept, "/ok").result_int(), 200);
}

TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  Start();
  tcp::socket socket = Connect();
  std::string two = "GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGET /throws HTTP/1.1\r\nHost: x\r\n\r\n";
  net::write(socket, net::buffer(two));
  http::response<http::string_body> first, second;
  http::read(socket, buffer_, first);
  http::read(socket, buffer_, second);
  EXPECT_EQ(first.result_int(), 200);
  EXPECT_EQ(second.result_int(), 500);
}

TEST_F(HttpServerTest, ResponsesAndBodiesStream) {
  Start();
  tcp::socket socket = Connect();
  http::request<http::empty_body> req{http::verb::get, "/stream", 11};
  req.set(http::field::host, "x");
  http::write(socket, req);
  auto started = std::chrono::steady_clock::now();
  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  http::read_header(socket, buffer, parser);
  // The first chunk arrives alone, long before the handler ends (it sleeps 300 ms after each).
  std::string first;
  char data[64];
  while (first.empty() && !parser.is_done()) {
    parser.get().body().data = data;
    parser.get().body().size = sizeof data;
    beast::error_code ec;
    http::read_some(socket, buffer, parser, ec);
    ASSERT_TRUE(!ec || ec == http::error::need_buffer) << ec.message();
    first.append(data, sizeof data - parser.get().body().size);
  }
  EXPECT_EQ(first, "chunk 0\n");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(250));
  std::string rest;
  while (!parser.is_done()) {
    parser.get().body().data = data;
    parser.get().body().size = sizeof data;
    beast::error_code ec;
    http::read_some(socket, buffer, parser, ec);
    ASSERT_TRUE(!ec || ec == http::error::need_buffer) << ec.message();
    rest.append(data, sizeof data - parser.get().body().size);
  }
  EXPECT_EQ(rest, "chunk 1\nchunk 2\n");
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(800));
  // An upload of 8 MiB, read by the handler as it comes, on a kept-alive connection.
  std::string head = "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 8388608\r\n\r\n";
  net::write(socket, net::buffer(head));
  std::string piece(1 << 20, 'x');
  for (int i = 0; i < 8; ++i) net::write(socket, net::buffer(piece));
  http::response<http::string_body> res;
  http::read(socket, buffer, res);
  EXPECT_EQ(res.body(), "{\"bytes\":8388608}");
  // And chunked.
  std::string chunked =
      "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  net::write(socket, net::buffer(chunked));
  http::response<http::string_body> res2;
  http::read(socket, buffer, res2);
  EXPECT_EQ(res2.body(), "{\"bytes\":11}");
}

TEST_F(HttpServerTest, AnExceptionMidStreamCutsTheStreamInsteadOfEndingIt) {
  Start();
  tcp::socket socket = Connect();
  net::write(socket,
             net::buffer(std::string("GET /stream-then-throw HTTP/1.1\r\nHost: x\r\n\r\n")));
  std::string all = ReadToClose(socket);
  EXPECT_NE(all.find("partial"), std::string::npos) << all;
  EXPECT_EQ(all.find("\r\n0\r\n\r\n"), std::string::npos) << "the stream was ended cleanly:\n"
                                                          << all;
}

TEST_F(HttpServerTest, StopClosesIdleConnectionsAndLetsRequestsInFlightFinish) {
  Start();
  tcp::socket idle = Connect();
  tcp::socket busy = Connect();
  net::write(busy, net::buffer(std::string("GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n")));
  for (int i = 0; i < 100 && server_->in_flight() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(server_->in_flight(), 1u);
  server_->StopAccepting();
  EXPECT_EQ(ReadToClose(idle), "");  // Closed without an answer.
  EXPECT_TRUE(server_->WaitIdle(std::chrono::seconds(5)));
  auto res = ParseOne(ReadToClose(busy));  // Answered, then closed (no keep-alive).
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_FALSE(res.keep_alive());
  server_->Join();
  EXPECT_EQ(server_->connections(), 0u);
  // The listener is closed.
  tcp::socket late(io_);
  beast::error_code ec;
  late.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server_->port()), ec);
  EXPECT_TRUE(ec);
}

TEST_F(HttpServerTest, AnAddressInUseIsAnErrorNotAHang) {
  Start();
  HttpServerOptions options;
  options.config.listen = "127.0.0.1:" + std::to_string(server_->port());
  auto second = HttpServer::Start(options, &router_);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("in use"), std::string::npos)
      << second.status().ToString();
}

TEST(WorkerPoolTest, StartsThreadsUpToItsBoundQueuesTheRestAndEndsIdleOnes) {
  WorkerPool pool(2, std::chrono::milliseconds(100), /*keep_threads=*/0);
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> done{0};
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) {
    pool.Submit([&, i] {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return release; });
      order.push_back(i);
      done++;
    });
  }
  for (int i = 0; i < 100 && pool.busy() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(pool.threads(), 2u);
  EXPECT_EQ(pool.busy(), 2u);
  EXPECT_EQ(pool.queued(), 3u);
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  for (int i = 0; i < 200 && done < 5; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(done.load(), 5);
  EXPECT_EQ(order.size(), 5u);
  // Idle past idle_exit: every thread ended (keep_threads 0).
  for (int i = 0; i < 100 && pool.threads() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(pool.threads(), 0u);
  // And a new job starts one again.
  std::atomic<bool> ran{false};
  pool.Submit([&] { ran = true; });
  pool.Stop();
  EXPECT_TRUE(ran.load());
}

TEST(WorkerPoolTest, QueuedJobsRunInArrivalOrder) {
  WorkerPool pool(1, std::chrono::seconds(10));
  std::vector<int> order;  // Only the one worker touches it.
  for (int i = 0; i < 20; ++i) pool.Submit([&order, i] { order.push_back(i); });
  pool.Stop();
  std::vector<int> expected(20);
  for (int i = 0; i < 20; ++i) expected[static_cast<size_t>(i)] = i;
  EXPECT_EQ(order, expected);
}

TEST(WorkerPoolTest, AJobThatThrowsIsCountedAndThePoolGoesOn) {
  WorkerPool pool(1, std::chrono::seconds(10));
  uint64_t before = metrics::InternalErrorCount();
  std::atomic<bool> ran{false};
  pool.Submit([] { throw std::runtime_error("a job's bug"); });
  pool.Submit([&] { ran = true; });
  pool.Stop();
  EXPECT_TRUE(ran.load());
  EXPECT_EQ(metrics::InternalErrorCount(), before + 1);
}

}  // namespace
}  // namespace pycell::server
