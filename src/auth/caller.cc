#include "auth/caller.h"

#include "common/json_reader.h"

namespace pycell::auth {

Caller Caller::System() {
  Caller c;
  c.principal = "system";
  c.role = Role::kAdmin;
  return c;
}

Caller Caller::Local(const std::string& who) {
  Caller c;
  c.principal = "local:" + who;
  c.role = Role::kAdmin;
  return c;
}

bool SeesProject(const Caller& caller, const std::string& project_id) {
  switch (caller.role) {
    case Role::kAdmin:
    case Role::kOperator:
      return true;
    case Role::kAuditor:
      return caller.all_projects || project_id == caller.project_id;
    case Role::kUser:
      return project_id == caller.project_id;
  }
  return false;
}

std::string ProjectScope(const Caller& caller) {
  if (caller.role == Role::kAdmin || caller.role == Role::kOperator) return "";
  if (caller.role == Role::kAuditor && caller.all_projects) return "";
  return caller.project_id;
}

bool SeesSession(const Caller& caller, const std::string& project_id, const std::string& owner,
                 bool project_shares_sessions) {
  if (!SeesProject(caller, project_id)) return false;
  if (caller.role != Role::kUser) return true;
  return owner == caller.principal || project_shares_sessions;
}

audit::AuditEvent EventBy(const Caller& caller, std::string action, std::string target,
                          int64_t now_ms) {
  audit::AuditEvent event;
  event.time_ms = now_ms;
  event.principal = caller.principal;
  event.project_id = caller.project_id;
  event.key_id = caller.key_id;
  event.action = std::move(action);
  event.target = std::move(target);
  event.request_id = caller.request_id;
  return event;
}

store::Trail AuditTrail(const Caller& caller, std::string action, std::string target,
                        int64_t now_ms, const nlohmann::json& detail) {
  store::Trail trail;
  trail.audit = EventBy(caller, std::move(action), std::move(target), now_ms);
  trail.audit->detail_json = DumpJson(detail);
  return trail;
}

}  // namespace pycell::auth
