// Service::Replay and Service::RestoreSession: a recorded session run again (docs/notebooks.md).
// Both start a new session from the old one's record — same pool, same memory and timeout, the
// same input files (by id, checked by SHA-256) — and run its cells in order through Execute, so
// the new cells are recorded, audited and metered like any other. The new session belongs to the
// old one's project (its quotas, its usage), whoever asks: an admin replaying another project's
// session must not carry that project's files and code into their own. Replay compares each cell
// with its original (src/notebook/compare.h); restore just runs them and hands the session over.
#include "common/json_reader.h"
#include "notebook/compare.h"
#include "service/service.h"
#include "service/v1_views.h"

namespace pycell::service {
namespace {

// The original record's execution object, or {} when it cannot be read.
Json RecordOf(const store::ExecutionRow& row) {
  Json record = Json::parse(row.record_json, nullptr, false);
  return record.is_object() ? record : Json::object();
}

// The caller, acting in `project_id` (which VisibleSession has checked the caller sees).
auth::Caller ActingIn(const auth::Caller& caller, const std::string& project_id) {
  auth::Caller acting = caller;
  acting.project_id = project_id;
  return acting;
}

}  // namespace

Result<SessionInfo> Service::StartFromRecord(const auth::Caller& caller,
                                             const store::SessionRow& original,
                                             const std::string& link_key) {
  ASSIGN_OR_RETURN(std::vector<store::SessionInput> inputs, store_->SessionInputs(original.id));
  CreateSessionRequest request;
  request.pool = original.pool;
  for (const store::SessionInput& input : inputs) {
    auto file = VisibleFile(caller, input.file_id);
    if (!file.ok() || file->sha256 != input.sha256) {
      return Status::FailedPrecondition(
          "input file " + input.file_id + " (" + input.filename + ", sha256 " + input.sha256 +
          ") is no longer stored; upload it again and create a session with it instead");
    }
    bool placed = false;
    for (const std::string& id : request.file_ids) placed = placed || id == input.file_id;
    if (!placed) request.file_ids.push_back(input.file_id);
  }
  Json limits = Json::parse(original.limits_json, nullptr, false);
  if (limits.is_object()) {
    if (limits.contains("memory_bytes") && limits["memory_bytes"].is_number_unsigned()) {
      request.memory_bytes = limits["memory_bytes"].get<uint64_t>();
    }
    if (limits.contains("execution_timeout_s") && limits["execution_timeout_s"].is_number()) {
      request.execution_timeout =
          std::chrono::seconds(limits["execution_timeout_s"].get<int64_t>());
    }
  }
  Json metadata = Json::parse(original.metadata_json, nullptr, false);
  if (!metadata.is_object()) metadata = Json::object();
  metadata[link_key] = original.id;
  request.metadata = &metadata;
  return CreateSession(caller, request);
}

Result<ReplayReport> Service::Replay(const auth::Caller& asking, const std::string& session_id,
                                     bool keep) {
  ASSIGN_OR_RETURN(store::SessionRow original, VisibleSession(asking, session_id));
  const auth::Caller caller = ActingIn(asking, original.project_id);
  ASSIGN_OR_RETURN(std::vector<store::ExecutionRow> rows, SessionExecutions(session_id));
  ASSIGN_OR_RETURN(SessionInfo created, StartFromRecord(caller, original, "replay_of"));
  ReplayReport report{
      .original_session_id = session_id, .replay_session_id = created.row.id, .kept = keep};
  const std::string& replay_id = report.replay_session_id;
  std::vector<notebook::ImagePair> images;
  std::vector<size_t> image_cell;  // images[i] belongs to cells[image_cell[i]].
  bool stopped = false;
  for (size_t i = 0; i < rows.size(); ++i) {
    ReplayReport::Cell& cell = report.cells.emplace_back();
    cell.index = i;
    cell.original_execution_id = rows[i].id;
    if (stopped) {
      cell.notes.push_back("not run: the replay session ended at an earlier cell");
      continue;
    }
    auto ran = Execute(caller, replay_id, rows[i].code, std::nullopt);
    if (!ran.ok()) {
      cell.differences.push_back({"execution", rows[i].status, ran.status().message()});
      stopped = true;
      continue;
    }
    Json replay = ExecutionView(*ran);
    if (!replay.is_object()) return Status::Internal("replayed execution has no record");
    cell.replay_execution_id = ran->record.id;
    notebook::CellComparison comparison = notebook::CompareExecutions(RecordOf(rows[i]), replay);
    cell.differences = std::move(comparison.differences);
    cell.notes = std::move(comparison.notes);
    for (notebook::ImagePair& pair : comparison.images_to_decode) {
      images.push_back(std::move(pair));
      image_cell.push_back(i);
    }
    if (!ran->record.session_end_reason.empty()) stopped = true;
  }
  if (!images.empty() && !stopped) {
    // Images whose bytes differ are decoded inside the replay session (never in the server) and
    // compared pixel by pixel.
    auto checked = Execute(caller, replay_id, notebook::PixelComparisonCode(images), std::nullopt);
    Json verdicts;
    if (checked.ok()) {
      report.pixel_check_execution_id = checked->record.id;
      // What the session printed is the session's word: parsed as untrusted input.
      auto printed = ParseUntrustedJson(checked->record.stdout_text);
      if (printed.ok()) verdicts = std::move(*printed);
    }
    for (size_t i = 0; i < images.size(); ++i) {
      bool same = verdicts.is_array() && i < verdicts.size() && verdicts[i] == true;
      ReplayReport::Cell& cell = report.cells[image_cell[i]];
      if (same) {
        cell.notes.push_back(images[i].where + ": the PNG bytes differ, the pixels do not");
      } else {
        cell.differences.push_back({images[i].where, "(image)", "(image: pixels differ)"});
      }
    }
  } else {
    for (size_t i = 0; i < images.size(); ++i) {
      report.cells[image_cell[i]].differences.push_back(
          {images[i].where, "(image)", "(not compared)"});
    }
  }
  if (!keep) (void)EndSession(caller, replay_id);
  return report;
}

Result<RestoredSession> Service::RestoreSession(const auth::Caller& asking,
                                                const std::string& from) {
  ASSIGN_OR_RETURN(store::SessionRow original, VisibleSession(asking, from));
  const auth::Caller caller = ActingIn(asking, original.project_id);
  ASSIGN_OR_RETURN(std::vector<store::ExecutionRow> rows, SessionExecutions(from));
  ASSIGN_OR_RETURN(SessionInfo created, StartFromRecord(caller, original, "restored_from"));
  const std::string id = created.row.id;
  RestoredSession restored;
  restored.restored_from = from;
  restored.restored_cells = rows.size();
  for (const store::ExecutionRow& row : rows) {
    auto ran = Execute(caller, id, row.code, std::nullopt);
    if (!ran.ok()) {
      return Status::FailedPrecondition("restoring " + from + ": cell " + row.id +
                                        " could not run again (" + ran.status().message() +
                                        "); the new session " + id + " is not usable");
    }
    if (ran->record.status != row.status) {
      restored.differences.push_back({row.id, row.status, ran->record.status});
    }
  }
  ASSIGN_OR_RETURN(restored.session, GetSession(caller, id));
  return restored;
}

}  // namespace pycell::service
