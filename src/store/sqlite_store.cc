// The SQLite MetadataStore: one connection guarded by one mutex. Serialising in-process calls
// costs little (each is a short transaction) and keeps multi-statement transactions on one
// connection without a pool; other processes on the same file are handled by SQLite's locks and
// the busy timeout (see sqlite_db.h).
#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
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
    "limits_json, metadata_json, execution_count";

void BindSession(Statement& s, const SessionRow& row) {
  s.Bind(1, row.id).Bind(2, row.pool).Bind(3, row.status).Bind(4, row.end_reason);
  s.Bind(5, row.created_at_ms).Bind(6, row.last_active_at_ms).Bind(7, row.expires_at_ms);
  s.Bind(8, row.ended_at_ms).Bind(9, row.limits_json).Bind(10, row.metadata_json);
  s.Bind(11, row.execution_count);
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
  return row;
}

constexpr std::string_view kExecutionColumns =
    "id, session_id, status, code, code_sha256, started_at_ms, duration_ms, record_json";

void BindExecution(Statement& s, const ExecutionRow& row) {
  s.Bind(1, row.id).Bind(2, row.session_id).Bind(3, row.status).Bind(4, row.code);
  s.Bind(5, row.code_sha256).Bind(6, row.started_at_ms).Bind(7, row.duration_ms);
  s.Bind(8, row.record_json);
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
  return row;
}

constexpr std::string_view kFileColumns =
    "id, filename, bytes, sha256, media_type, purpose, created_at_ms, expires_at_ms, session_id, "
    "execution_id, path";

