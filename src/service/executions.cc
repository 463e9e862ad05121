// The executions part of the Service: running a cell, its artifacts and outputs file, the
// execution record, and reading records back.
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

// --- executions -----------------------------------------------------------------------------

Result<Service::StagedArtifact> Service::StageArtifact(
    session::Session& session, const store::SessionRow& owner, const auth::Caller& caller,
    const std::string& execution_id, const files::FileChange& change, uint64_t max_bytes) {
  ASSIGN_OR_RETURN(UniqueFd fd, session.OpenFile(change.path));
  ASSIGN_OR_RETURN(auto writer,
                   blobs_->NewWriter(std::min(session.limits().max_file_bytes, max_bytes)));
  RETURN_IF_ERROR(writer->WriteFrom(fd.get()));
  // The project the session belongs to pays for its outputs.
  ASSIGN_OR_RETURN(store::ProjectRow project, store_->GetProject(owner.project_id));
  Status quota = usage::CheckStorageQuota(*store_, project, static_cast<int64_t>(writer->bytes()));
  if (!quota.ok()) return QuotaRefused(caller, session.id(), quota);
  store::FileRow row;
  row.id = NewId("file_");
  // Names are bytes the code chose: registered with what is not UTF-8 escaped (utf8.h).
  row.filename = EscapeNonUtf8(BaseName(change.path));
  row.media_type = files::GuessMediaType(row.filename, writer->head());
  row.purpose = "output";
  row.created_at_ms = NowMs();
  auto keep = LiveConfig()->retention.output_files;
  row.expires_at_ms = keep.count() > 0 ? row.created_at_ms + keep.count() * 1000 : 0;
  row.session_id = session.id();
  row.execution_id = execution_id;
  row.path = EscapeNonUtf8(change.path);
  row.project_id = owner.project_id;
  row.principal = caller.principal;
  return StagedArtifact{std::move(row), std::move(writer)};
}

std::optional<Service::StagedArtifact> Service::StageOutputs(session::ExecutionRecord* record,
                                                             const store::SessionRow& owner,
                                                             const auth::Caller& caller) {
  const uint64_t bound = LiveConfig()->engine.max_record_outputs_bytes;
  std::vector<std::string> texts;
  uint64_t total = 2;  // The array's brackets.
  for (const kernel::Output& output : record->outputs) {
    texts.push_back(session::OutputToJson(output, record->execution_count));
    total += texts.back().size() + 1;
  }
  if (total <= bound + 2) return std::nullopt;
  size_t fit = 0;  // The outputs the record keeps: those that fit within the bound, in order.
  for (uint64_t used = 2; fit < texts.size() && used + texts[fit].size() + 1 <= bound; ++fit) {
    used += texts[fit].size() + 1;
  }
  const size_t count = texts.size();
  record->outputs.resize(fit);
  auto stage = [&]() -> Result<StagedArtifact> {
    ASSIGN_OR_RETURN(auto writer, blobs_->NewWriter(total));
    RETURN_IF_ERROR(writer->Write("["));
    for (size_t i = 0; i < texts.size(); ++i) {
      if (i > 0) RETURN_IF_ERROR(writer->Write(","));
      RETURN_IF_ERROR(writer->Write(texts[i]));
    }
    RETURN_IF_ERROR(writer->Write("]"));
    ASSIGN_OR_RETURN(store::ProjectRow project, store_->GetProject(owner.project_id));
    Status quota =
        usage::CheckStorageQuota(*store_, project, static_cast<int64_t>(writer->bytes()));
    if (!quota.ok()) return QuotaRefused(caller, record->session_id, quota);
    store::FileRow row;
    row.id = NewId("file_");
    row.filename = "outputs-" + record->id + ".json";
    row.media_type = "application/json";
    row.purpose = "output";
    row.created_at_ms = NowMs();
    auto keep = LiveConfig()->retention.output_files;
    row.expires_at_ms = keep.count() > 0 ? row.created_at_ms + keep.count() * 1000 : 0;
    row.session_id = record->session_id;
    row.execution_id = record->id;
    row.project_id = owner.project_id;
    row.principal = caller.principal;  // No path: the code never saw this file.
    return StagedArtifact{std::move(row), std::move(writer)};
  };
  auto staged = stage();
  if (!staged.ok()) {
    record->outputs_truncated = true;
    record->outputs_file_skipped = staged.status().message();
    return std::nullopt;
  }
  record->outputs_file = session::ExecutionRecord::OutputsFile{staged->row.id, 0, "", count};
  return std::move(*staged);
}

