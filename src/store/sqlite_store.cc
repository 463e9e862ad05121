// The SQLite MetadataStore: one connection guarded by one mutex. Serialising in-process calls
// costs little (each is a short transaction) and keeps multi-statement transactions on one
// connection without a pool; other processes on the same file are handled by SQLite's locks and
// the busy timeout (see sqlite_db.h).
#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/ids.h"
#include "common/mutex.h"
#include "store/metadata_store.h"
#include "store/migrations.h"
#include "store/sqlite_db.h"

namespace pycell::store {
namespace {

// A page never holds more than this many rows, whatever the caller asks: a page is built in memory
// and sent in one response.
// 1001: the API pages up to 1000 rows and asks for one more to know whether another page follows.
constexpr int kMaxPageLimit = 1001;

int ClampLimit(int limit) { return std::clamp(limit, 1, kMaxPageLimit); }

// --- Row mapping: column lists and the functions that bind and read them, kept side by side so a
// new column is added in one place per table.

constexpr std::string_view kSessionColumns =
    "id, pool, status, end_reason, created_at_ms, last_active_at_ms, expires_at_ms, ended_at_ms, "
    "limits_json, metadata_json, execution_count, project_id, principal, agent_id, cpu_ms, "
    "peak_memory_bytes, forked_from";
constexpr int kSessionColumnCount = 17;

void BindSession(Statement& s, const SessionRow& row) {
  s.Bind(1, row.id).Bind(2, row.pool).Bind(3, row.status).Bind(4, row.end_reason);
  s.Bind(5, row.created_at_ms).Bind(6, row.last_active_at_ms).Bind(7, row.expires_at_ms);
  s.Bind(8, row.ended_at_ms).Bind(9, row.limits_json).Bind(10, row.metadata_json);
  s.Bind(11, row.execution_count).Bind(12, row.project_id).Bind(13, row.principal);
  s.Bind(14, row.agent_id).Bind(15, row.cpu_ms).Bind(16, row.peak_memory_bytes);
  s.Bind(17, row.forked_from);
}

SessionRow ReadSession(const Statement& s) {
  SessionRow row;
  row.id = s.ColumnText(0);
  row.pool = s.ColumnText(1);
  row.status = s.ColumnText(2);
  row.end_reason = s.ColumnText(3);
  row.created_at_ms = s.ColumnInt64(4);
  row.last_active_at_ms = s.ColumnInt64(5);
  row.expires_at_ms = s.ColumnInt64(6);
  row.ended_at_ms = s.ColumnInt64(7);
  row.limits_json = s.ColumnText(8);
  row.metadata_json = s.ColumnText(9);
  row.execution_count = s.ColumnInt64(10);
  row.project_id = s.ColumnText(11);
  row.principal = s.ColumnText(12);
  row.agent_id = s.ColumnText(13);
  row.cpu_ms = s.ColumnDouble(14);
  row.peak_memory_bytes = s.ColumnInt64(15);
  row.forked_from = s.ColumnText(16);
  return row;
}

constexpr std::string_view kExecutionColumns =
    "id, session_id, status, code, code_sha256, started_at_ms, duration_ms, record_json, "
    "project_id, principal, cpu_ms, peak_memory_bytes";
constexpr int kExecutionColumnCount = 12;

void BindExecution(Statement& s, const ExecutionRow& row) {
  s.Bind(1, row.id).Bind(2, row.session_id).Bind(3, row.status).Bind(4, row.code);
  s.Bind(5, row.code_sha256).Bind(6, row.started_at_ms).Bind(7, row.duration_ms);
  s.Bind(8, row.record_json).Bind(9, row.project_id).Bind(10, row.principal);
  s.Bind(11, row.cpu_ms).Bind(12, row.peak_memory_bytes);
}

ExecutionRow ReadExecution(const Statement& s) {
  ExecutionRow row;
  row.id = s.ColumnText(0);
  row.session_id = s.ColumnText(1);
  row.status = s.ColumnText(2);
  row.code = s.ColumnText(3);
  row.code_sha256 = s.ColumnText(4);
  row.started_at_ms = s.ColumnInt64(5);
  row.duration_ms = s.ColumnDouble(6);
  row.record_json = s.ColumnText(7);
  row.project_id = s.ColumnText(8);
  row.principal = s.ColumnText(9);
  row.cpu_ms = s.ColumnDouble(10);
  row.peak_memory_bytes = s.ColumnInt64(11);
  return row;
}

constexpr std::string_view kFileColumns =
    "id, filename, bytes, sha256, media_type, purpose, created_at_ms, expires_at_ms, session_id, "
    "execution_id, path, project_id, principal";
constexpr int kFileColumnCount = 13;

void BindFile(Statement& s, const FileRow& row) {
  s.Bind(1, row.id).Bind(2, row.filename).Bind(3, row.bytes).Bind(4, row.sha256);
  s.Bind(5, row.media_type).Bind(6, row.purpose).Bind(7, row.created_at_ms);
  s.Bind(8, row.expires_at_ms).Bind(9, row.session_id).Bind(10, row.execution_id);
  s.Bind(11, row.path).Bind(12, row.project_id).Bind(13, row.principal);
}

FileRow ReadFile(const Statement& s) {
  FileRow row;
  row.id = s.ColumnText(0);
  row.filename = s.ColumnText(1);
  row.bytes = s.ColumnInt64(2);
  row.sha256 = s.ColumnText(3);
  row.media_type = s.ColumnText(4);
  row.purpose = s.ColumnText(5);
  row.created_at_ms = s.ColumnInt64(6);
  row.expires_at_ms = s.ColumnInt64(7);
  row.session_id = s.ColumnText(8);
  row.execution_id = s.ColumnText(9);
  row.path = s.ColumnText(10);
  row.project_id = s.ColumnText(11);
  row.principal = s.ColumnText(12);
  return row;
}

std::string Placeholders(int count) {
  std::string out;
  for (int i = 0; i < count; ++i) out += i == 0 ? "?" : ", ?";
  return out;
}

// "SELECT <columns> FROM <table> WHERE <equalities> AND id < ? ORDER BY id DESC LIMIT ?", with
// only the conditions that apply: a fixed `(? = '' OR col = ?)` form would keep the planner from
// using the (col, id) indexes.
struct PagedQuery {
  std::string sql;
  std::vector<std::string> args;

