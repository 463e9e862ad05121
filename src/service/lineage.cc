// The lineage part of the Service: an output's execution, code, session and inputs, and where
// a file was used.
#include <set>

#include "service/service.h"

namespace pycell::service {

// --- lineage --------------------------------------------------------------------------------

Result<std::shared_ptr<const Origin>> Service::ProducedBy(const auth::Caller& caller,
                                                          const store::FileRow& output, int depth,
                                                          std::set<std::string>* seen) {
  auto origin = std::make_shared<Origin>();
  ASSIGN_OR_RETURN(store::ExecutionRow exec, store_->GetExecution(output.execution_id));
  origin->execution = {.id = exec.id,
                       .status = exec.status,
                       .code = exec.code,
                       .code_sha256 = exec.code_sha256,
                       .started_at_ms = exec.started_at_ms,
                       .duration_ms = exec.duration_ms};
  if (auto row = store_->GetSession(exec.session_id); row.ok()) origin->session = std::move(*row);
  // What was in /mnt/data when the cell started: the files placed before it, and what earlier
  // cells of the same session wrote.
  auto add_input = [&](const std::string& file_id, const std::string& filename,
                       const std::string& sha256, const std::string& how) -> Status {
    Origin::Input input{.file_id = file_id, .filename = filename, .sha256 = sha256, .via = how};
    auto record = store_->GetFile(file_id);
    input.exists = record.ok();
    // Deeper only where the executions route would show the caller that execution.
    if (record.ok() && record->purpose == "output" && depth < kMaxLineageDepth &&
        VisibleSession(caller, record->session_id).ok() && seen->insert(file_id).second) {
      ASSIGN_OR_RETURN(input.produced_by, ProducedBy(caller, *record, depth + 1, seen));
    }
    origin->inputs.push_back(std::move(input));
    return Status::Ok();
  };
  ASSIGN_OR_RETURN(auto placed, store_->SessionInputs(exec.session_id));
  for (const store::SessionInput& p : placed) {
    if (p.placed_at_ms <= exec.started_at_ms) {
      RETURN_IF_ERROR(add_input(p.file_id, p.filename, p.sha256, "placed"));
    }
  }
  store::FileFilter earlier{.purpose = "output", .session_id = exec.session_id};
  ASSIGN_OR_RETURN(auto written, store_->ListFiles(earlier, store::Page{1000, ""}));
  for (auto it = written.rbegin(); it != written.rend(); ++it) {  // Oldest first.
    if (it->execution_id == exec.id || it->created_at_ms > exec.started_at_ms) continue;
    if (it->path.empty()) continue;  // An earlier cell's outputs file: the code never saw it.
    RETURN_IF_ERROR(add_input(it->id, it->filename, it->sha256, "written_earlier_in_session"));
  }
  return std::shared_ptr<const Origin>(std::move(origin));
}

Result<FileLineage> Service::Lineage(const auth::Caller& caller, const std::string& file_id) {
  FileLineage lineage;
  ASSIGN_OR_RETURN(lineage.file, VisibleFile(caller, file_id));
  const store::FileRow& row = lineage.file;
  // An output's lineage is its execution's code and session: shown to whoever the executions
  // route shows them (a user of a project that does not share sessions sees only their own).
  if (row.purpose == "output" && !VisibleSession(caller, row.session_id).ok()) {
    return Status::NotFound("no file " + file_id);  // As for an id never made.
  }
  if (row.purpose == "output") {
    std::set<std::string> seen = {row.id};
    ASSIGN_OR_RETURN(lineage.produced_by, ProducedBy(caller, row, 0, &seen));
  }
  // Where it went: the sessions it was placed into and the cells that ran there after.
  ASSIGN_OR_RETURN(auto uses, store_->UsesOfFile(file_id, 100));
  for (const store::SessionInput& use : uses) {
    if (!VisibleSession(caller, use.session_id).ok()) continue;  // Another's, not shared.
    FileLineage::Use used{.session_id = use.session_id, .placed_at_ms = use.placed_at_ms};
    ASSIGN_OR_RETURN(auto runs, store_->ListExecutions(use.session_id, store::Page{1000, ""}));
    for (auto it = runs.rbegin(); it != runs.rend(); ++it) {
      if (it->started_at_ms < use.placed_at_ms) continue;
      used.executions.push_back({.id = it->id,
                                 .status = it->status,
                                 .code_sha256 = it->code_sha256,
                                 .started_at_ms = it->started_at_ms});
    }
    lineage.used_by.push_back(std::move(used));
  }
  return lineage;
}

}  // namespace pycell::service
