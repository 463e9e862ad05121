#include "store/migrations.h"

#include <string>

#include "common/logging.h"

namespace pycell::store {
namespace {

// Notes on the schema, true of every migration:
// - Ids are TEXT: a prefix and 26 characters of time-ordered base32, so `ORDER BY id DESC` is
//   newest first and keyset paging is `id < ?` on the primary key or an index ending in id.
// - Times are BIGINT milliseconds since the epoch, 0 meaning "none"; empty strings, not NULL,
//   mean "no value", matching the record structs. Every column is NOT NULL, including the TEXT
//   primary keys (SQLite would otherwise allow NULL there).
// - JSON columns are TEXT the store does not interpret.
constexpr std::string_view kMigration1 = R"sql(
CREATE TABLE sessions (
  id TEXT NOT NULL PRIMARY KEY,
  pool TEXT NOT NULL,
  status TEXT NOT NULL,
  end_reason TEXT NOT NULL,
  created_at_ms BIGINT NOT NULL,
  last_active_at_ms BIGINT NOT NULL,
  expires_at_ms BIGINT NOT NULL,
  ended_at_ms BIGINT NOT NULL,
  limits_json TEXT NOT NULL,
  metadata_json TEXT NOT NULL,
  execution_count BIGINT NOT NULL
);
-- ListSessions(status) pages newest first within one status; EndActiveSessions finds "active".
CREATE INDEX sessions_by_status ON sessions (status, id);

CREATE TABLE executions (
  id TEXT NOT NULL PRIMARY KEY,
  session_id TEXT NOT NULL REFERENCES sessions (id),
  status TEXT NOT NULL,
  code TEXT NOT NULL,
  code_sha256 TEXT NOT NULL,
  started_at_ms BIGINT NOT NULL,
  duration_ms DOUBLE PRECISION NOT NULL,
  record_json TEXT NOT NULL
);
-- ListExecutions pages one session's executions newest first.
CREATE INDEX executions_by_session ON executions (session_id, id);

-- No foreign keys here: an uploaded input belongs to no session or execution (the columns are
-- empty), and a file's record may outlive the records of the session that wrote it.
CREATE TABLE files (
  id TEXT NOT NULL PRIMARY KEY,
  filename TEXT NOT NULL,
  bytes BIGINT NOT NULL,
  sha256 TEXT NOT NULL,
  media_type TEXT NOT NULL,
  purpose TEXT NOT NULL,
  created_at_ms BIGINT NOT NULL,
  expires_at_ms BIGINT NOT NULL,
  session_id TEXT NOT NULL,
  execution_id TEXT NOT NULL,
  path TEXT NOT NULL
);
-- DeleteFile counts the records still naming a blob; ReferencedBlobs lists them.
CREATE INDEX files_by_sha256 ON files (sha256);
-- ExpiredFiles scans the expiry range.
CREATE INDEX files_by_expiry ON files (expires_at_ms);
-- ListFiles filtered by session or execution, newest first.
CREATE INDEX files_by_session ON files (session_id, id);
CREATE INDEX files_by_execution ON files (execution_id, id);
)sql";

// Lineage: the stored files placed into each session. No foreign keys: a file's record may be
// deleted (expired) while the fact that it was an input stays.
constexpr std::string_view kMigration2 = R"sql(
CREATE TABLE session_inputs (
  session_id TEXT NOT NULL,
  file_id TEXT NOT NULL,
  filename TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  placed_at_ms BIGINT NOT NULL,
  PRIMARY KEY (session_id, file_id)
);
-- UsesOfFile: the sessions a file went into.
CREATE INDEX session_inputs_by_file ON session_inputs (file_id, placed_at_ms);
)sql";

// Identity, audit and usage. Records made before it belong to the default project (whose id is
// fixed: store/metadata_store.h's kDefaultProjectId), with no principal.
constexpr std::string_view kMigration3 = R"sql(
CREATE TABLE projects (
  id TEXT NOT NULL PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  share_sessions BIGINT NOT NULL,
  quota_concurrent_sessions BIGINT NOT NULL,
  quota_sessions_per_day BIGINT NOT NULL,
  quota_cpu_hours_per_day DOUBLE PRECISION NOT NULL,
  quota_storage_bytes BIGINT NOT NULL,
  created_at_ms BIGINT NOT NULL
);

CREATE TABLE api_keys (
  id TEXT NOT NULL PRIMARY KEY,
  secret_sha256 TEXT NOT NULL,
  principal TEXT NOT NULL,
  project_id TEXT NOT NULL REFERENCES projects (id),
  role TEXT NOT NULL,
  all_projects BIGINT NOT NULL,
  created_at_ms BIGINT NOT NULL,
  revoked_at_ms BIGINT NOT NULL,
  created_by TEXT NOT NULL
);
CREATE INDEX api_keys_by_project ON api_keys (project_id, id);
INSERT INTO projects VALUES ('proj_00000000000000000000000000', 'default', 0, 0, 0, 0, 0, 0);

