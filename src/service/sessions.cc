// The sessions part of the Service: create (with quota reservations), fork, end, the records
// kept in step with the live sessions and the ends the database refused.
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

// --- sessions -------------------------------------------------------------------------------

SessionInfo Service::SessionInfoOf(const store::SessionRow& row) const {
  auto expected = LiveConfig()->usage.expected_session;
  bool over = row.status == "active" && expected.count() > 0 &&
              NowMs() - row.created_at_ms > expected.count() * 1000;
  return SessionInfo{row, over};
}

Status Service::QuotaRefused(const auth::Caller& caller, const std::string& target,
                             Status refusal) {
  if (refusal.reason() != "quota_exceeded") return refusal;  // The store failed: no refusal.
  metrics_->QuotaRefusal(usage::QuotaOf(refusal));
  store::Trail trail =
      auth::AuditTrail(caller, "quota.exceeded", target, NowMs(), {{"message", refusal.message()}});
  trail.audit->outcome = "quota_exceeded";
  RETURN_IF_ERROR(store_->Record(trail));
  return refusal;
}

store::SessionRow Service::ActiveRow(const session::Session& session,
                                     const std::string& pool) const {
  store::SessionRow row;
  row.id = session.id();
  row.pool = pool;
  row.status = "active";
  row.created_at_ms = ToWallMs(session.created_at());
  row.last_active_at_ms = ToWallMs(session.last_active_at());
  row.expires_at_ms = ToWallMs(session.expires_at());
  row.limits_json = DumpJson(LimitsToJson(session.limits()));
  return row;
}

Result<SessionInfo> Service::CreateSession(const auth::Caller& caller,
                                           const CreateSessionRequest& request) {
  auto pool = pools_.find(request.pool);
  if (pool == pools_.end()) {
    std::string names;
    for (const auto& [name, m] : pools_) names += (names.empty() ? "" : ", ") + name;
    return Status::InvalidArgument("no pool named \"" + request.pool + "\"; pools: " + names);
  }
  const SessionLimits bounds = pool->second->Limits();
  if (request.memory_bytes &&
      (*request.memory_bytes > bounds.memory_bytes || *request.memory_bytes < (64ull << 20))) {
    return Status::InvalidArgument("limits.memory_bytes must be between 67108864 (64 MiB) and " +
                                   std::to_string(bounds.memory_bytes) + " (the pool's limit)");
  }
  if (request.execution_timeout && (request.execution_timeout->count() < 1 ||
                                    *request.execution_timeout > bounds.max_execution_timeout)) {
    return Status::InvalidArgument("limits.execution_timeout_s must be between 1 and " +
                                   std::to_string(bounds.max_execution_timeout.count()));
  }
  // Check the files before taking a session, so a typo costs nothing.
  std::vector<store::FileRow> inputs;
  std::set<std::string> names;
  for (const std::string& id : request.file_ids) {
    ASSIGN_OR_RETURN(store::FileRow row, VisibleFile(caller, id));
    if (!names.insert(row.filename).second) {
      return Status::InvalidArgument("two files are named \"" + row.filename +
                                     "\"; /mnt/data can hold only one of them");
    }
    inputs.push_back(std::move(row));
  }
  ASSIGN_OR_RETURN(store::ProjectRow project, store_->GetProject(caller.project_id));
  // From the quota check to the record the session holds a reserved slot, so a racing creation
  // counts it; the mutex is held only to check and reserve, not across a launch.
  ASSIGN_OR_RETURN(SessionReservations::Reservation reservation,
                   ReserveSession(caller, project, ""));

  session::SessionOptions options;
  if (request.memory_bytes && *request.memory_bytes != bounds.memory_bytes) {
    options.memory_bytes = request.memory_bytes;
  }
  options.execution_timeout = request.execution_timeout;
  options.project_id = caller.project_id;
  ASSIGN_OR_RETURN(auto session, pool->second->CreateSession(options));
  for (const store::FileRow& input : inputs) {
    Status placed = [&]() -> Status {
      ASSIGN_OR_RETURN(UniqueFd fd, blobs_->OpenBlob(input.sha256));
      return session->PutFile(input.filename, fd.get());
    }();
    if (!placed.ok()) {
      (void)pool->second->EndSession(session->id(), session::EndReason::kClosed);
      return placed.WithContext("placing " + input.id + " in /mnt/data");
    }
  }
  store::SessionRow row = ActiveRow(*session, request.pool);
  row.metadata_json =
      request.metadata && !request.metadata->is_null() ? DumpJson(*request.metadata) : "{}";
  row.project_id = caller.project_id;
  row.principal = caller.principal;
  if (request.metadata && request.metadata->is_object() && request.metadata->contains("agent_id")) {
    row.agent_id = (*request.metadata)["agent_id"].get<std::string>();
  }
  Json file_ids = Json::array();
  for (const store::FileRow& input : inputs) file_ids.push_back(input.id);
  store::Trail trail = auth::AuditTrail(
      caller, "session.create", row.id, row.created_at_ms,
      {{"pool", row.pool}, {"file_ids", file_ids}, {"metadata", MetadataView(row)}});
  Status put = store_->PutSession(row, trail);
  reservation.Release();
  if (!put.ok()) {
    (void)pool->second->EndSession(session->id(), session::EndReason::kClosed);
    return put;
  }
  std::vector<store::SessionInput> placed;
  for (const store::FileRow& input : inputs) {
    placed.push_back({row.id, input.id, input.filename, input.sha256, row.created_at_ms});
  }
  if (!placed.empty()) {
    Status recorded = store_->AddSessionInputs(placed);
    if (!recorded.ok()) {  // A session whose inputs are not on record must not run.
      (void)pool->second->EndSession(session->id(), session::EndReason::kClosed);
      return recorded;
    }
  }
  records_.Add(row);
  metrics_->SessionCreated(row.pool);
  return SessionInfoOf(row);
}