  PagedQuery(std::string_view columns, std::string_view table) {
    sql = "SELECT " + std::string(columns) + " FROM " + std::string(table);
  }
  void Where(std::string_view column, const std::string& value) {
    sql += args.empty() ? " WHERE " : " AND ";
    sql += std::string(column) + " = ?";
    args.push_back(value);
  }
  // Runs it for `page` on `db`, reading each row with `read`.
  template <typename Row, typename ReadRow>
  Result<std::vector<Row>> Run(SqliteDb& db, const Page& page, ReadRow read) {
    if (!page.after.empty()) {
      sql += args.empty() ? " WHERE " : " AND ";
      sql += "id < ?";
      args.push_back(page.after);
    }
    sql += " ORDER BY id DESC LIMIT ?";
    ASSIGN_OR_RETURN(Statement select, db.Prepare(sql));
    int index = 1;
    for (const std::string& arg : args) select.Bind(index++, arg);
    select.Bind(index, ClampLimit(page.limit));
    std::vector<Row> rows;
    while (true) {
      ASSIGN_OR_RETURN(bool has_row, select.Step());
      if (!has_row) break;
      rows.push_back(read(select));
    }
    return rows;
  }
};

constexpr std::string_view kProjectColumns =
    "id, name, share_sessions, quota_concurrent_sessions, quota_sessions_per_day, "
    "quota_cpu_hours_per_day, quota_storage_bytes, created_at_ms";

ProjectRow ReadProject(const Statement& s) {
  ProjectRow row;
  row.id = s.ColumnText(0);
  row.name = s.ColumnText(1);
  row.share_sessions = s.ColumnInt64(2) != 0;
  row.quota_concurrent_sessions = s.ColumnInt64(3);
  row.quota_sessions_per_day = s.ColumnInt64(4);
  row.quota_cpu_hours_per_day = s.ColumnDouble(5);
  row.quota_storage_bytes = s.ColumnInt64(6);
  row.created_at_ms = s.ColumnInt64(7);
  return row;
}

constexpr std::string_view kKeyColumns =
    "id, secret_sha256, principal, project_id, role, all_projects, created_at_ms, revoked_at_ms, "
    "created_by";

KeyRow ReadKey(const Statement& s) {
  KeyRow row;
  row.id = s.ColumnText(0);
  row.secret_sha256 = s.ColumnText(1);
  row.principal = s.ColumnText(2);
  row.project_id = s.ColumnText(3);
  row.role = s.ColumnText(4);
  row.all_projects = s.ColumnInt64(5) != 0;
  row.created_at_ms = s.ColumnInt64(6);
  row.revoked_at_ms = s.ColumnInt64(7);
  row.created_by = s.ColumnText(8);
  return row;
}

constexpr std::string_view kAuditColumns =
    "seq, id, time_ms, principal, project_id, key_id, action, target, outcome, request_id, "
    "code_sha256, detail_json, prev_hash, hash";

audit::AuditEvent ReadAudit(const Statement& s) {
  audit::AuditEvent e;
  e.seq = s.ColumnInt64(0);
  e.id = s.ColumnText(1);
  e.time_ms = s.ColumnInt64(2);
  e.principal = s.ColumnText(3);
  e.project_id = s.ColumnText(4);
  e.key_id = s.ColumnText(5);
  e.action = s.ColumnText(6);
  e.target = s.ColumnText(7);
  e.outcome = s.ColumnText(8);
  e.request_id = s.ColumnText(9);
  e.code_sha256 = s.ColumnText(10);
  e.detail_json = s.ColumnText(11);
  e.prev_hash = s.ColumnText(12);
  e.hash = s.ColumnText(13);
  return e;
}

constexpr std::string_view kUsageColumns =
    "time_ms, start_ms, project_id, principal, agent_id, session_id, kind, amount";

UsageEvent ReadUsage(const Statement& s) {
  UsageEvent u;
  u.time_ms = s.ColumnInt64(0);
  u.start_ms = s.ColumnInt64(1);
  u.project_id = s.ColumnText(2);
  u.principal = s.ColumnText(3);
  u.agent_id = s.ColumnText(4);
  u.session_id = s.ColumnText(5);
  u.kind = s.ColumnText(6);
  u.amount = s.ColumnInt64(7);
  return u;
}

// Reads every row of `select` with `read`.
template <typename Row, typename ReadRow>
Result<std::vector<Row>> ReadAll(Statement& select, ReadRow read) {
  std::vector<Row> rows;
  while (true) {
    ASSIGN_OR_RETURN(bool has_row, select.Step());
    if (!has_row) return rows;
    rows.push_back(read(select));
  }
}

class SqliteStore : public MetadataStore {
 public:
  explicit SqliteStore(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}

