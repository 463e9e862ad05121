#include "cli/http_client.h"

#include <curl/curl.h>
#include <sys/stat.h>

#include <csignal>
#include <cstdio>
#include <mutex>
#include <optional>

namespace pycell::cli {
namespace {

volatile std::sig_atomic_t g_cancelled = 0;

// Splits a text/event-stream into events (the WHATWG rules pycell's server needs: "event:" and
// "data:" fields, ':' comments, LF or CRLF line ends, a blank line ends an event).
class EventStreamParser {
 public:
  explicit EventStreamParser(const EventFn* on_event) : on_event_(on_event) {}

  void Feed(std::string_view bytes) {
    buffer_.append(bytes);
    size_t start = 0;
    for (size_t newline; (newline = buffer_.find('\n', start)) != std::string::npos;
         start = newline + 1) {
      std::string_view line(buffer_.data() + start, newline - start);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      Line(line);
    }
    buffer_.erase(0, start);
  }

 private:
  void Line(std::string_view line) {
    if (line.empty()) {
      if (has_data_) (*on_event_)(event_);
      event_ = ServerSentEvent();
      has_data_ = false;
      return;
    }
    if (line.front() == ':') return;
    size_t colon = line.find(':');
    std::string_view field = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? "" : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (field == "event") {
      event_.event = std::string(value);
    } else if (field == "data") {
      if (has_data_) event_.data += '\n';
      event_.data.append(value);
      has_data_ = true;
    }
  }

  const EventFn* on_event_;
  std::string buffer_;
  ServerSentEvent event_;
  bool has_data_ = false;
};

Status CurlFailure(CURLcode code, const std::string& url, const char* detail) {
  std::string message = std::string(*detail ? detail : curl_easy_strerror(code));
  if (code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
      code == CURLE_COULDNT_RESOLVE_PROXY || code == CURLE_UNSUPPORTED_PROTOCOL ||
      code == CURLE_URL_MALFORMAT) {
    return Status::Unavailable(message).WithReason("unreachable");
  }
  return Status::Unavailable(url + ": " + message);
}

}  // namespace

// What one request sends and where its answer goes.
struct HttpClient::Transfer {
  const char* method = "GET";
  std::string path;
  std::string accept = "application/json";
  std::optional<std::string> json_body;
  std::FILE* upload = nullptr;  // The body to send, read as it goes; owned by the caller.
  uint64_t upload_bytes = 0;
  const BodySink* sink = nullptr;
  const ProgressFn* progress = nullptr;
  std::optional<EventStreamParser> events;

  CURL* curl = nullptr;
  HttpResponse response;
  Status sink_status;
  // Decided at the first body byte: whether it goes to the sink or the event parser.
  enum class Route { kUndecided, kBody, kSink, kEvents } route = Route::kUndecided;
};

namespace {

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<HttpClient::Transfer*>(user);
  size_t n = size * count;
  std::string_view chunk(data, n);
  if (t->route == HttpClient::Transfer::Route::kUndecided) {
    long status = 0;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
    char* type = nullptr;
    curl_easy_getinfo(t->curl, CURLINFO_CONTENT_TYPE, &type);
    std::string content_type = type ? type : "";
    bool success = status >= 200 && status < 300;
    if (success && t->events && content_type.rfind("text/event-stream", 0) == 0) {
      t->route = HttpClient::Transfer::Route::kEvents;
    } else if (success && t->sink) {
      t->route = HttpClient::Transfer::Route::kSink;
    } else {
      t->route = HttpClient::Transfer::Route::kBody;
    }
  }
  switch (t->route) {
    case HttpClient::Transfer::Route::kEvents:
      t->events->Feed(chunk);
      break;
    case HttpClient::Transfer::Route::kSink:
      t->sink_status = (*t->sink)(chunk);
      if (!t->sink_status.ok()) return CURL_WRITEFUNC_ERROR;
      break;
    default:
      t->response.body.append(chunk);
  }
  return n;
}

size_t OnUploadRead(char* buffer, size_t size, size_t count, void* user) {
  auto* file = static_cast<std::FILE*>(user);
  size_t n = std::fread(buffer, 1, size * count, file);
  return n == 0 && std::ferror(file) ? CURL_READFUNC_ABORT : n;
}

int OnProgress(void* user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
               curl_off_t ulnow) {
  if (g_cancelled) return 1;
  auto* t = static_cast<HttpClient::Transfer*>(user);
  if (t->progress && *t->progress) {
    if (t->upload) {
      (*t->progress)(static_cast<uint64_t>(ulnow), static_cast<uint64_t>(ultotal));
    } else if (t->route == HttpClient::Transfer::Route::kSink) {
      (*t->progress)(static_cast<uint64_t>(dlnow), static_cast<uint64_t>(dltotal));
    }
  }
  return 0;
}

}  // namespace

