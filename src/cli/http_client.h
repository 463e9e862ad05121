// HttpClient: the `pycell` client's one connection to a running server, a small wrapper over
// libcurl (whose types stay in http_client.cc).
//
// Every call sends one request to `base_url` + path and waits for the whole answer. Bodies are
// never held in memory where they can be large: uploads stream from disk, downloads stream into
// a sink, and Server-Sent Events are handed over one event at a time as they arrive.
//
// Errors come in two kinds, kept apart on purpose:
//   - the server answered, with any status: the call succeeds and the HttpResponse says what it
//     answered (HttpResponse::ok() is false for 4xx and 5xx; the body holds its JSON error);
//   - no answer: the call fails. Reason "unreachable" (Unavailable, with curl's words) means
//     nothing listens at the URL (connection refused, unknown host); "interrupted" means
//     CancelTransfers() stopped the transfer; a sink's own failure is returned as the sink returned
//     it; anything else is Unavailable with curl's message.
//
// Thread-safety: one HttpClient serves one thread. CancelTransfers() may be called from a signal
// handler.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace pycell::cli {

struct HttpResponse {
  int status = 0;
  std::string content_type;  // As sent, e.g. "application/json".
  std::string body;          // Empty when a 2xx body went to a sink or an event handler.
  bool ok() const { return status >= 200 && status < 300; }
};

// One Server-Sent Event: its "event:" name ("message" when it has none) and its data lines
// joined with '\n'.
struct ServerSentEvent {
  std::string event = "message";
  std::string data;
};

// Called as bytes move: (done, total); total is 0 while unknown.
using ProgressFn = std::function<void(uint64_t done, uint64_t total)>;
// Receives a 2xx body chunk by chunk; an error stops the transfer and is what the call returns.
using BodySink = std::function<Status(std::string_view chunk)>;
using EventFn = std::function<void(const ServerSentEvent& event)>;

class HttpClient {
 public:
  // `base_url` such as "http://127.0.0.1:8080" (a trailing '/' is dropped). Fails only when
  // libcurl cannot be set up.
  static Result<std::unique_ptr<HttpClient>> Create(std::string base_url);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  const std::string& base_url() const { return base_url_; }

  // Sends `Authorization: Bearer <token>` with every request from now on ("" sends none).
  // `source` says where the token came from ("--key", "PYCELL_KEY", a file's path), for messages.
  void SetBearerToken(std::string token, std::string source);
  bool has_token() const { return !token_.empty(); }
  const std::string& token_source() const { return token_source_; }

  Result<HttpResponse> Get(const std::string& path);
  Result<HttpResponse> Delete(const std::string& path);
  // POST with a JSON body.
  Result<HttpResponse> PostJson(const std::string& path, const std::string& json);
  // PATCH with a JSON body.
  Result<HttpResponse> PatchJson(const std::string& path, const std::string& json);

  // POST the contents of `local_path` as the raw body (application/octet-stream), read from disk
  // as it is sent. (pycell names a raw upload with ?filename= in `path`; unlike a multipart
  // filename, that keeps any name exactly.)
  Result<HttpResponse> PostFile(const std::string& path, const std::string& local_path,
                                const ProgressFn& progress);

  // GET whose 2xx body goes to `sink` as it arrives (any other answer is collected in body).
  Result<HttpResponse> Download(const std::string& path, const BodySink& sink,
                                const ProgressFn& progress);

  // POST a JSON body asking for Server-Sent Events: when the server answers 200 with
  // text/event-stream, each event goes to `on_event` as soon as it is complete; any other answer
  // is collected in body as usual. The call returns when the server closes the stream.
  Result<HttpResponse> PostJsonForEvents(const std::string& path, const std::string& json,
                                         const EventFn& on_event);

  // Makes every transfer in progress (and every later one, until ResumeTransfers) fail with
  // reason "interrupted" within about a second. Async-signal-safe; for a SIGINT handler.
  static void CancelTransfers();
  // Lets transfers run again (e.g. to clean up after an interruption).
  static void ResumeTransfers();
  // Whether CancelTransfers was called since.
  static bool cancelled();

  struct Transfer;  // One request in flight; defined in http_client.cc.

 private:
  HttpClient(std::string base_url, void* curl) : base_url_(std::move(base_url)), curl_(curl) {}
  Result<HttpResponse> Perform(Transfer& transfer);

  std::string base_url_;
  std::string token_;
  std::string token_source_;
  void* curl_;  // CURL*: one handle, so connections are reused between calls.
};

}  // namespace pycell::cli