void BindFile(Statement& s, const FileRow& row) {
  s.Bind(1, row.id).Bind(2, row.filename).Bind(3, row.bytes).Bind(4, row.sha256);
  s.Bind(5, row.media_type).Bind(6, row.purpose).Bind(7, row.created_at_ms);
  s.Bind(8, row.expires_at_ms).Bind(9, row.session_id).Bind(10, row.execution_id);
  s.Bind(11, row.path);
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

class SqliteStore : public MetadataStore {
 public:
  explicit SqliteStore(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}

  Status PutSession(const SessionRow& row) override {
    std::lock_guard lock(mu_);
    return UpsertSession(row).WithContext("put session " + row.id);
  }

  Result<SessionRow> GetSession(const std::string& id) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Statement select, db_->Prepare("SELECT " + std::string(kSessionColumns) +
                                                    " FROM sessions WHERE id = ?"));
    select.Bind(1, id);
    ASSIGN_OR_RETURN(bool found, select.Step());
    if (!found) return Status::NotFound("session " + id + " not found");
    return ReadSession(select);
  }

  Result<std::vector<SessionRow>> ListSessions(const std::string& status,
                                               const Page& page) override {
    std::lock_guard lock(mu_);
    PagedQuery query(kSessionColumns, "sessions");
    if (!status.empty()) query.Where("status", status);
    return query.Run<SessionRow>(*db_, page, ReadSession);
  }

  Result<int64_t> EndActiveSessions(const std::string& reason, int64_t now_ms) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Transaction transaction, Transaction::BeginImmediate(*db_));
    ASSIGN_OR_RETURN(Statement update,
                     db_->Prepare("UPDATE sessions SET status = 'ended', end_reason = ?, "
                                  "ended_at_ms = ? WHERE status = 'active'"));
    update.Bind(1, reason).Bind(2, now_ms);
    RETURN_IF_ERROR(update.Run());
    const int64_t ended = db_->Changes();
    RETURN_IF_ERROR(transaction.Commit());
    return ended;
  }

  Status RecordExecution(const ExecutionRow& execution, const std::vector<FileRow>& artifacts,
                         const SessionRow& session) override {
    if (execution.session_id != session.id) {
      return Status::InvalidArgument("record execution " + execution.id + ": it belongs to " +
                                     execution.session_id + " but the session row given is " +
                                     session.id);
    }
    std::lock_guard lock(mu_);
    const std::string context =
        "record execution " + execution.id + " (session " + execution.session_id + ")";
    ASSIGN_OR_RETURN(Transaction transaction, Transaction::BeginImmediate(*db_));
    // The execution first: its foreign key turns an unknown session into InvalidArgument, where
    // writing the session first would quietly create it.
    RETURN_IF_ERROR(InsertExecution(execution).WithContext(context));
    for (const FileRow& file : artifacts) {
      RETURN_IF_ERROR(InsertFile(file).WithContext(context + ": file " + file.id));
    }
    RETURN_IF_ERROR(UpsertSession(session).WithContext(context + ": session " + session.id));
    return transaction.Commit().WithContext(context);
  }

  Result<ExecutionRow> GetExecution(const std::string& id) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Statement select, db_->Prepare("SELECT " + std::string(kExecutionColumns) +
                                                    " FROM executions WHERE id = ?"));
    select.Bind(1, id);
    ASSIGN_OR_RETURN(bool found, select.Step());
    if (!found) return Status::NotFound("execution " + id + " not found");
    return ReadExecution(select);
  }

  Result<std::vector<ExecutionRow>> ListExecutions(const std::string& session_id,
                                                   const Page& page) override {
    std::lock_guard lock(mu_);
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

  Status PutFile(const FileRow& row) override {
    std::lock_guard lock(mu_);
    return InsertFile(row).WithContext("put file " + row.id);
  }

  Result<FileRow> GetFile(const std::string& id) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Statement select, db_->Prepare("SELECT " + std::string(kFileColumns) +
                                                    " FROM files WHERE id = ?"));
    select.Bind(1, id);
    ASSIGN_OR_RETURN(bool found, select.Step());
    if (!found) return Status::NotFound("file " + id + " not found");
    return ReadFile(select);
  }

  Result<std::vector<FileRow>> ListFiles(const FileFilter& filter, const Page& page) override {
    std::lock_guard lock(mu_);
    PagedQuery query(kFileColumns, "files");
    if (!filter.purpose.empty()) query.Where("purpose", filter.purpose);
    if (!filter.session_id.empty()) query.Where("session_id", filter.session_id);
    if (!filter.execution_id.empty()) query.Where("execution_id", filter.execution_id);
    return query.Run<FileRow>(*db_, page, ReadFile);
  }

  Result<int64_t> DeleteFile(const std::string& id) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Transaction transaction, Transaction::BeginImmediate(*db_));
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
    ASSIGN_OR_RETURN(Statement count, db_->Prepare("SELECT COUNT(*) FROM files WHERE sha256 = ?"));
    count.Bind(1, sha256);
    ASSIGN_OR_RETURN(bool has_row, count.Step());
    CHECK(has_row);
    const int64_t remaining = count.ColumnInt64(0);
    RETURN_IF_ERROR(transaction.Commit());
    return remaining;
  }

  Result<std::vector<FileRow>> ExpiredFiles(int64_t now_ms, int limit) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Statement select,
                     db_->Prepare("SELECT " + std::string(kFileColumns) +
                                  " FROM files WHERE expires_at_ms > 0 AND expires_at_ms <= ?"
                                  " ORDER BY expires_at_ms, id LIMIT ?"));
    // The same clamp as a Page: a sweeper asking for 0 would otherwise never make progress.
    select.Bind(1, now_ms).Bind(2, ClampLimit(limit));
    std::vector<FileRow> rows;
    while (true) {
      ASSIGN_OR_RETURN(bool has_row, select.Step());
      if (!has_row) break;
      rows.push_back(ReadFile(select));
    }
    return rows;
  }

  Result<std::vector<std::string>> ReferencedBlobs() override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Statement select,
                     db_->Prepare("SELECT DISTINCT sha256 FROM files ORDER BY sha256"));
    std::vector<std::string> blobs;
    while (true) {
      ASSIGN_OR_RETURN(bool has_row, select.Step());
      if (!has_row) break;
      blobs.push_back(select.ColumnText(0));
    }
    return blobs;
  }

  Status AddSessionInputs(const std::vector<SessionInput>& inputs) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Transaction transaction, Transaction::BeginImmediate(*db_));
    for (const SessionInput& input : inputs) {
      ASSIGN_OR_RETURN(Statement insert,
                       db_->Prepare("INSERT INTO session_inputs (session_id, file_id, filename, "
                                    "sha256, placed_at_ms) VALUES (?, ?, ?, ?, ?) "
                                    "ON CONFLICT (session_id, file_id) DO NOTHING"));
      insert.Bind(1, input.session_id).Bind(2, input.file_id).Bind(3, input.filename);
      insert.Bind(4, input.sha256).Bind(5, input.placed_at_ms);
      RETURN_IF_ERROR(insert.Run().WithContext("add input " + input.file_id + " of " +
                                               input.session_id));
    }
    return transaction.Commit();
  }

  Result<std::vector<SessionInput>> SessionInputs(const std::string& session_id) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Statement select,
                     db_->Prepare("SELECT session_id, file_id, filename, sha256, placed_at_ms "
                                  "FROM session_inputs WHERE session_id = ? "
                                  "ORDER BY placed_at_ms, file_id"));
    select.Bind(1, session_id);
    return ReadInputs(select);
  }

  Result<std::vector<SessionInput>> UsesOfFile(const std::string& file_id, int limit) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Statement select,
                     db_->Prepare("SELECT session_id, file_id, filename, sha256, placed_at_ms "
                                  "FROM session_inputs WHERE file_id = ? "
                                  "ORDER BY placed_at_ms, session_id LIMIT ?"));
    select.Bind(1, file_id).Bind(2, ClampLimit(limit));
    return ReadInputs(select);
  }

  Result<int> SchemaVersion() override {
    std::lock_guard lock(mu_);
    return CurrentSchemaVersion(*db_);
  }

 private:
  static Result<std::vector<SessionInput>> ReadInputs(Statement& select) {
    std::vector<SessionInput> inputs;
    while (true) {
      ASSIGN_OR_RETURN(bool has_row, select.Step());
      if (!has_row) return inputs;
      inputs.push_back({select.ColumnText(0), select.ColumnText(1), select.ColumnText(2),
                        select.ColumnText(3), select.ColumnInt64(4)});
    }
  }

  // REQUIRES: mu_ held.
  Status UpsertSession(const SessionRow& row) {
    ASSIGN_OR_RETURN(
        Statement upsert,
        db_->Prepare("INSERT INTO sessions (" + std::string(kSessionColumns) + ") VALUES (" +
                     Placeholders(11) +
                     ") ON CONFLICT (id) DO UPDATE SET pool = excluded.pool, "
                     "status = excluded.status, end_reason = excluded.end_reason, "
                     "created_at_ms = excluded.created_at_ms, "
                     "last_active_at_ms = excluded.last_active_at_ms, "
                     "expires_at_ms = excluded.expires_at_ms, ended_at_ms = excluded.ended_at_ms, "
                     "limits_json = excluded.limits_json, metadata_json = excluded.metadata_json, "
                     "execution_count = excluded.execution_count"));
    BindSession(upsert, row);
    return upsert.Run();
  }

  // REQUIRES: mu_ held.
  Status InsertExecution(const ExecutionRow& row) {
    ASSIGN_OR_RETURN(Statement insert,
                     db_->Prepare("INSERT INTO executions (" + std::string(kExecutionColumns) +
                                  ") VALUES (" + Placeholders(8) + ")"));
    BindExecution(insert, row);
    return insert.Run();
  }

  // REQUIRES: mu_ held.
  Status InsertFile(const FileRow& row) {
    ASSIGN_OR_RETURN(Statement insert,
                     db_->Prepare("INSERT INTO files (" + std::string(kFileColumns) + ") VALUES (" +
                                  Placeholders(11) + ")"));
    BindFile(insert, row);
    return insert.Run();
  }

  std::mutex mu_;
  const std::unique_ptr<SqliteDb> db_;  // GUARDED_BY(mu_)
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