  // --- projects and keys ---

  Status PutProject(const ProjectRow& row, const Trail& trail) override {
    MutexLock lock(mu_);
    return Write(
               trail,
               [&]() REQUIRES(mu_) -> Status {
                 ASSIGN_OR_RETURN(
                     Statement upsert,
                     db_->Prepare("INSERT INTO projects (" + std::string(kProjectColumns) +
                                  ") VALUES (" + Placeholders(8) +
                                  ") ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
                                  "share_sessions = excluded.share_sessions, "
                                  "quota_concurrent_sessions = excluded.quota_concurrent_sessions, "
                                  "quota_sessions_per_day = excluded.quota_sessions_per_day, "
                                  "quota_cpu_hours_per_day = excluded.quota_cpu_hours_per_day, "
                                  "quota_storage_bytes = excluded.quota_storage_bytes"));
                 upsert.Bind(1, row.id).Bind(2, row.name).Bind(3, row.share_sessions ? 1 : 0);
                 upsert.Bind(4, row.quota_concurrent_sessions).Bind(5, row.quota_sessions_per_day);
                 upsert.Bind(6, row.quota_cpu_hours_per_day).Bind(7, row.quota_storage_bytes);
                 upsert.Bind(8, row.created_at_ms);
                 return upsert.Run();
               })
        .WithContext("put project " + row.name);
  }

  Result<ProjectRow> GetProject(const std::string& id) override {
    return GetOne<ProjectRow>("projects", kProjectColumns, "id", id, ReadProject, "project");
  }

  Result<ProjectRow> GetProjectByName(const std::string& name) override {
    return GetOne<ProjectRow>("projects", kProjectColumns, "name", name, ReadProject, "project");
  }

  Result<std::vector<ProjectRow>> ListProjects() override {
    MutexLock lock(mu_);
    ASSIGN_OR_RETURN(Statement select, db_->Prepare("SELECT " + std::string(kProjectColumns) +
                                                    " FROM projects ORDER BY name"));
    return ReadAll<ProjectRow>(select, ReadProject);
  }

  Status PutKey(const KeyRow& row, const Trail& trail) override {
    MutexLock lock(mu_);
    return Write(
               trail,
               [&]() REQUIRES(mu_) -> Status {
                 ASSIGN_OR_RETURN(
                     Statement upsert,
                     db_->Prepare("INSERT OR REPLACE INTO api_keys (" + std::string(kKeyColumns) +
                                  ") VALUES (" + Placeholders(9) + ")"));
                 upsert.Bind(1, row.id).Bind(2, row.secret_sha256).Bind(3, row.principal);
                 upsert.Bind(4, row.project_id).Bind(5, row.role).Bind(6, row.all_projects ? 1 : 0);
                 upsert.Bind(7, row.created_at_ms)
                     .Bind(8, row.revoked_at_ms)
                     .Bind(9, row.created_by);
                 return upsert.Run();
               })
        .WithContext("put key " + row.id);
  }

  Result<KeyRow> GetKey(const std::string& id) override {
    return GetOne<KeyRow>("api_keys", kKeyColumns, "id", id, ReadKey, "key");
  }

