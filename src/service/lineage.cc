// The lineage part of the Service: an output's execution, code, session and inputs, and where
// a file was used.
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

// --- lineage --------------------------------------------------------------------------------

Result<Json> Service::ProducedBy(const auth::Caller& caller, const store::FileRow& output,
                                 int depth, std::set<std::string>* seen) {
  ASSIGN_OR_RETURN(store::ExecutionRow exec, store_->GetExecution(output.execution_id));
  // status is what the session reported; the rest the server measured itself.
  Json execution = {{"id", exec.id},
                    {"status", exec.status},
                    {"code", exec.code},
                    {"code_sha256", exec.code_sha256},
                    {"started_at", TimeOrNull(exec.started_at_ms)},
                    {"duration_ms", exec.duration_ms},
                    {"reported_fields", Json::array({"status"})}};
  Json session = nullptr;
  if (auto row = store_->GetSession(exec.session_id); row.ok()) {
    Json metadata = Json::parse(row->metadata_json, nullptr, false);
    if (metadata.is_discarded()) metadata = Json::object();
    session = {{"id", row->id},
               {"pool", row->pool},
               {"project_id", row->project_id},
               {"principal", row->principal},
               {"created_at", TimeOrNull(row->created_at_ms)},
               {"limits", Json::parse(row->limits_json, nullptr, false)},
               {"metadata", metadata},
               {"agent_id", metadata.value("agent_id", Json(nullptr))},
               {"thread_id", metadata.value("thread_id", Json(nullptr))},
               {"run_id", metadata.value("run_id", Json(nullptr))}};
  }
  // What was in /mnt/data when the cell started: the files placed before it, and what earlier
  // cells of the same session wrote.
  Json inputs = Json::array();
  auto add_input = [&](const std::string& file_id, const std::string& filename,
                       const std::string& sha256, const std::string& how) -> Status {
    Json input = {{"file_id", file_id}, {"filename", filename}, {"sha256", sha256}, {"via", how}};
    auto record = store_->GetFile(file_id);
    input["exists"] = record.ok();
    // Deeper only where the executions route would show the caller that execution.
    if (record.ok() && record->purpose == "output" && depth < kMaxLineageDepth &&
        VisibleSession(caller, record->session_id).ok() && seen->insert(file_id).second) {
      ASSIGN_OR_RETURN(input["produced_by"], ProducedBy(caller, *record, depth + 1, seen));
    }
    inputs.push_back(std::move(input));
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
  return Json{{"execution", execution}, {"session", session}, {"inputs", inputs}};
}

Result<Json> Service::Lineage(const auth::Caller& caller, const std::string& file_id) {
  ASSIGN_OR_RETURN(store::FileRow row, VisibleFile(caller, file_id));
  // An output's lineage is its execution's code and session: shown to whoever the executions
  // route shows them (a user of a project that does not share sessions sees only their own).
  if (row.purpose == "output" && !VisibleSession(caller, row.session_id).ok()) {
    return Status::NotFound("no file " + file_id);  // As for an id never made.
  }
  Json lineage = {{"object", "lineage"}, {"file", FileView(row)}, {"produced_by", nullptr}};
  if (row.purpose == "output") {
    std::set<std::string> seen = {row.id};
    ASSIGN_OR_RETURN(lineage["produced_by"], ProducedBy(caller, row, 0, &seen));
  }
  // Where it went: the sessions it was placed into and the cells that ran there after.
  Json used_by = Json::array();
  ASSIGN_OR_RETURN(auto uses, store_->UsesOfFile(file_id, 100));
  for (const store::SessionInput& use : uses) {
    if (!VisibleSession(caller, use.session_id).ok()) continue;  // Another's, not shared.
    Json executions = Json::array();
    ASSIGN_OR_RETURN(auto runs, store_->ListExecutions(use.session_id, store::Page{1000, ""}));
    for (auto it = runs.rbegin(); it != runs.rend(); ++it) {
      if (it->started_at_ms < use.placed_at_ms) continue;
      executions.push_back({{"id", it->id},
                            {"status", it->status},
                            {"code_sha256", it->code_sha256},
                            {"started_at", TimeOrNull(it->started_at_ms)}});
    }
    used_by.push_back({{"session_id", use.session_id},
                       {"placed_at", TimeOrNull(use.placed_at_ms)},
                       {"executions", executions}});
  }
  lineage["used_by"] = used_by;
  return lineage;
}

}  // namespace pycell::service
