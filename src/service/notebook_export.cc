// Service::Notebook: a session's cells as a Jupyter notebook (src/notebook), with the
// provenance an auditor needs to tie it to the records: the session, who ran it for which
// agent/thread/run, each execution's id and timing, and the input files with their SHA-256.
#include <algorithm>

#include "common/build_info.h"
#include "common/fs.h"
#include "common/json_reader.h"
#include "notebook/notebook.h"
#include "service/service.h"
#include "service/service_json.h"
#include "session/execution.h"

namespace pycell::service {
namespace {

constexpr uint64_t kNotebookOutputsFiles = 64;

// The record's outputs_file, when it names a stored file ({id, bytes, sha256, outputs}).
const Json* OutputsFileOf(const Json& record) {
  auto it = record.find("outputs_file");
  if (it == record.end() || !it->is_object()) return nullptr;
  auto sha = it->find("sha256");
  auto bytes = it->find("bytes");
  if (sha == it->end() || !sha->is_string() || sha->get_ref<const std::string&>().size() != 64 ||
      bytes == it->end() || !bytes->is_number_unsigned()) {
    return nullptr;
  }
  return &*it;
}

}  // namespace

Result<std::vector<store::ExecutionRow>> Service::SessionExecutions(const std::string& session_id) {
  std::vector<store::ExecutionRow> all;
  store::Page page;
  page.limit = 1000;
  while (true) {
    ASSIGN_OR_RETURN(auto rows, store_->ListExecutions(session_id, page));
    for (auto& row : rows) all.push_back(std::move(row));
    if (rows.size() < static_cast<size_t>(page.limit)) break;
    page.after = all.back().id;
  }
  std::reverse(all.begin(), all.end());  // The store lists newest first.
  return all;
}

Result<Json> Service::Notebook(const auth::Caller& caller, const std::string& session_id) {
  ASSIGN_OR_RETURN(store::SessionRow session, VisibleSession(caller, session_id));
  ASSIGN_OR_RETURN(std::vector<store::ExecutionRow> rows, SessionExecutions(session_id));
  ASSIGN_OR_RETURN(std::vector<store::SessionInput> inputs, store_->SessionInputs(session_id));
  std::vector<Json> executions;
  Json timeline = Json::array();
  // The most bytes of outputs files one export loads: 64 records' worth past their bound.
  uint64_t outputs_budget = kNotebookOutputsFiles * LiveConfig()->engine.max_record_outputs_bytes;
  for (const store::ExecutionRow& row : rows) {
    Json record = Json::parse(row.record_json, nullptr, false);
    if (!record.is_object()) return Status::Internal("execution " + row.id + " has no record");
    // A cell whose outputs were too large for its record keeps all of them in a stored file:
    // the notebook shows them all while that file is kept (retention), the record's share after,
    // and once the export has loaded its budget of such files (the outputs' volume is the
    // tenant's: a notebook of many large cells must not take the server's memory).
    if (const Json* file = OutputsFileOf(record); file != nullptr) {
      const uint64_t bytes = (*file)["bytes"].get<uint64_t>();
      if (bytes <= outputs_budget) {
        JsonLimits limits;
        limits.max_bytes = outputs_budget;
        auto text =
            ReadSmallFile(blobs_->BlobPath((*file)["sha256"].get<std::string>()), outputs_budget);
        auto outputs = text.ok() ? ParseUntrustedJson(*text, limits) : Result<Json>(text.status());
        if (outputs.ok() && outputs->is_array()) {
          record["outputs"] = std::move(*outputs);
          outputs_budget -= bytes;
        }
      }
    }
    timeline.push_back({{"id", row.id},
                        {"status", row.status},
                        {"principal", row.principal},
                        {"started_at", TimeOrNull(row.started_at_ms)},
                        {"duration_ms", row.duration_ms},
                        {"code_sha256", row.code_sha256}});
    executions.push_back(std::move(record));
  }
  Json files = Json::array();
  for (const store::SessionInput& input : inputs) {
    files.push_back({{"file_id", input.file_id},
                     {"filename", input.filename},
                     {"sha256", input.sha256},
                     {"placed_at", TimeOrNull(input.placed_at_ms)}});
  }
  Json metadata = Json::parse(session.metadata_json, nullptr, false);
  if (!metadata.is_object()) metadata = Json::object();
  auto id_of = [&](const char* key) {
    return metadata.contains(key) && metadata[key].is_string() ? metadata[key] : Json(nullptr);
  };
  Json limits = Json::parse(session.limits_json, nullptr, false);
  Json provenance = {
      {"session_id", session.id},
      {"pool", session.pool},
      {"project_id", session.project_id},
      {"principal", session.principal},
      {"agent_id", id_of("agent_id")},
      {"thread_id", id_of("thread_id")},
      {"run_id", id_of("run_id")},
      {"session_metadata", metadata},
      {"limits", limits.is_discarded() ? Json(nullptr) : limits},
      {"status", session.status},
      {"created_at", TimeOrNull(session.created_at_ms)},
      {"ended_at", TimeOrNull(session.ended_at_ms)},
      {"end_reason", session.end_reason.empty() ? Json(nullptr) : Json(session.end_reason)},
      {"input_files", files},
      {"executions", timeline},
      {"exported_at", TimeOrNull(NowMs())},
      {"exported_by", caller.principal},
      {"server_version", PYCELL_VERSION},
      {"server_commit", PYCELL_GIT_COMMIT},
      // Which record fields the server measured and which the session only said
      // (docs/evidence.md, "Attested and reported").
      {"attested_fields", session::AttestedFields()},
      {"reported_fields", session::ReportedFields()}};
  return notebook::MakeNotebook(provenance, executions);
}

}  // namespace pycell::service
