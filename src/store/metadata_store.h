// MetadataStore: where pycell keeps its records — projects, API keys, sessions, executions,
// files, the hash-chained audit log and usage events. Two backends: one SQLite database file
// (sqlite_store.cc; migrations applied at Open) for a single host, and PostgreSQL (pg_store.cc;
// migrations applied by MigratePostgres only) shared by many pycell processes. Both keep the same
// schema version numbers and pass the same tests (store_test_fixture.h).
//
// Records are plain structs; times are milliseconds since the Unix epoch (UTC), 0 meaning "none".
// JSON columns hold JSON text that the store does not interpret.
//
// Errors: NotFound for an unknown id; InvalidArgument for a record that breaks a constraint
// (duplicate id, unknown session) or holds what the database cannot keep (PostgreSQL: a NUL or
// bytes that are not UTF-8 in a text column other than code, filename and path); Unavailable when
// the database stays busy past its timeout or cannot be reached;
// Internal for anything else the database reports (the message names the statement), and when
// an action's audit event cannot be written.
//
// Audit: every method that changes state takes a Trail — the audit event of the action and the
// usage it metered — and writes it in the same transaction as the change, so an action whose event
// cannot be written fails and leaves nothing behind. The store assigns the event's seq, prev_hash
// and hash under the write lock (audit/audit_event.h); the audit table is append-only (triggers
// refuse UPDATE and DELETE).
//
// Thread-safety: every method may be called from any thread; each call is one transaction.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/audit_event.h"
#include "common/status.h"

namespace pycell::store {

// The project every record made before projects existed belongs to, and the one bootstrap makes.
inline constexpr const char* kDefaultProjectId = "proj_00000000000000000000000000";

struct ProjectRow {
  std::string id;               // proj_…
  std::string name;             // Unique; [a-z0-9_-]{1,64}.
  bool share_sessions = false;  // Users may see and use the other principals' sessions.
  // Quotas; 0 = none.
  int64_t quota_concurrent_sessions = 0;
  int64_t quota_sessions_per_day = 0;
  double quota_cpu_hours_per_day = 0;
  int64_t quota_storage_bytes = 0;
  int64_t created_at_ms = 0;
};

struct KeyRow {
  std::string id;             // key_…
  std::string secret_sha256;  // Of the secret part of the token; the token itself is never kept.
  std::string principal;
  std::string project_id;
  std::string role;           // "admin" | "operator" | "user" | "auditor"
  bool all_projects = false;  // Auditors: read every project.
  int64_t created_at_ms = 0;
  int64_t revoked_at_ms = 0;  // 0: valid.
  std::string created_by;     // The principal who made it ("bootstrap" for the first admin).
};

// Metered quantities that are not rows of their own: bytes moved, and the storage a deleted file
// held over its life ([start_ms, time_ms]).
struct UsageEvent {
  int64_t time_ms = 0;
  int64_t start_ms = 0;  // Storage: when the file was made; otherwise = time_ms.
  std::string project_id;
  std::string principal;
  std::string agent_id;
  std::string session_id;
  std::string kind;  // "upload_bytes" | "download_bytes" | "storage_bytes"
  int64_t amount = 0;
};

// Counts for metrics: file records, their bytes, and the audit log's length (its last seq).
struct StoreTotals {
  int64_t files = 0;
  int64_t bytes = 0;
  int64_t audit_events = 0;
};

// What a write records besides its rows (see the top of this file).
struct Trail {
  std::optional<audit::AuditEvent> audit;
  std::vector<UsageEvent> usage;
};

struct AuditFilter {
  int64_t from_ms = 0;    // Inclusive; 0 = from the start.
  int64_t to_ms = 0;      // Exclusive; 0 = to the end.
  std::string principal;  // "" = any, likewise below.
  std::string action;
  std::string target;
  std::string project_id;
  int64_t after_seq = 0;  // Paging: events with seq > after_seq, oldest first.
  int limit = 100;        // Clamped to 1..10001.
};

struct SessionRow {
  std::string id;  // sess_…
  std::string pool;
  std::string status;      // "active" | "ended"
  std::string end_reason;  // "" while active; "closed", "idle", "server_restart", …
  int64_t created_at_ms = 0;
  int64_t last_active_at_ms = 0;
  int64_t expires_at_ms = 0;
  int64_t ended_at_ms = 0;
  std::string limits_json = "{}";
  std::string metadata_json = "{}";  // The caller's free-form metadata (agent_id, thread_id, …).
  int64_t execution_count = 0;
  std::string project_id;
  std::string principal;          // Who created it.
  std::string agent_id;           // metadata.agent_id, kept as a column for usage by agent.
  double cpu_ms = 0;              // Summed over its executions (from the cgroup).
  int64_t peak_memory_bytes = 0;  // The highest of its executions.
  std::string forked_from;        // The session it is a fork of; empty for any other.
};

struct ExecutionRow {
  std::string id;  // exec_…
  std::string session_id;
  std::string status;  // "ok" | "error" | "timeout" | "crashed" | "interrupted"
  std::string code;
  std::string code_sha256;
  int64_t started_at_ms = 0;
  double duration_ms = 0;
  std::string record_json;  // The whole execution object as the API returns it.
  std::string project_id;
  std::string principal;  // Who ran it.
  double cpu_ms = 0;
  int64_t peak_memory_bytes = 0;
};

struct FileRow {
  std::string id;  // file_…
  std::string filename;
  int64_t bytes = 0;
  std::string sha256;  // Lower-case hex; names the blob in the FileStore.
  std::string media_type;
  std::string purpose;  // "input" | "output"
  int64_t created_at_ms = 0;
  int64_t expires_at_ms = 0;  // 0: never.
  std::string session_id;     // Outputs: the session that wrote it.
  std::string execution_id;   // Outputs: the execution that wrote it.
  std::string path;           // Outputs: its path under /mnt/data.
  std::string project_id;
  std::string principal;  // Who uploaded it, or ran the cell that wrote it.
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
  std::string project_id;    // "" = any
  std::string purpose;       // "" = any
  std::string session_id;    // "" = any
  std::string execution_id;  // "" = any
};

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;

