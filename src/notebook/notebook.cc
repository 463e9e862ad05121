#include "notebook/notebook.h"

#include <string>

namespace pycell::notebook {
namespace {

using Json = nlohmann::json;

Json StringOr(const Json& object, const char* key, Json fallback) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? *it : fallback;
}

// nbformat cell ids: 1-64 characters of [a-zA-Z0-9-_]. Execution ids are of that alphabet.
std::string CellId(const Json& execution, size_t index) {
  std::string id = StringOr(execution, "id", "").get<std::string>();
  bool valid = !id.empty() && id.size() <= 64;
  for (char c : id) {
    valid = valid && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_');
  }
  return valid ? id : "cell-" + std::to_string(index + 1);
}

Json Stream(const char* name, const std::string& text) {
  return {{"output_type", "stream"}, {"name", name}, {"text", text}};
}

// A record's rich output as nbformat wants it: the MIME bundle and metadata objects, and
// execute_result's execution_count.
Json RichOutput(const Json& output, const Json& execution_count) {
  std::string type = StringOr(output, "output_type", "display_data").get<std::string>();
  if (type != "execute_result") type = "display_data";
  Json data =
      output.contains("data") && output["data"].is_object() ? output["data"] : Json::object();
  Json metadata = output.contains("metadata") && output["metadata"].is_object() ? output["metadata"]
                                                                                : Json::object();
  Json out = {{"output_type", type}, {"data", data}, {"metadata", metadata}};
  if (type == "execute_result") out["execution_count"] = execution_count;
  return out;
}

}  // namespace

Json CellFromExecution(const Json& execution) {
  Json count = execution.contains("execution_count") && execution["execution_count"].is_number()
                   ? execution["execution_count"]
                   : Json(nullptr);
  Json outputs = Json::array();
  std::string stdout_text = StringOr(execution, "stdout", "").get<std::string>();
  std::string stderr_text = StringOr(execution, "stderr", "").get<std::string>();
  if (!stdout_text.empty()) outputs.push_back(Stream("stdout", stdout_text));
  if (execution.contains("outputs") && execution["outputs"].is_array()) {
    for (const Json& output : execution["outputs"]) {
      if (output.is_object()) outputs.push_back(RichOutput(output, count));
    }
  }
  if (!stderr_text.empty()) outputs.push_back(Stream("stderr", stderr_text));
  if (execution.contains("error") && execution["error"].is_object()) {
    const Json& error = execution["error"];
    Json traceback = Json::array();
    if (error.contains("traceback") && error["traceback"].is_array()) {
      for (const Json& line : error["traceback"]) {
        if (line.is_string()) traceback.push_back(line);
      }
    }
    outputs.push_back({{"output_type", "error"},
                       {"ename", StringOr(error, "ename", "")},
                       {"evalue", StringOr(error, "evalue", "")},
                       {"traceback", traceback}});
  }
  Json pycell = Json::object();
  for (const char* key :
       {"id", "status", "timeout_action", "code_sha256", "started_at", "duration_ms", "runner_ms",
        "cpu_ms", "peak_memory_bytes", "session_end_reason", "stdout_truncated", "stderr_truncated",
        "outputs_truncated"}) {
    if (execution.contains(key) && !execution[key].is_null()) pycell[key] = execution[key];
  }
  Json artifacts = Json::array();
  if (execution.contains("artifacts") && execution["artifacts"].is_array()) {
    for (const Json& artifact : execution["artifacts"]) {
      if (!artifact.is_object()) continue;
      Json a = Json::object();
      for (const char* key : {"id", "path", "filename", "bytes", "sha256"}) {
        if (artifact.contains(key)) a[key] = artifact[key];
      }
      artifacts.push_back(a);
    }
  }
  pycell["artifacts"] = artifacts;
  return {{"cell_type", "code"},
          {"execution_count", count},
          {"metadata", {{"pycell", pycell}}},
          {"source", StringOr(execution, "code", "")},
          {"outputs", outputs}};
}

Json MakeNotebook(const Json& provenance, const std::vector<Json>& executions) {
  Json cells = Json::array();
  for (size_t i = 0; i < executions.size(); ++i) {
    Json cell = CellFromExecution(executions[i]);
    cell["id"] = CellId(executions[i], i);
    cells.push_back(std::move(cell));
  }
  return {{"nbformat", 4},
          {"nbformat_minor", 5},
          {"metadata",
           {{"kernelspec",
             {{"name", "python3"}, {"display_name", "Python 3 (pycell)"}, {"language", "python"}}},
            {"language_info", {{"name", "python"}}},
            {"pycell", provenance}}},
          {"cells", cells}};
}

}  // namespace pycell::notebook
