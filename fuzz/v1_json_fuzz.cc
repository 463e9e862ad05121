// The JSON bodies and query strings of REST /v1, through the functions the routes call:
//  - the body parsed as the routes parse it (nlohmann::json::parse without exceptions), then
//    service::CreateSessionRequestFromJson and service::FileIdsFromJson (POST /v1/sessions, POST
//    /v1/sessions/{id}/files, MCP's create_session) and auth::ProjectSpecFromJson (POST and PATCH
//    /v1/projects), and auth::ParseRole on a "role" (POST /v1/keys);
//  - the request target through server::ParseTarget (path segments and query percent-decoded), its
//    `from` and `to` through ParseRfc3339Ms (GET /v1/audit, /v1/usage, /v1/evidence).
// (ParseBody's allowed-key check, the Range header and ?limit= are file-local in
// server/rest_v1.cc, out of reach without the whole Service; see fuzz/README.md.)
//
// Input: a body, or a request target ("/v1/...?..."), a newline and a body.
// Checked, beyond ASan and UBSan: what each function promises in its header — at most 100 file
// ids, at most 32 metadata keys of strings, a project name when creating, no negative quota.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "auth/directory.h"
#include "auth/roles.h"
#include "common/clock.h"
#include "fuzz_input.h"
#include "server/router.h"
#include "service/service.h"

namespace pycell::fuzz {
namespace {

using Json = nlohmann::json;

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "v1_json_fuzz: %s\n", what);
  std::abort();
}

void Target(const std::string& target) {
  std::string path;
  std::map<std::string, std::string> query;
  if (!server::ParseTarget(target, &path, &query).ok()) return;
  if (path.empty() || path[0] != '/') Fail("ParseTarget accepted a path not starting with '/'");
  for (const char* name : {"from", "to"}) {
    auto it = query.find(name);
    if (it != query.end()) (void)ParseRfc3339Ms(it->second);
  }
}

void Body(std::string_view text) {
  Json body = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) return;
  // What a route answers with echoes parts of the body back.
  (void)body.dump(-1, ' ', false, Json::error_handler_t::replace);

  Json session_body = body;
  if (auto request = service::CreateSessionRequestFromJson(session_body); request.ok()) {
    if (request->file_ids.size() > 100) Fail("more than 100 file_ids accepted");
    if (request->metadata) {
      const Json& metadata = *request->metadata;
      if (!metadata.is_object() || metadata.size() > 32) Fail("metadata not an object of ≤ 32");
      for (const auto& [key, value] : metadata.items()) {
        if (key.empty() || key.size() > 64 || !value.is_string()) Fail("a bad metadata entry");
      }
    }
  }
  if (auto ids = service::FileIdsFromJson(body); ids.ok() && ids->size() > 100) {
    Fail("more than 100 file_ids accepted");
  }
  for (bool creating : {true, false}) {
    auto spec = auth::ProjectSpecFromJson(body, creating);
    if (!spec.ok()) continue;
    if (creating && spec->name.empty()) Fail("a project created without a name");
    if (!creating && !spec->name.empty()) Fail("a project's name changed");
    for (const auto& quota :
         {spec->concurrent_sessions, spec->sessions_per_day, spec->storage_bytes}) {
      if (quota && *quota < 0) Fail("a negative quota accepted");
    }
    if (spec->cpu_hours_per_day && !(*spec->cpu_hours_per_day >= 0)) {
      Fail("a negative cpu_hours_per_day accepted");
    }
  }
  if (auto role = body.find("role"); role != body.end() && role->is_string()) {
    (void)auth::ParseRole(role->get<std::string>());
  }
}

}  // namespace
}  // namespace pycell::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace pycell::fuzz;
  std::string_view data(reinterpret_cast<const char*>(bytes), size);
  if (!data.empty() && data[0] == '/') {
    auto [target, body] = SplitFirstLine(data);
    Target(std::string(target));
    Body(body);
  } else {
    Body(data);
  }
  return 0;
}
