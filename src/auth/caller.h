// Caller: who is making a request — the key's principal, project and role — and the scope rules
// that say which records that caller may see. Every Service call takes one; the scope checks here
// are the only place that decides visibility, and what a caller may not see answers NotFound, the
// same as what does not exist.
//
// Thread-safety: values and pure functions.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "audit/audit_event.h"
#include "auth/roles.h"
#include "store/metadata_store.h"

namespace pycell::auth {

struct Caller {
  std::string key_id;      // key_…; "" for the system itself.
  std::string principal;   // The key's principal; "system" for sweeps and timeouts.
  std::string project_id;  // The key's project.
  Role role = Role::kUser;
  bool all_projects = false;  // An auditor created to read every project.
  std::string request_id;     // req_… of the HTTP request, or "".
  std::string peer;           // "address:port" of the client, or "".

  // The server itself (retention, timeouts, restarts): admin scope, principal "system".
  static Caller System();
  // A local administrator working on a data dir directly (`pycell keys … --data-dir`).
  static Caller Local(const std::string& who);
};

// Whether `caller` may see records of project `project_id`.
bool SeesProject(const Caller& caller, const std::string& project_id);
// The project a list must be limited to: "" when the caller sees every project.
std::string ProjectScope(const Caller& caller);
// Whether `caller` may see (and, with the permission, use) a session of `project_id` created by
// `owner`: users see only their own unless their project shares sessions.
bool SeesSession(const Caller& caller, const std::string& project_id, const std::string& owner,
                 bool project_shares_sessions);

// An audit event of `action` on `target` by `caller` at `now_ms` (outcome "ok").
audit::AuditEvent EventBy(const Caller& caller, std::string action, std::string target,
                          int64_t now_ms);

// The one way to record an audited action: a trail holding EventBy's event with `detail` (an
// object) serialized safely — bytes that are not UTF-8 are replaced, never thrown on (DumpJson).
// Set the event's outcome or project, or add usage events, on the result before storing it.
store::Trail AuditTrail(const Caller& caller, std::string action, std::string target,
                        int64_t now_ms, const nlohmann::json& detail);

}  // namespace pycell::auth
