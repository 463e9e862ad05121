// HTTP/1.1 request heads and body framing, as `pycell serve` reads them: the real HttpServer
// (server/http_server.cc — Beast's parser with the server's header limit, Content-Length and
// chunked bodies, the buffered-body limit and its 413, streamed bodies read straight from the
// socket, keep-alive and pipelining, HEAD) and the real Router (ParseTarget's percent-decoding,
// route patterns, 405 with Allow, Authorize) on 127.0.0.1, port 0.
//
// Input: the bytes a client sends on one connection — one request, several pipelined, or garbage.
// They are written to a fresh connection, the write side is closed, and everything the server
// answers is read until it closes. The routes stand in for the real ones with the same shapes:
// a public GET, buffered JSON POSTs (one answering with Server-Sent Events, as executions do), an
// upload that streams its body through files::MultipartParser as POST /v1/files does, a file
// download (HEAD, a file body), and keyed routes (Authorization: Bearer pyc_fuzz_admin; an
// auditor's key is refused). Limits are smaller than the defaults (2 KiB head, 2 KiB JSON body)
// so that inputs of a few KiB reach them.
//
// Checked, beyond ASan and UBSan: the server answers every connection and closes it (a hang of
// 30 s aborts), and whatever it sends starts as an HTTP/1.1 response. Each input's connection
// thread has ended before the next input starts (HttpServer::Join), so a crash there is charged
// to the input that caused it.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/logging.h"
#include "files/multipart.h"
#include "server/http_server.h"
#include "server/router.h"

namespace pycell::fuzz {
namespace {

using server::Request;
using server::Response;
using server::ResponseStream;
using server::Route;
using P = auth::Permission;

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "http_request_fuzz: %s\n", what);
  std::abort();
}

