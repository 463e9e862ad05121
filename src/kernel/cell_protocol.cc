#include "kernel/cell_protocol.h"

#include <limits>
#include <nlohmann/json.hpp>

#include "common/json_reader.h"

namespace pycell::kernel {

using nlohmann::json;

Status ProtocolViolation(std::string rule) {
  return Status::FailedPrecondition(std::move(rule)).WithReason(kProtocolViolation);
}

bool IsProtocolViolation(const Status& status) {
  return !status.ok() && status.reason() == kProtocolViolation;
}

namespace {

constexpr int64_t kMaxCount = std::numeric_limits<int32_t>::max();
constexpr size_t kMaxTracebackLines = 10000;

// Any malformed field is a violation, named after the frame it came in.
template <typename T>
Result<T> Checked(Result<T> field) {
  if (!field.ok()) return ProtocolViolation(field.status().message());
  return field;
}

Result<json> ParseFrame(std::string_view payload) {
  JsonLimits limits;
  limits.max_bytes = kMaxFrameBytes;
  limits.max_depth = kMaxFrameDepth;
  limits.max_values = kMaxFrameValues;
  auto parsed = ParseUntrustedJson(payload, limits);
  if (!parsed.ok())
    return ProtocolViolation("a frame that is not bounded JSON: " + parsed.status().message());
  if (!parsed->is_object()) return ProtocolViolation("a frame that is not a JSON object");
  return parsed;
}

// {"data": {mime: value}, "metadata": {...}}: values that are strings are kept as they are, JSON
// values (application/json, *+json) as their text.
Result<MimeBundle> BundleOf(const json& message, std::string_view what) {
  MimeBundle bundle;
  ASSIGN_OR_RETURN(const json* data, Checked(ObjectField(message, "data", what)));
  for (const auto& [mime, value] : data->items()) {
    bundle.data.emplace_back(mime, value.is_string() ? value.get<std::string>() : DumpJson(value));
  }
  auto metadata = ObjectField(message, "metadata", what);
  if (metadata.ok()) {
    bundle.metadata_json = DumpJson(**metadata);
  } else if (!metadata.status().IsNotFound()) {
    return ProtocolViolation(metadata.status().message());
  }
  return bundle;
}

}  // namespace

Result<std::string> FrameType(std::string_view payload) {
  ASSIGN_OR_RETURN(json message, ParseFrame(payload));
  return Checked(StringField(message, "type", "a frame"));
}

CellProtocol::CellProtocol(int64_t execute_id, int64_t last_execution_count,
                           const ExecuteOptions& options)
    : execute_id_(execute_id),
      last_execution_count_(last_execution_count),
      max_frames_(options.max_frames),
      max_outputs_(options.max_outputs),
      max_display_bytes_(options.max_display_bytes) {}

Status CellProtocol::OnFrame(std::string_view payload, size_t fd_count, double elapsed_ms,
                             KernelRun* run, const ExecuteObserver& observer) {
  if (fd_count > 0) {
    return ProtocolViolation("descriptors passed on the control socket (" +
                             std::to_string(fd_count) + "); none are expected during a cell");
  }
  if (done_) return ProtocolViolation("a frame after the cell's completion");
  if (++frames_ > max_frames_) {
    return ProtocolViolation("more than " + std::to_string(max_frames_) + " frames in one cell");
  }
  ASSIGN_OR_RETURN(json message, ParseFrame(payload));
  ASSIGN_OR_RETURN(std::string type, Checked(StringField(message, "type", "a frame")));

  if (type == "display" || type == "result") {
    const std::string what = "a '" + type + "' frame";
    ASSIGN_OR_RETURN(MimeBundle bundle, BundleOf(message, what));
    if (type == "result") {
      RETURN_IF_ERROR(
          Checked(OptionalIntField(message, "execution_count", 0, kMaxCount, what)).status());
    }
    // Kept while within both budgets; past either, read (so the runner never blocks) and
    // dropped, and the record says outputs were truncated.
    display_bytes_ += payload.size();
    if (display_bytes_ > max_display_bytes_ || run->outputs.size() >= max_outputs_) {
      run->outputs_truncated = true;
      return Status::Ok();
    }
    Output output{type == "result" ? Output::Kind::kResult : Output::Kind::kDisplay,
                  std::move(bundle)};
    if (observer.on_output) observer.on_output(output);
    run->outputs.push_back(std::move(output));
    return Status::Ok();
  }
  if (type == "error") {
    const char* what = "an 'error' frame";
    CellError error;
    ASSIGN_OR_RETURN(error.ename, Checked(StringField(message, "ename", what)));
    ASSIGN_OR_RETURN(error.evalue, Checked(StringField(message, "evalue", what)));
    ASSIGN_OR_RETURN(error.traceback,
                     Checked(StringArrayField(message, "traceback", kMaxTracebackLines, what)));
    run->error = std::move(error);  // A cell may show more than one; the last one stands.
    return Status::Ok();
  }
  if (type == "done") {
    const char* what = "the 'done' frame";
    ASSIGN_OR_RETURN(
        int64_t id, Checked(IntField(message, "id", 0, std::numeric_limits<int64_t>::max(), what)));
    if (id != execute_id_) {
      return ProtocolViolation("a completion for execute " + std::to_string(id) +
                               " while execute " + std::to_string(execute_id_) + " runs");
    }
    ASSIGN_OR_RETURN(std::string status, Checked(StringField(message, "status", what)));
    if (status != "ok" && status != "error") {
      return ProtocolViolation("the 'done' frame: 'status' must be \"ok\" or \"error\"");
    }
    ASSIGN_OR_RETURN(int64_t count,
                     Checked(IntField(message, "execution_count", 0, kMaxCount, what)));
    // IPython counts a cell once (an empty one not at all): the count follows the last one.
    if (count != last_execution_count_ && count != last_execution_count_ + 1) {
      return ProtocolViolation("the 'done' frame: execution_count " + std::to_string(count) +
                               " does not follow the last one, " +
                               std::to_string(last_execution_count_));
    }
    // The runner's own timing of the cell cannot exceed the host's (plus clock slack).
    ASSIGN_OR_RETURN(double runner_ms,
                     Checked(NumberField(message, "duration_ms", 0, elapsed_ms + 1000, what)));
    run->status = status == "ok" ? RunStatus::kOk : RunStatus::kError;
    run->execution_count = static_cast<int>(count);
    run->runner_duration_ms = runner_ms;
    done_ = true;
    return Status::Ok();
  }
  return ProtocolViolation("a frame of type '" + type + "' during a cell");
}

}  // namespace pycell::kernel
