// The identity part: the caller, projects, keys and the scope of a query (identity.h).
#include "service/identity.h"

#include "auth/roles.h"
#include "common/ids.h"

namespace pycell::service {

int64_t Identity::NowMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_.WallNow().time_since_epoch())
      .count();
}

Result<CallerInfo> Identity::Me(const auth::Caller& caller) {
  CallerInfo me;
  ASSIGN_OR_RETURN(me.key, store_.GetKey(caller.key_id));
  ASSIGN_OR_RETURN(me.project, store_.GetProject(caller.project_id));
  return me;
}

Result<store::ProjectRow> Identity::CreateProject(const auth::Caller& caller,
                                                  const auth::ProjectSpec& spec) {
  return auth::CreateProject(store_, caller, spec, NowMs());
}

Result<store::ProjectRow> Identity::UpdateProject(const auth::Caller& caller,
                                                  const std::string& id_or_name,
                                                  const auth::ProjectSpec& spec) {
  return auth::UpdateProject(store_, caller, id_or_name, spec, NowMs());
}

Result<store::ProjectRow> Identity::GetProject(const auth::Caller& caller,
                                               const std::string& id_or_name) {
  auto row = auth::FindProject(store_, id_or_name);
  if (row.ok() && auth::SeesProject(caller, row->id)) return row;
  if (!row.ok() && !row.status().IsNotFound()) return row.status();
  return Status::NotFound("no project " + id_or_name);
}

Result<std::vector<store::ProjectRow>> Identity::ListProjects(const auth::Caller& caller) {
  return auth::ListProjects(store_, caller);
}

Result<auth::CreatedKey> Identity::CreateKey(const auth::Caller& caller,
                                             const auth::KeySpec& spec) {
  return auth::CreateKey(store_, caller, spec, NowMs());
}

Result<store::KeyRow> Identity::GetKey(const auth::Caller&, const std::string& id) {
  if (IsValidId(id, "key_")) {
    auto row = store_.GetKey(id);
    if (row.ok() || !row.status().IsNotFound()) return row;
  }
  return Status::NotFound("no key " + id);
}

Result<std::vector<store::KeyRow>> Identity::ListKeys(const auth::Caller&,
                                                      const std::string& project,
                                                      bool include_revoked) {
  return auth::ListKeys(store_, project, include_revoked);
}

Result<store::KeyRow> Identity::RevokeKey(const auth::Caller& caller, const std::string& id) {
  return auth::RevokeKey(store_, caller, id, NowMs());
}

Result<std::string> Identity::QueryScope(const auth::Caller& caller, const std::string& project) {
  std::string project_id;
  if (!project.empty()) {
    ASSIGN_OR_RETURN(store::ProjectRow found, GetProject(caller, project));
    project_id = found.id;
  }
  std::string own = auth::ProjectScope(caller);
  return own.empty() ? project_id : own;
}

}  // namespace pycell::service