Response JsonBody(int status, const nlohmann::json& body) {
  return Response::Json(status,
                        body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

// Reads a streamed body to its end, in reads of changing sizes (Beast's buffer body must cope
// with any), through the multipart parser when it is multipart — as ReceiveUpload does.
Result<Response> Upload(Request& request) {
  const std::string& content_type = request.Header("content-type");
  std::unique_ptr<files::MultipartParser> parser;
  size_t parts = 0, file_bytes = 0;
  if (content_type.rfind("multipart/", 0) == 0) {
    ASSIGN_OR_RETURN(std::string boundary,
                     files::MultipartParser::BoundaryFromContentType(content_type));
    files::MultipartCallbacks callbacks;
    callbacks.on_part_begin = [&](const files::PartHeaders&) {
      ++parts;
      return Status::Ok();
    };
    callbacks.on_part_data = [&](std::string_view data) {
      file_bytes += data.size();
      return Status::Ok();
    };
    parser = std::make_unique<files::MultipartParser>(boundary, std::move(callbacks));
  } else if (request.Query("filename").empty()) {
    return Status::InvalidArgument("send multipart/form-data or ?filename=");
  }
  static constexpr size_t kReadSizes[] = {1, 7, 512, 4096, 65536};
  std::string buffer(65536, '\0');
  size_t total = 0;
  for (size_t turn = 0;; ++turn) {
    size_t want = kReadSizes[turn % std::size(kReadSizes)];
    ASSIGN_OR_RETURN(size_t n, request.body_reader->Read(buffer.data(), want));
    if (n > want) Fail("BodyReader::Read returned more than asked");
    if (n == 0) break;
    total += n;
    if (parser) RETURN_IF_ERROR(parser->Feed(std::string_view(buffer.data(), n)));
  }
  if (parser) RETURN_IF_ERROR(parser->Finish());
  return JsonBody(201, {{"bytes", total}, {"parts", parts}, {"file_bytes", file_bytes}});
}

// The same shape as POST /v1/sessions/{id}/executions: JSON, or SSE when asked.
Result<Response> Execute(Request& request, ResponseStream& stream) {
  nlohmann::json body = nlohmann::json::parse(request.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    return Status::InvalidArgument("the body must be a JSON object");
  }
  if (request.Header("accept").find("text/event-stream") == std::string::npos) {
    return JsonBody(200, {{"id", request.params.at("id")}, {"body", body}});
  }
  RETURN_IF_ERROR(stream.Begin(200, {{"Content-Type", "text/event-stream"}}));
  for (const auto& [key, value] : body.items()) {
    (void)stream.Write(
        "event: " + key +
        "\ndata: " + value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n\n");
  }
  Response done;
  done.streamed = true;
  return done;
}

struct Fixture {
  server::Router router;
  std::unique_ptr<server::HttpServer> http;
  UniqueFd file;  // What GET /v1/files/{id}/content sends.
};

Fixture* StartServer() {
  SetLogLevel("off");
  auto* fixture = new Fixture;
  fixture->file = UniqueFd(::memfd_create("fuzz-file", MFD_CLOEXEC));
  std::string content(3000, 'x');
  if (::write(fixture->file.get(), content.data(), content.size()) !=
      static_cast<ssize_t>(content.size())) {
    Fail("memfd write");
  }
  server::Router& router = fixture->router;
  router.SetAuthentication(
      [](const Request& request) -> Result<auth::Caller> {
        const std::string& authorization = request.Header("authorization");
        auth::Caller caller;
        caller.key_id = "key_fuzz";
        caller.principal = "fuzz";
        if (authorization == "Bearer pyc_fuzz_admin") {
          caller.role = auth::Role::kAdmin;
        } else if (authorization == "Bearer pyc_fuzz_auditor") {
          caller.role = auth::Role::kAuditor;
        } else {
          return Status::Unauthenticated("a valid API key is required");
        }
        return caller;
      },
      [](const auth::Caller&, const Route& route) {
        return Status::PermissionDenied(std::string("the key lacks ") +
                                        auth::PermissionName(route.permission));
      });
  router.Add(
      Route{"GET", "/healthz", P::kPublic, [](Request&, ResponseStream&) -> Result<Response> {
              return JsonBody(200, {{"status", "ok"}});
            }});
  router.Add(Route{"POST", "/v1/sessions", P::kSessionsCreate,
                   [](Request& r, ResponseStream&) -> Result<Response> {
                     nlohmann::json body = nlohmann::json::parse(r.body, nullptr, false);
                     if (body.is_discarded()) return Status::InvalidArgument("not JSON");
                     return JsonBody(201, {{"id", "sess_fuzz"}, {"query", r.query}});
                   }});
  router.Add(Route{"POST", "/v1/sessions/{id}/executions", P::kExecutionsRun, Execute});
  router.Add(Route{"POST", "/v1/files", P::kFilesWrite,
                   [](Request& r, ResponseStream&) { return Upload(r); }, /*streams_body=*/true});
  router.Add(Route{"GET", "/v1/files/{id}/content", P::kFilesContent,
                   [fixture](Request& r, ResponseStream&) -> Result<Response> {
                     Response response;
                     response.headers = {{"Content-Type", "text/plain"},
                                         {"ETag", "\"" + r.params.at("id") + "\""}};
                     uint64_t offset = r.Header("range").empty() ? 0 : 1000;
                     response.file = server::FileBody{UniqueFd(::dup(fixture->file.get())), offset,
                                                      3000 - offset};
                     return response;
                   }});
  router.Add(Route{"DELETE", "/v1/files/{id}", P::kFilesWrite,
                   [](Request& r, ResponseStream&) -> Result<Response> {
                     return JsonBody(200, {{"id", r.params.at("id")}, {"deleted", true}});
                   }});

  server::HttpServerOptions options;
  options.config.listen = "127.0.0.1:0";
  options.config.max_header_bytes = 2048;
  options.config.max_json_body_bytes = 2048;
  options.config.request_timeout = std::chrono::seconds(10);
  options.config.keep_alive_timeout = std::chrono::seconds(10);
  options.max_streamed_body_bytes = 4096;
  auto http = server::HttpServer::Start(std::move(options), &router);
  if (!http.ok()) {
    std::fprintf(stderr, "%s\n", http.status().ToString().c_str());
    Fail("cannot start the server");
  }
  fixture->http = std::move(*http);
  return fixture;
}

// Sends `request` on a new connection, closes the write side, reads the answer to the end.
std::string Exchange(uint16_t port, std::string_view request) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Fail("socket");
  UniqueFd socket(fd);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    std::perror("connect");
    Fail("cannot connect to the server");
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  std::string answer;
  bool writing = true;
  if (request.empty()) {
    ::shutdown(fd, SHUT_WR);
    writing = false;
  }
  char buffer[65536];
  for (;;) {
    pollfd p{fd, static_cast<short>(POLLIN | (writing ? POLLOUT : 0)), 0};
    int n = ::poll(&p, 1, 30000);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) Fail("the server neither answered nor closed the connection within 30 s");
    if (writing && (p.revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t sent = ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
      if (sent > 0) request.remove_prefix(static_cast<size_t>(sent));
      // The server may close before reading everything (a refused request): stop sending.
      if (request.empty() || (sent < 0 && errno != EAGAIN)) {
        ::shutdown(fd, SHUT_WR);
        writing = false;
      }
    }
    if (p.revents & (POLLIN | POLLERR | POLLHUP)) {
      ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
      if (got == 0) break;
      if (got < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        break;  // ECONNRESET: the server closed with our bytes unread.
      }
      if (answer.size() < (1 << 20)) answer.append(buffer, static_cast<size_t>(got));
    }
  }
  return answer;
}

}  // namespace
}  // namespace pycell::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace pycell::fuzz;
  static Fixture* fixture = StartServer();
  std::string answer =
      Exchange(fixture->http->port(), std::string_view(reinterpret_cast<const char*>(bytes), size));
  // The connection's thread is done too before the next input: whatever it does wrong is
  // charged to this one.
  fixture->http->Join();
  // HTTP_FUZZ_PRINT=1 shows what the server answered (when reproducing an input by hand).
  static const bool print = std::getenv("HTTP_FUZZ_PRINT") != nullptr;
  if (print) std::fprintf(stderr, "%s\n----\n", answer.c_str());
  if (!answer.empty() && answer.rfind("HTTP/1.1 ", 0) != 0) {
    Fail("the server sent something that is not an HTTP/1.1 response");
  }
  return 0;
}
