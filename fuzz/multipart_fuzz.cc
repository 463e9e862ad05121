// multipart/form-data uploads (POST /v1/files, POST /v1/sessions/{id}/files, the Azure-compatible
// upload): files::MultipartParser as ReceiveUpload (server/rest_v1.cc) drives it.
//
// Input: the Content-Type header value, a newline, then the body. The boundary comes from
// MultipartParser::BoundaryFromContentType, as in the server. The body is parsed twice: in one
// piece, and cut into the pieces a network delivers (sizes drawn from the input's hash). Both
// parses must tell the same story — the same parts with the same headers and the same bytes, and
// the same outcome — and the callbacks must come in order (data and end only inside a part).
// Any difference aborts: a parser that depends on where the reads fall is a bug even when
// nothing crashes.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "files/multipart.h"
#include "fuzz_input.h"

namespace pycell::fuzz {
namespace {

struct Part {
  files::PartHeaders headers;
  std::string data;
  bool ended = false;
};

struct Outcome {
  std::vector<Part> parts;
  Status status;  // Of the last Feed that failed, else of Finish.
};

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "multipart_fuzz: %s\n", what);
  std::abort();
}

bool SameHeaders(const files::PartHeaders& a, const files::PartHeaders& b) {
  return a.name == b.name && a.filename == b.filename && a.has_filename == b.has_filename &&
         a.content_type == b.content_type;
}

// Parses `body`, fed in pieces of the sizes `next_piece` gives.
template <typename NextPiece>
Outcome Parse(const std::string& boundary, std::string_view body, NextPiece next_piece) {
  Outcome outcome;
  bool in_part = false;
  files::MultipartCallbacks callbacks;
  callbacks.on_part_begin = [&](const files::PartHeaders& headers) -> Status {
    if (in_part) Fail("on_part_begin inside a part");
    outcome.parts.push_back(Part{headers, "", false});
    in_part = true;
    // A handler may refuse a part (ReceiveUpload refuses a second "file"): the parse must stop.
    if (headers.name == "refuse") return Status::InvalidArgument("refused by the handler");
    return Status::Ok();
  };
  callbacks.on_part_data = [&](std::string_view data) -> Status {
    if (!in_part) Fail("on_part_data outside a part");
    if (data.empty()) Fail("on_part_data with no bytes");
    outcome.parts.back().data.append(data);
    return Status::Ok();
  };
  callbacks.on_part_end = [&]() -> Status {
    if (!in_part) Fail("on_part_end outside a part");
    outcome.parts.back().ended = true;
    in_part = false;
    return Status::Ok();
  };
  files::MultipartParser parser(boundary, std::move(callbacks));
  while (!body.empty()) {
    size_t n = std::min(next_piece(), body.size());
    Status status = parser.Feed(body.substr(0, n));
    body.remove_prefix(n);
    if (!status.ok()) {
      outcome.status = status;
      // Once failed, the parser keeps failing with the same status and calls nothing.
      size_t parts = outcome.parts.size();
      Status again = parser.Feed(body.empty() ? std::string_view("x") : body);
      if (again.code() != status.code() || again.message() != status.message()) {
        Fail("a failed parser answered a later Feed differently");
      }
      if (outcome.parts.size() != parts) Fail("a failed parser called back");
      return outcome;
    }
  }
  outcome.status = parser.Finish();
  if (outcome.status.ok() && in_part) Fail("Finish succeeded inside a part");
  return outcome;
}

}  // namespace
}  // namespace pycell::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace pycell;
  using namespace pycell::fuzz;
  std::string_view data(reinterpret_cast<const char*>(bytes), size);
  auto [content_type, rest] = SplitFirstLine(data);
  std::string_view body = rest;  // (A lambda cannot capture a structured binding in C++20.)
  Result<std::string> boundary = files::MultipartParser::BoundaryFromContentType(content_type);
  if (!boundary.ok()) return 0;

  Outcome whole = Parse(*boundary, body, [&] { return body.size(); });
  Chooser chooser(data);
  Outcome pieces = Parse(*boundary, body, [&] { return PieceSize(chooser, 4096); });

  if (whole.status.code() != pieces.status.code() ||
      whole.status.message() != pieces.status.message()) {
    std::fprintf(stderr, "whole: %s\npieces: %s\n", whole.status.ToString().c_str(),
                 pieces.status.ToString().c_str());
    Fail("the outcome depends on how the body was cut");
  }
  // On failure the bytes delivered before it may differ (a piece ends earlier or later); on
  // success everything must match.
  if (whole.status.ok()) {
    if (whole.parts.size() != pieces.parts.size()) Fail("part counts differ");
    for (size_t i = 0; i < whole.parts.size(); ++i) {
      const Part& a = whole.parts[i];
      const Part& b = pieces.parts[i];
      if (!SameHeaders(a.headers, b.headers)) Fail("part headers differ");
      if (a.data != b.data) Fail("part bytes differ");
      if (!a.ended || !b.ended) Fail("a part of a complete body did not end");
    }
  }
  return 0;
}
