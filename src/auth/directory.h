// Directory: projects and API keys — create, change, revoke, list — each change written with its
// audit event. Service calls these for the API (/v1/projects, /v1/keys); the CLI calls them
// directly on a data dir when the server is down (`pycell keys create --data-dir …`). The JSON
// shapes are the API's (docs/access.md).
//
// Thread-safety: functions over a thread-safe store.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "auth/caller.h"
#include "common/status.h"
#include "store/metadata_store.h"

namespace pycell::auth {

// Fields to set; unset ones keep their value (or the default, on create).
struct ProjectSpec {
  std::string name;  // Create only.
  std::optional<bool> share_sessions;
  std::optional<int64_t> concurrent_sessions;
  std::optional<int64_t> sessions_per_day;
  std::optional<double> cpu_hours_per_day;
  std::optional<int64_t> storage_bytes;
};
// From a request body {"name", "share_sessions", "quotas": {…}}; InvalidArgument naming the
// field. `creating` requires the name and refuses it otherwise.
Result<ProjectSpec> ProjectSpecFromJson(const nlohmann::json& body, bool creating);

Result<store::ProjectRow> CreateProject(store::MetadataStore& store, const Caller& by,
                                        const ProjectSpec& spec, int64_t now_ms);
Result<store::ProjectRow> UpdateProject(store::MetadataStore& store, const Caller& by,
                                        const std::string& id_or_name, const ProjectSpec& spec,
                                        int64_t now_ms);
// By id (proj_…) or name; NotFound otherwise.
Result<store::ProjectRow> FindProject(store::MetadataStore& store, const std::string& id_or_name);

struct KeySpec {
  std::string principal;  // 1-128 printable characters.
  std::string project;    // Id or name; "" = the default project.
  std::string role = "user";
  bool all_projects = false;  // Auditors only.
};
struct CreatedKey {
  store::KeyRow row;
  std::string token;  // pyc_…: shown once.
};
Result<CreatedKey> CreateKey(store::MetadataStore& store, const Caller& by, const KeySpec& spec,
                             int64_t now_ms);
// Revoked from now on (idempotent: revoking twice keeps the first time).
Result<store::KeyRow> RevokeKey(store::MetadataStore& store, const Caller& by,
                                const std::string& key_id, int64_t now_ms);

// First start: when the store holds no key, makes an admin key (principal "admin") in the
// default project and writes its token to `key_path` (mode 0600, created exclusively). Returns
// whether it made one.
Result<bool> Bootstrap(store::MetadataStore& store, const std::string& key_path, int64_t now_ms);

// The projects `caller` sees; the keys of one project (by id or name), or of every project when
// `project` is "".
Result<std::vector<store::ProjectRow>> ListProjects(store::MetadataStore& store,
                                                    const Caller& caller);
Result<std::vector<store::KeyRow>> ListKeys(store::MetadataStore& store, const std::string& project,
                                            bool include_revoked);

// The identity objects of the API (docs/access.md), built here once: for the REST routes, and
// for `pycell keys|projects` on a data dir, which prints what the API would answer.
nlohmann::json ProjectJson(const store::ProjectRow& row);
nlohmann::json KeyJson(const store::KeyRow& row);          // Never the secret.
nlohmann::json CreatedKeyJson(const CreatedKey& created);  // With the secret, shown once.
nlohmann::json ProjectListJson(const std::vector<store::ProjectRow>& rows);
nlohmann::json KeyListJson(const std::vector<store::KeyRow>& rows);

}  // namespace pycell::auth