Result<SessionReservations::Reservation> Service::ReserveSession(const auth::Caller& caller,
                                                                 const store::ProjectRow& project,
                                                                 const std::string& target) {
  return reservations_.Reserve(project.id, [&](int64_t reserved) -> Status {
    Status quota = usage::CheckSessionQuotas(*store_, project, NowMs(), reserved);
    return quota.ok() ? quota : QuotaRefused(caller, target, quota);
  });
}

Result<SessionInfo> Service::ForkSession(const auth::Caller& caller, const std::string& id) {
  ASSIGN_OR_RETURN(std::shared_ptr<session::Session> live, LiveSession(caller, id));
  ASSIGN_OR_RETURN(store::SessionRow origin, store_->GetSession(id));
  auto pool = pools_.find(origin.pool);
  if (pool == pools_.end()) return EndedError(id, "crashed");
  ASSIGN_OR_RETURN(store::ProjectRow project, store_->GetProject(origin.project_id));
  ASSIGN_OR_RETURN(std::vector<store::SessionInput> inputs, store_->SessionInputs(id));
  ASSIGN_OR_RETURN(SessionReservations::Reservation reservation,
                   ReserveSession(caller, project, id));
  auto forked = pool->second->ForkSession(id);
  if (!forked.ok()) {
    // Ended while it was being forked (a DELETE, expiry, a violation): the fork, which lives
    // inside the origin's processes, died with it. Say so, as for any ended session.
    if (live->end_reason() != session::EndReason::kNone) {
      return EndedError(id, session::EndReasonName(live->end_reason()));
    }
    return forked.status();
  }
  std::shared_ptr<session::Session> fork = std::move(*forked);
  store::SessionRow row = ActiveRow(*fork, origin.pool);
  row.metadata_json = origin.metadata_json;
  row.project_id = origin.project_id;
  row.principal = caller.principal;
  row.agent_id = origin.agent_id;
  row.forked_from = id;
  store::Trail trail =
      auth::AuditTrail(caller, "session.fork", row.id, row.created_at_ms,
                       {{"forked_from", id}, {"pool", row.pool}, {"metadata", MetadataView(row)}});
  trail.audit->project_id = row.project_id;
  Status put = store_->PutSession(row, trail);
  reservation.Release();
  if (!put.ok()) {
    (void)pool->second->EndSession(row.id, session::EndReason::kClosed);
    return put;
  }
  for (store::SessionInput& input : inputs) {
    input.session_id = row.id;
    input.placed_at_ms = row.created_at_ms;
  }
  if (!inputs.empty()) {
    Status recorded = store_->AddSessionInputs(inputs);
    if (!recorded.ok()) {  // A session whose inputs are not on record must not run.
      (void)pool->second->EndSession(row.id, session::EndReason::kClosed);
      return recorded;
    }
  }
  records_.Add(row);
  metrics_->SessionCreated(row.pool);
  return SessionInfoOf(row);
}