  Result<std::vector<KeyRow>> ListKeys(const std::string& project_id,
                                       bool include_revoked) override {
    MutexLock lock(mu_);
    std::string sql = "SELECT " + std::string(kKeyColumns) + " FROM api_keys WHERE 1 = 1";
    if (!project_id.empty()) sql += " AND project_id = ?";
    if (!include_revoked) sql += " AND revoked_at_ms = 0";
    sql += " ORDER BY id";
    ASSIGN_OR_RETURN(Statement select, db_->Prepare(sql));
    if (!project_id.empty()) select.Bind(1, project_id);
    return ReadAll<KeyRow>(select, ReadKey);
  }

  Result<int64_t> CountKeys() override { return Count("SELECT COUNT(*) FROM api_keys", {}); }

  // --- audit ---

  void SetAuditListener(std::function<void(const audit::AuditEvent&)> listener) override {
    MutexLock lock(mu_);
    audit_listener_ = std::move(listener);
  }

  Status Record(const Trail& trail) override {
    MutexLock lock(mu_);
    return Write(trail, [] { return Status::Ok(); });
  }

  Result<std::vector<audit::AuditEvent>> ListAudit(const AuditFilter& filter) override {
    MutexLock lock(mu_);
    std::string sql = "SELECT " + std::string(kAuditColumns) + " FROM audit_events WHERE seq > ?";
    std::vector<std::string> args;
    auto where = [&](const char* column, const std::string& value) {
      if (value.empty()) return;
      sql += std::string(" AND ") + column + " = ?";
      args.push_back(value);
    };
    where("principal", filter.principal);
    where("action", filter.action);
    where("target", filter.target);
    where("project_id", filter.project_id);
    if (filter.from_ms > 0) sql += " AND time_ms >= " + std::to_string(filter.from_ms);
    if (filter.to_ms > 0) sql += " AND time_ms < " + std::to_string(filter.to_ms);
    sql += " ORDER BY seq LIMIT ?";
    ASSIGN_OR_RETURN(Statement select, db_->Prepare(sql));
    int index = 1;
    select.Bind(index++, filter.after_seq);
    for (const std::string& arg : args) select.Bind(index++, arg);
    select.Bind(index, std::clamp(filter.limit, 1, 10001));
    return ReadAll<audit::AuditEvent>(select, ReadAudit);
  }

  // --- sessions ---

  Status PutSession(const SessionRow& row, const Trail& trail) override {
    MutexLock lock(mu_);
    return Write(trail, [&]() REQUIRES(mu_) { return UpsertSession(row); })
        .WithContext("put session " + row.id);
  }

  Result<SessionRow> GetSession(const std::string& id) override {
    return GetOne<SessionRow>("sessions", kSessionColumns, "id", id, ReadSession, "session");
  }

  Result<std::vector<SessionRow>> ListSessions(const std::string& status, const Page& page,
                                               const std::string& project_id,
                                               const std::string& principal) override {
    MutexLock lock(mu_);
    PagedQuery query(kSessionColumns, "sessions");
    if (!project_id.empty()) query.Where("project_id", project_id);
    if (!principal.empty()) query.Where("principal", principal);
    if (!status.empty()) query.Where("status", status);
    return query.Run<SessionRow>(*db_, page, ReadSession);
  }

  Result<int64_t> EndActiveSessions(const std::string& reason, int64_t now_ms) override {
    MutexLock lock(mu_);
    ASSIGN_OR_RETURN(Transaction transaction, Transaction::BeginImmediate(*db_));
    std::vector<std::pair<std::string, std::string>> active;  // id, project
    {
      ASSIGN_OR_RETURN(Statement select, db_->Prepare("SELECT id, project_id FROM sessions "
                                                      "WHERE status = 'active' ORDER BY id"));
      while (true) {
        ASSIGN_OR_RETURN(bool has_row, select.Step());
        if (!has_row) break;
        active.emplace_back(select.ColumnText(0), select.ColumnText(1));
      }
    }
    ASSIGN_OR_RETURN(Statement update,
                     db_->Prepare("UPDATE sessions SET status = 'ended', end_reason = ?, "
                                  "ended_at_ms = ? WHERE status = 'active'"));
    update.Bind(1, reason).Bind(2, now_ms);
    RETURN_IF_ERROR(update.Run());
    std::vector<audit::AuditEvent> events;
    for (const auto& [id, project] : active) {
      audit::AuditEvent event;
      event.time_ms = now_ms;
      event.principal = "system";
      event.project_id = project;
      event.action = "session.end";
      event.target = id;
      event.detail_json = "{\"reason\":\"" + reason + "\"}";
      RETURN_IF_ERROR(AppendAudit(&event));
      events.push_back(std::move(event));
    }
    RETURN_IF_ERROR(transaction.Commit());
    if (audit_listener_) {
      for (const audit::AuditEvent& event : events) audit_listener_(event);
    }
    return static_cast<int64_t>(active.size());
  }

