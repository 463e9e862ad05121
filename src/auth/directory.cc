#include "auth/directory.h"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "auth/api_key.h"
#include "common/clock.h"
#include "common/ids.h"
#include "common/json_reader.h"
#include "common/logging.h"
#include "common/unique_fd.h"
#include "common/utf8.h"

namespace pycell::auth {
namespace {

using Json = nlohmann::json;

Json TimeOrNull(int64_t ms) {
  if (ms == 0) return nullptr;
  return FormatRfc3339Ms(ms);
}

bool IsProjectName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) return false;
  }
  return true;
}

Json QuotasJson(const store::ProjectRow& row) {
  auto or_null = [](auto v) { return v == 0 ? Json(nullptr) : Json(v); };
  return {{"concurrent_sessions", or_null(row.quota_concurrent_sessions)},
          {"sessions_per_day", or_null(row.quota_sessions_per_day)},
          {"cpu_hours_per_day", or_null(row.quota_cpu_hours_per_day)},
          {"storage_bytes", or_null(row.quota_storage_bytes)}};
}

void Apply(const ProjectSpec& spec, store::ProjectRow* row) {
  if (spec.share_sessions) row->share_sessions = *spec.share_sessions;
  if (spec.concurrent_sessions) row->quota_concurrent_sessions = *spec.concurrent_sessions;
  if (spec.sessions_per_day) row->quota_sessions_per_day = *spec.sessions_per_day;
  if (spec.cpu_hours_per_day) row->quota_cpu_hours_per_day = *spec.cpu_hours_per_day;
  if (spec.storage_bytes) row->quota_storage_bytes = *spec.storage_bytes;
}

}  // namespace

Result<ProjectSpec> ProjectSpecFromJson(const Json& body, bool creating) {
  if (!body.is_object()) return Status::InvalidArgument("the body must be a JSON object");
  ProjectSpec spec;
  for (const auto& [key, value] : body.items()) {
    if (key == "name") {
      if (!creating) return Status::InvalidArgument("a project's name cannot change");
      if (!value.is_string() || !IsProjectName(value.get<std::string>())) {
        return Status::InvalidArgument("name must be 1-64 characters of a-z, 0-9, '-' and '_'");
      }
      spec.name = value.get<std::string>();
    } else if (key == "share_sessions") {
      if (!value.is_boolean())
        return Status::InvalidArgument("share_sessions must be true or false");
      spec.share_sessions = value.get<bool>();
    } else if (key == "quotas") {
      if (!value.is_object()) return Status::InvalidArgument("quotas must be an object");
      for (const auto& [quota, limit] : value.items()) {
        // null or 0: no quota.
        if (!limit.is_null() && (!limit.is_number() || limit.get<double>() < 0)) {
          return Status::InvalidArgument("quotas." + quota + " must be a number ≥ 0 or null");
        }
        double v = limit.is_null() ? 0 : limit.get<double>();
        if (quota == "cpu_hours_per_day") {
          spec.cpu_hours_per_day = v;
          continue;
        }
        // The range first: a double past int64_t's range cast to it is undefined behaviour
        // (found by fuzz/v1_json_fuzz: a quota of 109223372036854775807, a double in JSON).
        if (v > 9e15 || v != static_cast<double>(static_cast<int64_t>(v))) {
          return Status::InvalidArgument("quotas." + quota + " must be a whole number");
        }
        int64_t n = static_cast<int64_t>(v);
        if (quota == "concurrent_sessions") {
          spec.concurrent_sessions = n;
        } else if (quota == "sessions_per_day") {
          spec.sessions_per_day = n;
        } else if (quota == "storage_bytes") {
          spec.storage_bytes = n;
        } else {
          return Status::InvalidArgument(
              "unknown quota \"" + quota +
              "\"; quotas: concurrent_sessions, sessions_per_day, cpu_hours_per_day, "
              "storage_bytes");
        }
      }
    } else {
      return Status::InvalidArgument("unknown field \"" + key +
                                     "\"; allowed: name, share_sessions, quotas");
    }
  }
  if (creating && spec.name.empty()) {
    return Status::InvalidArgument("name is required: 1-64 characters of a-z, 0-9, '-' and '_'");
  }
  return spec;
}