Status Service::RecordEnd(const session::Session& s) {
  MutexLock end_lock(end_mu_);
  FlushUnrecordedEndsLocked();
  SessionRecords::Ended ended = records_.TakeEnded(s.id());
  auth::Caller by = ended.by ? std::move(*ended.by) : auth::Caller::System();
  std::optional<store::SessionRow>& cached = ended.row;
  auto stored = store_->GetSession(s.id());
  // The database unreadable (locked, say): the cached row stands in, so the end is still kept.
  if (!stored.ok() && !cached) return stored.status();
  store::SessionRow row = stored.ok() ? std::move(*stored) : std::move(*cached);
  if (row.status == "ended") return Status::Ok();
  row.status = "ended";
  row.end_reason = session::EndReasonName(s.end_reason());
  if (row.end_reason.empty()) row.end_reason = "shutdown";
  row.ended_at_ms = NowMs();
  if (by.key_id.empty()) by.project_id = row.project_id;  // The system acts in the session's.
  store::Trail trail =
      auth::AuditTrail(by, "session.end", row.id, row.ended_at_ms,
                       {{"reason", row.end_reason},
                        {"execution_count", row.execution_count},
                        {"wall_seconds", (row.ended_at_ms - row.created_at_ms) / 1000.0},
                        {"cpu_seconds", row.cpu_ms / 1000}});
  if (s.end_reason() == session::EndReason::kProtocolViolation) {
    Status logged = store_->Record(ViolationTrail(row, s.protocol_violation(), ""));
    if (!logged.ok())
      LOG_ERROR("session {}: auditing its violation: {}", row.id, logged.ToString());
    metrics_->SandboxEvent("protocol_violation");
  }
  Status written = store_->PutSession(row, trail);
  if (!written.ok()) {
    records_.KeepUnrecorded({std::move(row), std::move(trail)});
    return written.WithContext("kept to retry");
  }
  metrics_->SessionEnded(row.pool, row.end_reason, (row.ended_at_ms - row.created_at_ms) / 1000.0);
  return Status::Ok();
}

void Service::FlushUnrecordedEndsLocked() {
  for (const auto& [id, end] : records_.Unrecorded()) {
    Status written = store_->PutSession(end.row, end.trail);
    if (!written.ok()) {
      LOG_WARN("recording the end of {} (retried): {}", id, written.ToString());
      return;  // Still locked or full: the next try comes within a second.
    }
    LOG_INFO("recorded the end of {} ({}), which had waited for the database", id,
             end.row.end_reason);
    metrics_->SessionEnded(end.row.pool, end.row.end_reason,
                           (end.row.ended_at_ms - end.row.created_at_ms) / 1000.0);
    records_.Recorded(id);
  }
}

Result<store::SessionRow> Service::VisibleSession(const auth::Caller& caller,
                                                  const std::string& id) {
  if (IsValidId(id, "sess_")) {
    auto row = store_->GetSession(id);
    if (!row.ok() && !row.status().IsNotFound()) return row.status();
    if (row.ok() && auth::SeesProject(caller, row->project_id)) {
      bool shares = false;
      if (caller.role == auth::Role::kUser && row->principal != caller.principal) {
        auto project = store_->GetProject(row->project_id);
        shares = project.ok() && project->share_sessions;
      }
      if (auth::SeesSession(caller, row->project_id, row->principal, shares)) {
        records_.OverlayUnrecorded(&*row);
        return row;
      }
    }
  }
  return Status::NotFound("no session " + id);
}

