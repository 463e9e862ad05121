#include "store/store_events.h"

#include <nlohmann/json.hpp>

#include "common/ids.h"

namespace pycell::store {

audit::AuditEvent SessionEndedBySystem(const std::string& session_id, const std::string& project_id,
                                       const std::string& reason, int64_t now_ms) {
  audit::AuditEvent event;
  event.time_ms = now_ms;
  event.principal = "system";
  event.project_id = project_id;
  event.action = "session.end";
  event.target = session_id;
  event.detail_json = nlohmann::json{{"reason", reason}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
  return event;
}

void SealAuditEvent(audit::AuditEvent* event, int64_t last_seq, const std::string& last_hash) {
  event->seq = last_seq + 1;
  event->prev_hash = last_hash;
  if (event->id.empty()) event->id = NewId("evt_");
  if (event->detail_json.empty()) event->detail_json = "{}";
  event->hash = audit::EventHash(*event);
}

Status CheckExecutionOfSession(const ExecutionRow& execution, const SessionRow& session) {
  if (execution.session_id == session.id) return Status::Ok();
  return Status::InvalidArgument("record execution " + execution.id + ": it belongs to " +
                                 execution.session_id + " but the session row given is " +
                                 session.id);
}

}  // namespace pycell::store