  Status RecordExecution(const ExecutionRow& execution, const std::vector<FileRow>& artifacts,
                         const SessionRow& session, const Trail& trail) override {
    if (execution.session_id != session.id) {
      return Status::InvalidArgument("record execution " + execution.id + ": it belongs to " +
                                     execution.session_id + " but the session row given is " +
                                     session.id);
    }
    MutexLock lock(mu_);
    const std::string context =
        "record execution " + execution.id + " (session " + execution.session_id + ")";
    return Write(trail,
                 [&]() REQUIRES(mu_) -> Status {
                   // The execution first: its foreign key turns an unknown session into
                   // InvalidArgument, where writing the session first would quietly create it.
                   RETURN_IF_ERROR(InsertExecution(execution));
                   for (const FileRow& file : artifacts) {
                     RETURN_IF_ERROR(InsertFile(file).WithContext("file " + file.id));
                   }
                   return UpsertSession(session).WithContext("session " + session.id);
                 })
        .WithContext(context);
  }

  Result<ExecutionRow> GetExecution(const std::string& id) override {
    return GetOne<ExecutionRow>("executions", kExecutionColumns, "id", id, ReadExecution,
                                "execution");
  }

  Result<std::vector<ExecutionRow>> ListExecutions(const std::string& session_id,
                                                   const Page& page) override {
    MutexLock lock(mu_);
    // One snapshot for both reads, so a session seen to exist is the one whose page we read.
    ASSIGN_OR_RETURN(Transaction transaction, Transaction::BeginRead(*db_));
    {
      ASSIGN_OR_RETURN(Statement exists, db_->Prepare("SELECT 1 FROM sessions WHERE id = ?"));
      exists.Bind(1, session_id);
      ASSIGN_OR_RETURN(bool found, exists.Step());
      if (!found) return Status::NotFound("session " + session_id + " not found");
    }
    PagedQuery query(kExecutionColumns, "executions");
    query.Where("session_id", session_id);
    ASSIGN_OR_RETURN(auto rows, query.Run<ExecutionRow>(*db_, page, ReadExecution));
    RETURN_IF_ERROR(transaction.Commit());
    return rows;
  }

  // --- files ---

  Status PutFile(const FileRow& row, const Trail& trail) override {
    MutexLock lock(mu_);
    return Write(trail, [&]() REQUIRES(mu_) { return InsertFile(row); })
        .WithContext("put file " + row.id);
  }

  Result<FileRow> GetFile(const std::string& id) override {
    return GetOne<FileRow>("files", kFileColumns, "id", id, ReadFile, "file");
  }

  Result<std::vector<FileRow>> ListFiles(const FileFilter& filter, const Page& page) override {
    MutexLock lock(mu_);
    PagedQuery query(kFileColumns, "files");
    if (!filter.project_id.empty()) query.Where("project_id", filter.project_id);
    if (!filter.purpose.empty()) query.Where("purpose", filter.purpose);
    if (!filter.session_id.empty()) query.Where("session_id", filter.session_id);
    if (!filter.execution_id.empty()) query.Where("execution_id", filter.execution_id);
    return query.Run<FileRow>(*db_, page, ReadFile);
  }

  Result<int64_t> DeleteFile(const std::string& id, const Trail& trail) override {
    MutexLock lock(mu_);
    int64_t remaining = 0;
    Status written = Write(trail, [&]() REQUIRES(mu_) -> Status {
      std::string sha256;
      {
        ASSIGN_OR_RETURN(Statement select, db_->Prepare("SELECT sha256 FROM files WHERE id = ?"));
        select.Bind(1, id);
        ASSIGN_OR_RETURN(bool found, select.Step());
        if (!found) return Status::NotFound("file " + id + " not found");
        sha256 = select.ColumnText(0);
      }
      ASSIGN_OR_RETURN(Statement remove, db_->Prepare("DELETE FROM files WHERE id = ?"));
      remove.Bind(1, id);
      RETURN_IF_ERROR(remove.Run());
      // Counted in the same transaction as the delete, so the count is exact when it commits. A
      // record for the same blob put after that is the blob store's race to settle, not ours.
      ASSIGN_OR_RETURN(Statement count,
                       db_->Prepare("SELECT COUNT(*) FROM files WHERE sha256 = ?"));
      count.Bind(1, sha256);
      ASSIGN_OR_RETURN(bool has_row, count.Step());
      CHECK(has_row);
      remaining = count.ColumnInt64(0);
      return Status::Ok();
    });
    if (!written.ok()) return written;
    return remaining;
  }

