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
  std::string name;      // Content-Disposition's name parameter.
  std::string filename;  // Its filename parameter (filename* decoded when given); may be "".
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

  MultipartParser(std::string boundary, MultipartCallbacks callbacks, MultipartLimits limits = {});

  Status Feed(std::string_view chunk);
  // The body ended: InvalidArgument unless the closing boundary was seen.
  Status Finish();

 private:
  // Where the parser is in the body; see multipart.cc.
  enum class State {
    kPreamble,          // Before the first boundary: skipped.
    kBoundaryTail,      // Just after "--boundary": "--", padding or CRLF comes next.
    kCloseDash,         // After "--boundary-": the close's second '-'.
    kPadding,           // Spaces or tabs after a boundary, before its CRLF.
    kBoundaryLineFeed,  // After a boundary line's CR.
    kHeaders,           // A part's header lines, up to the empty line.
    kBody,              // A part's data, up to the next boundary.
    kEpilogue,          // After the closing boundary: ignored.
    kFailed,
  };
  // Each consumes a prefix of `data` (all of it unless the state changes) and sets `*used`.
  Status ScanForDelimiter(std::string_view data, size_t* used);
  Status ConsumeBoundaryLine(std::string_view data, size_t* used);
  Status ConsumeHeaders(std::string_view data, size_t* used);
  Status StartPart();
  Status ParseHeaders(std::string_view block);
  Status Deliver(std::string_view data);
  Status Fail(Status status);

  std::string delimiter_;  // "\r\n--" + boundary
  MultipartCallbacks callbacks_;
  MultipartLimits limits_;
  State state_ = State::kPreamble;
  // How many bytes of delimiter_ the latest bytes match. The body starts as if after a CRLF, so
  // that a boundary on the very first line is found like any other.
  size_t matched_ = 2;
  std::string headers_;     // The current part's header lines so far.
  size_t header_scan_ = 0;  // Where in headers_ to resume looking for the empty line.
  size_t parts_ = 0;
  Status failure_;  // Sticky once state_ is kFailed.
};

}  // namespace pycell::files
