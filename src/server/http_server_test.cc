// HttpServer in process, on a free loopback port, with stand-in routes: what a connection sees
// (framing, refusals) and what the server survives (a handler that throws).
#include "server/http_server.h"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

#include "metrics/metrics.h"
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
    router_.Add({"GET", "/stream-then-throw", auth::Permission::kPublic,
                 [](Request&, ResponseStream& out) -> Result<Response> {
                   RETURN_IF_ERROR(out.Begin(200, {{"Content-Type", "text/plain"}}));
                   RETURN_IF_ERROR(out.Write("partial\n"));
                   throw std::runtime_error("mid-stream bug");
                 }});
    HttpServerOptions options;
    options.config = config;
    auto started = HttpServer::Start(options, &router_);
    ASSERT_OK(started);
    server_ = std::move(*started);
  }
  void TearDown() override { server_.reset(); }

  tcp::socket Connect() {
    tcp::socket socket(io_);
    socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server_->port()));
    return socket;
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

TEST_F(HttpServerTest, AnExceptionMidStreamCutsTheStreamInsteadOfEndingIt) {
  Start();
  tcp::socket socket = Connect();
  net::write(socket, net::buffer(std::string("GET /stream-then-throw HTTP/1.1\r\nHost: x\r\n\r\n")));
  std::string all;
  beast::error_code ec;
  for (;;) {
    char chunk[4096];
    size_t n = socket.read_some(net::buffer(chunk), ec);
    if (ec) break;
    all.append(chunk, n);
  }
  EXPECT_NE(all.find("partial"), std::string::npos) << all;
  EXPECT_EQ(all.find("\r\n0\r\n\r\n"), std::string::npos) << "the stream was ended cleanly:\n"
                                                             << all;
}

TEST_F(HttpServerTest, TheOverload503IsWellFormed) {
  ServerConfig config;
  config.max_connections = 2;
  Start(config);
  tcp::socket a = Connect(), b = Connect();
  EXPECT_EQ(Get(a, "/ok").result_int(), 200);
  EXPECT_EQ(Get(b, "/ok").result_int(), 200);
  tcp::socket c = Connect();
  // Read every byte until the server closes: exactly one response, its length as declared.
  std::string all;
  beast::error_code ec;
  for (;;) {
    char chunk[4096];
    size_t n = c.read_some(net::buffer(chunk), ec);
    if (ec) break;
    all.append(chunk, n);
  }
  http::response_parser<http::string_body> parser;
  parser.eager(true);
  size_t used = parser.put(net::buffer(all), ec);
  ASSERT_FALSE(ec) << ec.message() << "\n" << all;
  ASSERT_TRUE(parser.is_done()) << all;
  EXPECT_EQ(used, all.size()) << "bytes after the declared body:\n" << all;
  auto res = parser.release();
  EXPECT_EQ(res.result_int(), 503);
  EXPECT_FALSE(res.keep_alive());
  EXPECT_EQ(res["Retry-After"], "1");
  auto body = nlohmann::json::parse(res.body());
  EXPECT_EQ(body["error"]["code"], "unavailable");
}

}  // namespace
}  // namespace pycell::server