ALTER TABLE sessions ADD COLUMN project_id TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN principal TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN agent_id TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN cpu_ms DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN peak_memory_bytes BIGINT NOT NULL DEFAULT 0;
UPDATE sessions SET project_id = 'proj_00000000000000000000000000';
-- Lists scoped to a project page newest first; usage and quotas count by creation time.
CREATE INDEX sessions_by_project ON sessions (project_id, id);
CREATE INDEX sessions_by_project_created ON sessions (project_id, created_at_ms);
CREATE INDEX sessions_by_created ON sessions (created_at_ms);

ALTER TABLE executions ADD COLUMN project_id TEXT NOT NULL DEFAULT '';
ALTER TABLE executions ADD COLUMN principal TEXT NOT NULL DEFAULT '';
ALTER TABLE executions ADD COLUMN cpu_ms DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE executions ADD COLUMN peak_memory_bytes BIGINT NOT NULL DEFAULT 0;
UPDATE executions SET project_id = 'proj_00000000000000000000000000';
-- The CPU quota sums a project's executions since midnight.
CREATE INDEX executions_by_project_started ON executions (project_id, started_at_ms);

ALTER TABLE files ADD COLUMN project_id TEXT NOT NULL DEFAULT '';
ALTER TABLE files ADD COLUMN principal TEXT NOT NULL DEFAULT '';
UPDATE files SET project_id = 'proj_00000000000000000000000000';
CREATE INDEX files_by_project ON files (project_id, id);

-- The audit log: append-only (the triggers refuse changes; the hash chain detects changes
-- made around them, e.g. by someone who drops the triggers).
CREATE TABLE audit_events (
  seq INTEGER NOT NULL PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  time_ms BIGINT NOT NULL,
  principal TEXT NOT NULL,
  project_id TEXT NOT NULL,
  key_id TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  outcome TEXT NOT NULL,
  request_id TEXT NOT NULL,
  code_sha256 TEXT NOT NULL,
  detail_json TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX audit_events_by_time ON audit_events (time_ms);
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;

CREATE TABLE usage_events (
  id INTEGER NOT NULL PRIMARY KEY,
  time_ms BIGINT NOT NULL,
  start_ms BIGINT NOT NULL,
  project_id TEXT NOT NULL,
  principal TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  amount BIGINT NOT NULL
);
CREATE INDEX usage_events_by_time ON usage_events (time_ms);
)sql";

// A session fork names its origin (empty for every other session).
constexpr char kMigration4[] = R"sql(
ALTER TABLE sessions ADD COLUMN forked_from TEXT NOT NULL DEFAULT '';
)sql";

constexpr Migration kMigrations[] = {
    {1, "sessions, executions and files", kMigration1},
    {2, "session inputs (lineage)", kMigration2},
    {3, "projects, keys, audit log and usage", kMigration3},
    {4, "session forks", kMigration4},
};

}  // namespace

std::span<const Migration> Migrations() { return kMigrations; }

int LatestSchemaVersion() { return static_cast<int>(std::size(kMigrations)); }

Result<int> CurrentSchemaVersion(SqliteDb& db) {
  ASSIGN_OR_RETURN(Statement select,
                   db.Prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"));
  ASSIGN_OR_RETURN(bool row, select.Step());
  CHECK(row);  // An aggregate without GROUP BY always yields one row.
  return static_cast<int>(select.ColumnInt64(0));
}

Status ApplyMigrations(SqliteDb& db, int64_t now_ms) {
  RETURN_IF_ERROR(db.Exec(R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER NOT NULL PRIMARY KEY,
  applied_at_ms BIGINT NOT NULL
))sql",
                          "create schema_migrations"));
  ASSIGN_OR_RETURN(int current, CurrentSchemaVersion(db));
  const int latest = LatestSchemaVersion();
  if (current > latest) {
    return Status::InvalidArgument("metadata database " + db.path() + ": database schema version " +
                                   std::to_string(current) + " is newer than this pycell (" +
                                   std::to_string(latest) + "); upgrade pycell");
  }
  for (const Migration& migration : Migrations()) {
    CHECK(migration.version == (&migration - Migrations().data()) + 1);
    if (migration.version <= current) continue;
    ASSIGN_OR_RETURN(Transaction transaction, Transaction::BeginImmediate(db));
    // Read again under the write lock: another process may have applied it since.
    ASSIGN_OR_RETURN(current, CurrentSchemaVersion(db));
    if (migration.version <= current) continue;  // The transaction rolls back; nothing was done.
    const std::string label = "migration " + std::to_string(migration.version);
    RETURN_IF_ERROR(db.Exec(migration.sql, label));
    ASSIGN_OR_RETURN(Statement insert, db.Prepare("INSERT INTO schema_migrations "
                                                  "(version, applied_at_ms) VALUES (?, ?)"));
    insert.Bind(1, migration.version).Bind(2, now_ms);
    RETURN_IF_ERROR(insert.Run());
    RETURN_IF_ERROR(transaction.Commit());
    current = migration.version;
    LOG_INFO("metadata database: applied migration {} ({})", migration.version,
             migration.description);
  }
  return Status::Ok();
}

}  // namespace pycell::store
