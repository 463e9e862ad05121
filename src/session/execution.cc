#include "session/execution.h"

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/utf8.h"

namespace pycell::session {

using nlohmann::json;

namespace {
json BundleToJson(const kernel::MimeBundle& bundle) {
  json data = json::object();
  for (const auto& [mime, value] : bundle.data) {
    if (bundle.IsJsonType(mime)) {
      json parsed = json::parse(value, nullptr, false);
      data[mime] = parsed.is_discarded() ? json(value) : parsed;
    } else {
      data[mime] = value;
    }
  }
  return data;
}
json OutputJson(const kernel::Output& output, int execution_count) {
  json metadata = json::parse(output.bundle.metadata_json, nullptr, false);
  json o = {{"output_type",
             output.kind == kernel::Output::Kind::kResult ? "execute_result" : "display_data"},
            {"data", BundleToJson(output.bundle)},
            {"metadata", metadata.is_discarded() ? json::object() : metadata}};
  if (output.kind == kernel::Output::Kind::kResult) o["execution_count"] = execution_count;
  return o;
}
}  // namespace

std::string OutputToJson(const kernel::Output& output, int execution_count) {
  return OutputJson(output, execution_count).dump(-1, ' ', false, json::error_handler_t::replace);
}

const std::vector<std::string>& AttestedFields() {
  static const std::vector<std::string> fields = {"id",
                                                  "session_id",
                                                  "code",
                                                  "code_sha256",
                                                  "started_at",
                                                  "duration_ms",
                                                  "cpu_ms",
                                                  "peak_memory_bytes",
                                                  "files",
                                                  "artifacts",
                                                  "artifacts_skipped",
                                                  "timeout_action",
                                                  "session_end_reason",
                                                  "protocol_violation"};
  return fields;
}

const std::vector<std::string>& ReportedFields() {
  static const std::vector<std::string> fields = {
      "status", "execution_count", "runner_ms",    "stdout",
      "stderr", "outputs",         "outputs_file", "error"};
  return fields;
}

std::string ExecutionRecord::ToJson(int indent) const {
  json outputs_json = json::array();
  for (const kernel::Output& output : outputs) {
    outputs_json.push_back(OutputJson(output, execution_count));
  }
  json files_json = json::array();
  for (const files::FileChange& f : files) {
    files_json.push_back({{"path", "/mnt/data/" + EscapeNonUtf8(f.path)},
                          {"bytes", f.bytes},
                          {"change", f.created ? "created" : "modified"}});
  }
  json j = {
      {"id", id},
      {"object", "execution"},
      {"session_id", session_id},
      {"status", status},
      {"code", code},
      {"execution_count", execution_count},
      {"stdout", stdout_text},
      {"stderr", stderr_text},
      {"stdout_truncated", stdout_truncated},
      {"stderr_truncated", stderr_truncated},
      {"outputs", outputs_json},
      {"outputs_truncated", outputs_truncated},
      {"error", nullptr},
      {"started_at", FormatRfc3339(started_at)},
      {"duration_ms", duration_ms},
      {"runner_ms", runner_ms},
      {"cpu_ms", cpu_measured ? json(cpu_ms) : json(nullptr)},
      {"peak_memory_bytes", peak_memory_measured ? json(peak_memory_bytes) : json(nullptr)},
      {"files", files_json},
  };
  if (!code_sha256.empty()) j["code_sha256"] = code_sha256;
  json artifacts_json = json::array();
  for (const Artifact& a : artifacts) {
    artifacts_json.push_back({{"id", a.file_id},
                              {"filename", a.filename},
                              {"path", "/mnt/data/" + EscapeNonUtf8(a.path)},
                              {"bytes", a.bytes},
                              {"sha256", a.sha256},
                              {"media_type", a.media_type}});
  }
  j["artifacts"] = std::move(artifacts_json);
  if (!artifacts_skipped.empty()) {
    json skipped = json::array();
    for (const SkippedArtifact& s : artifacts_skipped) {
      skipped.push_back({{"path", "/mnt/data/" + EscapeNonUtf8(s.path)}, {"reason", s.reason}});
    }
    j["artifacts_skipped"] = std::move(skipped);
  }
  if (error) {
    j["error"] = {
        {"ename", error->ename}, {"evalue", error->evalue}, {"traceback", error->traceback}};
  }
  if (!timeout_action.empty()) j["timeout_action"] = timeout_action;
  if (!session_end_reason.empty()) j["session_end_reason"] = session_end_reason;
  if (!interrupted_by.empty()) j["interrupted_by"] = interrupted_by;
  if (!protocol_violation.empty()) j["protocol_violation"] = protocol_violation;
  if (outputs_file) {
    j["outputs_file"] = {{"id", outputs_file->file_id},
                         {"bytes", outputs_file->bytes},
                         {"sha256", outputs_file->sha256},
                         {"outputs", outputs_file->count}};
  } else if (!outputs_file_skipped.empty()) {
    j["outputs_file"] = nullptr;
    j["outputs_file_skipped"] = outputs_file_skipped;
  }
  if (!unmeasured_reason.empty()) j["unmeasured_reason"] = unmeasured_reason;
  // What the host measured itself, and what only the session says (docs/evidence.md).
  j["provenance"] = {{"attested", json(AttestedFields())}, {"reported", json(ReportedFields())}};
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

ExportPlan PlanExport(const std::vector<files::FileChange>& changed, uint64_t budget_bytes) {
  ExportPlan plan;
  uint64_t used = 0;
  for (const files::FileChange& change : changed) {
    if (plan.files.size() >= kMaxExportedFiles) {
      plan.skipped.push_back({change.path, "more than " + std::to_string(kMaxExportedFiles) +
                                               " files in one execution"});
    } else if (change.bytes > budget_bytes - used) {
      plan.skipped.push_back(
          {change.path, "the files of one execution may total " + std::to_string(budget_bytes) +
                            " bytes (the session's /mnt/data quota, sparse files at their full "
                            "size); this one would pass it"});
    } else {
      used += change.bytes;
      plan.files.push_back(change);
    }
  }
  return plan;
}

}  // namespace pycell::session
