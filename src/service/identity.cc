// The identity part of the Service: who the caller is, projects, keys, the audit log and
// usage.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "common/build_info.h"
#include "common/config_json.h"
#include "common/crypto.h"
#include "common/fs.h"
#include "common/ids.h"
#include "common/json_reader.h"
#include "common/logging.h"
#include "common/utf8.h"
#include "files/media_type.h"
#include "sandbox/host_probe.h"
#include "service/service.h"
#include "service/service_json.h"
#include "usage/quota.h"
#include "usage/usage.h"

namespace pycell::service {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::seconds;

// --- identity, audit, usage -------------------------------------------------------------------

Result<Json> Service::Me(const auth::Caller& caller) {
  ASSIGN_OR_RETURN(store::KeyRow key, store_->GetKey(caller.key_id));
  ASSIGN_OR_RETURN(store::ProjectRow project, store_->GetProject(caller.project_id));
  Json me = auth::KeyJson(key);
  me["project"] = auth::ProjectJson(project);
  return me;
}

Result<Json> Service::CreateProject(const auth::Caller& caller, const auth::ProjectSpec& spec) {
  ASSIGN_OR_RETURN(store::ProjectRow row, auth::CreateProject(*store_, caller, spec, NowMs()));
  return auth::ProjectJson(row);
}

Result<Json> Service::UpdateProject(const auth::Caller& caller, const std::string& id_or_name,
                                    const auth::ProjectSpec& spec) {
  ASSIGN_OR_RETURN(store::ProjectRow row,
                   auth::UpdateProject(*store_, caller, id_or_name, spec, NowMs()));
  return auth::ProjectJson(row);
}

Result<Json> Service::GetProject(const auth::Caller& caller, const std::string& id_or_name) {
  auto row = auth::FindProject(*store_, id_or_name);
  if (!row.ok() || !auth::SeesProject(caller, row->id)) {
    if (row.ok() || row.status().IsNotFound()) return Status::NotFound("no project " + id_or_name);
    return row.status();
  }
  return auth::ProjectJson(*row);
}

Result<Json> Service::ListProjects(const auth::Caller& caller) {
  return auth::ProjectList(*store_, caller);
}

Result<Json> Service::CreateKey(const auth::Caller& caller, const auth::KeySpec& spec) {
  ASSIGN_OR_RETURN(auth::CreatedKey created, auth::CreateKey(*store_, caller, spec, NowMs()));
  Json key = auth::KeyJson(created.row);
  key["key"] = created.token;
  return key;
}

Result<Json> Service::GetKey(const auth::Caller&, const std::string& id) {
  if (IsValidId(id, "key_")) {
    auto row = store_->GetKey(id);
    if (row.ok()) return auth::KeyJson(*row);
    if (!row.status().IsNotFound()) return row.status();
  }
  return Status::NotFound("no key " + id);
}

Result<Json> Service::ListKeys(const auth::Caller&, const std::string& project,
                               bool include_revoked) {
  return auth::KeyList(*store_, project, include_revoked);
}

Result<Json> Service::RevokeKey(const auth::Caller& caller, const std::string& id) {
  ASSIGN_OR_RETURN(store::KeyRow row, auth::RevokeKey(*store_, caller, id, NowMs()));
  return auth::KeyJson(row);
}

Result<Json> Service::ListAudit(const auth::Caller& caller, store::AuditFilter filter,
                                const std::string& project) {
  if (!project.empty()) {
    auto found = auth::FindProject(*store_, project);
    if (!found.ok() || !auth::SeesProject(caller, found->id)) {
      return Status::NotFound("no project " + project);
    }
    filter.project_id = found->id;
  }
  std::string scope = auth::ProjectScope(caller);
  if (!scope.empty()) filter.project_id = scope;
  int limit = filter.limit;
  filter.limit = limit + 1;
  ASSIGN_OR_RETURN(auto events, store_->ListAudit(filter));
  bool more = events.size() > static_cast<size_t>(limit);
  if (more) events.resize(static_cast<size_t>(limit));
  Json data = Json::array();
  for (const audit::AuditEvent& e : events) data.push_back(audit::EventToJson(e));
  return Json{{"object", "list"},
              {"data", data},
              {"has_more", more},
              {"last_seq", events.empty() ? Json(nullptr) : Json(events.back().seq)}};
}

Result<Json> Service::Usage(const auth::Caller& caller, const std::string& group_by,
                            int64_t from_ms, int64_t to_ms, const std::string& project) {
  usage::UsageQuery query;
  query.group_by = group_by;
  query.from_ms = from_ms;
  query.to_ms = to_ms;
  if (!project.empty()) {
    auto found = auth::FindProject(*store_, project);
    if (!found.ok() || !auth::SeesProject(caller, found->id)) {
      return Status::NotFound("no project " + project);
    }
    query.project_id = found->id;
  }
  std::string scope = auth::ProjectScope(caller);
  if (!scope.empty()) query.project_id = scope;
  return usage::Report(*store_, LiveConfig()->prices, query, NowMs());
}

}  // namespace pycell::service