Result<store::ProjectRow> FindProject(store::MetadataStore& store, const std::string& id_or_name) {
  if (IsValidId(id_or_name, "proj_")) {
    auto row = store.GetProject(id_or_name);
    if (row.ok() || !row.status().IsNotFound()) return row;
  } else if (IsProjectName(id_or_name)) {
    auto row = store.GetProjectByName(id_or_name);
    if (row.ok() || !row.status().IsNotFound()) return row;
  }
  return Status::NotFound("no project " + id_or_name);
}

Result<store::ProjectRow> CreateProject(store::MetadataStore& store, const Caller& by,
                                        const ProjectSpec& spec, int64_t now_ms) {
  if (!IsProjectName(spec.name)) {
    return Status::InvalidArgument("name must be 1-64 characters of a-z, 0-9, '-' and '_'");
  }
  if (store.GetProjectByName(spec.name).ok()) {
    return Status::FailedPrecondition("a project named " + spec.name + " exists already")
        .WithReason("already_exists");
  }
  store::ProjectRow row;
  row.id = NewId("proj_");
  row.name = spec.name;
  row.created_at_ms = now_ms;
  Apply(spec, &row);
  store::Trail trail = AuditTrail(by, "project.create", row.id, now_ms, ProjectJson(row));
  trail.audit->project_id = row.id;  // The affected project: its auditors see it.
  RETURN_IF_ERROR(store.PutProject(row, trail));
  return row;
}

Result<store::ProjectRow> UpdateProject(store::MetadataStore& store, const Caller& by,
                                        const std::string& id_or_name, const ProjectSpec& spec,
                                        int64_t now_ms) {
  ASSIGN_OR_RETURN(store::ProjectRow row, FindProject(store, id_or_name));
  Apply(spec, &row);
  store::Trail trail = AuditTrail(by, "project.update", row.id, now_ms, ProjectJson(row));
  trail.audit->project_id = row.id;
  RETURN_IF_ERROR(store.PutProject(row, trail));
  return row;
}

Result<CreatedKey> CreateKey(store::MetadataStore& store, const Caller& by, const KeySpec& spec,
                             int64_t now_ms) {
  if (spec.principal.empty() || spec.principal.size() > 128 || !IsPrintableUtf8(spec.principal)) {
    return Status::InvalidArgument(
        "principal must be 1-128 printable characters (a person, a "
        "service or an agent)");
  }
  if (!ParseRole(spec.role)) {
    return Status::InvalidArgument("role must be admin, operator, user or auditor");
  }
  if (spec.all_projects && spec.role != "auditor") {
    return Status::InvalidArgument(
        "all_projects is for auditors (admins and operators see every "
        "project anyway; users see their own)");
  }
  ASSIGN_OR_RETURN(
      store::ProjectRow project,
      FindProject(store, spec.project.empty() ? store::kDefaultProjectId : spec.project));
  ASSIGN_OR_RETURN(IssuedKey issued, IssueKey());
  CreatedKey created;
  created.token = issued.token;
  store::KeyRow& row = created.row;
  row.id = issued.id;
  row.secret_sha256 = issued.secret_sha256;
  row.principal = spec.principal;
  row.project_id = project.id;
  row.role = spec.role;
  row.all_projects = spec.all_projects;
  row.created_at_ms = now_ms;
  row.created_by = by.principal;
  store::Trail trail = AuditTrail(by, "key.create", row.id, now_ms, KeyJson(row));
  trail.audit->project_id = row.project_id;
  RETURN_IF_ERROR(store.PutKey(row, trail));
  return created;
}