store::Trail Service::ViolationTrail(const store::SessionRow& row, const std::string& rule,
                                     const std::string& execution_id) {
  auth::Caller system = auth::Caller::System();
  system.project_id = row.project_id;
  Json detail = {{"rule", rule}, {"principal", row.principal}, {"pool", row.pool}};
  if (!execution_id.empty()) detail["execution_id"] = execution_id;
  store::Trail trail =
      auth::AuditTrail(system, "security.protocol_violation", row.id, NowMs(), detail);
  trail.audit->outcome = "error";
  return trail;
}

Result<ExecutionInfo> Service::Execute(const auth::Caller& caller, const std::string& session_id,
                                       const std::string& code, std::optional<seconds> timeout,
                                       const kernel::ExecuteObserver& observer) {
  ASSIGN_OR_RETURN(auto session, LiveSession(caller, session_id));
  std::optional<store::SessionRow> live_row = records_.Find(session_id);
  if (!live_row) return EndedError(session_id, "crashed");
  const store::SessionRow owner = std::move(*live_row);
  {
    ASSIGN_OR_RETURN(store::ProjectRow project, store_->GetProject(owner.project_id));
    Status quota = usage::CheckCpuQuota(*store_, project, NowMs());
    if (!quota.ok()) return QuotaRefused(caller, session_id, quota);
  }
  session::ExecuteRequest request{code, timeout};
  auto executed = session->Execute(request, observer);
  if (!executed.ok()) {
    Status s = executed.status();
    if (s.IsFailedPrecondition() && s.reason().empty() &&
        session->end_reason() != session::EndReason::kNone) {
      return EndedError(session_id, session::EndReasonName(session->end_reason()));
    }
    return s;
  }
  session::ExecutionRecord record = std::move(*executed);
  record.code_sha256 = Sha256Hex(code);
  if (stopping_cells_ && record.status != "ok") record.interrupted_by = "server_shutdown";

  // Copied and hashed with no lock held (one tenant's large artifact must not stall everyone's
  // uploads and cells); blob_mu_ guards only the commits and the record.
  std::vector<StagedArtifact> staged;
  session::ExportPlan plan = session::PlanExport(record.files, session->limits().data_bytes);
  record.artifacts_skipped = std::move(plan.skipped);
  uint64_t budget = session->limits().data_bytes;
  for (const files::FileChange& change : plan.files) {
    // A file may have grown since it was listed: what is stored stays within the budget.
    auto artifact = StageArtifact(*session, owner, caller, record.id, change, budget);
    if (!artifact.ok()) {
      // A file that vanished, became a link or grew past the limit is not an artifact.
      record.artifacts_skipped.push_back({change.path, artifact.status().message()});
      continue;
    }
    budget -= std::min<uint64_t>(budget, artifact->writer->bytes());
    staged.push_back(std::move(*artifact));
  }
  std::optional<StagedArtifact> outputs_file = StageOutputs(&record, owner, caller);
  std::vector<store::FileRow> artifacts;
  MutexLock blob_lock(blob_mu_);
  if (outputs_file) {
    auto blob = outputs_file->writer->Commit();
    if (blob.ok()) {
      outputs_file->row.sha256 = blob->sha256;
      outputs_file->row.bytes = static_cast<int64_t>(blob->bytes);
      record.outputs_file->bytes = blob->bytes;
      record.outputs_file->sha256 = blob->sha256;
      artifacts.push_back(std::move(outputs_file->row));
    } else {
      record.outputs_file.reset();
      record.outputs_truncated = true;
      record.outputs_file_skipped = blob.status().message();
    }
  }
  for (StagedArtifact& artifact : staged) {
    auto blob = artifact.writer->Commit();
    if (!blob.ok()) {
      record.artifacts_skipped.push_back({artifact.row.path, blob.status().message()});
      continue;
    }
    store::FileRow& row = artifact.row;
    row.sha256 = blob->sha256;
    row.bytes = static_cast<int64_t>(blob->bytes);
    record.artifacts.push_back({row.id, row.filename, row.path, static_cast<uint64_t>(row.bytes),
                                row.sha256, row.media_type});
    artifacts.push_back(std::move(row));
  }

  store::ExecutionRow exec;
  exec.id = record.id;
  exec.session_id = session_id;
  exec.status = record.status;
  exec.code = code;
  exec.code_sha256 = record.code_sha256;
  exec.started_at_ms = duration_cast<milliseconds>(record.started_at.time_since_epoch()).count();
  exec.duration_ms = record.duration_ms;
  exec.record_json = record.ToJson();
  exec.project_id = owner.project_id;
  exec.principal = caller.principal;
  exec.cpu_ms = record.cpu_ms;
  exec.peak_memory_bytes = static_cast<int64_t>(record.peak_memory_bytes);

  const int64_t last_active_ms = ToWallMs(session->last_active_at());
  const int64_t expires_ms = ToWallMs(session->expires_at());
  const int64_t now_ms = NowMs();
  std::optional<store::SessionRow> updated =
      records_.Update(session_id, [&](store::SessionRow* live) {
        live->execution_count += 1;
        live->last_active_at_ms = last_active_ms;
        live->expires_at_ms = expires_ms;
        live->cpu_ms += record.cpu_ms;
        live->peak_memory_bytes = std::max(live->peak_memory_bytes, exec.peak_memory_bytes);
        if (!record.session_end_reason.empty()) {
          live->status = "ended";
          live->end_reason = record.session_end_reason;
          live->ended_at_ms = now_ms;
        }
      });
  const bool ended_meanwhile = !updated;
  store::SessionRow row = updated ? std::move(*updated) : store::SessionRow{};
  MutexLock end_lock(end_mu_, std::defer_lock);
  if (ended_meanwhile) {
    // Ended while the cell ran (DELETE, the pool's sweep): the code ran, so it is recorded all
    // the same, against the ended session's record (written by RecordEnd, which end_mu_ waits
    // for); the caller hears the session is gone.
    end_lock.Lock();
    auto stored = store_->GetSession(session_id);
    if (!stored.ok()) {
      for (const store::FileRow& artifact : artifacts) DropUnnamedBlob(artifact.sha256);
      return stored.status();
    }
    row = std::move(*stored);
    row.execution_count += 1;
    row.cpu_ms += record.cpu_ms;
    row.peak_memory_bytes = std::max(row.peak_memory_bytes, exec.peak_memory_bytes);
  }
  Json artifact_ids = Json::array();
  for (const session::Artifact& a : record.artifacts) artifact_ids.push_back(a.file_id);
  Json detail = {{"session_id", session_id},
                 {"status", exec.status},
                 {"duration_ms", exec.duration_ms},
                 {"cpu_ms", exec.cpu_ms},
                 {"artifacts", artifact_ids}};
  if (record.outputs_file) detail["outputs_file"] = record.outputs_file->file_id;
  store::Trail trail = auth::AuditTrail(caller, "execution.run", exec.id, NowMs(), detail);
  trail.audit->code_sha256 = exec.code_sha256;
  trail.audit->outcome = exec.status == "ok" ? "ok" : "error";
  Status recorded = store_->RecordExecution(exec, artifacts, row, trail);
  if (!recorded.ok()) {
    for (const store::FileRow& artifact : artifacts) DropUnnamedBlob(artifact.sha256);
    return recorded;
  }
  blob_lock.Unlock();
  metrics_->Execution(exec.status, exec.duration_ms / 1000);
  std::string sandbox_event;
  if (exec.status == "timeout") sandbox_event = "timeout_" + record.timeout_action;
  if (record.session_end_reason == "memory") sandbox_event = "memory_kill";
  if (exec.status == "crashed") sandbox_event = "crashed";
  if (!sandbox_event.empty()) metrics_->SandboxEvent(sandbox_event);
  Emit(diagnostics::kExecutions, [&] {
    Json event = Json::parse(exec.record_json, nullptr, false);
    if (!event.is_object()) event = Json{{"id", exec.id}};
    event["event"] = "execution.completed";
    AddCaller(caller, &event);
    return event;
  });
  if (!sandbox_event.empty()) {
    Emit(diagnostics::kSecurity, [&] {
      Json event = {{"event", "sandbox." + sandbox_event},
                    {"session_id", session_id},
                    {"execution_id", exec.id},
                    {"status", exec.status},
                    {"session_end_reason", record.session_end_reason}};
      AddCaller(caller, &event);
      return event;
    });
  }
  if (ended_meanwhile) {
    return EndedError(session_id, row.end_reason.empty() ? "crashed" : row.end_reason);
  }
  if (row.status == "ended") {
    // The cell ended its session (memory, …). The pool's end observer will find the record
    // ended already, so the end's event is written here, by the system.
    auth::Caller system = auth::Caller::System();
    system.project_id = row.project_id;
    store::Trail end = auth::AuditTrail(system, "session.end", row.id, row.ended_at_ms,
                                        {{"reason", row.end_reason}, {"execution_id", exec.id}});
    RETURN_IF_ERROR(store_->Record(end));
    if (!record.protocol_violation.empty()) {
      RETURN_IF_ERROR(store_->Record(ViolationTrail(row, record.protocol_violation, exec.id)));
      metrics_->SandboxEvent("protocol_violation");
    }
    metrics_->SessionEnded(row.pool, row.end_reason,
                           (row.ended_at_ms - row.created_at_ms) / 1000.0);
  }
  return ExecutionInfo{std::move(record), std::move(exec.record_json)};
}

