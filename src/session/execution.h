// ExecutionRecord: what one cell did — the unit every adapter (CLI today; REST, MCP and the
// Azure-compatible routes later) translates. Plain data; ToJson gives the canonical JSON form.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "files/safe_dir.h"
#include "kernel/kernel.h"

namespace pycell::session {

struct ExecutionRecord {
  std::string id;          // exec_…
  std::string session_id;  // sess_…
  std::string code;
  // "ok" | "error" | "timeout" | "crashed"
  std::string status;
  std::string timeout_action;  // "interrupted" | "killed" when status is "timeout".
  std::string stdout_text;
  std::string stderr_text;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  std::vector<kernel::Output> outputs;
  bool outputs_truncated = false;  // Displays past the per-cell budget were dropped.
  std::optional<kernel::CellError> error;
  int execution_count = 0;
  std::chrono::system_clock::time_point started_at;
  double duration_ms = 0;        // Wall time seen by the server, request to last output.
  double runner_ms = 0;          // The cell alone, as the runner timed it (IPython's run_cell).
  double cpu_ms = 0;             // CPU time of every process of the session during the cell.
  uint64_t peak_memory_bytes = 0;
  std::vector<files::FileChange> files;  // Created or changed under /mnt/data.
  std::string session_end_reason;        // Set when the cell ended its session ("memory", …).

  // The record as JSON (MIME bundles in Jupyter's shape: {"output_type", "data", "metadata"}).
  std::string ToJson(int indent = -1) const;
};

// One output as the record shows it ({"output_type", "data", "metadata"}), as JSON text: for
// adapters that stream outputs before the record exists.
std::string OutputToJson(const kernel::Output& output, int execution_count);

}  // namespace pycell::session
