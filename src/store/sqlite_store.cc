// The SQLite MetadataStore: one connection guarded by one mutex. Serialising in-process calls
// costs little (each is a short transaction) and keeps multi-statement transactions on one
// connection without a pool; other processes on the same file are handled by SQLite's locks and
// the busy timeout (see sqlite_db.h).
#include <algorithm>
#include <chrono>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/ids.h"
#include "common/mutex.h"
#include "store/metadata_store.h"
#include "store/migrations.h"
#include "store/sqlite_db.h"
#include "store/sqlite_rows.h"
#include "store/store_events.h"

namespace pycell::store {
namespace {

// A page never holds more than this many rows, whatever the caller asks: a page is built in memory
// and sent in one response.
// 1001: the API pages up to 1000 rows and asks for one more to know whether another page follows.
constexpr int kMaxPageLimit = 1001;

int ClampLimit(int limit) { return std::clamp(limit, 1, kMaxPageLimit); }

// "SELECT <columns> FROM <table> WHERE <equalities> AND id < ? ORDER BY id DESC LIMIT ?", with
// only the conditions that apply: a fixed `(? = '' OR col = ?)` form would keep the planner from
// using the (col, id) indexes.
template <typename Row>
struct PagedQuery {
  const RowCodec<Row>& codec;
  std::string sql;
  std::vector<std::string> args;

  explicit PagedQuery(const RowCodec<Row>& row_codec)
      : codec(row_codec),
        sql("SELECT " + codec.ColumnList() + " FROM " + std::string(codec.table())) {}
  void Where(std::string_view column, const std::string& value) {
    sql += args.empty() ? " WHERE " : " AND ";
    sql += std::string(column) + " = ?";
    args.push_back(value);
  }
  // Runs it for `page` on `db`.
  Result<std::vector<Row>> Run(SqliteDb& db, const Page& page) {
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
    return codec.ReadAll(select);
  }
};

class SqliteStore : public MetadataStore {
 public:
  explicit SqliteStore(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}

  // --- projects and keys ---

  Status PutProject(const ProjectRow& row, const Trail& trail) override {
    MutexLock lock(mu_);
    return Write(trail,
                 [&]() REQUIRES(mu_) {
                   // A project keeps the time it was made.
                   return WriteRow(kProjectCodec, row,
                                   kProjectCodec.InsertSql() + " ON CONFLICT (id) DO UPDATE SET " +
                                       kProjectCodec.ExcludedAssignments({"id", "created_at_ms"}));
                 })
        .WithContext("put project " + row.name);
  }

  Result<ProjectRow> GetProject(const std::string& id) override {
    return GetOne(kProjectCodec, "id", id, "project");
  }

  Result<ProjectRow> GetProjectByName(const std::string& name) override {
    return GetOne(kProjectCodec, "name", name, "project");
  }

  Result<std::vector<ProjectRow>> ListProjects() override {
    MutexLock lock(mu_);
    ASSIGN_OR_RETURN(Statement select, db_->Prepare("SELECT " + kProjectCodec.ColumnList() +
                                                    " FROM projects ORDER BY name"));
    return kProjectCodec.ReadAll(select);
  }

  Status PutKey(const KeyRow& row, const Trail& trail) override {
    MutexLock lock(mu_);
    return Write(trail,
                 [&]() REQUIRES(mu_) {
                   return WriteRow(kKeyCodec, row, kKeyCodec.InsertSql("INSERT OR REPLACE"));
                 })
        .WithContext("put key " + row.id);
  }

  Result<KeyRow> GetKey(const std::string& id) override {
    return GetOne(kKeyCodec, "id", id, "key");
  }

  Result<std::vector<KeyRow>> ListKeys(const std::string& project_id,
                                       bool include_revoked) override {
    MutexLock lock(mu_);
    std::string sql = "SELECT " + kKeyCodec.ColumnList() + " FROM api_keys WHERE 1 = 1";
    if (!project_id.empty()) sql += " AND project_id = ?";
    if (!include_revoked) sql += " AND revoked_at_ms = 0";
    sql += " ORDER BY id";
    ASSIGN_OR_RETURN(Statement select, db_->Prepare(sql));
    if (!project_id.empty()) select.Bind(1, project_id);
    return kKeyCodec.ReadAll(select);
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
    std::string sql = "SELECT " + kAuditCodec.ColumnList() + " FROM audit_events WHERE seq > ?";
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
    return kAuditCodec.ReadAll(select);
  }

  // --- sessions ---

  Status PutSession(const SessionRow& row, const Trail& trail) override {
    MutexLock lock(mu_);
    return Write(trail, [&]() REQUIRES(mu_) { return UpsertSession(row); })
        .WithContext("put session " + row.id);
  }

