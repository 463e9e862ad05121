#include "store/pg_migrations.h"

#include <string>
#include <string_view>

#include "common/logging.h"

namespace pycell::store {
namespace {

// Notes on the PostgreSQL schema, true of every migration (migrations.cc has the rest):
// - TEXT is COLLATE "C": ids, names and hashes sort byte by byte, as SQLite sorts them, whatever
//   locale the database was created with (keyset paging relies on `id < $1` and ORDER BY id
//   agreeing).
// - Columns that hold bytes a client chose and that may be anything (a cell's code, a file's name
//   and path) are BYTEA: TEXT refuses NUL and bytes that are not UTF-8, which SQLite keeps.
// - Flags are BIGINT 0/1, as in SQLite, so one row codec serves both backends.
constexpr std::string_view kMigration1 = R"sql(
CREATE TABLE sessions (
  id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  pool TEXT COLLATE "C" NOT NULL,
  status TEXT COLLATE "C" NOT NULL,
  end_reason TEXT COLLATE "C" NOT NULL,
  created_at_ms BIGINT NOT NULL,
  last_active_at_ms BIGINT NOT NULL,
  expires_at_ms BIGINT NOT NULL,
  ended_at_ms BIGINT NOT NULL,
  limits_json TEXT NOT NULL,
  metadata_json TEXT NOT NULL,
  execution_count BIGINT NOT NULL
);
CREATE INDEX sessions_by_status ON sessions (status, id);

CREATE TABLE executions (
  id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  session_id TEXT COLLATE "C" NOT NULL REFERENCES sessions (id),
  status TEXT COLLATE "C" NOT NULL,
  code BYTEA NOT NULL,
  code_sha256 TEXT COLLATE "C" NOT NULL,
  started_at_ms BIGINT NOT NULL,
  duration_ms DOUBLE PRECISION NOT NULL,
  record_json TEXT NOT NULL
);
CREATE INDEX executions_by_session ON executions (session_id, id);

CREATE TABLE files (
  id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  filename BYTEA NOT NULL,
  bytes BIGINT NOT NULL,
  sha256 TEXT COLLATE "C" NOT NULL,
  media_type TEXT COLLATE "C" NOT NULL,
  purpose TEXT COLLATE "C" NOT NULL,
  created_at_ms BIGINT NOT NULL,
  expires_at_ms BIGINT NOT NULL,
  session_id TEXT COLLATE "C" NOT NULL,
  execution_id TEXT COLLATE "C" NOT NULL,
  path BYTEA NOT NULL
);
CREATE INDEX files_by_sha256 ON files (sha256);
CREATE INDEX files_by_expiry ON files (expires_at_ms);
CREATE INDEX files_by_session ON files (session_id, id);
CREATE INDEX files_by_execution ON files (execution_id, id);
)sql";

constexpr std::string_view kMigration2 = R"sql(
CREATE TABLE session_inputs (
  session_id TEXT COLLATE "C" NOT NULL,
  file_id TEXT COLLATE "C" NOT NULL,
  filename BYTEA NOT NULL,
  sha256 TEXT COLLATE "C" NOT NULL,
  placed_at_ms BIGINT NOT NULL,
  PRIMARY KEY (session_id, file_id)
);
CREATE INDEX session_inputs_by_file ON session_inputs (file_id, placed_at_ms);
)sql";

// audit_head is PostgreSQL's own: the one row every appender locks (pg_store.cc says why).
constexpr std::string_view kMigration3 = R"sql(
CREATE TABLE projects (
  id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  name TEXT COLLATE "C" NOT NULL UNIQUE,
  share_sessions BIGINT NOT NULL,
  quota_concurrent_sessions BIGINT NOT NULL,
  quota_sessions_per_day BIGINT NOT NULL,
  quota_cpu_hours_per_day DOUBLE PRECISION NOT NULL,
  quota_storage_bytes BIGINT NOT NULL,
  created_at_ms BIGINT NOT NULL
);

CREATE TABLE api_keys (
  id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  secret_sha256 TEXT COLLATE "C" NOT NULL,
  principal TEXT COLLATE "C" NOT NULL,
  project_id TEXT COLLATE "C" NOT NULL REFERENCES projects (id),
  role TEXT COLLATE "C" NOT NULL,
  all_projects BIGINT NOT NULL,
  created_at_ms BIGINT NOT NULL,
  revoked_at_ms BIGINT NOT NULL,
  created_by TEXT COLLATE "C" NOT NULL
);
CREATE INDEX api_keys_by_project ON api_keys (project_id, id);
INSERT INTO projects VALUES ('proj_00000000000000000000000000', 'default', 0, 0, 0, 0, 0, 0);

ALTER TABLE sessions ADD COLUMN project_id TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN principal TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN agent_id TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN cpu_ms DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN peak_memory_bytes BIGINT NOT NULL DEFAULT 0;
UPDATE sessions SET project_id = 'proj_00000000000000000000000000';
CREATE INDEX sessions_by_project ON sessions (project_id, id);
CREATE INDEX sessions_by_project_created ON sessions (project_id, created_at_ms);
CREATE INDEX sessions_by_created ON sessions (created_at_ms);

ALTER TABLE executions ADD COLUMN project_id TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE executions ADD COLUMN principal TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE executions ADD COLUMN cpu_ms DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE executions ADD COLUMN peak_memory_bytes BIGINT NOT NULL DEFAULT 0;
UPDATE executions SET project_id = 'proj_00000000000000000000000000';
CREATE INDEX executions_by_project_started ON executions (project_id, started_at_ms);

