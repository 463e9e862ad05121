// The Azure Container Apps dynamic sessions routes (docs/aca.md), through the functions
// server/aca_routes.cc calls:
//  - the request target: server::ParseTarget, the route table's patterns (Router::Find with the
//    /aca routes, which yields {name} and {id}), aca::ParseApiVersion on ?api-version=,
//    aca::CheckIdentifier and IdentifierSessions::Resolve on ?identifier=, aca::SessionFileName
//    on a file name from the path (both as a download's name and as an upload's);
//  - the body: aca::ParseLegacyExecute and aca::ParseExecution; an accepted cell's code then
//    becomes the output of an execution record (what sandboxed code prints is as hostile as the
//    body), shaped by LegacyExecuteResponse and ExecutionResponse with the request's
//    outputStreamsMaxLength (after a round trip through the record's stored form, ToJson and
//    FromJson), and a file name becomes a /mnt/data listing for FileList, FindFile.
//
// Input: the request target ("/aca/code/execute?api-version=...&identifier=..."), a newline, the
// body.
// The body is also read as a stored execution record (session::ExecutionRecord::FromJson).
// Checked, beyond ASan and UBSan: a name SessionFileName accepts is relative, without empty, "."
// or ".." segments (and without '/' for uploads); stdout and stderr cut to outputStreamsMaxLength
// are at most that long and still valid UTF-8.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "aca/aca_api.h"
#include "aca/identifier_sessions.h"
#include "common/utf8.h"
#include "fuzz_input.h"
#include "server/router.h"

namespace pycell::fuzz {
namespace {

using Json = nlohmann::json;

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "aca_fuzz: %s\n", what);
  std::abort();
}

// The /aca routes' patterns (server/aca_routes.cc); only matching is used.
const server::Router& AcaRoutes() {
  static const server::Router* router = [] {
    auto* r = new server::Router;
    for (auto [method, path] : std::initializer_list<std::pair<const char*, const char*>>{
             {"POST", "/code/execute"},
             {"POST", "/files/upload"},
             {"GET", "/files/content/{name}"},
             {"GET", "/files"},
             {"GET", "/files/{name}"},
             {"DELETE", "/files/{name}"},
             {"POST", "/executions"},
             {"GET", "/executions/{id}"},
             {"POST", "/files"},
             {"GET", "/files/{name}/content"},
             {"GET", "/session"},
             {"DELETE", "/session"},
             {"GET", "/listSessions"},
             {"GET", "/metadata"}}) {
      r->Add(server::Route{method, std::string("/aca") + path});
    }
    return r;
  }();
  return *router;
}

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

void CheckFileName(const std::string& raw) {
  for (bool top_level : {false, true}) {
    Result<std::string> name = aca::SessionFileName(raw, top_level);
    if (!name.ok()) continue;
    const std::string& n = *name;
    if (n.empty() || n.front() == '/' || n.find('\0') != std::string::npos) {
      Fail("SessionFileName accepted an empty, absolute or NUL-holding name");
    }
    if (top_level && n.find('/') != std::string::npos) Fail("an upload name inside a folder");
    size_t start = 0;
    while (true) {
      size_t slash = n.find('/', start);
      std::string segment = n.substr(start, slash == std::string::npos ? slash : slash - start);
      if (segment.empty() || segment == "." || segment == "..") Fail("a bad segment accepted");
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    std::vector<service::SessionFile> listing = {{n, raw.size(), 1796000000000000000}};
    (void)Dump(aca::FileList(listing, aca::Contract::kLegacy));
    (void)Dump(aca::FileList(listing, aca::Contract::kCurrent));
    if (!aca::FindFile(listing, n).ok()) Fail("FindFile misses the file just listed");
  }
}

void Respond(const aca::ExecuteRequest& cell, const std::string& identifier, bool failed) {
  session::ExecutionRecord execution;
  execution.id = "exec_fuzz";
  execution.status = failed ? "error" : "ok";
  execution.stdout_text = cell.code;
  execution.stderr_text = cell.code;
  execution.duration_ms = 12;
  kernel::Output result{kernel::Output::Kind::kResult, {}};
  result.bundle.data = {{"text/plain", cell.code}, {"application/json", cell.code}};
  execution.outputs = {result};
  if (failed) execution.error = kernel::CellError{"ValueError", cell.code, {cell.code}};
  // The record as the store keeps it, read back: what ToJson writes, FromJson reads the same.
  auto stored = session::ExecutionRecord::FromJson(execution.ToJson());
  if (!stored.ok()) Fail("a record ToJson wrote does not read back");
  if (stored->ToJson() != execution.ToJson()) Fail("a record changed on its way through the store");
  (void)Dump(aca::LegacyExecuteResponse(execution));
  Json current = aca::ExecutionResponse(execution, identifier, cell.asynchronous,
                                        cell.output_streams_max_length);
  (void)Dump(current);
  if (cell.output_streams_max_length) {
    for (const char* stream : {"stdout", "stderr"}) {
      const std::string& text = current["result"][stream].get_ref<const std::string&>();
      if (text.size() > *cell.output_streams_max_length) Fail("output longer than asked");
      if (!IsValidUtf8(text)) Fail("output cut inside a character");
    }
  }
}

void Request(const std::string& target, std::string_view body) {
  // The body as a stored record: FromJson reads any text without throwing, and what it accepts
  // writes out again.
  if (auto record = session::ExecutionRecord::FromJson(body); record.ok()) (void)record->ToJson();
  std::string path;
  std::map<std::string, std::string> query;
  if (!server::ParseTarget(target, &path, &query).ok()) return;
  server::Router::Match match = AcaRoutes().Find("GET", path);
  if (!match.route) match = AcaRoutes().Find("POST", path);
  for (const auto& [param, value] : match.params) {
    if (value.empty()) Fail("a route matched an empty {param}");
    if (param == "name") CheckFileName(value);
  }
  if (auto filename = query.find("filename"); filename != query.end()) {
    CheckFileName(filename->second);
  }

  Result<aca::Contract> contract = aca::ParseApiVersion(query["api-version"]);
  std::string identifier = query["identifier"];
  if (aca::CheckIdentifier(identifier).ok()) {
    int made = 0;
    aca::IdentifierSessions sessions(
        [&made](const auth::Caller&, const std::string&) -> Result<std::string> {
          return "sess_fuzz" + std::to_string(++made);
        },
        [](const auth::Caller&, const std::string&) { return Status::Ok(); });
    auth::Caller caller;
    caller.principal = "fuzz";
    auto first = sessions.Resolve(caller, identifier, /*create=*/true);
    auto again = sessions.Resolve(caller, identifier, /*create=*/false);
    if (!first.ok() || !again.ok() || *first != *again || made != 1) {
      Fail("an identifier did not keep its session");
    }
  }

  bool legacy = contract.ok() && *contract == aca::Contract::kLegacy;
  for (bool legacy_body : {legacy, !legacy}) {
    Result<aca::ExecuteRequest> cell =
        legacy_body ? aca::ParseLegacyExecute(body) : aca::ParseExecution(body);
    if (!cell.ok()) continue;
    if (cell->timeout && (cell->timeout->count() < 1 || cell->timeout->count() > 86400)) {
      Fail("a timeout outside 1..86400 accepted");
    }
    Respond(*cell, identifier, /*failed=*/false);
    Respond(*cell, identifier, /*failed=*/true);
  }
}

}  // namespace
}  // namespace pycell::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace pycell::fuzz;
  auto [target, body] =
      SplitFirstLine(std::string_view(reinterpret_cast<const char*>(bytes), size));
  Request(std::string(target), body);
  return 0;
}