  Result<SessionRow> GetSession(const std::string& id) override {
    return GetOne(kSessionCodec, "id", id, "session");
  }

  Result<std::vector<SessionRow>> ListSessions(const std::string& status, const Page& page,
                                               const std::string& project_id,
                                               const std::string& principal) override {
    MutexLock lock(mu_);
    PagedQuery query(kSessionCodec);
    if (!project_id.empty()) query.Where("project_id", project_id);
    if (!principal.empty()) query.Where("principal", principal);
    if (!status.empty()) query.Where("status", status);
    return query.Run(*db_, page);
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
      audit::AuditEvent event = SessionEndedBySystem(id, project, reason, now_ms);
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
    RETURN_IF_ERROR(CheckExecutionOfSession(execution, session));
    MutexLock lock(mu_);
    const std::string context =
        "record execution " + execution.id + " (session " + execution.session_id + ")";
    return Write(
               trail,
               [&]() REQUIRES(mu_) -> Status {
                 // The execution first: its foreign key turns an unknown session into
                 // InvalidArgument, where writing the session first would quietly create it.
                 RETURN_IF_ERROR(WriteRow(kExecutionCodec, execution, kExecutionCodec.InsertSql()));
                 for (const FileRow& file : artifacts) {
                   RETURN_IF_ERROR(WriteRow(kFileCodec, file, kFileCodec.InsertSql())
                                       .WithContext("file " + file.id));
                 }
                 return UpsertSession(session).WithContext("session " + session.id);
               })
        .WithContext(context);
  }

  Result<ExecutionRow> GetExecution(const std::string& id) override {
    return GetOne(kExecutionCodec, "id", id, "execution");
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
    PagedQuery query(kExecutionCodec);
    query.Where("session_id", session_id);
    ASSIGN_OR_RETURN(std::vector<ExecutionRow> rows, query.Run(*db_, page));
    RETURN_IF_ERROR(transaction.Commit());
    return rows;
  }

  // --- files ---

  Status PutFile(const FileRow& row, const Trail& trail) override {
    MutexLock lock(mu_);
    return Write(trail,
                 [&]() REQUIRES(mu_) { return WriteRow(kFileCodec, row, kFileCodec.InsertSql()); })
        .WithContext("put file " + row.id);
  }

  Result<FileRow> GetFile(const std::string& id) override {
    return GetOne(kFileCodec, "id", id, "file");
  }

  Result<std::vector<FileRow>> ListFiles(const FileFilter& filter, const Page& page) override {
    MutexLock lock(mu_);
    PagedQuery query(kFileCodec);
    if (!filter.project_id.empty()) query.Where("project_id", filter.project_id);
    if (!filter.purpose.empty()) query.Where("purpose", filter.purpose);
    if (!filter.session_id.empty()) query.Where("session_id", filter.session_id);
    if (!filter.execution_id.empty()) query.Where("execution_id", filter.execution_id);
    return query.Run(*db_, page);
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
                     db_->Prepare("SELECT " + kFileCodec.ColumnList() +
                                  " FROM files WHERE expires_at_ms > 0 AND expires_at_ms <= ?"
                                  " ORDER BY expires_at_ms, id LIMIT ?"));
    // The same clamp as a Page: a sweeper asking for 0 would otherwise never make progress.
    select.Bind(1, now_ms).Bind(2, ClampLimit(limit));
    return kFileCodec.ReadAll(select);
  }

  Result<int64_t> FilesWithBlob(const std::string& sha256) override {
    return Count("SELECT COUNT(*) FROM files WHERE sha256 = ?", {sha256});
  }

  Result<std::vector<std::string>> ReferencedBlobs() override {
    MutexLock lock(mu_);
    ASSIGN_OR_RETURN(Statement select,
                     db_->Prepare("SELECT DISTINCT sha256 FROM files ORDER BY sha256"));
    std::vector<std::string> blobs;
    while (true) {
      ASSIGN_OR_RETURN(bool has_row, select.Step());
      if (!has_row) return blobs;
      blobs.push_back(select.ColumnText(0));
    }
  }

  Status AddSessionInputs(const std::vector<SessionInput>& inputs, const Trail& trail) override {
    MutexLock lock(mu_);
    return Write(trail, [&]() REQUIRES(mu_) -> Status {
      for (const SessionInput& input : inputs) {
        RETURN_IF_ERROR(WriteRow(kSessionInputCodec, input,
                                 kSessionInputCodec.InsertSql() +
                                     " ON CONFLICT (session_id, file_id) DO NOTHING")
                            .WithContext("add input " + input.file_id + " of " + input.session_id));
      }
      return Status::Ok();
    });
  }