ALTER TABLE files ADD COLUMN project_id TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE files ADD COLUMN principal TEXT COLLATE "C" NOT NULL DEFAULT '';
UPDATE files SET project_id = 'proj_00000000000000000000000000';
CREATE INDEX files_by_project ON files (project_id, id);

CREATE TABLE audit_events (
  seq BIGINT NOT NULL PRIMARY KEY,
  id TEXT COLLATE "C" NOT NULL UNIQUE,
  time_ms BIGINT NOT NULL,
  principal TEXT COLLATE "C" NOT NULL,
  project_id TEXT COLLATE "C" NOT NULL,
  key_id TEXT COLLATE "C" NOT NULL,
  action TEXT COLLATE "C" NOT NULL,
  target TEXT COLLATE "C" NOT NULL,
  outcome TEXT COLLATE "C" NOT NULL,
  request_id TEXT COLLATE "C" NOT NULL,
  code_sha256 TEXT COLLATE "C" NOT NULL,
  detail_json TEXT NOT NULL,
  prev_hash TEXT COLLATE "C" NOT NULL,
  hash TEXT COLLATE "C" NOT NULL
);
CREATE INDEX audit_events_by_time ON audit_events (time_ms);
-- Append-only: row triggers refuse UPDATE and DELETE, a statement trigger TRUNCATE (which row
-- triggers do not see). The hash chain detects changes made around them.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit events are append-only';
END
$$;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- The chain's head: the seq and hash of the last event. One row, locked by every append.
CREATE TABLE audit_head (
  id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
  seq BIGINT NOT NULL,
  hash TEXT COLLATE "C" NOT NULL
);
INSERT INTO audit_head VALUES
  (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE usage_events (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  time_ms BIGINT NOT NULL,
  start_ms BIGINT NOT NULL,
  project_id TEXT COLLATE "C" NOT NULL,
  principal TEXT COLLATE "C" NOT NULL,
  agent_id TEXT COLLATE "C" NOT NULL,
  session_id TEXT COLLATE "C" NOT NULL,
  kind TEXT COLLATE "C" NOT NULL,
  amount BIGINT NOT NULL
);
CREATE INDEX usage_events_by_time ON usage_events (time_ms);
)sql";

constexpr std::string_view kMigration4 = R"sql(
ALTER TABLE sessions ADD COLUMN forked_from TEXT COLLATE "C" NOT NULL DEFAULT '';
)sql";

constexpr Migration kPostgresMigrations[] = {
    {1, "sessions, executions and files", kMigration1},
    {2, "session inputs (lineage)", kMigration2},
    {3, "projects, keys, audit log and usage", kMigration3},
    {4, "session forks", kMigration4},
};

// The key of the transaction advisory lock migrators take ("pycell-m" in ASCII): any constant
// would do, as long as nothing else in the database uses it.
constexpr int64_t kMigrationLockKey = 0x707963656c6c2d6d;

}  // namespace

std::span<const Migration> PostgresMigrations() { return kPostgresMigrations; }

Result<int> PostgresSchemaVersion(PgConn& conn) {
  ASSIGN_OR_RETURN(PgResult exists,
                   conn.Exec("SELECT to_regclass('schema_migrations') IS NOT NULL"));
  if (exists.Text(0, 0) != "t") return 0;
  ASSIGN_OR_RETURN(PgResult version,
                   conn.Exec("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"));
  return static_cast<int>(version.Int64(0, 0));
}

Result<int> ApplyPostgresMigrations(PgConn& conn, int64_t now_ms) {
  // The two backends must agree on what each version number means.
  CHECK(static_cast<int>(std::size(kPostgresMigrations)) == LatestSchemaVersion());
  const int latest = LatestSchemaVersion();
  while (true) {
    ASSIGN_OR_RETURN(PgTransaction transaction, PgTransaction::Begin(conn));
    // Held to the end of this transaction: a second migrator waits here, then reads the version
    // this one left. (A transaction lock, not a session one, so it is released whatever happens
    // to this process, and works through a transaction-mode pooler.)
    RETURN_IF_ERROR(
        conn.Exec("SELECT pg_advisory_xact_lock($1)", PgParams().Add(kMigrationLockKey)).status());
    RETURN_IF_ERROR(conn.ExecScript(R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER NOT NULL PRIMARY KEY,
  applied_at_ms BIGINT NOT NULL
))sql",
                                    "create schema_migrations"));
    ASSIGN_OR_RETURN(int current, PostgresSchemaVersion(conn));
    if (current > latest) {
      return Status::InvalidArgument("metadata database " + conn.redacted_url() +
                                     ": database schema version " + std::to_string(current) +
                                     " is newer than this pycell (" + std::to_string(latest) +
                                     "); upgrade pycell");
    }
    if (current == latest) {
      RETURN_IF_ERROR(transaction.Commit());
      return current;
    }
    const Migration& migration = kPostgresMigrations[current];
    CHECK(migration.version == current + 1);
    RETURN_IF_ERROR(
        conn.ExecScript(migration.sql, "migration " + std::to_string(migration.version)));
    RETURN_IF_ERROR(conn.Exec("INSERT INTO schema_migrations (version, applied_at_ms) "
                              "VALUES ($1, $2)",
                              PgParams().Add(migration.version).Add(now_ms))
                        .status());
    RETURN_IF_ERROR(transaction.Commit());
    LOG_INFO("metadata database {}: applied migration {} ({})", conn.redacted_url(),
             migration.version, migration.description);
  }
}

}  // namespace pycell::store
