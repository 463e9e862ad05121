// The PostgreSQL MetadataStore: one libpq connection guarded by one mutex, as the SQLite store
// does. In-process calls are short transactions, so serialising them costs little; the scale-out
// gets its concurrency from many pycell processes, each with its own connection, kept apart by
// PostgreSQL's row locks. A connection found broken (the server restarted, a proxy dropped it) is
// re-established once, before a statement or a transaction has done anything; one that breaks in
// the middle of a transaction fails that call with Unavailable and is re-established by the next.
//
// The audit chain with many writers. Every process appends to one chain, so "read the last event,
// then insert the next" must be atomic across processes. This store locks the chain's head row
// (`SELECT … FROM audit_head … FOR UPDATE`) inside the transaction of the action being audited,
// inserts the event and moves the head, and commits: a second writer waits on the row lock and,
// at READ COMMITTED, then reads the head the first one committed. The event is therefore written
// in the same transaction as the change it records (an action whose event cannot be written
// leaves nothing), seqs have no gaps, and two writers can never fork the chain. Its cost is that
// every audited write in the cluster is serialised on that row for the end of its transaction
// (the scale-out notes, §3.2, measured ~1,400 tps at 16 writers, 12 ms).
// Future work, when that limits: writers insert unsequenced events with no lock and one sequencer
// at a time (an advisory-lock-elected node) links them into the chain in batches (§3.3).
#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "common/clock.h"
#include "common/ids.h"
#include "common/mutex.h"
#include "store/metadata_store.h"
#include "store/migrations.h"
#include "store/pg_db.h"
#include "store/pg_migrations.h"
#include "store/sqlite_rows.h"
#include "store/store_events.h"

namespace pycell::store {
namespace {

// As in sqlite_store.cc: a page never holds more than this many rows.
constexpr int kMaxPageLimit = 1001;

int ClampLimit(int limit) { return std::clamp(limit, 1, kMaxPageLimit); }

// "$first, $first+1, …": `count` parameters.
std::string Placeholders(int first, int count) {
  std::string out;
  for (int i = 0; i < count; ++i) {
    if (i > 0) out += ", ";
    out += "$" + std::to_string(first + i);
  }
  return out;
}

template <typename Row>
std::string InsertSql(const RowCodec<Row>& codec) {
  return "INSERT INTO " + std::string(codec.table()) + " (" + codec.ColumnList() + ") VALUES (" +
         Placeholders(1, codec.size()) + ")";
}

template <typename Row>
std::string SelectSql(const RowCodec<Row>& codec) {
  return "SELECT " + codec.ColumnList() + " FROM " + std::string(codec.table());
}

// Adds the members of `row` to `params`, in column order.
template <typename Row>
void AddRow(const RowCodec<Row>& codec, const Row& row, PgParams* params) {
  for (const Column<Row>& column : codec.columns()) {
    std::visit([&](auto member) { params->Add(row.*member); }, column.member);
  }
}

// Row `index` of `result`, whose columns are codec.ColumnList().
template <typename Row>
Row ReadRow(const RowCodec<Row>& codec, const PgResult& result, int index) {
  Row row;
  int column_index = 0;
  for (const Column<Row>& column : codec.columns()) {
    std::visit(
        [&](auto member) {
          auto& value = row.*member;
          using Value = std::decay_t<decltype(value)>;
          if constexpr (std::is_same_v<Value, std::string>) {
            value = result.Text(index, column_index);
          } else if constexpr (std::is_same_v<Value, int64_t>) {
            value = result.Int64(index, column_index);
          } else if constexpr (std::is_same_v<Value, double>) {
            value = result.Double(index, column_index);
          } else {
            static_assert(std::is_same_v<Value, bool>);
            value = result.Int64(index, column_index) != 0;
          }
        },
        column.member);
    ++column_index;
  }
  return row;
}

template <typename Row>
std::vector<Row> ReadRows(const RowCodec<Row>& codec, const PgResult& result) {
  std::vector<Row> rows;
  rows.reserve(result.rows());
  for (int i = 0; i < result.rows(); ++i) rows.push_back(ReadRow(codec, result, i));
  return rows;
}

// A SELECT whose WHERE clause holds only the conditions that apply (see sqlite_store.cc's
// PagedQuery for why not `($1 = '' OR col = $1)`).
class Query {
 public:
  explicit Query(std::string select) : sql_(std::move(select)) {}
  // "WHERE|AND `column` `op` $n", with `value` as $n.
  template <typename Value>
  Query& Where(std::string_view column, const Value& value, std::string_view op = "=") {
    sql_ += has_where_ ? " AND " : " WHERE ";
    has_where_ = true;
    params_.Add(value);
    sql_ += std::string(column) + " " + std::string(op) + " $" + std::to_string(params_.size());
    return *this;
  }
  // Appends SQL text without values (ORDER BY …).
  Query& Then(std::string_view text) {
    sql_ += text;
    return *this;
  }
  // Appends " LIMIT $n".
  Query& Limit(int limit) {
    params_.Add(limit);
    sql_ += " LIMIT $" + std::to_string(params_.size());
    return *this;
  }
  const std::string& sql() const { return sql_; }
  const PgParams& params() const { return params_; }

