// ReceiveUpload: streams a request's body into a new stored file (Service::BeginUpload), for
// every route that takes one — POST /v1/files, POST /v1/sessions/{id}/files and the
// Azure-compatible upload. MCP's upload_file carries its bytes inside JSON (base64) and writes
// them to the same service::Upload.
//
// The body is multipart/form-data with one part named "file" (other parts are read and
// ignored), or, where the route allows it, the raw bytes named by ?filename=. Reading and
// writing overlap: the next piece of the body is read from the network while the last one is
// hashed and written (OverlappedWriter). Only a whole, well-formed body is recorded; nothing is
// kept of a refused one. A body past the upload limit is 413 payload_too_large.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "server/router.h"
#include "service/service.h"

namespace pycell::server {

struct UploadRules {
  // The stored file's name from the "file" part's filename (or ?filename=): the route's
  // mapping (the Azure routes strip "/mnt/data/"). Unset: the name as sent.
  std::function<Result<std::string>(const std::string& sent)> name_of;
  // Whether a raw body named by ?filename= is accepted besides multipart/form-data.
  bool allow_raw = true;
};

struct ReceivedUpload {
  service::FileInfo file;  // The stored file.
  std::string name;        // The name it was stored under.
};

Result<ReceivedUpload> ReceiveUpload(service::Service& service, Request& request,
                                     const UploadRules& rules = {});

}  // namespace pycell::server
