#include "session/execution.h"

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/json_reader.h"
#include "common/utf8.h"

namespace pycell::session {

using nlohmann::json;

namespace {
// The nesting a JSON value in an output may have: the control protocol's frame depth. A value the
// runner sent as text is parsed within it; deeper (or not JSON) it stays text, since writing out
// a value recurses once per level.
constexpr size_t kMaxValueDepth = 64;

json BundleToJson(const kernel::MimeBundle& bundle) {
  json data = json::object();
  for (const auto& [mime, value] : bundle.data) {
    if (bundle.IsJsonType(mime)) {
      auto parsed = ParseUntrustedJson(value, JsonLimits{value.size(), kMaxValueDepth, 1u << 20});
      data[mime] = parsed.ok() ? std::move(*parsed) : json(value);
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

namespace {

// Lenient typed reads for FromJson: a member of the wanted type, else the default. Never throw.
const json& Member(const json& object, const char* key) {
  static const json kNull;
  if (!object.is_object()) return kNull;
  auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}
std::string Text(const json& object, const char* key) {
  const json& v = Member(object, key);
  return v.is_string() ? v.get<std::string>() : std::string();
}
bool Flag(const json& object, const char* key) {
  const json& v = Member(object, key);
  return v.is_boolean() && v.get<bool>();
}
double Number(const json& object, const char* key) {
  const json& v = Member(object, key);
  return v.is_number() ? v.get<double>() : 0;
}
uint64_t Count(const json& object, const char* key) {
  const json& v = Member(object, key);
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() > 0) return static_cast<uint64_t>(v.get<int64_t>());
  return 0;
}
const json& Array(const json& object, const char* key) {
  static const json kEmpty = json::array();
  const json& v = Member(object, key);
  return v.is_array() ? v : kEmpty;
}
// "/mnt/data/a.csv" → "a.csv": the record's paths are relative to /mnt/data inside.
std::string InData(const std::string& path) {
  static constexpr std::string_view kData = "/mnt/data/";
  return path.rfind(kData, 0) == 0 ? path.substr(kData.size()) : path;
}

kernel::Output OutputFromJson(const json& o) {
  kernel::Output output;
  output.kind = Text(o, "output_type") == "execute_result" ? kernel::Output::Kind::kResult
                                                           : kernel::Output::Kind::kDisplay;
  const json& data = Member(o, "data");
  if (data.is_object()) {
    for (const auto& [mime, value] : data.items()) {
      if (output.bundle.IsJsonType(mime)) {
        output.bundle.data.emplace_back(mime, DumpJson(value));
      } else if (value.is_string()) {
        output.bundle.data.emplace_back(mime, value.get<std::string>());
      }
    }
  }
  const json& metadata = Member(o, "metadata");
  if (metadata.is_object()) output.bundle.metadata_json = DumpJson(metadata);
  return output;
}

}  // namespace

Result<ExecutionRecord> ExecutionRecord::FromJson(std::string_view text) {
  // A stored record holds at most engine.max_record_outputs of outputs plus the streams' caps;
  // the bounds leave room for any configuration and still stop a record that was tampered with.
  ASSIGN_OR_RETURN(json j, ParseUntrustedJson(text, JsonLimits{1u << 30, 128, 16u << 20}));
  if (!j.is_object() || Text(j, "id").empty()) {
    return Status::InvalidArgument("the execution record is not an object with an id");
  }
  ExecutionRecord r;
  r.id = Text(j, "id");
  r.session_id = Text(j, "session_id");
  r.code = Text(j, "code");
  r.code_sha256 = Text(j, "code_sha256");
  r.status = Text(j, "status");
  r.timeout_action = Text(j, "timeout_action");
  r.stdout_text = Text(j, "stdout");
  r.stderr_text = Text(j, "stderr");
  r.stdout_truncated = Flag(j, "stdout_truncated");
  r.stderr_truncated = Flag(j, "stderr_truncated");
  for (const json& o : Array(j, "outputs")) r.outputs.push_back(OutputFromJson(o));
  r.outputs_truncated = Flag(j, "outputs_truncated");
  const json& outputs_file = Member(j, "outputs_file");
  if (outputs_file.is_object()) {
    r.outputs_file = OutputsFile{Text(outputs_file, "id"), Count(outputs_file, "bytes"),
                                 Text(outputs_file, "sha256"), Count(outputs_file, "outputs")};
  }
  r.outputs_file_skipped = Text(j, "outputs_file_skipped");
  const json& error = Member(j, "error");
  if (error.is_object()) {
    kernel::CellError e{Text(error, "ename"), Text(error, "evalue"), {}};
    for (const json& line : Array(error, "traceback")) {
      if (line.is_string()) e.traceback.push_back(line.get<std::string>());
    }
    r.error = std::move(e);
  }
  const json& count = Member(j, "execution_count");
  if (count.is_number_integer()) r.execution_count = count.get<int>();
  auto started = ParseRfc3339Ms(Text(j, "started_at"));
  if (started.ok()) {
    r.started_at = std::chrono::system_clock::time_point(std::chrono::milliseconds(*started));
  }
  r.duration_ms = Number(j, "duration_ms");
  r.runner_ms = Number(j, "runner_ms");
  r.cpu_measured = Member(j, "cpu_ms").is_number();
  r.cpu_ms = Number(j, "cpu_ms");
  r.peak_memory_measured = Member(j, "peak_memory_bytes").is_number();
  r.peak_memory_bytes = Count(j, "peak_memory_bytes");
  r.unmeasured_reason = Text(j, "unmeasured_reason");
  r.protocol_violation = Text(j, "protocol_violation");
  for (const json& f : Array(j, "files")) {
    r.files.push_back({InData(Text(f, "path")), Count(f, "bytes"), Text(f, "change") == "created"});
  }
  r.session_end_reason = Text(j, "session_end_reason");
  r.interrupted_by = Text(j, "interrupted_by");
  for (const json& a : Array(j, "artifacts")) {
    r.artifacts.push_back({Text(a, "id"), Text(a, "filename"), InData(Text(a, "path")),
                           Count(a, "bytes"), Text(a, "sha256"), Text(a, "media_type")});
  }
  for (const json& s : Array(j, "artifacts_skipped")) {
    r.artifacts_skipped.push_back({InData(Text(s, "path")), Text(s, "reason")});
  }
  return r;
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