 private:
  std::string sql_;
  PgParams params_;
  bool has_where_ = false;
};

class PgStore : public MetadataStore {
 public:
  explicit PgStore(std::unique_ptr<PgConn> conn) : conn_(std::move(conn)) {}

  // --- projects and keys ---

  Status PutProject(const ProjectRow& row, const Trail& trail) override {
    MutexLock lock(mu_);
    return Write(trail,
                 [&]() REQUIRES(mu_) {
                   // A project keeps the time it was made.
                   return WriteRow(kProjectCodec, row,
                                   InsertSql(kProjectCodec) + " ON CONFLICT (id) DO UPDATE SET " +
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
    return ReadAll(kProjectCodec, Query(SelectSql(kProjectCodec)).Then(" ORDER BY name"));
  }

  Status PutKey(const KeyRow& row, const Trail& trail) override {
    MutexLock lock(mu_);
    return Write(trail,
                 [&]() REQUIRES(mu_) {
                   return WriteRow(kKeyCodec, row,
                                   InsertSql(kKeyCodec) + " ON CONFLICT (id) DO UPDATE SET " +
                                       kKeyCodec.ExcludedAssignments({"id"}));
                 })
        .WithContext("put key " + row.id);
  }

  Result<KeyRow> GetKey(const std::string& id) override {
    return GetOne(kKeyCodec, "id", id, "key");
  }

  Result<std::vector<KeyRow>> ListKeys(const std::string& project_id,
                                       bool include_revoked) override {
    MutexLock lock(mu_);
    Query query(SelectSql(kKeyCodec));
    if (!project_id.empty()) query.Where("project_id", project_id);
    if (!include_revoked) query.Where("revoked_at_ms", int64_t{0});
    return ReadAll(kKeyCodec, query.Then(" ORDER BY id"));
  }

  Result<int64_t> CountKeys() override {
    MutexLock lock(mu_);
    return Count(Query("SELECT COUNT(*) FROM api_keys"));
  }

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
    Query query(SelectSql(kAuditCodec));
    query.Where("seq", filter.after_seq, ">");
    if (!filter.principal.empty()) query.Where("principal", filter.principal);
    if (!filter.action.empty()) query.Where("action", filter.action);
    if (!filter.target.empty()) query.Where("target", filter.target);
    if (!filter.project_id.empty()) query.Where("project_id", filter.project_id);
    if (filter.from_ms > 0) query.Where("time_ms", filter.from_ms, ">=");
    if (filter.to_ms > 0) query.Where("time_ms", filter.to_ms, "<");
    query.Then(" ORDER BY seq").Limit(std::clamp(filter.limit, 1, 10001));
    return ReadAll(kAuditCodec, query);
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
    Query query(SelectSql(kSessionCodec));
    if (!project_id.empty()) query.Where("project_id", project_id);
    if (!principal.empty()) query.Where("principal", principal);
    if (!status.empty()) query.Where("status", status);
    return ReadPage(kSessionCodec, query, page);
  }

  Result<int64_t> EndActiveSessions(const std::string& reason, int64_t now_ms) override {
    MutexLock lock(mu_);
    std::vector<audit::AuditEvent> events;
    {
      ASSIGN_OR_RETURN(PgTransaction transaction, Begin());
      ASSIGN_OR_RETURN(PgResult ended,
                       conn_->Exec("UPDATE sessions SET status = 'ended', end_reason = $1, "
                                   "ended_at_ms = $2 WHERE status = 'active' "
                                   "RETURNING id, project_id",
                                   PgParams().Add(reason).Add(now_ms)));
      std::vector<std::pair<std::string, std::string>> active;  // id, project
      for (int i = 0; i < ended.rows(); ++i)
        active.emplace_back(ended.Text(i, 0), ended.Text(i, 1));
      std::sort(active.begin(), active.end());  // The events in id order, as SQLite writes them.
      for (const auto& [id, project] : active) {
        audit::AuditEvent event = SessionEndedBySystem(id, project, reason, now_ms);
        RETURN_IF_ERROR(AppendAudit(&event));
        events.push_back(std::move(event));
      }
      RETURN_IF_ERROR(transaction.Commit());
    }
    if (audit_listener_) {
      for (const audit::AuditEvent& event : events) audit_listener_(event);
    }
    return static_cast<int64_t>(events.size());
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
                 RETURN_IF_ERROR(WriteRow(kExecutionCodec, execution, InsertSql(kExecutionCodec)));
                 for (const FileRow& file : artifacts) {
                   RETURN_IF_ERROR(WriteRow(kFileCodec, file, InsertSql(kFileCodec))
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
    ASSIGN_OR_RETURN(PgTransaction transaction, Begin("BEGIN ISOLATION LEVEL REPEATABLE READ"));
    ASSIGN_OR_RETURN(PgResult exists, conn_->Exec("SELECT 1 FROM sessions WHERE id = $1",
                                                  PgParams().Add(session_id)));
    if (exists.rows() == 0) return Status::NotFound("session " + session_id + " not found");
    Query query(SelectSql(kExecutionCodec));
    query.Where("session_id", session_id);
    ASSIGN_OR_RETURN(std::vector<ExecutionRow> rows, ReadPage(kExecutionCodec, query, page));
    RETURN_IF_ERROR(transaction.Commit());
    return rows;
  }

  // --- files ---

  Status PutFile(const FileRow& row, const Trail& trail) override {
    MutexLock lock(mu_);
    return Write(trail,
                 [&]() REQUIRES(mu_) { return WriteRow(kFileCodec, row, InsertSql(kFileCodec)); })
        .WithContext("put file " + row.id);
  }

  Result<FileRow> GetFile(const std::string& id) override {
    return GetOne(kFileCodec, "id", id, "file");
  }

  Result<std::vector<FileRow>> ListFiles(const FileFilter& filter, const Page& page) override {
    MutexLock lock(mu_);
    Query query(SelectSql(kFileCodec));
    if (!filter.project_id.empty()) query.Where("project_id", filter.project_id);
    if (!filter.purpose.empty()) query.Where("purpose", filter.purpose);
    if (!filter.session_id.empty()) query.Where("session_id", filter.session_id);
    if (!filter.execution_id.empty()) query.Where("execution_id", filter.execution_id);
    return ReadPage(kFileCodec, query, page);
  }

  Result<int64_t> DeleteFile(const std::string& id, const Trail& trail) override {
    MutexLock lock(mu_);
    int64_t remaining = 0;
    Status written = Write(trail, [&]() REQUIRES(mu_) -> Status {
      ASSIGN_OR_RETURN(PgResult removed, conn_->Exec("DELETE FROM files WHERE id = $1 "
                                                     "RETURNING sha256",
                                                     PgParams().Add(id)));
      if (removed.rows() == 0) return Status::NotFound("file " + id + " not found");
      // Counted in the same transaction as the delete. Unlike SQLite's single writer, another
      // transaction may put a record for the same blob meanwhile and commit after this count:
      // as in SQLite, settling that race is the blob store's part (it re-checks before removing).
      ASSIGN_OR_RETURN(PgResult count, conn_->Exec("SELECT COUNT(*) FROM files WHERE sha256 = $1",
                                                   PgParams().Add(removed.Text(0, 0))));
      remaining = count.Int64(0, 0);
      return Status::Ok();
    });
    if (!written.ok()) return written;
    return remaining;
  }

  Result<std::vector<FileRow>> ExpiredFiles(int64_t now_ms, int limit) override {
    MutexLock lock(mu_);
    Query query(SelectSql(kFileCodec));
    query.Where("expires_at_ms", int64_t{0}, ">").Where("expires_at_ms", now_ms, "<=");
    // The same clamp as a Page: a sweeper asking for 0 would otherwise never make progress.
    query.Then(" ORDER BY expires_at_ms, id").Limit(ClampLimit(limit));
    return ReadAll(kFileCodec, query);
  }

  Result<int64_t> FilesWithBlob(const std::string& sha256) override {
    MutexLock lock(mu_);
    return Count(Query("SELECT COUNT(*) FROM files").Where("sha256", sha256));
  }

  Result<std::vector<std::string>> ReferencedBlobs() override {
    MutexLock lock(mu_);
    ASSIGN_OR_RETURN(PgResult result,
                     Run("SELECT DISTINCT sha256 FROM files ORDER BY sha256", PgParams()));
    std::vector<std::string> blobs;
    blobs.reserve(result.rows());
    for (int i = 0; i < result.rows(); ++i) blobs.push_back(result.Text(i, 0));
    return blobs;
  }

  Status AddSessionInputs(const std::vector<SessionInput>& inputs, const Trail& trail) override {
    MutexLock lock(mu_);
    return Write(trail, [&]() REQUIRES(mu_) -> Status {
      for (const SessionInput& input : inputs) {
        RETURN_IF_ERROR(WriteRow(kSessionInputCodec, input,
                                 InsertSql(kSessionInputCodec) +
                                     " ON CONFLICT (session_id, file_id) DO NOTHING")
                            .WithContext("add input " + input.file_id + " of " + input.session_id));
      }
      return Status::Ok();
    });
  }

  Result<std::vector<SessionInput>> SessionInputs(const std::string& session_id) override {
    MutexLock lock(mu_);
    Query query(SelectSql(kSessionInputCodec));
    query.Where("session_id", session_id).Then(" ORDER BY placed_at_ms, file_id");
    return ReadAll(kSessionInputCodec, query);
  }

  Result<std::vector<SessionInput>> UsesOfFile(const std::string& file_id, int limit) override {
    MutexLock lock(mu_);
    Query query(SelectSql(kSessionInputCodec));
    query.Where("file_id", file_id).Then(" ORDER BY placed_at_ms, session_id");
    return ReadAll(kSessionInputCodec, query.Limit(ClampLimit(limit)));
  }

  // --- usage and quotas ---

  Result<std::vector<SessionRow>> SessionsCreated(int64_t from_ms, int64_t to_ms,
                                                  const std::string& project_id) override {
    MutexLock lock(mu_);
    Query query(SelectSql(kSessionCodec));
    query.Where("created_at_ms", from_ms, ">=").Where("created_at_ms", to_ms, "<");
    if (!project_id.empty()) query.Where("project_id", project_id);
    return ReadAll(kSessionCodec, query.Then(" ORDER BY created_at_ms"));
  }

  Result<std::vector<UsageEvent>> UsageEvents(int64_t from_ms, int64_t to_ms,
                                              const std::string& project_id) override {
    MutexLock lock(mu_);
    Query query(SelectSql(kUsageCodec));
    query.Where("time_ms", from_ms, ">=").Where("start_ms", to_ms, "<");
    if (!project_id.empty()) query.Where("project_id", project_id);
    return ReadAll(kUsageCodec, query.Then(" ORDER BY id"));
  }

  Result<std::vector<FileRow>> FilesCreatedBefore(int64_t to_ms,
                                                  const std::string& project_id) override {
    MutexLock lock(mu_);
    Query query(SelectSql(kFileCodec));
    query.Where("created_at_ms", to_ms, "<");
    if (!project_id.empty()) query.Where("project_id", project_id);
    return ReadAll(kFileCodec, query);
  }

  Result<int64_t> CountActiveSessions(const std::string& project_id) override {
    MutexLock lock(mu_);
    return Count(Query("SELECT COUNT(*) FROM sessions")
                     .Where("project_id", project_id)
                     .Where("status", std::string("active")));
  }

  Result<int64_t> CountSessionsSince(const std::string& project_id, int64_t since_ms) override {
    MutexLock lock(mu_);
    return Count(Query("SELECT COUNT(*) FROM sessions")
                     .Where("project_id", project_id)
                     .Where("created_at_ms", since_ms, ">="));
  }

  Result<double> CpuMsSince(const std::string& project_id, int64_t since_ms) override {
    MutexLock lock(mu_);
    Query query("SELECT COALESCE(SUM(cpu_ms), 0) FROM executions");
    query.Where("project_id", project_id).Where("started_at_ms", since_ms, ">=");
    ASSIGN_OR_RETURN(PgResult result, Run(query.sql(), query.params()));
    return result.Double(0, 0);
  }

  Result<int64_t> StoredBytes(const std::string& project_id) override {
    MutexLock lock(mu_);
    return Count(
        Query("SELECT COALESCE(SUM(bytes), 0) FROM files").Where("project_id", project_id));
  }

  Result<StoreTotals> Totals() override {
    MutexLock lock(mu_);
    ASSIGN_OR_RETURN(PgResult result, Run("SELECT (SELECT COUNT(*) FROM files), "
                                          "(SELECT COALESCE(SUM(bytes), 0) FROM files), "
                                          "(SELECT seq FROM audit_head WHERE id = 1)",
                                          PgParams()));
    return StoreTotals{result.Int64(0, 0), result.Int64(0, 1), result.Int64(0, 2)};
  }

  Result<int> SchemaVersion() override {
    MutexLock lock(mu_);
    RETURN_IF_ERROR(EnsureConnected());
    return PostgresSchemaVersion(*conn_);
  }

 private:
  // One row by `column` = `value`, or NotFound naming `what`.
  template <typename Row>
  Result<Row> GetOne(const RowCodec<Row>& codec, std::string_view column, const std::string& value,
                     const char* what) {
    MutexLock lock(mu_);
    Query query(SelectSql(codec));
    query.Where(column, value);
    ASSIGN_OR_RETURN(PgResult result, Run(query.sql(), query.params()));
    if (result.rows() == 0) return Status::NotFound(std::string(what) + " " + value + " not found");
    return ReadRow(codec, result, 0);
  }

  template <typename Row>
  Result<std::vector<Row>> ReadAll(const RowCodec<Row>& codec, const Query& query) REQUIRES(mu_) {
    ASSIGN_OR_RETURN(PgResult result, Run(query.sql(), query.params()));
    return ReadRows(codec, result);
  }

  // `query` for one keyset page, newest first.
  template <typename Row>
  Result<std::vector<Row>> ReadPage(const RowCodec<Row>& codec, Query& query, const Page& page)
      REQUIRES(mu_) {
    if (!page.after.empty()) query.Where("id", page.after, "<");
    query.Then(" ORDER BY id DESC").Limit(ClampLimit(page.limit));
    return ReadAll(codec, query);
  }

  // A single integer (COUNT or SUM).
  Result<int64_t> Count(const Query& query) REQUIRES(mu_) {
    ASSIGN_OR_RETURN(PgResult result, Run(query.sql(), query.params()));
    return result.Int64(0, 0);
  }

  // Re-establishes a connection known to be lost.
  Status EnsureConnected() REQUIRES(mu_) {
    return conn_->Broken() ? conn_->Reconnect() : Status::Ok();
  }

  // One statement on its own (no transaction open). When it fails because the connection was
  // lost since the last call — which the server's restart shows only when the connection is next
  // used — it reconnects and runs it once more: nothing was done the first time.
  Result<PgResult> Run(std::string_view sql, const PgParams& params) REQUIRES(mu_) {
    RETURN_IF_ERROR(EnsureConnected());
    Result<PgResult> result = conn_->Exec(sql, params);
    if (result.ok() || !conn_->Broken()) return result;
    RETURN_IF_ERROR(conn_->Reconnect());
    return conn_->Exec(sql, params);
  }

  // BEGIN, with the same one retry as Run.
  Result<PgTransaction> Begin(std::string_view begin = "BEGIN") REQUIRES(mu_) {
    RETURN_IF_ERROR(Run(begin, PgParams()).status());
    return PgTransaction::Adopt(*conn_);
  }

  // Runs `change` and writes `trail` in one transaction (see the top of this file).
  // `change` runs with mu_ held, which its lambda declares: `[&]() REQUIRES(mu_) { ... }`.
  template <typename Change>
  Status Write(const Trail& trail, Change change) REQUIRES(mu_) {
    ASSIGN_OR_RETURN(PgTransaction transaction, Begin());
    RETURN_IF_ERROR(change());
    std::optional<audit::AuditEvent> event = trail.audit;
    if (event) {
      Status appended = AppendAudit(&*event);
      // Whatever the database said, failing to record the event is the server's failure (500),
      // not the caller's: the action is refused and rolled back.
      if (!appended.ok()) return Status::Internal(appended.message());
    }
    for (const UsageEvent& usage : trail.usage) {
      RETURN_IF_ERROR(WriteRow(kUsageCodec, usage, InsertSql(kUsageCodec))
                          .WithContext("record usage " + usage.kind));
    }
    RETURN_IF_ERROR(transaction.Commit());
    if (event && audit_listener_) audit_listener_(*event);
    return Status::Ok();
  }

  // Appends `event` to the chain under the head row's lock, held to the end of the caller's
  // transaction (see the top of this file). REQUIRES: a transaction open.
  Status AppendAudit(audit::AuditEvent* event) REQUIRES(mu_) {
    ASSIGN_OR_RETURN(PgResult head,
                     conn_->Exec("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE"));
    if (head.rows() != 1) return Status::Internal("the audit chain's head row is missing");
    SealAuditEvent(event, head.Int64(0, 0), head.Text(0, 1));
    RETURN_IF_ERROR(WriteRow(kAuditCodec, *event, InsertSql(kAuditCodec))
                        .WithContext("append audit event " + event->action));
    return conn_
        ->Exec("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
               PgParams().Add(event->seq).Add(event->hash))
        .status();
  }

  Status UpsertSession(const SessionRow& row) REQUIRES(mu_) {
    return WriteRow(kSessionCodec, row,
                    InsertSql(kSessionCodec) + " ON CONFLICT (id) DO UPDATE SET " +
                        kSessionCodec.ExcludedAssignments({"id"}));
  }

  // Runs `sql` with `row` bound to $1…$n. REQUIRES: a transaction open.
  template <typename Row>
  Status WriteRow(const RowCodec<Row>& codec, const Row& row, const std::string& sql)
      REQUIRES(mu_) {
    PgParams params;
    AddRow(codec, row, &params);
    return conn_->Exec(sql, params).status();
  }

  Mutex mu_;
  const std::unique_ptr<PgConn> conn_ PT_GUARDED_BY(mu_);
  std::function<void(const audit::AuditEvent&)> audit_listener_ GUARDED_BY(mu_);
};

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             Clock::Real()->WallNow().time_since_epoch())
      .count();
}

}  // namespace

Result<int> MigratePostgres(const std::string& url) {
  ASSIGN_OR_RETURN(std::unique_ptr<PgConn> conn, PgConn::Connect(url));
  return ApplyPostgresMigrations(*conn, NowMs());
}

Result<std::unique_ptr<MetadataStore>> OpenPostgresStore(const std::string& url) {
  ASSIGN_OR_RETURN(std::unique_ptr<PgConn> conn, PgConn::Connect(url));
  ASSIGN_OR_RETURN(int version, PostgresSchemaVersion(*conn));
  const int latest = LatestSchemaVersion();
  if (version > latest) {
    return Status::InvalidArgument("metadata database " + conn->redacted_url() +
                                   ": database schema version " + std::to_string(version) +
                                   " is newer than this pycell (" + std::to_string(latest) +
                                   "); upgrade pycell");
  }
  if (version < latest) {
    return Status::FailedPrecondition(
        "metadata database " + conn->redacted_url() + " is at schema version " +
        std::to_string(version) + " and this pycell needs " + std::to_string(latest) +
        ": run `pycell migrate --store URL` first (nodes never migrate a PostgreSQL store "
        "themselves)");
  }
  return std::unique_ptr<MetadataStore>(std::make_unique<PgStore>(std::move(conn)));
}

}  // namespace pycell::store
