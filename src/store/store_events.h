// What both MetadataStore backends do alike, whatever the database: the audit events the store
// writes itself, sealing an event into the chain, and the checks on what a caller hands in. The
// backends keep only the SQL (STYLE: small interfaces, the shared work outside them).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "audit/audit_event.h"
#include "common/status.h"
#include "store/metadata_store.h"

namespace pycell::store {

// The session.end event of a session the store ends itself (EndActiveSessions), by "system",
// its detail {"reason": reason}.
audit::AuditEvent SessionEndedBySystem(const std::string& session_id, const std::string& project_id,
                                       const std::string& reason, int64_t now_ms);

// Makes `event` the chain's next link after (`last_seq`, `last_hash`): its seq, prev_hash, an id
// when it has none, "{}" as an empty detail, and its hash over all of them.
void SealAuditEvent(audit::AuditEvent* event, int64_t last_seq, const std::string& last_hash);

// InvalidArgument unless `execution` belongs to `session` (RecordExecution).
Status CheckExecutionOfSession(const ExecutionRow& execution, const SessionRow& session);

}  // namespace pycell::store
