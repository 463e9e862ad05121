// ExecutionRecord: what one cell did — the unit every adapter (CLI today; REST, MCP and the
// Azure-compatible routes later) translates. Plain data; ToJson gives the canonical JSON form.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "files/safe_dir.h"
#include "kernel/kernel.h"

namespace pycell::session {

// A file the cell wrote, stored as an output file (the service fills these in).
struct Artifact {
  std::string file_id;
  std::string filename;
  std::string path;  // Under /mnt/data.
  uint64_t bytes = 0;
  std::string sha256;
  std::string media_type;
};

// A changed file that was not stored, and why (a link, too large, too many files).
struct SkippedArtifact {
  std::string path;
  std::string reason;
};

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
  // Set by the service when the outputs are larger than the record may hold inline
  // (engine.max_record_outputs): every output is then in this stored file (a JSON array in the
  // record's own shape), and `outputs` keeps only those that fit.
  struct OutputsFile {
    std::string file_id;
    uint64_t bytes = 0;
    std::string sha256;
    size_t count = 0;  // Outputs in the file; outputs.size() of them are in the record too.
  };
  std::optional<OutputsFile> outputs_file;
  std::string outputs_file_skipped;  // Why the outputs that did not fit were not stored.
  std::optional<kernel::CellError> error;
  int execution_count = 0;
  std::chrono::system_clock::time_point started_at;
  double duration_ms = 0;  // Wall time seen by the server, request to last output.
  double runner_ms = 0;    // The cell alone, as the runner timed it (IPython's run_cell).
  double cpu_ms = 0;       // CPU time of every process of the session during the cell.
  uint64_t peak_memory_bytes = 0;
  // False when the host could not read the counter: the record shows null and why
  // (unmeasured_reason), and usage counts 0 for it, so that no quota moves on a made-up number.
  bool cpu_measured = true;
  bool peak_memory_measured = true;
  std::string unmeasured_reason;
  // The rule of the control protocol the session broke (kernel/cell_protocol.h); the session was
  // ended for it (session_end_reason "protocol_violation"). Empty otherwise.
  std::string protocol_violation;
  std::vector<files::FileChange> files;  // Created or changed under /mnt/data.
  std::string session_end_reason;        // Set when the cell ended its session ("memory", …).
  // Why the cell was stopped from outside: "server_shutdown" when the server's stop interrupted
  // it (status then "error" with KeyboardInterrupt, or "crashed" if it had to be killed).
  std::string interrupted_by;
  // Filled by the service, which stores changed files as output files.
  std::string code_sha256;
  std::vector<Artifact> artifacts;
  std::vector<SkippedArtifact> artifacts_skipped;

  // The record as JSON (MIME bundles in Jupyter's shape: {"output_type", "data", "metadata"}).
  std::string ToJson(int indent = -1) const;
  // A stored record (ToJson's text) read back, so that the service hands out records as this
  // struct whether it just ran the cell or reads it from the store: FromJson(r.ToJson()).ToJson()
  // is r.ToJson(). The text is treated as untrusted (bounded parse, typed reads that never
  // throw): a field missing or of the wrong type keeps its default. InvalidArgument when the
  // text is not a JSON object or has no id.
  static Result<ExecutionRecord> FromJson(std::string_view text);
};

// Which of the record's fields the host measured itself (attested: timings, CPU, memory, the code
// and its hash, the files from its own snapshot after the completion) and which only the session
// says (reported: status, outputs, result, error, execution count, runner time, stdout, stderr).
// Every record lists both under "provenance"; docs/evidence.md says what each supports.
const std::vector<std::string>& AttestedFields();
const std::vector<std::string>& ReportedFields();

// What of one execution's changed files may leave the session — as the server's artifacts or
// the CLI's --out — in path order: at most kMaxExportedFiles files, and at most `budget_bytes`
// (the session's /mnt/data quota) counted in logical size, since a copy writes every byte of a
// sparse file that costs the session next to nothing. The rest are skipped, each with why.
inline constexpr size_t kMaxExportedFiles = 100;
struct ExportPlan {
  std::vector<files::FileChange> files;
  std::vector<SkippedArtifact> skipped;
};
ExportPlan PlanExport(const std::vector<files::FileChange>& changed, uint64_t budget_bytes);

// One output as the record shows it ({"output_type", "data", "metadata"}), as JSON text: for
// adapters that stream outputs before the record exists.
std::string OutputToJson(const kernel::Output& output, int execution_count);

}  // namespace pycell::session