  Result<std::vector<FileRow>> ExpiredFiles(int64_t now_ms, int limit) override {
    MutexLock lock(mu_);
    ASSIGN_OR_RETURN(Statement select,
                     db_->Prepare("SELECT " + std::string(kFileColumns) +
                                  " FROM files WHERE expires_at_ms > 0 AND expires_at_ms <= ?"
                                  " ORDER BY expires_at_ms, id LIMIT ?"));
    // The same clamp as a Page: a sweeper asking for 0 would otherwise never make progress.
    select.Bind(1, now_ms).Bind(2, ClampLimit(limit));
    return ReadAll<FileRow>(select, ReadFile);
  }

  Result<int64_t> FilesWithBlob(const std::string& sha256) override {
    return Count("SELECT COUNT(*) FROM files WHERE sha256 = ?", {sha256});
  }

  Result<std::vector<std::string>> ReferencedBlobs() override {
    MutexLock lock(mu_);
    ASSIGN_OR_RETURN(Statement select,
                     db_->Prepare("SELECT DISTINCT sha256 FROM files ORDER BY sha256"));
    return ReadAll<std::string>(select, [](const Statement& s) { return s.ColumnText(0); });
  }

  Status AddSessionInputs(const std::vector<SessionInput>& inputs, const Trail& trail) override {
    MutexLock lock(mu_);
    return Write(trail, [&]() REQUIRES(mu_) -> Status {
      for (const SessionInput& input : inputs) {
        ASSIGN_OR_RETURN(Statement insert,
                         db_->Prepare("INSERT INTO session_inputs (session_id, file_id, filename, "
                                      "sha256, placed_at_ms) VALUES (?, ?, ?, ?, ?) "
                                      "ON CONFLICT (session_id, file_id) DO NOTHING"));
        insert.Bind(1, input.session_id).Bind(2, input.file_id).Bind(3, input.filename);
        insert.Bind(4, input.sha256).Bind(5, input.placed_at_ms);
        RETURN_IF_ERROR(
            insert.Run().WithContext("add input " + input.file_id + " of " + input.session_id));
      }
      return Status::Ok();
    });
  }

  Result<std::vector<SessionInput>> SessionInputs(const std::string& session_id) override {
    MutexLock lock(mu_);
    ASSIGN_OR_RETURN(Statement select,
                     db_->Prepare("SELECT session_id, file_id, filename, sha256, placed_at_ms "
                                  "FROM session_inputs WHERE session_id = ? "
                                  "ORDER BY placed_at_ms, file_id"));
    select.Bind(1, session_id);
    return ReadInputs(select);
  }

  Result<std::vector<SessionInput>> UsesOfFile(const std::string& file_id, int limit) override {
    MutexLock lock(mu_);
    ASSIGN_OR_RETURN(Statement select,
                     db_->Prepare("SELECT session_id, file_id, filename, sha256, placed_at_ms "
                                  "FROM session_inputs WHERE file_id = ? "
                                  "ORDER BY placed_at_ms, session_id LIMIT ?"));
    select.Bind(1, file_id).Bind(2, ClampLimit(limit));
    return ReadInputs(select);
  }

  // --- usage and quotas ---

  Result<std::vector<SessionRow>> SessionsCreated(int64_t from_ms, int64_t to_ms,
                                                  const std::string& project_id) override {
    MutexLock lock(mu_);
    std::string sql = "SELECT " + std::string(kSessionColumns) +
                      " FROM sessions WHERE created_at_ms >= ? AND created_at_ms < ?";
    if (!project_id.empty()) sql += " AND project_id = ?";
    ASSIGN_OR_RETURN(Statement select, db_->Prepare(sql + " ORDER BY created_at_ms"));
    select.Bind(1, from_ms).Bind(2, to_ms);
    if (!project_id.empty()) select.Bind(3, project_id);
    return ReadAll<SessionRow>(select, ReadSession);
  }

  Result<std::vector<UsageEvent>> UsageEvents(int64_t from_ms, int64_t to_ms,
                                              const std::string& project_id) override {
    MutexLock lock(mu_);
    std::string sql = "SELECT " + std::string(kUsageColumns) +
                      " FROM usage_events WHERE time_ms >= ? AND start_ms < ?";
    if (!project_id.empty()) sql += " AND project_id = ?";
    ASSIGN_OR_RETURN(Statement select, db_->Prepare(sql + " ORDER BY id"));
    select.Bind(1, from_ms).Bind(2, to_ms);
    if (!project_id.empty()) select.Bind(3, project_id);
    return ReadAll<UsageEvent>(select, ReadUsage);
  }

  Result<std::vector<FileRow>> FilesCreatedBefore(int64_t to_ms,
                                                  const std::string& project_id) override {
    MutexLock lock(mu_);
    std::string sql = "SELECT " + std::string(kFileColumns) + " FROM files WHERE created_at_ms < ?";
    if (!project_id.empty()) sql += " AND project_id = ?";
    ASSIGN_OR_RETURN(Statement select, db_->Prepare(sql));
    select.Bind(1, to_ms);
    if (!project_id.empty()) select.Bind(2, project_id);
    return ReadAll<FileRow>(select, ReadFile);
  }

