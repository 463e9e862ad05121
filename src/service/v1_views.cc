#include "service/v1_views.h"

#include <chrono>

#include "common/build_info.h"
#include "common/clock.h"
#include "common/config_json.h"
#include "common/json_reader.h"

namespace pycell::service {

using Json = nlohmann::json;

Json TimeOrNull(int64_t ms) {
  if (ms == 0) return nullptr;
  return FormatRfc3339Ms(ms);
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
  return {{"path", "/mnt/data/" + file.path},
          {"bytes", file.bytes},
          {"modified_at", FormatRfc3339Ms(file.modified_at_ns / 1'000'000)}};
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

Json AuditListView(const Listing<audit::AuditEvent>& events) {
  Json data = Json::array();
  for (const audit::AuditEvent& e : events.data) data.push_back(audit::EventToJson(e));
  return Json{{"object", "list"},
              {"data", std::move(data)},
              {"has_more", events.has_more},
              {"last_seq", events.data.empty() ? Json(nullptr) : Json(events.data.back().seq)}};
}

namespace {

Json OriginView(const Origin& origin) {
  const ExecutionSummary& exec = origin.execution;
  // status is what the session reported; the rest the server measured itself.
  Json execution = {{"id", exec.id},
                    {"status", exec.status},
                    {"code", exec.code},
                    {"code_sha256", exec.code_sha256},
                    {"started_at", TimeOrNull(exec.started_at_ms)},
                    {"duration_ms", exec.duration_ms},
                    {"reported_fields", Json::array({"status"})}};
  Json session = nullptr;
  if (origin.session) {
    const store::SessionRow& row = *origin.session;
    Json metadata = MetadataView(row);
    auto limits = ParseUntrustedJson(row.limits_json);
    session = {{"id", row.id},
               {"pool", row.pool},
               {"project_id", row.project_id},
               {"principal", row.principal},
               {"created_at", TimeOrNull(row.created_at_ms)},
               {"limits", limits.ok() && limits->is_object() ? std::move(*limits) : Json::object()},
               {"agent_id", metadata.value("agent_id", Json(nullptr))},
               {"thread_id", metadata.value("thread_id", Json(nullptr))},
               {"run_id", metadata.value("run_id", Json(nullptr))}};
    session["metadata"] = std::move(metadata);
  }
  Json inputs = Json::array();
  for (const Origin::Input& in : origin.inputs) {
    Json input = {{"file_id", in.file_id},
                  {"filename", in.filename},
                  {"sha256", in.sha256},
                  {"via", in.via},
                  {"exists", in.exists}};
    if (in.produced_by) input["produced_by"] = OriginView(*in.produced_by);
    inputs.push_back(std::move(input));
  }
  return {{"execution", std::move(execution)},
          {"session", std::move(session)},
          {"inputs", std::move(inputs)}};
}

}  // namespace

Json LineageView(const FileLineage& lineage) {
  Json used_by = Json::array();
  for (const FileLineage::Use& use : lineage.used_by) {
    Json executions = Json::array();
    for (const ExecutionSummary& run : use.executions) {
      executions.push_back({{"id", run.id},
                            {"status", run.status},
                            {"code_sha256", run.code_sha256},
                            {"started_at", TimeOrNull(run.started_at_ms)}});
    }
    used_by.push_back({{"session_id", use.session_id},
                       {"placed_at", TimeOrNull(use.placed_at_ms)},
                       {"executions", std::move(executions)}});
  }
  return {{"object", "lineage"},
          {"file", FileView(lineage.file)},
          {"produced_by", lineage.produced_by ? OriginView(*lineage.produced_by) : Json(nullptr)},
          {"used_by", std::move(used_by)}};
}

Json ReplayView(const ReplayReport& report) {
  auto id_or_null = [](const std::string& id) { return id.empty() ? Json(nullptr) : Json(id); };
  Json cells = Json::array();
  for (const ReplayReport::Cell& cell : report.cells) {
    Json differences = Json::array();
    for (const notebook::Difference& d : cell.differences) {
      differences.push_back({{"what", d.what}, {"original", d.original}, {"replay", d.replay}});
    }
    cells.push_back({{"index", cell.index},
                     {"original_execution_id", cell.original_execution_id},
                     {"replay_execution_id", id_or_null(cell.replay_execution_id)},
                     {"equal", cell.equal()},
                     {"differences", std::move(differences)},
                     {"notes", cell.notes}});
  }
  return {{"object", "replay"},
          {"original_session_id", report.original_session_id},
          {"replay_session_id", report.replay_session_id},
          {"kept", report.kept},
          {"all_equal", report.all_equal()},
          {"cells", std::move(cells)},
          {"pixel_check_execution_id", id_or_null(report.pixel_check_execution_id)}};
}

Json PoolsView(const std::vector<PoolInfo>& pools) {
  Json data = Json::array();
  for (const PoolInfo& pool : pools) {
    data.push_back({{"name", pool.name},
                    {"object", "pool"},
                    {"ready", pool.ready},
                    {"target_ready", pool.target_ready},
                    {"active", pool.active},
                    {"executing", pool.executing},
                    {"preload", pool.preload},
                    {"limits", LimitsToJson(pool.limits)}});
  }
  return {{"object", "list"}, {"data", std::move(data)}, {"has_more", false}};
}

Json ConfigView(const ServiceConfig& config) {
  Json view = ConfigToJson(config);
  view["object"] = "config";
  return view;
}

Json ReloadView(const ReloadOutcome& outcome) {
  auto changes = [](const std::vector<ConfigChange>& list) {
    Json out = Json::array();
    for (const ConfigChange& c : list) {
      out.push_back({{"key", c.key}, {"from", c.before}, {"to", c.after}});
    }
    return out;
  };
  return {{"applied", changes(outcome.applied)}, {"needs_restart", changes(outcome.needs_restart)}};
}

Json EvidenceKeyView(const EvidenceKeyInfo& key) {
  return {{"object", "evidence_public_key"},
          {"algorithm", "Ed25519"},
          {"pem", key.pem},
          {"sha256", key.sha256}};
}

Json ServiceStatusView(const ServiceStatus& status) {
  const ServerConfig& server = status.server;
  auto protections = ParseUntrustedJson(status.host_protections_json);
  return {
      {"object", "service"},
      {"version", PYCELL_VERSION},
      {"build",
       {{"commit", PYCELL_GIT_COMMIT}, {"type", PYCELL_BUILD_TYPE}, {"compiler", PYCELL_COMPILER}}},
      {"started_at", TimeOrNull(status.started_at_ms)},
      {"uptime_s", status.uptime_s},
      {"listen", server.listen},
      {"metrics_listen",
       server.metrics_listen.empty() ? Json(nullptr) : Json(server.metrics_listen)},
      {"data_dir", server.data_dir},
      {"store",
       {{"backend", status.store_backend},
        {"path", status.store_location.empty() ? Json(nullptr) : Json(status.store_location)},
        {"schema_version", status.schema_version}}},
      {"host_protections", protections.ok() ? std::move(*protections) : Json::array()},
      {"pools", PoolsView(status.pools)["data"]},
      {"keys_by_role", status.keys_by_role},
      {"evidence_public_key", EvidenceKeyView(status.evidence_key)},
      {"config", ConfigToJson(*status.config)}};
}

Json DiagnosticSettingsView(const std::vector<diagnostics::Diagnostics::SinkState>& settings) {
  Json data = Json::array();
  for (const diagnostics::Diagnostics::SinkState& state : settings) {
    data.push_back(
        {{"name", state.name},
         {"sink", state.sink},
         {"categories", state.categories},
         {"sent", state.sent},
         {"failed", state.failed},
         {"dropped", state.dropped},
         {"queued", state.queued},
         {"last_error", state.last_error.empty() ? Json(nullptr) : Json(state.last_error)}});
  }
  return {{"object", "list"}, {"data", std::move(data)}};
}

}  // namespace pycell::service
