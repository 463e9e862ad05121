// MetadataStore: where pycell keeps its records — sessions, executions and files (and, from the
// evidence issue on, audit events and usage). One SQLite database today (sqlite_store.cc);
// PostgreSQL later, so the SQL stays portable and migrations are numbered and applied at Open.
//
// Records are plain structs; times are milliseconds since the Unix epoch (UTC), 0 meaning "none".
// JSON columns hold JSON text that the store does not interpret.
//
// Errors: NotFound for an unknown id; InvalidArgument for a record that breaks a constraint
// (duplicate id, unknown session); Unavailable when the database stays busy past its timeout;
// Internal for anything else the database reports (the message names the statement).
//
// Thread-safety: every method may be called from any thread; each call is one transaction.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace pycell::store {

struct SessionRow {
  std::string id;                 // sess_…
  std::string pool;
  std::string status;             // "active" | "ended"
  std::string end_reason;         // "" while active; "closed", "idle", "server_restart", …
  int64_t created_at_ms = 0;
  int64_t last_active_at_ms = 0;
  int64_t expires_at_ms = 0;
  int64_t ended_at_ms = 0;
  std::string limits_json = "{}";
  std::string metadata_json = "{}";  // The caller's free-form metadata (agent_id, thread_id, …).
  int64_t execution_count = 0;
};

struct ExecutionRow {
  std::string id;          // exec_…
  std::string session_id;
  std::string status;      // "ok" | "error" | "timeout" | "crashed" | "interrupted"
  std::string code;
  std::string code_sha256;
  int64_t started_at_ms = 0;
  double duration_ms = 0;
  std::string record_json;  // The whole execution object as the API returns it.
};

struct FileRow {
  std::string id;          // file_…
  std::string filename;
  int64_t bytes = 0;
  std::string sha256;      // Lower-case hex; names the blob in the FileStore.
  std::string media_type;
  std::string purpose;     // "input" | "output"
  int64_t created_at_ms = 0;
  int64_t expires_at_ms = 0;  // 0: never.
  std::string session_id;     // Outputs: the session that wrote it.
  std::string execution_id;   // Outputs: the execution that wrote it.
  std::string path;           // Outputs: its path under /mnt/data.
};

// A stored file placed into a session's /mnt/data (for lineage: what a cell could read).
struct SessionInput {
  std::string session_id;
  std::string file_id;
  std::string filename;
  std::string sha256;
  int64_t placed_at_ms = 0;
};

// Keyset paging, newest first: `after` is the id of the last row of the previous page. `limit` is
// clamped to 1..1001 (the API pages up to 1000 and asks for one more to see if more follow).
struct Page {
  int limit = 100;
  std::string after;
};

struct FileFilter {
  std::string purpose;       // "" = any
  std::string session_id;    // "" = any
  std::string execution_id;  // "" = any
};

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;

  // Sessions. PutSession inserts or replaces the whole row.
  virtual Status PutSession(const SessionRow& row) = 0;
  virtual Result<SessionRow> GetSession(const std::string& id) = 0;
  // status "" = any.
  virtual Result<std::vector<SessionRow>> ListSessions(const std::string& status,
                                                       const Page& page) = 0;
  // Marks every "active" session ended with `reason` at `now_ms` (start after a crash).
  // Returns how many.
  virtual Result<int64_t> EndActiveSessions(const std::string& reason, int64_t now_ms) = 0;

  // One execution, the output files it produced and its session's new state, in one
  // transaction: either all are recorded or none.
  virtual Status RecordExecution(const ExecutionRow& execution,
                                 const std::vector<FileRow>& artifacts,
                                 const SessionRow& session) = 0;
  virtual Result<ExecutionRow> GetExecution(const std::string& id) = 0;
  virtual Result<std::vector<ExecutionRow>> ListExecutions(const std::string& session_id,
                                                           const Page& page) = 0;

  // Files.
  virtual Status PutFile(const FileRow& row) = 0;
  virtual Result<FileRow> GetFile(const std::string& id) = 0;
  virtual Result<std::vector<FileRow>> ListFiles(const FileFilter& filter, const Page& page) = 0;
  // Deletes the record; returns how many file records still name the same sha256 (0: the blob
  // may go).
  virtual Result<int64_t> DeleteFile(const std::string& id) = 0;
  // Files whose expires_at_ms is set and ≤ now_ms, oldest first, at most `limit`.
  virtual Result<std::vector<FileRow>> ExpiredFiles(int64_t now_ms, int limit) = 0;
  // Every sha256 some file record names (for sweeping blobs no record points at).
  virtual Result<std::vector<std::string>> ReferencedBlobs() = 0;

  // Lineage: which stored files were placed into which sessions, and when. Placing the same
  // file into a session twice keeps the first time.
  virtual Status AddSessionInputs(const std::vector<SessionInput>& inputs) = 0;
  // A session's inputs, oldest first.
  virtual Result<std::vector<SessionInput>> SessionInputs(const std::string& session_id) = 0;
  // Where a file was placed, oldest first (at most `limit`).
  virtual Result<std::vector<SessionInput>> UsesOfFile(const std::string& file_id, int limit) = 0;

  // The schema version the database is at (the number of the last migration applied).
  virtual Result<int> SchemaVersion() = 0;
};

// Opens (creating if needed) the SQLite database at `path` in WAL mode, applies pending
// migrations, and returns the store. InvalidArgument if the database is newer than this binary.
Result<std::unique_ptr<MetadataStore>> OpenSqliteStore(const std::string& path);

}  // namespace pycell::store
