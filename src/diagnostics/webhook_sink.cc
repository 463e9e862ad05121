// The webhook sink: each batch is one `POST url` with a JSON array body, through libcurl. The
// handle is kept, so batches reuse one connection. Errors name the receiver by scheme, host and
// port only: a URL may carry a token in its path or query, and errors are shown to operators.
#include <curl/curl.h>

#include <mutex>
#include <string>

#include "diagnostics/sink_writer.h"

namespace pycell::diagnostics {
namespace {

// "https://user:secret@host:8443/hook?token=x" -> "https://host:8443".
std::string Origin(const std::string& url) {
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return "(webhook)";
  size_t host_start = scheme_end + 3;
  size_t host_end = url.find_first_of("/?#", host_start);
  std::string authority = url.substr(host_start, host_end - host_start);
  size_t at = authority.rfind('@');
  if (at != std::string::npos) authority = authority.substr(at + 1);
  return url.substr(0, host_start) + authority;
}

size_t DiscardBody(char*, size_t size, size_t count, void*) { return size * count; }

// libcurl's progress callback: non-zero aborts the transfer.
int CheckCancelled(void* cancel, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::atomic<bool>*>(cancel)->load() ? 1 : 0;
}

class WebhookWriter : public SinkWriter {
 public:
  static Result<std::unique_ptr<SinkWriter>> Open(const DiagnosticSetting& setting,
                                                  const std::atomic<bool>* cancel) {
    static std::once_flag once;
    static CURLcode global = CURLE_OK;
    std::call_once(once, [] { global = curl_global_init(CURL_GLOBAL_DEFAULT); });
    if (global != CURLE_OK) {
      return Status::Internal(std::string("libcurl: ") + curl_easy_strerror(global));
    }
    std::unique_ptr<WebhookWriter> writer(new WebhookWriter(setting, cancel));
    if (!writer->curl_ || !writer->headers_) {
      return Status::Internal("libcurl: cannot make a transfer handle");
    }
    return std::unique_ptr<SinkWriter>(std::move(writer));
  }

  ~WebhookWriter() override {
    curl_slist_free_all(headers_);
    if (curl_) curl_easy_cleanup(curl_);
  }

  Status Write(std::span<const std::string_view> events, size_t* delivered) override {
    *delivered = 0;
    std::string body = "[";
    for (std::string_view event : events) {
      if (body.size() > 1) body.push_back(',');
      body.append(event);
    }
    body.push_back(']');
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    error_[0] = '\0';
    CURLcode code = curl_easy_perform(curl_);
    if (code != CURLE_OK) {
      return Status::Unavailable("POST " + origin_ + ": " +
                                 (error_[0] ? error_ : curl_easy_strerror(code)));
    }
    long http_status = 0;
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &http_status);
    if (http_status < 200 || http_status > 299) {
      return Status::Unavailable("POST " + origin_ + ": HTTP " + std::to_string(http_status));
    }
    *delivered = events.size();
    return Status::Ok();
  }

 private:
  WebhookWriter(const DiagnosticSetting& setting, const std::atomic<bool>* cancel)
      : url_(setting.url), origin_(Origin(setting.url)), curl_(curl_easy_init()) {
    headers_ = curl_slist_append(nullptr, "Content-Type: application/json");
    if (headers_) headers_ = curl_slist_append(headers_, "Expect:");  // No 100-continue wait.
    if (!curl_) return;
    curl_easy_setopt(curl_, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(curl_, CURLOPT_POST, 1L);
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(curl_, CURLOPT_USERAGENT, "pycell-diagnostics");
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, static_cast<long>(setting.timeout.count()));
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);  // Worker threads: no SIGALRM.
    curl_easy_setopt(curl_, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl_, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, DiscardBody);
    curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, error_);
    curl_easy_setopt(curl_, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl_, CURLOPT_XFERINFOFUNCTION, CheckCancelled);
    curl_easy_setopt(curl_, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(cancel));
  }

  const std::string url_;
  const std::string origin_;
  CURL* const curl_;
  curl_slist* headers_ = nullptr;
  char error_[CURL_ERROR_SIZE] = {};
};

}  // namespace

Result<std::unique_ptr<SinkWriter>> OpenWebhookWriter(const DiagnosticSetting& setting,
                                                      const std::atomic<bool>* cancel) {
  return WebhookWriter::Open(setting, cancel);
}

}  // namespace pycell::diagnostics
