#include "server/aca_routes.h"

#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "aca/aca_api.h"
#include "aca/identifier_sessions.h"
#include "kernel/packages.h"
#include "server/upload_body.h"

namespace pycell::server {
namespace {

using aca::Contract;
using service::Json;
using service::Service;

Response JsonResponse(int status, const Json& j) {
  return Response::Json(status, j.dump(-1, ' ', false, Json::error_handler_t::replace));
}

Response NoContent() {
  Response r;
  r.status = 204;
  return r;
}

// The shared state of the routes: the service and the identifier map.
struct Aca {
  Service* service;
  aca::IdentifierSessions sessions;

  explicit Aca(Service* s)
      : service(s),
        sessions(
            [s](const auth::Caller& caller, const std::string& identifier) -> Result<std::string> {
              Json metadata = {{"aca_identifier", identifier}};
              service::CreateSessionRequest create;
              create.metadata = &metadata;
              ASSIGN_OR_RETURN(service::SessionInfo session, s->CreateSession(caller, create));
              return session.row.id;
            },
            [s](const auth::Caller& caller, const std::string& id) {
              return s->RequireLive(caller, id);
            }) {}

  // The contract the request's api-version asks for.
  static Result<Contract> ContractOf(const Request& r) {
    return aca::ParseApiVersion(r.Query("api-version"));
  }
  // The request's identifier, checked.
  static Result<std::string> IdentifierOf(const Request& r) {
    const std::string& identifier = r.Query("identifier");
    if (identifier.empty()) {
      return Status::InvalidArgument("identifier is required: ?identifier=<4-128 characters>");
    }
    RETURN_IF_ERROR(aca::CheckIdentifier(identifier));
    return identifier;
  }
  // The session the request's identifier names (made on first use when `create`).
  Result<std::string> SessionOf(const Request& r, bool create) {
    ASSIGN_OR_RETURN(std::string identifier, IdentifierOf(r));
    return sessions.Resolve(r.caller, identifier, create);
  }

  Result<session::ExecutionRecord> Run(Request& r, const std::string& session_id,
                                       const aca::ExecuteRequest& cell) {
    ASSIGN_OR_RETURN(service::ExecutionInfo execution,
                     service->Execute(r.caller, session_id, cell.code, cell.timeout));
    return std::move(execution.record);
  }

  // Streams a multipart body's part "file" into a new input file and places it into the
  // session's /mnt/data, replacing a file of its name as Azure does. Returns the placed file as
  // the session's listing shows it.
  Result<service::SessionFile> Upload(Request& r, const std::string& session_id) {
    UploadRules rules;
    rules.allow_raw = false;
    // Semantic Kernel and LlamaIndex send "/mnt/data/<name>" as the filename.
    rules.name_of = [](const std::string& sent) {
      return aca::SessionFileName(sent, /*top_level=*/true);
    };
    ASSIGN_OR_RETURN(ReceivedUpload upload, ReceiveUpload(*service, r, rules));
    RETURN_IF_ERROR(service->ReplaceSessionFile(r.caller, session_id, upload.file.id).status());
    ASSIGN_OR_RETURN(auto listing, service->ListSessionFiles(r.caller, session_id));
    return aca::FindFile(listing, upload.name);
  }

  Result<Response> Download(Request& r, const std::string& raw_name) {
    ASSIGN_OR_RETURN(std::string name, aca::SessionFileName(raw_name, /*top_level=*/false));
    ASSIGN_OR_RETURN(std::string session_id, SessionOf(r, /*create=*/false));
    ASSIGN_OR_RETURN(service::FileContent content,
                     service->OpenSessionFile(r.caller, session_id, name));
    Response response;
    response.headers = {{"Content-Type", content.row.media_type},
                        {"X-Content-Type-Options", "nosniff"},
                        {"Cache-Control", "private, no-cache"}};
    uint64_t bytes = static_cast<uint64_t>(content.row.bytes);
    response.file = FileBody{std::move(content.fd), 0, bytes};
    return response;
  }