  // Projects. PutProject inserts or replaces; InvalidArgument for a name another project has.
  virtual Status PutProject(const ProjectRow& row, const Trail& trail = {}) = 0;
  virtual Result<ProjectRow> GetProject(const std::string& id) = 0;
  virtual Result<ProjectRow> GetProjectByName(const std::string& name) = 0;
  virtual Result<std::vector<ProjectRow>> ListProjects() = 0;

  // API keys. PutKey inserts or replaces (revoking is a replace with revoked_at_ms set).
  virtual Status PutKey(const KeyRow& row, const Trail& trail = {}) = 0;
  virtual Result<KeyRow> GetKey(const std::string& id) = 0;
  // project_id "" = every project; oldest first.
  virtual Result<std::vector<KeyRow>> ListKeys(const std::string& project_id,
                                               bool include_revoked) = 0;
  virtual Result<int64_t> CountKeys() = 0;

  // Called with every audit event once its transaction has committed (with its seq and hash),
  // on the writing thread, with the store's lock held: it must be quick and must not call the
  // store (diagnostic settings queue it). Set once, before the store is shared.
  virtual void SetAuditListener(std::function<void(const audit::AuditEvent&)> listener) = 0;

  // Audit. Record writes the trail alone (for actions that change no row: downloads, denials).
  virtual Status Record(const Trail& trail) = 0;
  virtual Result<std::vector<audit::AuditEvent>> ListAudit(const AuditFilter& filter) = 0;

  // Sessions. PutSession inserts or replaces the whole row.
  virtual Status PutSession(const SessionRow& row, const Trail& trail = {}) = 0;
  virtual Result<SessionRow> GetSession(const std::string& id) = 0;
  // status "" = any; project_id, principal "" = any.
  virtual Result<std::vector<SessionRow>> ListSessions(const std::string& status, const Page& page,
                                                       const std::string& project_id = "",
                                                       const std::string& principal = "") = 0;
  // Marks every "active" session ended with `reason` at `now_ms` (start after a crash), with a
  // "session.end" audit event (principal "system") for each. Returns how many.
  virtual Result<int64_t> EndActiveSessions(const std::string& reason, int64_t now_ms) = 0;

  // One execution, the output files it produced and its session's new state, in one
  // transaction: either all are recorded or none.
  virtual Status RecordExecution(const ExecutionRow& execution,
                                 const std::vector<FileRow>& artifacts, const SessionRow& session,
                                 const Trail& trail = {}) = 0;
  virtual Result<ExecutionRow> GetExecution(const std::string& id) = 0;
  virtual Result<std::vector<ExecutionRow>> ListExecutions(const std::string& session_id,
                                                           const Page& page) = 0;

