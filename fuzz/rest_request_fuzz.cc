// What the /v1 routes read from a request before they call the Service
// (server/request_parsing.h): ParseBody with an allowed-key list, ParseObject, PageFrom
// (?limit=, ?after=), AuditFilterFrom (?from=&to=&after_seq=…), KeySpecFrom (POST /v1/keys),
// ParseRange (the Range header, against files of several sizes) and ContentDisposition (the
// header a download sends, from a filename the client chose at upload).
//
// Input: a request target ("/v1/audit?limit=5"), a newline, a Range header value, a newline, and
// the body (which also serves as the filename).
// Checked, beyond ASan and UBSan: what each function promises in its header — a page of 1 to
// 1000, after_seq ≥ 0, only allowed keys in a parsed body, a range inside the file with first ≤
// last, and a Content-Disposition of printable ASCII whose quoted filename holds no quote or
// backslash (no header injection, no broken quoting).
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "fuzz_input.h"
#include "server/request_parsing.h"
#include "server/router.h"

namespace pycell::fuzz {
namespace {

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "rest_request_fuzz: %s\n", what);
  std::abort();
}

void Queries(server::Request& request) {
  if (auto page = server::PageFrom(request); page.ok()) {
    if (page->limit < 1 || page->limit > 1000) Fail("a page limit outside 1..1000 accepted");
  }
  if (auto filter = server::AuditFilterFrom(request); filter.ok()) {
    if (filter->after_seq < 0) Fail("a negative after_seq accepted");
    if (filter->limit < 1 || filter->limit > 1000) Fail("an audit limit outside 1..1000 accepted");
  }
}

void Bodies(const server::Request& request) {
  static const char* const kAllowed[] = {"code", "timeout"};
  if (auto body = server::ParseBody(request, {"code", "timeout"}); body.ok()) {
    if (!body->is_object()) Fail("ParseBody returned something other than an object");
    for (const auto& [key, value] : body->items()) {
      if (key != kAllowed[0] && key != kAllowed[1]) Fail("ParseBody let an unknown key through");
    }
  }
  if (auto body = server::ParseObject(request); body.ok() && !body->is_object()) {
    Fail("ParseObject returned something other than an object");
  }
  if (auto spec = server::KeySpecFrom(request); spec.ok()) {
    (void)spec->principal;
  }
}

void Range(const std::string& header) {
  for (uint64_t size : {uint64_t{0}, uint64_t{1}, uint64_t{100}, uint64_t{1} << 40, ~uint64_t{0}}) {
    bool unsatisfiable = false;
    auto range = server::ParseRange(header, size, &unsatisfiable);
    if (range) {
      if (unsatisfiable) Fail("a range both given and unsatisfiable");
      if (range->first > range->second) Fail("a range whose first byte is after its last");
      if (range->second >= size) Fail("a range past the end of the file");
    }
  }
}

void Disposition(const std::string& filename) {
  std::string header = server::ContentDisposition(filename);
  for (unsigned char c : header) {
    if (c < 0x20 || c >= 0x7f) Fail("a Content-Disposition byte outside printable ASCII");
  }
  const std::string open = "attachment; filename=\"";
  size_t close = header.find("\"; filename*=UTF-8''");
  if (header.rfind(open, 0) != 0 || close == std::string::npos) {
    Fail("a Content-Disposition not of the promised shape");
  }
  std::string quoted = header.substr(open.size(), close - open.size());
  if (quoted.find_first_of("\"\\") != std::string::npos) {
    Fail("a quote or backslash inside the quoted filename");
  }
}

}  // namespace
}  // namespace pycell::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace pycell;
  std::string_view data(reinterpret_cast<const char*>(bytes), size);
  auto [target, rest] = fuzz::SplitFirstLine(data);
  auto [range, body] = fuzz::SplitFirstLine(rest);
  server::Request request;
  request.method = "POST";
  request.target = std::string(target);
  request.body = std::string(body);
  if (server::ParseTarget(request.target, &request.path, &request.query).ok()) {
    fuzz::Queries(request);
  }
  fuzz::Bodies(request);
  fuzz::Range(std::string(range));
  fuzz::Disposition(request.body);
  return 0;
}