  Result<Json> SessionJson(const auth::Caller& caller, const std::string& identifier,
                           const std::string& session_id) {
    ASSIGN_OR_RETURN(service::SessionInfo session, service->GetSession(caller, session_id));
    return aca::SessionResponse(session.row, identifier);
  }
};

}  // namespace

void AddAcaRoutes(Router* router, Service* service, const std::string& prefix) {
  auto aca = std::make_shared<Aca>(service);
  // The map keeps only identifiers whose sessions live: an ended session's is forgotten.
  service->AddEndListener([weak = std::weak_ptr<Aca>(aca)](const std::string& session_id) {
    if (auto live = weak.lock()) live->sessions.Prune(session_id);
  });
  using P = auth::Permission;
  auto add = [&](const char* method, const std::string& path, P permission, auto handler,
                 bool streams = false) {
    router->Add(Route{method, prefix + path, permission,
                      [aca, handler](Request& request, ResponseStream&) -> Result<Response> {
                        // Every route names a supported api-version, as Azure requires.
                        ASSIGN_OR_RETURN(Contract contract, Aca::ContractOf(request));
                        return handler(*aca, request, contract);
                      },
                      streams});
  };

  // --- the legacy contract (2024-02-02-preview, 2024-08-02-preview) ---
  add("POST", "/code/execute", P::kExecutionsRun,
      [](Aca& a, Request& r, Contract) -> Result<Response> {
        ASSIGN_OR_RETURN(aca::ExecuteRequest cell, aca::ParseLegacyExecute(r.body));
        ASSIGN_OR_RETURN(std::string session_id, a.SessionOf(r, /*create=*/true));
        ASSIGN_OR_RETURN(session::ExecutionRecord execution, a.Run(r, session_id, cell));
        return JsonResponse(200, aca::LegacyExecuteResponse(execution));
      });
  add(
      "POST", "/files/upload", P::kSessionsFiles,
      [](Aca& a, Request& r, Contract) -> Result<Response> {
        ASSIGN_OR_RETURN(std::string session_id, a.SessionOf(r, /*create=*/true));
        ASSIGN_OR_RETURN(service::SessionFile file, a.Upload(r, session_id));
        return JsonResponse(200, {{"value", Json::array({aca::LegacyFileEntry(file)})}});
      },
      /*streams=*/true);
  add("GET", "/files/content/{name}", P::kFilesContent,
      [](Aca& a, Request& r, Contract) { return a.Download(r, r.params.at("name")); });

  // --- both contracts: the listing's shape follows the api-version ---
  add("GET", "/files", P::kSessionsFiles, [](Aca& a, Request& r, Contract c) -> Result<Response> {
    ASSIGN_OR_RETURN(std::string session_id, a.SessionOf(r, /*create=*/true));
    ASSIGN_OR_RETURN(auto listing, a.service->ListSessionFiles(r.caller, session_id));
    return JsonResponse(200, aca::FileList(listing, c));
  });
  add("GET", "/files/{name}", P::kSessionsFiles,
      [](Aca& a, Request& r, Contract c) -> Result<Response> {
        ASSIGN_OR_RETURN(std::string name,
                         aca::SessionFileName(r.params.at("name"), /*top_level=*/false));
        ASSIGN_OR_RETURN(std::string session_id, a.SessionOf(r, /*create=*/false));
        ASSIGN_OR_RETURN(auto listing, a.service->ListSessionFiles(r.caller, session_id));
        ASSIGN_OR_RETURN(service::SessionFile file, aca::FindFile(listing, name));
        if (c == Contract::kLegacy) {
          return JsonResponse(200, {{"value", Json::array({aca::LegacyFileEntry(file)})}});
        }
        return JsonResponse(200, aca::CurrentFileEntry(file));
      });
  add("DELETE", "/files/{name}", P::kSessionsFiles,
      [](Aca& a, Request& r, Contract) -> Result<Response> {
        ASSIGN_OR_RETURN(std::string name,
                         aca::SessionFileName(r.params.at("name"), /*top_level=*/false));
        ASSIGN_OR_RETURN(std::string session_id, a.SessionOf(r, /*create=*/false));
        RETURN_IF_ERROR(a.service->RemoveSessionFile(r.caller, session_id, name).status());
        return NoContent();
      });

  // --- the current contract (2024-10-02-preview and later) ---
  add("POST", "/executions", P::kExecutionsRun,
      [](Aca& a, Request& r, Contract) -> Result<Response> {
        ASSIGN_OR_RETURN(aca::ExecuteRequest cell, aca::ParseExecution(r.body));
        ASSIGN_OR_RETURN(std::string identifier, Aca::IdentifierOf(r));
        ASSIGN_OR_RETURN(std::string session_id, a.sessions.Resolve(r.caller, identifier, true));
        ASSIGN_OR_RETURN(session::ExecutionRecord execution, a.Run(r, session_id, cell));
        // 202 as Microsoft's samples answer both execution types; an asynchronous one has
        // already finished (pycell runs it before answering), so polling sees it done.
        Response response =
            JsonResponse(202, aca::ExecutionResponse(execution, identifier, cell.asynchronous,
                                                     cell.output_streams_max_length));
        response.headers.push_back({"Operation-Id", execution.id});
        return response;
      });
  add("GET", "/executions/{id}", P::kExecutionsRead,
      [](Aca& a, Request& r, Contract) -> Result<Response> {
        ASSIGN_OR_RETURN(std::string identifier, Aca::IdentifierOf(r));
        ASSIGN_OR_RETURN(std::string session_id, a.sessions.Resolve(r.caller, identifier, false));
        const std::string& id = r.params.at("id");
        ASSIGN_OR_RETURN(service::ExecutionInfo execution, a.service->GetExecution(r.caller, id));
        if (execution.record.session_id != session_id) {
          return Status::NotFound("no execution " + id + " in the session of " + identifier);
        }
        return JsonResponse(200, aca::ExecutionResponse(execution.record, identifier, false));
      });
  add(
      "POST", "/files", P::kSessionsFiles,
      [](Aca& a, Request& r, Contract c) -> Result<Response> {
        ASSIGN_OR_RETURN(std::string session_id, a.SessionOf(r, /*create=*/true));
        ASSIGN_OR_RETURN(service::SessionFile file, a.Upload(r, session_id));
        if (c == Contract::kLegacy) {
          return JsonResponse(200, {{"value", Json::array({aca::LegacyFileEntry(file)})}});
        }
        return JsonResponse(200, aca::CurrentFileEntry(file));
      },
      /*streams=*/true);
  add("GET", "/files/{name}/content", P::kFilesContent,
      [](Aca& a, Request& r, Contract) { return a.Download(r, r.params.at("name")); });
  add("GET", "/session", P::kSessionsRead, [](Aca& a, Request& r, Contract) -> Result<Response> {
    ASSIGN_OR_RETURN(std::string identifier, Aca::IdentifierOf(r));
    ASSIGN_OR_RETURN(std::string session_id, a.sessions.Resolve(r.caller, identifier, false));
    ASSIGN_OR_RETURN(Json session, a.SessionJson(r.caller, identifier, session_id));
    return JsonResponse(200, session);
  });
  add("DELETE", "/session", P::kSessionsEnd, [](Aca& a, Request& r, Contract) -> Result<Response> {
    ASSIGN_OR_RETURN(std::string identifier, Aca::IdentifierOf(r));
    ASSIGN_OR_RETURN(std::string session_id, a.sessions.Resolve(r.caller, identifier, false));
    RETURN_IF_ERROR(a.service->EndSession(r.caller, session_id).status());
    a.sessions.Forget(r.caller, identifier);
    return NoContent();
  });
  add("GET", "/listSessions", P::kSessionsRead,
      [](Aca& a, Request& r, Contract) -> Result<Response> {
        std::vector<Json> sessions;
        for (const auto& [identifier, session_id] : a.sessions.List(r.caller)) {
          auto session = a.SessionJson(r.caller, identifier, session_id);
          if (session.ok()) sessions.push_back(std::move(*session));  // Ended meanwhile: skip.
        }
        return JsonResponse(200, aca::SessionList(sessions));
      });
  add("GET", "/metadata", P::kSessionsRead, [](Aca& a, Request&, Contract) -> Result<Response> {
    // The default environment (kernel/packages.h): what every session can import; those the
    // default pool's zygote preloads are marked, they import at once.
    auto config = a.service->LiveConfig();
    std::set<std::string> preloaded;
    for (const PoolConfig& pool : config->pools) {
      if (pool.name == "default") preloaded.insert(pool.preload.begin(), pool.preload.end());
    }
    Json packages = Json::array();
    for (const kernel::Package& p : kernel::DefaultPackages()) {
      packages.push_back(
          {{"name", p.import_name},
           {"distribution", p.distribution.empty() ? Json(nullptr) : Json(p.distribution)},
           {"debian", p.debian},
           {"description", p.purpose},
           {"preloaded", preloaded.count(p.import_name) > 0}});
    }
    return JsonResponse(200,
                        {{"language", "Python"},
                         {"runtime", {{"name", "python"}, {"interpreter", config->engine.python}}},
                         {"pool", "default"},
                         {"preinstalledPackages", packages}});
  });
}

}  // namespace pycell::server