  // Files.
  virtual Status PutFile(const FileRow& row, const Trail& trail = {}) = 0;
  virtual Result<FileRow> GetFile(const std::string& id) = 0;
  virtual Result<std::vector<FileRow>> ListFiles(const FileFilter& filter, const Page& page) = 0;
  // Deletes the record; returns how many file records still name the same sha256 (0: the blob
  // may go).
  virtual Result<int64_t> DeleteFile(const std::string& id, const Trail& trail = {}) = 0;
  // Files whose expires_at_ms is set and ≤ now_ms, oldest first, at most `limit`.
  virtual Result<std::vector<FileRow>> ExpiredFiles(int64_t now_ms, int limit) = 0;
  // How many file records name the blob `sha256`.
  virtual Result<int64_t> FilesWithBlob(const std::string& sha256) = 0;
  // Every sha256 some file record names (for sweeping blobs no record points at).
  virtual Result<std::vector<std::string>> ReferencedBlobs() = 0;

  // Lineage: which stored files were placed into which sessions, and when. Placing the same
  // file into a session twice keeps the first time.
  virtual Status AddSessionInputs(const std::vector<SessionInput>& inputs,
                                  const Trail& trail = {}) = 0;
  // A session's inputs, oldest first.
  virtual Result<std::vector<SessionInput>> SessionInputs(const std::string& session_id) = 0;
  // Where a file was placed, oldest first (at most `limit`).
  virtual Result<std::vector<SessionInput>> UsesOfFile(const std::string& file_id, int limit) = 0;

  // Usage and quotas. project_id "" = every project.
  // Sessions created in [from_ms, to_ms).
  virtual Result<std::vector<SessionRow>> SessionsCreated(int64_t from_ms, int64_t to_ms,
                                                          const std::string& project_id) = 0;
  // Usage events whose [start_ms, time_ms] meets [from_ms, to_ms).
  virtual Result<std::vector<UsageEvent>> UsageEvents(int64_t from_ms, int64_t to_ms,
                                                      const std::string& project_id) = 0;
  // Every stored file made before to_ms (for storage held).
  virtual Result<std::vector<FileRow>> FilesCreatedBefore(int64_t to_ms,
                                                          const std::string& project_id) = 0;
  virtual Result<int64_t> CountActiveSessions(const std::string& project_id) = 0;
  virtual Result<int64_t> CountSessionsSince(const std::string& project_id, int64_t since_ms) = 0;
  virtual Result<double> CpuMsSince(const std::string& project_id, int64_t since_ms) = 0;
  virtual Result<int64_t> StoredBytes(const std::string& project_id) = 0;

  virtual Result<StoreTotals> Totals() = 0;

  // The schema version the database is at (the number of the last migration applied).
  virtual Result<int> SchemaVersion() = 0;
};

// Opens (creating if needed) the SQLite database at `path` in WAL mode, applies pending
// migrations, and returns the store. InvalidArgument if the database is newer than this binary.
Result<std::unique_ptr<MetadataStore>> OpenSqliteStore(const std::string& path);

// Connects to the PostgreSQL database at `url` (postgresql://user:password@host:port/database,
// libpq's URI syntax, e.g. ?sslmode=require) and returns the store. It does not migrate:
// FailedPrecondition, saying to run `pycell migrate --store URL`, when the schema is older than
// this binary; InvalidArgument when it is newer or the URL is malformed; Unavailable when the
// server cannot be reached or refuses the login. Messages never show the URL's password.
Result<std::unique_ptr<MetadataStore>> OpenPostgresStore(const std::string& url);

// Brings the PostgreSQL database at `url` to this binary's schema version and returns it. Safe to
// run from two processes at once (an advisory lock serialises them); meant to run once per
// release, as `pycell migrate` (a Kubernetes Job), never from every node. Errors as
// OpenPostgresStore's.
Result<int> MigratePostgres(const std::string& url);

// The backend `url_or_path` names: PostgreSQL for a "postgresql://" or "postgres://" URL
// (OpenPostgresStore), otherwise the SQLite file at that path (OpenSqliteStore).
Result<std::unique_ptr<MetadataStore>> OpenMetadataStore(const std::string& url_or_path);
// True when `url_or_path` names a PostgreSQL database.
bool IsPostgresUrl(std::string_view url_or_path);

}  // namespace pycell::store