Result<std::unique_ptr<HttpClient>> HttpClient::Create(std::string base_url) {
  static std::once_flag once;
  static CURLcode global = CURLE_OK;
  std::call_once(once, [] { global = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (global != CURLE_OK) {
    return Status::Internal(std::string("libcurl: ") + curl_easy_strerror(global));
  }
  CURL* curl = curl_easy_init();
  if (!curl) return Status::Internal("libcurl: curl_easy_init failed");
  while (!base_url.empty() && base_url.back() == '/') base_url.pop_back();
  return std::unique_ptr<HttpClient>(new HttpClient(std::move(base_url), curl));
}

HttpClient::~HttpClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

void HttpClient::SetBearerToken(std::string token, std::string source) {
  token_ = std::move(token);
  token_source_ = std::move(source);
}

void HttpClient::CancelTransfers() { g_cancelled = 1; }
void HttpClient::ResumeTransfers() { g_cancelled = 0; }
bool HttpClient::cancelled() { return g_cancelled != 0; }

Result<HttpResponse> HttpClient::Perform(Transfer& t) {
  if (g_cancelled) return Status::Unavailable("interrupted").WithReason("interrupted");
  CURL* curl = static_cast<CURL*>(curl_);
  curl_easy_reset(curl);  // Keeps the open connection.
  t.curl = curl;
  std::string url = base_url_ + t.path;
  char error[CURL_ERROR_SIZE] = "";
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, ("Accept: " + t.accept).c_str());
  headers = curl_slist_append(headers, "Expect:");  // No 100-continue round trip for uploads.
  if (!token_.empty()) {
    headers = curl_slist_append(headers, ("Authorization: Bearer " + token_).c_str());
  }
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "pycell-cli");
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, t.method);
  if (t.json_body) {
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, t.json_body->data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(t.json_body->size()));
  }
  if (t.upload) {
    headers = curl_slist_append(headers, "Content-Type: application/octet-stream");
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, OnUploadRead);
    curl_easy_setopt(curl, CURLOPT_READDATA, t.upload);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t.upload_bytes));
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  // The progress callback also checks for cancellation, so it is always on.
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);

  CURLcode code = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  if (code == CURLE_ABORTED_BY_CALLBACK && g_cancelled) {
    return Status::Unavailable("interrupted").WithReason("interrupted");
  }
  if (code == CURLE_WRITE_ERROR && !t.sink_status.ok()) return t.sink_status;
  if (code != CURLE_OK) return CurlFailure(code, url, error);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  char* type = nullptr;
  curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
  t.response.status = static_cast<int>(status);
  t.response.content_type = type ? type : "";
  return std::move(t.response);
}

Result<HttpResponse> HttpClient::Get(const std::string& path) {
  Transfer t;
  t.path = path;
  return Perform(t);
}

Result<HttpResponse> HttpClient::Delete(const std::string& path) {
  Transfer t;
  t.method = "DELETE";
  t.path = path;
  return Perform(t);
}

Result<HttpResponse> HttpClient::PostJson(const std::string& path, const std::string& json) {
  Transfer t;
  t.method = "POST";
  t.path = path;
  t.json_body = json;
  return Perform(t);
}

Result<HttpResponse> HttpClient::PatchJson(const std::string& path, const std::string& json) {
  Transfer t;
  t.method = "PATCH";
  t.path = path;
  t.json_body = json;
  return Perform(t);
}

Result<HttpResponse> HttpClient::PostFile(const std::string& path, const std::string& local_path,
                                          const ProgressFn& progress) {
  std::FILE* file = std::fopen(local_path.c_str(), "rb");
  if (!file) return Status::FromErrno(local_path);
  struct stat st;
  if (::fstat(fileno(file), &st) != 0 || !S_ISREG(st.st_mode)) {
    std::fclose(file);
    return Status::InvalidArgument(local_path + ": not a regular file");
  }
  Transfer t;
  t.method = "POST";
  t.path = path;
  t.upload = file;
  t.upload_bytes = static_cast<uint64_t>(st.st_size);
  t.progress = &progress;
  auto response = Perform(t);
  std::fclose(file);
  return response;
}

Result<HttpResponse> HttpClient::Download(const std::string& path, const BodySink& sink,
                                          const ProgressFn& progress) {
  Transfer t;
  t.path = path;
  t.accept = "*/*";
  t.sink = &sink;
  t.progress = &progress;
  return Perform(t);
}

Result<HttpResponse> HttpClient::PostJsonForEvents(const std::string& path, const std::string& json,
                                                   const EventFn& on_event) {
  Transfer t;
  t.method = "POST";
  t.path = path;
  t.accept = "text/event-stream";
  t.json_body = json;
  t.events.emplace(&on_event);
  return Perform(t);
}

}  // namespace pycell::cli