Result<store::ExecutionRow> Service::VisibleExecution(const auth::Caller& caller,
                                                      const std::string& id) {
  if (IsValidId(id, "exec_")) {
    auto row = store_->GetExecution(id);
    if (!row.ok() && !row.status().IsNotFound()) return row.status();
    if (row.ok() && VisibleSession(caller, row->session_id).ok()) return row;
  }
  return Status::NotFound("no execution " + id);
}

namespace {

// A stored execution as the service hands it out. A record the store holds but that does not
// read back (never written so by pycell) keeps its row's own fields.
ExecutionInfo InfoOf(store::ExecutionRow row) {
  auto record = session::ExecutionRecord::FromJson(row.record_json);
  if (!record.ok()) {
    record = session::ExecutionRecord{};
    record->id = row.id;
    record->session_id = row.session_id;
    record->status = row.status;
    record->code = row.code;
    record->code_sha256 = row.code_sha256;
  }
  return ExecutionInfo{std::move(*record), std::move(row.record_json)};
}

}  // namespace

Result<ExecutionInfo> Service::GetExecution(const auth::Caller& caller, const std::string& id) {
  ASSIGN_OR_RETURN(store::ExecutionRow row, VisibleExecution(caller, id));
  return InfoOf(std::move(row));
}

Result<Listing<ExecutionInfo>> Service::ListExecutions(const auth::Caller& caller,
                                                       const std::string& session_id,
                                                       const store::Page& page) {
  RETURN_IF_ERROR(VisibleSession(caller, session_id).status());
  return ListOf<ExecutionInfo>(
      page, [&](const store::Page& p) { return store_->ListExecutions(session_id, p); },
      [](const store::ExecutionRow& row) { return InfoOf(row); });
}

}  // namespace pycell::service
