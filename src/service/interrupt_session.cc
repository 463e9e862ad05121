// Interrupting a session's running cell on request, without ending the session (MCP calls it when
// the client cancels the tools/call that runs a cell: notifications/cancelled).
#include <nlohmann/json.hpp>

#include "common/json_reader.h"
#include "service/service.h"

namespace pycell::service {

Status Service::InterruptSession(const auth::Caller& caller, const std::string& session_id) {
  ASSIGN_OR_RETURN(auto session, LiveSession(caller, session_id));
  bool running = session->busy();
  store::Trail trail =
      auth::AuditTrail(caller, "execution.interrupt", session_id, NowMs(), {{"running", running}});
  RETURN_IF_ERROR(store_->Record(trail));
  if (running) session->Interrupt();
  return Status::Ok();
}

}  // namespace pycell::service