Result<store::KeyRow> RevokeKey(store::MetadataStore& store, const Caller& by,
                                const std::string& key_id, int64_t now_ms) {
  if (!IsValidId(key_id, "key_")) return Status::NotFound("no key " + key_id);
  auto found = store.GetKey(key_id);
  if (!found.ok()) {
    if (found.status().IsNotFound()) return Status::NotFound("no key " + key_id);
    return found.status();
  }
  store::KeyRow row = std::move(*found);
  if (row.revoked_at_ms != 0) return row;
  row.revoked_at_ms = now_ms;
  store::Trail trail = AuditTrail(by, "key.revoke", row.id, now_ms,
                                  {{"principal", row.principal}, {"role", row.role}});
  trail.audit->project_id = row.project_id;
  RETURN_IF_ERROR(store.PutKey(row, trail));
  return row;
}

Result<bool> Bootstrap(store::MetadataStore& store, const std::string& key_path, int64_t now_ms) {
  ASSIGN_OR_RETURN(int64_t keys, store.CountKeys());
  if (keys > 0) return false;
  KeySpec spec;
  spec.principal = "admin";
  spec.role = "admin";
  Caller bootstrap = Caller::System();
  bootstrap.principal = "bootstrap";
  ASSIGN_OR_RETURN(CreatedKey created, CreateKey(store, bootstrap, spec, now_ms));
  // A key file left by an earlier data dir would be a lie: replace it.
  ::unlink(key_path.c_str());
  UniqueFd fd(::open(key_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) return Status::FromErrno("creating " + key_path);
  std::string line = created.token + "\n";
  if (::write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()) ||
      ::fsync(fd.get()) != 0) {
    return Status::FromErrno("writing " + key_path);
  }
  // A warning so that it shows at the default log level: who holds this file holds the server.
  LOG_WARN(
      "created the first admin key ({}, principal admin) and wrote it to {} (mode 0600); "
      "use it with `pycell keys create` to make keys for people and agents",
      created.row.id, key_path);
  return true;
}

Result<std::vector<store::ProjectRow>> ListProjects(store::MetadataStore& store,
                                                    const Caller& caller) {
  ASSIGN_OR_RETURN(std::vector<store::ProjectRow> rows, store.ListProjects());
  std::erase_if(rows, [&](const store::ProjectRow& row) { return !SeesProject(caller, row.id); });
  return rows;
}

Result<std::vector<store::KeyRow>> ListKeys(store::MetadataStore& store, const std::string& project,
                                            bool include_revoked) {
  std::string project_id;
  if (!project.empty()) {
    ASSIGN_OR_RETURN(store::ProjectRow row, FindProject(store, project));
    project_id = row.id;
  }
  return store.ListKeys(project_id, include_revoked);
}

Json ProjectJson(const store::ProjectRow& row) {
  return {{"id", row.id},
          {"object", "project"},
          {"name", row.name},
          {"share_sessions", row.share_sessions},
          {"quotas", QuotasJson(row)},
          {"created_at", TimeOrNull(row.created_at_ms)}};
}

Json KeyJson(const store::KeyRow& row) {
  return {{"id", row.id},
          {"object", "key"},
          {"principal", row.principal},
          {"project_id", row.project_id},
          {"role", row.role},
          {"all_projects", row.all_projects},
          {"created_at", TimeOrNull(row.created_at_ms)},
          {"created_by", row.created_by},
          {"revoked_at", TimeOrNull(row.revoked_at_ms)}};
}

Json CreatedKeyJson(const CreatedKey& created) {
  Json key = KeyJson(created.row);
  key["key"] = created.token;
  return key;
}

namespace {
template <typename Row>
Json ListJson(const std::vector<Row>& rows, Json (*view)(const Row&)) {
  Json data = Json::array();
  for (const Row& row : rows) data.push_back(view(row));
  return Json{{"object", "list"}, {"data", std::move(data)}, {"has_more", false}};
}
}  // namespace

Json ProjectListJson(const std::vector<store::ProjectRow>& rows) {
  return ListJson(rows, &ProjectJson);
}

Json KeyListJson(const std::vector<store::KeyRow>& rows) { return ListJson(rows, &KeyJson); }

}  // namespace pycell::auth
