// MultipartParser: a streaming parser of multipart/form-data bodies (RFC 7578, RFC 2046 §5.1),
// fed the body in chunks of any size as they arrive from the network, so an upload of hundreds
// of megabytes goes to disk without being held in memory. Part bodies reach the callbacks in
// pieces; the parser itself holds at most one part's headers and a boundary's worth of bytes.
//
// Every byte comes from a client: malformed input is an InvalidArgument naming what was wrong
// (never a crash), and limits bound header size and part count.
//
// Thread-safety: one parser per request, used from one thread.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace pycell::files {

struct PartHeaders {
  std::string name;          // Content-Disposition's name parameter.
  std::string filename;      // Its filename parameter (filename* decoded when given); may be "".
  bool has_filename = false;
  std::string content_type;  // As sent; "" when absent.
};

struct MultipartCallbacks {
  // A callback's non-OK Status stops the parse and is returned by Feed/Finish.
  std::function<Status(const PartHeaders&)> on_part_begin;
  std::function<Status(std::string_view)> on_part_data;
  std::function<Status()> on_part_end;
};

struct MultipartLimits {
  size_t max_header_bytes = 16 * 1024;  // All header lines of one part.
  size_t max_parts = 32;
};

class MultipartParser {
 public:
  // The boundary from a Content-Type value such as
  // `multipart/form-data; boundary="----x"`. InvalidArgument when it is not multipart/form-data
  // or the boundary is missing or invalid (1–70 characters, RFC 2046).
  static Result<std::string> BoundaryFromContentType(std::string_view content_type);

  MultipartParser(std::string boundary, MultipartCallbacks callbacks,
                  MultipartLimits limits = {});

  Status Feed(std::string_view chunk);
  // The body ended: InvalidArgument unless the closing boundary was seen.
  Status Finish();

 private:
  // Implementation state (see multipart.cc).
  enum class State { kPreamble, kHeaders, kBody, kEpilogue, kFailed };
  Status Fail(Status status);
  Status ParseHeaders(std::string_view block);
  std::string boundary_;  // "\r\n--" + boundary
  MultipartCallbacks callbacks_;
  MultipartLimits limits_;
  State state_ = State::kPreamble;
  std::string pending_;  // Bytes not yet classified (a possible boundary's prefix, headers).
  size_t parts_ = 0;
  Status failure_;
};

}  // namespace pycell::files