  Result<std::vector<SessionInput>> SessionInputs(const std::string& session_id) override {
    MutexLock lock(mu_);
    ASSIGN_OR_RETURN(Statement select, db_->Prepare("SELECT " + kSessionInputCodec.ColumnList() +
                                                    " FROM session_inputs WHERE session_id = ? "
                                                    "ORDER BY placed_at_ms, file_id"));
    select.Bind(1, session_id);
    return kSessionInputCodec.ReadAll(select);
  }

  Result<std::vector<SessionInput>> UsesOfFile(const std::string& file_id, int limit) override {
    MutexLock lock(mu_);
    ASSIGN_OR_RETURN(Statement select, db_->Prepare("SELECT " + kSessionInputCodec.ColumnList() +
                                                    " FROM session_inputs WHERE file_id = ? "
                                                    "ORDER BY placed_at_ms, session_id LIMIT ?"));
    select.Bind(1, file_id).Bind(2, ClampLimit(limit));
    return kSessionInputCodec.ReadAll(select);
  }

  // --- usage and quotas ---

  Result<std::vector<SessionRow>> SessionsCreated(int64_t from_ms, int64_t to_ms,
                                                  const std::string& project_id) override {
    MutexLock lock(mu_);
    return SelectInProject(kSessionCodec, "created_at_ms >= ? AND created_at_ms < ?",
                           {from_ms, to_ms}, project_id, " ORDER BY created_at_ms");
  }

  Result<std::vector<UsageEvent>> UsageEvents(int64_t from_ms, int64_t to_ms,
                                              const std::string& project_id) override {
    MutexLock lock(mu_);
    return SelectInProject(kUsageCodec, "time_ms >= ? AND start_ms < ?", {from_ms, to_ms},
                           project_id, " ORDER BY id");
  }

  Result<std::vector<FileRow>> FilesCreatedBefore(int64_t to_ms,
                                                  const std::string& project_id) override {
    MutexLock lock(mu_);
    return SelectInProject(kFileCodec, "created_at_ms < ?", {to_ms}, project_id, "");
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
  template <typename Row>
  Result<Row> GetOne(const RowCodec<Row>& codec, std::string_view column, const std::string& value,
                     const char* what) {
    MutexLock lock(mu_);
    ASSIGN_OR_RETURN(Statement select, db_->Prepare("SELECT " + codec.ColumnList() + " FROM " +
                                                    std::string(codec.table()) + " WHERE " +
                                                    std::string(column) + " = ?"));
    select.Bind(1, value);
    ASSIGN_OR_RETURN(bool found, select.Step());
    if (!found) return Status::NotFound(std::string(what) + " " + value + " not found");
    return codec.Read(select);
  }

  // The rows of `codec`'s table WHERE `condition`, its parameters bound to `times`, and of the
  // project `project_id` ("" = any), then `order` ("" or " ORDER BY …").
  template <typename Row>
  Result<std::vector<Row>> SelectInProject(const RowCodec<Row>& codec, std::string_view condition,
                                           std::initializer_list<int64_t> times,
                                           const std::string& project_id, std::string_view order)
      REQUIRES(mu_) {
    std::string sql = "SELECT " + codec.ColumnList() + " FROM " + std::string(codec.table()) +
                      " WHERE " + std::string(condition);
    if (!project_id.empty()) sql += " AND project_id = ?";
    ASSIGN_OR_RETURN(Statement select, db_->Prepare(sql + std::string(order)));
    int index = 1;
    for (int64_t time : times) select.Bind(index++, time);
    if (!project_id.empty()) select.Bind(index, project_id);
    return codec.ReadAll(select);
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
      SealAuditEvent(event, has_row ? last.ColumnInt64(0) : 0,
                     has_row ? last.ColumnText(1) : audit::kGenesisHash);
    }
    return WriteRow(kAuditCodec, *event, kAuditCodec.InsertSql())
        .WithContext("append audit event " + event->action);
  }

  Status InsertUsage(const UsageEvent& usage) REQUIRES(mu_) {
    return WriteRow(kUsageCodec, usage, kUsageCodec.InsertSql())
        .WithContext("record usage " + usage.kind);
  }

  Status UpsertSession(const SessionRow& row) REQUIRES(mu_) {
    return WriteRow(kSessionCodec, row,
                    kSessionCodec.InsertSql() + " ON CONFLICT (id) DO UPDATE SET " +
                        kSessionCodec.ExcludedAssignments({"id"}));
  }

  // Runs `sql` (codec.InsertSql(), perhaps with an ON CONFLICT clause) with `row` bound to its
  // parameters.
  template <typename Row>
  Status WriteRow(const RowCodec<Row>& codec, const Row& row, const std::string& sql)
      REQUIRES(mu_) {
    ASSIGN_OR_RETURN(Statement write, db_->Prepare(sql));
    codec.Bind(write, row);
    return write.Run();
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
