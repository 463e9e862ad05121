// The identity part of the domain: who the caller is, projects and API keys, and the one rule
// for which projects a caller's query covers. Projects and keys are made, changed and revoked
// through auth/directory.h (which `pycell keys` also uses on a data dir while the server is
// down), each change written with its audit event.
//
// Thread-safety: thread-safe; it keeps no state of its own beyond the store (thread-safe) and
// the clock.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "auth/caller.h"
#include "auth/directory.h"
#include "common/clock.h"
#include "common/status.h"
#include "store/metadata_store.h"

namespace pycell::service {

// The caller's key and its project (GET /v1/me).
struct CallerInfo {
  store::KeyRow key;
  store::ProjectRow project;
};

class Identity {
 public:
  // `store` and `clock` must outlive the Identity.
  Identity(store::MetadataStore& store, Clock& clock) : store_(store), clock_(clock) {}

  Result<CallerInfo> Me(const auth::Caller& caller);

  Result<store::ProjectRow> CreateProject(const auth::Caller& caller,
                                          const auth::ProjectSpec& spec);
  Result<store::ProjectRow> UpdateProject(const auth::Caller& caller, const std::string& id_or_name,
                                          const auth::ProjectSpec& spec);
  // By id or name; NotFound, worded alike, for a project that does not exist and for one the
  // caller does not see.
  Result<store::ProjectRow> GetProject(const auth::Caller& caller, const std::string& id_or_name);
  // The projects the caller sees, in the store's order.
  Result<std::vector<store::ProjectRow>> ListProjects(const auth::Caller& caller);

  // The new key's record and its secret (shown once).
  Result<auth::CreatedKey> CreateKey(const auth::Caller& caller, const auth::KeySpec& spec);
  Result<store::KeyRow> GetKey(const auth::Caller& caller, const std::string& id);
  // The keys of one project (by id or name), or of every project when `project` is "".
  Result<std::vector<store::KeyRow>> ListKeys(const auth::Caller& caller,
                                              const std::string& project, bool include_revoked);
  Result<store::KeyRow> RevokeKey(const auth::Caller& caller, const std::string& id);

  // The project id a query of the caller's covers: `project` (id or name) when given — NotFound
  // when it does not exist or the caller does not see it —, then narrowed to the caller's own
  // project when its key is bound to one. "" = every project.
  Result<std::string> QueryScope(const auth::Caller& caller, const std::string& project);

 private:
  int64_t NowMs() const;

  store::MetadataStore& store_;
  Clock& clock_;
};

}  // namespace pycell::service
