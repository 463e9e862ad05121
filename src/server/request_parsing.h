// What the /v1 routes read from a request before they call the Service: the JSON body, paging
// and time queries, an API key's spec, the Range header, and the Content-Disposition they send
// back. Pure functions of a Request, apart from rest_v1.cc's handlers, so that the fuzzer
// (fuzz/rest_request_fuzz.cc) reaches them without a Service. Each refuses bad input with
// InvalidArgument and a message that says what to send instead.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

#include "auth/directory.h"
#include "common/status.h"
#include "server/router.h"
#include "store/metadata_store.h"

namespace pycell::server {

// The body as a JSON object, {} when empty; `allowed` lists the keys it may hold.
Result<nlohmann::json> ParseBody(const Request& request,
                                 std::initializer_list<const char*> allowed);
// The body as a JSON object, {} when empty; any keys.
Result<nlohmann::json> ParseObject(const Request& request);

// ?limit= (1 to 1000; 100 when absent) and ?after=.
Result<store::Page> PageFrom(const Request& request);
// The RFC 3339 time in query parameter `name` as Unix milliseconds; `fallback` when absent.
Result<int64_t> TimeQuery(const Request& request, const char* name, int64_t fallback);
// GET /v1/audit's ?from=&to=&principal=&action=&target=&after_seq=&limit=.
Result<store::AuditFilter> AuditFilterFrom(const Request& request);
// POST /v1/keys's body: principal (required), project, role, all_projects.
Result<auth::KeySpec> KeySpecFrom(const Request& request);

// One byte range ("bytes=a-b", "bytes=a-", "bytes=-n") of a `size`-byte file as [first, last],
// both inclusive and below `size`; nullopt when the header asks for something else (then the
// whole file is sent, as RFC 9110 allows), with *unsatisfiable set when it asks for bytes past
// the end (416).
std::optional<std::pair<uint64_t, uint64_t>> ParseRange(const std::string& header, uint64_t size,
                                                        bool* unsatisfiable);

// RFC 6266 attachment header for `filename`: a printable-ASCII fallback (quotes, backslashes and
// control bytes as '_') and the UTF-8 name percent-encoded.
std::string ContentDisposition(const std::string& filename);

}  // namespace pycell::server
