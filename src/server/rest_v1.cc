#include "server/rest_v1.h"

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "files/multipart.h"
#include "server/overlapped_writer.h"
#include "session/execution.h"

namespace pycell::server {
namespace {

using service::Json;
using service::Service;

Response JsonResponse(int status, const Json& j) {
  return Response::Json(status, j.dump(-1, ' ', false, Json::error_handler_t::replace));
}

// Parses a JSON object body; `allowed` lists the keys it may hold.
Result<Json> ParseBody(const Request& request, std::initializer_list<const char*> allowed) {
  if (request.body.empty()) return Json::object();
  Json j = Json::parse(request.body, nullptr, false);
  if (j.is_discarded()) {
    return Status::InvalidArgument("the body is not valid JSON; send an object such as {\"code\": \"1+1\"}");
  }
  if (!j.is_object()) return Status::InvalidArgument("the body must be a JSON object");
  for (const auto& [key, value] : j.items()) {
    bool known = false;
    for (const char* a : allowed) known = known || key == a;
    if (!known) {
      std::string list;
      for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      return Status::InvalidArgument("unknown field \"" + key + "\"; allowed: " + list);
    }
  }
  return j;
}

Result<store::Page> PageFrom(const Request& request) {
  store::Page page;
  const std::string& limit = request.Query("limit");
  if (!limit.empty()) {
    char* end = nullptr;
    long value = std::strtol(limit.c_str(), &end, 10);
    if (*end != '\0' || value < 1 || value > 1000) {
      return Status::InvalidArgument("limit must be an integer from 1 to 1000");
    }
    page.limit = static_cast<int>(value);
  }
  page.after = request.Query("after");
  return page;
}

std::vector<std::pair<std::string, std::string>> SseHeaders() {
  return {{"Content-Type", "text/event-stream"}, {"Cache-Control", "no-store"}};
}

std::string SseEvent(const std::string& event, const Json& data) {
  return "event: " + event + "\ndata: " + data.dump(-1, ' ', false, Json::error_handler_t::replace) +
         "\n\n";
}

bool WantsEventStream(const Request& request) {
  return request.Header("accept").find("text/event-stream") != std::string::npos;
}

// --- files ----------------------------------------------------------------------------------

// Reads the whole body, two buffers in turn, handing each piece to `feed`, whose writes go
// through `writer`: the next piece is read from the network while the last one is hashed and
// written.
Status PumpBody(BodyReader* reader, OverlappedWriter& writer,
                const std::function<Status(std::string_view)>& feed) {
  std::vector<char> buffers[2] = {std::vector<char>(1 << 20), std::vector<char>(1 << 20)};
  Status status = [&]() -> Status {
    for (int current = 0;; current ^= 1) {
      ASSIGN_OR_RETURN(size_t n, reader->Read(buffers[current].data(), buffers[current].size()));
      // The other buffer's writes must be done before it is read into, next turn.
      RETURN_IF_ERROR(writer.Drain());
      if (n == 0) return Status::Ok();
      RETURN_IF_ERROR(feed(std::string_view(buffers[current].data(), n)));
    }
  }();
  // Whatever ended the loop, no queued write may outlive the buffers it points into.
  // (Regression: a refused multipart body returned here with writes still queued; ASan caught
  // the writer's thread reading freed memory.)
  Status drained = writer.Drain();
  return status.ok() ? drained : status;
}

// Streams the body into an upload: multipart (field "file") or raw with ?filename=.
Result<Json> ReceiveUpload(Service& service, Request& request) {
  const std::string& content_type = request.Header("content-type");
  std::unique_ptr<service::Upload> upload;
  OverlappedWriter writer([&upload](std::string_view data) { return upload->Write(data); });
  if (content_type.rfind("multipart/", 0) == 0) {
    ASSIGN_OR_RETURN(std::string boundary,
                     files::MultipartParser::BoundaryFromContentType(content_type));
    bool in_file = false;
    files::MultipartCallbacks callbacks;
    callbacks.on_part_begin = [&](const files::PartHeaders& part) -> Status {
      in_file = part.name == "file";
      if (!in_file) return Status::Ok();
      if (upload) return Status::InvalidArgument("send one part named \"file\" per upload");
      if (!part.has_filename || part.filename.empty()) {
        return Status::InvalidArgument("the \"file\" part needs a filename in its Content-Disposition");
      }
      ASSIGN_OR_RETURN(upload, service.BeginUpload(part.filename));
      return Status::Ok();
    };
    callbacks.on_part_data = [&](std::string_view data) -> Status {
      if (in_file) writer.Write(data);
      return Status::Ok();
    };
    callbacks.on_part_end = [&]() -> Status {
      in_file = false;
      return Status::Ok();
    };
    files::MultipartParser parser(boundary, std::move(callbacks));
    RETURN_IF_ERROR(PumpBody(request.body_reader, writer,
                             [&](std::string_view piece) { return parser.Feed(piece); }));
    RETURN_IF_ERROR(parser.Finish());
    // Only a whole, well-formed body is recorded: nothing is kept of a refused request.
    if (!upload) {
      return Status::InvalidArgument(
          "the multipart body has no part named \"file\"; send the file as the form field \"file\"");
    }
    return upload->Finish();
  }
  const std::string& filename = request.Query("filename");
  if (filename.empty()) {
    return Status::InvalidArgument(
        "send the file as multipart/form-data (field \"file\") or as the raw body with "
        "?filename=NAME");
  }
  ASSIGN_OR_RETURN(upload, service.BeginUpload(filename));
  RETURN_IF_ERROR(PumpBody(request.body_reader, writer, [&](std::string_view piece) {
    writer.Write(piece);
    return Status::Ok();
  }));
  return upload->Finish();
}

Status WithUploadReason(Status s) {
  if (s.IsResourceExhausted() && s.reason().empty()) return s.WithReason("payload_too_large");
  return s;
}

// RFC 6266 filename: an ASCII fallback and the UTF-8 name percent-encoded.
std::string ContentDisposition(const std::string& filename) {
  std::string ascii, encoded;
  static const char* kHex = "0123456789ABCDEF";
  for (unsigned char c : filename) {
    ascii += (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? static_cast<char>(c) : '_';
    if (std::isalnum(c) || c == '.' || c == '-' || c == '_') {
      encoded += static_cast<char>(c);
    } else {
      encoded += '%';
      encoded += kHex[c >> 4];
      encoded += kHex[c & 15];
    }
  }
  return "attachment; filename=\"" + ascii + "\"; filename*=UTF-8''" + encoded;
}

// One byte range ("bytes=a-b", "bytes=a-", "bytes=-n") of a `size`-byte file, or nullopt when
// the header asks for something else (then the whole file is sent, as RFC 9110 allows).
std::optional<std::pair<uint64_t, uint64_t>> ParseRange(const std::string& header, uint64_t size,
                                                        bool* unsatisfiable) {
  *unsatisfiable = false;
  if (header.rfind("bytes=", 0) != 0) return std::nullopt;
  std::string spec = header.substr(6);
  if (spec.find(',') != std::string::npos) return std::nullopt;
  size_t dash = spec.find('-');
  if (dash == std::string::npos) return std::nullopt;
  std::string first = spec.substr(0, dash), last = spec.substr(dash + 1);
  auto number = [](const std::string& s, uint64_t* out) {
    if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos) return false;
    *out = std::stoull(s);
    return true;
  };
  uint64_t a = 0, b = 0;
  if (first.empty()) {
    if (!number(last, &b)) return std::nullopt;
    if (b == 0 || size == 0) {
      *unsatisfiable = true;
      return std::nullopt;
    }
    b = std::min(b, size);
    return std::make_pair(size - b, size - 1);
  }
  if (!number(first, &a)) return std::nullopt;
  if (last.empty()) {
    b = size - 1;
  } else if (!number(last, &b) || b < a) {
    return std::nullopt;
  }
  if (a >= size) {
    *unsatisfiable = true;
    return std::nullopt;
  }
  return std::make_pair(a, std::min(b, size - 1));
}

Result<Response> FileContentResponse(Service& service, const Request& request) {
  ASSIGN_OR_RETURN(service::FileContent content, service.OpenFile(request.params.at("id")));
  uint64_t size = static_cast<uint64_t>(content.row.bytes);
  std::string etag = "\"" + content.row.sha256 + "\"";
  Response r;
  r.headers = {{"Content-Type", content.row.media_type},
               {"Content-Disposition", ContentDisposition(content.row.filename)},
               {"ETag", etag},
               {"Accept-Ranges", "bytes"},
               {"X-Content-Type-Options", "nosniff"},
               {"Cache-Control", "private, no-cache"}};
  if (request.Header("if-none-match") == etag) {
    r.status = 304;
    return r;
  }
  bool unsatisfiable = false;
  std::optional<std::pair<uint64_t, uint64_t>> range;
  const std::string& if_range = request.Header("if-range");
  if (!request.Header("range").empty() && (if_range.empty() || if_range == etag)) {
    range = ParseRange(request.Header("range"), size, &unsatisfiable);
  }
  if (unsatisfiable) {
    Response e = ErrorResponse(Status::InvalidArgument(
        "the range is outside the file of " + std::to_string(size) + " bytes"));
    e.status = 416;
    e.headers.emplace_back("Content-Range", "bytes */" + std::to_string(size));
    return e;
  }
  FileBody body{std::move(content.fd), 0, size};
  if (range) {
    r.status = 206;
    body.offset = range->first;
    body.length = range->second - range->first + 1;
    r.headers.emplace_back("Content-Range", "bytes " + std::to_string(range->first) + "-" +
                                                std::to_string(range->second) + "/" +
                                                std::to_string(size));
  }
  r.file = std::move(body);
  return r;
}

// --- sessions -------------------------------------------------------------------------------

Result<std::vector<std::string>> FileIds(const Json& body) {
  std::vector<std::string> ids;
  if (!body.contains("file_ids") || body["file_ids"].is_null()) return ids;
  const Json& list = body["file_ids"];
  if (!list.is_array()) return Status::InvalidArgument("file_ids must be an array of file ids");
  if (list.size() > 100) return Status::InvalidArgument("at most 100 file_ids at once");
  for (const Json& id : list) {
    if (!id.is_string()) return Status::InvalidArgument("file_ids must be an array of strings");
    ids.push_back(id.get<std::string>());
  }
  return ids;
}

Result<service::CreateSessionRequest> CreateRequestFrom(Json& body) {
  service::CreateSessionRequest r;
  if (body.contains("pool")) {
    if (!body["pool"].is_string()) return Status::InvalidArgument("pool must be a string");
    r.pool = body["pool"].get<std::string>();
  }
  ASSIGN_OR_RETURN(r.file_ids, FileIds(body));
  if (body.contains("limits") && !body["limits"].is_null()) {
    const Json& limits = body["limits"];
    if (!limits.is_object()) return Status::InvalidArgument("limits must be an object");
    for (const auto& [key, value] : limits.items()) {
      if (key == "memory_bytes") {
        if (!value.is_number_unsigned()) return Status::InvalidArgument("limits.memory_bytes must be a positive integer");
        r.memory_bytes = value.get<uint64_t>();
      } else if (key == "execution_timeout_s") {
        if (!value.is_number_unsigned()) return Status::InvalidArgument("limits.execution_timeout_s must be a positive integer");
        r.execution_timeout = std::chrono::seconds(value.get<uint64_t>());
      } else {
        return Status::InvalidArgument("unknown limit \"" + key +
                                       "\"; allowed: memory_bytes, execution_timeout_s");
      }
    }
  }
  if (body.contains("metadata") && !body["metadata"].is_null()) {
    Json& metadata = body["metadata"];
    if (!metadata.is_object()) return Status::InvalidArgument("metadata must be an object of strings");
    if (metadata.size() > 32) return Status::InvalidArgument("metadata holds at most 32 keys");
    for (const auto& [key, value] : metadata.items()) {
      if (key.empty() || key.size() > 64 || !value.is_string() || value.get<std::string>().size() > 512) {
        return Status::InvalidArgument(
            "metadata keys must be 1-64 characters and values strings of at most 512");
      }
    }
    r.metadata = &metadata;
  }
  return r;
}

Result<Response> Execute(Service& service, Request& request, ResponseStream& stream) {
  ASSIGN_OR_RETURN(Json body, ParseBody(request, {"code", "timeout_s"}));
  if (!body.contains("code") || !body["code"].is_string()) {
    return Status::InvalidArgument("code is required: a string of Python");
  }
  std::optional<std::chrono::seconds> timeout;
  if (body.contains("timeout_s") && !body["timeout_s"].is_null()) {
    if (!body["timeout_s"].is_number() || body["timeout_s"].get<double>() < 1) {
      return Status::InvalidArgument("timeout_s must be a number of seconds ≥ 1");
    }
    double t = body["timeout_s"].get<double>();
    if (t > 86400) return Status::InvalidArgument("timeout_s is too large");
    timeout = std::chrono::seconds(static_cast<int64_t>(t));
  }
  const std::string& id = request.params.at("id");
  std::string code = body["code"].get<std::string>();
  if (!WantsEventStream(request)) {
    ASSIGN_OR_RETURN(std::string record, service.Execute(id, code, timeout));
    return Response::Json(200, std::move(record));
  }
  // Server-Sent Events: output as it comes, then the record. The head goes out with the first
  // event, so errors before the cell starts (busy, expired) still get their HTTP status.
  kernel::ExecuteObserver observer;
  auto send = [&](const std::string& event, const Json& data) {
    if (!stream.begun() && !stream.Begin(200, SseHeaders()).ok()) return;
    (void)stream.Write(SseEvent(event, data));
  };
  observer.on_stdout = [&](std::string_view text) {
    send("stdout", {{"text", std::string(text)}});
  };
  observer.on_stderr = [&](std::string_view text) {
    send("stderr", {{"text", std::string(text)}});
  };
  observer.on_output = [&](const kernel::Output& output) {
    // The execution count is known only at the end; the final record carries it.
    send(output.kind == kernel::Output::Kind::kResult ? "result" : "display",
         Json::parse(session::OutputToJson(output, 0)));
  };
  auto record = service.Execute(id, code, timeout, observer);
  if (!record.ok()) {
    if (!stream.begun()) return record.status();
    send("error", {{"error", {{"code", ErrorCodeFor(record.status())},
                              {"message", record.status().message()}}}});
  } else {
    if (!stream.begun() && !stream.Begin(200, SseHeaders()).ok()) return Response{.streamed = true};
    (void)stream.Write("event: execution\ndata: " + *record + "\n\n");
  }
  Response done;
  done.streamed = true;
  return done;
}

}  // namespace

void AddRestV1Routes(Router* router, Service* service, const std::string* openapi_json) {
  Service& s = *service;
  auto add = [&](const char* method, const char* pattern, auto handler, bool streams = false) {
    router->Add(Route{method, pattern,
                      [handler](Request& request, ResponseStream& stream) -> Result<Response> {
                        return handler(request, stream);
                      },
                      streams});
  };

  // --- the route table ---
  add("GET", "/healthz", [](Request&, ResponseStream&) -> Result<Response> {
    return JsonResponse(200, {{"status", "ok"}});
  });
  add("GET", "/readyz", [&s](Request&, ResponseStream&) -> Result<Response> {
    if (!s.Ready()) {
      return Status::Unavailable("the warm pool is still filling; retry shortly");
    }
    return JsonResponse(200, {{"status", "ready"}});
  });
  add("GET", "/openapi.json", [openapi_json](Request&, ResponseStream&) -> Result<Response> {
    return Response::Json(200, *openapi_json);
  });

  add("POST", "/v1/files", [&s](Request& r, ResponseStream&) -> Result<Response> {
    auto file = ReceiveUpload(s, r);
    if (!file.ok()) return WithUploadReason(file.status());
    return JsonResponse(201, *file);
  }, /*streams=*/true);
  add("GET", "/v1/files", [&s](Request& r, ResponseStream&) -> Result<Response> {
    ASSIGN_OR_RETURN(store::Page page, PageFrom(r));
    store::FileFilter filter{r.Query("purpose"), r.Query("session_id"), r.Query("execution_id")};
    if (!filter.purpose.empty() && filter.purpose != "input" && filter.purpose != "output") {
      return Status::InvalidArgument("purpose must be input or output");
    }
    ASSIGN_OR_RETURN(Json list, s.ListFiles(filter, page));
    return JsonResponse(200, list);
  });
  add("GET", "/v1/files/{id}", [&s](Request& r, ResponseStream&) -> Result<Response> {
    ASSIGN_OR_RETURN(Json file, s.GetFile(r.params.at("id")));
    return JsonResponse(200, file);
  });
  add("GET", "/v1/files/{id}/content", [&s](Request& r, ResponseStream&) {
    return FileContentResponse(s, r);
  });
  add("GET", "/v1/files/{id}/lineage", [&s](Request& r, ResponseStream&) -> Result<Response> {
    ASSIGN_OR_RETURN(Json lineage, s.Lineage(r.params.at("id")));
    return JsonResponse(200, lineage);
  });
  add("DELETE", "/v1/files/{id}", [&s](Request& r, ResponseStream&) -> Result<Response> {
    const std::string& id = r.params.at("id");
    RETURN_IF_ERROR(s.DeleteFile(id));
    return JsonResponse(200, {{"id", id}, {"object", "file"}, {"deleted", true}});
  });

  add("POST", "/v1/sessions", [&s](Request& r, ResponseStream&) -> Result<Response> {
    ASSIGN_OR_RETURN(Json body, ParseBody(r, {"pool", "file_ids", "limits", "metadata"}));
    ASSIGN_OR_RETURN(service::CreateSessionRequest create, CreateRequestFrom(body));
    ASSIGN_OR_RETURN(Json session, s.CreateSession(create));
    return JsonResponse(201, session);
  });
  add("GET", "/v1/sessions", [&s](Request& r, ResponseStream&) -> Result<Response> {
    ASSIGN_OR_RETURN(store::Page page, PageFrom(r));
    const std::string& status = r.Query("status");
    if (!status.empty() && status != "active" && status != "ended") {
      return Status::InvalidArgument("status must be active or ended");
    }
    ASSIGN_OR_RETURN(Json list, s.ListSessions(status, page));
    return JsonResponse(200, list);
  });
  add("GET", "/v1/sessions/{id}", [&s](Request& r, ResponseStream&) -> Result<Response> {
    ASSIGN_OR_RETURN(Json session, s.GetSession(r.params.at("id")));
    return JsonResponse(200, session);
  });
  add("DELETE", "/v1/sessions/{id}", [&s](Request& r, ResponseStream&) -> Result<Response> {
    ASSIGN_OR_RETURN(Json session, s.EndSession(r.params.at("id")));
    return JsonResponse(200, session);
  });
  add("POST", "/v1/sessions/{id}/files", [&s](Request& r, ResponseStream&) -> Result<Response> {
    const std::string& id = r.params.at("id");
    if (r.Header("content-type").rfind("application/json", 0) == 0) {
      std::string body;
      std::vector<char> chunk(64 << 10);
      for (;;) {
        ASSIGN_OR_RETURN(size_t n, r.body_reader->Read(chunk.data(), chunk.size()));
        if (n == 0) break;
        if (body.size() + n > (1 << 20)) return Status::InvalidArgument("the JSON body is too large");
        body.append(chunk.data(), n);
      }
      r.body = std::move(body);
      ASSIGN_OR_RETURN(Json parsed, ParseBody(r, {"file_ids"}));
      ASSIGN_OR_RETURN(auto ids, FileIds(parsed));
      ASSIGN_OR_RETURN(Json placed, s.PutSessionFiles(id, ids));
      return JsonResponse(200, placed);
    }
    // An upload straight into the session: stored as an input file, then placed.
    RETURN_IF_ERROR(s.RequireLive(id));
    auto file = ReceiveUpload(s, r);
    if (!file.ok()) return WithUploadReason(file.status());
    ASSIGN_OR_RETURN(Json placed, s.PutSessionFiles(id, {(*file)["id"].get<std::string>()}));
    return JsonResponse(201, placed);
  }, /*streams=*/true);
  add("GET", "/v1/sessions/{id}/files", [&s](Request& r, ResponseStream&) -> Result<Response> {
    ASSIGN_OR_RETURN(Json list, s.ListSessionFiles(r.params.at("id")));
    return JsonResponse(200, list);
  });
  add("POST", "/v1/sessions/{id}/executions", [&s](Request& r, ResponseStream& stream) {
    return Execute(s, r, stream);
  });
  add("GET", "/v1/sessions/{id}/executions", [&s](Request& r, ResponseStream&) -> Result<Response> {
    ASSIGN_OR_RETURN(store::Page page, PageFrom(r));
    ASSIGN_OR_RETURN(Json list, s.ListExecutions(r.params.at("id"), page));
    return JsonResponse(200, list);
  });
  add("GET", "/v1/executions/{id}", [&s](Request& r, ResponseStream&) -> Result<Response> {
    ASSIGN_OR_RETURN(std::string execution, s.GetExecution(r.params.at("id")));
    return Response::Json(200, std::move(execution));
  });
}

}  // namespace pycell::server
