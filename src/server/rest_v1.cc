#include "server/rest_v1.h"

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/json_reader.h"
#include "server/request_parsing.h"
#include "server/upload_body.h"
#include "service/v1_views.h"
#include "session/execution.h"

namespace pycell::server {
namespace {

using service::Json;
using service::Service;

Response JsonResponse(int status, const Json& j) {
  return Response::Json(status, j.dump(-1, ' ', false, Json::error_handler_t::replace));
}

std::vector<std::pair<std::string, std::string>> SseHeaders() {
  return {{"Content-Type", "text/event-stream"}, {"Cache-Control", "no-store"}};
}

std::string SseEvent(const std::string& event, const Json& data) {
  return "event: " + event +
         "\ndata: " + data.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n\n";
}

// The handler of a route that answers `status` with view(call(caller, the path's {id})): the
// shape most GET and DELETE routes share. `view` makes the /v1 object of the call's result.
// `part` is the Service or one of its parts (the identity part).
template <typename Part, typename Call, typename View>
auto ById(Part& part, int status, Call call, View view) {
  return [&part, status, call, view](Request& r, ResponseStream&) -> Result<Response> {
    ASSIGN_OR_RETURN(auto result, (part.*call)(r.caller, r.params.at("id")));
    return JsonResponse(status, view(result));
  };
}

bool WantsEventStream(const Request& request) {
  return request.Header("accept").find("text/event-stream") != std::string::npos;
}

// --- files ----------------------------------------------------------------------------------

Result<Response> FileContentResponse(Service& service, const Request& request) {
  ASSIGN_OR_RETURN(service::FileContent content,
                   service.OpenFile(request.caller, request.params.at("id")));
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
    Response e = ErrorResponse(Status::InvalidArgument("the range is outside the file of " +
                                                       std::to_string(size) + " bytes"));
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
  // Audited before the first byte goes out: a download whose event cannot be written fails.
  // HEAD sends no bytes: it is not a download.
  if (request.method != "HEAD") {
    RETURN_IF_ERROR(service.RecordDownload(request.caller, content.row, body.length));
  }
  r.file = std::move(body);
  return r;
}

// --- sessions -------------------------------------------------------------------------------

Result<Response> Execute(Service& service, Request& request, ResponseStream& stream) {
  ASSIGN_OR_RETURN(Json body, ParseBody(request, {"code", "timeout_s"}));
  if (!body.contains("code") || !body["code"].is_string()) {
    return Status::InvalidArgument("code is required: a string of Python");
  }
  ASSIGN_OR_RETURN(std::optional<std::chrono::seconds> timeout,
                   OptionalTimeoutField(body, "timeout_s", "the request body"));
  const std::string& id = request.params.at("id");
  std::string code = body["code"].get<std::string>();
  if (!WantsEventStream(request)) {
    ASSIGN_OR_RETURN(service::ExecutionInfo done,
                     service.Execute(request.caller, id, code, timeout));
    return Response::Json(200, std::move(done.json));
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
  auto record = service.Execute(request.caller, id, code, timeout, observer);
  if (!record.ok()) {
    if (!stream.begun()) return record.status();
    send("error",
         {{"error",
           {{"code", ErrorCodeFor(record.status())}, {"message", record.status().message()}}}});
  } else {
    if (!stream.begun() && !stream.Begin(200, SseHeaders()).ok()) return Response{.streamed = true};
    (void)stream.Write("event: execution\ndata: " + record->json + "\n\n");
  }
  Response done;
  done.streamed = true;
  return done;
}

// A time query parameter (RFC 3339 or a date), or `fallback` when absent.
// GET /v1/evidence: a signed bundle (docs/evidence.md) of ?session=ID, or of ?from=&to=.
Result<Response> EvidenceResponse(Service& service, const Request& request) {
  service::EvidenceRequest evidence;
  evidence.session_id = request.Query("session");
  ASSIGN_OR_RETURN(evidence.from_ms, TimeQuery(request, "from", 0));
  ASSIGN_OR_RETURN(evidence.to_ms, TimeQuery(request, "to", 0));
  bool has_period = evidence.from_ms != 0 || evidence.to_ms != 0;
  if (evidence.session_id.empty() == !has_period) {
    return Status::InvalidArgument("give either session=ID or from=…&to=… (RFC 3339 times)");
  }
  if (has_period && (evidence.from_ms == 0 || evidence.to_ms == 0)) {
    return Status::InvalidArgument("a period needs both from and to");
  }
  const std::string& with_files = request.Query("with_files");
  if (!with_files.empty() && with_files != "true" && with_files != "false") {
    return Status::InvalidArgument("with_files must be true or false");
  }
  evidence.with_files = with_files == "true";
  ASSIGN_OR_RETURN(service::EvidenceBundle bundle,
                   service.ExportEvidence(request.caller, evidence));
  Response r;
  r.headers = {{"Content-Type", "application/gzip"},
               {"Content-Disposition", ContentDisposition(bundle.filename)},
               {"X-Evidence-Manifest-Sha256", bundle.manifest_sha256},
               {"Cache-Control", "no-store"}};
  r.file = FileBody{std::move(bundle.fd), 0, bundle.bytes};
  return r;
}

}  // namespace

void AddRestV1Routes(Router* router, Service* service, const std::string* openapi_json) {
  Service& s = *service;
  using P = auth::Permission;
  auto add = [&](const char* method, const char* pattern, P permission, auto handler,
                 bool streams = false) {
    router->Add(Route{method, pattern, permission,
                      [handler](Request& request, ResponseStream& stream) -> Result<Response> {
                        return handler(request, stream);
                      },
                      streams});
  };
  router->SetAuthentication(
      [&s](const Request& r) {
        return s.authenticator().Authenticate(r.Header("authorization"), r.peer, r.request_id);
      },
      [&s](const auth::Caller& caller, const Route& route) {
        return s.authenticator().Deny(caller, route.permission, route.method + " " + route.pattern);
      });

  // --- the route table ---
  add("GET", "/healthz", P::kPublic, [](Request&, ResponseStream&) -> Result<Response> {
    return JsonResponse(200, {{"status", "ok"}});
  });
  add("GET", "/readyz", P::kPublic, [&s](Request&, ResponseStream&) -> Result<Response> {
    if (!s.Ready()) {
      return Status::Unavailable("the warm pool is still filling; retry shortly");
    }
    return JsonResponse(200, {{"status", "ready"}});
  });
  add("GET", "/openapi.json", P::kPublic,
      [openapi_json](Request&, ResponseStream&) -> Result<Response> {
        return Response::Json(200, *openapi_json);
      });

  add(
      "POST", "/v1/files", P::kFilesWrite,
      [&s](Request& r, ResponseStream&) -> Result<Response> {
        ASSIGN_OR_RETURN(ReceivedUpload upload, ReceiveUpload(s, r));
        return JsonResponse(201, service::FileView(upload.file));
      },
      /*streams=*/true);
  add("GET", "/v1/files", P::kFilesRead, [&s](Request& r, ResponseStream&) -> Result<Response> {
    ASSIGN_OR_RETURN(store::Page page, PageFrom(r));
    store::FileFilter filter{.purpose = r.Query("purpose"),
                             .session_id = r.Query("session_id"),
                             .execution_id = r.Query("execution_id")};
    if (!r.Query("project").empty()) {
      ASSIGN_OR_RETURN(store::ProjectRow project,
                       s.identity().GetProject(r.caller, r.Query("project")));
      filter.project_id = project.id;
    }
    if (!filter.purpose.empty() && filter.purpose != "input" && filter.purpose != "output") {
      return Status::InvalidArgument("purpose must be input or output");
    }
    ASSIGN_OR_RETURN(auto list, s.ListFiles(r.caller, filter, page));
    return JsonResponse(200, service::ListView(list, service::FileView));
  });
  add("GET", "/v1/files/{id}", P::kFilesRead, ById(s, 200, &Service::GetFile, service::FileView));
  add("GET", "/v1/files/{id}/content", P::kFilesContent,
      [&s](Request& r, ResponseStream&) { return FileContentResponse(s, r); });
  add("GET", "/v1/files/{id}/lineage", P::kLineageRead,
      ById(s, 200, &Service::Lineage, service::LineageView));
  add("DELETE", "/v1/files/{id}", P::kFilesWrite,
      [&s](Request& r, ResponseStream&) -> Result<Response> {
        const std::string& id = r.params.at("id");
        RETURN_IF_ERROR(s.DeleteFile(r.caller, id));
        return JsonResponse(200, {{"id", id}, {"object", "file"}, {"deleted", true}});
      });

  add("POST", "/v1/sessions", P::kSessionsCreate,
      [&s](Request& r, ResponseStream&) -> Result<Response> {
        ASSIGN_OR_RETURN(Json body,
                         ParseBody(r, {"pool", "file_ids", "limits", "metadata", "restore_from"}));
        if (body.contains("restore_from") && !body["restore_from"].is_null()) {
          if (!body["restore_from"].is_string())
            return Status::InvalidArgument("restore_from must be a session id");
          if (body.size() > 1) {
            return Status::InvalidArgument(
                "restore_from takes the pool, limits, files and metadata "
                "from the old session; send it alone");
          }
          ASSIGN_OR_RETURN(service::RestoredSession restored,
                           s.RestoreSession(r.caller, body["restore_from"].get<std::string>()));
          return JsonResponse(201, service::RestoredSessionView(restored));
        }
        ASSIGN_OR_RETURN(service::CreateSessionRequest create,
                         service::CreateSessionRequestFromJson(body));
        ASSIGN_OR_RETURN(service::SessionInfo session, s.CreateSession(r.caller, create));
        return JsonResponse(201, service::SessionView(session));
      });
  add("GET", "/v1/sessions", P::kSessionsRead,
      [&s](Request& r, ResponseStream&) -> Result<Response> {
        ASSIGN_OR_RETURN(store::Page page, PageFrom(r));
        const std::string& status = r.Query("status");
        if (!status.empty() && status != "active" && status != "ended") {
          return Status::InvalidArgument("status must be active or ended");
        }
        ASSIGN_OR_RETURN(auto list, s.ListSessions(r.caller, status, r.Query("project"), page));
        return JsonResponse(200, service::ListView(list, service::SessionView));
      });
  add("GET", "/v1/sessions/{id}", P::kSessionsRead,
      ById(s, 200, &Service::GetSession, service::SessionView));
  add("DELETE", "/v1/sessions/{id}", P::kSessionsEnd,
      ById(s, 200, &Service::EndSession, service::SessionView));
  add(
      "POST", "/v1/sessions/{id}/files", P::kSessionsFiles,
      [&s](Request& r, ResponseStream&) -> Result<Response> {
        const std::string& id = r.params.at("id");
        if (r.Header("content-type").rfind("application/json", 0) == 0) {
          std::string body;
          std::vector<char> chunk(64 << 10);
          for (;;) {
            ASSIGN_OR_RETURN(size_t n, r.body_reader->Read(chunk.data(), chunk.size()));
            if (n == 0) break;
            if (body.size() + n > (1 << 20))
              return Status::InvalidArgument("the JSON body is too large");
            body.append(chunk.data(), n);
          }
          r.body = std::move(body);
          ASSIGN_OR_RETURN(Json parsed, ParseBody(r, {"file_ids"}));
          ASSIGN_OR_RETURN(auto ids, service::FileIdsFromJson(parsed));
          ASSIGN_OR_RETURN(auto placed, s.PutSessionFiles(r.caller, id, ids));
          return JsonResponse(200, service::PlacedFilesView(placed));
        }
        // An upload straight into the session: stored as an input file, then placed.
        RETURN_IF_ERROR(s.RequireLive(r.caller, id));
        ASSIGN_OR_RETURN(ReceivedUpload upload, ReceiveUpload(s, r));
        ASSIGN_OR_RETURN(auto placed, s.PutSessionFiles(r.caller, id, {upload.file.id}));
        return JsonResponse(201, service::PlacedFilesView(placed));
      },
      /*streams=*/true);
  add("GET", "/v1/sessions/{id}/files", P::kSessionsFiles,
      ById(s, 200, &Service::ListSessionFiles, service::SessionFilesView));
  add("DELETE", "/v1/sessions/{id}/files/{name}", P::kSessionsFiles,
      [&s](Request& r, ResponseStream&) -> Result<Response> {
        ASSIGN_OR_RETURN(std::string removed,
                         s.RemoveSessionFile(r.caller, r.params.at("id"), r.params.at("name")));
        return JsonResponse(200, service::RemovedSessionFileView(removed));
      });
  add("POST", "/v1/sessions/{id}/executions", P::kExecutionsRun,
      [&s](Request& r, ResponseStream& stream) { return Execute(s, r, stream); });
  add("GET", "/v1/sessions/{id}/executions", P::kExecutionsRead,
      [&s](Request& r, ResponseStream&) -> Result<Response> {
        ASSIGN_OR_RETURN(store::Page page, PageFrom(r));
        ASSIGN_OR_RETURN(auto list, s.ListExecutions(r.caller, r.params.at("id"), page));
        return JsonResponse(200, service::ListView(list, service::ExecutionView));
      });
  add("POST", "/v1/sessions/{id}/replay", P::kExecutionsRun,
      [&s](Request& r, ResponseStream&) -> Result<Response> {
        ASSIGN_OR_RETURN(Json body, ParseBody(r, {"keep"}));
        if (body.contains("keep") && !body["keep"].is_boolean())
          return Status::InvalidArgument("keep must be true or false");
        ASSIGN_OR_RETURN(service::ReplayReport report,
                         s.Replay(r.caller, r.params.at("id"), body.value("keep", false)));
        return JsonResponse(200, service::ReplayView(report));
      });
  add("POST", "/v1/sessions/{id}/fork", P::kSessionsCreate,
      [&s](Request& r, ResponseStream&) -> Result<Response> {
        ASSIGN_OR_RETURN(Json body, ParseBody(r, {}));
        (void)body;
        ASSIGN_OR_RETURN(service::SessionInfo session, s.ForkSession(r.caller, r.params.at("id")));
        return JsonResponse(201, service::SessionView(session));
      });
  add("GET", "/v1/sessions/{id}/notebook", P::kExecutionsRead,
      [&s](Request& r, ResponseStream&) -> Result<Response> {
        ASSIGN_OR_RETURN(Json notebook, s.Notebook(r.caller, r.params.at("id")));
        Response response = JsonResponse(200, notebook);
        response.headers.push_back(
            {"Content-Disposition", ContentDisposition(r.params.at("id") + ".ipynb")});
        return response;
      });
  add("GET", "/v1/executions/{id}", P::kExecutionsRead,
      [&s](Request& r, ResponseStream&) -> Result<Response> {
        ASSIGN_OR_RETURN(service::ExecutionInfo execution,
                         s.GetExecution(r.caller, r.params.at("id")));
        return Response::Json(200, std::move(execution.json));
      });

  // --- identity, projects, keys ---
  add("GET", "/v1/me", P::kWhoAmI, [&s](Request& r, ResponseStream&) -> Result<Response> {
    ASSIGN_OR_RETURN(service::CallerInfo me, s.identity().Me(r.caller));
    Json body = auth::KeyJson(me.key);
    body["project"] = auth::ProjectJson(me.project);
    return JsonResponse(200, body);
  });
  add("POST", "/v1/projects", P::kProjectsManage,
      [&s](Request& r, ResponseStream&) -> Result<Response> {
        ASSIGN_OR_RETURN(Json body, ParseObject(r));
        ASSIGN_OR_RETURN(auth::ProjectSpec spec,
                         auth::ProjectSpecFromJson(body, /*creating=*/true));
        ASSIGN_OR_RETURN(store::ProjectRow project, s.identity().CreateProject(r.caller, spec));
        return JsonResponse(201, auth::ProjectJson(project));
      });
  add("GET", "/v1/projects", P::kProjectsRead,
      [&s](Request& r, ResponseStream&) -> Result<Response> {
        ASSIGN_OR_RETURN(auto projects, s.identity().ListProjects(r.caller));
        return JsonResponse(200, auth::ProjectListJson(projects));
      });
  add("GET", "/v1/projects/{id}", P::kProjectsRead,
      ById(s.identity(), 200, &service::Identity::GetProject, auth::ProjectJson));
  add("PATCH", "/v1/projects/{id}", P::kProjectsManage,
      [&s](Request& r, ResponseStream&) -> Result<Response> {
        ASSIGN_OR_RETURN(Json body, ParseObject(r));
        ASSIGN_OR_RETURN(auth::ProjectSpec spec,
                         auth::ProjectSpecFromJson(body, /*creating=*/false));
        ASSIGN_OR_RETURN(store::ProjectRow project,
                         s.identity().UpdateProject(r.caller, r.params.at("id"), spec));
        return JsonResponse(200, auth::ProjectJson(project));
      });
  add("POST", "/v1/keys", P::kKeysManage, [&s](Request& r, ResponseStream&) -> Result<Response> {
    ASSIGN_OR_RETURN(auth::KeySpec spec, KeySpecFrom(r));
    ASSIGN_OR_RETURN(auth::CreatedKey key, s.identity().CreateKey(r.caller, spec));
    return JsonResponse(201, auth::CreatedKeyJson(key));
  });
  add("GET", "/v1/keys", P::kKeysManage, [&s](Request& r, ResponseStream&) -> Result<Response> {
    const std::string& revoked = r.Query("include_revoked");
    if (!revoked.empty() && revoked != "true" && revoked != "false") {
      return Status::InvalidArgument("include_revoked must be true or false");
    }
    ASSIGN_OR_RETURN(auto keys,
                     s.identity().ListKeys(r.caller, r.Query("project"), revoked == "true"));
    return JsonResponse(200, auth::KeyListJson(keys));
  });
  add("GET", "/v1/keys/{id}", P::kKeysManage,
      ById(s.identity(), 200, &service::Identity::GetKey, auth::KeyJson));
  add("DELETE", "/v1/keys/{id}", P::kKeysManage,
      ById(s.identity(), 200, &service::Identity::RevokeKey, auth::KeyJson));

  // --- evidence: audit and usage ---
  add("GET", "/v1/audit", P::kAuditRead, [&s](Request& r, ResponseStream&) -> Result<Response> {
    ASSIGN_OR_RETURN(store::AuditFilter filter, AuditFilterFrom(r));
    ASSIGN_OR_RETURN(auto events, s.ListAudit(r.caller, filter, r.Query("project")));
    return JsonResponse(200, service::AuditListView(events));
  });
  add("GET", "/v1/evidence", P::kEvidenceExport,
      [&s](Request& r, ResponseStream&) { return EvidenceResponse(s, r); });
  add("GET", "/v1/evidence/public-key", P::kWhoAmI,
      [&s](Request&, ResponseStream&) -> Result<Response> {
        return JsonResponse(200, service::EvidenceKeyView(s.EvidencePublicKey()));
      });
  add("GET", "/v1/usage", P::kUsageRead, [&s](Request& r, ResponseStream&) -> Result<Response> {
    // Default period: this UTC month so far.
    int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    ASSIGN_OR_RETURN(int64_t month_start,
                     ParseRfc3339Ms(FormatRfc3339(std::chrono::system_clock::time_point(
                                                      std::chrono::milliseconds(now)))
                                        .substr(0, 8) +
                                    "01"));
    ASSIGN_OR_RETURN(int64_t from, TimeQuery(r, "from", month_start));
    ASSIGN_OR_RETURN(int64_t to, TimeQuery(r, "to", now + 1));
    std::string group_by = r.Query("group_by").empty() ? "project" : r.Query("group_by");
    ASSIGN_OR_RETURN(usage::Report usage,
                     s.Usage(r.caller, group_by, from, to, r.Query("project")));
    return JsonResponse(200, usage::ReportJson(usage));
  });

  // --- operations ---
  AddMetricsRoute(router, service, P::kMetricsRead);
  add("GET", "/v1/pools", P::kPoolsRead, [&s](Request&, ResponseStream&) -> Result<Response> {
    return JsonResponse(200, service::PoolsView(s.Pools()));
  });
  add("GET", "/v1/config", P::kConfigRead, [&s](Request&, ResponseStream&) -> Result<Response> {
    return JsonResponse(200, service::ConfigView(*s.LiveConfig()));
  });
  add("GET", "/v1/diagnostic-settings", P::kConfigRead,
      [&s](Request&, ResponseStream&) -> Result<Response> {
        return JsonResponse(200, service::DiagnosticSettingsView(s.DiagnosticSettings()));
      });
  add("GET", "/v1/service", P::kConfigRead, [&s](Request&, ResponseStream&) -> Result<Response> {
    ASSIGN_OR_RETURN(service::ServiceStatus status, s.GetStatus());
    return JsonResponse(200, service::ServiceStatusView(status));
  });
}

void AddMetricsRoute(Router* router, Service* service, auth::Permission permission) {
  router->Add(Route{"GET", "/metrics", permission,
                    [service](Request&, ResponseStream&) -> Result<Response> {
                      Response r;
                      r.headers = {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"},
                                   {"Cache-Control", "no-store"}};
                      r.body = service->metrics().Scrape();
                      return r;
                    },
                    false});
}

}  // namespace pycell::server
