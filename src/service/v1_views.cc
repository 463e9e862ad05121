#include "service/v1_views.h"

#include <chrono>

#include "common/clock.h"
#include "common/json_reader.h"

namespace pycell::service {

using Json = nlohmann::json;

Json TimeOrNull(int64_t ms) {
  if (ms == 0) return nullptr;
  return FormatRfc3339(std::chrono::system_clock::time_point(std::chrono::milliseconds(ms)));
}

Json MetadataView(const store::SessionRow& row) {
  auto metadata = ParseUntrustedJson(row.metadata_json);
  return metadata.ok() && metadata->is_object() ? std::move(*metadata) : Json::object();
}

Json FileView(const FileInfo& file) {
  Json j = {{"id", file.id},
            {"object", "file"},
            {"filename", file.filename},
            {"bytes", file.bytes},
            {"sha256", file.sha256},
            {"media_type", file.media_type},
            {"purpose", file.purpose},
            {"created_at", TimeOrNull(file.created_at_ms)},
            {"expires_at", TimeOrNull(file.expires_at_ms)}};
  if (file.purpose == "output") {
    j["session_id"] = file.session_id;
    j["execution_id"] = file.execution_id;
    // An execution's outputs file (outputs-<execution>.json) was never in the session.
    j["path"] = file.path.empty() ? Json(nullptr) : Json("/mnt/data/" + file.path);
  }
  return j;
}

Json SessionView(const SessionInfo& session) {
  const store::SessionRow& row = session.row;
  auto limits = ParseUntrustedJson(row.limits_json);
  return {{"id", row.id},
          {"object", "session"},
          {"pool", row.pool},
          {"project_id", row.project_id},
          {"principal", row.principal},
          {"status", row.status},
          {"end_reason", row.end_reason.empty() ? Json(nullptr) : Json(row.end_reason)},
          {"created_at", TimeOrNull(row.created_at_ms)},
          {"last_active_at", TimeOrNull(row.last_active_at_ms)},
          {"expires_at", row.status == "active" ? TimeOrNull(row.expires_at_ms) : Json(nullptr)},
          {"ended_at", TimeOrNull(row.ended_at_ms)},
          {"execution_count", row.execution_count},
          {"cpu_seconds", row.cpu_ms / 1000},
          {"peak_memory_bytes", row.peak_memory_bytes},
          {"over_expected_duration", session.over_expected_duration},
          {"limits", limits.ok() && limits->is_object() ? std::move(*limits) : Json::object()},
          {"metadata", MetadataView(row)},
          {"forked_from", row.forked_from.empty() ? Json(nullptr) : Json(row.forked_from)}};
}

Json RestoredSessionView(const RestoredSession& restored) {
  Json view = SessionView(restored.session);
  Json differences = Json::array();
  for (const RestoredSession::Difference& d : restored.differences) {
    differences.push_back({{"original_execution_id", d.original_execution_id},
                           {"original_status", d.original_status},
                           {"status", d.status}});
  }
  view["restored_from"] = restored.restored_from;
  view["restored_cells"] = restored.restored_cells;
  view["restore_differences"] = std::move(differences);
  return view;
}

Json PlacedFilesView(const std::vector<PlacedFile>& placed) {
  Json data = Json::array();
  for (const PlacedFile& file : placed) {
    data.push_back(
        {{"file_id", file.file_id}, {"path", "/mnt/data/" + file.path}, {"bytes", file.bytes}});
  }
  return {{"object", "list"}, {"data", std::move(data)}};
}

Json SessionFileView(const SessionFile& file) {
  auto modified = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::nanoseconds(file.modified_at_ns)));
  return {{"path", "/mnt/data/" + file.path},
          {"bytes", file.bytes},
          {"modified_at", FormatRfc3339(modified)}};
}

Json SessionFilesView(const std::vector<SessionFile>& files) {
  Json data = Json::array();
  for (const SessionFile& file : files) data.push_back(SessionFileView(file));
  return {{"object", "list"}, {"data", std::move(data)}};
}

Json RemovedSessionFileView(const std::string& path) {
  return {{"object", "session.file"}, {"path", "/mnt/data/" + path}, {"deleted", true}};
}

Json ExecutionView(const ExecutionInfo& execution) {
  auto parsed = ParseUntrustedJson(execution.json, JsonLimits{1u << 30, 128, 16u << 20});
  return parsed.ok() ? std::move(*parsed) : Json(nullptr);
}

}  // namespace pycell::service