  Result<int64_t> CountActiveSessions(const std::string& project_id) override {
    return Count("SELECT COUNT(*) FROM sessions WHERE project_id = ? AND status = 'active'",
                 {project_id});
  }

  Result<int64_t> CountSessionsSince(const std::string& project_id, int64_t since_ms) override {
    return Count("SELECT COUNT(*) FROM sessions WHERE project_id = ? AND created_at_ms >= " +
                     std::to_string(since_ms),
                 {project_id});
  }

  Result<double> CpuMsSince(const std::string& project_id, int64_t since_ms) override {
    MutexLock lock(mu_);
    ASSIGN_OR_RETURN(Statement select,
                     db_->Prepare("SELECT COALESCE(SUM(cpu_ms), 0) FROM executions "
                                  "WHERE project_id = ? AND started_at_ms >= ?"));
    select.Bind(1, project_id).Bind(2, since_ms);
    ASSIGN_OR_RETURN(bool has_row, select.Step());
    CHECK(has_row);
    return select.ColumnDouble(0);
  }

  Result<int64_t> StoredBytes(const std::string& project_id) override {
    return Count("SELECT COALESCE(SUM(bytes), 0) FROM files WHERE project_id = ?", {project_id});
  }

  Result<StoreTotals> Totals() override {
    MutexLock lock(mu_);
    ASSIGN_OR_RETURN(Statement select,
                     db_->Prepare("SELECT (SELECT COUNT(*) FROM files), "
                                  "(SELECT COALESCE(SUM(bytes), 0) FROM files), "
                                  "(SELECT COALESCE(MAX(seq), 0) FROM audit_events)"));
    ASSIGN_OR_RETURN(bool has_row, select.Step());
    CHECK(has_row);
    return StoreTotals{select.ColumnInt64(0), select.ColumnInt64(1), select.ColumnInt64(2)};
  }

  Result<int> SchemaVersion() override {
    MutexLock lock(mu_);
    return CurrentSchemaVersion(*db_);
  }

 private:
  // One row by `column` = `value`, or NotFound naming `what`.
  template <typename Row, typename ReadRow>
  Result<Row> GetOne(std::string_view table, std::string_view columns, std::string_view column,
                     const std::string& value, ReadRow read, const char* what) {
    MutexLock lock(mu_);
    ASSIGN_OR_RETURN(Statement select,
                     db_->Prepare("SELECT " + std::string(columns) + " FROM " + std::string(table) +
                                  " WHERE " + std::string(column) + " = ?"));
    select.Bind(1, value);
    ASSIGN_OR_RETURN(bool found, select.Step());
    if (!found) return Status::NotFound(std::string(what) + " " + value + " not found");
    return read(select);
  }

  // A single integer (COUNT or SUM) from `sql` with text arguments.
  Result<int64_t> Count(const std::string& sql, std::initializer_list<std::string> args) {
    MutexLock lock(mu_);
    ASSIGN_OR_RETURN(Statement select, db_->Prepare(sql));
    int index = 1;
    for (const std::string& arg : args) select.Bind(index++, arg);
    ASSIGN_OR_RETURN(bool has_row, select.Step());
    CHECK(has_row);
    return select.ColumnInt64(0);
  }

  // Runs `change` and writes `trail` in one write transaction (or inside the one already open).
  // `change` runs with mu_ held, which its lambda declares: `[&]() REQUIRES(mu_) { ... }`.
  template <typename Change>
  Status Write(const Trail& trail, Change change) REQUIRES(mu_) {
    ASSIGN_OR_RETURN(Transaction transaction, Transaction::BeginImmediate(*db_));
    RETURN_IF_ERROR(change());
    std::optional<audit::AuditEvent> event = trail.audit;
    if (event) {
      Status appended = AppendAudit(&*event);
      // Whatever the database said, failing to record the event is the server's failure (500),
      // not the caller's: the action is refused and rolled back.
      if (!appended.ok()) return Status::Internal(appended.message());
    }
    for (const UsageEvent& usage : trail.usage) RETURN_IF_ERROR(InsertUsage(usage));
    RETURN_IF_ERROR(transaction.Commit());
    if (event && audit_listener_) audit_listener_(*event);
    return Status::Ok();
  }