Result<std::shared_ptr<session::Session>> Service::LiveSession(const auth::Caller& caller,
                                                               const std::string& id) {
  if (!IsValidId(id, "sess_")) return Status::NotFound("no session " + id);
  std::string pool_name;
  if (auto cached = records_.Find(id);
      cached && cached->principal == caller.principal && cached->project_id == caller.project_id) {
    pool_name = cached->pool;  // The common case: the owner, no database read.
  }
  if (!pool_name.empty()) {
    auto live = pools_.at(pool_name)->Get(id);
    if (live.ok() && (*live)->end_reason() == session::EndReason::kNone) return *live;
  }
  ASSIGN_OR_RETURN(store::SessionRow row, VisibleSession(caller, id));
  if (row.status == "ended") return EndedError(id, row.end_reason);
  auto pool = pools_.find(row.pool);
  if (pool != pools_.end()) {
    auto live = pool->second->Get(id);
    if (live.ok() && (*live)->end_reason() == session::EndReason::kNone) return *live;
    if (live.ok()) return EndedError(id, session::EndReasonName((*live)->end_reason()));
  }
  return EndedError(id, "crashed");
}

Result<SessionInfo> Service::GetSession(const auth::Caller& caller, const std::string& id) {
  ASSIGN_OR_RETURN(store::SessionRow row, VisibleSession(caller, id));
  return SessionInfoOf(row);
}

Result<Listing<SessionInfo>> Service::ListSessions(const auth::Caller& caller,
                                                   const std::string& status,
                                                   const std::string& project,
                                                   const store::Page& page) {
  ASSIGN_OR_RETURN(std::string project_id, identity_->QueryScope(caller, project));
  std::string principal;
  if (caller.role == auth::Role::kUser) {
    ASSIGN_OR_RETURN(store::ProjectRow own, store_->GetProject(caller.project_id));
    if (!own.share_sessions) principal = caller.principal;
  }
  return ListOf<SessionInfo>(
      page,
      [&](const store::Page& p) { return store_->ListSessions(status, p, project_id, principal); },
      [&](const store::SessionRow& row) {
        store::SessionRow shown = row;  // An end the database has refused so far shows too.
        records_.OverlayUnrecorded(&shown);
        return SessionInfoOf(shown);
      });
}

Result<SessionInfo> Service::EndSession(const auth::Caller& caller, const std::string& id) {
  ASSIGN_OR_RETURN(store::SessionRow row, VisibleSession(caller, id));
  if (row.status == "active") {
    records_.SetEndedBy(id, caller);
    auto pool = pools_.find(row.pool);
    bool ended =
        pool != pools_.end() && pool->second->EndSession(id, session::EndReason::kClosed).ok();
    records_.ClearEndedBy(id);  // Used by RecordEnd when the pool ended it; not needed else.
    if (!ended) {               // Not live any more (its cell ended it): record what we know.
      MutexLock end_lock(end_mu_);
      records_.Remove(id);
      // The pool may have recorded its end meanwhile (expiry, a violation): that reason stands.
      ASSIGN_OR_RETURN(store::SessionRow now, store_->GetSession(id));
      if (now.status == "ended") return SessionInfoOf(now);
      row.status = "ended";
      row.end_reason = "crashed";
      row.ended_at_ms = NowMs();
      store::Trail trail = auth::AuditTrail(caller, "session.end", id, row.ended_at_ms,
                                            {{"reason", row.end_reason}});
      RETURN_IF_ERROR(store_->PutSession(row, trail));
    }
    ASSIGN_OR_RETURN(row, store_->GetSession(id));
    records_.OverlayUnrecorded(&row);
  }
  return SessionInfoOf(row);
}

}  // namespace pycell::service