  // Appends `event` to the chain: its seq and prev_hash follow the last stored event, its hash
  // covers both. REQUIRES: a write transaction open (so nobody appends in between).
  Status AppendAudit(audit::AuditEvent* event) REQUIRES(mu_) {
    {
      ASSIGN_OR_RETURN(Statement last, db_->Prepare("SELECT seq, hash FROM audit_events "
                                                    "ORDER BY seq DESC LIMIT 1"));
      ASSIGN_OR_RETURN(bool has_row, last.Step());
      event->seq = has_row ? last.ColumnInt64(0) + 1 : 1;
      event->prev_hash = has_row ? last.ColumnText(1) : audit::kGenesisHash;
    }
    if (event->id.empty()) event->id = NewId("evt_");
    if (event->detail_json.empty()) event->detail_json = "{}";
    event->hash = audit::EventHash(*event);
    ASSIGN_OR_RETURN(Statement insert,
                     db_->Prepare("INSERT INTO audit_events (" + std::string(kAuditColumns) +
                                  ") VALUES (" + Placeholders(14) + ")"));
    insert.Bind(1, event->seq).Bind(2, event->id).Bind(3, event->time_ms);
    insert.Bind(4, event->principal).Bind(5, event->project_id).Bind(6, event->key_id);
    insert.Bind(7, event->action).Bind(8, event->target).Bind(9, event->outcome);
    insert.Bind(10, event->request_id).Bind(11, event->code_sha256);
    insert.Bind(12, event->detail_json).Bind(13, event->prev_hash).Bind(14, event->hash);
    return insert.Run().WithContext("append audit event " + event->action);
  }

  Status InsertUsage(const UsageEvent& u) REQUIRES(mu_) {
    ASSIGN_OR_RETURN(Statement insert,
                     db_->Prepare("INSERT INTO usage_events (" + std::string(kUsageColumns) +
                                  ") VALUES (" + Placeholders(8) + ")"));
    insert.Bind(1, u.time_ms).Bind(2, u.start_ms).Bind(3, u.project_id).Bind(4, u.principal);
    insert.Bind(5, u.agent_id).Bind(6, u.session_id).Bind(7, u.kind).Bind(8, u.amount);
    return insert.Run().WithContext("record usage " + u.kind);
  }

  static Result<std::vector<SessionInput>> ReadInputs(Statement& select) {
    return ReadAll<SessionInput>(select, [](const Statement& s) {
      return SessionInput{s.ColumnText(0), s.ColumnText(1), s.ColumnText(2), s.ColumnText(3),
                          s.ColumnInt64(4)};
    });
  }

  Status UpsertSession(const SessionRow& row) REQUIRES(mu_) {
    ASSIGN_OR_RETURN(
        Statement upsert,
        db_->Prepare("INSERT INTO sessions (" + std::string(kSessionColumns) + ") VALUES (" +
                     Placeholders(kSessionColumnCount) +
                     ") ON CONFLICT (id) DO UPDATE SET pool = excluded.pool, "
                     "status = excluded.status, end_reason = excluded.end_reason, "
                     "created_at_ms = excluded.created_at_ms, "
                     "last_active_at_ms = excluded.last_active_at_ms, "
                     "expires_at_ms = excluded.expires_at_ms, ended_at_ms = excluded.ended_at_ms, "
                     "limits_json = excluded.limits_json, metadata_json = excluded.metadata_json, "
                     "execution_count = excluded.execution_count, "
                     "project_id = excluded.project_id, principal = excluded.principal, "
                     "agent_id = excluded.agent_id, cpu_ms = excluded.cpu_ms, "
                     "peak_memory_bytes = excluded.peak_memory_bytes, "
                     "forked_from = excluded.forked_from"));
    BindSession(upsert, row);
    return upsert.Run();
  }

  Status InsertExecution(const ExecutionRow& row) REQUIRES(mu_) {
    ASSIGN_OR_RETURN(Statement insert,
                     db_->Prepare("INSERT INTO executions (" + std::string(kExecutionColumns) +
                                  ") VALUES (" + Placeholders(kExecutionColumnCount) + ")"));
    BindExecution(insert, row);
    return insert.Run();
  }

  Status InsertFile(const FileRow& row) REQUIRES(mu_) {
    ASSIGN_OR_RETURN(Statement insert,
                     db_->Prepare("INSERT INTO files (" + std::string(kFileColumns) + ") VALUES (" +
                                  Placeholders(kFileColumnCount) + ")"));
    BindFile(insert, row);
    return insert.Run();
  }

  Mutex mu_;
  const std::unique_ptr<SqliteDb> db_ PT_GUARDED_BY(mu_);
  std::function<void(const audit::AuditEvent&)> audit_listener_ GUARDED_BY(mu_);
};

}  // namespace

Result<std::unique_ptr<MetadataStore>> OpenSqliteStore(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::Open(path));
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             Clock::Real()->WallNow().time_since_epoch())
                             .count();
  RETURN_IF_ERROR(ApplyMigrations(*db, now_ms));
  return std::unique_ptr<MetadataStore>(std::make_unique<SqliteStore>(std::move(db)));
}

}  // namespace pycell::store
